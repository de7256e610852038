// The checks of `tapnet trace --follow`, run as the CLI (bin/tapnet.mjs) by trace.test.ts on the
// 2-node lab of each backend it shares with the trace, web and dissector checks (trace-lab.ts):
// with a ping loop running it prints the journeys of the next packets across both nodes, both
// ways; with a loop of TCP transfers it follows the connection's packets, super-frames and
// their segments included, and after --pcapng says how tshark reads the backend's datagrams.
// On the tapnet lab also: a probe's trace too (the line given runs); a follow and a probe trace
// at once, each with only its own packets;
// SIGINT mid-follow stops it, prints what it had, and leaves every switch disarmed (trace.read
// stays empty while the pings go on); with no traffic it waits out --seconds, sends nothing
// (tcpdump on the pod's eth0 sees no IPv4 packet) and exits 1 with "no packet matched"; bad
// input is refused with the option named. Every process a check starts is stopped after it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { rpcCall } from "../../src/node/rpc.ts";
import { exited, REPO, runCmd, TAPNET, tapnet, waitFor } from "./helpers.ts";
import { Background, labPod, switchSockets, type SharedLab } from "./trace-lab.ts";

interface Hop { node: string; stage: string; head: string }
/** The ICMP type and sequence of a hop's frame (virtio_net_hdr 10, Ethernet 14, IPv4 20). */
const icmp = (h: Hop) => { const x = Buffer.from(h.head, "hex"); return { type: x[44], seq: x.readUInt16BE(50) }; };

/** Registers the follow checks in the calling describe, against `lab`. */
export function followChecks(lab: SharedLab): void {
  const { backend, prefix } = lab;
  const bg = new Background();
  let dir = "";
  /** node2-pod1's address. */
  let b = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "trace-follow-"));
    b = labPod(lab, "node2-pod1").ip;
  });
  afterEach(() => bg.stopAll());
  afterAll(async () => {
    await bg.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  const pingLoop = () => bg.start("ip", ["netns", "exec", `${prefix}-node1-pod1`, "ping", "-n", "-i", "0.2", "-c", "300", b]);

  it("follows the next pings and their replies across both nodes", async () => {
    // The next 4 packets of a ping loop across nodes: both requests and both replies, through both switches.
    pingLoop();
    const r = await tapnet(["trace", "--prefix", prefix, "--follow", "--from", "node1-pod1", "--to", "node2-pod1", "--count", "4", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { follow: { packets: number; ended: string }; hops: Hop[] };
    expect(j.follow).toMatchObject({ packets: 4, ended: "count" });
    const at = (node: string, stage: string) => j.hops.filter((h) => h.node === node && h.stage === stage).map((h) => icmp(h));
    // The next 4 packets through node1, the pod's switch: requests read there and delivered on
    // node2, replies read on node2 and delivered there. Usually two of each, but following may
    // start between a request and its reply, and then the first packet is that reply.
    const requests = at("node1", "read");
    const replies = at("node1", "deliver");
    expect(requests.length + replies.length).toBe(4);
    expect(requests.every((x) => x.type === 8) && replies.every((x) => x.type === 0)).toBe(true);
    expect(at("node2", "deliver")).toEqual(requests);
    expect(at("node2", "read")).toEqual(replies);
    // Consecutive pings of the loop (ping's own sequence), each reply to one of them or to the one just before.
    const seqs = requests.map((x) => x.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0] + i));
    for (const r of replies) {
      expect(r.seq).toBeGreaterThanOrEqual(seqs[0] - 1);
      expect(r.seq).toBeLessThanOrEqual(seqs[seqs.length - 1]);
    }
    expect(j.hops.map((h) => `${h.node} ${h.stage}`)).toEqual(expect.arrayContaining(["node1 route", "node1 tunnel-out", "node2 port-out", "node2 tunnel-out", "node1 port-out"]));
  });

  const tcpTitle = backend === "tapnet"
    ? "prints the journeys of a TCP transfer's packets, port at either end, any address, and the pcapng's decode line"
    : "follows a TCP transfer's packets, the segments cut on the way included, and says which -d flag reads the pcapng";
  it(tcpTitle, async () => {
    // The next 8 packets of a loop of 1 MB TCP transfers, by port alone; the pcapng's Wireshark line for the backend.
    const server = bg.start("ip", ["netns", "exec", `${prefix}-node2-pod1`, process.execPath, "-e",
      `require("net").createServer((s)=>{s.resume();s.on("end",()=>s.end())}).listen(7777,()=>console.log("ready"))`]);
    let ready = "";
    server.stdout!.on("data", (d) => (ready += d));
    await waitFor(() => ready.includes("ready"), 10_000, "the TCP server");
    bg.start("ip", ["netns", "exec", `${prefix}-node1-pod1`, process.execPath, "-e",
      `let n=0;const go=()=>{const c=require("net").connect(7777,"${b}",()=>c.end(Buffer.alloc(1000000,97)));c.on("close",()=>{if(++n<300)setTimeout(go,100)})};go()`]);
    const file = join(dir, `${prefix}.pcapng`);
    const r = await tapnet(["trace", "--prefix", prefix, "--follow", "--from", "node1-pod1", "--proto", "tcp", "--port", "7777", "--count", "8", "--pcapng", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^follow node1-pod1 \(10\.244\.1\.2, node1\) ↔ any address: TCP, port 7777 at either end, the next 8 packets either way: 8 packets in [\d.]+ s \(had 8\)$/m);
    const lines = r.stdout.split("\n").filter((l) => /^\s+\+\d+ µs/.test(l));
    // Both switches saw them, one side reading them from its pod, the other taking them from the
    // tunnel (which way depends on where in the transfer it started: data one way, ACKs the other).
    expect(lines.some((l) => / node1 /.test(l)) && lines.some((l) => / node2 /.test(l))).toBe(true);
    expect(lines.some((l) => / node[12] +read +in from port \d+ \(node[12]-pod1\)$/.test(l))).toBe(true);
    expect(lines.some((l) => / node[12] +\S+ +.*over the tunnel/.test(l))).toBe(true);
    expect(r.stdout).toMatch(/TCP +\d+ → 7777 \[/);
    for (const m of r.stdout.matchAll(/TCP +(\d+) → (\d+) \[/g)) expect([m[1], m[2]]).toContain("7777"); // nothing but connections to 7777
    const says = { tapnet: "the tapnet backend: tshark -X lua_script:", vxlan: `tshark -r ${file} -d udp.port==8472,vxlan`, udp: `tshark -r ${file} -d udp.port==8285,ip` }[backend];
    expect(r.stderr).toContain(says);
    expect(r.stderr).toContain(`-r ${file}`);
  });

  // The rest once, on the tapnet backend.
  if (backend !== "tapnet") return;

  it("after a probe's --pcapng, gives the tshark line that reads it, and that line runs", async () => {
    const file = join(dir, "probe.pcapng");
    const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--pcapng", file]);
    expect(r.code, r.stderr).toBe(0);
    const line = /the tapnet backend: (tshark -X lua_script:\S+ -r \S+)\n/.exec(r.stderr);
    expect(line, r.stderr).not.toBeNull();
    const args = line![1].split(" ").slice(1);
    expect(args).toEqual(["-X", `lua_script:${REPO}dissector/tapnet.lua`, "-r", file]);
    const t = await runCmd("tshark", args);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).not.toMatch(/Lua Error|attempt to/i);
    expect(t.stdout).toMatch(/ICMP/);
  });

  it("stops on SIGINT mid-follow, prints what it had, and disarms every switch", async () => {
    pingLoop();
    const child = bg.start(process.execPath, [TAPNET, "trace", "--prefix", prefix, "--follow", "--from", "node1-pod1", "--to", "node2-pod1", "--count", "100", "--seconds", "120"]);
    let out = "", err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    await waitFor(() => err.includes("Ctrl-C stops sooner"), 30_000, "the follow to start");
    await new Promise((r) => setTimeout(r, 1_500)); // armed by now (the line comes just before), some pings seen
    const code = exited(child);
    child.kill("SIGINT");
    expect(await code).toBe(0);
    const m = /: (\d+) packets in [\d.]+ s \(interrupted\)/.exec(out);
    expect(m, out + err).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![1])).toBeLessThan(100);
    expect(out).toMatch(/node2 +deliver/);
    // Disarmed: with the pings still going, no switch records anything more.
    for (const s of switchSockets(lab)) await rpcCall(s, "trace.read", {});
    await new Promise((r) => setTimeout(r, 1_000));
    for (const s of switchSockets(lab)) expect(await rpcCall(s, "trace.read", {})).toMatchObject({ records: [], lost: 0, armed: 0 });
  });

  it("a follow and a probe trace at once each get only their own packets, and leave the switches disarmed", async () => {
    // node1-pod2 pings node2-pod2 in a loop and is followed, while a probe trace goes from node1-pod1 to node2-pod1.
    const c = labPod(lab, "node2-pod2").ip;
    const a2 = labPod(lab, "node1-pod2").ip;
    const a1 = labPod(lab, "node1-pod1").ip;
    bg.start("ip", ["netns", "exec", `${prefix}-node1-pod2`, "ping", "-n", "-i", "0.1", "-c", "300", c]);
    const [f, p] = await Promise.all([
      tapnet(["trace", "--prefix", prefix, "--follow", "--from", "node1-pod2", "--to", "node2-pod2", "--count", "6", "--json"]),
      tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--count", "3", "--json"]),
    ]);
    expect(f.code, f.stderr).toBe(0);
    expect(p.code, p.stderr).toBe(0);
    /** The IPv4 ends of each hop where a pod's frame is read or delivered (virtio_net_hdr 10, Ethernet 14, IPv4 src at 12). */
    const ends = (hops: Hop[]) => new Set(hops.filter((h) => h.stage === "read" || h.stage === "deliver").map((h) => {
      const x = Buffer.from(h.head, "hex");
      return `${x.subarray(36, 40).join(".")} > ${x.subarray(40, 44).join(".")}`;
    }));
    const fj = JSON.parse(f.stdout) as { follow: { packets: number; ended: string }; hops: Hop[] };
    expect(fj.follow).toMatchObject({ packets: 6, ended: "count" });
    expect([...ends(fj.hops)].sort()).toEqual([`${a2} > ${c}`, `${c} > ${a2}`].sort());
    const pj = JSON.parse(p.stdout) as { hops: Hop[] };
    expect([...ends(pj.hops)].sort()).toEqual([`${a1} > ${b}`, `${b} > ${a1}`].sort());
    // Each of the probe's 3 pings read on node1 and delivered on node2, and its reply back.
    expect(pj.hops.filter((h) => h.node === "node1" && h.stage === "read").length).toBe(3);
    expect(pj.hops.filter((h) => h.node === "node1" && h.stage === "deliver").length).toBe(3);
    for (const s of switchSockets(lab)) expect(await rpcCall(s, "trace.read", {})).toMatchObject({ armed: 0 });
  });

  it("with no traffic waits out --seconds, sends nothing, and says no packet matched", async () => {
    const pcap = join(dir, "pod.pcap");
    const dump = bg.start("ip", ["netns", "exec", `${prefix}-node1-pod1`, "tcpdump", "-i", "eth0", "-U", "-w", pcap, "ip"]);
    let said = "";
    dump.stderr!.on("data", (d) => (said += d));
    await waitFor(() => said.includes("listening on"), 10_000, "tcpdump");
    const t0 = Date.now();
    const r = await tapnet(["trace", "--prefix", prefix, "--follow", "--from", "node1-pod1", "--to", "node2-pod1", "--seconds", "2"]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/the next 10 packets either way: 0 packets in [\d.]+ s \(2 s passed\)/);
    expect(r.stderr).toMatch(/no packet matched in [\d.]+ s: --follow sends nothing/);
    const e = exited(dump);
    dump.kill("SIGINT");
    await e;
    const read = await runCmd("tcpdump", ["-r", pcap, "-n"]);
    expect(read.stdout.trim()).toBe(""); // the pod sent (and got) no IPv4 packet
    for (const s of switchSockets(lab)) expect(await rpcCall(s, "trace.read", {})).toMatchObject({ records: [], lost: 0, armed: 0 });
  });

  it("refuses bad input, naming the option", async () => {
    const bad = async (args: string[], msg: RegExp) => {
      const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", ...args]);
      expect(r.code, r.stdout).toBe(2);
      expect(r.stderr).toMatch(msg);
    };
    // All at once: each is refused before anything is armed, and most of its time is Node starting.
    await Promise.all([
      bad(["--follow", "--count", "0"], /--count must be a whole number from 1 to 100, not "0"/),
      bad(["--follow", "--count", "101"], /--count must be a whole number from 1 to 100/),
      bad(["--follow", "--port", "80"], /--port needs --proto tcp or udp/),
      bad(["--follow", "--proto", "icmp", "--port", "80"], /--port is for --proto tcp or udp: ICMP has no ports/),
      bad(["--follow", "--seconds", "0"], /--seconds must be a whole number from 1 to 3600/),
      bad(["--to", "node2-pod1", "--seconds", "5"], /--seconds goes with --follow/),
      bad(["--follow", "--proto", "sctp"], /--proto must be one of icmp, tcp, udp/),
      bad(["--follow", "--to", "nowhere"], /--to nowhere: neither a pod/),
    ]);
  });
}

// The tunnel trusts more than the outer source address (#13, finding 4): a lab on the tapnet
// backend is sealed with its own secret, so a datagram forged from the lab's outside namespace
// with a peer node's address reaches no pod (before, it was delivered), a real datagram
// captured on the underlay and sent again is refused as a replay, one with a counter of its own
// fails its tag, each counted; and the sealed lab still passes `lab check`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { emitEthernet, ETHERTYPE_IPV4 } from "../../src/wire/ethernet.ts";
import { emitIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import { emitTapnet } from "../../src/wire/tapnet.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { SEALED_COUNTER } from "../../src/wire/sealed.ts";
import { journal, netnsList, tapnet, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = uniquePrefix("sealed");
const dir = mkdtempSync(join(tmpdir(), "tapnet-sealed-"));
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await tapnet(["lab", "down", "--prefix", prefix]);
  rmSync(dir, { recursive: true, force: true });
});

const NODE1 = "192.168.56.11";
const NODE2 = "192.168.56.12";
const PORT = 9999;

/** A UDP listener on port 9999 in `netns`: what it has received, one message a line. */
async function listen(netns: string): Promise<{ got: string[] }> {
  const code = `const s=require("dgram").createSocket("udp4");s.on("message",(m)=>process.stdout.write(m.toString("latin1")+"\\n"));s.bind(${PORT},()=>process.stdout.write("ready\\n"));`;
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const lines: string[] = [];
  child.stdout.on("data", (d) => lines.push(...String(d).split("\n").filter(Boolean)));
  await waitFor(() => lines.includes("ready"), 10_000, `the listener in ${netns}`);
  return { get got() { return lines.filter((l) => l !== "ready"); } };
}

/** Sends `payload` (hex) in one UDP datagram from `from` (an address of `netns`) to `to`:`port`. */
function send(netns: string, from: string, to: string, port: number, hex: string): void {
  const code = `const s=require("dgram").createSocket("udp4");s.bind(0,"${from}",()=>s.send(Buffer.from("${hex}","hex"),${port},"${to}",()=>s.close()));`;
  const r = spawnSync("ip", ["netns", "exec", netns, process.execPath, "-e", code], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sending from ${netns}: ${r.stderr}`);
}

/** node1's tunnel counters, as `lab status` shows them. */
async function tunnelOf(node: string): Promise<Record<string, number>> {
  const r = await tapnet(["lab", "status", "--json", "--prefix", prefix]);
  return JSON.parse(r.stdout).switches[node].tunnel ?? {};
}

/**
 * A tapnet datagram of version 1, as node2's switch sent them before sealing: a UDP datagram
 * from node2's pod to node1's, `payload` in it.
 */
function forgedV1(payload: string, src: string, dst: string, dstMac: string): string {
  const body = Buffer.from(payload, "latin1");
  const frame = new Uint8Array(10 + 14 + 20 + 8 + body.length); // virtio_net_hdr all zero: no offloads asked
  emitEthernet({ dst: dstMac, src: "0a:58:0a:f4:02:01", vlans: [], etherType: ETHERTYPE_IPV4 }, frame, 10);
  emitIpv4({ tos: 0, id: 7, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 17, src, dst, payloadLen: 8 + body.length }, frame, 24);
  emitUdp({ srcPort: 40000, dstPort: PORT, payload: body }, frame, 44, { src: parseIpv4Address(src)!, dst: parseIpv4Address(dst)! });
  const d = new Uint8Array(12 + frame.length);
  emitTapnet({ frameId: 0x4242, frameLen: frame.length, offset: 0, chunk: frame }, d, 0);
  return Buffer.from(d).toString("hex");
}

/** The UDP payload of the first packet of a pcap file (Ethernet, IPv4). */
function firstUdpPayload(file: string): Buffer {
  const p = readFileSync(file);
  const len = p.readUInt32LE(24 + 8);
  const pkt = p.subarray(24 + 16, 24 + 16 + len);
  const ihl = (pkt[14] & 0x0f) * 4;
  return pkt.subarray(14 + ihl + 8);
}

it("a forged, replayed or altered datagram reaches no pod and is counted; the sealed lab passes lab check", async () => {
  const up = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--prefix", prefix], { timeoutMs: 170_000 });
  expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
  expect(readFileSync(`/run/tapnet/${prefix}/cluster.yaml`, "utf8")).toMatch(/^ {2}secret: [A-Za-z0-9+/]{43}=$/m);
  const state = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
  const pod1 = state.pods.find((p: { name: string }) => p.name === "node1-pod1");
  const pod2 = state.pods.find((p: { name: string }) => p.name === "node2-pod1");
  const outside = `${prefix}-outside`;
  const underlay = `${prefix}-underlay`;
  const node1 = state.nodes.find((n: { name: string }) => n.name === "node1");
  // Whatever the machine's defaults, node1 takes packets from the underlay's addresses in on ext0.
  for (const dev of ["all", "ext0"]) spawnSync("ip", ["netns", "exec", node1.netns, "sysctl", "-qw", `net.ipv4.conf.${dev}.rp_filter=0`]);
  const heard = await listen(pod1.netns);

  // A real datagram of node2's to node1, captured on the underlay's bridge.
  const pcap = join(dir, "real.pcap");
  const dump = spawn("ip", ["netns", "exec", underlay, "tcpdump", "-i", "br0", "-U", "-c", "1", "-w", pcap, `udp and src host ${NODE2} and dst host ${NODE1} and dst port 8287`], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(dump);
  let dumpErr = "";
  dump.stderr!.on("data", (d) => (dumpErr += d));
  await waitFor(() => dumpErr.includes("listening on"), 10_000, "tcpdump");
  const dumped = new Promise((r) => dump.on("close", r));
  send(pod2.netns, pod2.ip, pod1.ip, PORT, Buffer.from("legit-1").toString("hex"));
  await waitFor(() => heard.got.includes("legit-1"), 10_000, "the real datagram");
  await dumped;
  const real = firstUdpPayload(pcap);
  expect(real[0]).toBe(2); // sealed: version 2 on the wire

  // The outside namespace takes node2's address and speaks for it.
  spawnSync("ip", ["-n", outside, "addr", "add", `${NODE2}/32`, "dev", "eth0"]);
  const before = await tunnelOf("node1");
  send(outside, NODE2, NODE1, 8287, forgedV1("forged-v1", pod2.ip, pod1.ip, pod1.mac)); // the reproduction
  send(outside, NODE2, NODE1, 8287, real.toString("hex")); // a replay
  const altered = Buffer.from(real);
  altered.writeUInt32BE(0x7fff0000, SEALED_COUNTER + 4); // a counter never used, the tag left as it was
  send(outside, NODE2, NODE1, 8287, altered.toString("hex"));
  const drops = ["drop_tapnet_unsealed", "drop_seal_replayed", "drop_seal_auth_failed"];
  let after = await tunnelOf("node1");
  for (let i = 0; i < 40 && !drops.every((k) => (after[k] ?? 0) > (before[k] ?? 0)); i++) {
    await new Promise((r) => setTimeout(r, 250));
    after = await tunnelOf("node1");
  }
  for (const k of drops) expect(after[k] ?? 0, k).toBe((before[k] ?? 0) + 1);
  await new Promise((r) => setTimeout(r, 500));
  expect(heard.got).toEqual(["legit-1"]); // nothing forged, and the real one once
  spawnSync("ip", ["-n", outside, "addr", "del", `${NODE2}/32`, "dev", "eth0"]); // node2's answers from outside go to node2 again

  const check = await tapnet(["lab", "check", "--json", "--prefix", prefix], { timeoutMs: 170_000 });
  const res = JSON.parse(check.stdout);
  expect(res.results.filter((r: { ok: boolean }) => !r.ok)).toEqual([]);
  expect(res.results.some((r: { from: string; to: string; test: string }) => r.from === "node1-pod1" && r.to === "node2-pod1" && r.test === "tcp")).toBe(true);
  expect(check.code).toBe(0);

  const made = journal(prefix)!.namespaces;
  expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
  expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
});

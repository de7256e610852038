// Port security and the tunnel's inner sources (#13, findings 2 and 3) on a real 2-node lab,
// each finding reproduced as the issue found it, with the kernel's own tools in the pods:
//   - pod A announces pod B's address by a gratuitous ARP (the address added in A, arp_notify
//     and a MAC "change" make A's kernel send one): B keeps its traffic from the other node,
//     and A cannot send as B;
//   - A takes B's MAC and sends a stream of frames to its gateway: B stays reachable;
//   - A sends 8,192 frames from random source MACs (8,192 MAC changes in one `ip -batch`, each
//     announced by a gratuitous ARP): a pod added afterwards is reached without flooding;
//   - node 2's address sends node 1 a tunnel datagram whose inner source is outside its pod
//     CIDR: dropped and counted; node 2's kernel sending from a foreign address: not sent.
// The udp backend (flannel's, unauthenticated) lets the test forge a datagram with a socket of its own.
// TAPNET_LAB_PREFIX (+ "-psec") names the lab instead of the usual test prefix (to keep clear of other labs).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emitIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { prng } from "../support/random.ts";
import { journal, ping, runCmd, sh, tapnet, uniquePrefix } from "./helpers.ts";

const prefix = process.env.TAPNET_LAB_PREFIX ? `${process.env.TAPNET_LAB_PREFIX}-psec` : uniquePrefix("psec");
/** The pod added after the MAC flood (its namespace, made by `pod add`). */
const LATE = `${prefix}-late`;
const MAC_BATCH = `/tmp/${prefix}-macs.txt`;

interface Pod { name: string; netns: string; node: string; ip: string; mac: string }
interface PortStatus { port: number; pod?: string; role: string; counters: Record<string, number> }
interface SwitchStatus { ports: PortStatus[]; counters: Record<string, number>; tunnel?: Record<string, number>; fdb: unknown[] }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function status(node: string): Promise<SwitchStatus> {
  const r = await tapnet(["lab", "status", "--json", "--prefix", prefix]);
  if (r.code !== 0) throw new Error(`lab status: ${r.stderr}`);
  return JSON.parse(r.stdout).switches[node];
}

/** A port's counter (0 if not shown): the gateway's for `pod` "tapnet0". */
function counter(s: SwitchStatus, pod: string, name: string): number {
  const p = s.ports.find((x) => (pod === "tapnet0" ? x.role === "gateway" : x.pod === pod));
  if (!p) throw new Error(`no port for ${pod} in ${JSON.stringify(s.ports.map((x) => x.pod ?? x.role))}`);
  return p.counters[name] ?? 0;
}

/** How much each of `names` grew between two statuses, for `pod`'s port. */
const grew = (a: SwitchStatus, b: SwitchStatus, pod: string, name: string) => counter(b, pod, name) - counter(a, pod, name);

/** An IPv4/UDP packet from `src` to `dst`:9, its checksums right. */
function udpPacket(src: string, dst: string): string {
  const payload = new TextEncoder().encode("forged by the port-security test");
  const b = new Uint8Array(20 + 8 + payload.length);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 17, src, dst, payloadLen: 8 + payload.length }, b, 0);
  emitUdp({ srcPort: 40000, dstPort: 9, payload }, b, 20, { src: parseIpv4Address(src)!, dst: parseIpv4Address(dst)! });
  return Buffer.from(b).toString("hex");
}

/** Sends each hex datagram from `from` (an address of namespace `netns`) to `to`:`port`, as a node's tunnel socket would. */
async function sendDatagrams(netns: string, from: string, to: string, port: number, hexes: string[]): Promise<void> {
  const script = `const [from, to, port, ...hex] = process.argv.slice(1);
const s = require("node:dgram").createSocket("udp4");
s.bind({ address: from, port: 0 }, async () => {
  for (const h of hex) await new Promise((r) => s.send(Buffer.from(h, "hex"), Number(port), to, r));
  s.close();
});`;
  const r = await runCmd("ip", ["netns", "exec", netns, process.execPath, "-e", script, from, to, String(port), ...hexes]);
  if (r.code !== 0) throw new Error(`sending datagrams from ${netns}: ${r.stderr}`);
}

describe("port security and the tunnel's inner sources on a 2-node lab", () => {
  let A: Pod; // node1-pod1: the one that misbehaves
  let B: Pod; // node1-pod2: the one it goes after
  let C: Pod; // node2-pod1: another node's pod, talking to B
  let node1 = "";
  let node2 = "";
  let tunnelPort = 0;

  beforeAll(async () => {
    const up = await tapnet(["lab", "up", "--nodes", "2", "--pods", "2", "--backend", "udp", "--prefix", prefix]);
    if (up.code !== 0) throw new Error(`lab up: ${up.stderr}${up.stdout}`);
    const j = journal(prefix) as unknown as { pods: Pod[]; nodes: { name: string; netns: string }[] };
    const pod = (name: string) => j.pods.find((p) => p.name === name)!;
    [A, B, C] = [pod("node1-pod1"), pod("node1-pod2"), pod("node2-pod1")];
    [node1, node2] = ["node1", "node2"].map((n) => j.nodes.find((x) => x.name === n)!.netns);
    tunnelPort = Number(/^\s*port:\s*(\d+)/m.exec(readFileSync(`/run/tapnet/${prefix}/cluster.yaml`, "utf8"))![1]);
  });

  afterAll(async () => {
    if (existsSync(`/run/netns/${LATE}`)) await tapnet(["pod", "del", LATE, "--control", `/run/tapnet/${prefix}/node1.sock`]);
    await tapnet(["lab", "down", "--prefix", prefix]);
    if (existsSync(`/run/netns/${LATE}`)) spawnSync("ip", ["netns", "del", LATE]);
    rmSync(MAC_BATCH, { force: true });
  });

  it("a gratuitous ARP from A claiming B's address: dropped; node 2's traffic for B still reaches B, and A cannot send as B", async () => {
    sh("ip", ["netns", "exec", A.netns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1"]);
    sh("ip", ["-n", A.netns, "addr", "add", `${B.ip}/32`, "dev", "eth0"]);
    try {
      const before = await status("node1");
      // A MAC "change" (to the same MAC) with arp_notify on: a gratuitous ARP for each of A's addresses, B's too.
      sh("ip", ["-n", A.netns, "link", "set", "eth0", "address", A.mac]);
      await sleep(300);
      const fromC = await ping(C.netns, B.ip, ["-c", "20", "-i", "0.05", "-W", "1"]);
      await ping(A.netns, "10.244.1.1", ["-c", "1", "-W", "1"]); // A knows its gateway's MAC: what it sends as B is IPv4
      const asB = await ping(A.netns, C.ip, ["-c", "5", "-i", "0.05", "-W", "1", "-I", B.ip]);
      const after = await status("node1");
      expect(fromC.received, fromC.out).toBe(20);
      // B answered them all, not A (which holds B's address too, and would have, had it taken B's traffic).
      expect(grew(before, after, B.name, "tx_frames")).toBeGreaterThanOrEqual(20);
      expect(grew(before, after, A.name, "tx_frames")).toBeLessThan(10);
      expect(asB.received, asB.out).toBe(0);
      expect(grew(before, after, A.name, "drop_spoofed_source_ip")).toBeGreaterThanOrEqual(1 + 5);
    } finally {
      spawnSync("ip", ["-n", A.netns, "addr", "del", `${B.ip}/32`, "dev", "eth0"]);
    }
  });

  it("frames from A with B's source MAC: dropped; B stays reachable from node 2 and from node 1 itself", async () => {
    const before = await status("node1");
    sh("ip", ["-n", A.netns, "link", "set", "eth0", "address", B.mac]);
    sh("ip", ["-n", A.netns, "neigh", "replace", "10.244.1.1", "lladdr", "0a:58:0a:f4:01:01", "dev", "eth0", "nud", "permanent"]);
    try {
      // A stream from B's MAC to the node (the frames a learning bridge learns B's MAC from): 2 ms apart.
      const stream = ping(A.netns, "10.244.1.1", ["-c", "2000", "-i", "0.002", "-W", "1", "-w", "5"]);
      await sleep(300);
      const fromC = await ping(C.netns, B.ip, ["-c", "20", "-i", "0.1", "-W", "1"]);
      const fromNode = await ping(node1, B.ip, ["-c", "20", "-i", "0.1", "-W", "1"]);
      await stream;
      const after = await status("node1");
      expect(fromC.received, fromC.out).toBe(20);
      expect(fromNode.received, fromNode.out).toBe(20);
      expect(grew(before, after, A.name, "drop_spoofed_source_mac")).toBeGreaterThan(200);
      expect(after.counters.fdb_moved - before.counters.fdb_moved).toBe(0);
    } finally {
      spawnSync("ip", ["-n", A.netns, "neigh", "del", "10.244.1.1", "dev", "eth0"]);
      spawnSync("ip", ["-n", A.netns, "link", "set", "eth0", "address", A.mac]);
    }
  });

  it("8,192 random source MACs from A: dropped, the FDB unchanged; a pod added afterwards is reached without flooding", async () => {
    const rnd = prng(8192);
    const lines: string[] = [];
    for (let k = 0; k < 8192; k++) {
      const m = Array.from({ length: 6 }, () => Math.floor(rnd() * 256));
      m[0] = (m[0] & 0xfe) | 0x02; // unicast, locally administered
      lines.push(`link set eth0 address ${m.map((x) => x.toString(16).padStart(2, "0")).join(":")}`);
    }
    lines.push(`link set eth0 address ${A.mac}`);
    writeFileSync(MAC_BATCH, lines.join("\n") + "\n");
    sh("ip", ["netns", "exec", A.netns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1"]);
    const before = await status("node1");
    sh("ip", ["-n", A.netns, "-batch", MAC_BATCH]); // each change announced by a gratuitous ARP from the new MAC
    await sleep(500);
    const flooded = await status("node1");

    const add = await tapnet(["pod", "add", LATE, "--control", `/run/tapnet/${prefix}/node1.sock`]);
    expect(add.code, add.stderr).toBe(0);
    const lateIp = /eth0 (\d+\.\d+\.\d+\.\d+)/.exec(add.stdout + add.stderr)![1];
    // The new pod's kernel is still bringing eth0 up (and asking for its gateway) as pod add returns: wait until it answers once.
    for (let tries = 0; tries < 5 && (await ping(C.netns, lateIp, ["-c", "1", "-W", "1"])).received !== 1; tries++);
    const fromC = await ping(C.netns, lateIp, ["-c", "10", "-i", "0.05", "-W", "1"]);
    const fromB = await ping(B.netns, lateIp, ["-c", "10", "-i", "0.05", "-W", "1"]);
    const after = await status("node1");
    expect(fromC.received, fromC.out).toBe(10);
    expect(fromB.received, fromB.out).toBe(10);
    // The late pod's unicast went to its port alone: no unknown unicast, and A (or B) saw at most the ARP broadcasts.
    expect(after.counters.unknown_unicast - flooded.counters.unknown_unicast).toBe(0);
    expect(grew(flooded, after, A.name, "tx_frames")).toBeLessThan(10);
    expect(counter(after, LATE, "tx_frames")).toBeGreaterThanOrEqual(20);
    // A's frames never reached the FDB.
    expect(grew(before, flooded, A.name, "drop_spoofed_source_mac")).toBeGreaterThanOrEqual(8192);
    expect(flooded.fdb.length).toBe(before.fdb.length);
  });

  it("a tunnel datagram from node 2 whose inner source is outside node 2's pod CIDR: dropped and counted; one from its pod: delivered", async () => {
    const forged = [udpPacket("203.0.113.99", A.ip), udpPacket("192.168.56.11", A.ip)];
    const fair = udpPacket(C.ip, A.ip);
    const before = await status("node1");
    await sendDatagrams(node2, "192.168.56.12", "192.168.56.11", tunnelPort, [...forged, ...forged, ...forged, ...forged, ...forged]);
    await sendDatagrams(node2, "192.168.56.12", "192.168.56.11", tunnelPort, [fair, fair, fair]);
    await sleep(300);
    const after = await status("node1");
    expect(after.counters.delivered - before.counters.delivered).toBe(3);
    expect((after.tunnel!.drop_tunnel_spoofed ?? 0) - (before.tunnel!.drop_tunnel_spoofed ?? 0)).toBe(10);
  });

  it("node 2's kernel sending to node 1's pod from an address not its own: not sent (foreign_source)", async () => {
    sh("ip", ["-n", node2, "addr", "add", "198.51.100.7/32", "dev", "lo"]);
    try {
      const before1 = await status("node1");
      const before2 = await status("node2");
      const r = await ping(node2, A.ip, ["-c", "3", "-i", "0.1", "-W", "1", "-I", "198.51.100.7"]);
      const after1 = await status("node1");
      const after2 = await status("node2");
      expect(r.received).toBe(0);
      expect(after1.counters.delivered - before1.counters.delivered).toBe(0);
      expect(grew(before2, after2, "tapnet0", "drop_foreign_source")).toBe(3);
    } finally {
      spawnSync("ip", ["-n", node2, "addr", "del", "198.51.100.7/32", "dev", "lo"]);
    }
  });
});

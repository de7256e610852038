/**
 * The hostile-input script (`npm run hostile`): a lab of 2 nodes with 2 pods each is attacked
 * from both sides at once while two good pods keep talking, and the switches are looked at
 * before and after.
 *
 *   node1          the node under attack: its switch takes both floods
 *   the underlay   sends `datagrams` hostile tunnel datagrams (hostile-tunnel.ts) at node1's
 *                  tunnel port, from the lab's own underlay namespace (a packet socket on br0,
 *                  so outer sources can be forged)
 *   node1-pod2     the attacker pod: writes `frames` hostile frames (hostile-frames.ts) on its eth0
 *   node2-pod1 → node1-pod1   the good traffic: a ping every 50 ms and one TCP stream (iperf3 at
 *                  `tcpRate`), across nodes and so through both of node1's attacked paths
 *
 * Before and after: each switch's pid and start time, resident memory and open fds (/proc), its
 * counters (`lab status`), the node's UDP socket counters and the attacker's TAP queue drops
 * (the kernel's share: what never reached the switch). After: pings between the good pods and to
 * their gateway. hostile-report.ts draws the verdict. The lab is removed at the end, also on an
 * error or Ctrl-C, unless `keep`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { labDown, labUp } from "../lab/lab.ts";
import { labDir, readLabState, type LabPod } from "../lab/plan.ts";
import { labStatus, type LabStatus } from "../lab/status.ts";
import { parseClusterConfig, type BackendType } from "../node/config.ts";
import { inNetns } from "../node/exec.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { Children, fdCount, rssKb, scriptCommand, startTicks } from "./children.ts";
import { BenchError } from "./figures.ts";
import type { PodTarget } from "./hostile-frames.ts";
import { ipv4, macOf } from "./hostile-packets.ts";
import { counterDeltas, judgeHostile, type HostileReport, type SwitchProbe } from "./hostile-report.ts";
import type { SendJob, SendResult } from "./hostile-send.ts";
import type { TunnelTarget } from "./hostile-tunnel.ts";
import { parsePing, startGoodTraffic } from "./traffic.ts";

export interface HostileOptions {
  datagrams: number;
  frames: number;
  /** Items per second per sender; 0: as fast as they go. */
  rate: number;
  seed: number;
  prefix: string;
  backend: BackendType;
  runtime: "node" | "deno";
  pin?: boolean;
  /** iperf3 -b for the good TCP stream ("200M"); undefined: as fast as it goes. */
  tcpRate?: string;
  /** Leave the lab up afterwards. */
  keep?: boolean;
  command: string;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

const IPERF_PORT = 5301;
const SENDER = "src/bench/hostile-send.ts";

/** The pid a switch reports itself (the lab's journal may name a supervisor), else the journal's. */
function switchPid(status: LabStatus, node: string): number {
  const s = status.switches[node] as { node?: { pid?: unknown } };
  return typeof s?.node?.pid === "number" ? s.node.pid : status.nodes.find((n) => n.name === node)?.pid ?? 0;
}

function probe(status: LabStatus | undefined, node: string): SwitchProbe {
  const answered = status !== undefined && "ports" in (status.switches[node] ?? {});
  const pid = status ? switchPid(status, node) : 0;
  return { pid, start: startTicks(pid), rssKb: rssKb(pid), fds: fdCount(pid), answered };
}

/** Datagrams the node's kernel gave to UDP sockets, and dropped for a full receive buffer (/proc/net/snmp in its namespace). */
async function udpCounters(netns: string): Promise<{ delivered: number; bufferDrops: number }> {
  const text = await inNetns(netns, "cat", ["/proc/net/snmp"]);
  const [head, values] = text.split("\n").filter((l) => l.startsWith("Udp:"));
  const h = head.split(/\s+/);
  const v = values.split(/\s+/).map(Number);
  return { delivered: v[h.indexOf("InDatagrams")] ?? 0, bufferDrops: v[h.indexOf("RcvbufErrors")] ?? 0 };
}

async function txDropped(netns: string, dev: string): Promise<number> {
  const j = JSON.parse(await inNetns(netns, "ip", ["-s", "-j", "link", "show", dev])) as { stats64?: { tx?: { dropped?: number } } }[];
  return j[0]?.stats64?.tx?.dropped ?? 0;
}

async function linkMac(netns: string, dev: string): Promise<string> {
  const j = JSON.parse(await inNetns(netns, "ip", ["-j", "link", "show", dev])) as { address?: string }[];
  if (!j[0]?.address) throw new BenchError(`no MAC address on ${dev} in ${netns}`);
  return j[0].address;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runHostile(opts: HostileOptions): Promise<HostileReport> {
  const say = opts.progress ?? (() => {});
  const children = new Children(opts.signal);
  const t0 = Date.now();
  try {
    if (readLabState(opts.prefix)) {
      say(`removing the lab ${opts.prefix} an earlier run left`);
      await labDown(opts.prefix);
    }
    say(`building lab ${opts.prefix} (backend ${opts.backend})`);
    const state = await labUp({ nodes: 2, pods: 2, prefix: opts.prefix, backend: opts.backend, runtime: opts.runtime, pin: opts.pin, signal: opts.signal });
    const config = parseClusterConfig(readFileSync(join(labDir(opts.prefix), "cluster.yaml"), "utf8"));
    const pod = (name: string): LabPod => {
      const p = state.pods.find((x) => x.name === name);
      if (!p) throw new BenchError(`the lab has no pod ${name}`);
      return p;
    };
    const node1 = state.nodes[0];
    const attacker = pod("node1-pod2");
    const goodLocal = pod("node1-pod1");
    const goodRemote = pod("node2-pod1");
    const underlay = `${opts.prefix}-underlay`;
    const status0 = await labStatus(opts.prefix);
    if (!status0) throw new BenchError(`lab ${opts.prefix} has no journal`);
    const self = config.nodes.find((n) => n.name === node1.name)!;
    const gatewayMac = macOf((status0.switches[node1.name] as { node?: { gatewayMac?: string } }).node?.gatewayMac ?? macForIpv4(ipv4(node1.gateway)));
    const localPods = state.pods.filter((p) => p.node === node1.name);
    const tunnelTarget: TunnelTarget = {
      backend: config.backend.type as TunnelTarget["backend"], vni: config.backend.vni,
      address: self.address, vtepMac: macOf(self.vtepMac), gateway: ipv4(node1.gateway), podBase: self.podCidr.network,
      pods: localPods.map((p) => ({ ip: ipv4(p.ip), mac: macOf(p.mac) })),
      peers: config.nodes.filter((n) => n.name !== node1.name).map((n) => ({ address: n.address, vtepMac: macOf(n.vtepMac), podBase: n.podCidr.network })),
      stranger: ipv4("192.168.56.99"),
    };
    const podTarget: PodTarget = {
      self: { ip: ipv4(attacker.ip), mac: macOf(attacker.mac) },
      gateway: { ip: ipv4(node1.gateway), mac: gatewayMac },
      neighbours: localPods.filter((p) => p.name !== attacker.name).map((p) => ({ ip: ipv4(p.ip), mac: macOf(p.mac) })),
      remote: state.pods.filter((p) => p.node !== node1.name).map((p) => ipv4(p.ip)),
      nodeAddress: self.address, podBase: self.podCidr.network, mtu: config.podMtu,
    };
    const nodeMac = await linkMac(node1.netns, "eth0");

    say(`good traffic: ping and TCP from ${goodRemote.name} to ${goodLocal.name}`);
    const traffic = await startGoodTraffic(children, { client: goodRemote, server: goodLocal }, { port: IPERF_PORT, seconds: 86_400, tcpRate: opts.tcpRate, pingInterval: 0.05 });
    await sleep(2_000);
    const before = await labStatus(opts.prefix);
    if (!before) throw new BenchError("the lab's status is gone");
    const probesBefore = state.nodes.map((n) => probe(before, n.name));
    const udp0 = await udpCounters(node1.netns);
    const tap0 = await txDropped(attacker.netns, attacker.ifname);

    const { cmd, args } = scriptCommand(opts.runtime, SENDER);
    const jobs: SendJob[] = [
      { mode: "tunnel", device: "br0", count: opts.datagrams, seed: opts.seed, rate: opts.rate, dstMac: nodeMac, port: config.backend.port, target: tunnelTarget },
      { mode: "pod", device: attacker.ifname, count: opts.frames, seed: opts.seed + 1, rate: opts.rate, target: podTarget },
    ];
    say(`sending ${opts.datagrams} datagrams at ${node1.name} (${formatIpv4(self.address)}:${config.backend.port}) and ${opts.frames} frames from ${attacker.name}`);
    const sent = await Promise.all(jobs.map(async (job) => {
      const r = await children.run(job.mode === "tunnel" ? underlay : attacker.netns, cmd, [...args, JSON.stringify(job)], 3_600_000);
      if (r.code !== 0) throw new BenchError(`the ${job.mode} sender failed: ${(r.stderr || r.stdout).trim().slice(0, 500) || `exit status ${r.code}`}`);
      return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as SendResult;
    }));
    await sleep(2_000); // the switch drains its queues
    say("stopping the good traffic");
    const good = await traffic.stop();
    const after = await labStatus(opts.prefix).catch(() => undefined);
    const probesAfter = state.nodes.map((n) => probe(after, n.name));
    const udp1 = await udpCounters(node1.netns);
    const tap1 = await txDropped(attacker.netns, attacker.ifname);

    say("pinging between the good pods, and to their gateway");
    const pingAfter = async (from: LabPod, to: string) => parsePing((await children.run(from.netns, "ping", ["-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", to], 30_000)).stdout);
    const afterPings = [
      { what: `${goodRemote.name} → ${goodLocal.name}`, ping: await pingAfter(goodRemote, goodLocal.ip) },
      { what: `${goodLocal.name} → gateway`, ping: await pingAfter(goodLocal, node1.gateway) },
    ];
    const switches = state.nodes.map((n, i) => ({ node: n.name, before: probesBefore[i], after: probesAfter[i] }));
    const verdict = judgeHostile({ switches, tcp: good.tcp, after: afterPings });
    return {
      date: new Date().toISOString(), command: opts.command,
      lab: { prefix: opts.prefix, backend: config.backend.type, runtime: opts.runtime },
      roles: { node: node1.name, attacker: attacker.name, goodLocal: goodLocal.name, goodRemote: goodRemote.name },
      senders: { tunnel: sent[0], pod: sent[1] },
      kernel: { udpDelivered: udp1.delivered - udp0.delivered, udpBufferDrops: udp1.bufferDrops - udp0.bufferDrops, tapQueueDrops: tap1 - tap0 },
      switches, ping: good.ping, tcp: good.tcp, after: afterPings,
      counters: after ? counterDeltas(before, after) : [],
      verdict, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    children.killAll();
    if (!opts.keep && readLabState(opts.prefix)) {
      say(`removing lab ${opts.prefix}`);
      await labDown(opts.prefix).catch((e) => say(`could not remove lab ${opts.prefix}: ${(e as Error).message}`));
    }
  }
}


/**
 * One trace, start to end, for `tapnet trace` and the live page (`tapnet web`): arms a trace
 * filter (the protocol between the two addresses, the port, both ways) on every switch of the
 * cluster (the control socket's trace.set), sends the probes from inside the pod's namespace,
 * reads what each switch recorded (trace.read) until nothing new comes, disarms them whatever
 * happened, and puts the journey together (journey.ts).
 *
 * The filter matches by addresses, protocol and port: what the pod sends there at the same time
 * is traced too. `tapnet trace --follow` (no probe, real traffic) is follow.ts, which uses
 * nodeTrace from here.
 */
import { randomBytes } from "node:crypto";
import type { PodRecord } from "../../node/pod-record.ts";
import { inNetns } from "../../node/exec.ts";
import type { TraceRecord } from "../../switch/trace/tracer.ts";
import { callSwitch, type SwitchTarget } from "../commands/cluster-client.ts";
import { buildJourney, type Hop, type NodeTrace } from "./journey.ts";

export type TraceProto = "icmp" | "tcp" | "udp";
export type ClusterPod = PodRecord & { node: string };

export interface TraceRequest {
  from: ClusterPod;
  /** The destination address, and the pod that has it if one does. */
  toIp: string;
  toPod?: ClusterPod;
  proto: TraceProto;
  /** The destination port (tcp, udp); 0 for icmp. */
  port: number;
  /** Probes: 1 to 20. */
  count: number;
}

export interface TraceRun extends TraceRequest {
  /** What the probe printed (ping's summary, "connected", "sent"), or why it failed. */
  probeOutput: string;
  traces: NodeTrace[];
  hops: Hop[];
  /** The cluster's tunnel backend (tapnet, udp, vxlan) and its port when the switches say. */
  backend?: { type: string; port?: number };
}

interface Status {
  node: { name: string; gatewayMac?: string; backend?: string; backendPort?: number };
  nodes: { name: string }[];
  ports: { port: number; pod?: string; ifname: string; mac?: string; role?: string }[];
}

/** How long the switches' records must bring nothing new after the probes, and the most to wait for them, in ms. */
const SETTLE_MS = 300;
const MAX_WAIT_MS = 3_000;

/** Every pod of every switch, with its node. */
export async function clusterPods(targets: SwitchTarget[]): Promise<ClusterPod[]> {
  return (await Promise.all(targets.map(async (t) => (await callSwitch<PodRecord[]>(t, "pod.list", {}, "pods")).map((x) => ({ ...x, node: t.node }))))).flat();
}

/** A pod by name ("NAME" or "NAMESPACE/NAME"). */
export function findPod(pods: ClusterPod[], ref: string): ClusterPod | undefined {
  const [ns, name] = ref.includes("/") ? ref.split("/", 2) : [undefined, ref];
  return pods.find((p) => p.name === name && (ns === undefined || p.namespace === ns));
}

/**
 * Sends the probes from inside the pod's namespace: ping, or with bash's /dev/tcp and /dev/udp a
 * connection opened and closed, or a datagram. Returns what it printed, or why it failed.
 */
async function probe(netns: string, proto: TraceProto, ip: string, port: number, count: number): Promise<string> {
  if (proto === "icmp") return inNetns(netns, "ping", ["-c", String(count), "-i", "0.2", "-W", "2", "-n", ip]).catch((e: Error) => e.message);
  const one = proto === "tcp"
    ? `timeout 2 bash -c 'exec 3<>/dev/tcp/${ip}/${port}' 2>/dev/null && echo connected || echo refused`
    : `bash -c 'echo tapnet-trace > /dev/udp/${ip}/${port}' && echo sent`;
  const script = Array.from({ length: count }, () => one).join("; sleep 0.2; ");
  return inNetns(netns, "bash", ["-c", script]).catch((e: Error) => e.message);
}

/** What one switch recorded, read until a round brings nothing new (SETTLE_MS) or MAX_WAIT_MS passed. */
async function readSettled(targets: SwitchTarget[], session: string): Promise<Map<string, { records: TraceRecord[]; lost: number }>> {
  // Records come in as the switches see the packets: a reply later than the probe's own
  // timeout still arrives.
  const got = new Map<string, { records: TraceRecord[]; lost: number }>(targets.map((t) => [t.path, { records: [], lost: 0 }]));
  const t0 = Date.now();
  for (;;) {
    let fresh = 0;
    for (const t of targets) {
      const r = await callSwitch<{ records: TraceRecord[]; lost: number }>(t, "trace.read", { session }, "tracer");
      const acc = got.get(t.path)!;
      acc.records.push(...r.records);
      acc.lost += r.lost;
      fresh += r.records.length;
    }
    if ((fresh === 0 && Date.now() - t0 >= SETTLE_MS) || Date.now() - t0 >= MAX_WAIT_MS) return got;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A switch's records, with the names of its ports, nodes and MACs (and, apart, its tunnel backend). */
export async function nodeTrace(t: SwitchTarget, r: { records: TraceRecord[]; lost: number }): Promise<NodeTrace & { backend?: TraceRun["backend"] }> {
  const st = await callSwitch<Status>(t, "status", {}, "status");
  return {
    ...(st.node.backend ? { backend: { type: st.node.backend, ...(st.node.backendPort ? { port: st.node.backendPort } : {}) } } : {}),
    node: st.node.name, records: r.records, lost: r.lost, nodes: st.nodes.map((n) => n.name),
    ports: new Map(st.ports.map((x) => [x.port, x.pod ?? x.ifname])),
    macs: new Map([
      ...(st.node.gatewayMac ? [[st.node.gatewayMac, `${st.node.name}'s gateway, tapnet0`] as [string, string]] : []),
      ...st.ports.flatMap((x): [string, string][] => (x.mac && x.pod ? [[x.mac, x.pod]] : [])),
    ]),
  };
}

/**
 * To an address that is no pod's: what the sending node's own route to it leaves by
 * (trace.egress), the address its masquerade gives the packet if the address is beyond the
 * cluster. A switch that cannot say leaves the journey to say it in words.
 */
async function addEgress(targets: SwitchTarget[], traces: NodeTrace[], node: string, dst: string): Promise<void> {
  const t = targets.find((x) => x.node === node);
  const n = traces.find((x) => x.node === node);
  if (!t || !n) return;
  const eg = await callSwitch<{ source?: string; dev?: string }>(t, "trace.egress", { dst }, "tracer").catch(() => undefined);
  if (eg?.source) n.egress = new Map([[dst, { source: eg.source, ...(eg.dev ? { dev: eg.dev } : {}) }]]);
}

/**
 * A name for one trace's filters and records on the switches (node/trace-sessions.ts): traces at
 * once, from this machine or another, each see only their own.
 */
export function traceSession(): string {
  return `${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** Arms every switch, probes, reads, disarms (always), and builds the journey. */
export async function runTrace(targets: SwitchTarget[], req: TraceRequest): Promise<TraceRun> {
  const { from, toIp, proto, port, count } = req;
  // A ping is a request and a reply; a TCP probe up to a handshake and a close each way.
  // Room for more: a frame marked that is not the probe's must not leave the reply unmarked.
  const perProbe = proto === "tcp" ? 16 : 4;
  const filters = [{ id: 1, proto, src: from.ip, dst: toIp, ...(port ? { dport: port } : {}), bothWays: true, count: Math.min(1000, perProbe * count) }];
  const armed: SwitchTarget[] = [];
  const traces: (NodeTrace & { backend?: TraceRun["backend"] })[] = [];
  const session = traceSession();
  let probeOutput = "";
  try {
    for (const t of targets) {
      await callSwitch(t, "trace.set", { session, filters }, "tracer");
      armed.push(t);
    }
    probeOutput = await probe(from.netns, proto, toIp, port, count);
    const got = await readSettled(targets, session);
    for (const t of targets) traces.push(await nodeTrace(t, got.get(t.path)!));
  } finally {
    for (const t of armed) await callSwitch(t, "trace.set", { session, filters: [] }, "tracer").catch(() => {});
  }
  if (!req.toPod) await addEgress(targets, traces, from.node, toIp);
  const backend = traces.find((x) => x.backend)?.backend;
  return { ...req, probeOutput, traces, hops: buildJourney(traces), ...(backend ? { backend } : {}) };
}

/**
 * `tapnet trace --follow`: the journeys of real traffic, no probe sent. Arms a trace filter on
 * every switch (from the pod's address to the other address, or to any; the protocol if given;
 * the port at either end if given; both ways), reads what the switches record every 100 ms (the
 * tracer's ring holds 2048 records, about ten per frame), and stops when the sending pod's own
 * switch has marked `count` packets (and the others have had SETTLE_MS to record the last of
 * them), when `seconds` have passed, or when `signal` aborts (Ctrl-C). The switches are disarmed
 * whatever happened, then the journeys are put together (journey.ts).
 *
 * Which packets: every packet to or from the pod crosses its own switch, which marks each once.
 * So that switch is armed for exactly `count` frames, and the first `count` it marks are the
 * packets followed (its frame numbers run on one by one, so a frame merged away with no record
 * of its own still counts). The others are armed first, with room for more (up to OTHERS_MAX:
 * they mark on while the pod's switch is being armed, and a TCP transfer brings a few frames a
 * ms; a super-frame cut into segments on the way counts once per segment after the cut); what
 * they marked of other packets is left out: a frame is kept when its IPv4 addresses,
 * protocol and identification are those of a packet followed, or, for TCP, when its bytes lie
 * in one's. The switches are read every POLL_MS, and at about ten records a frame a ring of
 * 2048 records holds the 100 frames (MAX_FOLLOW) of the pod's switch, or the OTHERS_MAX of
 * another, even if a read comes late.
 */
import { Buffer } from "node:buffer";
import { MAX_TRACE_COUNT, type TraceRecord } from "../../switch/trace/tracer.ts";
import { callSwitch, type SwitchTarget } from "../commands/cluster-client.ts";
import { buildJourney, type NodeTrace } from "./journey.ts";
import { nodeTrace, traceSession, type ClusterPod, type TraceProto, type TraceRun } from "./run.ts";

export interface FollowRequest {
  from: ClusterPod;
  /** The other end's address (and its pod), or undefined for any address. */
  toIp?: string;
  toPod?: ClusterPod;
  /** undefined: any protocol. */
  proto?: TraceProto;
  /** A port at either end (tcp, udp); 0 for any. */
  port: number;
  /** Packets to follow, either way: 1 to MAX_FOLLOW. */
  count: number;
  /** The most to wait, in seconds. */
  seconds: number;
}

export interface FollowRun {
  traces: NodeTrace[];
  hops: TraceRun["hops"];
  /** Packets followed (the sending pod's switch's marked frames), and why it stopped. */
  packets: number;
  ended: "count" | "seconds" | "signal";
  /** ms from arming to disarming. */
  ms: number;
  backend?: TraceRun["backend"];
}

export const MAX_FOLLOW = 100;
/** The most frames the other switches may mark each. */
const OTHERS_MAX = 200;
/** How often the switches are read, how long after the last packet they may still record it, in ms. */
const POLL_MS = 100;
const SETTLE_MS = 500;

/** The filters as trace.set takes them: one, or with a port one for each end. */
export function followFilters(req: FollowRequest, count: number): Record<string, unknown>[] {
  const base = { proto: req.proto, src: req.from.ip, ...(req.toIp ? { dst: req.toIp } : {}), bothWays: true, count };
  if (!req.port) return [{ id: 1, ...base }];
  return [{ id: 1, ...base, dport: req.port }, { id: 2, ...base, sport: req.port }];
}

/** The packet a frame's first record shows: what follows it across switches. */
interface PacketKey {
  ends: string;
  id: number;
  /** TCP: the sequence numbers its bytes take, [seq, end). */
  seq?: number;
  end?: number;
}

function packetKey(r: TraceRecord): PacketKey | undefined {
  const b = Buffer.from(r.head, "hex");
  const ip = 10 + 14;
  if (b.length < ip + 20 || b.readUInt16BE(10 + 12) !== 0x0800) return undefined;
  const ihl = (b[ip] & 0x0f) * 4;
  const proto = b[ip + 9];
  const ends = `${b.readUInt32BE(ip + 12)}>${b.readUInt32BE(ip + 16)}/${proto}`;
  const l4 = ip + ihl;
  if (proto === 6 && b.length >= l4 + 14) {
    const seq = b.readUInt32BE(l4 + 4);
    const payload = r.len - l4 - (b[l4 + 12] >> 4) * 4;
    const ports = `:${b.readUInt16BE(l4)}>${b.readUInt16BE(l4 + 2)}`;
    return { ends: ends + ports, id: b.readUInt16BE(ip + 4), ...(payload > 0 ? { seq, end: seq + payload } : {}) };
  }
  return { ends, id: b.readUInt16BE(ip + 4) };
}

const samePacket = (a: PacketKey, b: PacketKey) =>
  a.ends === b.ends && (a.id === b.id || (a.seq !== undefined && b.seq !== undefined && a.seq < b.end! && b.seq < a.end!));

/** Each frame's records, by frame number, in the order first seen. */
function byFrame(records: TraceRecord[]): Map<number, TraceRecord[]> {
  const m = new Map<number, TraceRecord[]>();
  for (const r of records) m.set(r.frame, [...(m.get(r.frame) ?? []), r]);
  return m;
}

/**
 * One frame number per frame: a frame stays in the pipeline that marked it, so records of one
 * number from two pipelines are two frames (the tracer numbers frames by batch entry, one array
 * for both pipelines, and the receive pipeline, run in the middle of the ports pipeline, can
 * overwrite the number of a ports frame at the same entry). The later one becomes number + 0.5.
 */
export function splitByPipeline(records: TraceRecord[]): TraceRecord[] {
  const first = new Map<number, string>();
  return records.map((r) => {
    const p = first.get(r.frame);
    if (p === undefined) first.set(r.frame, r.pipeline);
    return p === undefined || p === r.pipeline ? r : { ...r, frame: r.frame + 0.5 };
  });
}

/**
 * The records of the packets followed: the home switch's first `count` frames, and the other
 * switches' frames of the same packets.
 */
export function keepFollowed(home: TraceRecord[], others: TraceRecord[][], count: number): { home: TraceRecord[]; others: TraceRecord[][]; packets: number } {
  const first = Math.min(...home.map((r) => r.frame));
  const frames = [...byFrame(home).entries()].filter(([n]) => n < first + count).sort((a, b) => a[0] - b[0]);
  const keys = frames.map(([, rs]) => packetKey(rs[0])).filter((k): k is PacketKey => k !== undefined);
  const kept = new Set(frames.map(([n]) => n));
  return {
    home: home.filter((r) => kept.has(r.frame)),
    others: others.map((recs) => {
      const ok = new Set<number>();
      for (const [n, rs] of byFrame(recs)) {
        const k = packetKey(rs[0]);
        if (k && keys.some((x) => samePacket(x, k))) ok.add(n);
      }
      return recs.filter((r) => ok.has(r.frame));
    }),
    packets: frames.length,
  };
}

/** How many frames a switch marked, as far as its records tell: numbers run on one by one, a frame may have none. */
function markedOn(records: TraceRecord[]): number {
  if (!records.length) return 0;
  const numbers = records.map((r) => r.frame);
  return Math.max(new Set(splitByPipeline(records).map((r) => r.frame)).size, Math.max(...numbers) - Math.min(...numbers) + 1);
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((res) => {
  if (signal.aborted) return res();
  const t = setTimeout(done, ms);
  function done() {
    clearTimeout(t);
    signal.removeEventListener("abort", done);
    res();
  }
  signal.addEventListener("abort", done, { once: true });
});

/** Arms every switch, reads until done, disarms (always), and builds the journeys. */
export async function followTrace(targets: SwitchTarget[], req: FollowRequest, signal: AbortSignal): Promise<FollowRun> {
  const home = targets.find((t) => t.node === req.from.node);
  if (!home) throw new Error(`the switch of ${req.from.node}, ${req.from.name}'s node, is not among those traced`);
  const got = new Map(targets.map((t) => [t.path, { records: [] as TraceRecord[], lost: 0 }]));
  const t0 = Date.now();
  let ended: FollowRun["ended"] = "seconds";
  let t1 = t0;
  const session = traceSession();
  try {
    // The others first, then the pod's own: every packet it marks finds them armed (what they
    // mark in between is what their room for more is for).
    const far = targets.filter((t) => t !== home);
    const results = await Promise.allSettled(far.map((t) => callSwitch(t, "trace.set", { session, filters: followFilters(req, Math.min(OTHERS_MAX, MAX_TRACE_COUNT, 16 * req.count + 16)) }, "tracer")));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    await callSwitch(home, "trace.set", { session, filters: followFilters(req, req.count) }, "tracer");
    let reachedAt = 0;
    for (;;) {
      for (const t of targets) {
        const r = await callSwitch<{ records: TraceRecord[]; lost: number }>(t, "trace.read", { session }, "tracer");
        const acc = got.get(t.path)!;
        acc.records.push(...r.records);
        acc.lost += r.lost;
      }
      const now = Date.now();
      if (!reachedAt && markedOn(got.get(home.path)!.records) >= req.count) reachedAt = now;
      if (reachedAt && now - reachedAt >= SETTLE_MS) { ended = "count"; break; }
      if (signal.aborted) { ended = "signal"; break; }
      if (now - t0 >= req.seconds * 1000) break;
      await sleep(POLL_MS, signal);
    }
  } finally {
    t1 = Date.now();
    // Every switch, even one whose trace.set failed: it may have armed before its answer was lost.
    await Promise.all(targets.map((t) => callSwitch(t, "trace.set", { session, filters: [] }, "tracer").catch(() => {})));
  }
  const others = targets.filter((t) => t !== home);
  const kept = keepFollowed(splitByPipeline(got.get(home.path)!.records), others.map((t) => splitByPipeline(got.get(t.path)!.records)), req.count);
  const traces = [];
  for (const t of targets) {
    const records = t === home ? kept.home : kept.others[others.indexOf(t)];
    traces.push(await nodeTrace(t, { records, lost: got.get(t.path)!.lost }));
  }
  const backend = traces.find((x) => x.backend)?.backend;
  return { traces, hops: buildJourney(traces), packets: kept.packets, ended, ms: t1 - t0, ...(backend ? { backend } : {}) };
}

/**
 * What the soak concludes from its samples (plain data in, plain data out), and the table a
 * person reads. The checks:
 *
 *   no crash          each switch has one pid (and start time) in every sample
 *   memory flat       each switch's resident memory has no upward trend once warmed up: the
 *                     Theil–Sen slope of its samples (the median of the slopes between every two
 *                     of them, which a garbage collector's saw-tooth or one odd sample does not
 *                     move), taken over the run's length, adds at most max(MEM_FLAT_KB,
 *                     MEM_FLAT_SHARE of the RSS). Judged on the samples after the first
 *                     WARMUP_SHARE of the run: in that time V8 compiles the churn's and the
 *                     control socket's code paths (a churn cycle comes every 3 s: heap snapshots
 *                     of a switch showed its code space growing for the first ~450 cycles while
 *                     its live objects stayed flat) and sizes its old generation to the load.
 *                     The trend over the whole run is reported beside it. A run under
 *                     MIN_MEMORY_MINUTES is not judged (the check says so and passes): a minute
 *                     cannot tell a trend from the collector's swings of 10 MB and more.
 *   fds flat          each switch's open file descriptors vary by at most FD_SLACK over the run
 *                     (after the first sample, as above); samples are taken between two churn
 *                     cycles, when no churn pod is attached
 *   no ping loss      beyond TCP's: no ping lost, or a share of pings lost no larger than the
 *                     share of TCP segments the stream had to send again (its retransmits over
 *                     its bytes / MSS): a ping may be lost to the congestion TCP repaired, no more
 *   TCP throughout    the stream ran the whole soak without an error or a stall over MAX_STALL_S
 *   churn             every churn pod was attached, answered a ping from the other node, and
 *                     was detached
 */
import type { Check } from "./hostile-report.ts";
import type { PingFigures, TcpFigures } from "./traffic.ts";

export const MEM_FLAT_KB = 4 * 1024;
export const MEM_FLAT_SHARE = 0.05;
export const MIN_MEMORY_MINUTES = 5;
/** The share of the run, from its start, that the memory check leaves out as warm-up. */
export const WARMUP_SHARE = 1 / 3;
export const FD_SLACK = 2;
export const MAX_STALL_S = 2;
/** TCP's payload per segment on a 1500-byte path. */
export const MSS = 1448;

export interface SoakSample {
  /** Seconds since the load began. */
  t: number;
  node: string;
  pid: number;
  start: number;
  rssKb: number;
  fds: number;
  /** What the JavaScript heaps of the switch's control and datapath threads hold (V8's committed size, from its status), when it said them. */
  heapKb?: { control: number; datapath: number };
}

export interface ChurnFigures {
  cycles: number;
  added: number;
  reached: number;
  deleted: number;
  /** The first few failures, in words. */
  failures: string[];
}

export interface SoakFacts {
  seconds: number;
  samples: SoakSample[];
  ping: PingFigures;
  tcp: TcpFigures;
  churn: ChurnFigures;
}

/** The median of the slopes between every two points (Theil–Sen); 0 with fewer than two. */
export function theilSen(points: { x: number; y: number }[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j].x - points[i].x;
      if (dx !== 0) slopes.push((points[j].y - points[i].y) / dx);
    }
  }
  if (slopes.length === 0) return 0;
  slopes.sort((a, b) => a - b);
  const m = slopes.length >> 1;
  return slopes.length % 2 ? slopes[m] : (slopes[m - 1] + slopes[m]) / 2;
}

export interface MemoryTrend {
  node: string;
  /** kB per minute after the warm-up, and that over the run's length. */
  slopeKbPerMin: number;
  trendKb: number;
  /** kB per minute over the whole run (the first sample left out): reported, not judged. */
  wholeKbPerMin: number;
  /** Where the judged samples start, in seconds. */
  judgedFrom: number;
  allowedKb: number;
  firstKb: number;
  lastKb: number;
}

/**
 * Each switch's memory trend over its samples after the warm-up (the first WARMUP_SHARE of the
 * run; the first sample is always left out, and at least two samples are judged).
 */
export function memoryTrends(samples: SoakSample[], seconds: number): MemoryTrend[] {
  const nodes = [...new Set(samples.map((s) => s.node))];
  const line = (xs: SoakSample[]) => theilSen(xs.map((s) => ({ x: s.t / 60, y: s.rssKb })));
  return nodes.map((node) => {
    const own = samples.filter((s) => s.node === node).sort((a, b) => a.t - b.t);
    const after = own.slice(1);
    const warm = after.filter((s) => s.t >= seconds * WARMUP_SHARE);
    const judged = warm.length >= 2 ? warm : after.slice(-2);
    const slope = line(judged);
    const firstKb = judged[0]?.rssKb ?? own[0]?.rssKb ?? 0;
    return {
      node, slopeKbPerMin: slope, trendKb: slope * (seconds / 60), wholeKbPerMin: line(after), judgedFrom: judged[0]?.t ?? 0,
      allowedKb: Math.max(MEM_FLAT_KB, MEM_FLAT_SHARE * firstKb), firstKb, lastKb: own[own.length - 1]?.rssKb ?? 0,
    };
  });
}

export function judgeSoak(f: SoakFacts): { pass: boolean; checks: Check[]; memory: MemoryTrend[] } {
  const nodes = [...new Set(f.samples.map((s) => s.node))];
  const byNode = (n: string) => f.samples.filter((s) => s.node === n).sort((a, b) => a.t - b.t);
  const crashed = nodes.filter((n) => new Set(byNode(n).map((s) => `${s.pid}/${s.start}`)).size !== 1 || byNode(n).some((s) => s.pid === 0));
  const memory = memoryTrends(f.samples, f.seconds);
  const grew = memory.filter((m) => m.trendKb > m.allowedKb);
  const short = f.seconds < MIN_MEMORY_MINUTES * 60;
  const fdRange = nodes.map((n) => {
    const fds = byNode(n).slice(1).map((s) => s.fds);
    return { n, min: Math.min(...fds), max: Math.max(...fds) };
  });
  const fdBad = fdRange.filter((r) => r.max - r.min > FD_SLACK);
  const segments = f.tcp.bytes / MSS;
  const tcpLoss = segments > 0 ? f.tcp.retransmits / segments : 0;
  const pingLoss = f.ping.sent > 0 ? f.ping.lost / f.ping.sent : 1;
  const pingOk = f.ping.sent > 0 && (f.ping.lost === 0 || pingLoss <= tcpLoss);
  const tcpOk = !f.tcp.error && f.tcp.maxStallSeconds <= MAX_STALL_S && f.tcp.seconds >= f.seconds * 0.9;
  const churnOk = f.churn.cycles > 0 && f.churn.added === f.churn.cycles && f.churn.reached === f.churn.cycles && f.churn.deleted === f.churn.cycles;
  const kb = (x: number) => `${x >= 0 ? "+" : ""}${Math.round(x)} kB`;
  const checks: Check[] = [
    { name: "no crash", pass: crashed.length === 0, detail: crashed.length ? `${crashed.join(", ")} changed pid or went away` : `every switch kept its pid through ${f.samples.length / Math.max(nodes.length, 1)} samples` },
    {
      name: "memory flat", pass: memory.length > 0 && (short || grew.length === 0),
      detail: (short ? `not judged: ${(f.seconds / 60).toFixed(1)} min is too short to tell a trend (at least ${MIN_MEMORY_MINUTES} min); ` : "") +
        memory.map((m) => `${m.node} ${kb(m.slopeKbPerMin)}/min from minute ${(m.judgedFrom / 60).toFixed(0)}, trend ${kb(m.trendKb)} over the run (allowed ${kb(m.allowedKb)}; ${mb(m.firstKb)} → ${mb(m.lastKb)} MB; whole run ${kb(m.wholeKbPerMin)}/min)`).join("; "),
    },
    { name: "fds flat", pass: fdBad.length === 0 && fdRange.length > 0, detail: fdRange.map((r) => `${r.n} ${r.min}..${r.max}`).join(", ") + ` (at most ${FD_SLACK} apart)` },
    {
      name: "no ping loss beyond TCP's", pass: pingOk,
      detail: `${f.ping.lost} of ${f.ping.sent} pings lost (${(pingLoss * 100).toFixed(3)} %); TCP resent ${f.tcp.retransmits} of ~${Math.round(segments)} segments (${(tcpLoss * 100).toFixed(3)} %)`,
    },
    {
      name: "TCP throughout", pass: tcpOk,
      detail: f.tcp.error ? `iperf3: ${f.tcp.error}` : `${f.tcp.gbps.toFixed(2)} Gbit/s for ${f.tcp.seconds.toFixed(0)} of ${f.seconds.toFixed(0)} s, ${(f.tcp.bytes / 1e9).toFixed(1)} GB, longest stall ${f.tcp.maxStallSeconds} s (at most ${MAX_STALL_S})`,
    },
    {
      name: "churn", pass: churnOk,
      detail: `${f.churn.cycles} cycles: ${f.churn.added} added, ${f.churn.reached} reached, ${f.churn.deleted} deleted${f.churn.failures.length ? `; ${f.churn.failures.join("; ")}` : ""}`,
    },
  ];
  return { pass: checks.every((c) => c.pass), checks, memory };
}

function mb(kb: number): string {
  return (kb / 1024).toFixed(1);
}

/** One row per sampling time: minutes, then each switch's RSS (MB), its threads' heaps (MB, control + datapath) when known, and fds. */
export function formatSamples(samples: SoakSample[]): string {
  const nodes = [...new Set(samples.map((s) => s.node))];
  const times = [...new Set(samples.map((s) => s.t))].sort((a, b) => a - b);
  const heaps = samples.some((s) => s.heapKb);
  const head = ["min".padStart(6), ...nodes.flatMap((n) => [`${n} RSS MB`.padStart(14), ...(heaps ? [`${n} heaps MB`.padStart(16)] : []), `${n} fds`.padStart(10)])];
  const lines = [head.join(" ")];
  for (const t of times) {
    const row = [(t / 60).toFixed(1).padStart(6)];
    for (const n of nodes) {
      const s = samples.find((x) => x.t === t && x.node === n);
      const heap = s?.heapKb ? `${mb(s.heapKb.control)} + ${mb(s.heapKb.datapath)}` : "-";
      row.push((s ? mb(s.rssKb) : "-").padStart(14), ...(heaps ? [heap.padStart(16)] : []), (s ? String(s.fds) : "-").padStart(10));
    }
    lines.push(row.join(" "));
  }
  return lines.join("\n");
}

/**
 * `tapnet bench`: the same two-node lab built several ways, measured side by side.
 *
 *   kernel-vxlan     plain Linux nodes, bridge + VXLAN as flannel's vxlan backend: the reference
 *   host-gw          plain Linux nodes routing pod CIDRs over the underlay, no encapsulation:
 *                    the ceiling
 *   tapnet-<backend> tapnet switches, one setup per key of BACKENDS (read at run time)
 *
 * Every setup is a lab (lab.ts) of 2 nodes with 2 pods each, under its own prefix, all built
 * before the first measurement and all removed at the end, by name, whatever happened. Each
 * round measures every setup in turn (A B C D A B C D ...), so that a machine that slows down
 * half way hurts all setups alike; each figure is reported as the median over rounds, its
 * spread (min..max), and its ratio to kernel-vxlan's median.
 *
 * A round of one setup, from node1-pod1 (the client) to node2-pod1 (across nodes) or to
 * node1-pod2 (same node):
 *   iperf3 TCP across nodes, 1 stream and -P 4; TCP same node, 1 stream;
 *   iperf3 UDP -b 0 with 1400 and 64-byte datagrams: packets per second delivered and loss;
 *   for 1400 B, the rate search below: packets per second delivered at ≤ 1% loss;
 *   sockperf ping-pong (UDP): round-trip p50 and p99;
 *   the switch processes' CPU time (utime + stime from /proc, per second of the round) and
 *   peak memory (VmHWM) per node; the kernel setups have no switch: n/a.
 *
 * The rate search (searchUdpRate). At full rate (-b 0) every path loses packets: the kernel's
 * VXLAN a few percent, a switch whose sender is not slowed by the path (tapnet's sender-side TAP
 * queue overflows) three quarters. So the figure asked for, "delivered at ≤ 1% loss", is searched
 * for with iperf3 -b (offered rate in payload bits/s = pps × 1400 × 8):
 *   - the full-rate run comes first (delivered D, loss L, sent S); if L ≤ 1% that is the answer
 *     and nothing is probed (the sender cannot offer more);
 *   - otherwise UDP_SEARCH_PROBES (3) probes, each `seconds` long, the same budget for every
 *     setup: the first offers D (what the path carried: its capacity estimate); after that, with
 *     ok the highest offered rate that passed and fail the lowest that failed (S to begin with):
 *     no pass yet: fail × 0.75; else min(ok × 1.2, (ok + fail) / 2), a step up that never
 *     reaches a rate known to fail. So a path that holds ≤ 1% up to C and is offered 4C at full
 *     rate gets C, 1.2C, 1.1C: the answer is within one step (×1.2, or ×0.75 below) of C;
 *   - the figure is the highest delivered rate among the probes with ≤ 1% loss. If none passed
 *     (the lowest offered is 0.56 D) it is 0: the path did not hold 1% at any rate tried, and a
 *     target on it fails rather than being judged on a rate with more loss;
 *   - the probes' iperf3 gets socket buffers of 4 MiB (-w; less if net.core.rmem_max or wmem_max
 *     is lower, as iperf3 refuses a buffer it cannot get): with the default 208 KB the receiving
 *     iperf3 itself drops datagrams (UdpRcvbufErrors in its pod) whenever it is descheduled for a
 *     few ms on a 2-core machine, at any rate: kernel VXLAN lost 3-6% at 21 kpps that way, and 0%
 *     at 21-45 kpps with 4 MiB. The probes measure the path, not the receiver's buffer. The
 *     full-rate runs keep iperf3's defaults, as before.
 * Every round's probes are kept in its RoundResult (udpSearch), so a figure can be traced to them.
 *
 * This module measures and summarises with plain objects; the command line prints them.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { formatTable } from "../node/table.ts";
import { BACKENDS, type BackendType } from "../node/config.ts";
import { run } from "../node/exec.ts";
import { labDown, labUp, readLabState, type LabMode, type LabState } from "../lab/lab.ts";

export class BenchError extends Error {}

export const REFERENCE = "kernel-vxlan";

export type FigureKey =
  | "tcp_cross_1" | "tcp_cross_4" | "tcp_same_1"
  | "udp1400_kpps" | "udp1400_loss" | "udp1400_kpps_1pct" | "udp64_kpps" | "udp64_loss"
  | "rtt_p50" | "rtt_p99" | "switch_cpu" | "switch_mem";

export interface FigureSpec {
  key: FigureKey;
  label: string;
  unit: string;
  better: "higher" | "lower";
}

export const FIGURES: FigureSpec[] = [
  { key: "tcp_cross_1", label: "TCP across nodes, 1 stream", unit: "Gbit/s", better: "higher" },
  { key: "tcp_cross_4", label: "TCP across nodes, 4 streams", unit: "Gbit/s", better: "higher" },
  { key: "tcp_same_1", label: "TCP same node, 1 stream", unit: "Gbit/s", better: "higher" },
  { key: "udp1400_kpps", label: "UDP 1400 B delivered", unit: "kpps", better: "higher" },
  { key: "udp1400_loss", label: "UDP 1400 B loss", unit: "%", better: "lower" },
  { key: "udp1400_kpps_1pct", label: "UDP 1400 B delivered at ≤ 1% loss", unit: "kpps", better: "higher" },
  { key: "udp64_kpps", label: "UDP 64 B delivered", unit: "kpps", better: "higher" },
  { key: "udp64_loss", label: "UDP 64 B loss", unit: "%", better: "lower" },
  { key: "rtt_p50", label: "ping-pong RTT p50", unit: "µs", better: "lower" },
  { key: "rtt_p99", label: "ping-pong RTT p99", unit: "µs", better: "lower" },
  { key: "switch_cpu", label: "switch CPU, both nodes", unit: "s/s", better: "lower" },
  { key: "switch_mem", label: "switch peak memory per node", unit: "MB", better: "lower" },
];

/** One setup's figures in one round; null where a figure does not apply (a kernel setup's switch). */
export type Figures = Record<FigureKey, number | null>;

export interface RoundResult {
  round: number;
  figures: Figures;
  /** The UDP 1400 B rate search: the full-rate run, then each probe (see searchUdpRate). */
  udpSearch?: UdpRateProbe[];
}

// ---------------------------------------------------------------- setups

/** Every setup, in order: the reference, the ceiling, then tapnet with each backend. */
export function allSetups(backends: readonly string[] = Object.keys(BACKENDS)): string[] {
  return [REFERENCE, "host-gw", ...backends.map((b) => `tapnet-${b}`)];
}

/** How a setup's lab is built. */
export function setupLab(setup: string, backends: readonly string[] = Object.keys(BACKENDS)): { mode: LabMode; backend: BackendType } {
  if (setup === REFERENCE) return { mode: "kernel-vxlan", backend: "vxlan" };
  if (setup === "host-gw") return { mode: "host-gw", backend: "vxlan" }; // unused: nothing is encapsulated
  const b = setup.startsWith("tapnet-") ? setup.slice("tapnet-".length) : "";
  if (!backends.includes(b)) throw new BenchError(`unknown setup "${setup}" (known: ${allSetups(backends).join(", ")})`);
  return { mode: "tapnet", backend: b as BackendType };
}

/** The lab prefix of a setup: short, as namespace names grow from it ("-node1-pod1"). */
export function setupPrefix(prefix: string, setup: string): string {
  const tag = setup === REFERENCE ? "kvxlan" : setup === "host-gw" ? "hostgw" : setup.slice("tapnet-".length);
  return `${prefix}-${tag}`;
}

/** A --setups list: names checked, duplicates dropped, in the order given. */
export function parseSetups(list: string, backends: readonly string[] = Object.keys(BACKENDS)): string[] {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (!names.length) throw new BenchError("--setups is empty");
  for (const n of names) setupLab(n, backends);
  return [...new Set(names)];
}

// ---------------------------------------------------------------- parsing tools' output

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number; seconds?: number; packets?: number; lost_packets?: number; lost_percent?: number };
    sum_sent?: { retransmits?: number };
  };
}

function parseIperf(json: string): IperfJson {
  let j: IperfJson;
  try {
    j = JSON.parse(json) as IperfJson;
  } catch {
    throw new BenchError(`iperf3 printed no JSON: ${json.trim().slice(0, 160)}`);
  }
  if (j.error) throw new BenchError(`iperf3: ${j.error}`);
  return j;
}

/** An iperf3 -J TCP client report: what the receiver got, in Gbit/s, and the sender's retransmits. */
export function parseIperfTcp(json: string): { gbps: number; retransmits: number } {
  const j = parseIperf(json);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number") throw new BenchError("iperf3's report has no end.sum_received.bits_per_second");
  return { gbps: bps / 1e9, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}

/**
 * An iperf3 -u -J client report: datagrams the receiver got per second, the loss, and datagrams
 * sent per second. In its sum_received, `packets` counts what was sent and `lost_packets` what
 * never arrived.
 */
export function parseIperfUdp(json: string): { pps: number; lossPercent: number; sentPps: number } {
  const j = parseIperf(json);
  const r = j.end?.sum_received;
  if (!r || typeof r.packets !== "number" || typeof r.seconds !== "number" || !(r.seconds > 0)) throw new BenchError("iperf3's report has no end.sum_received packet counts");
  const lost = r.lost_packets ?? 0;
  return { pps: (r.packets - lost) / r.seconds, lossPercent: r.lost_percent ?? (r.packets ? (100 * lost) / r.packets : 0), sentPps: r.packets / r.seconds };
}

/** `sockperf ping-pong` output: its percentile lines (µs; round trips with --full-rtt). */
export function parseSockperf(text: string): { p50: number; p99: number; observations: number } {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const pct = (p: string) => {
    const m = new RegExp(`percentile ${p.replace(".", "\\.")} =\\s*([\\d.]+)`).exec(plain);
    if (!m) throw new BenchError(`sockperf printed no ${p} percentile: ${plain.trim().split("\n").slice(-2).join("; ").slice(0, 200)}`);
    return Number(m[1]);
  };
  const obs = /Total (\d+) observations/.exec(plain);
  return { p50: pct("50.000"), p99: pct("99.000"), observations: obs ? Number(obs[1]) : 0 };
}

/** The offload features that matter for a fair comparison, as `ethtool -k` names them. */
export const OFFLOADS = ["tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"] as const;

/** `ethtool -k DEV` output: those of OFFLOADS that are not on ("off", or "off [fixed]"). */
export function offloadsOff(text: string): string[] {
  const off: string[] = [];
  for (const f of OFFLOADS) {
    const m = new RegExp(`^${f}: (.*)$`, "m").exec(text);
    if (m && !m[1].startsWith("on")) off.push(m[1].includes("fixed") ? `${f} (fixed)` : f);
  }
  return off;
}

// ---------------------------------------------------------------- the UDP rate search

/** How many offered rates the search probes after a full-rate run with more than 1% loss. */
export const UDP_SEARCH_PROBES = 3;

/**
 * The probes' socket buffer size (iperf3 -w, bytes): 4 MiB, or net.core.rmem_max / wmem_max if
 * lower (iperf3 fails when it cannot get the size asked for). `read` reads a /proc/sys file.
 */
export function probeSocketBuffer(read: (file: string) => string = (f) => readFileSync(f, "utf8")): number {
  let size = 4 * 1024 * 1024;
  for (const f of ["/proc/sys/net/core/rmem_max", "/proc/sys/net/core/wmem_max"]) {
    try {
      const v = Number(read(f).trim());
      if (Number.isInteger(v) && v > 0) size = Math.min(size, v);
    } catch { /* unreadable: iperf3 will say if the size is refused */ }
  }
  return size;
}

/** What one UDP run measured: delivered packets/s, loss, and (if known) packets/s sent. */
export interface UdpRun {
  pps: number;
  lossPercent: number;
  sentPps?: number;
}

/** One run of the search: the rate offered (packets/s; null for full rate, -b 0) and its result. */
export interface UdpRateProbe extends UdpRun {
  offeredPps: number | null;
}

export interface RateSearchOptions {
  /** Probes after the full-rate run (default UDP_SEARCH_PROBES). */
  probes?: number;
  /** The loss a rate may have and still count (default 1 %). */
  maxLossPercent?: number;
  /** Step up after a pass (default 1.2) and down after a failure with no pass yet (default 0.75). */
  up?: number;
  down?: number;
}

export interface RateSearchResult {
  /** The highest delivered packets/s of a run with loss ≤ maxLossPercent; 0 if none. */
  pps: number;
  /** The full-rate run first, then each probe in order. */
  probes: UdpRateProbe[];
}

/**
 * The highest rate a path delivers with at most 1% loss, from a full-rate run and at most
 * `probes` runs at offered rates (the module's header says how, and why). `probe(pps)` runs
 * the path at `pps` offered; pure otherwise.
 */
export async function searchUdpRate(full: UdpRun, probe: (offeredPps: number) => Promise<UdpRun>, opts: RateSearchOptions = {}): Promise<RateSearchResult> {
  const budget = opts.probes ?? UDP_SEARCH_PROBES;
  const maxLoss = opts.maxLossPercent ?? 1;
  const up = opts.up ?? 1.2;
  const down = opts.down ?? 0.75;
  const trail: UdpRateProbe[] = [{ offeredPps: null, ...full }];
  if (full.lossPercent <= maxLoss) return { pps: full.pps, probes: trail };
  let best = 0;
  let ok: number | null = null; // the highest offered rate that passed
  let fail = full.sentPps && full.sentPps > 0 ? full.sentPps : Infinity; // the lowest that failed
  let next = full.pps;
  for (let i = 0; i < budget && next > 0 && Number.isFinite(next); i++) {
    const r = await probe(next);
    trail.push({ offeredPps: next, ...r });
    if (r.lossPercent <= maxLoss) {
      best = Math.max(best, r.pps);
      ok = Math.max(ok ?? 0, next);
    } else {
      fail = Math.min(fail, next);
    }
    next = ok === null ? fail * down : Math.min(ok * up, (ok + fail) / 2);
  }
  return { pps: best, probes: trail };
}

// ---------------------------------------------------------------- statistics

export function median(xs: number[]): number {
  if (!xs.length) throw new BenchError("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface Summary {
  medians: Record<string, Record<FigureKey, number | null>>;
  spreads: Record<string, Record<FigureKey, [number, number] | null>>;
  /** median / the reference's median; null where either is missing or the reference's is 0. */
  ratios: Record<string, Record<FigureKey, number | null>>;
}

export function summarize(results: Record<string, RoundResult[]>, reference = REFERENCE): Summary {
  const out: Summary = { medians: {}, spreads: {}, ratios: {} };
  for (const [setup, rounds] of Object.entries(results)) {
    const med = {} as Record<FigureKey, number | null>;
    const spr = {} as Record<FigureKey, [number, number] | null>;
    for (const f of FIGURES) {
      const xs = rounds.map((r) => r.figures[f.key]).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
      med[f.key] = xs.length ? median(xs) : null;
      spr[f.key] = xs.length ? [Math.min(...xs), Math.max(...xs)] : null;
    }
    out.medians[setup] = med;
    out.spreads[setup] = spr;
  }
  const ref = out.medians[reference];
  for (const setup of Object.keys(results)) {
    const r = {} as Record<FigureKey, number | null>;
    for (const f of FIGURES) {
      const a = out.medians[setup][f.key];
      const b = ref?.[f.key];
      r[f.key] = a === null || b === null || b === undefined || b === 0 ? null : a / b;
    }
    out.ratios[setup] = r;
  }
  return out;
}

// ---------------------------------------------------------------- targets (issue 4)

export interface Target {
  figure: FigureKey;
  label: string;
  /** ratio-min: ratio ≥ n; ratio-max: ratio ≤ n; abs-max: the value itself ≤ n (in the figure's unit). */
  kind: "ratio-min" | "ratio-max" | "abs-max";
  target: number;
  floor: number;
}

export const TARGETS: Target[] = [
  { figure: "tcp_cross_1", label: "cross-node TCP, 1 stream", kind: "ratio-min", target: 1.0, floor: 0.6 },
  { figure: "tcp_cross_4", label: "cross-node TCP, 4 streams", kind: "ratio-min", target: 1.0, floor: 0.6 },
  { figure: "tcp_same_1", label: "same-node TCP (vs the kernel bridge)", kind: "ratio-min", target: 0.9, floor: 0.5 },
  { figure: "udp1400_kpps_1pct", label: "UDP 1400 B delivered pps, loss ≤ 1%", kind: "ratio-min", target: 1.0, floor: 0.5 },
  { figure: "rtt_p50", label: "ping-pong latency p50", kind: "ratio-max", target: 1.5, floor: 3 },
  { figure: "switch_mem", label: "switch peak memory per node", kind: "abs-max", target: 150, floor: 300 },
];

export interface TargetResult {
  label: string;
  /** "0.72×" or "84 MB", "n/a" when not measured. */
  value: string;
  target: string;
  floor: string;
  meetsTarget: boolean | null;
  meetsFloor: boolean | null;
}

export function evaluateTargets(s: Summary, setup: string): TargetResult[] {
  return TARGETS.map((t) => {
    const v = t.kind === "abs-max" ? s.medians[setup]?.[t.figure] ?? null : s.ratios[setup]?.[t.figure] ?? null;
    const cmp = t.kind === "ratio-min" ? "≥" : "≤";
    const show = (n: number) => (t.kind === "abs-max" ? `${n} MB` : `${n}×`);
    const meets = (limit: number) => (v === null ? null : t.kind === "ratio-min" ? v >= limit : v <= limit);
    return {
      label: t.label,
      value: v === null ? "n/a" : t.kind === "abs-max" ? `${fmtNumber(v)} MB` : `${v.toFixed(2)}×`,
      target: `${cmp} ${show(t.target)}`,
      floor: `${cmp} ${show(t.floor)}`,
      meetsTarget: meets(t.target),
      meetsFloor: meets(t.floor),
    };
  });
}

// ---------------------------------------------------------------- the report

export interface Machine {
  kernel: string;
  nproc: number;
  cpu: string;
  node: string;
  runtime: string;
}

export interface OffloadFinding {
  setup: string;
  netns: string;
  device: string;
  off: string[];
}

export interface BenchReport {
  date: string;
  command: string;
  machine: Machine;
  rounds: number;
  seconds: number;
  setups: string[];
  reference: string;
  offloads: OffloadFinding[];
  /** Measurements that failed; the command exits 1 if there are any. */
  failures: BenchFailure[];
  results: Record<string, RoundResult[]>;
  medians: Summary["medians"];
  spreads: Summary["spreads"];
  ratios: Summary["ratios"];
  /** The CPUs the tapnet switches' datapaths were pinned to, node by node; empty if they were not. */
  switchCpus: number[];
  /** The tapnet setup the targets are checked for, and the outcome; absent without it or the reference. */
  targets?: { setup: string; rows: TargetResult[] };
  durationSeconds: number;
}

export function machineInfo(): Machine {
  const cpus = os.cpus();
  const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  return {
    kernel: `${os.type()} ${os.release()}`,
    nproc: typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length,
    cpu: cpus[0]?.model?.trim() || "unknown",
    node: process.version,
    runtime: isDeno ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`,
  };
}

/** 3 significant digits, enough for figures that vary ±10% between runs. */
export function fmtNumber(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

export function formatCell(median: number | null, ratio: number | null, isReference: boolean): string {
  if (median === null) return "n/a";
  if (isReference || ratio === null) return fmtNumber(median);
  return `${fmtNumber(median)} (${ratio.toFixed(2)}×)`;
}

/** The plain-text report: machine, command, offloads, medians with ratios, spreads, targets. */
export function formatReport(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`tapnet bench, ${r.date}: ${r.rounds} round(s) of ${r.seconds} s per test, setups interleaved, ${Math.round(r.durationSeconds)} s in all`);
  lines.push(`machine: ${r.machine.kernel}, ${r.machine.nproc} CPUs (${r.machine.cpu}), ${r.machine.runtime}`);
  lines.push(`command: ${r.command}`);
  if (r.setups.some((s) => s.startsWith("tapnet-"))) {
    lines.push(r.switchCpus?.length
      ? `tapnet switches: each node's datapath pinned to a CPU of its own (${r.switchCpus.map((c, i) => `node${i + 1} on CPU ${c}`).join(", ")})`
      : "tapnet switches: datapaths not pinned (left to the scheduler)");
  }
  lines.push("");
  if (r.offloads.length) {
    // One line per set of features that are off, with how many devices of each setup: the
    // same default (veths' GRO) on every setup is one fact, not twenty. --json lists each device.
    lines.push("offloads not on (ethtool -k on the underlay veths and VXLAN devices):");
    const groups = new Map<string, OffloadFinding[]>();
    for (const o of r.offloads) groups.set(o.off.join(", "), [...(groups.get(o.off.join(", ")) ?? []), o]);
    for (const [features, found] of groups) {
      const perSetup = r.setups.map((s) => [s, found.filter((o) => o.setup === s).length] as const).filter(([, n]) => n > 0);
      lines.push(`  ${features}: ${perSetup.map(([s, n]) => `${s} ${n}`).join(", ")} device(s) (e.g. ${found[0].netns} ${found[0].device})`);
    }
  } else {
    lines.push("offloads: all of tx-checksumming, TSO, GSO and GRO are on for the underlay veths and VXLAN devices");
  }
  lines.push("");
  lines.push(`median over rounds (ratio to ${r.reference}'s median)`);
  const rows = FIGURES.map((f) => [`${f.label} (${f.unit}, ${f.better} is better)`, ...r.setups.map((s) => formatCell(r.medians[s]?.[f.key] ?? null, r.ratios[s]?.[f.key] ?? null, s === r.reference))]);
  lines.push(formatTable(["figure", ...r.setups], rows));
  lines.push("");
  lines.push("spread over rounds (min..max)");
  lines.push(formatTable(["figure", ...r.setups], FIGURES.map((f) => [f.label, ...r.setups.map((s) => {
    const sp = r.spreads[s]?.[f.key];
    return sp ? `${fmtNumber(sp[0])}..${fmtNumber(sp[1])}` : "n/a";
  })])));
  if (r.failures.length) {
    lines.push("");
    lines.push(`${r.failures.length} measurement(s) failed (their figures are left out):`);
    for (const x of r.failures) lines.push(`  round ${x.round}, ${x.setup}, ${x.test}: ${x.error}`);
  }
  if (r.targets) {
    lines.push("");
    lines.push(`targets (issue 4), for ${r.targets.setup}:`);
    const pf = (b: boolean | null) => (b === null ? "n/a" : b ? "pass" : "FAIL");
    lines.push(formatTable(["figure", "measured", "floor", "", "target", ""], r.targets.rows.map((t) =>
      [t.label, t.value, t.floor, pf(t.meetsFloor), t.target, pf(t.meetsTarget)])));
  } else {
    lines.push("");
    lines.push(`targets: not checked (they need ${r.reference} and a tapnet setup)`);
  }
  return lines.join("\n");
}

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac"];

/**
 * A horizontal bar chart of every figure's ratio to the reference, one bar per setup. Loss is
 * left to the table: a ratio to a loss near 0 says nothing. Bars past the axis are cut, with
 * their value written.
 */
export function renderSvg(r: BenchReport): string {
  const figures = FIGURES.filter((f) => !f.key.endsWith("_loss") && r.setups.some((s) => r.ratios[s]?.[f.key] != null));
  const setups = r.setups;
  const barH = 14, gap = 4, groupGap = 18, left = 290, chartW = 460, top = 70;
  const axisMax = Math.min(4, Math.max(2, Math.ceil(Math.max(0, ...setups.flatMap((s) => figures.map((f) => r.ratios[s]?.[f.key] ?? 0))) * 2) / 2));
  const scale = chartW / axisMax;
  const groupH = setups.length * (barH + gap) + groupGap;
  const height = top + figures.length * groupH + 30 + setups.length * 18;
  const width = left + chartW + 90;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">tapnet bench: each figure as a ratio to ${xml(r.reference)} (= 1)</text>`);
  out.push(`<text x="10" y="42" fill="#555">${xml(`${r.date}, ${r.machine.kernel}, ${r.machine.nproc} CPUs, ${r.rounds} round(s) of ${r.seconds} s; median of rounds; loss is in the table`)}</text>`);
  for (let x = 0; x <= axisMax + 1e-9; x += 0.5) {
    const px = left + x * scale;
    out.push(`<line x1="${px}" y1="${top - 8}" x2="${px}" y2="${top + figures.length * groupH - groupGap}" stroke="${x === 1 ? "#000" : "#ddd"}" stroke-width="${x === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${px}" y="${top - 12}" text-anchor="middle" fill="#555">${x}×</text>`);
  }
  figures.forEach((f, i) => {
    const y0 = top + i * groupH;
    out.push(`<text x="${left - 8}" y="${y0 + 12}" text-anchor="end" font-weight="bold">${xml(f.label)}</text>`);
    out.push(`<text x="${left - 8}" y="${y0 + 26}" text-anchor="end" fill="#777">${xml(`${f.unit}, ${f.better} is better`)}</text>`);
    setups.forEach((s, j) => {
      const ratio = r.ratios[s]?.[f.key];
      const y = y0 + j * (barH + gap);
      if (ratio == null) {
        out.push(`<text x="${left + 4}" y="${y + barH - 3}" fill="#999">n/a</text>`);
        return;
      }
      const w = Math.max(1, Math.min(ratio, axisMax) * scale);
      out.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[j % COLORS.length]}"><title>${xml(`${s}: ${fmtNumber(r.medians[s][f.key]!)} ${f.unit} (${ratio.toFixed(2)}×)`)}</title></rect>`);
      out.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 3}">${ratio > axisMax ? "» " : ""}${ratio.toFixed(2)}×</text>`);
    });
  });
  const ly = top + figures.length * groupH + 10;
  setups.forEach((s, j) => {
    out.push(`<rect x="${left}" y="${ly + j * 18}" width="12" height="12" fill="${COLORS[j % COLORS.length]}"/>`);
    out.push(`<text x="${left + 18}" y="${ly + j * 18 + 11}">${xml(s)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------- processes

const CLK_TCK = 100; // USER_HZ: what /proc/<pid>/stat counts in, on every Linux architecture tapnet runs on

/** `pid` and its descendants, from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const c of children.get(p) ?? []) walk(c); };
  if (existsSync(`/proc/${pid}`)) walk(pid);
  return out;
}

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
  } catch {
    return 0;
  }
}

/** VmHWM (peak resident set) in MB; 0 if the process is gone. */
export function peakMemoryMb(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------- running it

export interface BenchOptions {
  setups: string[];
  rounds: number;
  seconds: number;
  prefix: string;
  runtime: "node" | "deno";
  command: string;
  /** Pin each node's switch datapath to a CPU of its own (the lab's default); false leaves them unpinned. */
  pin?: boolean;
  /** The tapnet setup checked against the targets; default the first tapnet-* setup. */
  defaultSetup?: string;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

const IPERF_PORT = 5201;
const SOCKPERF_PORT = 11111;

class Runner {
  private children = new Set<ChildProcess>();
  constructor(private signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.killAll(), { once: true });
  }

  check(): void {
    if (this.signal?.aborted) throw new BenchError("interrupted");
  }

  /** Starts `cmd` in `netns`; it is killed by killAll. */
  start(netns: string, cmd: string, args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
    const child = spawn("ip", ["netns", "exec", netns, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      child.on("error", (e) => { stderr += e.message; });
      child.on("close", (code) => { this.children.delete(child); resolve({ code, stdout, stderr }); });
    });
    return { child, done };
  }

  /** Runs `cmd` in `netns` to completion, killed after `timeoutMs`. */
  async run(netns: string, cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
    this.check();
    const { child, done } = this.start(netns, cmd, args);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const r = await done;
    clearTimeout(timer);
    this.check();
    return r;
  }

  killAll(): void {
    for (const c of this.children) c.kill("SIGKILL");
  }

  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((r) => child.once("close", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 2_000);
    await closed;
    clearTimeout(t);
  }
}

interface Lab {
  setup: string;
  state: LabState;
  client: { netns: string };
  cross: { netns: string; ip: string };
  same: { netns: string; ip: string };
  switchPids: number[];
}

function labPods(setup: string, state: LabState): Lab {
  const pod = (name: string) => {
    const p = state.pods.find((x) => x.name === name);
    if (!p) throw new BenchError(`${setup}: the lab has no pod ${name}`);
    return p;
  };
  return {
    setup, state,
    client: pod("node1-pod1"),
    cross: pod("node2-pod1"),
    same: pod("node1-pod2"),
    switchPids: state.nodes.map((n) => n.pid).filter((p) => p > 0),
  };
}

/** One iperf3 test: a one-shot server in `server`, the client in the lab's client pod. */
async function iperf(runner: Runner, lab: Lab, server: { netns: string; ip: string }, seconds: number, extra: string[]): Promise<string> {
  const srv = runner.start(server.netns, "iperf3", ["-s", "-1", "-p", String(IPERF_PORT), "--idle-timeout", String(seconds + 20)]);
  try {
    let last = "";
    for (let attempt = 0; attempt < 50; attempt++) {
      const r = await runner.run(lab.client.netns, "iperf3", ["-c", server.ip, "-p", String(IPERF_PORT), "-t", String(seconds), "-J", "--connect-timeout", "2000", ...extra], (seconds + 30) * 1000);
      last = r.stdout || JSON.stringify({ error: r.stderr.trim() || `exit status ${r.code}` });
      let err = "";
      try { err = (JSON.parse(last) as IperfJson).error ?? ""; } catch { /* parsed below, with its message */ }
      if (!/refused/i.test(err)) return last; // refused: the server may not listen yet
      await new Promise((res) => setTimeout(res, 100));
    }
    return last;
  } finally {
    await runner.stop(srv.child);
  }
}

/** A measurement that failed: its figures are null in that round, and the bench exits 1 at the end. */
export interface BenchFailure {
  round: number;
  setup: string;
  test: string;
  error: string;
}

async function measure(runner: Runner, lab: Lab, round: number, seconds: number, step: (what: string) => void, failures: BenchFailure[]): Promise<{ figures: Figures; udpSearch?: UdpRateProbe[] }> {
  const f = Object.fromEntries(FIGURES.map((x) => [x.key, null])) as Figures;
  const cpu0 = lab.switchPids.map((p) => processTree(p).reduce((a, q) => a + cpuSeconds(q), 0));
  const t0 = Date.now();
  // One test failing (a tool's hiccup, a datapath that stalls) costs its figures, not the run.
  const test = async (what: string, body: () => Promise<void>) => {
    step(what);
    try {
      await body();
    } catch (e) {
      runner.check(); // an interruption is not a measurement's failure
      failures.push({ round, setup: lab.setup, test: what, error: (e as Error).message.split("\n")[0] });
    }
  };
  await test("TCP across nodes, 1 stream", async () => { f.tcp_cross_1 = parseIperfTcp(await iperf(runner, lab, lab.cross, seconds, [])).gbps; });
  await test("TCP across nodes, 4 streams", async () => { f.tcp_cross_4 = parseIperfTcp(await iperf(runner, lab, lab.cross, seconds, ["-P", "4"])).gbps; });
  await test("TCP same node, 1 stream", async () => { f.tcp_same_1 = parseIperfTcp(await iperf(runner, lab, lab.same, seconds, [])).gbps; });
  let full1400: UdpRun | undefined;
  let udpSearch: UdpRateProbe[] | undefined;
  await test("UDP 1400 B", async () => {
    full1400 = parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", "0", "-l", "1400"]));
    f.udp1400_kpps = full1400.pps / 1000;
    f.udp1400_loss = full1400.lossPercent;
  });
  if (full1400) {
    const full = full1400;
    await test("UDP 1400 B at ≤ 1% loss", async () => {
      let n = 0;
      const buffer = String(probeSocketBuffer());
      const found = await searchUdpRate(full, async (pps) => {
        step(`UDP 1400 B at ≤ 1% loss, probe ${++n}/${UDP_SEARCH_PROBES}: ${fmtNumber(pps / 1000)} kpps offered`);
        return parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", String(Math.round(pps * 1400 * 8)), "-l", "1400", "-w", buffer]));
      });
      udpSearch = found.probes;
      f.udp1400_kpps_1pct = found.pps / 1000;
    });
  }
  await test("UDP 64 B", async () => {
    const u = parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", "0", "-l", "64"]));
    f.udp64_kpps = u.pps / 1000;
    f.udp64_loss = u.lossPercent;
  });
  await test("ping-pong latency", async () => {
    const pp = await runner.run(lab.client.netns, "sockperf", ["ping-pong", "-i", lab.cross.ip, "-p", String(SOCKPERF_PORT), "-t", String(seconds), "--full-rtt"], (seconds + 30) * 1000);
    const lat = parseSockperf(pp.stdout + pp.stderr);
    f.rtt_p50 = lat.p50;
    f.rtt_p99 = lat.p99;
  });
  if (lab.switchPids.length) {
    const wall = (Date.now() - t0) / 1000;
    const cpu1 = lab.switchPids.map((p) => processTree(p).reduce((a, q) => a + cpuSeconds(q), 0));
    f.switch_cpu = cpu1.reduce((a, c, i) => a + (c - cpu0[i]), 0) / wall;
    f.switch_mem = Math.max(0, ...lab.switchPids.map((p) => processTree(p).reduce((a, q) => a + peakMemoryMb(q), 0)));
  }
  return { figures: f, ...(udpSearch ? { udpSearch } : {}) };
}

/** The underlay veths and the kernel's VXLAN devices of a lab, with offloads that are off. */
async function checkOffloads(setup: string, state: LabState): Promise<OffloadFinding[]> {
  const devices: { netns: string; device: string }[] = [];
  const underlay = state.namespaces.find((n) => n.endsWith("-underlay"));
  for (const n of state.nodes) {
    if (underlay) devices.push({ netns: underlay, device: n.name });
    devices.push({ netns: n.netns, device: "eth0" });
    if (n.pid === 0 && (state.mode ?? "tapnet") !== "host-gw") devices.push({ netns: n.netns, device: "flannel.1" });
  }
  const out: OffloadFinding[] = [];
  for (const d of devices) {
    const text = await run("ip", ["netns", "exec", d.netns, "ethtool", "-k", d.device]).catch((e) => { throw new BenchError(`ethtool -k ${d.device} in ${d.netns}: ${(e as Error).message}`); });
    const off = offloadsOff(text);
    if (off.length) out.push({ setup, netns: d.netns, device: d.device, off });
  }
  return out;
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const say = opts.progress ?? (() => {});
  const runner = new Runner(opts.signal);
  const t0 = Date.now();
  const prefixes = opts.setups.map((s) => setupPrefix(opts.prefix, s));
  const labs: Lab[] = [];
  const switchCpus: number[] = [];
  const servers: ChildProcess[] = [];
  try {
    for (const [i, setup] of opts.setups.entries()) {
      runner.check();
      const prefix = prefixes[i];
      if (readLabState(prefix)) {
        say(`${setup}: removing the lab ${prefix} an earlier bench left`);
        await labDown(prefix);
      }
      say(`${setup}: building lab ${prefix}`);
      const { mode, backend } = setupLab(setup);
      const state = await labUp({ mode, backend, nodes: 2, pods: 2, prefix, runtime: opts.runtime, pin: opts.pin, signal: opts.signal });
      const lab = labPods(setup, state);
      if (mode === "tapnet" && switchCpus.length === 0) switchCpus.push(...state.nodes.flatMap((n) => n.cpu === undefined ? [] : [n.cpu]));
      labs.push(lab);
      servers.push(runner.start(lab.cross.netns, "sockperf", ["server", "-i", lab.cross.ip, "-p", String(SOCKPERF_PORT)]).child);
    }
    say("checking offloads (ethtool -k)");
    const offloads: OffloadFinding[] = [];
    for (const lab of labs) offloads.push(...await checkOffloads(lab.setup, lab.state));
    await new Promise((r) => setTimeout(r, 300)); // the sockperf servers bind

    const results: Record<string, RoundResult[]> = Object.fromEntries(opts.setups.map((s) => [s, []]));
    const failures: BenchFailure[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const lab of labs) {
        const m = await measure(runner, lab, round, opts.seconds, (what) => say(`round ${round}/${opts.rounds}, ${lab.setup}: ${what}`), failures);
        results[lab.setup].push({ round, ...m });
      }
    }
    const summary = summarize(results);
    const tapnetSetup = opts.defaultSetup ?? opts.setups.find((s) => s.startsWith("tapnet-"));
    const targets = tapnetSetup && opts.setups.includes(REFERENCE) && opts.setups.includes(tapnetSetup)
      ? { setup: tapnetSetup, rows: evaluateTargets(summary, tapnetSetup) } : undefined;
    return {
      date: new Date().toISOString(), command: opts.command, machine: machineInfo(),
      rounds: opts.rounds, seconds: opts.seconds, setups: opts.setups, reference: REFERENCE,
      offloads, failures, results, ...summary, switchCpus, ...(targets ? { targets } : {}),
      durationSeconds: (Date.now() - t0) / 1000,
    };
  } finally {
    for (const s of servers) await runner.stop(s);
    runner.killAll();
    const failures: string[] = [];
    for (const prefix of prefixes) {
      if (!readLabState(prefix)) continue;
      say(`removing lab ${prefix}`);
      await labDown(prefix).catch((e) => failures.push((e as Error).message));
    }
    if (failures.length) say(`could not remove everything: ${failures.join("; ")}`);
  }
}

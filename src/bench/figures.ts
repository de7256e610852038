/**
 * What `tapnet bench` measures: the figures of one round (each with its unit and which way is
 * better), the reference setup every ratio is taken to, the bench's error, and how a figure
 * is written (3 significant digits).
 *
 * Each throughput test also gives its CPU cost (cpu.ts): the whole machine's busy time over the
 * test divided by what it delivered, in cores per Gbit/s, and the switches' part of it. The
 * ping-pong test also gives what each round trip cost the switches in scheduling: how often their
 * threads were woken (both nodes: a frame out and one in per node and direction would be 4), and
 * how long they waited, runnable, for a CPU.
 */
import type { UdpRateProbe } from "./rate-search.ts";

export class BenchError extends Error {}

export const REFERENCE = "kernel-vxlan";

export type FigureKey =
  | "tcp_cross_1" | "tcp_cross_4" | "tcp_same_1"
  | "udp1400_kpps" | "udp1400_loss" | "udp1400_kpps_1pct" | "udp64_kpps" | "udp64_loss"
  | "rtt_p50" | "rtt_p99" | "rtt_wakeups" | "rtt_wait" | "switch_cpu" | "switch_mem"
  | "cpu_tcp_cross_1" | "cpu_tcp_cross_4" | "cpu_tcp_same_1" | "cpu_udp1400"
  | "swcpu_tcp_cross_1" | "swcpu_tcp_cross_4" | "swcpu_tcp_same_1" | "swcpu_udp1400";

/** The unit of the CPU cost figures: CPU-seconds per second (busy cores) per Gbit/s delivered. */
export const CPU_UNIT = "cores per Gbit/s";

/** The throughput tests whose CPU cost is measured: the figure, its machine CPU figure, its switches' share. */
export const CPU_COSTS = [
  { test: "tcp_cross_1", machine: "cpu_tcp_cross_1", switches: "swcpu_tcp_cross_1" },
  { test: "tcp_cross_4", machine: "cpu_tcp_cross_4", switches: "swcpu_tcp_cross_4" },
  { test: "tcp_same_1", machine: "cpu_tcp_same_1", switches: "swcpu_tcp_same_1" },
  { test: "udp1400_kpps", machine: "cpu_udp1400", switches: "swcpu_udp1400" },
] as const satisfies readonly { test: FigureKey; machine: FigureKey; switches: FigureKey }[];

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
  { key: "rtt_wakeups", label: "switch wakeups per round trip", unit: "per round trip", better: "lower" },
  { key: "rtt_wait", label: "switch wait for a CPU per round trip", unit: "µs", better: "lower" },
  { key: "switch_cpu", label: "switch CPU, both nodes", unit: "s/s", better: "lower" },
  { key: "switch_mem", label: "switch peak memory per node", unit: "MB", better: "lower" },
  { key: "cpu_tcp_cross_1", label: "CPU per Gbit/s, TCP across nodes, 1 stream", unit: CPU_UNIT, better: "lower" },
  { key: "cpu_tcp_cross_4", label: "CPU per Gbit/s, TCP across nodes, 4 streams", unit: CPU_UNIT, better: "lower" },
  { key: "cpu_tcp_same_1", label: "CPU per Gbit/s, TCP same node", unit: CPU_UNIT, better: "lower" },
  { key: "cpu_udp1400", label: "CPU per Gbit/s, UDP 1400 B delivered", unit: CPU_UNIT, better: "lower" },
  { key: "swcpu_tcp_cross_1", label: "of which the switches, TCP across nodes, 1 stream", unit: CPU_UNIT, better: "lower" },
  { key: "swcpu_tcp_cross_4", label: "of which the switches, TCP across nodes, 4 streams", unit: CPU_UNIT, better: "lower" },
  { key: "swcpu_tcp_same_1", label: "of which the switches, TCP same node", unit: CPU_UNIT, better: "lower" },
  { key: "swcpu_udp1400", label: "of which the switches, UDP 1400 B delivered", unit: CPU_UNIT, better: "lower" },
];

/** One setup's figures in one round; null where a figure does not apply (a kernel setup's switch). */
export type Figures = Record<FigureKey, number | null>;

/**
 * One pair of short ping-pong runs, a +policy setup's and its twin's back to back (runner.ts's
 * pairedPingPong): round-trip percentiles in µs, and which of the two ran first.
 */
export interface PairedSlice {
  first: "self" | "twin";
  self: { p50: number; p99: number };
  twin: { p50: number; p99: number };
}

export interface RoundResult {
  round: number;
  figures: Figures;
  /** The UDP 1400 B rate search: the full-rate run, then each probe (see searchUdpRate). */
  udpSearch?: UdpRateProbe[];
  /** A +policy setup's ping-pong against its twin's in alternating slices (policy-compare.ts judges latency on these). */
  pairedLatency?: PairedSlice[];
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

/**
 * Issue 16's targets (which replaced issue 4's): for the default tapnet setup, each checked
 * figure's ratio to the reference (or, for memory, its value) against a floor and a target,
 * with the ceiling's (host-gw's) ratio beside it when it was measured.
 */
import { fmtNumber, type FigureKey } from "./figures.ts";
import type { Summary } from "./statistics.ts";

export interface Target {
  figure: FigureKey;
  label: string;
  /** ratio-min: ratio ≥ n; ratio-max: ratio ≤ n; abs-max: the value itself ≤ n (in the figure's unit). */
  kind: "ratio-min" | "ratio-max" | "abs-max";
  target: number;
  floor: number;
}

export const TARGETS: Target[] = [
  { figure: "tcp_cross_1", label: "cross-node TCP, 1 stream", kind: "ratio-min", target: 1.0, floor: 0.8 },
  { figure: "tcp_cross_4", label: "cross-node TCP, 4 streams", kind: "ratio-min", target: 1.0, floor: 0.8 },
  { figure: "tcp_same_1", label: "same-node TCP (vs the kernel bridge)", kind: "ratio-min", target: 1.0, floor: 0.9 },
  { figure: "udp1400_kpps_1pct", label: "UDP 1400 B delivered pps, loss ≤ 1%", kind: "ratio-min", target: 1.2, floor: 1.0 },
  { figure: "rtt_p50", label: "ping-pong latency p50", kind: "ratio-max", target: 1.2, floor: 1.8 },
  { figure: "cpu_tcp_cross_1", label: "CPU per Gbit/s, cross node, 1 stream", kind: "ratio-max", target: 1.0, floor: 1.5 },
  { figure: "cpu_tcp_cross_4", label: "CPU per Gbit/s, cross node, 4 streams", kind: "ratio-max", target: 1.0, floor: 1.5 },
  { figure: "switch_mem", label: "switch peak memory per node", kind: "abs-max", target: 100, floor: 150 },
];

/** The setup whose ratios are shown beside the targets as the ceiling. */
export const CEILING = "host-gw";

export interface TargetResult {
  label: string;
  /** "0.72×" or "84 MB", "n/a" when not measured. */
  value: string;
  /** The number behind `value` (a ratio, or MB), null when not measured. */
  measured: number | null;
  target: string;
  floor: string;
  meetsTarget: boolean | null;
  meetsFloor: boolean | null;
  /** The ceiling's ratio ("1.36×"), when it was measured and the row is a ratio; else null. */
  ceiling: string | null;
}

export function evaluateTargets(s: Summary, setup: string): TargetResult[] {
  const ceilingOf = (t: Target): string | null => {
    const c = t.kind === "abs-max" ? null : s.ratios[CEILING]?.[t.figure] ?? null;
    return c === null ? null : `${c.toFixed(2)}×`;
  };
  return TARGETS.map((t) => {
    const v = t.kind === "abs-max" ? s.medians[setup]?.[t.figure] ?? null : s.ratios[setup]?.[t.figure] ?? null;
    const cmp = t.kind === "ratio-min" ? "≥" : "≤";
    const show = (n: number) => (t.kind === "abs-max" ? `${n} MB` : `${n}×`);
    const meets = (limit: number) => (v === null ? null : t.kind === "ratio-min" ? v >= limit : v <= limit);
    return {
      label: t.label,
      value: v === null ? "n/a" : t.kind === "abs-max" ? `${fmtNumber(v)} MB` : `${v.toFixed(2)}×`,
      measured: v,
      target: `${cmp} ${show(t.target)}`,
      floor: `${cmp} ${show(t.floor)}`,
      meetsTarget: meets(t.target),
      meetsFloor: meets(t.floor),
      ceiling: ceilingOf(t),
    };
  });
}

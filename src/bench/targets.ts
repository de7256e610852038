/**
 * Issue 4's targets: for the default tapnet setup, each checked figure's ratio to the
 * reference (or, for memory, its value) against a floor and a target.
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

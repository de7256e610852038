/**
 * A +policy setup against its twin (setups.ts): the cost of the policy load, figure by figure.
 *
 * Both are measured in every round, one after the other, so each round gives a ratio (the
 * +policy setup's figure over the twin's in the same round): a machine that is slower in one
 * round slows both. A figure's comparison is the median of its rounds' ratios, with their
 * min..max. Loss is left out (a ratio of two losses near 0 says nothing).
 *
 * Latency is compared closer in time than that. On this kind of machine (a VM whose vCPUs the
 * host schedules) round trips switch between regimes for 10-30 s at a time: measured on
 * 2026-12-03, the kernel's own VXLAN went from 120 to 350 µs and back while nothing else ran,
 * and tapnet from 170 to 1,100 µs at the same moments. Two ping-pong runs a minute apart can
 * then differ 6× for no reason of theirs. So each round also runs short ping-pongs of the two
 * setups in alternating pairs (the runner's pairedPingPong, ABBA order), and a round's latency
 * ratio is the median over its pairs of (this setup's / the twin's in the same pair); the
 * rounds' separate ping-pong runs are the fallback when a round has no pairs.
 *
 * Issue 12 asks for cross-node TCP and ping-pong latency within 10 % of the setup without the
 * load: the judged figures pass when the load costs at most 10 % (a throughput's ratio ≥ 0.9,
 * a latency's ≤ 1.1). Like issue 4's targets, a miss is a result, not a failure of the bench.
 */
import { FIGURES, type FigureKey, type PairedSlice, type RoundResult } from "./figures.ts";
import { policyTwin } from "./setups.ts";
import { median } from "./statistics.ts";

/** How much worse the load may make a judged figure. */
export const POLICY_MAX_COST = 0.1;

/** The figures the issue judges: cross-node TCP and ping-pong latency. */
export const POLICY_JUDGED: FigureKey[] = ["tcp_cross_1", "tcp_cross_4", "rtt_p50"];

export interface PolicyRow {
  figure: FigureKey;
  /** Median over rounds of (this setup's figure / its twin's), null when no round has both. */
  ratio: number | null;
  spread: [number, number] | null;
  /** How many rounds gave a ratio. */
  rounds: number;
  /** The ratios come from paired slices (latency), not from the rounds' own runs. */
  paired?: true;
  judged: boolean;
  /** Judged figures only: within POLICY_MAX_COST (null when not measured). */
  pass: boolean | null;
}

export interface PolicyComparison {
  setup: string;
  twin: string;
  rows: PolicyRow[];
}

const COMPARED = FIGURES.filter((f) => !f.key.endsWith("_loss"));

/** The latency figures the paired slices give, and which percentile of a slice each is. */
const PAIRED: Partial<Record<FigureKey, "p50" | "p99">> = { rtt_p50: "p50", rtt_p99: "p99" };

/** A round's ratio from its paired slices: the median over pairs of self / twin; undefined if none is usable. */
export function pairedRatio(slices: PairedSlice[] | undefined, pct: "p50" | "p99"): number | undefined {
  const ratios = (slices ?? []).filter((s) => s.twin[pct] > 0 && Number.isFinite(s.self[pct])).map((s) => s.self[pct] / s.twin[pct]);
  return ratios.length ? median(ratios) : undefined;
}

/** Each +policy setup of `setups` whose twin was measured too, against it. */
export function comparePolicyLoad(setups: string[], results: Record<string, RoundResult[]>): PolicyComparison[] {
  const out: PolicyComparison[] = [];
  for (const setup of setups) {
    const twin = policyTwin(setup);
    if (twin === undefined || !setups.includes(twin)) continue;
    const theirs = new Map((results[twin] ?? []).map((r) => [r.round, r.figures]));
    const rows = COMPARED.map((f): PolicyRow => {
      const ratios: number[] = [];
      const pct = PAIRED[f.key];
      const paired = pct !== undefined && (results[setup] ?? []).some((r) => pairedRatio(r.pairedLatency, pct) !== undefined);
      for (const r of results[setup] ?? []) {
        if (paired) {
          const p = pairedRatio(r.pairedLatency, pct!);
          if (p !== undefined) ratios.push(p);
          continue;
        }
        const a = r.figures[f.key];
        const b = theirs.get(r.round)?.[f.key];
        if (typeof a === "number" && typeof b === "number" && Number.isFinite(a) && Number.isFinite(b) && b !== 0) ratios.push(a / b);
      }
      const ratio = ratios.length ? median(ratios) : null;
      const judged = POLICY_JUDGED.includes(f.key);
      const pass = !judged || ratio === null ? null : f.better === "higher" ? ratio >= 1 - POLICY_MAX_COST : ratio <= 1 + POLICY_MAX_COST;
      return { figure: f.key, ratio, spread: ratios.length ? [Math.min(...ratios), Math.max(...ratios)] : null, rounds: ratios.length, ...(paired ? { paired: true as const } : {}), judged, pass };
    });
    out.push({ setup, twin, rows });
  }
  return out;
}

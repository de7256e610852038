/**
 * A +policy setup against its twin (setups.ts): the cost of the policy load, figure by figure.
 *
 * Both are measured in every round, one after the other, so each round gives a ratio (the
 * +policy setup's figure over the twin's in the same round): a machine that is slower in one
 * round slows both. A figure's comparison is the median of its rounds' ratios, with their
 * min..max. Loss is left out (a ratio of two losses near 0 says nothing).
 *
 * Issue 12 asks for cross-node TCP and ping-pong latency within 10 % of the setup without the
 * load: the judged figures pass when the load costs at most 10 % (a throughput's ratio ≥ 0.9,
 * a latency's ≤ 1.1). Like issue 4's targets, a miss is a result, not a failure of the bench.
 */
import { FIGURES, type FigureKey, type RoundResult } from "./figures.ts";
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

/** Each +policy setup of `setups` whose twin was measured too, against it. */
export function comparePolicyLoad(setups: string[], results: Record<string, RoundResult[]>): PolicyComparison[] {
  const out: PolicyComparison[] = [];
  for (const setup of setups) {
    const twin = policyTwin(setup);
    if (twin === undefined || !setups.includes(twin)) continue;
    const theirs = new Map((results[twin] ?? []).map((r) => [r.round, r.figures]));
    const rows = COMPARED.map((f): PolicyRow => {
      const ratios: number[] = [];
      for (const r of results[setup] ?? []) {
        const a = r.figures[f.key];
        const b = theirs.get(r.round)?.[f.key];
        if (typeof a === "number" && typeof b === "number" && Number.isFinite(a) && Number.isFinite(b) && b !== 0) ratios.push(a / b);
      }
      const ratio = ratios.length ? median(ratios) : null;
      const judged = POLICY_JUDGED.includes(f.key);
      const pass = !judged || ratio === null ? null : f.better === "higher" ? ratio >= 1 - POLICY_MAX_COST : ratio <= 1 + POLICY_MAX_COST;
      return { figure: f.key, ratio, spread: ratios.length ? [Math.min(...ratios), Math.max(...ratios)] : null, rounds: ratios.length, judged, pass };
    });
    out.push({ setup, twin, rows });
  }
  return out;
}

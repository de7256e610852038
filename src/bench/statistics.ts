/**
 * The rounds summarised: each figure's median over rounds, its spread (min..max), and its
 * ratio to the reference setup's median.
 */
import { BenchError, FIGURES, REFERENCE, type FigureKey, type RoundResult } from "./figures.ts";

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

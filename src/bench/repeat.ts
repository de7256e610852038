/**
 * `tapnet bench --repeat N`: the whole bench (labs built, rounds, labs removed) run N times in a
 * row, so that a claim says how often it holds. What is reported of the N runs:
 *   - every ratio to the reference, per setup and figure: its spread over the runs (median,
 *     min, max of the runs' ratios), and the reference's own figure the same way, as it is the
 *     one that moves from day to day;
 *   - the targets: per row, how many of the N runs met the floor and the target. A row holds
 *     when it did in at least 80 % of the runs, rounded up (4 of 5, as issue 16 asks; 8 of 10,
 *     2 of 2, 1 of 1); a run where the figure is n/a counts as not met.
 * Each run's own report is kept whole (--json's `runs`). The arithmetic is plain functions of
 * the runs' reports; runRepeated runs them.
 */
import { formatTable } from "../node/table.ts";
import { FIGURES, fmtNumber, type FigureKey } from "./figures.ts";
import { cpuAndCeilingNotes, displayOrder, type BenchFailure, type BenchReport } from "./report.ts";
import { runBench, type BenchOptions } from "./runner.ts";
import { median } from "./statistics.ts";
import { TARGETS } from "./targets.ts";

/** The share of runs a target must hold in. */
export const HOLD_SHARE = 0.8;

/** How many of `runs` runs a target must hold in: 80 % of them, rounded up. */
export function neededRuns(runs: number): number {
  return Math.ceil(HOLD_SHARE * runs - 1e-9);
}

/** The spread of some runs' values: median, min and max of those that were measured, and how many. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many runs had the value. */
  n: number;
}

/** The spread of the measured values (finite numbers); null if none was. */
export function spreadOf(values: readonly (number | null | undefined)[]): Spread | null {
  const xs = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  if (!xs.length) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export interface RepeatTargetRow {
  label: string;
  kind: "ratio" | "MB";
  target: string;
  floor: string;
  /** The runs' measured values (ratios, or MB), null where a run had none. */
  values: (number | null)[];
  spread: Spread | null;
  floorHeld: number;
  targetHeld: number;
  /** Held in at least neededRuns(runs) of them. */
  meetsFloor: boolean;
  meetsTarget: boolean;
}

export interface RepeatSummary {
  /** How many runs a target must hold in (neededRuns). */
  needed: number;
  setups: string[];
  reference: string;
  /** Per setup and figure, the spread of its ratio to the reference over the runs. */
  ratios: Record<string, Record<FigureKey, Spread | null>>;
  /** The reference's own figures (each run's median) over the runs. */
  referenceFigures: Record<FigureKey, Spread | null>;
  /** Per setup and figure, its own figure (each run's median) over the runs: shown where the reference has none (a switch's). */
  figures: Record<string, Record<FigureKey, Spread | null>>;
  targets?: { setup: string; rows: RepeatTargetRow[] };
}

/** The N runs summarised; `runs` is not empty and all measured the same setups. */
export function summarizeRuns(runs: readonly BenchReport[]): RepeatSummary {
  const first = runs[0];
  const needed = neededRuns(runs.length);
  const ratios: RepeatSummary["ratios"] = {};
  const figures: RepeatSummary["figures"] = {};
  const own = (setup: string) => Object.fromEntries(FIGURES.map((f) => [f.key, spreadOf(runs.map((r) => r.medians[setup]?.[f.key]))])) as Record<FigureKey, Spread | null>;
  for (const s of first.setups) {
    ratios[s] = Object.fromEntries(FIGURES.map((f) => [f.key, spreadOf(runs.map((r) => r.ratios[s]?.[f.key]))])) as Record<FigureKey, Spread | null>;
    figures[s] = own(s);
  }
  const referenceFigures = own(first.reference);
  const summary: RepeatSummary = { needed, setups: first.setups, reference: first.reference, ratios, referenceFigures, figures };
  const setup = first.targets?.setup;
  if (setup) {
    summary.targets = {
      setup,
      rows: TARGETS.map((t, i) => {
        const rows = runs.map((r) => (r.targets?.setup === setup ? r.targets.rows[i] : undefined));
        const floorHeld = rows.filter((x) => x?.meetsFloor === true).length;
        const targetHeld = rows.filter((x) => x?.meetsTarget === true).length;
        const values = rows.map((x) => x?.measured ?? null);
        const shown = rows.find((x) => x !== undefined);
        return {
          label: t.label, kind: t.kind === "abs-max" ? "MB" : "ratio",
          target: shown?.target ?? String(t.target), floor: shown?.floor ?? String(t.floor),
          values, spread: spreadOf(values), floorHeld, targetHeld,
          meetsFloor: floorHeld >= needed, meetsTarget: targetHeld >= needed,
        };
      }),
    };
  }
  return summary;
}

/** What `--repeat N` returns: the summary, and every run's report whole. */
export interface RepeatReport extends RepeatSummary {
  date: string;
  command: string;
  repeat: number;
  /** Every run's report, whole, in the order they ran. */
  runs: BenchReport[];
  durationSeconds: number;
}

/** A ratio's spread as "0.46× (0.42..0.50)", a plain figure's as "9.35 (6.10..9.40)". */
export function formatSpread(s: Spread | null, ratio: boolean): string {
  if (!s) return "n/a";
  const f = ratio ? (x: number) => x.toFixed(2) : fmtNumber;
  return `${f(s.median)}${ratio ? "×" : ""} (${f(s.min)}..${f(s.max)})`;
}

/** The failed measurements of every run, one line each. */
function failureLines(runs: readonly BenchReport[]): string[] {
  const all: (BenchFailure & { run: number })[] = runs.flatMap((r, i) => r.failures.map((f) => ({ ...f, run: i + 1 })));
  if (!all.length) return [];
  return ["", `${all.length} measurement(s) failed (their figures are left out):`, ...all.map((x) => `  run ${x.run}, round ${x.round}, ${x.setup}, ${x.test}: ${x.error}`)];
}

export function formatRepeatReport(r: RepeatReport): string {
  const one = r.runs[0];
  const setups = displayOrder(r.setups, r.reference);
  const lines = [
    `tapnet bench, ${r.date}: the whole bench ${r.repeat} times (each ${one.rounds} round(s) of ${one.seconds} s per test), ${Math.round(r.durationSeconds)} s in all`,
    `machine: ${one.machine.kernel}, ${one.machine.nproc} CPUs (${one.machine.cpu}), ${one.machine.runtime}`,
    `command: ${r.command}`,
    "",
    ...cpuAndCeilingNotes(setups, r.reference),
    "",
    `each run's ratio to ${r.reference}, over the ${r.repeat} runs: median (min..max); ${r.reference}'s own figures the same way, and a figure ${r.reference} does not have (a switch's) as it is`,
    formatTable(["figure", ...setups], FIGURES.map((f) => [
      `${f.label} (${f.unit}, ${f.better} is better)`,
      ...setups.map((s) => (s === r.reference || !r.referenceFigures[f.key] ? formatSpread(r.figures[s]?.[f.key] ?? null, false) : formatSpread(r.ratios[s]?.[f.key] ?? null, true))),
    ])),
  ];
  lines.push(...failureLines(r.runs));
  lines.push("");
  if (r.targets) {
    lines.push(`targets (issue 16), for ${r.targets.setup}: each holds if met in at least ${r.needed} of ${r.repeat} runs (${Math.round(HOLD_SHARE * 100)} %, rounded up)`);
    const verdict = (held: number, ok: boolean) => `${held} of ${r.repeat}  ${ok ? "holds" : "FAILS"}`;
    lines.push(formatTable(["figure", "measured: median (min..max)", "floor", "", "target", ""], r.targets.rows.map((t) => [
      t.label,
      t.kind === "MB" ? (t.spread ? `${fmtNumber(t.spread.median)} MB (${fmtNumber(t.spread.min)}..${fmtNumber(t.spread.max)})` : "n/a") : formatSpread(t.spread, true),
      t.floor, verdict(t.floorHeld, t.meetsFloor), t.target, verdict(t.targetHeld, t.meetsTarget),
    ])));
  } else {
    lines.push(`targets: not checked (they need ${r.reference} and a tapnet setup)`);
  }
  lines.push("", "each run's own report (medians, spreads over rounds, offloads, the policy load): --json, in runs");
  return lines.join("\n");
}

/** Runs the whole bench `repeat` times, one after the other, and summarises the runs. */
export async function runRepeated(opts: BenchOptions, repeat: number): Promise<RepeatReport> {
  const t0 = Date.now();
  const runs: BenchReport[] = [];
  for (let i = 1; i <= repeat; i++) {
    const say = opts.progress;
    runs.push(await runBench({ ...opts, progress: say ? (line) => say(`run ${i}/${repeat}: ${line}`) : undefined }));
  }
  return {
    date: new Date().toISOString(), command: opts.command, repeat, ...summarizeRuns(runs), runs,
    durationSeconds: (Date.now() - t0) / 1000,
  };
}

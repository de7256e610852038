// tapnet bench --repeat N: spreads of ratios over runs, and how many runs met each target.
import { describe, expect, it } from "vitest";
import { FIGURES, type Figures } from "../../src/bench/figures.ts";
import { formatRepeatReport, neededRuns, spreadOf, summarizeRuns, type RepeatReport } from "../../src/bench/repeat.ts";
import type { BenchReport } from "../../src/bench/report.ts";
import { summarize } from "../../src/bench/statistics.ts";
import { evaluateTargets, TARGETS } from "../../src/bench/targets.ts";
import { figures, NO_SWITCH, report } from "./sample.ts";

/** One run of one round: kernel-vxlan at 10 (p50 100), host-gw at 15, tapnet-udp at 8 (90 MB), each with `over`. */
function run(tap: Partial<Figures> = {}, kernel: Partial<Figures> = {}): BenchReport {
  const results = {
    "kernel-vxlan": [{ round: 1, figures: figures(10, { rtt_p50: 100, ...NO_SWITCH, ...kernel }) }],
    "host-gw": [{ round: 1, figures: figures(15, { ...NO_SWITCH }) }],
    "tapnet-udp": [{ round: 1, figures: figures(8, { rtt_p50: 150, switch_mem: 90, ...tap }) }],
  };
  const s = summarize(results);
  return { ...report(), rounds: 1, setups: Object.keys(results), results, ...s, targets: { setup: "tapnet-udp", rows: evaluateTargets(s, "tapnet-udp") } };
}

function repeated(runs: BenchReport[]): RepeatReport {
  return { date: "2026-12-03T17:00:00.000Z", command: "tapnet bench --quick --repeat 5", repeat: runs.length, ...summarizeRuns(runs), runs, durationSeconds: 1500 };
}

let seed = 3;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };

describe("--repeat", () => {
  it("a target holds when met in at least 80 % of the runs, rounded up", () => {
    expect([1, 2, 3, 4, 5, 6, 9, 10, 20].map(neededRuns)).toEqual([1, 2, 3, 4, 4, 5, 8, 8, 16]);
  });

  it("a spread: median, min, max of the values measured, and how many", () => {
    expect(spreadOf([3, null, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spreadOf([4, 1])).toEqual({ median: 2.5, min: 1, max: 4, n: 2 });
    expect(spreadOf([null, undefined, Number.NaN])).toBeNull();
    expect(spreadOf([])).toBeNull();
  });

  it("randomized: spreads against a naive sort", () => {
    for (let trial = 0; trial < 1000; trial++) {
      const xs = Array.from({ length: 1 + rnd(9) }, () => (rnd(5) === 0 ? null : rnd(1000) / 100));
      const ok = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
      const s = spreadOf(xs);
      if (!ok.length) { expect(s).toBeNull(); continue; }
      const mid = ok.length % 2 ? ok[(ok.length - 1) / 2] : (ok[ok.length / 2 - 1] + ok[ok.length / 2]) / 2;
      expect(s).toEqual({ median: mid, min: ok[0], max: ok[ok.length - 1], n: ok.length });
    }
  });

  it("holds in 4 of 5: the floor met in 4 runs holds, the target met in none fails; n/a counts as not met", () => {
    const runs = [8.5, 9, 7, 8.2, 8.1].map((v) => run({ tcp_cross_1: v }));
    const s = summarizeRuns(runs);
    expect(s.needed).toBe(4);
    const row = s.targets!.rows[0];
    expect(row).toMatchObject({ label: "cross-node TCP, 1 stream", kind: "ratio", floor: "≥ 0.8×", target: "≥ 1×", floorHeld: 4, targetHeld: 0, meetsFloor: true, meetsTarget: false });
    expect(row.values.map((v) => v!.toFixed(2))).toEqual(["0.85", "0.90", "0.70", "0.82", "0.81"]);
    expect(row.spread).toMatchObject({ min: 0.7, max: 0.9, n: 5 });
    expect(row.spread!.median).toBeCloseTo(0.82, 12);
    // memory: 90 MB in each, the target (≤ 100) met 5 times
    expect(s.targets!.rows[7]).toMatchObject({ kind: "MB", floor: "≤ 150 MB", target: "≤ 100 MB", floorHeld: 5, targetHeld: 5, meetsTarget: true, spread: { median: 90, min: 90, max: 90, n: 5 } });
    // one run without the figure: 3 of 5, not enough
    const lost = [...runs.slice(0, 4), run({ tcp_cross_1: null })];
    expect(summarizeRuns(lost).targets!.rows[0]).toMatchObject({ floorHeld: 3, meetsFloor: false, spread: { n: 4 } });
  });

  it("ratios' spreads per setup, and the reference's own figures, which move from run to run", () => {
    const runs = [10, 6, 9].map((k, i) => run({ tcp_cross_1: [8, 6, 9][i] }, { tcp_cross_1: k }));
    const s = summarizeRuns(runs);
    expect(s.referenceFigures.tcp_cross_1).toEqual({ median: 9, min: 6, max: 10, n: 3 });
    expect(s.ratios["tapnet-udp"].tcp_cross_1).toEqual({ median: 1, min: 0.8, max: 1, n: 3 });
    expect(s.ratios["host-gw"].tcp_cross_1).toEqual({ median: 15 / 9, min: 1.5, max: 2.5, n: 3 });
    expect(s.ratios["tapnet-udp"].swcpu_tcp_cross_1).toBeNull(); // the kernel has no switch: no ratio
    // every setup's own figures, each run's median
    expect(s.figures["tapnet-udp"].tcp_cross_1).toEqual({ median: 8, min: 6, max: 9, n: 3 });
    expect(s.figures["tapnet-udp"].swcpu_tcp_cross_1).toEqual({ median: 8, min: 8, max: 8, n: 3 });
    expect(s.figures["kernel-vxlan"].swcpu_tcp_cross_1).toBeNull();
    expect(s.figures["kernel-vxlan"]).toEqual(s.referenceFigures);
  });

  it("randomized: each row's counts and verdicts against a naive count of the runs", () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + rnd(7);
      const runs = Array.from({ length: n }, () => run({
        tcp_cross_1: rnd(6) === 0 ? null : 6 + rnd(60) / 10,
        rtt_p50: 100 + rnd(120),
        cpu_tcp_cross_1: 5 + rnd(12),
        switch_mem: 60 + rnd(120),
      }));
      const s = summarizeRuns(runs);
      TARGETS.forEach((t, i) => {
        const vals = runs.map((r) => (t.kind === "abs-max" ? r.medians["tapnet-udp"][t.figure] : r.ratios["tapnet-udp"][t.figure]));
        const met = (limit: number) => vals.filter((v) => v !== null && (t.kind === "ratio-min" ? v >= limit : v <= limit)).length;
        const row = s.targets!.rows[i];
        expect(row.floorHeld).toBe(met(t.floor));
        expect(row.targetHeld).toBe(met(t.target));
        expect(row.meetsFloor).toBe(met(t.floor) * 5 >= n * 4);
        expect(row.meetsTarget).toBe(met(t.target) * 5 >= n * 4);
      });
    }
  });

  it("the text: the whole bench N times, ratio spreads with the ceiling beside the reference, targets held k of N", () => {
    const runs = [8.5, 9, 7, 8.2, 8.1].map((v) => run({ tcp_cross_1: v }));
    runs[2].failures = [{ round: 1, setup: "tapnet-udp", test: "UDP 64 B", error: "iperf3: the server has terminated" }];
    const lines = formatRepeatReport(repeated(runs)).split("\n");
    expect(lines[0]).toBe("tapnet bench, 2026-12-03T17:00:00.000Z: the whole bench 5 times (each 1 round(s) of 2 s per test), 1500 s in all");
    expect(lines[2]).toBe("command: tapnet bench --quick --repeat 5");
    expect(lines).toContain("the ceiling, host-gw (routed, no encapsulation), is beside kernel-vxlan in every table");
    const at = lines.indexOf("each run's ratio to kernel-vxlan, over the 5 runs: median (min..max); kernel-vxlan's own figures the same way, and a figure kernel-vxlan does not have (a switch's) as it is");
    expect(lines[at + 1].split(/\s{2,}/)).toEqual(["figure", "kernel-vxlan", "host-gw", "tapnet-udp"]);
    expect(lines[at + 2].split(/\s{2,}/)).toEqual(["TCP across nodes, 1 stream (Gbit/s, higher is better)", "10.0 (10.0..10.0)", "1.50× (1.50..1.50)", "0.82× (0.70..0.90)"]);
    // a switch's figure the reference has not: as it is, not as a ratio
    expect(lines[at + 1 + 1 + FIGURES.findIndex((f) => f.key === "rtt_wakeups")].split(/\s{2,}/)).toEqual(["switch wakeups per round trip (per round trip, lower is better)", "n/a", "n/a", "8.00 (8.00..8.00)"]);
    expect(lines).toContain("  run 3, round 1, tapnet-udp, UDP 64 B: iperf3: the server has terminated");
    const t = lines.indexOf("targets (issue 16), for tapnet-udp: each holds if met in at least 4 of 5 runs (80 %, rounded up)");
    expect(t).toBeGreaterThan(at);
    expect(lines[t + 2].split(/\s{2,}/)).toEqual(["cross-node TCP, 1 stream", "0.82× (0.70..0.90)", "≥ 0.8×", "4 of 5", "holds", "≥ 1×", "0 of 5", "FAILS"]);
    expect(lines.find((l) => l.startsWith("switch peak memory per node  "))!.split(/\s{2,}/)).toEqual(["switch peak memory per node", "90.0 MB (90.0..90.0)", "≤ 150 MB", "5 of 5", "holds", "≤ 100 MB", "5 of 5", "holds"]);
  });

  it("without targets, it says why", () => {
    const runs = [run(), run()].map((r) => { delete r.targets; return r; });
    expect(formatRepeatReport(repeated(runs))).toContain("targets: not checked (they need kernel-vxlan and a tapnet setup)");
  });
});

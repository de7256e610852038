// A +policy setup against its twin: each round's ratio, their median and spread, and the 10 % bound
// on cross-node TCP and latency.
import { describe, expect, it } from "vitest";
import type { PairedSlice, RoundResult } from "../../src/bench/figures.ts";
import { comparePolicyLoad, pairedRatio, POLICY_JUDGED } from "../../src/bench/policy-compare.ts";
import { figures } from "./sample.ts";

const rounds = (...fs: RoundResult["figures"][]): RoundResult[] => fs.map((f, i) => ({ round: i + 1, figures: f }));

describe("comparePolicyLoad", () => {
  it("takes each round's ratio to the twin's in the same round, and their median and spread", () => {
    // the machine is twice as fast in round 2: the ratio of medians would say 0.75, each round says 0.9 or 1
    const results = {
      "tapnet-udp": rounds(figures(10), figures(20), figures(10)),
      "tapnet-udp+policy": rounds(figures(9), figures(20), figures(9)),
    };
    const [c] = comparePolicyLoad(["tapnet-udp", "tapnet-udp+policy"], results);
    expect([c.setup, c.twin]).toEqual(["tapnet-udp+policy", "tapnet-udp"]);
    const tcp = c.rows.find((r) => r.figure === "tcp_cross_1")!;
    expect(tcp).toEqual({ figure: "tcp_cross_1", ratio: 0.9, spread: [0.9, 1], rounds: 3, judged: true, pass: true });
  });

  it("passes a throughput at ≥ 0.9× and a latency at ≤ 1.1×, and judges only cross-node TCP and p50", () => {
    const twin = rounds(figures(100));
    const judge = (v: number, key: "tcp_cross_1" | "rtt_p50") => comparePolicyLoad(["a", "a+policy"], { a: twin, "a+policy": rounds(figures(100, { [key]: v })) })[0].rows.find((r) => r.figure === key)!.pass;
    expect([judge(90, "tcp_cross_1"), judge(89, "tcp_cross_1"), judge(130, "tcp_cross_1")]).toEqual([true, false, true]);
    expect([judge(110, "rtt_p50"), judge(111, "rtt_p50"), judge(50, "rtt_p50")]).toEqual([true, false, true]);
    const [c] = comparePolicyLoad(["a", "a+policy"], { a: twin, "a+policy": rounds(figures(50)) });
    expect(c.rows.filter((r) => r.judged).map((r) => r.figure)).toEqual(POLICY_JUDGED);
    expect(c.rows.find((r) => r.figure === "tcp_same_1")).toMatchObject({ ratio: 0.5, judged: false, pass: null });
    expect(c.rows.map((r) => r.figure)).not.toContain("udp64_loss");
  });

  it("leaves out rounds where either figure is missing or the twin's is 0, and setups without their twin", () => {
    const results = {
      a: rounds(figures(10, { rtt_p50: null }), figures(0), figures(10)),
      "a+policy": rounds(figures(5, { tcp_cross_4: null }), figures(5), figures(8, { tcp_cross_4: null })),
    };
    const [c] = comparePolicyLoad(["a", "a+policy"], results);
    expect(c.rows.find((r) => r.figure === "tcp_cross_1")).toMatchObject({ ratio: 0.65, spread: [0.5, 0.8], rounds: 2 });
    expect(c.rows.find((r) => r.figure === "rtt_p50")).toMatchObject({ ratio: 0.8, rounds: 1 });
    expect(c.rows.find((r) => r.figure === "tcp_cross_4")).toMatchObject({ ratio: null, spread: null, rounds: 0, pass: null });
    expect(comparePolicyLoad(["a+policy"], results)).toEqual([]);
    expect(comparePolicyLoad(["a", "kernel-vxlan"], results)).toEqual([]);
  });

  it("judges latency on the paired slices when a round has them: the median over pairs of self / twin, per round", () => {
    const slice = (self: number, twin: number, first: PairedSlice["first"] = "twin"): PairedSlice => ({ first, self: { p50: self, p99: self * 3 }, twin: { p50: twin, p99: twin * 3 } });
    // The rounds' own runs caught the machine in different moods (1000 against 170 µs); the pairs did not.
    const results: Record<string, RoundResult[]> = {
      a: rounds(figures(10, { rtt_p50: 170 }), figures(10, { rtt_p50: 170 })),
      "a+policy": [
        { round: 1, figures: figures(10, { rtt_p50: 1000 }), pairedLatency: [slice(180, 170), slice(1100, 1000, "self"), slice(175, 180), slice(900, 170)] },
        { round: 2, figures: figures(10, { rtt_p50: 160 }), pairedLatency: [slice(200, 180), slice(190, 200, "self"), slice(170, 170)] },
      ],
    };
    const [c] = comparePolicyLoad(["a", "a+policy"], results);
    const p50 = c.rows.find((r) => r.figure === "rtt_p50")!;
    // round 1: ratios 1.0588, 1.1, 0.9722, 5.294 -> median 1.0794; round 2: 1.111, 0.95, 1 -> median 1
    expect(p50.paired).toBe(true);
    expect(p50.rounds).toBe(2);
    expect(p50.ratio).toBeCloseTo((1.0794 + 1) / 2, 3);
    expect(p50.spread![0]).toBeCloseTo(1, 6);
    expect(p50.spread![1]).toBeCloseTo((180 / 170 + 1.1) / 2, 6);
    expect(p50.pass).toBe(true);
    expect(c.rows.find((r) => r.figure === "rtt_p99")).toMatchObject({ paired: true, rounds: 2 });
    // Other figures keep the rounds' own runs.
    expect(c.rows.find((r) => r.figure === "tcp_cross_1")).toMatchObject({ ratio: 1, rounds: 2 });
    expect(c.rows.find((r) => r.figure === "tcp_cross_1")!.paired).toBeUndefined();
    // Without pairs the same results are judged on the rounds' runs, and fail.
    const unpaired = { a: results.a, "a+policy": results["a+policy"].map(({ pairedLatency: _, ...r }) => r) };
    expect(comparePolicyLoad(["a", "a+policy"], unpaired)[0].rows.find((r) => r.figure === "rtt_p50")).toMatchObject({ pass: false, rounds: 2 });
  });

  it("pairedRatio skips pairs with no twin figure and says undefined for none", () => {
    expect(pairedRatio(undefined, "p50")).toBeUndefined();
    expect(pairedRatio([], "p50")).toBeUndefined();
    expect(pairedRatio([{ first: "twin", self: { p50: 10, p99: 1 }, twin: { p50: 0, p99: 1 } }], "p50")).toBeUndefined();
    expect(pairedRatio([{ first: "twin", self: { p50: 10, p99: 1 }, twin: { p50: 0, p99: 1 } }, { first: "self", self: { p50: 30, p99: 1 }, twin: { p50: 20, p99: 1 } }], "p50")).toBe(1.5);
  });
});

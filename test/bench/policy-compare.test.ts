// A +policy setup against its twin: each round's ratio, their median and spread, and the 10 % bound
// on cross-node TCP and latency.
import { describe, expect, it } from "vitest";
import type { RoundResult } from "../../src/bench/figures.ts";
import { comparePolicyLoad, POLICY_JUDGED } from "../../src/bench/policy-compare.ts";
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
});

// tapnet bench's statistics: medians, spreads and ratios to the reference.
import { describe, expect, it } from "vitest";
import { BenchError, type RoundResult } from "../../src/bench/figures.ts";
import { median, summarize } from "../../src/bench/statistics.ts";
import { figures } from "./sample.ts";

describe("statistics", () => {
  it("median of odd and even counts, unsorted", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow(BenchError);
  });

  it("summarize: medians, spreads (min..max) and ratios to the reference's median", () => {
    const results: Record<string, RoundResult[]> = {
      "kernel-vxlan": [1, 2, 3].map((round, i) => ({ round, figures: figures([10, 12, 11][i], { switch_cpu: null, switch_mem: null }) })),
      "tapnet-udp": [1, 2, 3].map((round, i) => ({ round, figures: figures([5, 7, 6][i], { switch_mem: [100, 90, 95][i] }) })),
    };
    const s = summarize(results);
    expect(s.medians["kernel-vxlan"].tcp_cross_1).toBe(11);
    expect(s.spreads["kernel-vxlan"].tcp_cross_1).toEqual([10, 12]);
    expect(s.medians["kernel-vxlan"].switch_cpu).toBeNull();
    expect(s.spreads["kernel-vxlan"].switch_cpu).toBeNull();
    expect(s.medians["tapnet-udp"].tcp_cross_1).toBe(6);
    expect(s.ratios["tapnet-udp"].tcp_cross_1).toBeCloseTo(6 / 11, 12);
    expect(s.ratios["kernel-vxlan"].tcp_cross_1).toBe(1);
    expect(s.medians["tapnet-udp"].switch_mem).toBe(95);
    expect(s.ratios["tapnet-udp"].switch_mem).toBeNull(); // the kernel has no switch
  });

  it("a reference of 0, or none measured, gives no ratio", () => {
    const s = summarize({ "kernel-vxlan": [{ round: 1, figures: figures(0) }], "tapnet-udp": [{ round: 1, figures: figures(1) }] });
    expect(s.ratios["tapnet-udp"].udp64_loss).toBeNull();
    const t = summarize({ "tapnet-udp": [{ round: 1, figures: figures(1) }] });
    expect(t.ratios["tapnet-udp"].tcp_cross_1).toBeNull();
  });
});

// tapnet bench's UDP rate search, against fake paths of known capacity, and the probes' buffer.
import { describe, expect, it } from "vitest";
import { probeSocketBuffer, searchUdpRate, UDP_SEARCH_PROBES, type UdpRun } from "../../src/bench/rate-search.ts";

/**
 * A fake path for the rate search: it carries up to `capacity` packets/s and drops the excess (so
 * any offered rate above it loses more than 1%), and its full-rate run delivers `fullDelivered`
 * (by default the capacity) out of 4 × capacity sent, as a sender the path does not slow down.
 */
function fakePath(capacity: number, fullDelivered = capacity) {
  const offered: number[] = [];
  const run = (pps: number): UdpRun => {
    const got = Math.min(pps, capacity);
    return { pps: got, lossPercent: 100 * (1 - got / pps), sentPps: pps };
  };
  const fullSent = 4 * capacity;
  return {
    offered,
    full: { pps: fullDelivered, lossPercent: 100 * (1 - fullDelivered / fullSent), sentPps: fullSent },
    probe: async (pps: number) => { offered.push(pps); return run(pps); },
  };
}

describe("the UDP rate search", () => {
  it("a full-rate sender offering 4× capacity: probes the delivered rate, then steps up and bisects, and answers the capacity", async () => {
    const c = 30_000;
    const p = fakePath(c);
    const r = await searchUdpRate(p.full, p.probe);
    expect(p.offered.map((x) => x / c)).toEqual([1, 1.2, expect.closeTo(1.1, 9)]);
    expect(r.pps).toBe(c);
    expect(r.probes).toHaveLength(1 + UDP_SEARCH_PROBES);
    expect(r.probes[0]).toMatchObject({ offeredPps: null, pps: c, lossPercent: 75 });
    expect(r.probes.slice(1).map((x) => x.offeredPps)).toEqual(p.offered);
  });

  it("within one step of the capacity (×1.2 up, ×0.75 down) and within the probe budget, wherever the full-rate run lands", async () => {
    for (const c of [1_000, 27_500, 61_000]) {
      for (let k = 0.7; k <= 1.33; k += 0.01) {
        const p = fakePath(c, k * c);
        const r = await searchUdpRate(p.full, p.probe);
        const what = `capacity ${c}, full rate delivered ${k.toFixed(2)} × capacity`;
        expect(p.offered, what).toHaveLength(UDP_SEARCH_PROBES);
        expect(p.offered[0], what).toBe(k * c); // first the rate the path carried at full rate
        expect(r.pps, what).toBeLessThanOrEqual(c);
        expect(r.pps, what).toBeGreaterThanOrEqual(0.75 * c);
        if (k <= 1) expect(r.pps, what).toBeGreaterThanOrEqual(c / 1.2);
        // never again a rate at or above one that failed (the full rate's included)
        let lowestFail = p.full.sentPps;
        for (const x of r.probes.slice(1)) {
          expect(x.offeredPps!, what).toBeLessThan(lowestFail);
          if (x.lossPercent > 1) lowestFail = x.offeredPps!;
        }
      }
    }
  });

  it("already ≤ 1% at full rate: that is the answer, nothing is probed", async () => {
    let probed = 0;
    const probe = async () => { probed++; return { pps: 1, lossPercent: 0 }; };
    expect(await searchUdpRate({ pps: 41_000, lossPercent: 0.75, sentPps: 41_300 }, probe)).toEqual({ pps: 41_000, probes: [{ offeredPps: null, pps: 41_000, lossPercent: 0.75, sentPps: 41_300 }] });
    expect((await searchUdpRate({ pps: 41_000, lossPercent: 1 }, probe)).pps).toBe(41_000); // exactly 1% passes
    expect(probed).toBe(0);
  });

  it("never ≤ 1%: steps down ×0.75 for the whole budget and answers 0", async () => {
    const offered: number[] = [];
    const lossy = async (pps: number) => { offered.push(pps); return { pps: pps * 0.95, lossPercent: 5 }; };
    const r = await searchUdpRate({ pps: 40_000, lossPercent: 60, sentPps: 100_000 }, lossy);
    expect(offered).toEqual([40_000, 30_000, 22_500]);
    expect(r.pps).toBe(0);
    expect(r.probes).toHaveLength(4);
    const four: number[] = [];
    await searchUdpRate({ pps: 40_000, lossPercent: 60 }, async (pps) => { four.push(pps); return { pps, lossPercent: 2 }; }, { probes: 4 });
    expect(four).toEqual([40_000, 30_000, 22_500, 16_875]);
  });

  it("answers the highest delivered rate among the passing probes, not the highest offered or the last", async () => {
    // passes at 10k (delivering 9.9k) and 12k (delivering 11.5k), fails from 13k
    const probe = async (pps: number) => (pps < 11_000 ? { pps: pps * 0.99, lossPercent: 1 } : pps < 13_000 ? { pps: 11_500, lossPercent: 0.5 } : { pps: 12_000, lossPercent: 10 });
    const r = await searchUdpRate({ pps: 10_000, lossPercent: 50, sentPps: 20_000 }, probe);
    // 10k passes: ×1.2; 12k passes: min(12k × 1.2, (12k + 20k) / 2) = 14.4k, which fails
    expect(r.probes.slice(1).map((x) => x.offeredPps)).toEqual([10_000, expect.closeTo(12_000, 6), expect.closeTo(14_400, 6)]);
    expect(r.pps).toBe(11_500);
  });
});

describe("the probes' socket buffer", () => {
  it("4 MiB, or the lower of net.core.rmem_max and wmem_max; unreadable or garbage files are ignored", () => {
    const sys = (rmem: string, wmem: string) => (f: string) => {
      if (f.endsWith("rmem_max")) return rmem;
      if (f.endsWith("wmem_max")) return wmem;
      throw new Error(`unexpected ${f}`);
    };
    expect(probeSocketBuffer(sys("212992\n", "212992\n"))).toBe(212992);
    expect(probeSocketBuffer(sys("4194304\n", "1048576\n"))).toBe(1048576);
    expect(probeSocketBuffer(sys("16777216\n", "33554432\n"))).toBe(4194304);
    expect(probeSocketBuffer(sys("", "x"))).toBe(4194304);
    expect(probeSocketBuffer(() => { throw new Error("ENOENT"); })).toBe(4194304);
  });
});

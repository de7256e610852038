// The soak's verdict: a robust trend of each switch's memory, fds, ping loss against TCP's, the stream and the churn.
import { describe, expect, it } from "vitest";
import { prng } from "../support/random.ts";
import { FD_SLACK, formatSamples, judgeSoak, MAX_STALL_S, MEM_FLAT_KB, memoryTrends, MIN_MEMORY_MINUTES, MSS, theilSen, type SoakFacts, type SoakSample } from "../../src/bench/soak-report.ts";

describe("theilSen", () => {
  it("is the slope of a line, and an outlier or a saw-tooth does not move it", () => {
    const line = [0, 1, 2, 3, 4, 5].map((x) => ({ x, y: 3 * x + 7 }));
    expect(theilSen(line)).toBe(3);
    line[2].y = 1000;
    expect(theilSen(line)).toBe(3);
    const saw = Array.from({ length: 60 }, (_, x) => ({ x, y: 100 + (x % 3 === 0 ? 20 : 0) }));
    expect(theilSen(saw)).toBe(0);
    expect(theilSen([{ x: 1, y: 5 }])).toBe(0);
  });
});

/** Samples of node1 and node2 every minute for `minutes`, RSS from `rss(minute)`. */
function samples(minutes: number, rss: (m: number) => number, fds: (m: number) => number = () => 41): SoakSample[] {
  return Array.from({ length: minutes + 1 }, (_, m) => ["node1", "node2"].map((node) => ({ t: m * 60, node, pid: node === "node1" ? 10 : 20, start: 99, rssKb: rss(m), fds: fds(m) }))).flat();
}

function soak(o: Partial<SoakFacts> = {}): SoakFacts {
  return {
    seconds: 3600,
    samples: samples(60, () => 150_000),
    ping: { sent: 18000, received: 18000, lost: 0, lossPercent: 0 },
    tcp: { seconds: 3600, bytes: 1.9e12, gbps: 4.2, retransmits: 3000, maxStallSeconds: 0 },
    churn: { cycles: 1200, added: 1200, reached: 1200, deleted: 1200, failures: [] },
    ...o,
  };
}

const failed = (f: SoakFacts) => judgeSoak(f).checks.filter((c) => !c.pass).map((c) => c.name);

describe("judgeSoak", () => {
  it("passes a flat hour", () => {
    const v = judgeSoak(soak());
    expect(v.checks.map((c) => c.name)).toEqual(["no crash", "memory flat", "fds flat", "no ping loss beyond TCP's", "TCP throughout", "churn"]);
    expect(v.pass).toBe(true);
  });

  it("memory: a garbage collector's swings of ±15 MB pass, a leak of 200 kB a minute fails, the first sample does not count", () => {
    const rnd = prng(4);
    expect(failed(soak({ samples: samples(60, () => 150_000 + (rnd() - 0.5) * 30_000) }))).toEqual([]);
    expect(failed(soak({ samples: samples(60, (m) => 150_000 + 200 * m) }))).toEqual(["memory flat"]);
    expect(failed(soak({ samples: samples(60, (m) => (m === 0 ? 100_000 : 150_000)) }))).toEqual([]);
    const trend = memoryTrends(samples(60, (m) => 150_000 + 200 * m), 3600)[0];
    expect(trend.slopeKbPerMin).toBeCloseTo(200, 9);
    expect(trend.trendKb).toBeCloseTo(12_000, 6);
    expect(trend.allowedKb).toBe(Math.max(MEM_FLAT_KB, 0.05 * (150_000 + 200 * 20)));
    expect(trend.wholeKbPerMin).toBeCloseTo(200, 9);
    expect(trend.judgedFrom).toBe(20 * 60);
  });

  it("memory: a climb in the warm-up (the first third) then flat passes; a step or a climb after it fails", () => {
    const rnd = prng(7);
    const noise = () => (rnd() - 0.5) * 2_000;
    // V8 compiling and sizing its heaps: +15 MB over the first 20 minutes, then flat.
    const warm = samples(60, (m) => 140_000 + Math.min(m, 20) * 750 + noise());
    expect(failed(soak({ samples: warm }))).toEqual([]);
    expect(memoryTrends(warm, 3600)[0].wholeKbPerMin).toBeGreaterThan(100);
    // The 2026-12-03 run's shape: a step of 17 MB at minute 38.
    expect(failed(soak({ samples: samples(60, (m) => 143_000 + (m >= 38 ? 17_000 : 0) + noise()) }))).toEqual(["memory flat"]);
    // Flat through the warm-up, then a leak of 150 kB a minute.
    expect(failed(soak({ samples: samples(60, (m) => 150_000 + Math.max(0, m - 20) * 150 + noise()) }))).toEqual(["memory flat"]);
  });

  it("memory is not judged under MIN_MEMORY_MINUTES, and says so", () => {
    const short = soak({ seconds: (MIN_MEMORY_MINUTES - 1) * 60, samples: samples(MIN_MEMORY_MINUTES - 1, (m) => 150_000 + 50_000 * m), tcp: { ...soak().tcp, seconds: (MIN_MEMORY_MINUTES - 1) * 60 } });
    const c = judgeSoak(short).checks.find((x) => x.name === "memory flat")!;
    expect(c.pass).toBe(true);
    expect(c.detail).toMatch(/^not judged/);
  });

  it("fds: at most FD_SLACK apart after the first sample", () => {
    expect(failed(soak({ samples: samples(60, () => 150_000, (m) => (m === 0 ? 30 : 41 + (m % (FD_SLACK + 1)))) }))).toEqual([]);
    expect(failed(soak({ samples: samples(60, () => 150_000, (m) => 41 + (m > 30 ? FD_SLACK + 1 : 0)) }))).toEqual(["fds flat"]);
  });

  it("a pid or start time that changes, or a switch gone (pid 0), is a crash", () => {
    const s = samples(60, () => 150_000);
    s[50] = { ...s[50], start: 100 };
    expect(failed(soak({ samples: s }))).toEqual(["no crash"]);
    const g = samples(60, () => 150_000);
    g[51] = { ...g[51], pid: 0, rssKb: 0, fds: 0 };
    expect(failed(soak({ samples: g }))).toContain("no crash");
  });

  it("ping loss passes up to TCP's own share of resent segments, not beyond", () => {
    const tcp = { ...soak().tcp, retransmits: 10_000_000 };
    const tcpShare = tcp.retransmits / (tcp.bytes / MSS);
    const lost = Math.floor(18000 * tcpShare);
    expect(lost).toBeGreaterThan(100);
    expect(failed(soak({ tcp, ping: { sent: 18000, received: 18000 - lost, lost, lossPercent: 0 } }))).toEqual([]);
    expect(failed(soak({ tcp, ping: { sent: 18000, received: 17999 - lost, lost: lost + 1, lossPercent: 0 } }))).toEqual(["no ping loss beyond TCP's"]);
    expect(failed(soak({ ping: { sent: 100, received: 99, lost: 1, lossPercent: 1 }, tcp: { ...tcp, retransmits: 0 } }))).toEqual(["no ping loss beyond TCP's"]);
    expect(failed(soak({ ping: { sent: 0, received: 0, lost: 0, lossPercent: 0 } }))).toEqual(["no ping loss beyond TCP's"]);
  });

  it("TCP: an error, a stall over MAX_STALL_S or a stream that ended early fails; so does any churn cycle that did not go round", () => {
    const tcp = soak().tcp;
    expect(failed(soak({ tcp: { ...tcp, maxStallSeconds: MAX_STALL_S } }))).toEqual([]);
    expect(failed(soak({ tcp: { ...tcp, maxStallSeconds: MAX_STALL_S + 1 } }))).toEqual(["TCP throughout"]);
    expect(failed(soak({ tcp: { ...tcp, error: "connection reset" } }))).toEqual(["TCP throughout"]);
    expect(failed(soak({ tcp: { ...tcp, seconds: 1800 } }))).toEqual(["TCP throughout"]);
    const churn = soak().churn;
    expect(failed(soak({ churn: { ...churn, reached: 1199, failures: ["x did not answer"] } }))).toEqual(["churn"]);
    expect(failed(soak({ churn: { ...churn, deleted: 1199 } }))).toEqual(["churn"]);
    expect(failed(soak({ churn: { cycles: 0, added: 0, reached: 0, deleted: 0, failures: [] } }))).toEqual(["churn"]);
  });
});

describe("formatSamples", () => {
  it("one row per sampling time, each switch's RSS in MB and fds", () => {
    const text = formatSamples(samples(2, (m) => 102_400 + m * 1024));
    expect(text.split("\n")).toEqual([
      "   min   node1 RSS MB  node1 fds   node2 RSS MB  node2 fds",
      "   0.0          100.0         41          100.0         41",
      "   1.0          101.0         41          101.0         41",
      "   2.0          102.0         41          102.0         41",
    ]);
  });

  it("with the threads' heaps when the switches said them: control + datapath, in MB", () => {
    const s = samples(1, () => 102_400).map((x, i) => ({ ...x, heapKb: { control: 10_240 + i * 512, datapath: 6_144 } }));
    expect(formatSamples(s).split("\n")).toEqual([
      "   min   node1 RSS MB   node1 heaps MB  node1 fds   node2 RSS MB   node2 heaps MB  node2 fds",
      "   0.0          100.0       10.0 + 6.0         41          100.0       10.5 + 6.0         41",
      "   1.0          100.0       11.0 + 6.0         41          100.0       11.5 + 6.0         41",
    ]);
  });
});

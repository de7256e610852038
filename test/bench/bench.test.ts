// tapnet bench's parsing, statistics and rendering, from real captured tool output.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  allSetups, evaluateTargets, FIGURES, fmtNumber, formatCell, formatReport, median, offloadsOff, parseIperfTcp, parseIperfUdp,
  parseSetups, parseSockperf, probeSocketBuffer, renderSvg, searchUdpRate, setupLab, setupPrefix, summarize, BenchError, UDP_SEARCH_PROBES,
  type BenchReport, type Figures, type RoundResult, type UdpRun,
} from "../../src/bench/bench.ts";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

/** Figures with every value v, but the switch's n/a. */
function figures(v: number, over: Partial<Figures> = {}): Figures {
  const f = Object.fromEntries(FIGURES.map((x) => [x.key, v])) as Figures;
  return { ...f, ...over };
}

describe("setups", () => {
  it("are the reference, the ceiling, then one per backend, in BACKENDS order", () => {
    expect(allSetups(["udp", "vxlan"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-udp", "tapnet-vxlan"]);
    expect(allSetups(["fast", "udp"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-fast", "tapnet-udp"]);
  });

  it("map to a lab mode and backend", () => {
    expect(setupLab("kernel-vxlan")).toEqual({ mode: "kernel-vxlan", backend: "vxlan" });
    expect(setupLab("host-gw").mode).toBe("host-gw");
    expect(setupLab("tapnet-udp", ["udp", "vxlan"])).toEqual({ mode: "tapnet", backend: "udp" });
    expect(() => setupLab("tapnet-nope", ["udp"])).toThrow(/unknown setup "tapnet-nope" \(known: kernel-vxlan, host-gw, tapnet-udp\)/);
  });

  it("get short lab prefixes, and --setups is checked and deduplicated", () => {
    expect(setupPrefix("tapnet-bench", "kernel-vxlan")).toBe("tapnet-bench-kvxlan");
    expect(setupPrefix("tapnet-bench", "host-gw")).toBe("tapnet-bench-hostgw");
    expect(setupPrefix("tapnet-bench", "tapnet-vxlan")).toBe("tapnet-bench-vxlan");
    expect(parseSetups("kernel-vxlan, tapnet-udp,kernel-vxlan", ["udp"])).toEqual(["kernel-vxlan", "tapnet-udp"]);
    expect(() => parseSetups(",", ["udp"])).toThrow(BenchError);
    expect(() => parseSetups("kernel", ["udp"])).toThrow(/unknown setup "kernel"/);
  });
});

describe("parsing tools' output", () => {
  it("iperf3 TCP: the receiver's rate and the sender's retransmits", () => {
    const r = parseIperfTcp(fixture("iperf3-tcp.json"));
    expect(r.gbps).toBeCloseTo(12.9357740, 5);
    expect(r.retransmits).toBe(31);
  });

  it("iperf3 UDP: delivered packets per second and loss", () => {
    const r = parseIperfUdp(fixture("iperf3-udp.json"));
    // 30760 sent, 5474 lost, over 1.000439 s at the receiver
    expect(r.pps).toBeCloseTo((30760 - 5474) / 1.000439, 3);
    expect(r.lossPercent).toBeCloseTo(17.7958, 3);
    expect(r.sentPps).toBeCloseTo(30760 / 1.000439, 3);
  });

  it("iperf3 errors and garbage become one-line BenchErrors", () => {
    expect(() => parseIperfTcp(JSON.stringify({ error: "unable to connect to server: Connection refused" }))).toThrow("iperf3: unable to connect to server: Connection refused");
    expect(() => parseIperfTcp("iperf3: error - something")).toThrow(/iperf3 printed no JSON: iperf3: error - something/);
    expect(() => parseIperfUdp(JSON.stringify({ end: {} }))).toThrow(/no end.sum_received/);
  });

  it("sockperf ping-pong: p50 and p99 from its percentile lines, colour codes and all", () => {
    const text = fixture("sockperf-ping-pong.txt");
    expect(text).toContain("\x1b[");
    expect(parseSockperf(text)).toEqual({ p50: 18.554, p99: 90.358, observations: 24736 });
    expect(() => parseSockperf("sockperf: ERROR: no server")).toThrow(/sockperf printed no 50.000 percentile: sockperf: ERROR: no server/);
  });

  it("ethtool -k: the offloads that are not on", () => {
    const text = [
      "Features for eth0:", "rx-checksumming: on", "tx-checksumming: on", "\ttx-checksum-ipv4: off [fixed]",
      "scatter-gather: on", "tcp-segmentation-offload: off", "generic-segmentation-offload: on",
      "generic-receive-offload: off [fixed]", "large-receive-offload: off [fixed]",
    ].join("\n");
    expect(offloadsOff(text)).toEqual(["tcp-segmentation-offload", "generic-receive-offload (fixed)"]);
    expect(offloadsOff(text.replace(/: off( \[fixed\])?$/gm, ": on"))).toEqual([]);
  });
});

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

function report(): BenchReport {
  const results: Record<string, RoundResult[]> = {
    "kernel-vxlan": [{ round: 1, figures: figures(10, { rtt_p50: 50, switch_cpu: null, switch_mem: null }) }, { round: 2, figures: figures(12, { rtt_p50: 50, switch_cpu: null, switch_mem: null }) }],
    "host-gw": [{ round: 1, figures: figures(15, { switch_cpu: null, switch_mem: null }) }, { round: 2, figures: figures(15, { switch_cpu: null, switch_mem: null }) }],
    "tapnet-udp": [{ round: 1, figures: figures(6, { rtt_p50: 100, udp1400_loss: 30, udp1400_kpps_1pct: 4, switch_mem: 120 }) }, { round: 2, figures: figures(8, { rtt_p50: 200, udp1400_loss: 40, udp1400_kpps_1pct: 6, switch_mem: 140 }) }],
  };
  const s = summarize(results);
  return {
    date: "2026-11-23T04:00:00.000Z", command: "tapnet bench --quick",
    machine: { kernel: "Linux 6.18", nproc: 2, cpu: "AMD EPYC", node: "v20.20.2", runtime: "node v20.20.2" },
    rounds: 2, seconds: 2, setups: Object.keys(results), reference: "kernel-vxlan", offloads: [
      { setup: "kernel-vxlan", netns: "b-underlay", device: "node1", off: ["generic-receive-offload"] },
      { setup: "kernel-vxlan", netns: "b-underlay", device: "node2", off: ["generic-receive-offload"] },
      { setup: "tapnet-udp", netns: "b-underlay", device: "node1", off: ["generic-receive-offload"] },
      { setup: "tapnet-udp", netns: "b-node1", device: "eth0", off: ["tx-checksumming"] },
    ],
    failures: [], results, ...s, switchCpus: [0, 1], targets: { setup: "tapnet-udp", rows: evaluateTargets(s, "tapnet-udp") }, durationSeconds: 100,
  };
}

describe("targets", () => {
  it("compares the default backend's ratios (and memory in MB) with floor and target", () => {
    const rows = report().targets!.rows;
    const byLabel = Object.fromEntries(rows.map((r) => [r.label, r]));
    expect(rows.map((r) => r.label)).toEqual(["cross-node TCP, 1 stream", "cross-node TCP, 4 streams", "same-node TCP (vs the kernel bridge)", "UDP 1400 B delivered pps, loss ≤ 1%", "ping-pong latency p50", "switch peak memory per node"]);
    // 7 / 11 = 0.64: above the 0.6 floor, below the 1.0 target
    expect(byLabel["cross-node TCP, 1 stream"]).toMatchObject({ value: "0.64×", floor: "≥ 0.6×", target: "≥ 1×", meetsFloor: true, meetsTarget: false });
    // same node: 0.64 against ≥ 0.5 and ≥ 0.9
    expect(byLabel["same-node TCP (vs the kernel bridge)"]).toMatchObject({ meetsFloor: true, meetsTarget: false });
    // p50: 150 / 50 = 3.0: at the floor (≤ 3), over the target (≤ 1.5)
    expect(byLabel["ping-pong latency p50"]).toMatchObject({ value: "3.00×", floor: "≤ 3×", target: "≤ 1.5×", meetsFloor: true, meetsTarget: false });
    expect(byLabel["switch peak memory per node"]).toMatchObject({ value: "130 MB", floor: "≤ 300 MB", target: "≤ 150 MB", meetsFloor: true, meetsTarget: true });
    // judged on the rate found at ≤ 1% loss (0.45×), not the full-rate one (0.64×, at 35% loss)
    expect(byLabel["UDP 1400 B delivered pps, loss ≤ 1%"]).toMatchObject({ value: "0.45×", floor: "≥ 0.5×", target: "≥ 1×", meetsFloor: false, meetsTarget: false });
  });

  it("the UDP row passes on the ≤ 1% rate whatever the full-rate loss, and a search that found nothing fails it", () => {
    const run = (kpps1pct: number) => summarize({
      "kernel-vxlan": [{ round: 1, figures: figures(10, { udp1400_loss: 5, udp1400_kpps_1pct: 40 }) }],
      "tapnet-udp": [{ round: 1, figures: figures(10, { udp1400_loss: 75, udp1400_kpps_1pct: kpps1pct }) }],
    });
    const row = (kpps1pct: number) => evaluateTargets(run(kpps1pct), "tapnet-udp").find((r) => r.label.startsWith("UDP 1400 B"))!;
    expect(row(40)).toMatchObject({ value: "1.00×", meetsFloor: true, meetsTarget: true });
    expect(row(20)).toMatchObject({ value: "0.50×", meetsFloor: true, meetsTarget: false });
    expect(row(0)).toMatchObject({ value: "0.00×", meetsFloor: false, meetsTarget: false });
  });

  it("n/a when a figure was not measured", () => {
    const s = summarize({ "tapnet-udp": [{ round: 1, figures: figures(1, { switch_mem: null }) }] });
    const rows = evaluateTargets(s, "tapnet-udp");
    expect(rows[0]).toMatchObject({ value: "n/a", meetsFloor: null, meetsTarget: null });
    expect(rows[5]).toMatchObject({ value: "n/a", meetsFloor: null });
  });
});

describe("rendering", () => {
  it("numbers to 3 significant digits, cells as median (ratio×)", () => {
    expect([0, 0.0123, 1.234, 12.34, 123.4, 12345].map(fmtNumber)).toEqual(["0", "0.012", "1.23", "12.3", "123", "12345"]);
    expect(formatCell(7, 7 / 11, false)).toBe("7.00 (0.64×)");
    expect(formatCell(11, 1, true)).toBe("11.0");
    expect(formatCell(null, null, false)).toBe("n/a");
    expect(formatCell(5, null, false)).toBe("5.00");
  });

  it("the text report: machine, command, offloads, one column per setup, spreads, targets", () => {
    const text = formatReport(report());
    const lines = text.split("\n");
    expect(lines[0]).toBe("tapnet bench, 2026-11-23T04:00:00.000Z: 2 round(s) of 2 s per test, setups interleaved, 100 s in all");
    expect(lines[1]).toBe("machine: Linux 6.18, 2 CPUs (AMD EPYC), node v20.20.2");
    expect(lines[2]).toBe("command: tapnet bench --quick");
    expect(lines[3]).toBe("tapnet switches: each node's datapath pinned to a CPU of its own (node1 on CPU 0, node2 on CPU 1)");
    expect(text).toContain("  generic-receive-offload: kernel-vxlan 2, tapnet-udp 1 device(s) (e.g. b-underlay node1)\n  tx-checksumming: tapnet-udp 1 device(s) (e.g. b-node1 eth0)\n");
    const header = lines.find((l) => l.startsWith("figure") && l.includes("host-gw"))!;
    expect(header.split(/\s{2,}/)).toEqual(["figure", "kernel-vxlan", "host-gw", "tapnet-udp"]);
    const tcp1 = lines.find((l) => l.startsWith("TCP across nodes, 1 stream (Gbit/s"))!;
    expect(tcp1.split(/\s{2,}/)).toEqual(["TCP across nodes, 1 stream (Gbit/s, higher is better)", "11.0", "15.0 (1.36×)", "7.00 (0.64×)"]);
    const mem = lines.find((l) => l.startsWith("switch peak memory per node (MB"))!;
    expect(mem.split(/\s{2,}/)).toEqual(["switch peak memory per node (MB, lower is better)", "n/a", "n/a", "130"]);
    expect(lines.find((l) => l.startsWith("TCP across nodes, 1 stream  "))!.split(/\s{2,}/)).toEqual(["TCP across nodes, 1 stream", "10.0..12.0", "15.0..15.0", "6.00..8.00"]);
    expect(text).toContain("targets (issue 4), for tapnet-udp:");
    expect(lines.find((l) => l.startsWith("cross-node TCP, 1 stream"))!.split(/\s{2,}/)).toEqual(["cross-node TCP, 1 stream", "0.64×", "≥ 0.6×", "pass", "≥ 1×", "FAIL"]);
  });

  it("says when the switches were not pinned, and nothing of switches without a tapnet setup", () => {
    const r = report();
    r.switchCpus = [];
    expect(formatReport(r).split("\n")[3]).toBe("tapnet switches: datapaths not pinned (left to the scheduler)");
    r.setups = ["kernel-vxlan", "host-gw"];
    expect(formatReport(r)).not.toContain("tapnet switches");
  });

  it("lists failed measurements, one line each", () => {
    const r = report();
    r.failures = [{ round: 2, setup: "tapnet-udp", test: "UDP 64 B", error: "iperf3: the server has terminated" }];
    expect(formatReport(r)).toContain("\n1 measurement(s) failed (their figures are left out):\n  round 2, tapnet-udp, UDP 64 B: iperf3: the server has terminated\n");
    expect(formatReport(report())).not.toContain("failed");
  });

  it("without the reference or a tapnet setup, targets are not checked", () => {
    const r = report();
    delete r.targets;
    expect(formatReport(r)).toContain("targets: not checked (they need kernel-vxlan and a tapnet setup)");
  });

  it("the SVG: well-formed, one bar per setup and figure with a ratio, the 1× line, labels escaped", () => {
    const r = report();
    r.setups = [...r.setups];
    r.date = "A<B&C";
    const svg = renderSvg(r);
    expect(svg).toContain("A&lt;B&amp;C");
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    // figures with a ratio: all but the switch's two (the kernel has no switch) and the two losses
    const bars = svg.match(/<rect x="\d+" y="[\d.]+" width="[\d.]+" height="14"/g) ?? [];
    expect(bars).toHaveLength((FIGURES.length - 4) * 3);
    expect(svg).not.toContain("UDP 1400 B loss");
    expect(svg).toContain(">0.64×</text>");
    expect(svg).toContain("ratio to kernel-vxlan (= 1)");
    expect(svg).toContain('stroke="#000"'); // the 1× line
    expect(svg).not.toMatch(/<(?!\/?(svg|rect|text|line|title)\b)/); // only the elements it means to write
    // every tag opened is closed
    for (const tag of ["text", "title"]) expect((svg.match(new RegExp(`<${tag}[ >]`, "g")) ?? []).length).toBe((svg.match(new RegExp(`</${tag}>`, "g")) ?? []).length);
  });
});

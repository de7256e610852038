// tapnet bench's targets (issue 16): floors and targets for the default backend, with the ceiling beside them.
import { describe, expect, it } from "vitest";
import { summarize } from "../../src/bench/statistics.ts";
import { evaluateTargets, TARGETS } from "../../src/bench/targets.ts";
import { figures, NO_SWITCH, report } from "./sample.ts";

describe("targets", () => {
  it("issue 16's table: every row, its floor and target", () => {
    expect(TARGETS.map((t) => [t.figure, t.kind, t.floor, t.target])).toEqual([
      ["tcp_cross_1", "ratio-min", 0.8, 1.0],
      ["tcp_cross_4", "ratio-min", 0.8, 1.0],
      ["tcp_same_1", "ratio-min", 0.9, 1.0],
      ["udp1400_kpps_1pct", "ratio-min", 1.0, 1.2],
      ["rtt_p50", "ratio-max", 1.8, 1.2],
      ["cpu_tcp_cross_1", "ratio-max", 1.5, 1.0],
      ["cpu_tcp_cross_4", "ratio-max", 1.5, 1.0],
      ["switch_mem", "abs-max", 150, 100],
    ]);
  });

  it("compares the default backend's ratios (and memory in MB) with floor and target, host-gw's ratio beside", () => {
    const rows = report().targets!.rows;
    const byLabel = Object.fromEntries(rows.map((r) => [r.label, r]));
    expect(rows.map((r) => r.label)).toEqual([
      "cross-node TCP, 1 stream", "cross-node TCP, 4 streams", "same-node TCP (vs the kernel bridge)", "UDP 1400 B delivered pps, loss ≤ 1%",
      "ping-pong latency p50", "CPU per Gbit/s, cross node, 1 stream", "CPU per Gbit/s, cross node, 4 streams", "switch peak memory per node",
    ]);
    // 7 / 11 = 0.64: below the 0.8 floor and the 1.0 target; host-gw 15 / 11
    expect(byLabel["cross-node TCP, 1 stream"]).toMatchObject({ value: "0.64×", measured: 7 / 11, floor: "≥ 0.8×", target: "≥ 1×", meetsFloor: false, meetsTarget: false, ceiling: "1.36×" });
    expect(byLabel["same-node TCP (vs the kernel bridge)"]).toMatchObject({ floor: "≥ 0.9×", target: "≥ 1×", meetsFloor: false, meetsTarget: false });
    // p50: 150 / 50 = 3.0: over the floor (≤ 1.8) and the target (≤ 1.2)
    expect(byLabel["ping-pong latency p50"]).toMatchObject({ value: "3.00×", floor: "≤ 1.8×", target: "≤ 1.2×", meetsFloor: false, meetsTarget: false });
    // CPU per Gbit/s, 1 stream: 0.28 / 0.2 = 1.4: within the floor (≤ 1.5), over the target (≤ 1); host-gw 0.15 / 0.2
    expect(byLabel["CPU per Gbit/s, cross node, 1 stream"]).toMatchObject({ value: "1.40×", floor: "≤ 1.5×", target: "≤ 1×", meetsFloor: true, meetsTarget: false, ceiling: "0.75×" });
    // 4 streams: 0.2 / 0.1 = 2: over both
    expect(byLabel["CPU per Gbit/s, cross node, 4 streams"]).toMatchObject({ value: "2.00×", meetsFloor: false, meetsTarget: false, ceiling: "0.80×" });
    // memory is not a ratio: no ceiling
    expect(byLabel["switch peak memory per node"]).toMatchObject({ value: "130 MB", measured: 130, floor: "≤ 150 MB", target: "≤ 100 MB", meetsFloor: true, meetsTarget: false, ceiling: null });
    // judged on the rate found at ≤ 1% loss (0.45×), not the full-rate one (0.64×, at 35% loss)
    expect(byLabel["UDP 1400 B delivered pps, loss ≤ 1%"]).toMatchObject({ value: "0.45×", floor: "≥ 1×", target: "≥ 1.2×", meetsFloor: false, meetsTarget: false });
  });

  it("the limits themselves pass: ≥ and ≤ are inclusive", () => {
    const s = summarize({
      "kernel-vxlan": [{ round: 1, figures: figures(10, { rtt_p50: 100, cpu_tcp_cross_1: 0.2, ...NO_SWITCH }) }],
      "tapnet-udp": [{ round: 1, figures: figures(8, { rtt_p50: 180, cpu_tcp_cross_1: 0.3, switch_mem: 150 }) }],
    });
    const rows = evaluateTargets(s, "tapnet-udp");
    expect(rows[0]).toMatchObject({ value: "0.80×", meetsFloor: true, meetsTarget: false });
    expect(rows[4]).toMatchObject({ value: "1.80×", meetsFloor: true, meetsTarget: false });
    expect(rows[5]).toMatchObject({ value: "1.50×", meetsFloor: true, meetsTarget: false });
    expect(rows[7]).toMatchObject({ value: "150 MB", meetsFloor: true, meetsTarget: false });
    // no host-gw measured: no ceiling
    expect(rows.every((r) => r.ceiling === null)).toBe(true);
  });

  it("the UDP row passes on the ≤ 1% rate whatever the full-rate loss, and a search that found nothing fails it", () => {
    const run = (kpps1pct: number) => summarize({
      "kernel-vxlan": [{ round: 1, figures: figures(10, { udp1400_loss: 5, udp1400_kpps_1pct: 40 }) }],
      "tapnet-udp": [{ round: 1, figures: figures(10, { udp1400_loss: 75, udp1400_kpps_1pct: kpps1pct }) }],
    });
    const row = (kpps1pct: number) => evaluateTargets(run(kpps1pct), "tapnet-udp").find((r) => r.label.startsWith("UDP 1400 B"))!;
    expect(row(48)).toMatchObject({ value: "1.20×", meetsFloor: true, meetsTarget: true });
    expect(row(40)).toMatchObject({ value: "1.00×", meetsFloor: true, meetsTarget: false });
    expect(row(20)).toMatchObject({ value: "0.50×", meetsFloor: false, meetsTarget: false });
    expect(row(0)).toMatchObject({ value: "0.00×", meetsFloor: false, meetsTarget: false });
  });

  it("n/a when a figure was not measured", () => {
    const s = summarize({ "tapnet-udp": [{ round: 1, figures: figures(1, { switch_mem: null }) }] });
    const rows = evaluateTargets(s, "tapnet-udp");
    expect(rows[0]).toMatchObject({ value: "n/a", measured: null, meetsFloor: null, meetsTarget: null });
    expect(rows[7]).toMatchObject({ value: "n/a", meetsFloor: null });
  });
});

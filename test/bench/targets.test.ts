// tapnet bench's targets (issue 4): floors and targets for the default backend.
import { describe, expect, it } from "vitest";
import { summarize } from "../../src/bench/statistics.ts";
import { evaluateTargets } from "../../src/bench/targets.ts";
import { figures, report } from "./sample.ts";

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

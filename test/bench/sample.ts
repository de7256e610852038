// Sample figures and a sample report for the bench's statistics, targets and rendering tests.
import { FIGURES, type Figures, type RoundResult } from "../../src/bench/figures.ts";
import type { BenchReport } from "../../src/bench/report.ts";
import { summarize } from "../../src/bench/statistics.ts";
import { evaluateTargets } from "../../src/bench/targets.ts";

/** Figures with every value v, but the switch's n/a. */
export function figures(v: number, over: Partial<Figures> = {}): Figures {
  const f = Object.fromEntries(FIGURES.map((x) => [x.key, v])) as Figures;
  return { ...f, ...over };
}

/** The figures a setup without a switch (kernel-vxlan, host-gw) has none of. */
export const NO_SWITCH: Partial<Figures> = {
  rtt_wakeups: null, rtt_wait: null, switch_cpu: null, switch_mem: null, swcpu_tcp_cross_1: null, swcpu_tcp_cross_4: null, swcpu_tcp_same_1: null, swcpu_udp1400: null,
};

/**
 * Three setups over two rounds, with offloads and targets: what runBench would return. CPU per
 * Gbit/s across nodes (1 stream, 4 streams): kernel-vxlan 0.2 and 0.1, host-gw 0.15 and 0.08,
 * tapnet-udp 0.26..0.30 and 0.2 (of it the switches 0.1..0.12 for 1 stream).
 */
export function report(): BenchReport {
  const kcpu = { cpu_tcp_cross_1: 0.2, cpu_tcp_cross_4: 0.1 };
  const results: Record<string, RoundResult[]> = {
    "kernel-vxlan": [{ round: 1, figures: figures(10, { rtt_p50: 50, ...kcpu, ...NO_SWITCH }) }, { round: 2, figures: figures(12, { rtt_p50: 50, ...kcpu, ...NO_SWITCH }) }],
    "host-gw": [1, 2].map((round) => ({ round, figures: figures(15, { cpu_tcp_cross_1: 0.15, cpu_tcp_cross_4: 0.08, ...NO_SWITCH }) })),
    "tapnet-udp": [
      { round: 1, figures: figures(6, { rtt_p50: 100, udp1400_loss: 30, udp1400_kpps_1pct: 4, switch_mem: 120, cpu_tcp_cross_1: 0.26, cpu_tcp_cross_4: 0.2, swcpu_tcp_cross_1: 0.1 }) },
      { round: 2, figures: figures(8, { rtt_p50: 200, udp1400_loss: 40, udp1400_kpps_1pct: 6, switch_mem: 140, cpu_tcp_cross_1: 0.3, cpu_tcp_cross_4: 0.2, swcpu_tcp_cross_1: 0.12 }) },
    ],
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

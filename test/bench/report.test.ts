// tapnet bench's plain-text report.
import { describe, expect, it } from "vitest";
import { fmtNumber } from "../../src/bench/figures.ts";
import { comparePolicyLoad } from "../../src/bench/policy-compare.ts";
import { formatCell, formatReport } from "../../src/bench/report.ts";
import { summarize } from "../../src/bench/statistics.ts";
import { figures, report } from "./sample.ts";

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
    expect(text).toContain("targets (issue 16), for tapnet-udp:");
    const targetsAt = lines.indexOf("targets (issue 16), for tapnet-udp:");
    expect(lines[targetsAt + 1].split(/\s{2,}/)).toEqual(["figure", "measured", "floor", "target", "ceiling (host-gw)"]);
    expect(lines.find((l) => l.startsWith("cross-node TCP, 1 stream"))!.split(/\s{2,}/)).toEqual(["cross-node TCP, 1 stream", "0.64×", "≥ 0.8×", "FAIL", "≥ 1×", "FAIL", "1.36×"]);
    expect(lines.find((l) => l.startsWith("CPU per Gbit/s, cross node, 1 stream"))!.split(/\s{2,}/)).toEqual(["CPU per Gbit/s, cross node, 1 stream", "1.40×", "≤ 1.5×", "pass", "≤ 1×", "FAIL", "0.75×"]);
    expect(lines.slice(targetsAt).find((l) => l.startsWith("switch peak memory per node"))!.split(/\s{2,}/)).toEqual(["switch peak memory per node", "130 MB", "≤ 150 MB", "pass", "≤ 100 MB", "FAIL"]);
  });

  it("CPU per Gbit/s: how it is taken, the machine's with ratios (host-gw's too), the switches' part without", () => {
    const text = formatReport(report());
    const lines = text.split("\n");
    expect(text).toContain("CPU per Gbit/s, in cores per Gbit/s: the machine's busy time over each throughput test (user + nice + system + irq\n+ softirq of all CPUs, from /proc/stat)");
    expect(text).toContain("the ceiling, host-gw (routed, no encapsulation), is beside kernel-vxlan in every table");
    const row = (label: string) => lines.find((l) => l.startsWith(label))!.split(/\s{2,}/);
    expect(row("CPU per Gbit/s, TCP across nodes, 1 stream (")).toEqual(["CPU per Gbit/s, TCP across nodes, 1 stream (cores per Gbit/s, lower is better)", "0.20", "0.15 (0.75×)", "0.28 (1.40×)"]);
    expect(row("of which the switches, TCP across nodes, 1 stream (")).toEqual(["of which the switches, TCP across nodes, 1 stream (cores per Gbit/s, lower is better)", "n/a", "n/a", "0.11"]);
    expect(row("of which the switches, TCP across nodes, 1 stream  ")).toEqual(["of which the switches, TCP across nodes, 1 stream", "n/a", "n/a", "0.10..0.12"]);
  });

  it("the ceiling goes beside the reference whatever the order measured, and its absence is said", () => {
    const r = report();
    r.setups = ["tapnet-udp", "kernel-vxlan", "host-gw"];
    const header = formatReport(r).split("\n").find((l) => l.startsWith("figure") && l.includes("host-gw"))!;
    expect(header.split(/\s{2,}/)).toEqual(["figure", "kernel-vxlan", "host-gw", "tapnet-udp"]);
    r.setups = ["kernel-vxlan", "tapnet-udp"];
    const text = formatReport(r);
    expect(text).toContain("the ceiling (host-gw) was not measured: add it to --setups to see how far kernel-vxlan is from it");
    expect(text).not.toContain("is beside kernel-vxlan");
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

  it("with a +policy setup, a section of its figures over its twin's, judged on cross-node TCP and p50", () => {
    const r = report();
    r.results["tapnet-udp+policy"] = [
      { round: 1, figures: figures(5.7, { rtt_p50: 105, tcp_cross_4: 4.8, udp1400_loss: 30, udp1400_kpps_1pct: 4, switch_mem: 121 }) },
      { round: 2, figures: figures(7.6, { rtt_p50: 240, tcp_cross_4: 6.4, udp1400_loss: 40, udp1400_kpps_1pct: 6, switch_mem: 141 }) },
    ];
    r.setups.push("tapnet-udp+policy");
    Object.assign(r, summarize(r.results));
    r.policyLoad = { services: 100, policies: 100, comparisons: comparePolicyLoad(r.setups, r.results) };
    const text = formatReport(r);
    const lines = text.split("\n");
    const at = lines.indexOf("policy load: 100 Services and 100 NetworkPolicies, every measured flow allowed by them");
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toBe("(each round's figure over its twin's in the same round: median, min..max; judged: at most 10 % worse)");
    expect(lines[at + 2].split(/\s{2,}/)).toEqual(["figure", "tapnet-udp+policy / tapnet-udp"]);
    const row = (label: string) => lines.slice(at).find((l) => l.startsWith(label))!.split(/\s{2,}/);
    expect(row("TCP across nodes, 1 stream")).toEqual(["TCP across nodes, 1 stream (higher is better)", "0.95× (0.95..0.95) pass"]);
    expect(row("TCP across nodes, 4 streams")).toEqual(["TCP across nodes, 4 streams (higher is better)", "0.80× (0.80..0.80) FAIL"]);
    expect(row("TCP same node")).toEqual(["TCP same node, 1 stream (higher is better)", "0.95× (0.95..0.95)"]);
    expect(row("ping-pong RTT p50")).toEqual(["ping-pong RTT p50 (lower is better)", "1.13× (1.05..1.20) FAIL"]);
    expect(lines.slice(at).find((l) => l.startsWith("UDP 1400 B loss"))).toBeUndefined();
    expect(text.indexOf("policy load:")).toBeLessThan(text.indexOf("targets (issue 16)"));
    expect(text).not.toContain("(ping-pong: each round's ratio");
    expect(formatReport(report())).not.toContain("policy load");
    // With paired slices, the latency rows come from them, and the section says so.
    r.results["tapnet-udp+policy"][0].pairedLatency = [{ first: "twin", self: { p50: 110, p99: 300 }, twin: { p50: 100, p99: 300 } }];
    r.policyLoad = { services: 100, policies: 100, comparisons: comparePolicyLoad(r.setups, r.results) };
    const paired = formatReport(r).split("\n");
    const at2 = paired.indexOf("policy load: 100 Services and 100 NetworkPolicies, every measured flow allowed by them");
    expect(paired[at2 + 2]).toBe("(ping-pong: each round's ratio is the median over its pairs of 1-s runs, the two setups back to back, alternating)");
    expect(paired.slice(at2).find((l) => l.startsWith("ping-pong RTT p50"))!.split(/\s{2,}/)).toEqual(["ping-pong RTT p50 (lower is better)", "1.10× (1.10..1.10) pass"]);
  });
});

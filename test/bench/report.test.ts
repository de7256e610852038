// tapnet bench's plain-text report.
import { describe, expect, it } from "vitest";
import { fmtNumber } from "../../src/bench/figures.ts";
import { formatCell, formatReport } from "../../src/bench/report.ts";
import { report } from "./sample.ts";

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
});

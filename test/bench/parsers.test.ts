// tapnet bench's parsing of the tools' output, from real captured output.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { offloadsOff, parseIperfTcp, parseIperfUdp, parseSockperf } from "../../src/bench/parsers.ts";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

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

  it("sockperf ping-pong: p50 and p99 from its percentile lines, colour codes and all; the whole run's round trips", () => {
    const text = fixture("sockperf-ping-pong.txt");
    expect(text).toContain("\x1b[");
    // observations: the valid part of the run; round trips: every reply of the whole run, warm-up included
    expect(parseSockperf(text)).toEqual({ p50: 18.554, p99: 90.358, observations: 24736, roundTrips: 44563 });
    expect(parseSockperf(text.replace(/^.*\[Total Run\].*$/m, "")).roundTrips).toBe(0);
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

// What the hostile-input script and the soak read of ping and iperf3, the counters that rose, and the hostile verdict.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BenchError } from "../../src/bench/figures.ts";
import { AFTER_MAX_LOSS, counterDeltas, FD_SLACK, formatHostile, judgeHostile, RSS_SLACK_KB, type HostileFacts, type HostileReport, type SwitchProbe } from "../../src/bench/hostile-report.ts";
import type { LabStatus } from "../../src/lab/status.ts";
import { parseIperfStream, parsePing } from "../../src/bench/traffic.ts";

const fixture = (f: string) => readFileSync(new URL(`./fixtures/${f}`, import.meta.url), "utf8");

describe("parsePing", () => {
  it("reads iputils' summary, with and without errors", () => {
    expect(parsePing("--- 10.244.1.2 ping statistics ---\n200 packets transmitted, 197 received, 1.5% packet loss, time 10012ms\n"))
      .toEqual({ sent: 200, received: 197, lost: 3, lossPercent: 1.5 });
    expect(parsePing("5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 4100ms")).toMatchObject({ lost: 5, lossPercent: 100 });
    expect(() => parsePing("ping: connect: Network is unreachable")).toThrow(BenchError);
  });
});

describe("parseIperfStream", () => {
  it("reads a stream interrupted by SIGINT (iperf3's 'interrupt' is no error): bytes, rate, retransmits, no stall", () => {
    const t = parseIperfStream(fixture("iperf3-interrupted.json"));
    expect(t.error).toBeUndefined();
    expect(t.bytes).toBe(37093376);
    expect(t.seconds).toBeCloseTo(2.958442, 6);
    expect(t.gbps).toBeCloseTo((37093376 * 8) / 2.958442 / 1e9, 9);
    expect(t.retransmits).toBe(0);
    expect(t.maxStallSeconds).toBe(0);
  });

  it("the longest stall is the longest run of intervals that moved nothing; other errors are kept", () => {
    const j = JSON.parse(fixture("iperf3-interrupted.json"));
    const iv = (bytes: number) => ({ sum: { seconds: 1.000043, bytes } });
    j.intervals = [iv(5), iv(0), iv(0), iv(7), iv(0), iv(0), iv(0), iv(1)];
    j.error = "control socket has closed unexpectedly";
    j.end.sum_sent.retransmits = 12;
    const t = parseIperfStream(JSON.stringify(j));
    expect(t.maxStallSeconds).toBe(3);
    expect(t.retransmits).toBe(12);
    expect(t.error).toBe("control socket has closed unexpectedly");
    expect(() => parseIperfStream("iperf3: error - unable to connect")).toThrow(BenchError);
  });
});

const port = (p: number, pod: string | undefined, counters: Record<string, number>) => ({ port: p, ifname: p === 0 ? "tapnet0" : "eth0", role: p === 0 ? "gateway" : "pod", ...(pod ? { pod } : {}), counters });

function status(sw: Record<string, unknown>): Pick<LabStatus, "switches"> {
  return { switches: sw as LabStatus["switches"] };
}

describe("counterDeltas", () => {
  it("lists every counter that rose, per node and row, a counter absent before counting 0; not flows_active, not what fell", () => {
    const before = status({
      node1: { fdb: [], ports: [port(0, undefined, { rx_frames: 5 }), port(1, "node1-pod2", { rx_frames: 10, drop_eth_runt: 1 })], counters: { routed: 3, flows_active: 9 }, tunnel: { rx_frames: 100 } },
      node2: { error: "no answer" },
    });
    const after = status({
      node1: { fdb: [], ports: [port(0, undefined, { rx_frames: 5 }), port(1, "node1-pod2", { rx_frames: 15, drop_eth_runt: 4, drop_spoofed_source_mac: 2 })], counters: { routed: 2, flows_active: 20 }, tunnel: { rx_frames: 150, drop_tapnet_bad_version: 7 } },
      node2: { fdb: [], ports: [port(1, "node2-pod1", { rx_frames: 1 })], counters: {} },
    });
    expect(counterDeltas(before, after)).toEqual([
      { node: "node1", row: "tunnel", counter: "rx_frames", delta: 50 },
      { node: "node1", row: "tunnel", counter: "drop_tapnet_bad_version", delta: 7 },
      { node: "node1", row: "pod node1-pod2", counter: "rx_frames", delta: 5 },
      { node: "node1", row: "pod node1-pod2", counter: "drop_eth_runt", delta: 3 },
      { node: "node1", row: "pod node1-pod2", counter: "drop_spoofed_source_mac", delta: 2 },
      { node: "node2", row: "pod node2-pod1", counter: "rx_frames", delta: 1 },
    ]);
  });
});

const probe = (o: Partial<SwitchProbe> = {}): SwitchProbe => ({ pid: 100, start: 5000, rssKb: 100_000, fds: 40, answered: true, ...o });
const ping = (sent: number, received: number) => ({ sent, received, lost: sent - received, lossPercent: sent ? ((sent - received) / sent) * 100 : 0 });

function facts(o: { after?: SwitchProbe; pings?: HostileFacts["after"]; tcpError?: string } = {}): HostileFacts {
  return {
    switches: [{ node: "node1", before: probe(), after: o.after ?? probe({ rssKb: 101_000, fds: 41 }) }, { node: "node2", before: probe({ pid: 200 }), after: probe({ pid: 200 }) }],
    tcp: { seconds: 30, bytes: 750e6, gbps: 0.2, retransmits: 40, maxStallSeconds: 0, ...(o.tcpError ? { error: o.tcpError } : {}) },
    after: o.pings ?? [{ what: "a → b", ping: ping(20, 20) }, { what: "b → gw", ping: ping(20, 19) }],
  };
}

describe("judgeHostile", () => {
  const failed = (f: HostileFacts) => judgeHostile(f).checks.filter((c) => !c.pass).map((c) => c.name);

  it("passes a switch that kept its pid, fds and memory, forwards after, and kept the stream", () => {
    const v = judgeHostile(facts());
    expect(v.pass).toBe(true);
    expect(v.checks.map((c) => c.name)).toEqual(["no crash", "fds flat", "memory bounded", "forwarding after", "TCP stream survived"]);
  });

  it("a new pid, a new start time (the same pid reused) or no answer is a crash", () => {
    expect(failed(facts({ after: probe({ pid: 101 }) }))).toEqual(["no crash"]);
    expect(failed(facts({ after: probe({ start: 5001 }) }))).toEqual(["no crash"]);
    expect(failed(facts({ after: probe({ answered: false }) }))).toEqual(["no crash"]);
  });

  it("fds and memory: up to the slack passes, one more fails", () => {
    expect(failed(facts({ after: probe({ fds: 40 + FD_SLACK }) }))).toEqual([]);
    expect(failed(facts({ after: probe({ fds: 41 + FD_SLACK }) }))).toEqual(["fds flat"]);
    expect(failed(facts({ after: probe({ rssKb: 100_000 + RSS_SLACK_KB }) }))).toEqual([]);
    expect(failed(facts({ after: probe({ rssKb: 100_001 + RSS_SLACK_KB }) }))).toEqual(["memory bounded"]);
  });

  it("forwarding after: more than AFTER_MAX_LOSS lost, or no ping sent, fails; the stream's error fails", () => {
    const limit = Math.floor(20 * AFTER_MAX_LOSS);
    expect(failed(facts({ pings: [{ what: "a", ping: ping(20, 20 - limit) }] }))).toEqual([]);
    expect(failed(facts({ pings: [{ what: "a", ping: ping(20, 19 - limit) }] }))).toEqual(["forwarding after"]);
    expect(failed(facts({ pings: [{ what: "a", ping: ping(0, 0) }] }))).toEqual(["forwarding after"]);
    expect(failed(facts({ tcpError: "the server has terminated" }))).toEqual(["TCP stream survived"]);
  });

  it("the report names the figures, the drops that rose and each check", () => {
    const f = facts();
    const send = (mode: "tunnel" | "pod") => ({ mode, count: 1000, sent: 990, refused: 10, byKind: { random: { sent: 990, refused: 10 } }, errors: { EINVAL: 10 }, waits: 0, frames: 1000, bytes: 1e6, seconds: 2 });
    const r: HostileReport = {
      date: "2026-12-03T00:00:00.000Z", command: "tapnet hostile", lab: { prefix: "p", backend: "tapnet", runtime: "node" },
      roles: { node: "node1", attacker: "node1-pod2", goodLocal: "node1-pod1", goodRemote: "node2-pod1" },
      senders: { tunnel: send("tunnel"), pod: send("pod") }, kernel: { udpDelivered: 900, udpBufferDrops: 90, tapQueueDrops: 5 },
      switches: f.switches, ping: ping(100, 99), tcp: f.tcp, after: f.after,
      counters: [{ node: "node1", row: "tunnel", counter: "drop_tapnet_bad_version", delta: 123 }, { node: "node1", row: "switch", counter: "routed", delta: 4 }],
      verdict: judgeHostile(f), seconds: 42,
    };
    const text = formatHostile(r);
    expect(text).toContain("datagrams: 1,000 offered, 990 sent, 10 refused by the sending kernel (EINVAL 10)");
    expect(text).toContain("900 datagrams reached the switch's socket, 90 found its buffer full");
    expect(text).toMatch(/node1\s+tunnel\s+drop_tapnet_bad_version\s+\+123/);
    expect(text).toContain("ping 99/100 (1.00 % lost)");
    expect(text).toContain("switch counters that rose: node1 routed +4");
    expect(text).toContain("PASS no crash");
    expect(text).toMatch(/verdict: PASS/);
  });
});

// cli/trace/follow.ts off the lab: the filters `tapnet trace --follow` arms, and which records it
// keeps: the pod's own switch's first N frames, and the other switches' frames of the same
// packets (same addresses, protocol and IPv4 id; for TCP, bytes inside a kept packet's, as the
// segments of a super-frame cut on the way are), nothing else.
import { describe, expect, it } from "vitest";
import { followFilters, keepFollowed, splitByPipeline } from "../../../src/cli/trace/follow.ts";
import type { ClusterPod } from "../../../src/cli/trace/run.ts";
import { parseFilter } from "../../../src/node/trace-rpc.ts";
import type { TraceRecord } from "../../../src/switch/trace/tracer.ts";
import { emitEthernet } from "../../../src/wire/ethernet.ts";
import { emitIcmp } from "../../../src/wire/icmp.ts";
import { emitIpv4 } from "../../../src/wire/ipv4.ts";
import { emitTcp } from "../../../src/wire/tcp.ts";
import { ETH_OFF } from "../../../src/wire/virtio.ts";

const A = "10.244.1.2", B = "10.244.2.2";

/** A record of frame `frame` whose head is an ICMP echo (request from A, or reply from B) with IPv4 id `id`. */
function echo(frame: number, id: number, reply = false, stage = "tunnel-in"): TraceRecord {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 16);
  emitEthernet({ dst: "0a:58:0a:f4:01:01", src: "0a:58:0a:f4:01:02", vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1, src: reply ? B : A, dst: reply ? A : B, payloadLen: 16 }, b, ETH_OFF + 14);
  emitIcmp({ type: reply ? 0 : 8, code: 0, rest: (7 << 16) | frame, data: new Uint8Array(8) }, b, ETH_OFF + 34);
  return { filter: 1, frame, t: 1000 * frame, pipeline: "ports", stage, port: 1, node: 0, out: -1, len: b.length, head: Buffer.from(b).toString("hex") };
}

/** A record of a TCP frame from A:40000 to B:80, IPv4 id `id`, sequence `seq`, `payload` bytes of data. */
function tcp(frame: number, id: number, seq: number, payload: number): TraceRecord {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20);
  emitEthernet({ dst: "0a:58:0a:f4:01:01", src: "0a:58:0a:f4:01:02", vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: A, dst: B, payloadLen: 20 + payload }, b, ETH_OFF + 14);
  emitTcp({ srcPort: 40000, dstPort: 80, seq, ack: 1, flags: 0x10, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  return { filter: 1, frame, t: 1000 * frame, pipeline: "ports", stage: "tunnel-in", port: 1, node: 0, out: -1, len: b.length + payload, head: Buffer.from(b).toString("hex") };
}

const frames = (rs: TraceRecord[]) => [...new Set(rs.map((r) => r.frame))];

describe("keepFollowed", () => {
  it("keeps the pod's switch's first N frames, every record of them, and the other switch's frames of the same packets", () => {
    // Home: request 1, reply 1, request 2, reply 2, request 3 (two records each: two stages).
    const home = [echo(1, 11), echo(1, 11, false, "route"), echo(2, 91, true), echo(3, 12), echo(3, 12, false, "route"), echo(4, 92, true), echo(5, 13)];
    // The far switch: a request in flight before home was armed (id 10), then the same packets, then one past N.
    const far = [echo(1, 10), echo(2, 11), echo(3, 91, true), echo(4, 12), echo(5, 92, true), echo(6, 13), echo(7, 93, true)];
    const kept = keepFollowed(home, [far], 4);
    expect(kept.packets).toBe(4);
    expect(kept.home).toEqual(home.slice(0, 6));
    expect(frames(kept.others[0])).toEqual([2, 3, 4, 5]);
  });

  it("keeps the segments of a TCP super-frame cut on the way, by their bytes, and not the next one's", () => {
    const home = [tcp(1, 50, 1000, 20_000)]; // one 20 000-byte super-frame
    const far = [tcp(1, 50, 1000, 1448), tcp(2, 51, 2448, 1448), tcp(3, 63, 19_552, 1448), tcp(4, 64, 21_000, 1448), tcp(5, 65, 1000, 0)];
    const kept = keepFollowed(home, [far], 1);
    expect(frames(kept.others[0])).toEqual([1, 2, 3]);
  });

  it("counts by frame number: a frame marked and merged away with no record still takes its place", () => {
    const kept = keepFollowed([echo(5, 11), echo(6, 91, true), echo(8, 12)], [[echo(1, 11), echo(2, 12)]], 3);
    expect(kept.packets).toBe(2);
    expect(frames(kept.home)).toEqual([5, 6]);
    expect(frames(kept.others[0])).toEqual([1]);
  });

  it("tells apart two frames the tracer gave one number, by their pipelines", () => {
    const recv = (r: TraceRecord) => ({ ...r, pipeline: "receive" });
    // Frame 47's number went to a receive frame too (its own, 46, lost): both are kept, apart.
    const home = splitByPipeline([echo(45, 11), recv(echo(47, 91, true)), echo(47, 12), echo(47, 12, false, "route"), recv(echo(47, 91, true, "port-out")), echo(48, 13)]);
    expect(home.map((r) => r.frame)).toEqual([45, 47, 47.5, 47.5, 47, 48]);
    const kept = keepFollowed(home, [], 4);
    expect(kept.packets).toBe(4);
    expect(frames(kept.home)).toEqual([45, 47, 47.5, 48]);
  });

  it("keeps fewer than N when fewer came, and nothing of the others when home saw nothing", () => {
    expect(keepFollowed([echo(1, 11)], [[echo(1, 11)]], 5)).toMatchObject({ packets: 1, others: [[expect.anything()]] });
    expect(keepFollowed([], [[echo(1, 11)]], 5)).toEqual({ home: [], others: [[]], packets: 0 });
  });
});

describe("followFilters", () => {
  const from = { name: "node1-pod1", namespace: "default", ip: A, node: "node1" } as ClusterPod;

  it("matches the pod and the other address both ways, the protocol if given, the port at either end", () => {
    expect(followFilters({ from, toIp: B, proto: "icmp", port: 0, count: 4, seconds: 10 }, 4)).toEqual([{ id: 1, proto: "icmp", src: A, dst: B, bothWays: true, count: 4 }]);
    const two = followFilters({ from, proto: "tcp", port: 80, count: 4, seconds: 10 }, 9);
    expect(two).toEqual([
      { id: 1, proto: "tcp", src: A, bothWays: true, count: 9, dport: 80 },
      { id: 2, proto: "tcp", src: A, bothWays: true, count: 9, sport: 80 },
    ]);
    // As the control socket takes them (JSON: an undefined protocol is left out, any).
    const sent = JSON.parse(JSON.stringify(followFilters({ from, port: 0, count: 2, seconds: 1 }, 2)));
    expect(sent).toEqual([{ id: 1, src: A, bothWays: true, count: 2 }]);
    for (const [k, f] of [...two, ...sent].entries()) expect(() => parseFilter(JSON.parse(JSON.stringify(f)), k)).not.toThrow();
    expect(parseFilter(sent[0], 0)).toMatchObject({ proto: 0, b: 0, aPort: 0, bPort: 0, bothWays: true });
  });
});

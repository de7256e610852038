// Two switches of one cluster (node indexes 0 and 1), each the real stages over in-memory ports,
// the datagrams one's backend sends read by the other's tunnel from the sender's underlay
// address: one datagram a read, or a send's datagrams in one GRO read at their stride. For every
// backend, the test-only `seq` included (registered by the test suite, no switch edit), a pod's
// UDP packet and TCP super-frame reach the pod on the other node, on its port, with the bytes
// it sent: TTL two less (a hop each switch), MACs of the last hop, checksums valid, completed
// on the way, or left for the pod's offload where the backend carries frames whole.
import { describe, expect, it } from "vitest";
import type { Counters } from "../../src/switch/counters.ts";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { emitArp } from "../../src/wire/arp.ts";
import { put16 } from "../../src/wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { segmentToArrays } from "../../src/wire/gso.ts";
import { emitVirtioNetHdr, ETH_OFF, GSO_NONE, GSO_TCPV4, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import type { SentDatagram } from "../support/gather.ts";
import type { SeqBackend } from "../support/seq-backend.ts";
import { ADDR, ALL_BACKENDS, type AnyBackend, FakeIo, GATEWAY_PORT, ip, ipFrame, nodeConfig, TestRouter, tsoFrame } from "./router-support.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A pod on each node: index 0's in 10.244.1.0/24, index 1's in 10.244.2.0/24. */
const PODS = [
  { ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", port: 1 },
  { ip: "10.244.2.5", mac: "0a:58:0a:f4:02:05", port: 3 },
];
const GW_MACS = ["0a:58:0a:f4:01:01", "0a:58:0a:f4:02:01"];
const MSS = 1400; // fits every packet backend's tunnel MTU (vxlan's 1450 the least)

interface Node {
  self: number;
  router: TestRouter;
  io: FakeIo;
  counters: Counters;
  /** Datagrams of this node's already carried to the other. */
  carried: number;
}

/** Node `self`, its socket segmenting (and its reads GRO runs, the pods' TAPs taking super-frames) when `gro`. */
function makeNode(type: AnyBackend, self: number, gro: boolean): Node {
  const io = new FakeIo();
  const router = new TestRouter(nodeConfig(type, self), io, { segmenting: gro, merge: gro });
  router.gatewayPort = GATEWAY_PORT;
  const n = { self, router, io, counters: router.state.counters, carried: 0 };
  announce(n, PODS[self]);
  return n;
}

/** The pod says who it is (a gratuitous ARP, broadcast): the gateway learns its MAC, the bridge its port. */
function announce(n: Node, pod: (typeof PODS)[number]): void {
  const b = new Uint8Array(ETH_OFF + 14 + 28);
  emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: pod.mac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
  emitArp({ operation: 1, senderMac: pod.mac, senderIp: pod.ip, targetMac: "00:00:00:00:00:00", targetIp: pod.ip }, b, ETH_OFF + 14);
  expect(n.router.fromPort(pod.port, b, b.length)).toBe(false);
  expect(n.router.neighbors.entries()).toEqual([{ ip: pod.ip, mac: pod.mac }]);
  n.io.toMacs = []; // the flood of the announcement
}

/**
 * Reads what `from` sent since the last call into `to`'s tunnel, from `from`'s underlay address:
 * a datagram a read, or with `gro` each send's datagrams as one read at the send's segment
 * size (a send's datagrams are of one size but the last: what UDP_GRO hands over). Returns the
 * datagrams carried and the reads they made.
 */
function carry(from: Node, to: Node, gro: boolean): { datagrams: SentDatagram[]; reads: number } {
  const g = from.io.gather;
  const fresh = g.datagrams.slice(from.carried);
  from.carried = g.datagrams.length;
  const reads: SentDatagram[][] = [];
  for (const d of fresh) {
    const last = reads[reads.length - 1];
    if (gro && last && last[0].send === d.send) last.push(d);
    else reads.push([d]);
  }
  for (const read of reads) {
    const len = read.reduce((n, d) => n + d.bytes.length, 0);
    const slot = new Uint8Array(to.router.recvOff + len);
    let o = to.router.recvOff;
    for (const d of read) {
      slot.set(d.bytes, o);
      o += d.bytes.length;
    }
    const stride = read.length > 1 ? g.sends[read[0].send].segment : 0;
    to.router.fromTunnel(slot, len, ip(ADDR[from.self]), 0, stride);
  }
  return { datagrams: fresh, reads: reads.length };
}

/** `f` (a frame from pod `a`) as pod `b` should get it: from b's gateway MAC, TTL two less, the IPv4 checksum redone, virtio_net_hdr `vnet`. */
function arrived(f: Uint8Array, b: number, vnet: number[] | null): Uint8Array {
  const g = f.slice();
  if (vnet) g.set(vnet, 0);
  emitEthernet({ dst: PODS[b].mac, src: GW_MACS[b], vlans: [], etherType: 0x0800 }, g, ETH_OFF);
  const o = ETH_OFF + 14;
  g[o + 8] -= 2;
  put16(g, o + 10, 0);
  put16(g, o + 10, internetChecksum(g, o, 20));
  return g;
}

const DATA_VALID = [VNET_F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/** A UDP packet from pod `a` to pod `b` as a's TAP gives it; `partial`: its checksum left for the NIC, as a kernel with tx offload leaves it. */
function udpPacket(a: number, b: number, payloadLen: number, partial: boolean): { frame: Uint8Array; complete: Uint8Array } {
  const complete = ipFrame({ eth: { dst: GW_MACS[a], src: PODS[a].mac }, src: PODS[a].ip, dst: PODS[b].ip, payloadLen });
  const frame = complete.slice();
  if (partial) {
    put16(frame, ETH_OFF + 34 + 6, pseudoHeaderSum(ip(PODS[a].ip), ip(PODS[b].ip), 17, 8 + payloadLen) % 0xffff);
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6 }, frame, 0);
  }
  return { frame, complete };
}

/** A TCP super-frame from pod `a` to pod `b` as a's TAP gives it: the checksum field holds the pseudo-header sum. */
function superFrame(a: number, b: number, payload: number): Uint8Array {
  const f = tsoFrame(payload, MSS, 11, { src: PODS[a].ip, dst: PODS[b].ip, srcMac: PODS[a].mac, dstMac: GW_MACS[a] });
  put16(f, ETH_OFF + 34 + 16, pseudoHeaderSum(ip(PODS[a].ip), ip(PODS[b].ip), 6, 20 + payload) % 0xffff);
  return f;
}

/** The TCP segments (Ethernet frames) in the frames a pod got: a super-frame cut as its kernel would. */
function segmentsOf(frames: Uint8Array[]): string[] {
  return frames.flatMap((f) => {
    if (f[1] !== GSO_TCPV4) return [hex(f.subarray(ETH_OFF))];
    const segs = segmentToArrays(f.subarray(ETH_OFF), GSO_TCPV4, f[4] | (f[5] << 8));
    if (typeof segs === "number") throw new Error(`the super-frame does not segment: drop ${segs}`);
    return segs.map(hex);
  });
}

const tunnelDrops = (n: Node) => Object.keys(n.counters.portSnapshot(n.router.tunnelPort)).filter((k) => k.startsWith("drop_"));

describe.each(ALL_BACKENDS)("two nodes over the %s backend", (type) => {
  const whole = type === "tapnet"; // carries super-frames whole; the others' are cut by the sender

  for (const gro of [false, true]) {
    const mode = gro ? "UDP_SEGMENT sends, GRO reads" : "a datagram a send, a datagram a read";

    it(`${mode}: UDP packets, checksums complete or partial, there and back`, () => {
      const nodes = [makeNode(type, 0, gro), makeNode(type, 1, gro)];
      for (const [a, b] of [[0, 1], [1, 0]]) {
        for (const [payloadLen, partial] of [[32, false], [1000, true], [0, false]] as const) {
          const what = `${a} -> ${b}, ${payloadLen} B${partial ? ", partial" : ""}`;
          const from = nodes[a];
          const to = nodes[b];
          const { frame, complete } = udpPacket(a, b, payloadLen, partial);
          const sent = frame.slice();
          expect(from.router.fromPort(PODS[a].port, frame, frame.length), what).toBe(true);
          const { datagrams } = carry(from, to, gro);
          expect(datagrams.map((d) => d.peer), what).toEqual([b]);
          // A backend that carries frames whole passes a partial checksum on for the pod's
          // kernel to finish; the others complete it before sending, and the receiver verifies it.
          const want = whole && partial ? arrived(sent, b, null) : arrived(complete, b, DATA_VALID);
          expect(to.io.toPorts.map((p) => p.port), what).toEqual([PODS[b].port]);
          expect(hex(to.io.toPorts[0].bytes), what).toBe(hex(want));
          expect(to.io.toMacs, what).toEqual([]);
          to.io.toPorts = [];
        }
      }
      for (const n of nodes) {
        expect(n.counters.sw(SwitchCounter.Routed)).toBe(3);
        expect(n.counters.sw(SwitchCounter.Delivered)).toBe(3);
        expect(n.counters.sw(SwitchCounter.InnerCsumCompleted)).toBe(0); // the sender completed what it had to
        expect(n.counters.portSnapshot(n.router.tunnelPort)).toMatchObject({ tx_frames: 3, rx_frames: 3 });
        expect(tunnelDrops(n)).toEqual([]);
      }
      if (type === "seq") for (const n of nodes) expect(Array.from((n.router.stages.backend as SeqBackend).lastSeq)).toEqual(n.self === 0 ? [-1, 2, -1] : [2, -1, -1]);
    });

    it(`${mode}: a TCP super-frame reaches the far pod as the same byte stream, there and back`, () => {
      const nodes = [makeNode(type, 0, gro), makeNode(type, 1, gro)];
      const payload = 60_000;
      const segments = Math.ceil(payload / MSS);
      for (const [a, b] of [[0, 1], [1, 0]]) {
        const what = `${a} -> ${b}`;
        const from = nodes[a];
        const to = nodes[b];
        const f = superFrame(a, b, payload);
        const sent = f.slice();
        expect(from.router.fromPort(PODS[a].port, f, f.length), what).toBe(true);
        const { datagrams, reads } = carry(from, to, gro);
        expect(new Set(datagrams.map((d) => d.peer)), what).toEqual(new Set([b]));
        // Without GRO a read per datagram; with it, the frame's datagrams (up to 45 a send here) in one
        expect(reads, what).toBe(gro ? 1 : datagrams.length);
        expect(datagrams.length, what).toBeGreaterThan(40);
        const got = to.io.toPorts;
        expect(got.every((p) => p.port === PODS[b].port), what).toBe(true);
        expect(to.io.toMacs, what).toEqual([]);
        if (whole) {
          // The super-frame itself, its virtio_net_hdr and partial checksum as the sender's TAP gave them.
          expect(got.map((p) => hex(p.bytes)), what).toEqual([hex(arrived(sent, b, null))]);
        } else if (gro && to.router.stages.backend!.mergeReceived) {
          // The segments of a GRO read merged again into one super-frame for the pod.
          expect(got, what).toHaveLength(1);
          expect(hex(got[0].bytes.subarray(0, ETH_OFF)), what).toBe(hex(Uint8Array.of(VNET_F_NEEDS_CSUM, GSO_TCPV4, 14 + 20 + 20, 0, MSS & 0xff, MSS >> 8, 34, 0, 16, 0)));
        } else {
          // Segment by segment, each verified by the receiver.
          expect(got, what).toHaveLength(segments);
          expect(got.every((p) => hex(p.bytes.subarray(0, ETH_OFF)) === hex(Uint8Array.from(DATA_VALID))), what).toBe(true);
        }
        // Whatever the way, the pod's kernel ends up with the segments the sender's would have cut.
        const want = segmentsOf([arrived(sent, b, null)]);
        expect(want, what).toHaveLength(segments);
        expect(segmentsOf(got.map((p) => p.bytes)), what).toEqual(want);
        to.io.toPorts = [];
      }
      for (const n of nodes) {
        expect(n.counters.sw(SwitchCounter.Routed)).toBe(whole ? 1 : segments);
        expect(n.counters.sw(SwitchCounter.Coalesced)).toBe(!whole && gro && n.router.stages.backend!.mergeReceived ? segments : 0);
        const t = n.counters.portSnapshot(n.router.tunnelPort);
        expect(t.rx_frames).toBe(t.tx_frames); // each node got as many datagrams as it sent (same frame sizes)
        expect(t.tx_frames).toBe(whole ? Math.ceil((ETH_OFF + 54 + payload) / (1472 - 12)) : segments);
        expect(tunnelDrops(n)).toEqual([]);
      }
    });
  }
});

// The router's edges: the boundaries of its rules (MTU, the cluster CIDR, TTL, fragments), the
// ICMP errors it makes byte for byte, what receive coalescing must still refuse, and every
// datagram from the tunnel classified against the documented rules.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { emitArp, parseArp } from "../../src/wire/arp.ts";
import { put16, put32 } from "../../src/wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { emitEthernet, parseEthernet } from "../../src/wire/ethernet.ts";
import { parseIcmp } from "../../src/wire/icmp.ts";
import { emitIpv4, parseIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitVirtioNetHdr, GSO_TCPV6, GSO_UDP_L4, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { emitVxlan } from "../../src/wire/vxlan.ts";
import { CollectingSink } from "../support/gather.ts";
import { prng, trials } from "../support/random.ts";
import {
  ADDR, ALL_BACKENDS, config, datagram, encap, FakeIo, makeBackend, GATEWAY_PORT, GW, GW_MAC, INNER_IP, ip, ipFrame, PACKET_BACKENDS, type PacketBackend, POD_A, POD_B,
  setup, setupWith, tapnetConfig, TestRouter, tsoFrame, VTEP,
} from "./router-support.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const POD_B_HI = 0x0a58;
const POD_B_LO = 0x0af40103;

describe.each(PACKET_BACKENDS)("routing at the tunnel MTU (%s)", (type) => {
  it("a DF packet of exactly the tunnel MTU is routed; one byte more is refused with frag needed", () => {
    const { router, io, drops, counters } = setup(type, 1000);
    const fits = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: 1000 - 28 });
    expect(router.fromPort(POD_A.port, fits, fits.length)).toBe(true);
    expect(io.toPeers.map((p) => p.bytes.length)).toEqual([INNER_IP[type] + 1000]);
    expect(counters.sw(SwitchCounter.Routed)).toBe(1);
    const over = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: 1000 - 27 });
    expect(router.fromPort(POD_A.port, over, over.length)).toBe(true);
    expect(io.toPeers).toHaveLength(1);
    expect(drops(POD_A.port)).toEqual({ drop_frag_needed: 1 });
  });

  it("without DF, exactly the tunnel MTU is routed and one byte more is too_big", () => {
    const { router, io, drops } = setup(type, 1000);
    for (const extra of [0, 1]) {
      const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 1000 - 28 + extra });
      router.fromPort(POD_A.port, f, f.length);
    }
    expect(io.toPeers.map((p) => p.bytes.length)).toEqual([INNER_IP[type] + 1000]);
    expect(io.toPorts).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_too_big: 1 });
  });
});

describe("tapnet backend: a DF packet over the tunnel MTU", () => {
  const tapnet = () => setupWith(tapnetConfig(0));

  it("without GSO gets ICMP fragmentation needed with the tunnel MTU, and a frag_needed drop; at the MTU it goes", () => {
    const { router, io, drops, counters } = tapnet();
    const over = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: 1500 - 27 });
    const sent = over.slice(); // the error is written over the frame
    expect(router.fromPort(POD_A.port, over, over.length)).toBe(true);
    expect(io.gather.datagrams).toEqual([]);
    expect(io.toPorts).toHaveLength(1);
    const f = io.toPorts[0].bytes;
    expect(io.toPorts[0].port).toBe(POD_A.port);
    expect(parseIpv4(f.subarray(ETH_OFF + 14))).toMatchObject({ src: GW, dst: POD_A.ip, protocol: 1 });
    expect(parseIcmp(f.subarray(ETH_OFF + 34))).toMatchObject({ type: 3, code: 4, rest: 1500 });
    expect(hex(f.subarray(ETH_OFF + 34 + 8))).toBe(hex(sent.subarray(ETH_OFF + 14, ETH_OFF + 14 + 28)));
    expect(drops(POD_A.port)).toEqual({ drop_frag_needed: 1 });
    expect(counters.sw(SwitchCounter.Routed)).toBe(0);

    const fits = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: 1500 - 28 });
    expect(router.fromPort(POD_A.port, fits, fits.length)).toBe(true);
    expect(io.gather.datagrams.length).toBeGreaterThan(0);
    expect(counters.sw(SwitchCounter.Routed)).toBe(1);
    expect(drops(POD_A.port)).toEqual({ drop_frag_needed: 1 });
  });

  it("without DF goes whole: the tapnet backend carries frames, not packets", () => {
    const { router, io, drops, counters } = tapnet();
    const over = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 1500 - 27 });
    router.fromPort(POD_A.port, over, over.length);
    expect(io.toPorts).toEqual([]);
    expect(io.gather.datagrams).toHaveLength(2);
    expect(drops(POD_A.port)).toEqual({});
    expect(counters.sw(SwitchCounter.Routed)).toBe(1);
  });
});

describe.each(PACKET_BACKENDS)("ICMP errors: which packets get one, and what it quotes (%s)", (type) => {
  const FAR = "10.244.200.1"; // in the cluster CIDR, no node's

  it("none about a fragment other than the first; one about a first fragment (MF, offset 0)", () => {
    const { router, io, drops } = setup(type);
    const later = ipFrame({ src: POD_A.ip, dst: FAR, mf: true, fragOffset: 1480 });
    router.fromPort(POD_A.port, later, later.length);
    const last = ipFrame({ src: POD_A.ip, dst: FAR, fragOffset: 8 });
    router.fromPort(POD_A.port, last, last.length);
    expect(io.toPorts).toEqual([]);
    const first = ipFrame({ src: POD_A.ip, dst: FAR, mf: true });
    const quoted = first.slice(ETH_OFF + 14, ETH_OFF + 14 + 28); // before the error is written over it
    router.fromPort(POD_A.port, first, first.length);
    expect(io.toPorts).toHaveLength(1);
    expect(hex(io.toPorts[0].bytes.subarray(ETH_OFF + 34 + 8))).toBe(hex(quoted));
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 3 });
  });

  it("time exceeded is not sent about a later fragment either, but the drop is counted", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", ttl: 1, fragOffset: 64 });
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toEqual([]);
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_ttl_expired: 1 });
  });

  it("about an ICMP echo request (not an error) one is sent", () => {
    const { router, io } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: FAR, protocol: 1 });
    f[ETH_OFF + 34] = 8; // echo request
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toHaveLength(1);
    const reply = ipFrame({ src: POD_A.ip, dst: FAR, protocol: 1 });
    reply[ETH_OFF + 34] = 0; // echo reply
    router.fromPort(POD_A.port, reply, reply.length);
    expect(io.toPorts).toHaveLength(2);
  });

  it("quotes no more than the packet's total length: a 24-byte packet in a padded frame, golden bytes", () => {
    const { router, io, counters } = setup(type);
    // A 60-byte frame in a slot as the datapath reads into: the error, longer, is written in its place.
    const f = new Uint8Array(2048).fill(0xee); // Ethernet padding after the packet (and the slot's rest)
    f.fill(0, 0, ETH_OFF);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, f, ETH_OFF);
    f.set(Buffer.from("450000180007000040119be30af401020af4c801deadbeef", "hex"), ETH_OFF + 14);
    expect(router.fromPort(POD_A.port, f, ETH_OFF + 60)).toBe(true);
    expect(io.toPorts).toHaveLength(1);
    expect(io.toPorts[0].port).toBe(POD_A.port);
    expect(hex(io.toPorts[0].bytes)).toBe(
      "00".repeat(ETH_OFF) +
      "0a580af40102" + "0a580af40101" + "0800" + // to the sender, from the gateway MAC
      "4500003400010000400162de0af401010af40102" + // 20 + 8 + 24 bytes, id 1, TTL 64, ICMP, gateway -> pod A
      "03005f6200000000" + // destination unreachable, net
      "450000180007000040119be30af401020af4c801deadbeef", // the whole packet, none of the padding
    );
    expect(counters.sw(SwitchCounter.IcmpSent)).toBe(1);
  });

  it("quotes a header with options and the 8 bytes after it", () => {
    const { router, io } = setup(type);
    const f = new Uint8Array(ETH_OFF + 14 + 24 + 40);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, f, ETH_OFF);
    const o = ETH_OFF + 14;
    f.set([0x46, 0, 0, 64, 0, 9, 0, 0, 64, 17, 0, 0, 10, 244, 1, 2, 10, 244, 200, 1, 1, 1, 1, 0], o); // IHL 6: 4 bytes of NOP/EOL options
    for (let i = 24; i < 64; i++) f[o + i] = i;
    put16(f, o + 10, internetChecksum(f, o, 24));
    const quoted = f.slice(o, o + 32);
    router.fromPort(POD_A.port, f, f.length);
    const out = io.toPorts[0].bytes;
    expect(out.length).toBe(ETH_OFF + 14 + 20 + 8 + 32);
    expect(parseIpv4(out.subarray(ETH_OFF + 14))).toMatchObject({ payloadLen: 8 + 32 });
    expect(hex(out.subarray(ETH_OFF + 14 + 28))).toBe(hex(quoted));
    expect(internetChecksum(out, ETH_OFF + 34, 8 + 32)).toBe(0);
  });

  it("has TOS 0 even after the switch wrote an ARP reply in the same buffer", () => {
    const { router, io } = setup(type);
    const b = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: POD_A.mac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
    emitArp({ operation: 1, senderMac: POD_A.mac, senderIp: POD_A.ip, targetMac: "00:00:00:00:00:00", targetIp: GW }, b, ETH_OFF + 14);
    router.fromPort(POD_A.port, b, b.length);
    const f = ipFrame({ src: POD_A.ip, dst: FAR });
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toHaveLength(2);
    expect(hex(io.toPorts[1].bytes.subarray(ETH_OFF + 12, ETH_OFF + 16))).toBe("08004500");
  });

  it("numbers its errors 1, 2, 3 in the IP id", () => {
    const { router, io } = setup(type);
    for (let k = 0; k < 3; k++) {
      const f = ipFrame({ src: POD_A.ip, dst: FAR });
      router.fromPort(POD_A.port, f, f.length);
    }
    expect(io.toPorts.map((p) => parseIpv4(p.bytes.subarray(ETH_OFF + 14)))).toMatchObject([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });
});

describe.each(PACKET_BACKENDS)("the cluster CIDR's edges (10.244.0.0/16, nodes own 10.244.1-3.0/24) (%s)", (type) => {
  it("its first and last address, owned by no node, are cluster_unreachable; the addresses around it are bridged", () => {
    const { router, io, drops } = setup(type);
    for (const dst of ["10.244.0.0", "10.244.255.255"]) {
      const f = ipFrame({ src: POD_A.ip, dst });
      expect(router.fromPort(POD_A.port, f, f.length), dst).toBe(true);
    }
    expect(io.toPorts).toHaveLength(2);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 2 });
    for (const dst of ["10.243.255.255", "10.245.0.0"]) {
      const f = ipFrame({ src: POD_A.ip, dst });
      expect(router.fromPort(POD_A.port, f, f.length), dst).toBe(false);
    }
    expect(io.toPorts).toHaveLength(2);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 2 });
  });

  it("the node kernel's frame to a VTEP MAC for an address outside every pod CIDR is dropped as no_route", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ eth: { dst: VTEP[1], src: GW_MAC }, src: GW, dst: "8.8.8.8" });
    expect(router.fromPort(GATEWAY_PORT, f, f.length)).toBe(true);
    expect(io.toPeers).toEqual([]);
    expect(drops(GATEWAY_PORT)).toEqual({ drop_no_route: 1 });
  });

  it("a frame to our own VTEP MAC is not routed: the bridge has it", () => {
    const { router, io } = setup(type);
    const f = ipFrame({ eth: { dst: VTEP[0], src: GW_MAC }, src: GW, dst: "10.244.2.5" });
    expect(router.fromPort(GATEWAY_PORT, f, f.length)).toBe(false);
    expect(io.toPeers).toEqual([]);
  });

  it("an IPv4 frame to the gateway MAC that does not parse is dropped with its reason", () => {
    const { router, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    f[ETH_OFF + 14] = 0x65;
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    expect(drops(POD_A.port)).toEqual({ drop_ipv4_bad_version: 1 });
  });

  it("a frame shorter than an Ethernet header is left to the bridge, which drops it as eth_runt", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, ETH_OFF + 13)).toBe(false);
    expect(drops(POD_A.port)).toEqual({ drop_eth_runt: 1 });
    expect(io.toPeers).toEqual([]);
  });
});

describe("what the neighbour table learns", () => {
  it("not from IPv4 frames that came in on the gateway port, nor with the gateway address as source", () => {
    const { router } = setup();
    const kernel = ipFrame({ eth: { dst: VTEP[1], src: GW_MAC }, src: "10.244.1.9", dst: "10.244.2.5" });
    expect(router.fromPort(GATEWAY_PORT, kernel, kernel.length)).toBe(true);
    const asGw = ipFrame({ src: GW, dst: "10.244.2.5" });
    router.fromPort(POD_A.port, asGw, asGw.length);
    expect(router.neighbors.entries()).toEqual([]);
    const pod = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    router.fromPort(POD_A.port, pod, pod.length);
    expect(router.neighbors.entries()).toEqual([{ ip: POD_A.ip, mac: POD_A.mac }]);
  });

  function arpFrame(senderIp: string, targetIp: string, senderMac = POD_B.mac): Uint8Array {
    const b = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: senderMac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
    emitArp({ operation: 1, senderMac, senderIp, targetMac: "00:00:00:00:00:00", targetIp }, b, ETH_OFF + 14);
    return b;
  }

  it("not from ARP that came in on the gateway port, nor from a probe (sender 0.0.0.0) or the gateway address", () => {
    const { router, io } = setup();
    const fromGw = arpFrame("10.244.1.9", POD_B.ip, GW_MAC);
    expect(router.fromPort(GATEWAY_PORT, fromGw, fromGw.length)).toBe(false);
    const probe = arpFrame("0.0.0.0", POD_B.ip);
    expect(router.fromPort(POD_B.port, probe, probe.length)).toBe(false);
    const gw = arpFrame(GW, POD_A.ip);
    expect(router.fromPort(POD_B.port, gw, gw.length)).toBe(false);
    expect(router.neighbors.entries()).toEqual([]);
    expect(io.toPorts).toEqual([]);
  });

  it("the gateway does not answer ARP for itself from the gateway port, nor an ARP reply", () => {
    const { router, io } = setup();
    const fromGw = arpFrame("10.244.1.9", GW, GW_MAC);
    expect(router.fromPort(GATEWAY_PORT, fromGw, fromGw.length)).toBe(false);
    const reply = arpFrame(POD_B.ip, GW);
    reply[ETH_OFF + 14 + 7] = 2; // operation: reply
    expect(router.fromPort(POD_B.port, reply, reply.length)).toBe(false);
    expect(io.toPorts).toEqual([]);
    expect(router.neighbors.entries()).toEqual([{ ip: POD_B.ip, mac: POD_B.mac }]);
  });

  it("an ARP request for the gateway is answered with exact bytes, and counted", () => {
    const { router, io, counters } = setup();
    const req = arpFrame(POD_B.ip, GW);
    expect(router.fromPort(POD_B.port, req, req.length)).toBe(true);
    expect(io.toPorts.map((p) => p.port)).toEqual([POD_B.port]);
    expect(hex(io.toPorts[0].bytes)).toBe(
      "00".repeat(ETH_OFF) + "0a580af40103" + "0a580af40101" + "0806" +
      "0001080006040002" + "0a580af40101" + "0af40101" + "0a580af40103" + "0af40103",
    );
    expect(counters.sw(SwitchCounter.ArpReplies)).toBe(1);
  });

  it("a truncated ARP frame is left to the bridge and teaches nothing", () => {
    const { router, io } = setup();
    const req = arpFrame(POD_B.ip, GW);
    expect(router.fromPort(POD_B.port, req, req.length - 1)).toBe(false);
    expect(io.toPorts).toEqual([]);
    expect(router.neighbors.entries()).toEqual([]);
  });
});

/** A TCP data segment as the far node's tunnel carries it (udp: the packet; vxlan: VXLAN + Ethernet first; seq: a sequence number). */
interface Seg {
  src?: string; dst?: string; seq: number; payload: number; ttl?: number; mf?: boolean; fragOffset?: number;
  /** TCP flags (ACK unless told), TCP header length (options are NOPs; under 20 is written as is), bytes after the packet. */
  flags?: number; tcpHl?: number; pad?: number; ports?: [number, number];
  /** Sequence numbers of a run: this far apart (the payload's length unless told). */
  step?: number;
  /** Changes the datagram last (`ipOff`: where its IPv4 header is), checksums and all as they were. */
  mangle?: (d: Uint8Array, ipOff: number) => void;
}

function segDatagram(type: PacketBackend, s: Seg): Uint8Array {
  const src = s.src ?? "10.244.2.5";
  const dst = s.dst ?? POD_B.ip;
  const hl = s.tcpHl ?? 20;
  const tcpLen = Math.max(hl, 20) + s.payload;
  const inner = INNER_IP[type];
  const d = encap(type, new Uint8Array(20 + tcpLen + (s.pad ?? 0)));
  emitIpv4({ tos: 0, id: 1, dontFragment: !s.mf && !s.fragOffset, moreFragments: s.mf ?? false, fragmentOffset: s.fragOffset ?? 0, ttl: s.ttl ?? 64, protocol: 6, src, dst, payloadLen: tcpLen }, d, inner);
  const l4 = inner + 20;
  const options = new Uint8Array(Math.max(hl - 20, 0)).fill(1);
  const [srcPort, dstPort] = s.ports ?? [5201, 40000];
  emitTcp({ srcPort, dstPort, seq: s.seq, ack: 77, flags: s.flags ?? 0x10, window: 500, checksum: 0, urgent: 0, options }, d, l4);
  if (hl < 20) d[l4 + 12] = (hl / 4) << 4;
  const data = l4 + Math.max(hl, 20);
  for (let i = 0; i < s.payload; i++) d[data + i] = (s.seq + i * 13) & 0xff;
  put16(d, l4 + 16, internetChecksum(d, l4, tcpLen, pseudoHeaderSum(ip(src), ip(dst), 6, tcpLen)));
  s.mangle?.(d, inner);
  return d;
}

/** Feeds the segments as one GRO run (one datagram size) to a router that coalesces. */
function groRun(type: PacketBackend, segs: Seg[], prepare?: (router: TestRouter) => void) {
  const r = setup(type, undefined, { merge: true });
  r.router.neighbors.learn(ip(POD_B.ip), POD_B_HI, POD_B_LO);
  prepare?.(r.router);
  const dgrams = segs.map((s) => segDatagram(type, s));
  const size = dgrams[0].length;
  const slot = new Uint8Array(r.router.recvOff + dgrams.reduce((n, d) => n + d.length, 0) + 64);
  let o = r.router.recvOff;
  for (const d of dgrams) { slot.set(d, o); o += d.length; }
  r.router.fromTunnel(slot, o - r.router.recvOff, ip(ADDR[1]), 0, size);
  return r;
}

/** Feeds the segments one by one to a router that does not coalesce: what each datagram alone becomes. */
function oneByOne(type: PacketBackend, segs: Seg[]) {
  const r = setup(type);
  r.router.neighbors.learn(ip(POD_B.ip), POD_B_HI, POD_B_LO);
  for (const d of segs.map((s) => segDatagram(type, s))) {
    const slot = new Uint8Array(r.router.recvOff + d.length + 64);
    slot.set(d, r.router.recvOff);
    r.router.fromTunnel(slot, d.length, ip(ADDR[1]), 0);
  }
  return r;
}

const run = (n: number, seg: Partial<Seg> = {}): Seg[] => Array.from({ length: n }, (_, k) => ({ payload: 400, ...seg, seq: 1000 + k * (seg.step ?? seg.payload ?? 400) }));

describe("receive coalescing refuses what the single-datagram way would refuse or treat apart", () => {
  for (const type of ["udp", "vxlan"] as const) {
    it(`${type}: a run whose inner source is not the sending node's (another node's pod, the cluster CIDR's first or last address, beyond the cluster, this node's address or another's) is dropped as tunnel_spoofed, every segment counted`, () => {
      for (const src of ["10.244.3.5", "10.244.0.0", "10.244.255.255", "8.8.8.8", "10.243.255.255", "10.245.0.0", ADDR[0], ADDR[2], "10.244.1.5"]) {
        const r = groRun(type, run(3, { src }));
        expect(r.io.toMacs, src).toEqual([]);
        expect(r.drops(r.tunnel), src).toEqual({ drop_tunnel_spoofed: 3 });
        expect(r.counters.sw(SwitchCounter.Coalesced), src).toBe(0);
        expect(r.counters.portSnapshot(r.tunnel).rx_frames, src).toBe(3);
      }
    });

    it(`${type}: a run from the sending node's own pod, its pod CIDR's first and last address, or its own address, is merged`, () => {
      for (const src of ["10.244.2.200", "10.244.2.0", "10.244.2.255", ADDR[1]]) {
        const r = groRun(type, run(3, { src }));
        expect(r.drops(r.tunnel), src).toEqual({});
        expect(r.io.toMacs, src).toHaveLength(1);
        expect(r.counters.sw(SwitchCounter.Coalesced), src).toBe(3);
      }
    });

    it(`${type}: a run for a local pod whose MAC is unknown is dropped as neigh_unresolved, and one ARP request broadcast`, () => {
      const r = groRun(type, run(3, { dst: "10.244.1.77" }));
      expect(r.drops(r.tunnel)).toEqual({ drop_neigh_unresolved: 3 });
      expect(r.io.toMacs).toHaveLength(1);
      const req = r.io.toMacs[0];
      expect(req.except).toBe(GATEWAY_PORT);
      expect(parseEthernet(req.bytes.subarray(ETH_OFF))).toMatchObject({ dst: "ff:ff:ff:ff:ff:ff", src: GW_MAC, etherType: 0x0806 });
      expect(parseArp(req.bytes.subarray(ETH_OFF + 14))).toMatchObject({ operation: 1, senderIp: GW, targetIp: "10.244.1.77" });
      expect(r.counters.sw(SwitchCounter.ArpRequests)).toBe(1);
      expect(r.counters.sw(SwitchCounter.Coalesced)).toBe(0);
    });

    it(`${type}: a run for another node's pod is dropped as tunnel_not_local, one for the gateway goes to tapnet0 one by one`, () => {
      const far = groRun(type, run(3, { dst: "10.244.3.7" }));
      expect(far.drops(far.tunnel)).toEqual({ drop_tunnel_not_local: 3 });
      expect(far.io.toMacs).toEqual([]);
      // even with an entry for the gateway address in the neighbour table (the agent may seed any address)
      const gw = groRun(type, run(3, { dst: GW }), (router) => router.neighbors.learn(ip(GW), 0x0a58, 0x0af40101));
      expect(gw.io.toPorts.map((p) => p.port)).toEqual([GATEWAY_PORT, GATEWAY_PORT, GATEWAY_PORT]);
      expect(gw.counters.sw(SwitchCounter.Coalesced)).toBe(0);
    });

    it(`${type}: segments with TTL 1 are not merged but dropped as ttl_expired; with TTL 2 they are merged`, () => {
      const one = groRun(type, run(3, { ttl: 1 }));
      expect(one.io.toMacs).toEqual([]);
      expect(one.drops(one.tunnel)).toEqual({ drop_ttl_expired: 3 });
      const two = groRun(type, run(3, { ttl: 2 }));
      expect(two.io.toMacs).toHaveLength(1);
      expect(parseIpv4(two.io.toMacs[0].bytes.subarray(ETH_OFF + 14))).toMatchObject({ ttl: 1 });
      expect(two.counters.sw(SwitchCounter.Coalesced)).toBe(3);
    });

    it(`${type}: IP fragments are not merged: each goes alone, its checksum left to the pod`, () => {
      for (const frag of [{ mf: true }, { fragOffset: 1480 }, { mf: true, fragOffset: 8 }]) {
        const r = groRun(type, run(3, frag));
        const what = JSON.stringify(frag);
        expect(r.io.toMacs, what).toHaveLength(3);
        expect(r.io.toMacs.map((m) => hex(m.bytes.subarray(0, ETH_OFF))), what).toEqual(Array(3).fill("00".repeat(ETH_OFF)));
        expect(r.counters.sw(SwitchCounter.Coalesced), what).toBe(0);
        expect(r.counters.sw(SwitchCounter.Delivered), what).toBe(3);
      }
    });

    it(`${type}: datagrams the coalescer must not be offered go the single-datagram way, each delivered or dropped as alone`, () => {
      const fixIpSum = (d: Uint8Array, o: number) => { put16(d, o + 10, 0); put16(d, o + 10, internetChecksum(d, o, (d[o] & 15) * 4)); };
      const cases: [string, Partial<Seg>][] = [
        ["padding after the packet", { pad: 2 }],
        ["a bad IPv4 header checksum", { mangle: (d, o) => { d[o + 10] ^= 0x01; } }],
        ["IPv4 options", { mangle: (d, o) => { d[o] = 0x46; fixIpSum(d, o); } }],
        ["a bad TCP checksum", { mangle: (d) => { d[d.length - 1] ^= 0x20; } }],
        ["no ACK", { flags: 0x00 }],
        ["PSH without ACK", { flags: 0x08 }],
        ["SYN", { flags: 0x12 }],
        ["FIN", { flags: 0x11 }],
        ["RST", { flags: 0x14 }],
        ["URG", { flags: 0x30 }],
        ["ECE", { flags: 0x50 }],
        ["CWR", { flags: 0x90 }],
        ["a TCP header length under 20", { tcpHl: 16 }],
        ["a TCP header as long as the segment", { tcpHl: 60, payload: 0 }],
        ["no payload (a pure ACK)", { payload: 0 }],
        ["not TCP", { mangle: (d, o) => { d[o + 9] = 17; fixIpSum(d, o); } }],
        // The coalescer's checks passed are the checksum's too: what it refuses must still be verified.
        ["not TCP, with a bad checksum", { mangle: (d, o) => { d[o + 9] = 17; fixIpSum(d, o); d[d.length - 1] ^= 4; } }],
        ["SYN, with a bad checksum", { flags: 0x12, mangle: (d) => { d[d.length - 1] ^= 4; } }],
        ["for the gateway, with a bad checksum", { dst: GW, mangle: (d) => { d[d.length - 1] ^= 4; } }],
        ["for another node's pod, with a bad checksum", { dst: "10.244.3.7", mangle: (d) => { d[d.length - 1] ^= 4; } }],
        // What would pass if the coalescer read less than it must:
        ["padding that would make the datagram's length a valid TCP length", { pad: 2, mangle: (d) => { d[d.length - 2] = 0xff; d[d.length - 1] = 0xfd; } }],
        ["IPv4 options of zeros after a header whose first 20 bytes sum right", { ports: [0, 0], mangle: (d, o) => { d[o] = 0x46; fixIpSum(d, o); } }],
        ["a TCP header length under 20, with sequence numbers that would continue", { tcpHl: 16, step: 404 }],
      ];
      if (type === "vxlan") {
        cases.push(
          ["a VXLAN header without the I flag", { mangle: (d) => { d[0] = 0; } }],
          ["another VNI", { mangle: (d) => { d[6] = 2; } }],
          ["an inner frame for another VTEP", { mangle: (d) => { d[13] ^= 1; } }],
          ["an inner frame for a MAC that differs from ours in its first bytes only", { mangle: (d) => { d[8] ^= 1; } }],
          ["an inner frame not IPv4", { mangle: (d) => { d[20] = 0x86; d[21] = 0xdd; } }],
        );
      }
      for (const [what, seg] of cases) {
        const segs = run(3, seg);
        const r = groRun(type, segs);
        const a = oneByOne(type, segs);
        expect(r.io.toMacs.map((m) => hex(m.bytes)), what).toEqual(a.io.toMacs.map((m) => hex(m.bytes)));
        expect(r.drops(r.tunnel), what).toEqual(a.drops(a.tunnel));
        expect(r.counters.sw(SwitchCounter.Coalesced), what).toBe(0);
      }
    });

    it(`${type}: segments of one payload byte, or with PSH on the last, are merged`, () => {
      const r = groRun(type, [0, 1, 2].map((k) => ({ seq: 1000 + k, payload: 1 })));
      expect(r.counters.sw(SwitchCounter.Coalesced)).toBe(3);
      expect(r.io.toMacs).toHaveLength(1);
      const segs = run(3);
      segs[2].flags = 0x18;
      const p = groRun(type, segs);
      expect(p.counters.sw(SwitchCounter.Coalesced)).toBe(3);
    });
  }
});

// ---- Every datagram from the tunnel, against a classifier written from the documented rules ----

const LOCAL_FIRST = ip("10.244.1.0");
const LOCAL_LAST = ip("10.244.1.255");
const NODE_NETS = [1, 2, 3].map((i) => ip(`10.244.${i}.0`));
const KNOWN = ip(POD_B.ip);

/** Ones'-complement sum of 16-bit big-endian words, folded, written plainly. */
function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const macBytes = (m: string) => m.split(":").map((x) => parseInt(x, 16));

type Outcome = { drop: string } | { to: "gateway" | "pod"; frame: string; completed: boolean };

/**
 * What the router's header comment and the drop reasons say becomes of datagram `d` from
 * underlay address `from`: the first rule it breaks, or the frame a TAP receives.
 */
function classify(type: PacketBackend, d: Uint8Array, from: string, gatewayPort: number): Outcome {
  const peer = ADDR.indexOf(from);
  if (peer <= 0) return { drop: "tunnel_unknown_peer" }; // not a node, or ourselves
  let p: Uint8Array;
  if (type === "udp") {
    if (d.length < 1 || d[0] >> 4 !== 4) return { drop: "tunnel_not_ipv4" };
    p = d;
  } else if (type === "seq") {
    // the test-only backend: a 4-byte sequence number, then at least an IPv4 header's worth
    if (d.length < 4 + 20 || d[4] >> 4 !== 4) return { drop: "tunnel_not_ipv4" };
    p = d.subarray(4);
  } else {
    if (d.length < 8) return { drop: "vxlan_truncated" };
    if ((d[0] & 0x08) === 0) return { drop: "vxlan_bad_flags" };
    if (((d[4] << 16) | (d[5] << 8) | d[6]) !== 1) return { drop: "vxlan_wrong_vni" };
    if (d.length < 22) return { drop: "vxlan_truncated" };
    if (hex(d.subarray(8, 14)) !== VTEP[0].replaceAll(":", "")) return { drop: "vxlan_not_for_us" };
    if (u16(d, 20) !== 0x0800) return { drop: "tunnel_not_ipv4" };
    p = d.subarray(22);
  }
  if (p.length < 20) return { drop: "ipv4_truncated" };
  if (p[0] >> 4 !== 4) return { drop: "ipv4_bad_version" };
  const hl = (p[0] & 15) * 4;
  if (hl < 20 || hl > p.length) return { drop: "ipv4_bad_header_len" };
  const total = u16(p, 2);
  if (total < hl || total > p.length) return { drop: "ipv4_bad_total_len" };
  if (onesSum(p, 0, hl) !== 0xffff) return { drop: "ipv4_bad_checksum" };
  const src = u32(p, 12);
  const dst = u32(p, 16);
  const peerNet = NODE_NETS[peer];
  // A node speaks for its pod CIDR and its own address, nothing else.
  if (!(src >= peerNet && src <= peerNet + 255) && src !== ip(ADDR[peer])) return { drop: "tunnel_spoofed" };
  const pkt = p.slice(0, total);
  let valid = false;
  let completed = false;
  const proto = pkt[9];
  const fragment = (u16(pkt, 6) & 0x3fff) !== 0;
  const l4len = total - hl;
  if ((proto === 6 || proto === 17) && !fragment && l4len >= (proto === 6 ? 20 : 8)) {
    const field = hl + (proto === 6 ? 16 : 6);
    if (!(proto === 17 && u16(pkt, field) === 0)) {
      const pseudo = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
      if (onesSum(pkt, hl, l4len, pseudo) !== 0xffff) {
        if (u16(pkt, field) !== onesSum(new Uint8Array(0), 0, 0, pseudo)) return { drop: "tunnel_bad_checksum" };
        pkt[field] = pkt[field + 1] = 0;
        let c = ~onesSum(pkt, hl, l4len, pseudo) & 0xffff;
        if (c === 0 && proto === 17) c = 0xffff;
        pkt[field] = c >> 8;
        pkt[field + 1] = c & 0xff;
        completed = true;
      }
      valid = true;
    }
  }
  const vnet = [valid ? 2 : 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  if (dst === ip(GW)) {
    if (gatewayPort < 0) return { drop: "no_port" };
    const frame = [...vnet, ...macBytes(GW_MAC), ...macBytes(VTEP[peer]), 8, 0, ...pkt];
    return { to: "gateway", frame: hex(Uint8Array.from(frame)), completed };
  }
  if (dst < LOCAL_FIRST || dst > LOCAL_LAST) return { drop: "tunnel_not_local" };
  if (pkt[8] <= 1) return { drop: "ttl_expired" };
  if (dst !== KNOWN) return { drop: "neigh_unresolved" };
  pkt[8]--;
  pkt[10] = pkt[11] = 0;
  const c = ~onesSum(pkt, 0, hl) & 0xffff;
  pkt[10] = c >> 8;
  pkt[11] = c & 0xff;
  const frame = [...vnet, ...macBytes(POD_B.mac), ...macBytes(GW_MAC), 8, 0, ...pkt];
  return { to: "pod", frame: hex(Uint8Array.from(frame)), completed };
}

/**
 * A datagram from the tunnel: mostly well formed, with a random choice of what is wrong with it;
 * its inner source mostly one the sender `from` speaks for (an address in its pod CIDR, or its own).
 */
function randomDatagram(type: PacketBackend, rnd: () => number, from: string): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  if (rnd() < 0.05) return Uint8Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256));
  const proto = pick([6, 17, 17, 1, 47]);
  const optLen = rnd() < 0.1 ? 4 * (1 + Math.floor(rnd() * 3)) : 0;
  const hl = 20 + optLen;
  const l4len = Math.floor(rnd() * 70);
  const total = hl + l4len;
  const pad = rnd() < 0.2 ? Math.floor(rnd() * 10) : 0;
  const p = new Uint8Array(total + pad);
  for (let i = 0; i < p.length; i++) p[i] = Math.floor(rnd() * 256);
  const peer = ADDR.indexOf(from);
  const own = peer > 0 ? [`10.244.${peer + 1}.5`, `10.244.${peer + 1}.0`, `10.244.${peer + 1}.255`, from] : [];
  const src = own.length && rnd() < 0.6 ? pick(own)
    : pick(["10.244.2.5", "10.244.2.255", "10.244.3.5", "10.244.1.5", "10.244.0.0", "10.244.255.255", "10.243.255.255", "10.245.0.0", ADDR[1], ADDR[0], ADDR[2], "8.8.8.8"]);
  const dst = pick([POD_B.ip, POD_B.ip, POD_B.ip, GW, "10.244.1.77", "10.244.1.0", "10.244.1.255", "10.244.2.5", "10.244.0.255", "10.244.2.0", "1.1.1.1"]);
  p[0] = 0x40 | (hl / 4);
  p[1] = 0;
  put16(p, 2, total);
  const frag = rnd();
  put16(p, 6, frag < 0.7 ? 0x4000 : frag < 0.8 ? 0 : frag < 0.9 ? 0x2000 : Math.floor(rnd() * 0x2000));
  p[8] = pick([0, 1, 2, 64, 255]);
  p[9] = proto;
  p.set(Uint8Array.from(ip(src).toString(16).padStart(8, "0").match(/../g)!, (h) => parseInt(h, 16)), 12);
  p.set(Uint8Array.from(ip(dst).toString(16).padStart(8, "0").match(/../g)!, (h) => parseInt(h, 16)), 16);
  for (let i = 20; i < hl; i++) p[i] = 1; // NOP options
  put16(p, 10, 0);
  put16(p, 10, internetChecksum(p, 0, hl));
  const field = hl + (proto === 6 ? 16 : 6);
  const room = (proto === 6 && l4len >= 20) || (proto === 17 && l4len >= 8);
  if (room) {
    if (proto === 17) put16(p, hl + 4, l4len);
    put16(p, field, 0);
    const pseudo = pseudoHeaderSum(ip(src), ip(dst), proto, l4len);
    const r = rnd();
    if (r < 0.6) put16(p, field, internetChecksum(p, hl, l4len, pseudo)); // right
    else if (r < 0.75) put16(p, field, ~internetChecksum(new Uint8Array(0), 0, 0, pseudo) & 0xffff); // partial
    else if (r < 0.85 && proto === 17) put16(p, field, 0); // no checksum
    else put16(p, field, Math.floor(rnd() * 0x10000)); // wrong, most likely
  }
  // Then, sometimes, break one thing in the packet.
  const hurt = rnd();
  if (hurt < 0.04) p[0] = (Math.floor(rnd() * 16) << 4) | (p[0] & 15);
  else if (hurt < 0.08) p[0] = 0x40 | Math.floor(rnd() * 16);
  else if (hurt < 0.12) put16(p, 2, Math.floor(rnd() * (p.length + 40)));
  else if (hurt < 0.16) p[10] ^= 1 << Math.floor(rnd() * 8);
  else if (hurt < 0.2 && total > hl) p[hl + Math.floor(rnd() * l4len)] ^= 0x10;
  let cut = p.length;
  if (rnd() < 0.04) cut = Math.floor(rnd() * p.length);
  const ipPart = p.subarray(0, cut);
  if (type === "udp") return ipPart.slice();
  if (type === "seq") {
    const d = new Uint8Array(4 + ipPart.length);
    put32(d, 0, Math.floor(rnd() * 2 ** 32));
    d.set(ipPart, 4);
    return rnd() < 0.03 ? d.slice(0, Math.floor(rnd() * 27)) : d;
  }
  const d = new Uint8Array(22 + ipPart.length);
  emitVxlan({ vni: rnd() < 0.05 ? 2 : 1 }, d, 0);
  if (rnd() < 0.05) d[0] = 0;
  emitEthernet({ dst: rnd() < 0.05 ? VTEP[2] : VTEP[0], src: VTEP[1], vlans: [], etherType: rnd() < 0.05 ? 0x0806 : 0x0800 }, d, 8);
  d.set(ipPart, 22);
  return rnd() < 0.03 ? d.slice(0, Math.floor(rnd() * 23)) : d;
}

describe("from the tunnel, every datagram classified", () => {
  for (const type of PACKET_BACKENDS) {
    it(`${type}: random datagrams from nodes and strangers each meet the fate the rules give them, exactly`, () => {
      const { router, io, counters, drops, tunnel } = setup(type);
      router.neighbors.learn(KNOWN, POD_B_HI, POD_B_LO);
      const rnd = prng({ udp: 4101, vxlan: 4102, seq: 4103 }[type]);
      const seen = new Map<string, number>();
      let rxBytes = 0;
      const n = trials(3000, 300);
      for (let i = 0; i < n; i++) {
        const from = rnd() < 0.9 ? ADDR[1 + Math.floor(rnd() * 2)] : rnd() < 0.5 ? ADDR[0] : "192.168.56.99";
        const d = randomDatagram(type, rnd, from);
        router.gatewayPort = rnd() < 0.05 ? -1 : GATEWAY_PORT;
        const want = classify(type, d, from, router.gatewayPort);
        const before = { drops: drops(tunnel), ports: io.toPorts.length, macs: io.toMacs.length, completed: counters.sw(SwitchCounter.InnerCsumCompleted), arp: counters.sw(SwitchCounter.ArpRequests) };
        const slot = new Uint8Array(router.recvOff + d.length + 16);
        slot.set(d, router.recvOff);
        router.fromTunnel(slot, d.length, ip(from), i * 2); // 2 s apart: every unresolved address is asked for
        rxBytes += d.length;
        const what = `datagram ${i} (${hex(d)}) from ${from}`;
        const after = drops(tunnel);
        const grew = Object.keys(after).filter((k) => after[k] !== (before.drops[k] ?? 0));
        if ("drop" in want) {
          expect(grew, what).toEqual([`drop_${want.drop}`]);
          expect(after[`drop_${want.drop}`] - (before.drops[`drop_${want.drop}`] ?? 0), what).toBe(1);
          expect(io.toPorts.length, what).toBe(before.ports);
          const arp = want.drop === "neigh_unresolved" ? 1 : 0;
          expect(io.toMacs.length - before.macs, what).toBe(arp);
          expect(counters.sw(SwitchCounter.ArpRequests) - before.arp, what).toBe(arp);
          seen.set(want.drop, (seen.get(want.drop) ?? 0) + 1);
        } else {
          expect(grew, what).toEqual([]);
          const out = want.to === "gateway" ? io.toPorts.slice(before.ports) : io.toMacs.slice(before.macs);
          expect(io.toPorts.length + io.toMacs.length - before.ports - before.macs, what).toBe(1);
          expect(out.length, what).toBe(1);
          if (want.to === "gateway") expect(io.toPorts[before.ports].port, what).toBe(GATEWAY_PORT);
          else expect(io.toMacs[before.macs].except, what).toBe(-1);
          expect(hex(out[0].bytes), what).toBe(want.frame);
          expect(counters.sw(SwitchCounter.InnerCsumCompleted) - before.completed, what).toBe(want.completed ? 1 : 0);
          seen.set(want.to, (seen.get(want.to) ?? 0) + 1);
        }
      }
      expect(counters.portSnapshot(tunnel)).toMatchObject({ rx_frames: n, rx_bytes: rxBytes });
      expect(counters.sw(SwitchCounter.Delivered)).toBe((seen.get("pod") ?? 0) + (seen.get("gateway") ?? 0));
      // The datagrams reached every rule (at the full count; a tenth of them under mutation testing may miss a rare one).
      if (n === 3000) {
        const rules = ["tunnel_unknown_peer", "ipv4_bad_header_len", "ipv4_bad_total_len", "ipv4_bad_checksum",
          "tunnel_spoofed", "tunnel_bad_checksum", "no_port", "tunnel_not_local", "ttl_expired", "neigh_unresolved", "pod", "gateway", "tunnel_not_ipv4"];
        // seq: a packet shorter than an IPv4 header is the backend's tunnel_not_ipv4
        if (type !== "seq") rules.push("ipv4_truncated");
        // udp, seq: a packet of another version is the backend's tunnel_not_ipv4
        if (type === "vxlan") rules.push("ipv4_bad_version", "vxlan_truncated", "vxlan_bad_flags", "vxlan_wrong_vni", "vxlan_not_for_us");
        for (const r of rules) expect(seen.get(r) ?? 0, r).toBeGreaterThan(0);
      }
    });
  }
});

describe.each(PACKET_BACKENDS)("sending, when the way out fails or the frame is unusual (%s)", (type) => {
  const inner = INNER_IP[type];

  it("a datagram the tunnel socket refuses is a tx_error on the tunnel, nothing sent", () => {
    const { router, io, drops, counters, tunnel } = setup(type);
    io.failPeers = true;
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    expect(drops(tunnel)).toEqual({ drop_tx_error: 1 });
    expect(drops(POD_A.port)).toEqual({});
    expect(counters.portSnapshot(tunnel)).toMatchObject({ tx_frames: 0, tx_bytes: 0 });
    expect(io.toPeers).toEqual([]);
    expect(counters.sw(SwitchCounter.Routed)).toBe(1); // routed counts what the backend took; the socket's refusal is the tunnel's tx_error
  });

  it("a partial checksum whose csum_start lies outside the frame is dropped as csum_bad_offset", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 200, csumOffset: 6 }, f, 0);
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_csum_bad_offset: 1 });
  });

  it("a super-frame of a kind not segmented here (TCPv6) is dropped as gso_unsupported", () => {
    const { router, io, drops } = setup(type);
    const f = tsoFrame(3000, 1000);
    f[1] = GSO_TCPV6;
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_gso_unsupported: 1 });
  });

  it("a UDP super-frame (GSO_UDP_L4) is cut into UDP datagrams of gso_size, each with a valid checksum", () => {
    const { router, io, counters } = setup(type);
    const payload = 1800;
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: payload });
    put16(f, ETH_OFF + 34 + 6, pseudoHeaderSum(ip(POD_A.ip), ip("10.244.2.5"), 17, 8 + payload) % 0xffff);
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_UDP_L4, hdrLen: 42, gsoSize: 500, csumStart: 34, csumOffset: 6 }, f, 0);
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPeers.map((p) => p.bytes.length - inner)).toEqual([528, 528, 528, 328]);
    for (const { bytes } of io.toPeers) {
      const pkt = bytes.subarray(inner);
      expect(parseIpv4(pkt)).toMatchObject({ ttl: 63, protocol: 17 });
      expect(internetChecksum(pkt, 20, pkt.length - 20, pseudoHeaderSum(ip(POD_A.ip), ip("10.244.2.5"), 17, pkt.length - 20))).toBe(0);
    }
    expect(counters.sw(SwitchCounter.Routed)).toBe(4);
  });

  it("gathers a super-frame of up to 128 segments into UDP_SEGMENT sends; one of more goes a send per segment", () => {
    for (const [payload, gathered] of [[2008, true], [2009, false]] as const) {
      const { router, io, counters } = setup(type, 1450, { segmenting: true });
      // gso_size 16: 2008 bytes of payload make a 2048-byte packet, exactly 128 x 16
      router.fromPort(POD_A.port, tsoFrame(payload, 16), ETH_OFF + 54 + payload);
      const segments = Math.ceil(payload / 16);
      expect(io.gather.datagrams.length, `${payload}`).toBe(segments);
      expect(io.gather.sends.length, `${payload}`).toBe(gathered ? Math.ceil(segments / 64) : segments);
      expect(counters.sw(SwitchCounter.Routed)).toBe(segments);
    }
  });

  it("segments sent one per send that the socket refuses are each a tx_error on the tunnel", () => {
    const { router, io, drops, tunnel } = setup(type, 1450);
    io.failPeers = true;
    router.fromPort(POD_A.port, tsoFrame(5000, 1000), ETH_OFF + 54 + 5000);
    expect(drops(tunnel)).toEqual({ drop_tx_error: 5 });
    expect(drops(POD_A.port)).toEqual({});
  });

  it("an Ethernet header alone, of IPv4 to the gateway MAC, is dropped as ipv4_truncated", () => {
    const { router, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, ETH_OFF + 14)).toBe(true);
    expect(drops(POD_A.port)).toEqual({ drop_ipv4_truncated: 1 });
  });
});

describe.each(PACKET_BACKENDS)("answers that cannot be written (%s)", (type) => {
  // The gateway counts an answer when it makes it; port out, after it, counts a write that
  // fails as tx_error on the in-port (here the port the answer goes back out of). Before the
  // stages, icmp_sent and arp_replies counted only answers written (see the report to the lead).
  it("an ICMP error or ARP reply the port refuses is a tx_error on that port; the drop is still counted", () => {
    const { router, io, drops, counters } = setup(type);
    io.failPorts = true;
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.200.1" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    expect(counters.sw(SwitchCounter.IcmpSent)).toBe(1);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 1, drop_tx_error: 1 });
    expect(counters.portSnapshot(POD_A.port).tx_frames).toBe(0);
    const b = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: POD_A.mac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
    emitArp({ operation: 1, senderMac: POD_A.mac, senderIp: POD_A.ip, targetMac: "00:00:00:00:00:00", targetIp: GW }, b, ETH_OFF + 14);
    expect(router.fromPort(POD_A.port, b, b.length)).toBe(true);
    expect(counters.sw(SwitchCounter.ArpReplies)).toBe(1);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 1, drop_tx_error: 2 });
    expect(counters.portSnapshot(POD_A.port).tx_frames).toBe(0);
    expect(io.toPorts).toEqual([]);
  });

  it("a packet for the gateway that tapnet0 refuses is a tx_error on the tunnel, not written", () => {
    const { router, io, drops, counters, tunnel } = setup(type);
    io.failPorts = true;
    const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: GW });
    router.fromTunnel(slot, len, ip(ADDR[1]), 0);
    expect(drops(tunnel)).toEqual({ drop_tx_error: 1 });
    expect(io.toPorts).toEqual([]);
    expect(counters.portSnapshot(GATEWAY_PORT).tx_frames).toBe(0);
    // deliver counts it when it decides, before port out fails to write it (before the stages: 0)
    expect(counters.sw(SwitchCounter.Delivered)).toBe(1);
  });

  it("an ICMP packet without even an ICMP header gets no error, whatever the padding after it", () => {
    const { router, io, drops } = setup(type);
    const f = new Uint8Array(ETH_OFF + 60).fill(8); // padding that reads as an echo request
    f.fill(0, 0, ETH_OFF);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, f, ETH_OFF);
    emitIpv4({ tos: 0, id: 1, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1, src: POD_A.ip, dst: "10.244.200.1", payloadLen: 0 }, f, ETH_OFF + 14);
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 1 });
  });
});

describe.each(PACKET_BACKENDS)("ARP requests for pods the tunnel brings packets for (%s)", (type) => {
  it("are asked again a second later (not sooner), as exact bytes, flooded to every port but tapnet0", () => {
    const { router, io, counters } = setup(type);
    for (const now of [10, 10.999, 11]) {
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: "10.244.1.77" });
      router.fromTunnel(slot, len, ip(ADDR[1]), now);
    }
    expect(counters.sw(SwitchCounter.ArpRequests)).toBe(2);
    expect(io.toMacs.map((m) => m.except)).toEqual([GATEWAY_PORT, GATEWAY_PORT]);
    const golden = "00".repeat(ETH_OFF) + "ffffffffffff" + "0a580af40101" + "0806" +
      "0001080006040001" + "0a580af40101" + "0af40101" + "000000000000" + "0af4014d";
    expect(io.toMacs.map((m) => hex(m.bytes))).toEqual([golden, golden]);
  });

  it("are asked per address: another address is asked for at once", () => {
    const { router, counters } = setup(type);
    for (const dst of ["10.244.1.77", "10.244.1.78"]) {
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst });
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
    }
    expect(counters.sw(SwitchCounter.ArpRequests)).toBe(2);
  });
});

describe("tapnet backend, receiving", () => {
  // Node 2 (self 1) receives from node 1 (ADDR[0]); its pods are 10.244.2.0/24, its gateway 10.244.2.1.
  const POD = { ip: "10.244.2.7", mac: "0a:58:0a:f4:02:07" };
  const GW2_MAC = "0a:58:0a:f4:02:01";

  function receiver() {
    const { router, io, counters, drops: dropsOn } = setupWith(tapnetConfig(1));
    router.neighbors.learn(ip(POD.ip), 0x0a58, 0x0af40207);
    const drops = () => dropsOn(router.tunnelPort);
    /** Sends `frame` as node 1's tapnet backend would, and feeds its datagrams to the router as one GRO run. */
    const receive = (frame: Uint8Array) => {
      const sink = new CollectingSink();
      const sender = makeBackend(tapnetConfig(0), sink);
      expect(sender.send(frame, 0, frame.length, 1)).toBeGreaterThan(0);
      sender.flush();
      const all = sink.datagrams.map((d) => d.bytes);
      const slot = new Uint8Array(all.reduce((n, d) => n + d.length, 0));
      let o = 0;
      for (const d of all) { slot.set(d, o); o += d.length; }
      router.fromTunnel(slot, o, ip(ADDR[0]), 0, all[0].length);
      return all.length;
    };
    return { router, io, counters, drops, receive };
  }

  /** A plain frame from pod A (node 1) as its TAP gives it: UDP, `payload` bytes, a valid checksum. */
  function plain(dst: string, payload: number): Uint8Array {
    return ipFrame({ eth: { dst: "0e:00:c0:a8:38:0c", src: "0e:00:c0:a8:38:0b" }, src: POD_A.ip, dst, payloadLen: payload });
  }

  /** What the pod gets: `f` from the gateway MAC to `mac`, TTL one less, the header checksum redone, the virtio_net_hdr `vnet`. */
  function delivered(f: Uint8Array, dstMac: string, srcMac: string, vnet: number[], ttlDown = 1): string {
    const g = f.slice();
    g.set(vnet, 0);
    emitEthernet({ dst: dstMac, src: srcMac, vlans: [], etherType: 0x0800 }, g, ETH_OFF);
    const o = ETH_OFF + 14;
    g[o + 8] -= ttlDown;
    put16(g, o + 10, 0);
    put16(g, o + 10, internetChecksum(g, o, 20));
    return hex(g);
  }

  it("a plain frame of several datagrams is delivered whole, its UDP checksum verified over all of it (DATA_VALID)", () => {
    const { router, io, counters, drops, receive } = receiver();
    const f = plain(POD.ip, 4000);
    const n = receive(f);
    expect(n).toBe(3);
    expect(drops()).toEqual({});
    expect(io.toMacs.map((m) => hex(m.bytes))).toEqual([delivered(f, POD.mac, GW2_MAC, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0])]);
    expect(counters.portSnapshot(router.tunnelPort)).toMatchObject({ rx_frames: 3, rx_bytes: f.length + 3 * 12 }); // a 12-byte header per datagram
    expect(counters.sw(SwitchCounter.Delivered)).toBe(1);
  });

  it("a plain frame with a payload byte wrong is dropped as tunnel_bad_checksum", () => {
    const { io, drops, receive } = receiver();
    const f = plain(POD.ip, 4000);
    f[f.length - 100] ^= 1;
    receive(f);
    expect(io.toMacs).toEqual([]);
    expect(drops()).toEqual({ drop_tunnel_bad_checksum: 1 });
  });

  it("a frame that still asks for its checksum (NEEDS_CSUM) is passed on with its virtio_net_hdr, not verified", () => {
    const { io, drops, counters, receive } = receiver();
    const f = plain(POD.ip, 1000);
    put16(f, ETH_OFF + 34 + 6, 0x1234); // not the sum: the pod's kernel, told to, does it
    const hdr = [VNET_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 6, 0];
    f.set(hdr, 0);
    receive(f);
    expect(drops()).toEqual({});
    expect(io.toMacs.map((m) => hex(m.bytes))).toEqual([delivered(f, POD.mac, GW2_MAC, hdr)]);
    expect(counters.sw(SwitchCounter.InnerCsumCompleted)).toBe(0);
  });

  it("a frame for the gateway address goes to tapnet0, from the sender's VTEP MAC, TTL kept", () => {
    const { io, receive } = receiver();
    const f = plain("10.244.2.1", 2000);
    receive(f);
    expect(io.toPorts.map((p) => p.port)).toEqual([GATEWAY_PORT]);
    expect(hex(io.toPorts[0].bytes)).toBe(delivered(f, GW2_MAC, VTEP[0], [2, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0));
  });

  it("a frame that is not IPv4, or shorter than an Ethernet header, is dropped as tunnel_not_ipv4", () => {
    const { io, drops, receive } = receiver();
    const arp = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: POD_A.mac, vlans: [], etherType: 0x0806 }, arp, ETH_OFF);
    receive(arp);
    receive(plain(POD.ip, 10).subarray(0, ETH_OFF + 13));
    expect(io.toMacs).toEqual([]);
    expect(drops()).toEqual({ drop_tunnel_not_ipv4: 2 });
  });

  it("every datagram of a GRO run from a stranger or from itself is counted, and dropped as tunnel_unknown_peer", () => {
    const { router, counters, drops } = receiver();
    const slot = new Uint8Array(3000);
    router.fromTunnel(slot, 3000, ip("192.168.56.99"), 0, 1472); // 1472 + 1472 + 56
    router.fromTunnel(slot, 1000, ip(ADDR[1]), 0); // node 2 itself, one datagram
    router.fromTunnel(slot, 0, ip(ADDR[1]), 0); // an empty datagram is one too
    expect(drops()).toEqual({ drop_tunnel_unknown_peer: 5 });
    expect(counters.portSnapshot(router.tunnelPort)).toMatchObject({ rx_frames: 5, rx_bytes: 4000 });
  });

  it("a datagram the tapnet format refuses is counted on the tunnel with its reason", () => {
    const { router, drops } = receiver();
    router.fromTunnel(new Uint8Array(12), 12, ip(ADDR[0]), 0); // no longer than its header
    expect(drops()).toEqual({ drop_tapnet_truncated: 1 });
  });

  it("a frame of 23 bytes is not IPv4, whatever lies after it; one of 24 (an Ethernet header alone) is ipv4_truncated", () => {
    const { io, drops, receive } = receiver();
    receive(plain(POD.ip, 10)); // leaves an IPv4 EtherType behind in the backend's buffer
    expect(io.toMacs).toHaveLength(1);
    receive(plain(POD.ip, 10).slice(0, ETH_OFF + 13));
    expect(drops()).toEqual({ drop_tunnel_not_ipv4: 1 });
    receive(plain(POD.ip, 10).slice(0, ETH_OFF + 14));
    expect(drops()).toEqual({ drop_tunnel_not_ipv4: 1, drop_ipv4_truncated: 1 });
  });

  it("a frame whose IPv4 total length is more than it holds is dropped as ipv4_bad_total_len", () => {
    const { io, drops, receive } = receiver();
    const f = plain(POD.ip, 100);
    const o = ETH_OFF + 14;
    put16(f, o + 2, f.length - o + 4);
    put16(f, o + 10, 0);
    put16(f, o + 10, internetChecksum(f, o, 20));
    receive(f);
    expect(io.toMacs).toEqual([]);
    expect(drops()).toEqual({ drop_ipv4_bad_total_len: 1 });
  });

  it("a super-frame whose checksum is already complete (GSO without NEEDS_CSUM) is passed on as it is, not verified", () => {
    const { io, drops, receive } = receiver();
    const f = plain(POD.ip, 3000);
    put16(f, ETH_OFF + 34 + 6, 0x1234); // wrong, and not the router's to check: the pod's TAP segments it
    const hdr = [0, GSO_UDP_L4, 42, 0, 0xe8, 0x03, 0, 0, 0, 0]; // gso_size 1000
    f.set(hdr, 0);
    receive(f);
    expect(drops()).toEqual({});
    expect(io.toMacs.map((m) => hex(m.bytes))).toEqual([delivered(f, POD.mac, GW2_MAC, hdr)]);
  });
});

describe("tapnet backend, sending", () => {
  /** A 3-datagram frame sent, then sent again into a socket that refuses it. */
  function sendTwice(segmenting: boolean) {
    const { router, io, counters } = setupWith(tapnetConfig(0), { segmenting });
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 3000 });
    router.fromPort(POD_A.port, f, f.length);
    const sent = io.gather.datagrams;
    expect(sent.length).toBe(3);
    expect(io.gather.sends).toHaveLength(segmenting ? 1 : 3);
    expect(counters.portSnapshot(router.tunnelPort)).toMatchObject({ tx_frames: 3, tx_bytes: sent.reduce((n, d) => n + d.bytes.length, 0) });
    io.gather.failing = true;
    router.fromPort(POD_A.port, f, f.length);
    expect(counters.portSnapshot(POD_A.port)).not.toHaveProperty("drop_tx_error");
    return counters.portSnapshot(router.tunnelPort);
  }

  it("counts the datagrams and bytes sent on the tunnel; a failed send is a tx_error there, once per frame (UDP_SEGMENT)", () => {
    expect(sendTwice(true)).toMatchObject({ tx_frames: 3, drop_tx_error: 1 });
  });

  // BUG in src (reported): without UDP_SEGMENT, DatagramRun.close() flushes each datagram itself
  // and reports failed(1) for each, so a 3-datagram frame lost counts 3 tx_errors, and the
  // frame's later datagrams are still sent after the first failed (tapnet.ts's `run.flush(1)`
  // finds the run empty). Flip to `it` once fixed.
  it("counts a frame lost to a failed send once without UDP_SEGMENT too", () => {
    expect(sendTwice(false)).toMatchObject({ tx_frames: 3, drop_tx_error: 1 });
  });
});

describe("edges found by mutation testing", () => {
  it("a router never told its gateway port drops what is for the gateway address as no_port", () => {
    const io = new FakeIo();
    const router = new TestRouter(config("udp"), io);
    expect(router.gatewayPort).toBe(-1);
    const { slot, len } = datagram(router, "udp", { src: "10.244.2.5", dst: GW });
    router.fromTunnel(slot, len, ip(ADDR[1]), 0);
    expect(io.toPorts).toEqual([]);
    expect(io.toMacs).toEqual([]);
    expect(router.state.counters.portSnapshot(router.tunnelPort)).toMatchObject({ drop_no_port: 1 });
  });

  it("a MAC that matches the gateway's or a VTEP's in its last four bytes only is not theirs", () => {
    const { router, io } = setup();
    const f = ipFrame({ eth: { dst: "0b:58:0a:f4:01:01" }, src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(false);
    const g = ipFrame({ eth: { dst: "0f:00:c0:a8:38:0c", src: GW_MAC }, src: GW, dst: "10.244.2.5" });
    expect(router.fromPort(GATEWAY_PORT, g, g.length)).toBe(false);
    expect(io.toPeers).toEqual([]);
  });

  it("an IPv6 frame to the gateway MAC is left to the bridge, not dropped", () => {
    const { router, io, drops } = setup();
    const f = ipFrame({ eth: { etherType: 0x86dd }, src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(false);
    expect(drops(POD_A.port)).toEqual({});
    expect(io.toMacs).toHaveLength(1); // flooded: the gateway MAC is not learned yet
  });

  it("node 2 routes to node 1 (index 0) and takes node 1's datagrams, merged or not", () => {
    for (const type of PACKET_BACKENDS) {
      const { router, io, counters } = setupWith({ ...config(type), self: 1, gatewayIp: ip("10.244.2.1"), gatewayMac: "0a:58:0a:f4:02:01" }, { merge: true });
      const f = ipFrame({ eth: { dst: "0a:58:0a:f4:02:01", src: "0a:58:0a:f4:02:07" }, src: "10.244.2.7", dst: POD_A.ip });
      expect(router.fromPort(1, f, f.length), type).toBe(true);
      expect(io.toPeers.map((p) => p.peer), type).toEqual([0]);
      router.neighbors.learn(ip("10.244.2.7"), 0x0a58, 0x0af40207);
      const d = encap(type, ipFrame({ src: POD_A.ip, dst: "10.244.2.7" }).subarray(ETH_OFF + 14), VTEP[1]);
      const slot = new Uint8Array(router.recvOff + d.length);
      slot.set(d, router.recvOff);
      router.fromTunnel(slot, d.length, ip(ADDR[0]), 0);
      expect(io.toMacs, type).toHaveLength(1);
      const hdr = encap(type, new Uint8Array(0), VTEP[1]); // for node 2's VTEP MAC (vxlan)
      const segs = run(3, { src: POD_A.ip, dst: "10.244.2.7" }).map((s) => segDatagram(type, s));
      for (const s of segs) s.set(hdr);
      const size = segs[0].length;
      const runSlot = new Uint8Array(router.recvOff + 3 * size);
      segs.forEach((s, k) => runSlot.set(s, router.recvOff + k * size));
      router.fromTunnel(runSlot, 3 * size, ip(ADDR[0]), 0, size);
      // merged where the backend wants it (udp, vxlan); seq delivers them one by one
      const merges = router.stages.backend!.mergeReceived;
      expect(counters.sw(SwitchCounter.Coalesced), type).toBe(merges ? 3 : 0);
      expect(io.toMacs, type).toHaveLength(merges ? 2 : 4);
      expect(counters.portSnapshot(router.tunnelPort), type).toMatchObject({ rx_frames: 4 });
    }
  });

  it("a GRO run from a stranger or from this node itself is dropped as tunnel_unknown_peer, whatever its source", () => {
    for (const type of PACKET_BACKENDS) {
      const r = setup(type, undefined, { merge: true });
      r.router.neighbors.learn(ip(POD_B.ip), POD_B_HI, POD_B_LO);
      const segs = run(3, { src: "8.8.8.8" }).map((s) => segDatagram(type, s));
      const size = segs[0].length;
      for (const from of ["192.168.56.99", ADDR[0]]) {
        const slot = new Uint8Array(r.router.recvOff + 3 * size);
        segs.forEach((s, k) => slot.set(s, r.router.recvOff + k * size));
        r.router.fromTunnel(slot, 3 * size, ip(from), 0, size);
      }
      expect(r.io.toMacs, type).toEqual([]);
      expect(r.drops(r.tunnel), type).toEqual({ drop_tunnel_unknown_peer: 6 });
    }
  });

  it("a merged super-frame is written to the pod's port only (no flood exception)", () => {
    const r = groRun("udp", run(3));
    expect(r.io.toMacs.map((m) => m.except)).toEqual([-1]);
  });

  it("small frames to one peer in a batch share a send when the socket segments, and a send each when not", () => {
    for (const type of ALL_BACKENDS) {
      for (const segmenting of [false, true]) {
        const { router, io, counters, tunnel } = setupWith(type === "tapnet" ? tapnetConfig(0) : config(type), { segmenting });
        const to = (dst: string, payloadLen = 32) => ({ port: POD_A.port, buf: ipFrame({ src: POD_A.ip, dst, payloadLen }) });
        // three to node 2, one shorter (it ends the run), one more to node 2, then node 3, then node 2 again
        router.fromPorts([to("10.244.2.5"), to("10.244.2.6"), to("10.244.2.7", 20), to("10.244.2.8"), to("10.244.3.9"), to("10.244.2.5")]);
        const what = `${type}, segmenting ${segmenting}`;
        expect(io.gather.datagrams.map((d) => d.peer), what).toEqual([1, 1, 1, 1, 2, 1]);
        expect(io.gather.sends.map((s) => s.peer), what).toEqual(segmenting ? [1, 1, 2, 1] : [1, 1, 1, 1, 2, 1]);
        expect(counters.portSnapshot(tunnel).tx_frames, what).toBe(6);
        expect(counters.sw(SwitchCounter.Routed), what).toBe(6);
      }
    }
  });

  it("gathered segments fill a send up to exactly 65507 bytes; one byte more starts a second send", () => {
    // udp backend: each datagram is 40 bytes of headers and its payload; 47 x 1390 + 177 = 65507
    for (const [payload, sends] of [[47 * 1350 + 137, 1], [47 * 1350 + 138, 2]] as const) {
      const { router, io } = setup("udp", 1450, { segmenting: true });
      router.fromPort(POD_A.port, tsoFrame(payload, 1350), ETH_OFF + 54 + payload);
      expect(io.gather.sends.map((s) => s.bytes), `${payload}`).toEqual(sends === 1 ? [65507] : [65330, 40 + 138]);
      expect(io.gather.datagrams).toHaveLength(48);
    }
  });

  it("a super-frame the segmenter refuses is dropped with its reason, and nothing is sent", () => {
    for (const segmenting of [false, true]) {
      const { router, io, drops } = setup("udp", 1450, { segmenting });
      const f = tsoFrame(5000, 1000);
      f[ETH_OFF + 14 + 9] = 17; // a TCPv4 super-frame that is UDP
      router.fromPort(POD_A.port, f, f.length);
      const g = tsoFrame(5000, 1000);
      g[4] = g[5] = 0; // gso_size 0
      router.fromPort(POD_A.port, g, g.length);
      expect(drops(POD_A.port), `segmenting ${segmenting}`).toEqual({ drop_gso_malformed: 1, drop_gso_bad_size: 1 });
      expect(io.gather.sends, `segmenting ${segmenting}`).toEqual([]);
      expect(io.toPeers, `segmenting ${segmenting}`).toEqual([]);
    }
  });
});

describe.each(PACKET_BACKENDS)("inner checksums at their edges (%s)", (type) => {
  /** Delivers the IPv4 packet `pkt` from node 2, as backend `type` carries it. */
  function deliverOne(pkt: Uint8Array) {
    const r = setup(type);
    r.router.neighbors.learn(ip(POD_B.ip), POD_B_HI, POD_B_LO);
    const d = encap(type, pkt);
    const slot = new Uint8Array(r.router.recvOff + d.length);
    slot.set(d, r.router.recvOff);
    r.router.fromTunnel(slot, d.length, ip(ADDR[1]), 0);
    return r;
  }

  it("a bare TCP header (a pure ACK) and an empty UDP datagram are verified and marked DATA_VALID", () => {
    const ack = segDatagram("udp", { seq: 5, payload: 0 });
    const udp = ipFrame({ src: "10.244.2.5", dst: POD_B.ip, payloadLen: 0 }).slice(ETH_OFF + 14);
    for (const pkt of [ack, udp]) {
      const r = deliverOne(pkt);
      expect(r.io.toMacs.map((m) => m.bytes[0])).toEqual([2]);
    }
  });

  it("a TCP checksum of zero is not \"no checksum\": it is checked, and dropped when wrong", () => {
    const pkt = segDatagram("udp", { seq: 5, payload: 100 });
    put16(pkt, 20 + 16, 0);
    const r = deliverOne(pkt);
    expect(r.io.toMacs).toEqual([]);
    expect(r.drops(r.tunnel)).toEqual({ drop_tunnel_bad_checksum: 1 });
  });

  /** A packet whose right checksum is 0 (its other words sum to 0xffff), left partial by the sender. */
  function zeroSum(proto: 6 | 17): Uint8Array {
    const pkt = proto === 6 ? segDatagram("udp", { seq: 5, payload: 100 }) : ipFrame({ src: "10.244.2.5", dst: POD_B.ip, payloadLen: 100 }).slice(ETH_OFF + 14);
    const field = 20 + (proto === 6 ? 16 : 6);
    const l4len = pkt.length - 20;
    const pseudo = pseudoHeaderSum(ip("10.244.2.5"), ip(POD_B.ip), proto, l4len);
    put16(pkt, field, 0);
    put16(pkt, pkt.length - 2, 0);
    const rest = ~internetChecksum(pkt, 20, l4len, pseudo) & 0xffff; // the folded sum of everything else
    put16(pkt, pkt.length - 2, 0xffff - rest);
    expect(internetChecksum(pkt, 20, l4len, pseudo)).toBe(0);
    put16(pkt, field, ~internetChecksum(new Uint8Array(0), 0, 0, pseudo) & 0xffff); // partial: the pseudo-header sum
    return pkt;
  }

  it("completing a partial UDP checksum that comes to 0 writes 0xffff (0 means none); a TCP one stays 0", () => {
    const udp = deliverOne(zeroSum(17));
    expect(udp.io.toMacs).toHaveLength(1);
    expect(hex(udp.io.toMacs[0].bytes.subarray(ETH_OFF + 34 + 6, ETH_OFF + 34 + 8))).toBe("ffff");
    const tcp = deliverOne(zeroSum(6));
    expect(tcp.io.toMacs).toHaveLength(1);
    expect(hex(tcp.io.toMacs[0].bytes.subarray(ETH_OFF + 34 + 16, ETH_OFF + 34 + 18))).toBe("0000");
    expect(udp.counters.sw(SwitchCounter.InnerCsumCompleted) + tcp.counters.sw(SwitchCounter.InnerCsumCompleted)).toBe(2);
  });
});

// The routing stages of a switch, with in-memory ports and tunnel: what they route, answer,
// drop. The backend-generic cases run over every packet backend, the test-only one included.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { emitArp, parseArp } from "../../src/wire/arp.ts";
import { get16, put16, put32 } from "../../src/wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { emitEthernet, parseEthernet } from "../../src/wire/ethernet.ts";
import { parseIcmp } from "../../src/wire/icmp.ts";
import { emitIpv4, parseIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { emitVirtioNetHdr, GSO_TCPV4, parseVirtioNetHdr, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { segmentToArrays } from "../../src/wire/gso.ts";
import { emitVxlan } from "../../src/wire/vxlan.ts";
import { CollectingSink } from "../support/gather.ts";
import type { SeqBackend } from "../support/seq-backend.ts";
import {
  ADDR, config, datagram, FakeIo, GATEWAY_PORT, GW, GW_MAC, INNER_IP, ip, ipFrame, ipHeaderValid, PACKET_BACKENDS, type Packet, POD_A, POD_B,
  setup, tapnetConfig, TestRouter, tsoFrame, VTEP,
} from "./router-support.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("ARP for the gateway", () => {
  it("is answered by the switch with the gateway MAC, to the asker, and teaches the neighbour table", () => {
    const { router, io, counters } = setup();
    const b = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: POD_A.mac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
    emitArp({ operation: 1, senderMac: POD_A.mac, senderIp: POD_A.ip, targetMac: "00:00:00:00:00:00", targetIp: GW }, b, ETH_OFF + 14);
    expect(router.fromPort(POD_A.port, b, b.length)).toBe(true);
    expect(io.toPorts).toHaveLength(1);
    const reply = io.toPorts[0];
    expect(reply.port).toBe(POD_A.port);
    expect(parseEthernet(reply.bytes.subarray(ETH_OFF))).toMatchObject({ dst: POD_A.mac, src: GW_MAC, etherType: 0x0806 });
    expect(parseArp(reply.bytes.subarray(ETH_OFF + 14))).toEqual({ operation: 2, senderMac: GW_MAC, senderIp: GW, targetMac: POD_A.mac, targetIp: POD_A.ip });
    expect(router.neighbors.entries()).toEqual([{ ip: POD_A.ip, mac: POD_A.mac }]);
    expect(counters.sw(SwitchCounter.ArpReplies)).toBe(1);
  });

  it("leaves other ARP to the bridge, but still learns the sender", () => {
    const { router, io } = setup();
    const b = new Uint8Array(ETH_OFF + 14 + 28);
    emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: POD_B.mac, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
    emitArp({ operation: 1, senderMac: POD_B.mac, senderIp: POD_B.ip, targetMac: "00:00:00:00:00:00", targetIp: POD_A.ip }, b, ETH_OFF + 14);
    expect(router.fromPort(POD_B.port, b, b.length)).toBe(false);
    expect(io.toPorts).toEqual([]);
    expect(router.neighbors.entries()).toEqual([{ ip: POD_B.ip, mac: POD_B.mac }]);
  });
});

describe.each(PACKET_BACKENDS)("routing to another node (%s)", (type) => {
  const inner = INNER_IP[type];

  it("the datagram carries the IPv4 packet, TTL decremented, checksum still valid", () => {
    const { router, io, counters } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    expect(io.toPeers).toHaveLength(1);
    const { peer, bytes } = io.toPeers[0];
    expect(peer).toBe(1);
    expect(parseIpv4(bytes.subarray(inner))).toMatchObject({ src: POD_A.ip, dst: "10.244.2.5", ttl: 63, payloadLen: 40 });
    expect(ipHeaderValid(bytes, inner)).toBe(true);
    expect(bytes.length).toBe(inner + 20 + 8 + 32);
    expect(Array.from(bytes.subarray(inner + 20))).toEqual(Array.from(f.subarray(ETH_OFF + 34))); // UDP header and data as they were
    expect(counters.sw(SwitchCounter.Routed)).toBe(1);
    expect(counters.portSnapshot(router.tunnelPort)).toMatchObject({ tx_frames: 1, tx_bytes: inner + 60 });
  });

  it("takes the node kernel's frames sent to a remote VTEP MAC through tapnet0, but not a pod's", () => {
    const { router, io } = setup(type);
    const f = ipFrame({ eth: { dst: VTEP[1], src: GW_MAC }, src: GW, dst: "10.244.2.5" });
    expect(router.fromPort(GATEWAY_PORT, f, f.length)).toBe(true);
    expect(io.toPeers.map((p) => p.peer)).toEqual([1]);
    const g = ipFrame({ eth: { dst: VTEP[1] }, src: POD_A.ip, dst: "10.244.2.5" });
    expect(router.fromPort(POD_A.port, g, g.length)).toBe(false);
    expect(io.toPeers).toHaveLength(1);
  });

  it("leaves what is for the node itself, or beyond the cluster, to the bridge (tapnet0)", () => {
    const { router, io } = setup(type);
    for (const dst of [GW, "192.168.56.11", "8.8.8.8"]) {
      const f = ipFrame({ src: POD_A.ip, dst });
      expect(router.fromPort(POD_A.port, f, f.length), dst).toBe(false);
    }
    expect(io.toPeers).toEqual([]);
    // The bridge has them: tapnet0's MAC is not learned yet, so each is flooded.
    expect(io.toMacs.map((m) => m.except)).toEqual([POD_A.port, POD_A.port, POD_A.port]);
  });

  it("routes a packet sent to the gateway MAC for a pod of this node to that pod: its MAC, TTL down; asks for an unknown one", () => {
    const { router, io, counters } = setup(type);
    const ask = ipFrame({ src: POD_A.ip, dst: POD_B.ip });
    router.fromPort(POD_A.port, ask, ask.length);
    // POD_B's MAC is not known yet: an ARP request from the gateway, flooded; the packet dropped.
    expect(io.toMacs).toHaveLength(1);
    expect(parseArp(io.toMacs[0].bytes.subarray(ETH_OFF + 14))).toMatchObject({ operation: 1, senderIp: GW, targetIp: POD_B.ip });
    expect(counters.portSnapshot(POD_A.port).drop_neigh_unresolved).toBe(1);
    router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
    // Even back out of the port it came in on (a hairpin's way back): the router decides, not the bridge.
    for (const from of [POD_A.port, POD_B.port]) {
      const f = ipFrame({ src: POD_A.ip, dst: POD_B.ip });
      router.fromPort(from, f, f.length);
    }
    expect(io.toPeers).toEqual([]);
    const sent = [...io.toPorts, ...io.toMacs.slice(1).map((m) => ({ port: -1, bytes: m.bytes }))];
    expect(sent).toHaveLength(2);
    for (const s of sent) {
      expect(parseEthernet(s.bytes.subarray(ETH_OFF))).toMatchObject({ dst: POD_B.mac, src: GW_MAC });
      expect(parseIpv4(s.bytes.subarray(ETH_OFF + 14))).toMatchObject({ src: POD_A.ip, dst: POD_B.ip, ttl: 63 });
      expect(ipHeaderValid(s.bytes, ETH_OFF + 14)).toBe(true);
    }
  });

  it("does not touch frames for other MACs", () => {
    const { router, io } = setup(type);
    const f = ipFrame({ eth: { dst: POD_B.mac }, src: POD_A.ip, dst: "10.244.2.5" });
    const sent = f.slice();
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(false);
    expect(io.toPeers).toEqual([]);
    expect(io.toMacs.map((m) => Array.from(m.bytes))).toEqual([Array.from(sent)]); // TTL untouched
  });

  it("completes a partial checksum before sending", () => {
    const { router, io } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
    // As the kernel leaves it with checksum offload: the pseudo-header sum in the field.
    const udpOff = ETH_OFF + 34;
    put16(f, udpOff + 6, pseudoHeaderSum(ip(POD_A.ip), ip("10.244.2.5"), 17, 40) % 0xffff);
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6 }, f, 0);
    router.fromPort(POD_A.port, f, f.length);
    const d = io.toPeers[0].bytes;
    expect(internetChecksum(d, inner + 20, 40, pseudoHeaderSum(ip(POD_A.ip), ip("10.244.2.5"), 17, 40))).toBe(0);
  });

  it("cuts a TCP super-frame into segments that fit the tunnel, each with valid checksums", () => {
    const { router, io, counters } = setup(type, 1450);
    const mss = 1410;
    const payload = 10_000;
    const b = new Uint8Array(ETH_OFF + 14 + 20 + 20 + payload);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
    emitIpv4({ tos: 0, id: 100, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: POD_A.ip, dst: "10.244.2.5", payloadLen: 20 + payload }, b, ETH_OFF + 14);
    emitTcp({ srcPort: 40000, dstPort: 5201, seq: 1000, ack: 1, flags: 0x18, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
    for (let i = 0; i < payload; i++) b[ETH_OFF + 54 + i] = (i * 7) & 0xff;
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: mss, csumStart: 34, csumOffset: 16 }, b, 0);
    expect(router.fromPort(POD_A.port, b, b.length)).toBe(true);
    expect(io.toPeers).toHaveLength(Math.ceil(payload / mss));
    const got: number[] = [];
    for (const { peer, bytes } of io.toPeers) {
      expect(peer).toBe(1);
      const ipPkt = bytes.subarray(inner);
      const r = parseIpv4(ipPkt);
      if (typeof r === "number") throw new Error(`bad segment ${r}`);
      expect(20 + r.payloadLen).toBeLessThanOrEqual(1450);
      expect(r.ttl).toBe(63);
      const tcpLen = r.payloadLen;
      expect(internetChecksum(ipPkt, 20, tcpLen, pseudoHeaderSum(ip(POD_A.ip), ip("10.244.2.5"), 6, tcpLen))).toBe(0);
      got.push(...ipPkt.subarray(40, 20 + tcpLen));
    }
    expect(got).toEqual(Array.from({ length: payload }, (_, i) => (i * 7) & 0xff));
    expect(counters.sw(SwitchCounter.Routed)).toBe(Math.ceil(payload / mss));
  });
});

describe("routing to another node: each backend's wire format", () => {

  it("vxlan: VXLAN header with the VNI, inner frame from our VTEP MAC to theirs", () => {
    const { router, io } = setup("vxlan");
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.3.9" });
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    const { peer, bytes } = io.toPeers[0];
    expect(peer).toBe(2);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x08, 0, 0, 0, 0, 0, 1, 0]);
    expect(parseEthernet(bytes.subarray(8))).toMatchObject({ dst: VTEP[2], src: VTEP[0], etherType: 0x0800 });
    expect(parseIpv4(bytes.subarray(22))).toMatchObject({ dst: "10.244.3.9", ttl: 63 });
    expect(bytes.length).toBe(8 + 14 + 60);
  });

  it("seq: each datagram behind a big-endian sequence number, counted per peer from 0", () => {
    const { router, io } = setup("seq");
    for (const dst of ["10.244.2.5", "10.244.3.9", "10.244.2.6", "10.244.2.7", "10.244.3.1"]) {
      const f = ipFrame({ src: POD_A.ip, dst });
      router.fromPort(POD_A.port, f, f.length);
    }
    expect(io.toPeers.map((p) => [p.peer, hex(p.bytes.subarray(0, 4))])).toEqual([
      [1, "00000000"], [2, "00000000"], [1, "00000001"], [1, "00000002"], [2, "00000001"],
    ]);
    expect(io.toPeers.map((p) => parseIpv4(p.bytes.subarray(4)))).toMatchObject([
      { dst: "10.244.2.5" }, { dst: "10.244.3.9" }, { dst: "10.244.2.6" }, { dst: "10.244.2.7" }, { dst: "10.244.3.1" },
    ]);
  });

  it("seq: the receiver keeps the last sequence number of each peer; a datagram too short for it and an IPv4 header is tunnel_not_ipv4", () => {
    const { router, drops, tunnel } = setup("seq");
    router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
    const d = datagram(router, "seq", { src: "10.244.2.5", dst: POD_B.ip });
    put32(d.slot, router.recvOff, 0xfffffffe);
    router.fromTunnel(d.slot, d.len, ip(ADDR[1]), 0);
    const backend = router.stages.backend as SeqBackend;
    expect(Array.from(backend.lastSeq)).toEqual([-1, 0xfffffffe, -1]);
    for (const len of [0, 3, 4 + 19]) router.fromTunnel(new Uint8Array(router.recvOff + 64).fill(0x45), len, ip(ADDR[2]), 0);
    expect(drops(tunnel)).toEqual({ drop_tunnel_not_ipv4: 3 });
    expect(Array.from(backend.lastSeq)).toEqual([-1, 0xfffffffe, -1]);
    // 24 bytes pass the backend: the IPv4 header (all 0x45: total length 0x4545) is deliver's to refuse.
    router.fromTunnel(new Uint8Array(router.recvOff + 64).fill(0x45), 4 + 20, ip(ADDR[2]), 0);
    expect(drops(tunnel)).toEqual({ drop_tunnel_not_ipv4: 3, drop_ipv4_bad_total_len: 1 });
    expect(Array.from(backend.lastSeq)).toEqual([-1, 0xfffffffe, 0x45454545]);
  });
});

describe("super-frames to packet backends, segments gathered into UDP_SEGMENT sends", () => {
  for (const type of PACKET_BACKENDS) {
    it(`${type}: the same datagrams as one send per segment, at most 64 and 65507 bytes a send, all but a send's last of its size`, () => {
      for (const [payload, mss] of [[60_000, 1410], [64_000, 1000], [5000, 1410], [1410, 1410], [65_000, 536]]) {
        const one = setup(type, 1450);
        one.router.fromPort(POD_A.port, tsoFrame(payload, mss), ETH_OFF + 54 + payload);
        const gathered = setup(type, 1450, { segmenting: true });
        gathered.router.fromPort(POD_A.port, tsoFrame(payload, mss), ETH_OFF + 54 + payload);
        const what = `${payload} B, mss ${mss}`;
        const segments = Math.ceil(payload / mss);
        expect(one.io.gather.sends.length, what).toBe(segments); // a socket that does not segment: a send each
        const sent = gathered.io.gather.datagrams;
        expect(sent.map((d) => d.peer), what).toEqual(one.io.toPeers.map((d) => d.peer));
        expect(sent.map((d) => d.bytes), what).toEqual(one.io.toPeers.map((d) => d.bytes));
        // As few sends as the limits allow: the datagrams are of one size but the last.
        const size = sent[0].bytes.length;
        expect(gathered.io.gather.sends.length, what).toBe(Math.ceil(segments / Math.min(64, Math.floor(65507 / size))));
        for (const [k, send] of gathered.io.gather.sends.entries()) {
          const mine = sent.filter((d) => d.send === k);
          expect(mine.length).toBeLessThanOrEqual(64);
          expect(send.bytes).toBeLessThanOrEqual(65507);
          expect(mine.slice(0, -1).every((d) => d.bytes.length === send.segment), what).toBe(true);
          expect(mine[mine.length - 1].bytes.length).toBeLessThanOrEqual(send.segment);
        }
        for (const c of ["tx_frames", "tx_bytes"] as const) expect(gathered.counters.portSnapshot(gathered.tunnel)[c], c).toBe(one.counters.portSnapshot(one.tunnel)[c]);
        expect(gathered.counters.sw(SwitchCounter.Routed)).toBe(one.counters.sw(SwitchCounter.Routed));
      }
    });
  }

  for (const type of PACKET_BACKENDS) {
    it(`${type}: a failed send loses its segments, each counted as a tx_error on the tunnel`, () => {
      const { router, io, drops, tunnel, counters } = setup(type, 1450, { segmenting: true });
      io.gather.failing = true;
      router.fromPort(POD_A.port, tsoFrame(64_000, 1000), ETH_OFF + 54 + 64_000);
      expect(drops(tunnel)).toEqual({ drop_tx_error: 64 });
      expect(drops(POD_A.port)).toEqual({});
      expect(counters.portSnapshot(tunnel)).toMatchObject({ tx_frames: 0, tx_bytes: 0 });
    });
  }
});

describe.each(PACKET_BACKENDS)("ICMP errors from the gateway (%s)", (type) => {
  function icmpOf(io: FakeIo) {
    expect(io.toPorts).toHaveLength(1);
    const f = io.toPorts[0].bytes;
    const eth = parseEthernet(f.subarray(ETH_OFF));
    const ipr = parseIpv4(f.subarray(ETH_OFF + 14));
    if (typeof ipr === "number") throw new Error(`bad ICMP IP header ${ipr}`);
    const icmpBytes = f.subarray(ETH_OFF + 34);
    expect(internetChecksum(icmpBytes, 0, icmpBytes.length)).toBe(0);
    const icmp = parseIcmp(icmpBytes);
    if (typeof icmp === "number") throw new Error(`bad ICMP ${icmp}`);
    return { port: io.toPorts[0].port, eth, ip: ipr, icmp };
  }

  it("destination unreachable for a cluster address no node owns", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.200.1" });
    const sent = f.slice(); // the error is written over the frame, in place
    expect(router.fromPort(POD_A.port, f, f.length)).toBe(true);
    const m = icmpOf(io);
    expect(m.port).toBe(POD_A.port);
    expect(m.eth).toMatchObject({ dst: POD_A.mac, src: GW_MAC });
    expect(m.ip).toMatchObject({ src: GW, dst: POD_A.ip, protocol: 1 });
    expect(m.icmp).toMatchObject({ type: 3, code: 0 });
    // the quote: the original header (TTL untouched) and 8 bytes after it
    expect(Array.from(m.icmp.data)).toEqual(Array.from(sent.subarray(ETH_OFF + 14, ETH_OFF + 14 + 28)));
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 1 });
    expect(io.toPeers).toEqual([]);
  });

  it("fragmentation needed, with the tunnel MTU, for a DF packet too large for the tunnel", () => {
    const { router, io, drops } = setup(type, 1000);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", df: true, payloadLen: 1000 });
    router.fromPort(POD_A.port, f, f.length);
    const m = icmpOf(io);
    expect(m.icmp).toMatchObject({ type: 3, code: 4, rest: 1000 });
    expect(drops(POD_A.port)).toEqual({ drop_frag_needed: 1 });
  });

  it("drops, counted, a packet too large without DF (no fragmentation here)", () => {
    const { router, io, drops } = setup(type, 1000);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 1000 });
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toEqual([]);
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_too_big: 1 });
  });

  it("time exceeded when the TTL runs out", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", ttl: 1 });
    router.fromPort(POD_A.port, f, f.length);
    expect(icmpOf(io).icmp).toMatchObject({ type: 11, code: 0 });
    expect(drops(POD_A.port)).toEqual({ drop_ttl_expired: 1 });
  });

  it("never about an ICMP error", () => {
    const { router, io, drops } = setup(type);
    const f = ipFrame({ src: POD_A.ip, dst: "10.244.200.1", protocol: 1 });
    f[ETH_OFF + 34] = 3; // an ICMP destination unreachable itself
    router.fromPort(POD_A.port, f, f.length);
    expect(io.toPorts).toEqual([]);
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_cluster_unreachable: 1 });
  });
});

describe("from the tunnel", () => {
  for (const type of PACKET_BACKENDS) {
    it(`${type}: delivers to the pod's MAC from the gateway MAC, TTL decremented`, () => {
      const { router, io, counters } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: POD_B.ip });
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toMacs).toHaveLength(1);
      const out = io.toMacs[0].bytes;
      // virtio_net_hdr: DATA_VALID (the router verified the UDP checksum), nothing else
      expect(Array.from(out.subarray(0, ETH_OFF))).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      expect(parseEthernet(out.subarray(ETH_OFF))).toMatchObject({ dst: POD_B.mac, src: GW_MAC, etherType: 0x0800 });
      expect(parseIpv4(out.subarray(ETH_OFF + 14))).toMatchObject({ src: "10.244.2.5", dst: POD_B.ip, ttl: 63 });
      expect(out.length).toBe(ETH_OFF + 14 + 60);
      expect(counters.sw(SwitchCounter.Delivered)).toBe(1);
      expect(counters.portSnapshot(router.tunnelPort)).toMatchObject({ rx_frames: 1, rx_bytes: len });
    });

    it(`${type}: accepts a node's own host address as inner source (its answers to pods)`, () => {
      const { router, io } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const { slot, len } = datagram(router, type, { src: ADDR[1], dst: POD_B.ip });
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toMacs).toHaveLength(1);
    });

    it(`${type}: hands what is for the gateway address to tapnet0, from the sender's VTEP MAC`, () => {
      const { router, io } = setup(type);
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: GW });
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toPorts.map((p) => p.port)).toEqual([GATEWAY_PORT]);
      expect(parseEthernet(io.toPorts[0].bytes.subarray(ETH_OFF))).toMatchObject({ dst: GW_MAC, src: VTEP[1] });
    });

    it(`${type}: drops, counted, datagrams from strangers, spoofed sources and foreign destinations`, () => {
      const { router, io, drops, tunnel } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const send = (p: Packet, from: string) => {
        const { slot, len } = datagram(router, type, p);
        router.fromTunnel(slot, len, ip(from), 0);
      };
      send({ src: "10.244.2.5", dst: POD_B.ip }, "192.168.56.99"); // not a node
      send({ src: "10.244.2.5", dst: POD_B.ip }, ADDR[0]); // ourselves
      send({ src: "10.244.3.5", dst: POD_B.ip }, ADDR[1]); // node2 speaking for node3's pods
      send({ src: "10.244.2.5", dst: "10.244.3.7" }, ADDR[1]); // not ours to deliver
      send({ src: "10.244.2.5", dst: POD_B.ip, ttl: 1 }, ADDR[1]);
      expect(io.toMacs).toEqual([]);
      expect(io.toPorts).toEqual([]);
      expect(drops(tunnel)).toEqual({ drop_tunnel_unknown_peer: 2, drop_tunnel_spoofed: 1, drop_tunnel_not_local: 1, drop_ttl_expired: 1 });
    });

    it(`${type}: asks by ARP for an unknown pod, once a second, and counts the drop`, () => {
      const { router, io, drops, counters, tunnel } = setup(type);
      for (const now of [0, 0.5, 1.5]) {
        const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: "10.244.1.77" });
        router.fromTunnel(slot, len, ip(ADDR[1]), now);
      }
      expect(io.toMacs).toHaveLength(2);
      const req = io.toMacs[0];
      expect(req.except).toBe(GATEWAY_PORT);
      expect(parseEthernet(req.bytes.subarray(ETH_OFF))).toMatchObject({ dst: "ff:ff:ff:ff:ff:ff", src: GW_MAC, etherType: 0x0806 });
      expect(parseArp(req.bytes.subarray(ETH_OFF + 14))).toMatchObject({ operation: 1, senderMac: GW_MAC, senderIp: GW, targetIp: "10.244.1.77" });
      expect(drops(tunnel)).toEqual({ drop_neigh_unresolved: 3 });
      expect(counters.sw(SwitchCounter.ArpRequests)).toBe(2);
    });

    it(`${type}: completes an inner checksum the sender left partial, and counts it`, () => {
      const { router, io, counters } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: POD_B.ip });
      const udpOff = router.recvOff + len - 40;
      const good = get16(slot, udpOff + 6);
      // What a kernel leaves for a NIC to finish: the folded pseudo-header sum.
      const p = pseudoHeaderSum(ip("10.244.2.5"), ip(POD_B.ip), 17, 40);
      put16(slot, udpOff + 6, (p & 0xffff) + Math.floor(p / 0x10000));
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toMacs).toHaveLength(1);
      expect(get16(io.toMacs[0].bytes, ETH_OFF + 34 + 6)).toBe(good);
      expect(counters.sw(SwitchCounter.InnerCsumCompleted)).toBe(1);
    });

    it(`${type}: drops, counted, an inner checksum that is wrong`, () => {
      const { router, io, drops, tunnel } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: POD_B.ip });
      slot[router.recvOff + len - 1] ^= 0x5a; // a payload byte
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toMacs).toEqual([]);
      expect(drops(tunnel)).toEqual({ drop_tunnel_bad_checksum: 1 });
    });

    it(`${type}: drops a bad inner header checksum`, () => {
      const { router, io, drops, tunnel } = setup(type);
      router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const { slot, len } = datagram(router, type, { src: "10.244.2.5", dst: POD_B.ip });
      slot[router.recvOff + len - 60 + 10] ^= 0xff;
      router.fromTunnel(slot, len, ip(ADDR[1]), 0);
      expect(io.toMacs).toEqual([]);
      expect(drops(tunnel)).toEqual({ drop_ipv4_bad_checksum: 1 });
    });
  }

  for (const type of PACKET_BACKENDS) {
    it(`${type}: a GRO run of datagrams is delivered as each datagram alone would be, its bad ones counted`, () => {
      const pkts = [100, 1200, 1200, 1200, 37].map((n, i) => ({ src: "10.244.2.5", dst: POD_B.ip, payloadLen: n, ttl: 60 + i }));
      const alone = setup(type);
      alone.router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const dgrams = pkts.map((p) => datagram(alone.router, type, p));
      // A GRO run holds datagrams of one size but the last: the 1200s, then the short one.
      // Laid out before delivery, which rewrites a datagram's slot in place.
      const run = setup(type);
      run.router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
      const seg = dgrams[1].len;
      const slot = new Uint8Array(8192);
      let o = run.router.recvOff;
      for (const d of dgrams.slice(1)) {
        slot.set(d.slot.subarray(run.router.recvOff, run.router.recvOff + d.len), o);
        o += d.len;
      }
      for (const d of dgrams) alone.router.fromTunnel(d.slot, d.len, ip(ADDR[1]), 0);
      slot[run.router.recvOff + 2 * seg + INNER_IP[type]] = 0x60; // the third: not IPv4
      run.router.fromTunnel(slot, o - run.router.recvOff, ip(ADDR[1]), 0, seg);
      expect(run.io.toMacs.map((m) => m.bytes)).toEqual([alone.io.toMacs[1], alone.io.toMacs[2], alone.io.toMacs[4]].map((m) => m.bytes));
      expect(run.counters.portSnapshot(run.tunnel)).toMatchObject({ rx_frames: 4, rx_bytes: o - run.router.recvOff });
      // udp and seq look at the version themselves; vxlan has an EtherType, and deliver checks the version
      expect(run.drops(run.tunnel)).toEqual({ [type === "vxlan" ? "drop_ipv4_bad_version" : "drop_tunnel_not_ipv4"]: 1 });
    });
  }

  it("vxlan: drops a wrong VNI and an inner frame not for our VTEP MAC", () => {
    const { router, drops, tunnel } = setup("vxlan");
    const a = datagram(router, "vxlan", { src: "10.244.2.5", dst: POD_B.ip }, VTEP[0], 2);
    router.fromTunnel(a.slot, a.len, ip(ADDR[1]), 0);
    const b = datagram(router, "vxlan", { src: "10.244.2.5", dst: POD_B.ip }, VTEP[2]);
    router.fromTunnel(b.slot, b.len, ip(ADDR[1]), 0);
    expect(drops(tunnel)).toEqual({ drop_vxlan_wrong_vni: 1, drop_vxlan_not_for_us: 1 });
  });
});

/** A GatherSink that also notes each piece it is given: which buffer, where. */
class PieceLog extends CollectingSink {
  readonly log: { buf: Uint8Array; off: number; len: number }[] = [];
  override add(buf: Uint8Array, off: number, len: number): void {
    this.log.push({ buf, off, len });
    super.add(buf, off, len);
  }
}

describe("the datagram of a routed frame", () => {
  it("is made in place, without copying the packet, for every packet backend", () => {
    for (const type of PACKET_BACKENDS) {
      const io = new FakeIo();
      const log = (io.gather = new PieceLog());
      const router = new TestRouter(config(type), io);
      const f = ipFrame({ src: POD_A.ip, dst: "10.244.2.5" });
      router.fromPort(POD_A.port, f, f.length);
      // One piece, from the frame itself: the packet (udp), the sequence number written over
      // the end of the Ethernet header and the packet (seq), or the VXLAN header written over
      // the virtio_net_hdr and the inner frame (vxlan).
      const own = log.log.filter((p) => p.buf === f);
      const from = { udp: ETH_OFF + 14, seq: ETH_OFF + 10, vxlan: ETH_OFF - 8 }[type];
      expect(own.map((p) => [p.off, p.len]), type).toEqual([[from, ETH_OFF + 14 + 60 - from]]);
      expect(log.log.reduce((n, p) => n + p.len, 0), type).toBe(INNER_IP[type] + 60);
      expect(get16(f, ETH_OFF + 14 + 2), type).toBe(60); // the IPv4 total length, where it was
      expect(io.toPeers.map((d) => d.bytes.length), type).toEqual([INNER_IP[type] + 60]);
    }
  });
});

describe("tapnet backend, router to router", () => {
  it("carries a TCP super-frame whole: the far pod's TAP gets it with its virtio_net_hdr, TTL down by two", () => {
    const aIo = new FakeIo();
    const a = new TestRouter(tapnetConfig(0), aIo);
    const bIo = new FakeIo();
    const b = new TestRouter(tapnetConfig(1), bIo);
    const bCounters = b.state.counters;
    b.neighbors.learn(ip("10.244.2.7"), 0x0a58, 0x0af40207);
    const payload = 30_000;
    const f = new Uint8Array(ETH_OFF + 14 + 20 + 20 + payload);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, f, ETH_OFF);
    emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: POD_A.ip, dst: "10.244.2.7", payloadLen: 20 + payload }, f, ETH_OFF + 14);
    emitTcp({ srcPort: 1, dstPort: 2, seq: 5, ack: 6, flags: 0x10, window: 100, checksum: 0x1234, urgent: 0, options: new Uint8Array(0) }, f, ETH_OFF + 34);
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 }, f, 0);
    const sent = f.slice();
    expect(a.fromPort(POD_A.port, f, f.length)).toBe(true);
    const datagrams = aIo.gather.datagrams;
    expect(datagrams.length).toBe(Math.ceil(f.length / 1460));
    expect(datagrams.every((d) => d.peer === 1 && d.bytes.length <= 1472)).toBe(true);
    for (const d of datagrams) {
      const slot = new Uint8Array(65536);
      slot.set(d.bytes, b.recvOff);
      b.fromTunnel(slot, d.bytes.length, ip(ADDR[0]), 0);
    }
    expect(bIo.toMacs).toHaveLength(1);
    const got = bIo.toMacs[0].bytes;
    expect(got.length).toBe(f.length);
    expect(Array.from(got.subarray(0, ETH_OFF))).toEqual(Array.from(sent.subarray(0, ETH_OFF))); // GSO fields kept
    expect(parseEthernet(got.subarray(ETH_OFF))).toMatchObject({ dst: "0a:58:0a:f4:02:07", src: "0a:58:0a:f4:02:01" });
    expect(parseIpv4(got.subarray(ETH_OFF + 14))).toMatchObject({ ttl: 62, src: POD_A.ip, dst: "10.244.2.7" });
    expect(Array.from(got.subarray(ETH_OFF + 34))).toEqual(Array.from(sent.subarray(ETH_OFF + 34))); // TCP untouched
    expect(bCounters.portSnapshot(b.tunnelPort).rx_frames).toBe(datagrams.length);
  });
});

describe("receive coalescing (udp, vxlan): a GRO run's TCP segments of one flow become one super-frame", () => {
  interface Seg { seq: number; payload: number; flags?: number; ack?: number; window?: number; srcPort?: number; id?: number; udp?: boolean; corrupt?: boolean; df?: boolean }
  const HOST = "10.244.2.5";

  /** The datagram the far node's tunnel carries for `s`: a TCP segment (or a UDP packet) from HOST to POD_B. */
  function segDatagram(type: "udp" | "vxlan", s: Seg): Uint8Array {
    const tcpLen = 20 + 12 + s.payload;
    const ipLen = 20 + (s.udp ? 8 + s.payload + 24 : tcpLen); // UDP: as long as the TCP segments
    const inner = type === "vxlan" ? 22 : 0;
    const d = new Uint8Array(inner + ipLen);
    if (type === "vxlan") {
      emitVxlan({ vni: 1 }, d, 0);
      emitEthernet({ dst: VTEP[0], src: VTEP[1], vlans: [], etherType: 0x0800 }, d, 8);
    }
    emitIpv4({ tos: 0, id: s.id ?? 1, dontFragment: s.df ?? true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: s.udp ? 17 : 6, src: HOST, dst: POD_B.ip, payloadLen: ipLen - 20 }, d, inner);
    const l4 = inner + 20;
    const data = Uint8Array.from({ length: s.payload + (s.udp ? 24 : 0) }, (_, i) => (s.seq + i * 13) & 0xff);
    if (s.udp) {
      emitUdp({ srcPort: 9, dstPort: 9, payload: data }, d, l4, { src: ip(HOST), dst: ip(POD_B.ip) });
    } else {
      const options = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]); // NOP NOP timestamps
      emitTcp({ srcPort: s.srcPort ?? 5201, dstPort: 40000, seq: s.seq >>> 0, ack: s.ack ?? 77, flags: s.flags ?? 0x10, window: s.window ?? 500, checksum: 0, urgent: 0, options }, d, l4);
      d.set(data, l4 + 32);
      put16(d, l4 + 16, internetChecksum(d, l4, tcpLen, pseudoHeaderSum(ip(HOST), ip(POD_B.ip), 6, tcpLen)));
    }
    if (s.corrupt) d[d.length - 1] ^= 0x40;
    return d;
  }

  /**
   * The IPv4 packets a pod receives from what the router wrote, super-frames cut back into
   * segments, as hex, each behind its virtio_net_hdr; with the IP id and header checksum blanked: a super-frame carries its
   * first segment's id, and cutting it numbers the rest anew (the pod, the end of the path,
   * never cuts it: the ids are not seen).
   */
  function packets(frames: Uint8Array[]): string[] {
    const out: string[] = [];
    for (const f of frames) {
      if (f[1] === GSO_TCPV4) {
        expect(f[0]).toBe(VNET_F_NEEDS_CSUM);
        const segs = segmentToArrays(f.subarray(ETH_OFF), GSO_TCPV4, get16le(f, 4));
        if (typeof segs === "number") throw new Error(`super-frame does not segment: ${segs}`);
        // To the pod a NEEDS_CSUM frame's checksum is as trusted as a DATA_VALID one's.
        for (const s of segs) out.push(VALID_HDR + hexNoId(s.subarray(14)));
      } else out.push(Buffer.from(f.subarray(0, ETH_OFF)).toString("hex") + hexNoId(f.subarray(ETH_OFF + 14))); // with its virtio_net_hdr
    }
    return out;
  }
  const VALID_HDR = "02" + "00".repeat(ETH_OFF - 1);
  const hexNoId = (p: Uint8Array) => {
    const c = p.slice();
    c[4] = c[5] = c[10] = c[11] = 0;
    return Buffer.from(c).toString("hex");
  };
  const get16le = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);

  /** Feeds `segs` as one GRO run to a coalescing router, and one by one to a plain one. */
  function compare(type: "udp" | "vxlan", segs: Seg[]) {
    const dgrams = segs.map((s) => segDatagram(type, s));
    const size = dgrams[0].length;
    for (const d of dgrams.slice(0, -1)) expect(d.length).toBe(size); // a GRO run: one size, the last maybe shorter
    const alone = setup(type);
    const run = setup(type, undefined, { merge: true });
    for (const r of [alone, run]) r.router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
    const slot = new Uint8Array(run.router.recvOff + dgrams.reduce((n, d) => n + d.length, 0) + 64);
    let o = run.router.recvOff;
    for (const d of dgrams) { slot.set(d, o); o += d.length; }
    run.router.fromTunnel(slot, o - run.router.recvOff, ip(ADDR[1]), 0, size);
    for (const d of dgrams) {
      const s = new Uint8Array(alone.router.recvOff + d.length + 64);
      s.set(d, alone.router.recvOff);
      alone.router.fromTunnel(s, d.length, ip(ADDR[1]), 0);
    }
    return { alone, run };
  }

  for (const type of ["udp", "vxlan"] as const) {
    it(`${type}: 40 segments of a flow are one write, a super-frame that cuts back into the same packets`, () => {
      const segs: Seg[] = Array.from({ length: 40 }, (_, k) => ({ seq: 1000 + k * 1000, payload: 1000, id: 10 + k }));
      segs[39].payload = 300;
      segs[39].flags = 0x18; // PSH on the last, as a sender's stack sets it
      const { alone, run } = compare(type, segs);
      expect(run.io.toMacs).toHaveLength(1);
      const f = run.io.toMacs[0].bytes;
      expect(parseVirtioNetHdr(f)).toEqual({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 14 + 20 + 32, gsoSize: 1000, csumStart: 34, csumOffset: 16 });
      expect(parseEthernet(f.subarray(ETH_OFF))).toMatchObject({ dst: POD_B.mac, src: GW_MAC });
      expect(parseIpv4(f.subarray(ETH_OFF + 14))).toMatchObject({ ttl: 63, payloadLen: 32 + 39 * 1000 + 300 });
      expect(packets(run.io.toMacs.map((m) => m.bytes))).toEqual(packets(alone.io.toMacs.map((m) => m.bytes)));
      expect(run.counters.sw(SwitchCounter.Coalesced)).toBe(40);
      expect(run.counters.sw(SwitchCounter.Delivered)).toBe(1);
      expect(run.counters.portSnapshot(run.tunnel)).toMatchObject({ rx_frames: 40, rx_bytes: alone.counters.portSnapshot(alone.tunnel).rx_bytes });
    });

    it(`${type}: what does not continue the flow (a gap, another ACK or flow, UDP, a bad checksum, after PSH) starts anew, in order`, () => {
      const P = 500;
      const segs: Seg[] = [
        { seq: 0, payload: P }, { seq: P, payload: P }, { seq: 3 * P, payload: P }, // a gap
        { seq: 4 * P, payload: P, ack: 78 }, { seq: 5 * P, payload: P, ack: 78 }, // another ACK
        { seq: 0, payload: P, srcPort: 5202 }, // another flow
        { seq: 0, payload: P, udp: true }, // UDP of the same datagram size
        { seq: 6 * P, payload: P, ack: 78, corrupt: true }, // dropped, counted
        { seq: 6 * P, payload: P, ack: 78, flags: 0x18 }, { seq: 7 * P, payload: P, ack: 78 }, // PSH ends a run
        { seq: 8 * P, payload: P, ack: 78, window: 9 }, // another window
        { seq: 9 * P, payload: P, ack: 78, window: 9, df: false }, // DF differs
        { seq: 10 * P, payload: P, ack: 78, window: 9, df: false, flags: 0x11 }, // FIN: never merged
      ];
      const { alone, run } = compare(type, segs);
      expect(packets(run.io.toMacs.map((m) => m.bytes))).toEqual(packets(alone.io.toMacs.map((m) => m.bytes)));
      expect(run.drops(run.tunnel)).toEqual({ drop_tunnel_bad_checksum: 1 });
      expect(run.counters.sw(SwitchCounter.Coalesced)).toBe(4); // the first two; the two after the gap
      expect(run.io.toMacs).toHaveLength(alone.io.toMacs.length - 2);
      expect(run.counters.sw(SwitchCounter.Delivered)).toBe(alone.counters.sw(SwitchCounter.Delivered) - 2);
    });

    it(`${type}: 150 random runs deliver exactly what each datagram alone would, in order`, () => {
      let seed = 99;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      let merged = 0;
      for (let n = 0; n < 150; n++) {
        const P = 200 + Math.floor(rnd() * 1200);
        const count = 1 + Math.floor(rnd() * 50);
        const next = [1000, 900000];
        const segs: Seg[] = [];
        for (let k = 0; k < count; k++) {
          const flow = rnd() < 0.8 ? 0 : 1;
          const r = rnd();
          const s: Seg = { seq: next[flow], payload: P, srcPort: 5201 + flow, id: k };
          if (r < 0.05) s.seq += P; // a gap
          else if (r < 0.08) s.flags = 0x18;
          else if (r < 0.1) s.ack = 78;
          else if (r < 0.12) s.udp = true;
          else if (r < 0.14) s.corrupt = true;
          if (!s.udp) next[flow] = s.seq + P;
          segs.push(s);
        }
        const last = segs[segs.length - 1];
        if (!last.udp && rnd() < 0.5) last.payload = 1 + Math.floor(rnd() * P);
        const { alone, run } = compare(type, segs);
        const got = packets(run.io.toMacs.map((m) => m.bytes));
        const want = packets(alone.io.toMacs.map((m) => m.bytes));
        expect(got.length, `run ${n}`).toBe(want.length);
        expect(got.findIndex((g, i) => g !== want[i]), `run ${n}: first packet that differs`).toBe(-1);
        expect(run.drops(run.tunnel), `run ${n}`).toEqual(alone.drops(alone.tunnel));
        expect(run.counters.portSnapshot(run.tunnel).rx_frames).toBe(count);
        merged += run.counters.sw(SwitchCounter.Coalesced);
      }
      expect(merged).toBeGreaterThan(1000); // the runs did exercise merging
    });
  }
});

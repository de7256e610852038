// tunnel/inner.ts: how the udp and vxlan backends make a TAP frame of a received IPv4 packet, in
// place for a read's first datagram, and as a head plus a tail for the later ones of a GRO run.
import { describe, expect, it } from "vitest";
import { HEAD_ROOM } from "../../src/tunnel/contract.ts";
import { eachDatagram, headerSpan, innerFrame } from "../../src/tunnel/inner.ts";
import { UdpBackend } from "../../src/tunnel/udp.ts";
import { VxlanBackend } from "../../src/tunnel/vxlan.ts";
import { fromHex, put16 } from "../../src/wire/bytes.ts";
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../../src/wire/ipv4.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { writeVxlanHeader } from "../../src/wire/vxlan.ts";
import { prng } from "../support/random.ts";
import { FrameCollector, testContext } from "../support/tunnel.ts";

/** An IPv4 packet of `len` bytes (at least its headers): IHL `ihl` bytes, a TCP header of `tcpHl`, then a pattern. */
function packet(protocol: number, len: number, ihl = 20, tcpHl = 20, seed = 1): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 0; i < len; i++) p[i] = (i * 7 + seed) & 0xff;
  p[0] = 0x40 | (ihl / 4);
  p[9] = protocol;
  put16(p, 2, len);
  if (protocol === PROTO_TCP && len > ihl + 12) p[ihl + 12] = (tcpHl / 4) << 4;
  return p;
}

const ETHERTYPE_IPV4 = fromHex("0800");
const ZEROS = (n: number) => new Uint8Array(n);

describe("headerSpan: the bytes of a packet that go in a head", () => {
  it("a TCP packet: its IPv4 header and its TCP header, options included", () => {
    expect(headerSpan(packet(PROTO_TCP, 1000), 0, 1000)).toBe(40);
    expect(headerSpan(packet(PROTO_TCP, 1000, 20, 32), 0, 1000)).toBe(52);
    expect(headerSpan(packet(PROTO_TCP, 1000, 24, 20), 0, 1000)).toBe(44);
    expect(headerSpan(packet(PROTO_TCP, 1000, 60, 60), 0, 1000)).toBe(120);
  });

  it("a UDP packet: its IPv4 header and the 8-byte UDP header", () => {
    expect(headerSpan(packet(PROTO_UDP, 500), 0, 500)).toBe(28);
    expect(headerSpan(packet(PROTO_UDP, 500, 24), 0, 500)).toBe(32);
  });

  it("ICMP and any other protocol: the IPv4 header and 8 bytes after it", () => {
    expect(headerSpan(packet(PROTO_ICMP, 84), 0, 84)).toBe(28);
    expect(headerSpan(packet(47, 84), 0, 84)).toBe(28);
    expect(headerSpan(packet(47, 84, 28), 0, 84)).toBe(36);
  });

  it("reads the packet at its offset in the buffer", () => {
    const buf = new Uint8Array(1100).fill(0x11); // IHL 4 and protocol 0x11 (UDP) if read at 0
    buf.set(packet(PROTO_TCP, 1000, 20, 28), 37);
    expect(headerSpan(buf, 37, 1000)).toBe(48);
  });

  it("no more than the packet: a UDP or ICMP packet shorter than its headers, a TCP one too short for its TCP header", () => {
    expect(headerSpan(packet(PROTO_UDP, 24), 0, 24)).toBe(24);
    expect(headerSpan(packet(PROTO_ICMP, 21), 0, 21)).toBe(21);
    expect(headerSpan(packet(PROTO_TCP, 25), 0, 25)).toBe(25);
    // under a whole TCP header, its data offset is not read: the first 8 bytes, as for any protocol
    expect(headerSpan(packet(PROTO_TCP, 39, 20, 60), 0, 39)).toBe(28);
    // a TCP header as long as the packet, and one longer than it
    expect(headerSpan(packet(PROTO_TCP, 60, 20, 40), 0, 60)).toBe(60);
    expect(headerSpan(packet(PROTO_TCP, 50, 20, 40), 0, 50)).toBe(50);
    // an IPv4 header longer than the packet (IHL 15, 30 bytes)
    expect(headerSpan(packet(PROTO_UDP, 30, 60), 0, 30)).toBe(30);
  });

  it("a packet shorter than an IPv4 header: all of it", () => {
    for (const len of [0, 1, 19]) expect(headerSpan(packet(PROTO_TCP, 20), 0, len), `len ${len}`).toBe(len);
  });

  it("reads the IHL only of a packet at least as long as an IPv4 header: a shorter one is all head, whatever its first byte says", () => {
    // IHL 0 (invalid, as validation finds): the 8 bytes after a header of 0 bytes
    const bogus = (len: number) => { const p = packet(PROTO_UDP, len); p[0] = 0x40; return p; };
    expect(headerSpan(bogus(19), 0, 19)).toBe(19);
    expect(headerSpan(bogus(20), 0, 20)).toBe(8);
    expect(headerSpan(bogus(100), 0, 100)).toBe(8);
  });

  it("the headers always fit a head behind the virtio_net_hdr and the Ethernet header", () => {
    const rnd = prng(7);
    for (let i = 0; i < 2000; i++) {
      const ihl = 20 + 4 * Math.floor(rnd() * 11);
      const len = 20 + Math.floor(rnd() * 200); // now and then shorter than its own headers
      const span = headerSpan(packet([PROTO_TCP, PROTO_UDP, PROTO_ICMP][i % 3], len, ihl, 20 + 4 * Math.floor(rnd() * 11)), 0, len);
      expect(span).toBe(Math.min(len, Math.max(span, ihl)));
      expect(span).toBeLessThanOrEqual(len);
      expect(ETH_OFF + 14 + span).toBeLessThanOrEqual(HEAD_ROOM);
    }
  });
});

/** A read buffer holding `p` at `ip`, 0xee in front of it and after it. */
function readBuf(p: Uint8Array, ip: number): Uint8Array {
  const buf = new Uint8Array(ip + p.length + 16).fill(0xee);
  buf.set(p, ip);
  return buf;
}

describe("innerFrame in place: a read's first datagram, with room in front of it", () => {
  it("udp (no inner Ethernet header): the frame starts 24 bytes before the packet; only the virtio_net_hdr and the EtherType are written", () => {
    const p = packet(PROTO_UDP, 100);
    const buf = readBuf(p, 30);
    const before = buf.slice();
    const sink = new FrameCollector();
    innerFrame(buf, 30, p.length, -1, true, sink);
    sink.commit();
    expect(sink.log).toEqual(["frame", "commit"]);
    const [f] = sink.frames;
    expect([f.buf === buf, f.off, f.len, f.lent, f.tail]).toEqual([true, 6, 24 + 100, false, null]);
    expect(f.bytes).toEqual(Uint8Array.from([...ZEROS(10), ...before.subarray(16, 28), ...ETHERTYPE_IPV4, ...p]));
    expect(buf.subarray(0, 6)).toEqual(before.subarray(0, 6));
    expect(buf.subarray(130)).toEqual(before.subarray(130));
  });

  it("vxlan (an inner Ethernet header before the packet): it is the frame's, as it came, EtherType included; the virtio_net_hdr is written over what was before it", () => {
    for (const type of ["0800", "86dd"]) {
      const p = packet(PROTO_TCP, 200);
      const buf = readBuf(p, 40);
      const eth = fromHex(`0e00c0a8380b 0e00c0a8380c ${type}`);
      buf.set(eth, 26);
      const sink = new FrameCollector();
      innerFrame(buf, 40, p.length, 26, true, sink);
      const [f] = sink.frames;
      expect([f.buf === buf, f.off, f.len, f.lent, f.tail]).toEqual([true, 16, 24 + 200, false, null]);
      expect(f.bytes, type).toEqual(Uint8Array.from([...ZEROS(10), ...eth, ...p]));
    }
  });

});

describe("innerFrame in a head: a later datagram of a GRO run, with the one before in front of it", () => {
  it("udp: the head holds the virtio_net_hdr, an Ethernet header of zero MACs and EtherType IPv4, the IPv4 and TCP headers; the tail the payload where it lies", () => {
    const p = packet(PROTO_TCP, 1000, 20, 32);
    const buf = readBuf(p, 30);
    const before = buf.slice();
    const sink = new FrameCollector();
    innerFrame(buf, 30, p.length, -1, false, sink);
    sink.commit();
    expect(sink.log).toEqual(["lend", "frame", "commit"]);
    const [f] = sink.frames;
    expect([f.off, f.len, f.lent]).toEqual([0, 24 + 1000, true]);
    expect(f.tail).toEqual({ buf, headLen: 24 + 52, pieces: [[30 + 52, 1000 - 52]] });
    expect(f.buf.subarray(0, 24 + 52)).toEqual(Uint8Array.from([...ZEROS(22), ...ETHERTYPE_IPV4, ...p.subarray(0, 52)]));
    expect(f.bytes).toEqual(Uint8Array.from([...ZEROS(22), ...ETHERTYPE_IPV4, ...p]));
    expect(buf).toEqual(before); // nothing written where the datagram before lies
  });

  it("vxlan: the inner Ethernet header is copied into the head from where it lies, at the start of the buffer too", () => {
    for (const ip of [50, 14]) {
      const p = packet(PROTO_UDP, 300);
      const buf = readBuf(p, ip);
      const eth = fromHex("0e00c0a8380b 0e00c0a8380c 0800");
      buf.set(eth, ip - 14);
      const before = buf.slice();
      const sink = new FrameCollector();
      innerFrame(buf, ip, p.length, ip - 14, false, sink);
      const [f] = sink.frames;
      expect(f.tail).toEqual({ buf, headLen: 24 + 28, pieces: [[ip + 28, 300 - 28]] });
      expect(f.bytes, `header at ${ip - 14}`).toEqual(Uint8Array.from([...ZEROS(10), ...eth, ...p]));
      expect(buf).toEqual(before);
    }
  });

  it("a packet that is all headers: the whole frame in the head, no tail", () => {
    const p = packet(PROTO_TCP, 40);
    const sink = new FrameCollector();
    innerFrame(readBuf(p, 30), 30, 40, -1, false, sink);
    const [f] = sink.frames;
    expect([f.len, f.lent, f.tail]).toEqual([64, true, null]);
    expect(f.bytes).toEqual(Uint8Array.from([...ZEROS(22), ...ETHERTYPE_IPV4, ...p]));
  });

  it("a tail left with pieces by a frame before is reset: a packet that is all headers has none", () => {
    const sink = new FrameCollector();
    const lend = sink.lend.bind(sink);
    sink.lend = () => {
      const l = lend();
      l.tail.count = 3; // as a vector's entry may hold from its last frame
      l.tail.headLen = 999;
      return l;
    };
    innerFrame(readBuf(packet(PROTO_UDP, 28), 30), 30, 28, -1, false, sink);
    expect(sink.frames[0].tail).toBeNull();
    expect(sink.frames[0].bytes.length).toBe(52);
  });
});

describe("a GRO run through the udp and vxlan backends: the first datagram in place, the others in heads", () => {
  /** What the peer sends for packet `p`: udp the packet itself, vxlan behind its header and the inner Ethernet header to node 0. */
  const datagramOf = (type: "udp" | "vxlan", p: Uint8Array): Uint8Array => {
    if (type === "udp") return p;
    const d = new Uint8Array(22 + p.length);
    writeVxlanHeader(d, 0, 1);
    d.set(fromHex("0e00c0a8380b 0e00c0a8380c 0800"), 8);
    d.set(p, 22);
    return d;
  };

  for (const type of ["udp", "vxlan"] as const) {
    it(`${type}: a run of three equal datagrams and a short one makes four frames, the same as four reads of one datagram would`, () => {
      const { ctx } = testContext();
      const b = type === "udp" ? new UdpBackend(ctx) : new VxlanBackend(ctx);
      const packets = [packet(PROTO_TCP, 1000, 20, 20, 1), packet(PROTO_TCP, 1000, 20, 20, 2), packet(PROTO_TCP, 1000, 20, 20, 3), packet(PROTO_TCP, 300, 20, 20, 4)];
      const ds = packets.map((p) => datagramOf(type, p));
      const stride = ds[0].length;
      const read = new Uint8Array(b.recvOff + ds.reduce((n, d) => n + d.length, 0)).fill(0xee);
      ds.forEach((d, k) => read.set(d, b.recvOff + k * stride));
      const run = new FrameCollector();
      expect(b.receive(read, b.recvOff, read.length - b.recvOff, stride, 1, run)).toBe(4);
      run.commit();
      expect(run.frames.map((f) => [f.lent, f.len, f.tail?.pieces ?? null])).toEqual([
        [false, 1024, null],
        [true, 1024, [[b.recvOff + stride + (stride - 960), 960]]],
        [true, 1024, [[b.recvOff + 2 * stride + (stride - 960), 960]]],
        [true, 324, [[b.recvOff + 3 * stride + (ds[3].length - 260), 260]]],
      ]);
      expect(run.frames[0].buf).toBe(read);
      expect(run.drops).toEqual([]);
      for (let k = 0; k < 4; k++) {
        const one = new FrameCollector();
        const slot = new Uint8Array(b.recvOff + ds[k].length).fill(0xee);
        slot.set(ds[k], b.recvOff);
        expect(b.receive(slot, b.recvOff, ds[k].length, 0, 1, one)).toBe(1);
        expect(one.frames[0].lent).toBe(false);
        // udp leaves the MACs for the switch to write: compare from the EtherType on
        const from = type === "udp" ? 22 : 0;
        expect(run.frames[k].bytes.subarray(from), `frame ${k}`).toEqual(one.frames[0].bytes.subarray(from));
        expect(run.frames[k].bytes.subarray(0, 10)).toEqual(ZEROS(10));
      }
    });
  }
});

describe("eachDatagram: the datagrams of a read, for a backend whose datagrams each hold one packet", () => {
  /** The calls eachDatagram makes for a read of `len` bytes at 5 in a buffer, from peer 2. */
  function calls(len: number, stride: number): { n: number; seen: [number, number, boolean, number][] } {
    const seen: [number, number, boolean, number][] = [];
    const buf = new Uint8Array(5 + len);
    const sink = new FrameCollector();
    const n = eachDatagram({ datagram: (b, at, dlen, first, peer, s) => {
      expect(b).toBe(buf);
      expect(s).toBe(sink);
      seen.push([at, dlen, first, peer]);
    } }, buf, 5, len, stride, 2, sink);
    return { n, seen };
  }

  it("cuts a GRO run at the stride, the last datagram maybe shorter; only the first has room in front of it", () => {
    expect(calls(250, 100)).toEqual({ n: 3, seen: [[5, 100, true, 2], [105, 100, false, 2], [205, 50, false, 2]] });
    expect(calls(200, 100)).toEqual({ n: 2, seen: [[5, 100, true, 2], [105, 100, false, 2]] });
  });

  it("a stride of 0, or of the read's length or more, is one datagram", () => {
    for (const stride of [0, 250, 251, 65535]) expect(calls(250, stride), `stride ${stride}`).toEqual({ n: 1, seen: [[5, 250, true, 2]] });
  });

  it("an empty read is one datagram of no bytes", () => {
    for (const stride of [0, 100]) expect(calls(0, stride)).toEqual({ n: 1, seen: [[5, 0, true, 2]] });
  });
});

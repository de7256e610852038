/**
 * NAT rewriting: golden frames with their bytes after a rewrite written out (computed apart
 * from tapnet, every checksum from scratch), then thousands of random packets and rewrites
 * checked against a naive model: every checksum summed again from nothing, word by word.
 */
import { describe, expect, it } from "vitest";
import { fromHex, get16, get32, put16, put32, toHex } from "../../src/wire/bytes.ts";
import { Drop } from "../../src/wire/drop.ts";
import { FlowKeyView, FlowKind } from "../../src/wire/flow-key.ts";
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../../src/wire/ipv4.ts";
import { natRewrite, natRewriteAddrs, natRewriteIcmpError } from "../../src/wire/nat.ts";
import { prng, trials } from "../support/random.ts";

/** The ones' complement sum of `bytes`, folded at every step: the slow, obvious way. */
function naiveSum(bytes: ArrayLike<number>, initial = 0): number {
  let s = initial;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return s;
}

/** The checksum of `bytes` with the 16-bit field at `field` taken as 0. */
function naiveChecksum(bytes: Uint8Array, field: number, initial = 0): number {
  const b = bytes.slice();
  b[field] = b[field + 1] = 0;
  return ~naiveSum(b, initial) & 0xffff;
}

/** The pseudo-header sum for an IPv4 packet at 0: addresses, protocol, L4 length. */
function pseudo(pkt: Uint8Array): number {
  const hl = (pkt[0] & 15) * 4;
  return naiveSum([...pkt.subarray(12, 20), 0, pkt[9], (get16(pkt, 2) - hl) >> 8, (get16(pkt, 2) - hl) & 0xff]);
}

/**
 * Every checksum of the IPv4 packet at 0 (IPv4, then TCP/UDP/ICMP) as a from-scratch
 * computation would fill it: a UDP checksum of 0 stays 0, a UDP result of 0 is 0xffff.
 */
function recomputed(pkt: Uint8Array): Uint8Array {
  const b = pkt.slice(0, get16(pkt, 2));
  const hl = (b[0] & 15) * 4;
  put16(b, 10, naiveChecksum(b.subarray(0, hl), 10));
  const l4 = b.subarray(hl);
  if (b[9] === PROTO_TCP) put16(l4, 16, naiveChecksum(l4, 16, pseudo(b)));
  if (b[9] === PROTO_UDP && get16(l4, 6) !== 0) put16(l4, 6, naiveChecksum(l4, 6, pseudo(b)) || 0xffff);
  if (b[9] === PROTO_ICMP) put16(l4, 2, naiveChecksum(l4, 2));
  return b;
}

function key(buf: Uint8Array, ipOff: number): FlowKeyView {
  const k = new FlowKeyView();
  expect(k.parse(buf, ipOff, buf.length - ipOff)).toBe(Drop.None);
  return k;
}

const ip4 = (s: string) => s.split(".").reduce((v, p) => v * 256 + Number(p), 0);

// Golden frames (Ethernet, then IPv4 at 14). The "before" frames are those of flow-key.test.ts;
// the "after" bytes were computed by a separate Python script that builds each packet anew
// with the new addresses and ports and sums every checksum from scratch.
const IP = 14;
const ETH = "0200 0a63 0002 0200 0a63 0001 0800";
const SYN = `${ETH} 4500 003c 2d7f 4000 4006 f874 0a63 0001 0a63 0002 9c41 1e61 a041 8ee0 0000 0000 a002 faf0`;
const SYN_OPTS = "0204 05b4 0402 080a f2c5 fd4a 0000 0000 0103 030a";
const SYN_AFTER = `${ETH} 4500 003c 2d7f 4000 4006 f54d 0af4 0001 0af4 0207 ee48 1f90 a041 8ee0 0000 0000 a002 faf0`;

const GOLDEN: { what: string; before: string; after: string; partial?: boolean; to: [string, number, string, number] }[] = [
  { // SNAT and DNAT at once: 10.99.0.1:40001 -> 10.99.0.2:7777 becomes 10.244.0.1:61000 -> 10.244.2.7:8080.
    what: "TCP SYN", to: ["10.244.0.1", 61000, "10.244.2.7", 8080],
    before: `${SYN} 5e6e 0000 ${SYN_OPTS}`, after: `${SYN_AFTER} 0811 0000 ${SYN_OPTS}`,
  },
  { // The same SYN as a TAP hands it over with NEEDS_CSUM: the field is the pseudo-header sum.
    what: "TCP SYN, partial checksum", partial: true, to: ["10.244.0.1", 61000, "10.244.2.7", 8080],
    before: `${SYN} 14f7 0000 ${SYN_OPTS}`, after: `${SYN_AFTER} 181e 0000 ${SYN_OPTS}`,
  },
  { // DNAT only: 10.99.0.2:5555 becomes 10.244.2.7:53.
    what: "UDP", to: ["10.99.0.1", 40000, "10.244.2.7", 53],
    before: `${ETH} 4500 0028 9db4 4000 4011 8848 0a63 0001 0a63 0002 9c40 15b3 0014 aad3 6865 6c6c 6f20 7461 706e 6574`,
    after: `${ETH} 4500 0028 9db4 4000 4011 85b2 0a63 0001 0af4 0207 9c40 0035 0014 bdbb 6865 6c6c 6f20 7461 706e 6574`,
  },
  { // The source becomes 10.244.0.1 and the identifier 0x8001.
    what: "ICMP echo request", to: ["10.244.0.1", 0x8001, "10.99.0.2", 8],
    before: `${ETH} 4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63 0002 0800 00c5 0f68 0001 e5ab 036b 0000 0000 f0ba 0e00 0000 0000`,
    after: `${ETH} 4500 002c 4ea1 4000 4001 d6d6 0af4 0001 0a63 0002 0800 902b 8001 0001 e5ab 036b 0000 0000 f0ba 0e00 0000 0000`,
  },
];

// ICMP errors about a Service's traffic, translated back: endpoint 10.244.2.7 becomes ClusterIP 10.96.0.10.
const ERRORS: { what: string; before: string; after: string; outer: [string, string]; quote: [string, number, string, number] }[] = [
  { // From the endpoint, quoting the whole datagram (odd length), its UDP checksum included.
    what: "port unreachable quoting UDP", outer: ["10.96.0.10", "10.244.1.2"], quote: ["10.244.1.2", 40000, "10.96.0.10", 53],
    before: `${ETH} 4500 0045 3333 0000 4001 2e95 0af4 0207 0af4 0102 0303 1614 0000 0000 4500 0029 2222 4000 3f11 00b2
      0af4 0102 0af4 0207 9c40 0035 0015 9b27 6865 6c6c 6f20 7461 706e 6574 21`,
    after: `${ETH} 4500 0045 3333 0000 4001 3126 0a60 000a 0af4 0102 0303 1383 0000 0000 4500 0029 2222 4000 3f11 0343
      0af4 0102 0a60 000a 9c40 0035 0015 9db8 6865 6c6c 6f20 7461 706e 6574 21`,
  },
  { // From a router, quoting 8 bytes of a SYN: its TCP checksum is not in the quote. The outer header stays.
    what: "time exceeded quoting TCP", outer: ["10.244.0.1", "10.244.1.2"], quote: ["10.244.1.2", 40001, "10.96.0.10", 80],
    before: `${ETH} 4500 0038 5555 0000 4001 0e86 0af4 0001 0af4 0102 0b00 0a0c 0000 0000 4500 003c 4444 4000 0106 1c88
      0af4 0102 0af4 0207 9c41 1f90 a041 8ee0`,
    after: `${ETH} 4500 0038 5555 0000 4001 0e86 0af4 0001 0af4 0102 0b00 294c 0000 0000 4500 003c 4444 4000 0106 1f19
      0af4 0102 0a60 000a 9c41 0050 a041 8ee0`,
  },
];

describe("natRewrite: golden frames", () => {
  for (const g of GOLDEN) {
    it(g.what, () => {
      const buf = fromHex(g.before);
      const k = key(buf, IP);
      expect(k.kind).toBe(FlowKind.Plain);
      const [src, sport, dst, dport] = g.to;
      natRewrite(buf, IP, k.l4Off, k.proto, ip4(src), sport, ip4(dst), dport, g.partial ?? false);
      expect(toHex(buf)).toBe(toHex(fromHex(g.after)));
      const pkt = buf.subarray(IP);
      if (g.partial) {
        expect(get16(pkt, 36)).toBe(pseudo(pkt));
        expect(toHex(pkt.subarray(0, 20))).toBe(toHex(recomputed(pkt).subarray(0, 20)));
      } else {
        expect(toHex(pkt)).toBe(toHex(recomputed(pkt)));
      }
      natRewrite(buf, IP, k.l4Off, k.proto, k.src, k.sport, k.dst, k.dport, g.partial ?? false);
      expect(toHex(buf)).toBe(toHex(fromHex(g.before)));
    });
  }

  for (const g of ERRORS) {
    it(g.what, () => {
      const buf = fromHex(g.before);
      const k = key(buf, IP);
      expect(k.kind).toBe(FlowKind.IcmpError);
      const [qs, qsp, qd, qdp] = g.quote;
      natRewriteIcmpError(buf, IP, ip4(g.outer[0]), ip4(g.outer[1]), ip4(qs), qsp, ip4(qd), qdp);
      expect(toHex(buf)).toBe(toHex(fromHex(g.after)));
      const pkt = buf.subarray(IP);
      expect(toHex(pkt)).toBe(toHex(recomputed(pkt)));
      const quote = pkt.subarray(28, 48);
      expect(naiveSum(quote)).toBe(0xffff);
      natRewriteIcmpError(buf, IP, k.src, k.dst, k.qSrc, k.qSport, k.qDst, k.qDport);
      expect(toHex(buf)).toBe(toHex(fromHex(g.before)));
    });
  }

  it("the quoted UDP checksum, where the quote holds the whole datagram, sums right", () => {
    const buf = fromHex(ERRORS[0].after).subarray(IP + 28);
    expect(naiveSum(buf.subarray(20), pseudo(buf))).toBe(0xffff);
  });
});

describe("natRewrite: what does not change is not touched", () => {
  it("the same tuple leaves every byte as it was, wrong checksums too", () => {
    const buf = fromHex(GOLDEN[0].before);
    put16(buf, IP + 10, 0x1234);
    put16(buf, IP + 36, 0x5678);
    const before = toHex(buf);
    const k = key(buf, IP);
    natRewrite(buf, IP, k.l4Off, k.proto, k.src, k.sport, k.dst, k.dport, false);
    expect(toHex(buf)).toBe(before);
  });

  it("a port change leaves the IPv4 checksum, and in partial mode the L4 field, alone", () => {
    const buf = fromHex(GOLDEN[1].before);
    put16(buf, IP + 10, 0x1234);
    const k = key(buf, IP);
    natRewrite(buf, IP, k.l4Off, k.proto, k.src, 1, k.dst, 2, true);
    const want = fromHex(GOLDEN[1].before);
    put16(want, IP + 10, 0x1234);
    put32(want, IP + 20, 0x00010002);
    expect(toHex(buf)).toBe(toHex(want));
  });

  it("updates are incremental: a checksum wrong before is wrong by as much after", () => {
    const buf = fromHex(GOLDEN[0].before);
    put16(buf, IP + 10, get16(buf, IP + 10) - 1);
    const k = key(buf, IP);
    natRewrite(buf, IP, k.l4Off, k.proto, ip4("10.244.0.1"), 61000, ip4("10.244.2.7"), 8080, false);
    expect(get16(buf, IP + 10)).toBe(get16(fromHex(GOLDEN[0].after), IP + 10) - 1);
  });

  it("a checksum that comes out 0: UDP writes 0xffff (0 means none), TCP writes 0, both ways", () => {
    for (const proto of [PROTO_UDP, PROTO_TCP]) {
      // The translated packet, with a payload word chosen so that its data sums to 0xffff.
      const l4 = new Uint8Array(proto === PROTO_TCP ? 24 : 12);
      if (proto === PROTO_TCP) l4[12] = 0x50;
      put32(l4, 0, 0x1f900035);
      const to = new Uint8Array(20 + l4.length);
      to.set([0x45, 0, 0, to.length, 0, 0, 0, 0, 64, proto, 0, 0, 10, 96, 0, 10, 10, 244, 2, 7]);
      to.set(l4, 20);
      const co = 20 + (proto === PROTO_TCP ? 16 : 6);
      if (proto === PROTO_UDP) put16(to, 24, l4.length);
      put16(to, to.length - 2, ~naiveSum(to.subarray(20), pseudo(to)) & 0xffff); // the field still 0
      expect(naiveSum(to.subarray(20), pseudo(to))).toBe(0xffff);
      put16(to, co, 1); // for UDP: a checksum to fill, not "none"
      const after = recomputed(to);
      expect(get16(after, co)).toBe(proto === PROTO_UDP ? 0xffff : 0);
      // The same packet before translation: 10.0.0.1:4000 -> 10.0.0.2:5000.
      const from = after.slice();
      put32(from, 12, ip4("10.0.0.1"));
      put32(from, 16, ip4("10.0.0.2"));
      put32(from, 20, 0x0fa01388);
      const before = recomputed(from);
      const buf = before.slice();
      natRewrite(buf, 0, 20, proto, ip4("10.96.0.10"), 0x1f90, ip4("10.244.2.7"), 0x0035, false);
      expect(toHex(buf)).toBe(toHex(after));
      natRewrite(buf, 0, 20, proto, ip4("10.0.0.1"), 4000, ip4("10.0.0.2"), 5000, false);
      expect(toHex(buf)).toBe(toHex(before));
    }
  });

  it("natRewriteAddrs changes the addresses and the IPv4 checksum only", () => {
    const buf = fromHex(GOLDEN[2].before);
    natRewriteAddrs(buf, IP, ip4("10.99.0.1"), ip4("10.244.2.7"));
    const want = fromHex(GOLDEN[2].after);
    want.set(fromHex("15b3 0014 aad3"), IP + 22); // the port and UDP checksum as they were
    expect(toHex(buf)).toBe(toHex(want));
  });
});

// ---- Random packets against the naive model ----

type Rnd = () => number;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);
const bytes = (rnd: Rnd, n: number) => Uint8Array.from({ length: n }, () => int(rnd, 256));
const u32 = (rnd: Rnd) => int(rnd, 0x10000) * 0x10000 + int(rnd, 0x10000);

/** A random IPv4 packet at 0 (options of 0-12 bytes) around `l4`, every checksum filled; `udpZero` leaves UDP's 0. */
function randomPacket(rnd: Rnd, proto: number, l4: Uint8Array, udpZero = false): Uint8Array {
  const hl = 20 + 4 * int(rnd, 4);
  const b = new Uint8Array(hl + l4.length);
  b.set(bytes(rnd, hl));
  b[0] = 0x40 | (hl / 4);
  put16(b, 2, b.length);
  put16(b, 6, rnd() < 0.5 ? 0x4000 : 0);
  b[9] = proto;
  b.set(l4, hl);
  if (proto === PROTO_UDP) {
    put16(b, hl + 4, l4.length);
    put16(b, hl + 6, udpZero ? 0 : 1); // 0: none, left so; else summed by `recomputed`
  }
  return recomputed(b);
}

function randomL4(rnd: Rnd, proto: number): Uint8Array {
  const payload = int(rnd, 100); // odd lengths included
  if (proto === PROTO_TCP) {
    const hl = 20 + 4 * int(rnd, 6);
    const t = bytes(rnd, hl + payload);
    t[12] = (hl / 4) << 4;
    return t;
  }
  const m = bytes(rnd, 8 + payload);
  if (proto === PROTO_ICMP) m[0] = rnd() < 0.5 ? 8 : 0; // echo request or reply
  return m;
}

/** The packet in a frame at a random offset (after Ethernet, or a virtio header too), padding behind it. */
function framed(rnd: Rnd, pkt: Uint8Array): { buf: Uint8Array; ipOff: number } {
  const ipOff = rnd() < 0.5 ? 14 : 24;
  const buf = bytes(rnd, ipOff + pkt.length + (rnd() < 0.3 ? int(rnd, 20) : 0));
  buf.set(pkt, ipOff);
  return { buf, ipOff };
}

const PROTOS = [PROTO_TCP, PROTO_UDP, PROTO_ICMP];
const keep = (rnd: Rnd, old: number, fresh: number) => (rnd() < 0.3 ? old : fresh);

describe("natRewrite: random packets and rewrites against a full recomputation", () => {
  it("full mode: every checksum as summed from scratch; the inverse rewrite gives the bytes back", () => {
    const rnd = prng(0x0a7_0001);
    let zeros = 0;
    for (let t = 0; t < trials(4000); t++) {
      const proto = PROTOS[t % 3];
      const udpZero = proto === PROTO_UDP && rnd() < 0.2;
      const { buf, ipOff } = framed(rnd, randomPacket(rnd, proto, randomL4(rnd, proto), udpZero));
      const original = buf.slice();
      const k = key(buf, ipOff);
      const src = keep(rnd, k.src, u32(rnd));
      const dst = keep(rnd, k.dst, u32(rnd));
      const sport = keep(rnd, k.sport, int(rnd, 0x10000));
      const dport = proto === PROTO_ICMP ? int(rnd, 256) : keep(rnd, k.dport, int(rnd, 0x10000));
      natRewrite(buf, ipOff, k.l4Off, proto, src, sport, dst, dport, false);

      const pkt = buf.subarray(ipOff, ipOff + k.ipLen);
      expect([get32(pkt, 12), get32(pkt, 16)]).toEqual([src, dst]);
      const l4 = pkt.subarray((pkt[0] & 15) * 4);
      if (proto === PROTO_ICMP) expect([get16(l4, 4), l4[0]]).toEqual([sport, k.dport]);
      else expect([get16(l4, 0), get16(l4, 2)]).toEqual([sport, dport]);
      expect(toHex(pkt)).toBe(toHex(recomputed(pkt)));
      if (udpZero) { expect(get16(l4, 6)).toBe(0); zeros++; }
      // Padding and whatever lies before the packet are left alone.
      expect(toHex(buf.subarray(0, ipOff))).toBe(toHex(original.subarray(0, ipOff)));
      expect(toHex(buf.subarray(ipOff + k.ipLen))).toBe(toHex(original.subarray(ipOff + k.ipLen)));

      natRewrite(buf, ipOff, k.l4Off, proto, k.src, k.sport, k.dst, k.dport, false);
      expect(toHex(buf)).toBe(toHex(original));
    }
    expect(zeros).toBeGreaterThan(50);
  });

  it("partial mode: a NIC finishing the rewritten field gets the full checksum of the new packet", () => {
    const rnd = prng(0x0a7_0002);
    for (let t = 0; t < trials(3000); t++) {
      const proto = t % 2 ? PROTO_TCP : PROTO_UDP;
      const pkt = randomPacket(rnd, proto, randomL4(rnd, proto));
      const hl = (pkt[0] & 15) * 4;
      const co = hl + (proto === PROTO_TCP ? 16 : 6);
      put16(pkt, co, pseudo(pkt)); // as the kernel leaves it: fold(pseudoHeaderSum)
      const { buf, ipOff } = framed(rnd, pkt);
      const original = buf.slice();
      const k = key(buf, ipOff);
      const src = keep(rnd, k.src, u32(rnd));
      const dst = keep(rnd, k.dst, u32(rnd));
      natRewrite(buf, ipOff, k.l4Off, proto, src, keep(rnd, k.sport, int(rnd, 0x10000)), dst, keep(rnd, k.dport, int(rnd, 0x10000)), true);

      const after = buf.slice(ipOff, ipOff + k.ipLen);
      expect(get16(after, co)).toBe(pseudo(after));
      expect(toHex(after.subarray(0, hl))).toBe(toHex(recomputed(after).subarray(0, hl)));
      // The NIC: sum from the L4 header to the end, the field in place; complement; 0 goes out as 0xffff.
      const finished = after.slice();
      put16(finished, co, ~naiveSum(finished.subarray(hl)) & 0xffff || 0xffff);
      const fresh = naiveChecksum(after.subarray(hl), co - hl, pseudo(after)) || 0xffff;
      expect(get16(finished, co)).toBe(fresh);
      expect(naiveSum(finished.subarray(hl), pseudo(finished))).toBe(0xffff);

      natRewrite(buf, ipOff, k.l4Off, proto, k.src, k.sport, k.dst, k.dport, true);
      expect(toHex(buf)).toBe(toHex(original));
    }
  });
});

describe("natRewriteIcmpError: random errors against the quoted datagram rebuilt from scratch", () => {
  it("every header and checksum as if the quoted datagram had been sent translated; the inverse gives the bytes back", () => {
    const rnd = prng(0x0a7_0003);
    const types = [3, 4, 5, 11, 12];
    let quotedL4Checksums = 0;
    for (let t = 0; t < trials(3000); t++) {
      const qProto = PROTOS[t % 3];
      const inner = randomPacket(rnd, qProto, randomL4(rnd, qProto), rnd() < 0.2);
      const qhl = (inner[0] & 15) * 4;
      // As RFC 792 asks (the header and 8 bytes), as Linux sends (the whole), or in between.
      const r = rnd();
      const quoteLen = r < 0.4 ? qhl + 8 : r < 0.7 ? inner.length : qhl + 8 + int(rnd, inner.length - qhl - 7);
      const msg = new Uint8Array(8 + quoteLen);
      msg.set([types[int(rnd, 5)], int(rnd, 16), 0, 0, ...bytes(rnd, 4)]);
      msg.set(inner.subarray(0, quoteLen), 8);
      const outer = randomPacket(rnd, PROTO_ICMP, msg);
      const { buf, ipOff } = framed(rnd, outer);
      const original = buf.slice();
      const k = key(buf, ipOff);
      expect(k.kind).toBe(FlowKind.IcmpError);

      const oSrc = keep(rnd, k.src, u32(rnd));
      const oDst = keep(rnd, k.dst, u32(rnd));
      const qSrc = keep(rnd, k.qSrc, u32(rnd));
      const qDst = keep(rnd, k.qDst, u32(rnd));
      const qSport = keep(rnd, k.qSport, int(rnd, 0x10000));
      const qDport = qProto === PROTO_ICMP ? int(rnd, 256) : keep(rnd, k.qDport, int(rnd, 0x10000));
      natRewriteIcmpError(buf, ipOff, oSrc, oDst, qSrc, qSport, qDst, qDport);

      // The model: the datagram translated and summed anew, quoted as long as before. A
      // checksum field the quote does not wholly hold keeps its quoted bytes.
      const innerAfter = inner.slice();
      put32(innerAfter, 12, qSrc);
      put32(innerAfter, 16, qDst);
      if (qProto === PROTO_ICMP) put16(innerAfter, qhl + 4, qSport);
      else { put16(innerAfter, qhl, qSport); put16(innerAfter, qhl + 2, qDport); }
      const model = recomputed(innerAfter);
      const field = qhl + (qProto === PROTO_TCP ? 16 : qProto === PROTO_UDP ? 6 : 2);
      if (field + 2 > quoteLen) model.set(inner.subarray(field, quoteLen), field);
      else if (qProto !== PROTO_ICMP) quotedL4Checksums++;
      const want = outer.slice();
      put32(want, 12, oSrc);
      put32(want, 16, oDst);
      const ohl = (want[0] & 15) * 4;
      want.set(model.subarray(0, quoteLen), ohl + 8);
      expect(toHex(buf.subarray(ipOff, ipOff + k.ipLen))).toBe(toHex(recomputed(want)));

      natRewriteIcmpError(buf, ipOff, k.src, k.dst, k.qSrc, k.qSport, k.qDst, k.qDport);
      expect(toHex(buf)).toBe(toHex(original));
    }
    expect(quotedL4Checksums).toBeGreaterThan(500);
  });
});

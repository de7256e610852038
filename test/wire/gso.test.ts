import { describe, expect, it } from "vitest";
import { fromHex, get16, get32, put16, put32 } from "../../src/wire/bytes.ts";
import { fold, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from "../../src/wire/ethernet.ts";
import { GsoSegmenter, completeChecksum, completeChecksumAt, segmentTcp4ToArrays, segmentToArrays } from "../../src/wire/gso.ts";
import { IPV4_FLAG_MF, PROTO_TCP, PROTO_UDP } from "../../src/wire/ipv4.ts";
import { TCP_ACK_FLAG, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_URG } from "../../src/wire/tcp.ts";
import {
  GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, ETH_OFF, VNET_F_NEEDS_CSUM,
  emitVirtioNetHdr, parseVirtioNetHdr, type VirtioNetHdr,
} from "../../src/wire/virtio.ts";
import { prng, trials } from "../support/random.ts";
import { countSubarrays } from "../support/subarrays.ts";

// Headers reused from the golden captures in ipv4.test.ts, tcp.test.ts, udp.test.ts and
// ethernet.test.ts (namespaces tapnet-golden-a/b, 10.99.0.1 ↔ 10.99.0.2, 2026-11-23): the IPv4
// header of the SYN 10.99.0.1 → 10.99.0.2 (DF, TTL 64, id 0x2d7f), the TCP header of the final
// ACK 40001 → 7777 (32 bytes: NOP, NOP, timestamps), the UDP header 40000 → 5555, and the MACs
// of veth-ga/veth-gb. Lengths, ids, flags and checksums are rewritten per test frame.
const ETH = fromHex("0200 0a63 0002 0200 0a63 0001 0800");
const IPV4 = fromHex("4500 003c 2d7f 4000 4006 f874 0a63 0001 0a63 0002");
const TCP_ACK_HDR = fromHex("9c41 1e61 a041 8ee1 08af cbbd 8010 003f cec6 0000 0101 080a f2c5 fd4b d645 0e65");
const UDP_HDR = fromHex("9c40 15b3 0014 aad3");
const SRC = 0x0a630001;
const DST = 0x0a630002;

// ---- naive references, written the obvious way, independent of src/wire/checksum.ts ----

function naiveSum(bytes: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const naiveChecksum = (bytes: Uint8Array, init = 0) => ~naiveSum(bytes, init) & 0xffff;
const pseudo = (src: number, dst: number, proto: number, len: number) =>
  naiveSum(Uint8Array.of(src >>> 24, src >>> 16, src >>> 8, src, dst >>> 24, dst >>> 16, dst >>> 8, dst, 0, proto, len >>> 8, len));

/** Byte equality, fast; `expect(...).toEqual` on big arrays is slow, so call it only to show a difference. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
function expectSameSegments(got: Uint8Array[], want: Uint8Array[], what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let k = 0; k < want.length; k++) if (!same(got[k], want[k])) expect(got[k], `${what}, segment ${k}`).toEqual(want[k]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

interface Located { l2: number; l3: number; l4: number; l4Len: number; end: number; src: number; dst: number }
function locate(frame: Uint8Array, proto: number): Located {
  let l2 = 14;
  while (get16(frame, l2 - 2) === ETHERTYPE_VLAN || get16(frame, l2 - 2) === ETHERTYPE_QINQ) l2 += 4;
  const l4 = l2 + (frame[l2] & 15) * 4;
  return {
    l2, l3: l2, l4, l4Len: proto === PROTO_TCP ? (frame[l4 + 12] >> 4) * 4 : 8, end: l2 + get16(frame, l2 + 2),
    src: get32(frame, l2 + 12), dst: get32(frame, l2 + 16),
  };
}

/** Segments the way a textbook would: slice, copy, fix the fields, checksum everything. */
function referenceSegment(frame: Uint8Array, proto: number, mss: number): Uint8Array[] {
  const { l2, l4, l4Len, end, src, dst } = locate(frame, proto);
  const payload = frame.slice(l4 + l4Len, end);
  const segs: Uint8Array[] = [];
  let i = 0;
  let k = 0;
  do {
    const chunk = payload.slice(i, i + mss);
    const ip = frame.slice(l2, l4);
    const l4h = frame.slice(l4, l4 + l4Len);
    put16(ip, 2, ip.length + l4Len + chunk.length);
    put16(ip, 4, (get16(ip, 4) + k) % 65536);
    put16(ip, 10, 0);
    put16(ip, 10, naiveChecksum(ip));
    let seg: Uint8Array;
    if (proto === PROTO_TCP) {
      put32(l4h, 4, (get32(l4h, 4) + i) % 2 ** 32);
      if (i + chunk.length < payload.length) l4h[13] &= ~(TCP_FIN | TCP_PSH);
      if (k > 0) l4h[13] &= ~TCP_CWR;
      put16(l4h, 16, 0);
      seg = concat(l4h, chunk);
      put16(seg, 16, naiveChecksum(seg, pseudo(src, dst, PROTO_TCP, seg.length)));
    } else {
      put16(l4h, 4, 8 + chunk.length);
      put16(l4h, 6, 0);
      seg = concat(l4h, chunk);
      const c = naiveChecksum(seg, pseudo(src, dst, PROTO_UDP, seg.length));
      put16(seg, 6, c === 0 ? 0xffff : c);
    }
    segs.push(concat(frame.slice(0, l2), ip, seg));
    i += chunk.length;
    k++;
  } while (i < payload.length);
  return segs;
}

// ---- test frames ----

interface SuperFrameSpec {
  proto?: number;
  payload: Uint8Array;
  gsoSize: number;
  vlans?: number[];
  ipOptions?: Uint8Array;
  /** TCP options; default those of the golden ACK (timestamps). */
  tcpOptions?: Uint8Array;
  flags?: number;
  seq?: number;
  id?: number;
  /** What the kernel left in the L4 checksum field: the pseudo-header sum without the length (GSO), with it, or junk. */
  partial?: "nolen" | "len" | "junk";
}

/** A virtio_net_hdr and the super-frame after it, as a TAP with TSO on hands them over. */
function superFrame(s: SuperFrameSpec): { buf: Uint8Array; frame: Uint8Array; hdr: VirtioNetHdr } {
  const proto = s.proto ?? PROTO_TCP;
  const vlans = s.vlans ?? [];
  const eth = new Uint8Array(14 + 4 * vlans.length);
  eth.set(ETH.subarray(0, 12));
  vlans.forEach((vid, i) => { put16(eth, 12 + 4 * i, i < vlans.length - 1 ? ETHERTYPE_QINQ : ETHERTYPE_VLAN); put16(eth, 14 + 4 * i, vid); });
  put16(eth, eth.length - 2, ETHERTYPE_IPV4);
  const ipOpts = s.ipOptions ?? new Uint8Array(0);
  const ip = concat(IPV4, ipOpts);
  ip[0] = 0x40 | (ip.length / 4);
  ip[9] = proto;
  let l4: Uint8Array;
  if (proto === PROTO_TCP) {
    const opts = s.tcpOptions ?? TCP_ACK_HDR.subarray(20);
    l4 = concat(TCP_ACK_HDR.subarray(0, 20), opts);
    l4[12] = (l4.length / 4) << 4;
    l4[13] = s.flags ?? (TCP_ACK_FLAG | TCP_PSH);
    if (s.seq !== undefined) put32(l4, 4, s.seq);
  } else {
    l4 = UDP_HDR.slice();
    put16(l4, 4, 8 + s.payload.length);
  }
  put16(ip, 2, ip.length + l4.length + s.payload.length);
  if (s.id !== undefined) put16(ip, 4, s.id);
  put16(ip, 10, 0);
  put16(ip, 10, naiveChecksum(ip));
  const csumField = proto === PROTO_TCP ? 16 : 6;
  const l4Total = l4.length + s.payload.length;
  const partial = s.partial ?? "nolen";
  put16(l4, csumField, partial === "junk" ? 0xbeef : fold(pseudoHeaderSum(SRC, DST, proto, partial === "len" ? l4Total : 0)));
  const frame = concat(eth, ip, l4, s.payload);
  const hdr: VirtioNetHdr = {
    flags: VNET_F_NEEDS_CSUM, gsoType: proto === PROTO_TCP ? GSO_TCPV4 : GSO_UDP_L4,
    hdrLen: eth.length + ip.length + l4.length, gsoSize: s.gsoSize,
    csumStart: eth.length + ip.length, csumOffset: csumField,
  };
  const buf = new Uint8Array(ETH_OFF + frame.length);
  emitVirtioNetHdr(hdr, buf, 0);
  buf.set(frame, ETH_OFF);
  return { buf, frame: buf.subarray(ETH_OFF), hdr };
}

function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

// ---- running the segmenter the way the datapath does, with guard bytes around `out` ----

const GUARD = 64;
const HEADROOM = 50; // outer Ethernet + IPv4 + UDP + VXLAN
const OUT_SIZE = 70_000;
const arena = new Uint8Array(GUARD + OUT_SIZE + GUARD);
const out = arena.subarray(GUARD, GUARD + OUT_SIZE);
let collected: Uint8Array[] = [];
let target = out;
const sink = (b: Uint8Array, o: number, l: number) => {
  expect(b === target).toBe(true);
  expect(o).toBe(HEADROOM);
  collected.push(b.slice(o, o + l));
};

function run(seg: GsoSegmenter, buf: Uint8Array, gsoType: number, gsoSize: number, o = ETH_OFF, len = buf.length - o,
  into = out): { drop: DropReason; segs: Uint8Array[] } {
  arena.fill(0xa5);
  collected = [];
  target = into;
  const drop = seg.segment(buf, o, len, gsoType, gsoSize, into, HEADROOM, sink);
  // Nothing written outside the segment area: not before `out`, not in the headroom, not after.
  const maxEnd = GUARD + HEADROOM + Math.max(0, ...collected.map((s) => s.length));
  for (let i = 0; i < GUARD + HEADROOM; i++) if (arena[i] !== 0xa5) throw new Error(`wrote at arena ${i}`);
  for (let i = maxEnd; i < arena.length; i++) if (arena[i] !== 0xa5) throw new Error(`wrote at arena ${i}`);
  return { drop, segs: collected };
}

/**
 * segmentPieces: segments put together from their two pieces only after the last was emitted,
 * so that with a stride every segment's headers must still be where they were said to be.
 * Payload pieces must lie in `buf` itself (nothing copied).
 */
function runPieces(seg: GsoSegmenter, buf: Uint8Array, gsoType: number, gsoSize: number, stride: number, into = out): { drop: DropReason; segs: Uint8Array[] } {
  arena.fill(0xa5);
  const pieces: { hdrOff: number; hdrLen: number; payOff: number; payLen: number }[] = [];
  const early: Uint8Array[] = [];
  const drop = seg.segmentPieces(buf, ETH_OFF, buf.length - ETH_OFF, gsoType, gsoSize, into, HEADROOM, stride, (o, hdrOff, hdrLen, f, payOff, payLen) => {
    expect(o === into && f === buf).toBe(true);
    expect(hdrOff).toBe(HEADROOM + pieces.length * stride);
    pieces.push({ hdrOff, hdrLen, payOff, payLen });
    // Without a stride, the headers are good only until the next segment's are written.
    if (stride === 0) early.push(concat(into.slice(hdrOff, hdrOff + hdrLen), buf.slice(payOff, payOff + payLen)));
  });
  const segs = stride === 0 ? early : pieces.map((p) => concat(into.slice(p.hdrOff, p.hdrOff + p.hdrLen), buf.slice(p.payOff, p.payOff + p.payLen)));
  if (stride > 0 && pieces.length) {
    // Nothing written outside the headers' places: not the headroom, not between strides.
    const last = pieces[pieces.length - 1];
    for (let i = 0; i < GUARD + HEADROOM; i++) if (arena[i] !== 0xa5) throw new Error(`wrote at arena ${i}`);
    for (const p of pieces) for (let i = p.hdrOff + p.hdrLen; i < p.hdrOff + stride && i < OUT_SIZE; i++) if (into[i] !== 0xa5 && into === out) throw new Error(`wrote at out ${i}`);
    for (let i = GUARD + last.hdrOff + last.hdrLen; i < arena.length; i++) if (arena[i] !== 0xa5 && into === out) throw new Error(`wrote at arena ${i}`);
  }
  return { drop, segs };
}

function name(d: DropReason): string {
  return DROP_NAMES[d];
}

/** Checks a TCP segment list against the super-frame it came from, by the rules, not by a reference. */
function checkTcpSegments(frame: Uint8Array, segs: Uint8Array[], mss: number): void {
  const orig = locate(frame, PROTO_TCP);
  const payload = frame.subarray(orig.l4 + orig.l4Len, orig.end);
  const seq0 = get32(frame, orig.l4 + 4);
  const id0 = get16(frame, orig.l3 + 4);
  const flags0 = frame[orig.l4 + 13];
  expect(segs.length).toBe(Math.max(1, Math.ceil(payload.length / mss)));
  let sent = 0;
  segs.forEach((seg, k) => {
    const s = locate(seg, PROTO_TCP);
    expect(seg.subarray(0, s.l3), "Ethernet header and tags").toEqual(frame.subarray(0, orig.l3));
    expect(s.end, "IPv4 total length").toBe(seg.length);
    expect(naiveChecksum(seg.subarray(s.l3, s.l4)), "IPv4 header checksum").toBe(0);
    expect(get16(seg, s.l3 + 4), "IP id").toBe((id0 + k) & 0xffff);
    expect(seg.subarray(s.l3 + 6, s.l3 + 10)).toEqual(frame.subarray(orig.l3 + 6, orig.l3 + 10));
    expect(seg.subarray(s.l3 + 12, s.l4), "addresses and options").toEqual(frame.subarray(orig.l3 + 12, orig.l4));
    const tcpLen = seg.length - s.l4;
    expect(naiveChecksum(seg.subarray(s.l4), pseudo(SRC, DST, PROTO_TCP, tcpLen)), "TCP checksum").toBe(0);
    expect(get32(seg, s.l4 + 4), "seq").toBe((seq0 + sent) % 2 ** 32);
    const last = k === segs.length - 1;
    const f = seg[s.l4 + 13];
    expect(f & (TCP_FIN | TCP_PSH), "FIN/PSH").toBe(last ? flags0 & (TCP_FIN | TCP_PSH) : 0);
    expect(f & TCP_CWR, "CWR").toBe(k === 0 ? flags0 & TCP_CWR : 0);
    expect(f & ~(TCP_FIN | TCP_PSH | TCP_CWR)).toBe(flags0 & ~(TCP_FIN | TCP_PSH | TCP_CWR));
    expect(seg.subarray(s.l4 + 8, s.l4 + 13), "ack, data offset").toEqual(frame.subarray(orig.l4 + 8, orig.l4 + 13));
    expect(get16(seg, s.l4 + 14), "window").toBe(get16(frame, orig.l4 + 14));
    expect(seg.subarray(s.l4 + 18, s.l4 + s.l4Len), "urgent, options").toEqual(frame.subarray(orig.l4 + 18, orig.l4 + orig.l4Len));
    const p = seg.subarray(s.l4 + s.l4Len);
    expect(p.length).toBeLessThanOrEqual(mss);
    if (!last) expect(p.length).toBe(mss);
    if (!same(p, payload.subarray(sent, sent + p.length))) expect(p).toEqual(payload.subarray(sent, sent + p.length));
    sent += p.length;
  });
  expect(sent).toBe(payload.length);
}

// ---- tests ----

describe("TCP segmentation", () => {
  const seg = new GsoSegmenter(9100);

  it("a 64 KB super-frame at MSS 1448 becomes 45 correct segments", () => {
    const payload = randomBytes(prng(1), 65_160);
    const { buf, frame, hdr } = superFrame({ payload, gsoSize: 1448, flags: TCP_ACK_FLAG | TCP_PSH | TCP_FIN | TCP_CWR | TCP_ECE });
    expect(parseVirtioNetHdr(buf)).toMatchObject({ gsoType: GSO_TCPV4, gsoSize: 1448, csumStart: 34, csumOffset: 16, hdrLen: 66 });
    const { drop, segs } = run(seg, buf, hdr.gsoType, hdr.gsoSize);
    expect(name(drop)).toBe("none");
    expect(segs).toHaveLength(45);
    expect(segs[0].length).toBe(14 + 20 + 32 + 1448);
    expect(segs[44].length).toBe(14 + 20 + 32 + 65_160 - 44 * 1448);
    checkTcpSegments(frame, segs, 1448);
    expectSameSegments(segs, referenceSegment(frame, PROTO_TCP, 1448), "reference");
  });

  it("the super-frame itself is not modified", () => {
    const { buf, hdr } = superFrame({ payload: randomBytes(prng(2), 5000), gsoSize: 1000 });
    const copy = buf.slice();
    expect(run(seg, buf, hdr.gsoType, hdr.gsoSize).drop).toBe(Drop.None);
    expect(buf).toEqual(copy);
  });

  it("VLAN and QinQ tags stay on every segment", () => {
    for (const vlans of [[5], [100, 5]]) {
      const { buf, frame } = superFrame({ payload: randomBytes(prng(3), 4000), gsoSize: 1400, vlans });
      const { drop, segs } = run(seg, buf, GSO_TCPV4, 1400);
      expect(name(drop)).toBe("none");
      expect(segs).toHaveLength(3);
      for (const s of segs) expect(s.subarray(0, 14 + 4 * vlans.length)).toEqual(frame.subarray(0, 14 + 4 * vlans.length));
      checkTcpSegments(frame, segs, 1400);
    }
  });

  it("IPv4 options are copied into every segment", () => {
    const ipOptions = fromHex("0101 0101 9404 0000"); // NOPs, Router Alert
    const { buf, frame } = superFrame({ payload: randomBytes(prng(4), 3000), gsoSize: 1000, ipOptions });
    const { drop, segs } = run(seg, buf, GSO_TCPV4, 1000);
    expect(name(drop)).toBe("none");
    checkTcpSegments(frame, segs, 1000);
    for (const s of segs) expect(s[14]).toBe(0x47);
  });

  it("a payload of at most gso_size comes out as one segment: the frame with its checksum completed", () => {
    for (const n of [0, 1, 999, 1000]) {
      const { buf, frame } = superFrame({ payload: randomBytes(prng(5), n), gsoSize: 1000, flags: TCP_ACK_FLAG | TCP_PSH | TCP_FIN | TCP_CWR });
      const { drop, segs } = run(seg, buf, GSO_TCPV4, 1000);
      expect(name(drop)).toBe("none");
      expect(segs).toHaveLength(1);
      checkTcpSegments(frame, segs, 1000);
      // Everything but the TCP checksum is as it was.
      const expected = frame.slice();
      put16(expected, 50, get16(segs[0], 50));
      expect(segs[0]).toEqual(expected);
    }
  });

  it("sequence numbers wrap at 2^32 and IP ids at 2^16", () => {
    const { buf, frame } = superFrame({ payload: randomBytes(prng(6), 10_000), gsoSize: 1448, seq: 0xffff_f000, id: 0xfffd });
    const { drop, segs } = run(seg, buf, GSO_TCPV4, 1448);
    expect(name(drop)).toBe("none");
    checkTcpSegments(frame, segs, 1448);
    expect(segs.map((s) => get16(s, 18))).toEqual([0xfffd, 0xfffe, 0xffff, 0, 1, 2, 3]);
    expect(get32(segs[3], 38)).toBe(0xffff_f000 + 3 * 1448 - 2 ** 32);
  });

  it("the ECN bit of gso_type is accepted; CWR stays on the first segment only; URG and ECE stay on all", () => {
    const { buf, frame } = superFrame({ payload: randomBytes(prng(7), 3000), gsoSize: 1000, flags: TCP_ACK_FLAG | TCP_CWR | TCP_ECE | TCP_URG | TCP_FIN });
    const { drop, segs } = run(seg, buf, GSO_TCPV4 | GSO_ECN, 1000);
    expect(name(drop)).toBe("none");
    expect(segs.map((s) => s[47])).toEqual([
      TCP_ACK_FLAG | TCP_CWR | TCP_ECE | TCP_URG, TCP_ACK_FLAG | TCP_ECE | TCP_URG, TCP_ACK_FLAG | TCP_ECE | TCP_URG | TCP_FIN]);
    checkTcpSegments(frame, segs, 1000);
  });

  it("whatever the kernel left in the checksum field (GSO: no length; or with it; or junk), the result is the same", () => {
    const payload = randomBytes(prng(8), 7777);
    const results = (["nolen", "len", "junk"] as const).map((partial) => {
      const { buf, frame } = superFrame({ payload, gsoSize: 1448, partial });
      const r = run(seg, buf, GSO_TCPV4, 1448);
      expect(name(r.drop)).toBe("none");
      checkTcpSegments(frame, r.segs, 1448);
      return r.segs;
    });
    expectSameSegments(results[1], results[0], "with length");
    expectSameSegments(results[2], results[0], "junk");
  });

  it("segment() by gso_type, segmentPieces with and without a stride, and segmentTcp4ToArrays agree", () => {
    const { buf, frame } = superFrame({ payload: randomBytes(prng(9), 20_000), gsoSize: 1448 });
    const viaType = run(seg, buf, GSO_TCPV4, 1448).segs;
    expectSameSegments(runPieces(seg, buf, GSO_TCPV4, 1448, 0).segs, viaType, "segmentPieces, stride 0");
    expectSameSegments(runPieces(seg, buf, GSO_TCPV4, 1448, 160).segs, viaType, "segmentPieces, stride 160");
    expectSameSegments(segmentTcp4ToArrays(frame, 1448) as Uint8Array[], viaType, "segmentTcp4ToArrays");
    expectSameSegments(segmentToArrays(frame, GSO_TCPV4, 1448) as Uint8Array[], viaType, "segmentToArrays");
    expect(segmentTcp4ToArrays(frame, 0)).toBe(Drop.GsoBadSize);
  });

  it("segment() into another slot of the super-frame's ArrayBuffer: the same segments, and no view made", () => {
    const r = prng(122);
    for (let n = 0; n < trials(40, 10); n++) {
      const proto = n % 2 ? PROTO_UDP : PROTO_TCP;
      const gsoSize = 200 + Math.floor(r() * 1400);
      const { buf, frame } = superFrame({ proto, payload: randomBytes(r, 1 + Math.floor(r() * 30_000)), gsoSize });
      // One buffer of slots, as the datapath's: the super-frame in one, the segments written to another.
      const slots = new Uint8Array(2 * 32_768);
      const slot = slots.subarray(0, buf.length), into = slots.subarray(32_768);
      slot.set(buf);
      const segs: Uint8Array[] = [];
      const views = countSubarrays(() => {
        const d = seg.segment(slot, ETH_OFF, slot.length - ETH_OFF, proto === PROTO_TCP ? GSO_TCPV4 : GSO_UDP_L4, gsoSize, into, HEADROOM,
          (b, o, l) => { segs.push(b.slice(o, o + l)); });
        expect(name(d)).toBe("none");
      });
      expect(views, `frame ${n}: subarrays made`).toBe(0);
      expectSameSegments(segs, referenceSegment(frame, proto, gsoSize), `frame ${n}`);
    }
  });

  it("2,000 random super-frames match the naive reference segmenter", () => {
    const r = prng(2026);
    const big = new GsoSegmenter(9100);
    for (let n = 0; n < trials(2000); n++) {
      const payload = randomBytes(r, 1 + Math.floor(r() * 65_000));
      const gsoSize = 500 + Math.floor(r() * 8501);
      const tcpOptions = randomBytes(r, 4 * Math.floor(r() * 11));
      const ipOptions = new Uint8Array(4 * Math.floor(r() * 3)).fill(1); // NOPs: the header must still fit 64 KB
      const vlans = r() < 0.2 ? [Math.floor(r() * 4095)] : [];
      const spec: SuperFrameSpec = {
        payload, gsoSize, tcpOptions, ipOptions, vlans, flags: (r() * 256) | 0,
        seq: Math.floor(r() * 2 ** 32), id: Math.floor(r() * 65536), partial: r() < 0.5 ? "nolen" : "len",
      };
      const total = 20 + ipOptions.length + 20 + tcpOptions.length + payload.length;
      if (total > 0xffff) spec.payload = payload.subarray(0, payload.length - (total - 0xffff));
      const { buf, frame } = superFrame(spec);
      const { drop, segs } = run(big, buf, GSO_TCPV4, gsoSize);
      if (drop !== Drop.None) throw new Error(`frame ${n}: ${name(drop)}`);
      expectSameSegments(segs, referenceSegment(frame, PROTO_TCP, gsoSize), `frame ${n}`);
      if (n % 50 === 0) checkTcpSegments(frame, segs, gsoSize);
    }
  }, 30_000); // a few seconds alone; more on a loaded machine
});

describe("segments as pieces, headers at a stride (for a gathered send)", () => {
  const seg = new GsoSegmenter(9100);

  it("300 random TCP and UDP super-frames, each segment's headers in its own stride, match the reference", () => {
    const r = prng(4242);
    for (let n = 0; n < trials(300); n++) {
      const proto = r() < 0.5 ? PROTO_TCP : PROTO_UDP;
      const gsoSize = 500 + Math.floor(r() * 1000);
      const payload = randomBytes(r, 1 + Math.floor(r() * 60_000));
      const tcpOptions = proto === PROTO_TCP ? randomBytes(r, 4 * Math.floor(r() * 11)) : undefined;
      const { buf, frame } = superFrame({ proto, payload, gsoSize, tcpOptions, vlans: r() < 0.2 ? [5] : [], seq: Math.floor(r() * 2 ** 32), id: (r() * 65536) | 0 });
      const stride = 200 + Math.floor(r() * 64);
      const { drop, segs } = runPieces(seg, buf, proto === PROTO_TCP ? GSO_TCPV4 : GSO_UDP_L4, gsoSize, stride);
      expect(name(drop), `frame ${n}`).toBe("none");
      expectSameSegments(segs, referenceSegment(frame, proto, gsoSize), `frame ${n}`);
    }
  });

  it("refuses a stride shorter than the headroom and headers, or an out too small for every segment's, writing nothing", () => {
    const { buf } = superFrame({ payload: randomBytes(prng(12), 10_000), gsoSize: 1000 });
    expect(name(runPieces(seg, buf, GSO_TCPV4, 1000, 40).drop)).toBe("gso_too_big");
    expect(name(runPieces(seg, buf, GSO_TCPV4, 1000, HEADROOM + 65).drop)).toBe("gso_too_big"); // the headers fit, not with the headroom
    expect(name(runPieces(seg, buf, GSO_TCPV4, 1000, HEADROOM + 66).drop)).toBe("none");
    const small = new Uint8Array(HEADROOM + 9 * 200 + 65); // 10 segments' headers: 9 strides and 66 bytes (Ethernet, IPv4, TCP with timestamps)
    expect(name(runPieces(seg, buf, GSO_TCPV4, 1000, 200, small).drop)).toBe("gso_too_big");
    expect(small.every((b) => b === 0)).toBe(true);
    expect(name(runPieces(seg, buf, GSO_TCPV4, 1000, 200, new Uint8Array(HEADROOM + 9 * 200 + 66)).drop)).toBe("none");
  });
});

describe("UDP segmentation (GSO_UDP_L4)", () => {
  const seg = new GsoSegmenter(9100);

  it("a super-datagram becomes datagrams with their own lengths and checksums", () => {
    const payload = randomBytes(prng(10), 10_000);
    const { buf, frame } = superFrame({ proto: PROTO_UDP, payload, gsoSize: 1400, vlans: [7] });
    const { drop, segs } = run(seg, buf, GSO_UDP_L4, 1400);
    expect(name(drop)).toBe("none");
    expect(segs).toHaveLength(8);
    let sent = 0;
    segs.forEach((s, k) => {
      const l = locate(s, PROTO_UDP);
      expect(s.subarray(0, 18)).toEqual(frame.subarray(0, 18));
      expect(l.end).toBe(s.length);
      expect(naiveChecksum(s.subarray(l.l3, l.l4))).toBe(0);
      expect(get16(s, l.l3 + 4)).toBe((0x2d7f + k) & 0xffff);
      expect(get16(s, l.l4 + 4), "UDP length").toBe(s.length - l.l4);
      expect(get16(s, l.l4 + 6)).not.toBe(0);
      expect(naiveChecksum(s.subarray(l.l4), pseudo(SRC, DST, PROTO_UDP, s.length - l.l4))).toBe(0);
      const p = s.subarray(l.l4 + 8);
      expect(p).toEqual(payload.subarray(sent, sent + p.length));
      sent += p.length;
    });
    expect(sent).toBe(payload.length);
    expectSameSegments(segs, referenceSegment(frame, PROTO_UDP, 1400), "reference");
  });

  it("500 random super-datagrams match the reference", () => {
    const r = prng(77);
    for (let n = 0; n < trials(500); n++) {
      const payload = randomBytes(r, 1 + Math.floor(r() * 60_000));
      const gsoSize = 500 + Math.floor(r() * 8501);
      const { buf, frame } = superFrame({ proto: PROTO_UDP, payload, gsoSize, vlans: r() < 0.3 ? [3] : [], id: (r() * 65536) | 0 });
      const { drop, segs } = run(seg, buf, GSO_UDP_L4, gsoSize);
      expect(name(drop), `datagram ${n}`).toBe("none");
      expectSameSegments(segs, referenceSegment(frame, PROTO_UDP, gsoSize), `datagram ${n}`);
    }
  });

  it("a checksum that comes out 0 is sent as 0xffff", () => {
    // One segment; choose its last two payload bytes so the sum folds to 0xffff.
    const payload = randomBytes(prng(11), 100);
    payload[98] = payload[99] = 0;
    const { frame } = superFrame({ proto: PROTO_UDP, payload, gsoSize: 1000 });
    const l = locate(frame, PROTO_UDP);
    const seg = frame.slice(l.l4);
    put16(seg, 6, 0);
    const s = naiveSum(seg, pseudo(SRC, DST, PROTO_UDP, seg.length));
    put16(payload, 98, 0xffff - s);
    const { frame: f2 } = superFrame({ proto: PROTO_UDP, payload, gsoSize: 1000 });
    const segs = segmentToArrays(f2, GSO_UDP_L4, 1000) as Uint8Array[];
    expect(segs).toHaveLength(1);
    expect(get16(segs[0], l.l4 + 6)).toBe(0xffff);
    expect(naiveChecksum(segs[0].subarray(l.l4), pseudo(SRC, DST, PROTO_UDP, segs[0].length - l.l4))).toBe(0);
  });
});

describe("completeChecksum", () => {
  function partialFrame(r: () => number, proto: number): { frame: Uint8Array; csumStart: number; csumOffset: number; expected: number } {
    const payload = randomBytes(r, Math.floor(r() * 3000));
    const vlans = r() < 0.3 ? [Math.floor(r() * 4095)] : [];
    const tcpOptions = randomBytes(r, 4 * Math.floor(r() * 11));
    const { frame, hdr } = superFrame({ proto, payload, gsoSize: 0, vlans, tcpOptions, partial: "len" });
    const l4 = frame.slice(hdr.csumStart);
    put16(l4, hdr.csumOffset, 0);
    const c = naiveChecksum(l4, pseudo(SRC, DST, proto, l4.length));
    return { frame, csumStart: hdr.csumStart, csumOffset: hdr.csumOffset, expected: c === 0 ? 0xffff : c };
  }

  it("matches a full recompute for 1,000 random TCP and 1,000 random UDP frames", () => {
    const r = prng(3);
    for (const proto of [PROTO_TCP, PROTO_UDP]) {
      for (let n = 0; n < trials(1000); n++) {
        const { frame, csumStart, csumOffset, expected } = partialFrame(r, proto);
        const buf = new Uint8Array(frame.length + 20).fill(0x5a);
        buf.set(frame, 7);
        expect(completeChecksum(buf, 7, frame.length, { csumStart, csumOffset })).toBe(Drop.None);
        expect(get16(buf, 7 + csumStart + csumOffset)).toBe(expected);
        const l4 = buf.subarray(7 + csumStart, 7 + frame.length);
        expect(naiveChecksum(l4, pseudo(SRC, DST, proto, l4.length))).toBe(0);
        // Only the checksum field changed.
        put16(buf, 7 + csumStart + csumOffset, get16(frame, csumStart + csumOffset));
        if (!same(buf.subarray(7, 7 + frame.length), frame)) expect(buf.subarray(7, 7 + frame.length)).toEqual(frame);
        expect(buf.subarray(0, 7).every((b) => b === 0x5a) && buf.subarray(7 + frame.length).every((b) => b === 0x5a)).toBe(true);
      }
    }
  });

  it("offsets outside the frame are a drop, and nothing is written", () => {
    const { frame, csumStart } = partialFrame(prng(4), PROTO_UDP);
    const copy = frame.slice();
    const len = frame.length;
    for (const [start, offset] of [[len, 0], [len - 1, 0], [len - 2, 1], [csumStart, len], [0xffff, 0xffff], [-1, 6], [csumStart, -1]]) {
      expect(completeChecksumAt(frame, 0, len, start, offset), `${start}/${offset}`).toBe(Drop.CsumBadOffset);
    }
    expect(completeChecksumAt(frame, 0, len + 1, csumStart, 6)).toBe(Drop.CsumBadOffset);
    expect(completeChecksumAt(frame, 5, len, csumStart, 6)).toBe(Drop.CsumBadOffset);
    expect(frame).toEqual(copy);
    expect(completeChecksumAt(frame, 0, len, len - 2, 0)).toBe(Drop.None); // the last two bytes: in bounds
  });
});

describe("malformed super-frames are counted drops, never exceptions or stray writes", () => {
  const seg = new GsoSegmenter(9100);
  const base = () => superFrame({ payload: randomBytes(prng(12), 3000), gsoSize: 1000 });

  it("every truncation", () => {
    const { buf } = base();
    for (let len = 0; len < buf.length - ETH_OFF; len++) {
      const { drop, segs } = run(seg, buf, GSO_TCPV4, 1000, ETH_OFF, len);
      expect(drop, `len ${len}`).not.toBe(Drop.None);
      expect(segs).toEqual([]);
    }
    // Length and offset beyond the buffer itself.
    expect(run(seg, buf, GSO_TCPV4, 1000, ETH_OFF, buf.length).drop).toBe(Drop.GsoMalformed);
    expect(run(seg, buf, GSO_TCPV4, 1000, -1, 100).drop).toBe(Drop.GsoMalformed);
  });

  it("bad IHL, bad version, total length beyond the frame", () => {
    const cases: [number, number, DropReason][] = [
      [24, 0x44, Drop.Ipv4BadHeaderLen], [24, 0x40, Drop.Ipv4BadHeaderLen],
      [24, 0x65, Drop.Ipv4BadVersion],
    ];
    for (const [at, v, want] of cases) {
      const { buf } = base();
      buf[at] = v;
      expect(name(run(seg, buf, GSO_TCPV4, 1000).drop), `${at}=${v}`).toBe(name(want));
    }
    const { buf } = base();
    put16(buf, 26, get16(buf, 26) + 1);
    expect(name(run(seg, buf, GSO_TCPV4, 1000).drop)).toBe("ipv4_bad_total_len");
    // An IHL of 15 in a frame too short for it (only the IPv4 header and 10 bytes after it).
    const short = buf.slice(0, 10 + 14 + 30);
    short[24] = 0x4f;
    put16(short, 26, 30);
    expect(name(run(seg, short, GSO_TCPV4, 1000).drop)).toBe("ipv4_bad_header_len");
  });

  it("TCP data offset below 5 or beyond the IP payload", () => {
    for (const doff of [0, 4, 15]) {
      const { buf } = superFrame({ payload: new Uint8Array(10), gsoSize: 1000 });
      buf[10 + 34 + 12] = doff << 4;
      expect(name(run(seg, buf, GSO_TCPV4, 1000).drop), `data offset ${doff}`).toBe("tcp_bad_header_len");
    }
    const { buf } = superFrame({ payload: new Uint8Array(0), gsoSize: 1000, tcpOptions: new Uint8Array(0) });
    put16(buf, 10 + 16, 20 + 19); // the IP payload is 19 bytes: no room for a TCP header
    expect(name(run(seg, buf, GSO_TCPV4, 1000, 10, 14 + 39).drop)).toBe("tcp_truncated");
  });

  it("gso_size 0 or negative", () => {
    const { buf } = base();
    expect(run(seg, buf, GSO_TCPV4, 0).drop).toBe(Drop.GsoBadSize);
    expect(run(seg, buf, GSO_TCPV4, -5).drop).toBe(Drop.GsoBadSize);
    expect(run(seg, buf, GSO_UDP_L4, 0).drop).toBe(Drop.GsoBadSize);
  });

  it("unsupported gso types and network layers", () => {
    const { buf } = base();
    for (const t of [GSO_TCPV6, GSO_UDP, GSO_NONE, 2, 6, 0x7f]) expect(run(seg, buf, t, 1000).drop, `type ${t}`).toBe(Drop.GsoUnsupported);
    const v6 = buf.slice();
    put16(v6, 10 + 12, ETHERTYPE_IPV6);
    expect(run(seg, v6, GSO_TCPV4, 1000).drop).toBe(Drop.GsoUnsupported);
  });

  it("headers that do not match the gso type", () => {
    const { buf } = base();
    const arp = buf.slice();
    put16(arp, 10 + 12, 0x0806);
    expect(run(seg, arp, GSO_TCPV4, 1000).drop).toBe(Drop.GsoMalformed);
    expect(run(seg, buf, GSO_UDP_L4, 1000).drop).toBe(Drop.GsoMalformed); // TCP under a UDP type
    const frag = buf.slice();
    put16(frag, 10 + 20, IPV4_FLAG_MF);
    expect(run(seg, frag, GSO_TCPV4, 1000).drop).toBe(Drop.GsoMalformed);
    const fragOff = buf.slice();
    put16(fragOff, 10 + 20, 0x4000 | 185);
    expect(run(seg, fragOff, GSO_TCPV4, 1000).drop).toBe(Drop.GsoMalformed);
    const { buf: u } = superFrame({ proto: PROTO_UDP, payload: new Uint8Array(100), gsoSize: 50 });
    put16(u, 10 + 34 + 4, 7);
    expect(name(run(seg, u, GSO_UDP_L4, 50).drop)).toBe("udp_bad_length");
  });

  it("a segment larger than the wire or the output buffer", () => {
    const { buf } = base();
    const wire = new GsoSegmenter(1514);
    expect(run(wire, buf, GSO_TCPV4, 1448).drop).toBe(Drop.None); // 66 + 1448 = 1514
    expect(run(wire, buf, GSO_TCPV4, 1449).drop).toBe(Drop.GsoTooBig);
    const small = out.subarray(0, HEADROOM + 66 + 999);
    expect(run(seg, buf, GSO_TCPV4, 1000, 10, buf.length - 10, small).drop).toBe(Drop.GsoTooBig);
    expect(run(seg, buf, GSO_TCPV4, 999, 10, buf.length - 10, small).drop).toBe(Drop.None);
    // A payload shorter than gso_size is measured as it is.
    const { buf: tiny } = superFrame({ payload: new Uint8Array(5), gsoSize: 1000 });
    expect(run(new GsoSegmenter(70), tiny, GSO_TCPV4, 1000).drop).toBe(Drop.GsoTooBig); // 66 + 5
    expect(run(new GsoSegmenter(71), tiny, GSO_TCPV4, 1000).drop).toBe(Drop.None);
  });

  it("3,000 random corruptions of valid super-frames: a drop or correct segments, never a throw", () => {
    const r = prng(99);
    let dropped = 0;
    const count = trials(3000);
    for (let n = 0; n < count; n++) {
      const proto = r() < 0.7 ? PROTO_TCP : PROTO_UDP;
      const { buf } = superFrame({
        proto, payload: randomBytes(r, Math.floor(r() * 5000)), gsoSize: 1000, vlans: r() < 0.3 ? [9] : [],
        tcpOptions: randomBytes(r, 4 * Math.floor(r() * 11)),
      });
      const hits = 1 + Math.floor(r() * 4);
      for (let h = 0; h < hits; h++) buf[10 + Math.floor(r() * Math.min(100, buf.length - 10))] = (r() * 256) | 0;
      const len = r() < 0.3 ? Math.floor(r() * (buf.length - 10)) : buf.length - 10;
      const gso = r() < 0.9 ? (proto === PROTO_TCP ? GSO_TCPV4 : GSO_UDP_L4) : (r() * 256) | 0;
      const gsoSize = r() < 0.95 ? 1 + Math.floor(r() * 2000) : 0;
      const { drop, segs } = run(seg, buf, gso, gsoSize, 10, len);
      if (drop !== Drop.None) { dropped++; expect(segs).toEqual([]); continue; }
      for (const s of segs) {
        const p = (gso & 0x7f) === GSO_TCPV4 ? PROTO_TCP : PROTO_UDP;
        const l = locate(s, p);
        expect(naiveChecksum(s.subarray(l.l3, l.l4))).toBe(0);
        expect(naiveChecksum(s.subarray(l.l4), pseudo(l.src, l.dst, p, s.length - l.l4))).toBe(0);
        expect(s.length).toBeLessThanOrEqual(9100);
      }
    }
    expect(dropped).toBeGreaterThan(count / 30);
    expect(dropped).toBeLessThan(count);
  });
});

describe("golden segments (expected bytes computed by hand, independently of src/)", () => {
  // 10.99.0.1:40001 → 10.99.0.2:7777, a 20-byte TCP header (no options), 7 payload bytes "abcdefg",
  // IP id 0xfffe and seq 0xfffffffe so that both wrap within three segments, flags ACK|PSH|FIN|CWR,
  // the TCP checksum field holding the pseudo-header sum without the length (as Linux leaves it).
  const TCP_SUPER = fromHex(`0200 0a63 0002 0200 0a63 0001 0800
    4500 002f fffe 4000 4006 2602 0a63 0001 0a63 0002
    9c41 1e61 ffff fffe 08af cbbd 5099 003f 14cf 0000
    6162 6364 6566 67`);
  const TCP_SEGMENTS = [
    fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 002b fffe 4000 4006 2606 0a63 0001 0a63 0002
      9c41 1e61 ffff fffe 08af cbbd 5090 003f 46d9 0000 6162 63`),
    fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 002b ffff 4000 4006 2605 0a63 0001 0a63 0002
      9c41 1e61 0000 0001 08af cbbd 5010 003f 4154 0000 6465 66`),
    fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 0029 0000 4000 4006 2607 0a63 0001 0a63 0002
      9c41 1e61 0000 0004 08af cbbd 5019 003f a4af 0000 67`),
  ];
  // The same flow as UDP 40000 → 5555: the super-datagram's UDP length covers all 7 bytes.
  const UDP_SUPER = fromHex(`0200 0a63 0002 0200 0a63 0001 0800
    4500 0023 fffe 4000 4011 2603 0a63 0001 0a63 0002
    9c40 15b3 000f 14da
    6162 6364 6566 67`);
  const UDP_SEGMENTS = [
    fromHex("0200 0a63 0002 0200 0a63 0001 0800 4500 001f fffe 4000 4011 2607 0a63 0001 0a63 0002 9c40 15b3 000b 74b9 6162 63"),
    fromHex("0200 0a63 0002 0200 0a63 0001 0800 4500 001f ffff 4000 4011 2606 0a63 0001 0a63 0002 9c40 15b3 000b 6eb6 6465 66"),
    fromHex("0200 0a63 0002 0200 0a63 0001 0800 4500 001d 0000 4000 4011 2608 0a63 0001 0a63 0002 9c40 15b3 0009 d21f 67"),
  ];
  const HDRS_TCP = 54;
  const HDRS_UDP = 42;
  const withVnet = (frame: Uint8Array) => concat(new Uint8Array(ETH_OFF), frame);

  it("TCP, 7 bytes at gso_size 3: segments of 3, 3 and 1 bytes; id and seq wrap; CWR on the first, PSH and FIN on the last", () => {
    expect(segmentToArrays(TCP_SUPER, GSO_TCPV4, 3)).toEqual(TCP_SEGMENTS);
    const { drop, segs } = run(new GsoSegmenter(1514), withVnet(TCP_SUPER), GSO_TCPV4, 3);
    expect(name(drop)).toBe("none");
    expect(segs).toEqual(TCP_SEGMENTS);
  });

  it("UDP, 7 bytes at gso_size 3: datagrams with UDP lengths 11, 11 and 9, ids that wrap, their own checksums", () => {
    expect(segmentToArrays(UDP_SUPER, GSO_UDP_L4, 3)).toEqual(UDP_SEGMENTS);
    const { drop, segs } = run(new GsoSegmenter(1514), withVnet(UDP_SUPER), GSO_UDP_L4, 3);
    expect(name(drop)).toBe("none");
    expect(segs).toEqual(UDP_SEGMENTS);
  });

  it("the ECN bit of gso_type is ignored for UDP_L4 too", () => {
    expect(segmentToArrays(UDP_SUPER, GSO_UDP_L4 | GSO_ECN, 3)).toEqual(UDP_SEGMENTS);
  });

  it("gso_size 1: one segment per payload byte, seq advancing by one", () => {
    for (const [frame, type, proto] of [[TCP_SUPER, GSO_TCPV4, PROTO_TCP], [UDP_SUPER, GSO_UDP_L4, PROTO_UDP]] as const) {
      const segs = segmentToArrays(frame, type, 1) as Uint8Array[];
      expect(segs.map((s) => s.length)).toEqual(Array(7).fill(proto === PROTO_TCP ? HDRS_TCP + 1 : HDRS_UDP + 1));
      expect(segs.map((s) => s[s.length - 1])).toEqual([..."abcdefg"].map((c) => c.charCodeAt(0)));
      expectSameSegments(segs, referenceSegment(frame, proto, 1), "reference");
    }
    const tcp = segmentToArrays(TCP_SUPER, GSO_TCPV4, 1) as Uint8Array[];
    expect(tcp.map((s) => get32(s, 38))).toEqual([0xfffffffe, 0xffffffff, 0, 1, 2, 3, 4]);
    expect(tcp.map((s) => s[47])).toEqual([0x90, 0x10, 0x10, 0x10, 0x10, 0x10, 0x19]);
  });

  it("a payload that divides evenly makes no empty last segment; one byte more makes a last segment of one byte", () => {
    for (const [size, lens] of [[7, [7]], [8, [7]], [6, [6, 1]], [4, [4, 3]], [2, [2, 2, 2, 1]]] as const) {
      const segs = segmentToArrays(TCP_SUPER, GSO_TCPV4, size) as Uint8Array[];
      expect(segs.map((s) => s.length - HDRS_TCP), `gso_size ${size}`).toEqual(lens);
      expect(segs.map((s) => s[47] & (TCP_PSH | TCP_FIN)), `gso_size ${size}`).toEqual(lens.map((_, k) => (k === lens.length - 1 ? TCP_PSH | TCP_FIN : 0)));
      expect(segs.map((s) => get16(s, 16)), `gso_size ${size}`).toEqual(lens.map((l) => 40 + l));
      const udp = segmentToArrays(UDP_SUPER, GSO_UDP_L4, size) as Uint8Array[];
      expect(udp.map((s) => get16(s, 38)), `UDP length at gso_size ${size}`).toEqual(lens.map((l) => 8 + l));
    }
  });

  it("a super-frame without payload is one segment, its checksum completed", () => {
    const frame = TCP_SUPER.slice(0, HDRS_TCP);
    put16(frame, 16, 40);
    put16(frame, 24, 0);
    put16(frame, 24, naiveChecksum(frame.subarray(14, 34)));
    const segs = segmentToArrays(frame, GSO_TCPV4, 3) as Uint8Array[];
    expect(segs).toHaveLength(1);
    const want = frame.slice();
    put16(want, 50, 0);
    put16(want, 50, naiveChecksum(want.subarray(34), pseudo(SRC, DST, PROTO_TCP, 20)));
    expect(segs[0]).toEqual(want);
  });

  it("segmentPieces with a stride: each segment's headers at headroom + k·stride, its payload where it lies, nothing else written", () => {
    const seg = new GsoSegmenter(1514);
    const buf = withVnet(TCP_SUPER);
    const o = new Uint8Array(4 + 2 * 64 + HDRS_TCP).fill(0xee);
    const calls: number[][] = [];
    const drop = seg.segmentPieces(buf, ETH_OFF, TCP_SUPER.length, GSO_TCPV4, 3, o, 4, 64, (b, hdrOff, hdrLen, f, payOff, payLen) => {
      expect(b === o && f === buf).toBe(true);
      calls.push([hdrOff, hdrLen, payOff, payLen]);
    });
    expect(name(drop)).toBe("none");
    const p = ETH_OFF + HDRS_TCP;
    expect(calls).toEqual([[4, HDRS_TCP, p, 3], [68, HDRS_TCP, p + 3, 3], [132, HDRS_TCP, p + 6, 1]]);
    const want = new Uint8Array(o.length).fill(0xee);
    TCP_SEGMENTS.forEach((s, k) => want.set(s.subarray(0, HDRS_TCP), 4 + 64 * k));
    expect(o).toEqual(want);
  });

  it("segmentPieces without a stride: every segment's headers at the headroom, nothing copied behind them", () => {
    const seg = new GsoSegmenter(1514);
    const buf = withVnet(UDP_SUPER);
    const o = new Uint8Array(6 + HDRS_UDP + 3).fill(0xee);
    const calls: number[][] = [];
    const headers: Uint8Array[] = [];
    const drop = seg.segmentPieces(buf, ETH_OFF, UDP_SUPER.length, GSO_UDP_L4, 3, o, 6, 0, (b, hdrOff, hdrLen, f, payOff, payLen) => {
      calls.push([hdrOff, hdrLen, payOff, payLen]);
      headers.push(b.slice(hdrOff, hdrOff + hdrLen));
    });
    expect(name(drop)).toBe("none");
    const p = ETH_OFF + HDRS_UDP;
    expect(calls).toEqual([[6, HDRS_UDP, p, 3], [6, HDRS_UDP, p + 3, 3], [6, HDRS_UDP, p + 6, 1]]);
    expect(headers).toEqual(UDP_SEGMENTS.map((s) => s.subarray(0, HDRS_UDP)));
    expect(o.subarray(0, 6).every((b) => b === 0xee) && o.subarray(6 + HDRS_UDP).every((b) => b === 0xee)).toBe(true);
  });

  it("segment() emits each whole segment at the headroom of the same buffer", () => {
    const seg = new GsoSegmenter(1514);
    const o = new Uint8Array(9 + HDRS_TCP + 3);
    const got: Uint8Array[] = [];
    const offs: number[][] = [];
    expect(seg.segment(TCP_SUPER, 0, TCP_SUPER.length, GSO_TCPV4, 3, o, 9, (b, off, len) => {
      expect(b === o).toBe(true);
      offs.push([off, len]);
      got.push(b.slice(off, off + len));
    })).toBe(Drop.None);
    expect(offs).toEqual([[9, HDRS_TCP + 3], [9, HDRS_TCP + 3], [9, HDRS_TCP + 1]]);
    expect(got).toEqual(TCP_SEGMENTS);
  });

  it("the number of segments: one for a payload up to gso_size (none included), else rounded up", () => {
    expect([[0, 1], [1, 1], [5, 5], [6, 5], [10, 5], [11, 5], [7, 3]].map(([p, g]) => GsoSegmenter.segments(p, g))).toEqual([1, 1, 1, 2, 2, 3, 3]);
  });

  it("room for the pieces of an empty super-frame: one segment's headers, no more", () => {
    const frame = withVnet(TCP_SUPER.slice(0, HDRS_TCP));
    put16(frame, ETH_OFF + 16, 40);
    const seg = new GsoSegmenter(1514);
    const pieces = (size: number) => seg.segmentPieces(frame, ETH_OFF, HDRS_TCP, GSO_TCPV4, 3, new Uint8Array(size), 4, 64, () => {});
    expect(name(pieces(4 + HDRS_TCP - 1))).toBe("gso_too_big");
    expect(name(pieces(4 + HDRS_TCP))).toBe("none");
  });

  it("a segment exactly as large as maxSegmentFrame is allowed, one byte larger is gso_too_big", () => {
    expect(segmentToArrays(TCP_SUPER, GSO_TCPV4, 3, HDRS_TCP + 3)).toEqual(TCP_SEGMENTS);
    expect(name(segmentToArrays(TCP_SUPER, GSO_TCPV4, 3, HDRS_TCP + 2) as DropReason)).toBe("gso_too_big");
    expect(name(segmentToArrays(UDP_SUPER, GSO_UDP_L4, 3, HDRS_UDP + 2) as DropReason)).toBe("gso_too_big");
    // By default a segment may be as large as the super-frame.
    expect(segmentToArrays(TCP_SUPER, GSO_TCPV4, 7)).toHaveLength(1);
  });

  it("exact drop reasons: negative headroom, negative length, IPv6 under UDP_L4, runt and cut VLAN tag", () => {
    const seg = new GsoSegmenter(1514);
    const o = new Uint8Array(2000);
    const go = (f: Uint8Array, type: number, off = 0, len = f.length, headroom = 0) => name(seg.segment(f, off, len, type, 3, o, headroom, () => {}));
    expect(go(TCP_SUPER, GSO_TCPV4, 0, TCP_SUPER.length, -1)).toBe("gso_too_big");
    expect(go(UDP_SUPER, GSO_UDP_L4, 0, UDP_SUPER.length, -1)).toBe("gso_too_big");
    expect(go(TCP_SUPER, GSO_TCPV4, 0, -1)).toBe("gso_malformed");
    expect(go(TCP_SUPER, GSO_TCPV4, 0, 0)).toBe("eth_runt");
    // A negative offset is refused even where the bytes after it would parse as a valid super-frame.
    expect(go(TCP_SUPER.subarray(1), GSO_TCPV4, -1, TCP_SUPER.length)).toBe("gso_malformed");
    expect(go(TCP_SUPER, GSO_TCPV4, 1, TCP_SUPER.length)).toBe("gso_malformed");
    expect(go(TCP_SUPER, GSO_TCPV4, 0, 13)).toBe("eth_runt");
    const v6 = UDP_SUPER.slice();
    put16(v6, 12, ETHERTYPE_IPV6);
    expect(go(v6, GSO_UDP_L4)).toBe("gso_unsupported");
    const tagged = concat(TCP_SUPER.subarray(0, 12), fromHex("8100 0005"));
    expect(go(tagged, GSO_TCPV4)).toBe("eth_vlan_truncated");
    const udpInTcp = UDP_SUPER.slice();
    expect(go(udpInTcp, GSO_TCPV4)).toBe("gso_malformed");
    expect(go(UDP_SUPER, GSO_UDP_L4, 0, 14 + 20 + 7)).toBe("ipv4_bad_total_len");
  });
});

describe("completeChecksum, golden", () => {
  // A plain (not GSO) TCP frame with NEEDS_CSUM: the field holds the pseudo-header sum with the length.
  const PARTIAL = fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 002f 1234 4000 4006 13cd 0a63 0001 0a63 0002
    9c41 1e61 0102 0304 08af cbbd 5018 003f 14ea 0000 6162 6364 6566 67`);
  const DONE = fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 002f 1234 4000 4006 13cd 0a63 0001 0a63 0002
    9c41 1e61 0102 0304 08af cbbd 5018 003f 767b 0000 6162 6364 6566 67`);
  // UDP with a payload chosen so that the checksum comes out 0.
  const UDP_ZERO = fromHex("0200 0a63 0002 0200 0a63 0001 0800 4500 001e 1234 4000 4011 13d3 0a63 0001 0a63 0002 9c40 15b3 000a 14e4 391e");

  it("finishes the TCP checksum in place, within a larger buffer, touching nothing else", () => {
    const buf = concat(fromHex("aaaa aa"), PARTIAL, fromHex("bbbb"));
    expect(completeChecksum(buf, 3, PARTIAL.length, { csumStart: 34, csumOffset: 16 })).toBe(Drop.None);
    expect(buf).toEqual(concat(fromHex("aaaa aa"), DONE, fromHex("bbbb")));
  });

  it("a sum that comes out 0 is stored as 0xffff", () => {
    const f = UDP_ZERO.slice();
    expect(completeChecksumAt(f, 0, f.length, 34, 6)).toBe(Drop.None);
    expect(get16(f, 40)).toBe(0xffff);
    expect(naiveChecksum(f.subarray(34), pseudo(SRC, DST, PROTO_UDP, 10))).toBe(0);
  });

  it("csum_start 0 is in range: the sum then starts at the frame's first byte", () => {
    // The IPv4 header alone, its checksum field zeroed: completing it at offset 10 gives the captured checksum.
    const h = IPV4.slice();
    put16(h, 10, 0);
    expect(completeChecksumAt(h, 0, 20, 0, 10)).toBe(Drop.None);
    expect(h).toEqual(IPV4);
  });

  it("a negative frame offset or length is csum_bad_offset, and nothing is written", () => {
    const buf = concat(fromHex("aaaa"), PARTIAL);
    const copy = buf.slice();
    expect(name(completeChecksumAt(buf, -1, PARTIAL.length, 35, 16))).toBe("csum_bad_offset");
    expect(name(completeChecksumAt(buf, 2, -1, 34, 16))).toBe("csum_bad_offset");
    expect(buf).toEqual(copy);
  });
});

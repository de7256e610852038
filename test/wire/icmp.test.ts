import { describe, expect, it } from "vitest";
import { fromHex, get16 } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import {
  ICMP_CHECKSUM, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, ICMP_QUOTE_DATA,
  ICMP_TIME_EXCEEDED, IcmpView, UNREACH_FRAG_NEEDED, emitIcmp, parseIcmp, writeIcmpError, type IcmpRepr,
} from "../../src/wire/icmp.ts";
import { emitIpv4, formatIpv4 } from "../../src/wire/ipv4.ts";
import { formatMacHiLo } from "../../src/wire/mac.ts";
import { prng, trials } from "../support/random.ts";
import { countSubarrays } from "../support/subarrays.ts";

// Golden ICMP messages (the bytes after the 20-byte IPv4 header), captured 2026-11-23 (UTC)
// between network namespaces tapnet-golden-a (veth-ga, 10.99.0.1/24) and tapnet-golden-b
// (veth-gb, 10.99.0.2/24) with
// `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w arp_icmp.pcap -c 4 'arp or icmp'`
// while `ip netns exec tapnet-golden-a ping -c 1 -s 16 10.99.0.2` ran; dumped with
// `tcpdump -r arp_icmp.pcap -xx`. Echo id 3944 (0x0f68), sequence 1, 16 bytes of data (ping's
// timestamp and padding).

const ECHO_REQUEST = fromHex(`
  0800 00c5 0f68 0001 e5ab 036b 0000 0000
  f0ba 0e00 0000 0000`);

const ECHO_REPLY = fromHex(`
  0000 08c5 0f68 0001 e5ab 036b 0000 0000
  f0ba 0e00 0000 0000`);

/** The echo request on VLAN 5, as a whole frame (see ethernet.test.ts for the capture). */
const VLAN_ECHO_REQUEST_FRAME = fromHex(`
  0200 0a63 0002 0200 0a63 0001 8100 0005
  0800 4500 002c 0386 4000 4001 1883 0a63
  0501 0a63 0502 0800 63e7 1028 0001 edab
  036b 0000 0000 8bd8 0700 0000 0000`);

const ECHO_DATA = fromHex("e5ab 036b 0000 0000 f0ba 0e00 0000 0000");
const REQUEST_REPR: IcmpRepr = { type: ICMP_ECHO_REQUEST, code: 0, rest: 0x0f680001, data: ECHO_DATA };
const REPLY_REPR: IcmpRepr = { type: ICMP_ECHO_REPLY, code: 0, rest: 0x0f680001, data: ECHO_DATA };

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

describe("ICMP echo, golden capture", () => {
  it("deconstruct: the view reads type and code, and the captured checksums verify", () => {
    const v = new IcmpView();
    expect(v.wrap(ECHO_REQUEST, 0, ECHO_REQUEST.length)).toBe(Drop.None);
    expect(v.type).toBe(ICMP_ECHO_REQUEST);
    expect(v.code).toBe(0);
    expect(v.checksumValid()).toBe(true);
    expect(v.wrap(ECHO_REPLY, 0, ECHO_REPLY.length)).toBe(Drop.None);
    expect(v.type).toBe(ICMP_ECHO_REPLY);
    expect(v.checksumValid()).toBe(true);
    expect(internetChecksum(ECHO_REQUEST, 0, ECHO_REQUEST.length)).toBe(0);
    expect(internetChecksum(ECHO_REPLY, 0, ECHO_REPLY.length)).toBe(0);
  });

  it("deconstruct: the view reads a message at its offset in a tagged frame", () => {
    const v = new IcmpView();
    expect(v.wrap(VLAN_ECHO_REQUEST_FRAME, 38, VLAN_ECHO_REQUEST_FRAME.length - 38)).toBe(Drop.None);
    expect(v.type).toBe(ICMP_ECHO_REQUEST);
    expect(v.checksumValid()).toBe(true);
  });

  it("construct: emitIcmp reproduces the captured request and reply, checksum included", () => {
    for (const [repr, golden] of [[REQUEST_REPR, ECHO_REQUEST], [REPLY_REPR, ECHO_REPLY]] as const) {
      const buf = new Uint8Array(golden.length);
      expect(emitIcmp(repr, buf, 0)).toBe(24);
      expect(buf).toEqual(golden);
    }
  });

  it("construct: emitIcmp writes at its offset and sums only its own bytes", () => {
    const buf = new Uint8Array(38 + 24 + 5).fill(0xee);
    emitIcmp(REQUEST_REPR, buf, 38);
    expect(buf.subarray(38, 62)).toEqual(ECHO_REQUEST);
    expect(buf.subarray(0, 38).every((x) => x === 0xee)).toBe(true);
    expect(buf.subarray(62).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: the captured messages give their reprs", () => {
    expect(parseIcmp(ECHO_REQUEST)).toEqual(REQUEST_REPR);
    expect(parseIcmp(ECHO_REPLY)).toEqual(REPLY_REPR);
    expect(parseIcmp(VLAN_ECHO_REQUEST_FRAME.slice(38))).toEqual({
      type: ICMP_ECHO_REQUEST, code: 0, rest: 0x10280001, data: VLAN_ECHO_REQUEST_FRAME.slice(46),
    });
  });

  it("round-trip: parse then emit gives the same bytes", () => {
    for (const golden of [ECHO_REQUEST, ECHO_REPLY]) {
      const buf = new Uint8Array(golden.length);
      emitIcmp(ok(parseIcmp(golden)), buf, 0);
      expect(buf).toEqual(golden);
    }
  });

  it("parse copies the data: changing the packet afterwards leaves the repr alone", () => {
    const pkt = ECHO_REQUEST.slice();
    const repr = ok(parseIcmp(pkt));
    pkt[10] = 0x99;
    expect(repr.data).toEqual(ECHO_DATA);
  });
});

describe("ICMP other messages and checksums", () => {
  it("a fragmentation-needed message carries the next-hop MTU in the low 16 bits of bytes 4-7", () => {
    const quoted = fromHex("4500 05dc 0001 4000 4011 0000 0a63 0001 0a63 0002 9c40 15b3 05c8 0000");
    const buf = new Uint8Array(8 + quoted.length);
    const n = emitIcmp({ type: ICMP_DEST_UNREACHABLE, code: UNREACH_FRAG_NEEDED, rest: 1400, data: quoted }, buf, 0);
    expect(n).toBe(8 + quoted.length);
    expect(buf.subarray(0, 8)).toEqual(Uint8Array.of(3, 4, buf[2], buf[3], 0, 0, 0x05, 0x78));
    expect(internetChecksum(buf, 0, n)).toBe(0);
    expect(parseIcmp(buf)).toEqual({ type: 3, code: 4, rest: 1400, data: quoted });
  });

  it("an odd number of data bytes is summed as if padded with a zero byte", () => {
    const buf = new Uint8Array(8 + 5);
    emitIcmp({ type: ICMP_ECHO_REQUEST, code: 0, rest: 0x12345678, data: Uint8Array.of(1, 2, 3, 4, 5) }, buf, 0);
    const v = new IcmpView();
    v.wrap(buf, 0, buf.length);
    expect(v.checksumValid()).toBe(true);
    // Computed by hand: 0x0800 + 0x1234 + 0x5678 + 0x0102 + 0x0304 + 0x0500 = 0x79b2, inverted.
    expect(get16(buf, ICMP_CHECKSUM)).toBe(0x864d);
  });

  it("a changed data byte makes the checksum fail", () => {
    const pkt = ECHO_REPLY.slice();
    pkt[ECHO_REPLY.length - 1] ^= 0x01;
    const v = new IcmpView();
    v.wrap(pkt, 0, pkt.length);
    expect(v.checksumValid()).toBe(false);
  });

  it("rest uses all 32 bits, including the top one", () => {
    const buf = new Uint8Array(8);
    emitIcmp({ type: 8, code: 0, rest: 0xfedcba98, data: new Uint8Array(0) }, buf, 0);
    expect(ok(parseIcmp(buf)).rest).toBe(0xfedcba98);
  });
});

describe("ICMP malformed input", () => {
  it("every length below the 8-byte header is truncated", () => {
    const v = new IcmpView();
    for (let len = 0; len < ICMP_HEADER_LEN; len++) {
      expect(v.wrap(ECHO_REQUEST, 0, len), `len ${len}`).toBe(Drop.IcmpTruncated);
      expect(parseIcmp(ECHO_REQUEST.slice(0, len)), `len ${len}`).toBe(Drop.IcmpTruncated);
    }
    expect(parseIcmp(ECHO_REQUEST.slice(0, 8))).toEqual({ ...REQUEST_REPR, data: new Uint8Array(0) });
  });
});

describe("ICMP error frames (writeIcmpError)", () => {
  // The captured echo request as a whole frame (10.99.0.1 → 10.99.0.2; see ipv4.test.ts for
  // its header), and by hand, checksums summed word by word: the time-exceeded error a router
  // at 10.99.0.254 (02:00:0a:63:00:fe) sends back about it, with IPv4 id 0x1234.
  const ECHO_FRAME = fromHex(`
    0200 0a63 0002 0200 0a63 0001 0800
    4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63 0002
    0800 00c5 0f68 0001 e5ab 036b 0000 0000 f0ba 0e00 0000 0000`);
  const TIME_EXCEEDED_FRAME = fromHex(`
    0200 0a63 0001 0200 0a63 00fe 0800
    4500 0038 1234 0000 4001 52cd 0a63 00fe 0a63 0001
    0b00 dcd1 0000 0000
    4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63 0002 0800 00c5 0f68 0001`);
  const ROUTER_IP = 0x0a6300fe, ROUTER_HI = 0x0200, ROUTER_LO = 0x0a6300fe;

  it("golden: the time-exceeded error about the captured echo request, into another buffer", () => {
    const buf = new Uint8Array(6 + 70 + 6).fill(0xee);
    expect(writeIcmpError(buf, 6, ECHO_FRAME, 0, ICMP_TIME_EXCEEDED, 0, 0, ROUTER_IP, ROUTER_HI, ROUTER_LO, 0x1234)).toBe(70);
    expect(buf.subarray(6, 76)).toEqual(TIME_EXCEEDED_FRAME);
    expect(buf.subarray(0, 6).every((x) => x === 0xee) && buf.subarray(76).every((x) => x === 0xee)).toBe(true);
  });

  it("golden: the same error written in place over the request", () => {
    const buf = new Uint8Array(10 + 70).fill(0xee);
    buf.set(ECHO_FRAME, 10);
    expect(writeIcmpError(buf, 10, buf, 10, ICMP_TIME_EXCEEDED, 0, 0, ROUTER_IP, ROUTER_HI, ROUTER_LO, 0x1234)).toBe(70);
    expect(buf.subarray(10)).toEqual(TIME_EXCEEDED_FRAME);
    expect(buf.subarray(0, 10).every((x) => x === 0xee)).toBe(true);
  });

  it("carries all 32 bits of rest (the next-hop MTU) and a short packet's whole length, no more", () => {
    const short = ECHO_FRAME.slice(0, 14 + 24);
    short.set(fromHex("0018"), 14 + 2); // total length 24: 4 bytes of payload
    const buf = new Uint8Array(80).fill(0xee);
    const n = writeIcmpError(buf, 0, short, 0, ICMP_DEST_UNREACHABLE, UNREACH_FRAG_NEEDED, 0x8000_0578, ROUTER_IP, ROUTER_HI, ROUTER_LO, 7);
    expect(n).toBe(14 + 20 + 8 + 24);
    expect(parseIcmp(buf.slice(34, n))).toEqual({ type: 3, code: 4, rest: 0x8000_0578, data: short.slice(14) });
    expect(buf.subarray(n).every((x) => x === 0xee)).toBe(true);
  });

  it("makes no view of either buffer, the longest quote (60-byte header) included", () => {
    const orig = new Uint8Array(120); // room for the error in place
    orig[14] = 0x4f;
    orig[17] = 80;
    const buf = new Uint8Array(120);
    expect(countSubarrays(() => {
      expect(writeIcmpError(buf, 0, orig, 0, 3, 4, 1400, 1, 2, 3, 4)).toBe(42 + 68);
      writeIcmpError(orig, 0, orig, 0, 3, 4, 1400, 1, 2, 3, 4);
    })).toBe(0);
  });

  const r = prng(792);
  const u32 = () => (r() * 2 ** 32) >>> 0;
  const u16 = () => (r() * 2 ** 16) >>> 0;
  const byte = () => (r() * 256) | 0;

  it("random packets: the frame emitEthernet, emitIpv4 and emitIcmp make, in place or not", () => {
    for (let t = 0; t < trials(1000); t++) {
      const ihl = 5 + ((r() * 11) | 0);
      const total = ihl * 4 + ((r() * 40) | 0);
      const off = (r() * 20) | 0;
      const orig = new Uint8Array(off + 14 + total + 60);
      for (let i = 0; i < orig.length; i++) orig[i] = byte();
      const o = off + 14;
      orig[o] = 0x40 | ihl;
      orig[o + 2] = total >>> 8;
      orig[o + 3] = total & 0xff;
      const [type, code, rest, srcIp, srcHi, srcLo, id] = [byte(), byte(), u32(), u32(), u16(), u32(), u16()];

      const quote = Math.min(total, ihl * 4 + ICMP_QUOTE_DATA);
      const model = new Uint8Array(42 + quote);
      const origSrc = formatMacHiLo((orig[off + 6] << 8) | orig[off + 7], ((orig[off + 8] << 24) | (orig[off + 9] << 16) | (orig[off + 10] << 8) | orig[off + 11]) >>> 0);
      const origIp = ((orig[o + 12] << 24) | (orig[o + 13] << 16) | (orig[o + 14] << 8) | orig[o + 15]) >>> 0;
      emitEthernet({ dst: origSrc, src: formatMacHiLo(srcHi, srcLo), vlans: [], etherType: 0x0800 }, model, 0);
      emitIpv4({ tos: 0, id, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1,
        src: formatIpv4(srcIp), dst: formatIpv4(origIp), payloadLen: ICMP_HEADER_LEN + quote }, model, 14);
      emitIcmp({ type, code, rest, data: orig.slice(o, o + quote) }, model, 34);

      const apart = new Uint8Array(3 + model.length + 3).fill(0xee);
      expect(writeIcmpError(apart, 3, orig, off, type, code, rest, srcIp, srcHi, srcLo, id)).toBe(model.length);
      expect(apart.subarray(3, 3 + model.length), `trial ${t}`).toEqual(model);
      expect(apart.subarray(0, 3).every((x) => x === 0xee) && apart.subarray(3 + model.length).every((x) => x === 0xee)).toBe(true);

      const inPlace = orig.slice();
      expect(writeIcmpError(inPlace, off, inPlace, off, type, code, rest, srcIp, srcHi, srcLo, id)).toBe(model.length);
      expect(inPlace.subarray(off, off + model.length), `trial ${t}`).toEqual(model);
      expect(inPlace.subarray(0, off)).toEqual(orig.subarray(0, off));
      expect(inPlace.subarray(off + model.length)).toEqual(orig.subarray(off + model.length));
    }
  });
});

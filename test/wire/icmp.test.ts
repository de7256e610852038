import { describe, expect, it } from "vitest";
import { fromHex, get16 } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { DROP_NAMES, Drop, type DropReason } from "../../src/wire/drop.ts";
import {
  ICMP_CHECKSUM, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, IcmpView,
  UNREACH_FRAG_NEEDED, emitIcmp, parseIcmp, type IcmpRepr,
} from "../../src/wire/icmp.ts";

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

import { describe, expect, it } from "vitest";
import { fromHex, get16, put16 } from "../../src/wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { PROTO_UDP } from "../../src/wire/ipv4.ts";
import { UDP_CHECKSUM, UDP_HEADER_LEN, UDP_LENGTH, UdpView, emitUdp, parseUdp, type UdpRepr } from "../../src/wire/udp.ts";

// Golden UDP datagram (the bytes after the IPv4 header), captured 2026-11-23 (UTC) between
// network namespaces tapnet-golden-a (veth-ga, 10.99.0.1/24) and tapnet-golden-b (veth-gb,
// 10.99.0.2/24), tx checksum offload off on both (`ethtool -K veth-g? tx off`, so the checksum
// on the wire is complete), with
// `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w udp.pcap -c 1 udp` while
// `ip netns exec tapnet-golden-a python3 -c '...s.bind(("10.99.0.1", 40000));
//  s.sendto(b"hello tapnet", ("10.99.0.2", 5555))'` ran; dumped with `tcpdump -r udp.pcap -xx`
// (tcpdump: "udp sum ok").
const UDP_DATAGRAM = fromHex(`
  9c40 15b3 0014 aad3 6865 6c6c 6f20 7461
  706e 6574`);
const SRC = 0x0a630001; // 10.99.0.1
const DST = 0x0a630002; // 10.99.0.2

const PAYLOAD = new TextEncoder().encode("hello tapnet");
const REPR: UdpRepr = { srcPort: 40000, dstPort: 5555, payload: PAYLOAD };

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

function checksumVerifies(d: Uint8Array, len: number): boolean {
  return internetChecksum(d, 0, len, pseudoHeaderSum(SRC, DST, PROTO_UDP, len)) === 0;
}

describe("UDP, golden capture", () => {
  it("deconstruct: the view reads ports, length, checksum and payload bounds", () => {
    const frame = new Uint8Array(34 + UDP_DATAGRAM.length);
    frame.set(UDP_DATAGRAM, 34);
    const v = new UdpView();
    expect(v.wrap(frame, 34, UDP_DATAGRAM.length)).toBe(Drop.None);
    expect(v.srcPort).toBe(40000);
    expect(v.dstPort).toBe(5555);
    expect(v.length).toBe(20);
    expect(v.checksum).toBe(0xaad3);
    expect(v.payloadOff).toBe(34 + 8);
    expect(v.payloadLen).toBe(12);
    expect(frame.subarray(v.payloadOff, v.payloadOff + v.payloadLen)).toEqual(PAYLOAD);
  });

  it("the captured checksum verifies over the IPv4 pseudo-header", () => {
    expect(checksumVerifies(UDP_DATAGRAM, 20)).toBe(true);
    const wrongDst = internetChecksum(UDP_DATAGRAM, 0, 20, pseudoHeaderSum(SRC, DST + 1, PROTO_UDP, 20));
    expect(wrongDst).not.toBe(0);
  });

  it("construct: emitUdp with the addresses reproduces the captured datagram, checksum included", () => {
    const buf = new Uint8Array(20);
    expect(emitUdp(REPR, buf, 0, { src: SRC, dst: DST })).toBe(20);
    expect(buf).toEqual(UDP_DATAGRAM);
  });

  it("construct: emitUdp without addresses leaves the checksum 0", () => {
    const buf = new Uint8Array(20).fill(0xee);
    emitUdp(REPR, buf, 0);
    const expected = UDP_DATAGRAM.slice();
    put16(expected, UDP_CHECKSUM, 0);
    expect(buf).toEqual(expected);
  });

  it("construct: emitUdp writes at its offset and sums only its own bytes", () => {
    const buf = new Uint8Array(34 + 20 + 3).fill(0xee);
    emitUdp(REPR, buf, 34, { src: SRC, dst: DST });
    expect(buf.subarray(34, 54)).toEqual(UDP_DATAGRAM);
    expect(buf.subarray(0, 34).every((x) => x === 0xee)).toBe(true);
    expect(buf.subarray(54).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: the captured datagram gives its repr", () => {
    expect(parseUdp(UDP_DATAGRAM)).toEqual(REPR);
  });

  it("round-trip: parse then emit gives the same bytes", () => {
    const buf = new Uint8Array(20);
    emitUdp(ok(parseUdp(UDP_DATAGRAM)), buf, 0, { src: SRC, dst: DST });
    expect(buf).toEqual(UDP_DATAGRAM);
  });

  it("bytes after the length field's end (padding) are not payload", () => {
    const padded = new Uint8Array(26);
    padded.set(UDP_DATAGRAM);
    padded.fill(0xaa, 20);
    const v = new UdpView();
    expect(v.wrap(padded, 0, padded.length)).toBe(Drop.None);
    expect(v.payloadLen).toBe(12);
    expect(parseUdp(padded)).toEqual(REPR);
  });
});

describe("UDP checksum", () => {
  it("a computed checksum of 0 is sent as 0xffff, since 0 means no checksum", () => {
    // Find the 2-byte payload whose checksum comes out as 0.
    const buf = new Uint8Array(10);
    let payload: Uint8Array | undefined;
    for (let x = 0; x <= 0xffff && !payload; x++) {
      const p = Uint8Array.of(x >>> 8, x & 0xff);
      emitUdp({ srcPort: 40000, dstPort: 5555, payload: p }, buf, 0);
      if (internetChecksum(buf, 0, 10, pseudoHeaderSum(SRC, DST, PROTO_UDP, 10)) === 0) payload = p;
    }
    expect(payload).toBeDefined();
    emitUdp({ srcPort: 40000, dstPort: 5555, payload: payload! }, buf, 0, { src: SRC, dst: DST });
    expect(get16(buf, UDP_CHECKSUM)).toBe(0xffff);
    expect(checksumVerifies(buf, 10)).toBe(true);
  });

  it("an odd-length payload is summed padded with a zero byte", () => {
    const buf = new Uint8Array(8 + 3);
    emitUdp({ srcPort: 1, dstPort: 2, payload: Uint8Array.of(0xab, 0xcd, 0xef) }, buf, 0, { src: SRC, dst: DST });
    expect(checksumVerifies(buf, 11)).toBe(true);
  });
});

describe("UDP malformed input", () => {
  it("every length below the 8-byte header is truncated", () => {
    const v = new UdpView();
    for (let len = 0; len < UDP_HEADER_LEN; len++) {
      expect(v.wrap(UDP_DATAGRAM, 0, len), `len ${len}`).toBe(Drop.UdpTruncated);
      expect(parseUdp(UDP_DATAGRAM.slice(0, len)), `len ${len}`).toBe(Drop.UdpTruncated);
    }
  });

  it("a length field smaller than the header is a bad length", () => {
    for (let l = 0; l < UDP_HEADER_LEN; l++) {
      const d = UDP_DATAGRAM.slice();
      put16(d, UDP_LENGTH, l);
      expect(new UdpView().wrap(d, 0, d.length), `length ${l}`).toBe(Drop.UdpBadLength);
      expect(parseUdp(d), `length ${l}`).toBe(Drop.UdpBadLength);
    }
  });

  it("a length field larger than the buffer is a bad length", () => {
    for (const l of [21, 0xffff]) {
      const d = UDP_DATAGRAM.slice();
      put16(d, UDP_LENGTH, l);
      expect(parseUdp(d), `length ${l}`).toBe(Drop.UdpBadLength);
    }
    // The buffer holds all 20 bytes but the datagram handed to the view is 19.
    expect(new UdpView().wrap(UDP_DATAGRAM, 0, 19)).toBe(Drop.UdpBadLength);
  });

  it("a length field of exactly 8 is an empty datagram", () => {
    const d = UDP_DATAGRAM.slice(0, 8);
    put16(d, UDP_LENGTH, 8);
    expect(parseUdp(d)).toEqual({ srcPort: 40000, dstPort: 5555, payload: new Uint8Array(0) });
  });
});

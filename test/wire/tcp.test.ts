import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { PROTO_TCP } from "../../src/wire/ipv4.ts";
import {
  TCP_ACK_FLAG, TCP_DATA_OFF, TCP_MIN_HEADER_LEN, TCP_SYN, TcpView, emitTcp, parseTcp, type TcpRepr,
} from "../../src/wire/tcp.ts";

// Golden TCP segments (the bytes after the IPv4 header), captured 2026-11-23 (UTC) between
// network namespaces tapnet-golden-a (veth-ga, 10.99.0.1/24) and tapnet-golden-b (veth-gb,
// 10.99.0.2/24), tx checksum offload off on both (`ethtool -K veth-g? tx off`, so checksums on
// the wire are complete), with
// `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w tcp.pcap -c 3 tcp` while a python3
// socket in tapnet-golden-a bound to 10.99.0.1:40001 connect()ed to a listener on
// 10.99.0.2:7777; dumped with `tcpdump -r tcp.pcap -xx` (tcpdump: "cksum ... (correct)").

/** SYN, seq 2688650976, window 64240, options: MSS 1460, SACK permitted, timestamps, NOP, wscale 10. */
const SYN = fromHex(`
  9c41 1e61 a041 8ee0 0000 0000 a002 faf0
  5e6e 0000 0204 05b4 0402 080a f2c5 fd4a
  0000 0000 0103 030a`);

/** SYN-ACK back, ack 2688650977. */
const SYN_ACK = fromHex(`
  1e61 9c41 08af cbbc a041 8ee1 a012 fe88
  a1ae 0000 0204 05b4 0402 080a d645 0e65
  f2c5 fd4a 0103 030a`);

/** The final ACK: a 32-byte header (NOP, NOP, timestamps). */
const ACK = fromHex(`
  9c41 1e61 a041 8ee1 08af cbbd 8010 003f
  cec6 0000 0101 080a f2c5 fd4b d645 0e65`);

const A = 0x0a630001; // 10.99.0.1
const B = 0x0a630002; // 10.99.0.2

const SYN_REPR: TcpRepr = {
  srcPort: 40001, dstPort: 7777, seq: 2688650976, ack: 0, flags: TCP_SYN, window: 64240, checksum: 0x5e6e,
  urgent: 0, options: fromHex("0204 05b4 0402 080a f2c5 fd4a 0000 0000 0103 030a"),
};
const SYN_ACK_REPR: TcpRepr = {
  srcPort: 7777, dstPort: 40001, seq: 145738684, ack: 2688650977, flags: TCP_SYN | TCP_ACK_FLAG, window: 65160,
  checksum: 0xa1ae, urgent: 0, options: fromHex("0204 05b4 0402 080a d645 0e65 f2c5 fd4a 0103 030a"),
};
const ACK_REPR: TcpRepr = {
  srcPort: 40001, dstPort: 7777, seq: 2688650977, ack: 145738685, flags: TCP_ACK_FLAG, window: 63,
  checksum: 0xcec6, urgent: 0, options: fromHex("0101 080a f2c5 fd4b d645 0e65"),
};
const GOLDEN: [string, Uint8Array, TcpRepr][] = [["SYN", SYN, SYN_REPR], ["SYN-ACK", SYN_ACK, SYN_ACK_REPR], ["ACK", ACK, ACK_REPR]];

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

describe("TCP, golden capture", () => {
  it("deconstruct: the view reads ports, sequence numbers, flags and header length of the SYN", () => {
    const packet = new Uint8Array(20 + SYN.length);
    packet.set(SYN, 20);
    const v = new TcpView();
    expect(v.wrap(packet, 20, SYN.length)).toBe(Drop.None);
    expect(v.srcPort).toBe(40001);
    expect(v.dstPort).toBe(7777);
    expect(v.seq).toBe(2688650976); // above 2^31: read unsigned
    expect(v.ack).toBe(0);
    expect(v.flags).toBe(TCP_SYN);
    expect(v.headerLen).toBe(40);
  });

  it("deconstruct: the view reads the SYN-ACK", () => {
    const v = new TcpView();
    expect(v.wrap(SYN_ACK, 0, SYN_ACK.length)).toBe(Drop.None);
    expect(v.flags).toBe(TCP_SYN | TCP_ACK_FLAG);
    expect(v.ack).toBe(2688650977);
    expect(v.headerLen).toBe(40);
  });

  it("every captured checksum verifies over the IPv4 pseudo-header", () => {
    expect(internetChecksum(SYN, 0, 40, pseudoHeaderSum(A, B, PROTO_TCP, 40))).toBe(0);
    expect(internetChecksum(SYN_ACK, 0, 40, pseudoHeaderSum(B, A, PROTO_TCP, 40))).toBe(0);
    expect(internetChecksum(ACK, 0, 32, pseudoHeaderSum(A, B, PROTO_TCP, 32))).toBe(0);
  });

  it("construct: emitTcp reproduces every captured header and returns its length", () => {
    for (const [name, golden, repr] of GOLDEN) {
      const buf = new Uint8Array(golden.length);
      expect(emitTcp(repr, buf, 0), name).toBe(golden.length);
      expect(buf, name).toEqual(golden);
    }
  });

  it("construct: emitTcp writes at its offset", () => {
    const buf = new Uint8Array(20 + 40 + 4).fill(0xee);
    emitTcp(SYN_REPR, buf, 20);
    expect(buf.subarray(20, 60)).toEqual(SYN);
    expect(buf.subarray(0, 20).every((x) => x === 0xee)).toBe(true);
    expect(buf.subarray(60).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: every captured segment gives its repr", () => {
    for (const [name, golden, repr] of GOLDEN) expect(parseTcp(golden), name).toEqual(repr);
  });

  it("round-trip: parse then emit gives the same bytes", () => {
    for (const [name, golden] of GOLDEN) {
      const buf = new Uint8Array(golden.length);
      emitTcp(ok(parseTcp(golden)), buf, 0);
      expect(buf, name).toEqual(golden);
    }
  });

  it("payload after the header is not part of the options", () => {
    const seg = new Uint8Array(ACK.length + 5);
    seg.set(ACK);
    seg.set([1, 2, 3, 4, 5], ACK.length);
    expect(parseTcp(seg)).toEqual(ACK_REPR);
  });

  it("emitTcp refuses options that do not fill whole 32-bit words", () => {
    const buf = new Uint8Array(40).fill(0xee);
    expect(() => emitTcp({ ...SYN_REPR, options: Uint8Array.of(1, 1, 1) }, buf, 0)).toThrow("TCP options must fill whole 32-bit words");
    expect(buf.every((x) => x === 0xee)).toBe(true);
  });
});

describe("TCP malformed input", () => {
  it("every length below the 20-byte header is truncated", () => {
    const v = new TcpView();
    for (let len = 0; len < TCP_MIN_HEADER_LEN; len++) {
      expect(v.wrap(SYN, 0, len), `len ${len}`).toBe(Drop.TcpTruncated);
      expect(parseTcp(SYN.slice(0, len)), `len ${len}`).toBe(Drop.TcpTruncated);
    }
  });

  it("a data offset below 5 words is a bad header length", () => {
    for (let doff = 0; doff < 5; doff++) {
      const s = SYN.slice();
      s[TCP_DATA_OFF] = doff << 4;
      expect(new TcpView().wrap(s, 0, s.length), `data offset ${doff}`).toBe(Drop.TcpBadHeaderLen);
      expect(parseTcp(s), `data offset ${doff}`).toBe(Drop.TcpBadHeaderLen);
    }
  });

  it("a data offset reaching past the end of the buffer is a bad header length", () => {
    // The SYN says 40 bytes of header: cut anywhere from 20 to 39 bytes, it does not fit.
    const v = new TcpView();
    for (let len = 20; len < 40; len++) {
      expect(v.wrap(SYN, 0, len), `len ${len}`).toBe(Drop.TcpBadHeaderLen);
      expect(parseTcp(SYN.slice(0, len)), `len ${len}`).toBe(Drop.TcpBadHeaderLen);
    }
    const s = SYN.slice();
    s[TCP_DATA_OFF] = 0xf0; // 60 bytes
    expect(parseTcp(s)).toBe(Drop.TcpBadHeaderLen);
  });

  it("the reserved bits beside the data offset do not change the header length", () => {
    const s = SYN.slice();
    s[TCP_DATA_OFF] = 0xa1; // data offset 10, the old NS bit set
    const v = new TcpView();
    expect(v.wrap(s, 0, s.length)).toBe(Drop.None);
    expect(v.headerLen).toBe(40);
  });
});

/**
 * FlowKeyView: the flow key of captured and hand-built packets of every kind, the drop reason
 * of every way to cut one short, and 10,000 random inputs, which must never make it throw.
 */
import { describe, expect, it } from "vitest";
import { fromHex, get16, put16 } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { FlowKeyView, FlowKind } from "../../src/wire/flow-key.ts";
import { IPV4_FLAGS_FRAG, IPV4_TOTAL_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../../src/wire/ipv4.ts";
import { TCP_ACK_FLAG, TCP_SYN } from "../../src/wire/tcp.ts";
import { prng, trials } from "../support/random.ts";

const NAMES = new Map(Object.entries(Drop).map(([name, n]) => [n, name]));
const name = (r: DropReason) => NAMES.get(r) ?? `reason ${r}`;

// Frames with their Ethernet header (14 bytes): the IPv4 packet starts at 14.
const IP = 14;
const ETH = "0200 0a63 0002 0200 0a63 0001 0800";

/** The captured SYN of tcp.test.ts: 10.99.0.1:40001 -> 10.99.0.2:7777, a 40-byte TCP header. */
const SYN = fromHex(`${ETH} 4500 003c 2d7f 4000 4006 f874 0a63 0001 0a63 0002 9c41 1e61 a041 8ee0 0000
  0000 a002 faf0 5e6e 0000 0204 05b4 0402 080a f2c5 fd4a 0000 0000 0103 030a`);
/** The captured datagram of udp.test.ts: 10.99.0.1:40000 -> 10.99.0.2:5555, "hello tapnet". */
const UDP = fromHex(`${ETH} 4500 0028 9db4 4000 4011 8848 0a63 0001 0a63 0002 9c40 15b3 0014 aad3 6865
  6c6c 6f20 7461 706e 6574`);
/** The captured echo request of icmp.test.ts: 10.99.0.1 -> 10.99.0.2, id 0x0f68, sequence 1. */
const ECHO = fromHex(`${ETH} 4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63 0002 0800 00c5 0f68 0001 e5ab
  036b 0000 0000 f0ba 0e00 0000 0000`);
/**
 * Hand-built: port unreachable from 10.244.2.7 to 10.244.1.2, quoting the whole datagram
 * 10.244.1.2:40000 -> 10.244.2.7:53 ("hello tapnet!"), as Linux quotes. Every checksum correct.
 */
const PORT_UNREACH = fromHex(`${ETH} 4500 0045 3333 0000 4001 2e95 0af4 0207 0af4 0102 0303 1614 0000 0000
  4500 0029 2222 4000 3f11 00b2 0af4 0102 0af4 0207 9c40 0035 0015 9b27 6865 6c6c 6f20 7461 706e 6574
  21`);
/** Hand-built: time exceeded from 10.244.0.1, quoting a SYN 10.244.1.2:40001 -> 10.244.2.7:8080 and 8 bytes of it. */
const TIME_EXCEEDED = fromHex(`${ETH} 4500 0038 5555 0000 4001 0e86 0af4 0001 0af4 0102 0b00 0a0c 0000 0000
  4500 003c 4444 4000 0106 1c88 0af4 0102 0af4 0207 9c41 1f90 a041 8ee0`);

const ip4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** An IPv4 packet (no options, checksum filled) around `payload`, at offset 0. */
function packet(proto: number, payload: Uint8Array, flagsFrag = 0x4000, src = ip4(10, 0, 0, 1), dst = ip4(10, 0, 0, 2)): Uint8Array {
  const b = new Uint8Array(20 + payload.length);
  b.set([0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, src >>> 24, src >>> 16, src >>> 8, src, dst >>> 24, dst >>> 16, dst >>> 8, dst]);
  put16(b, IPV4_TOTAL_LEN, b.length);
  put16(b, IPV4_FLAGS_FRAG, flagsFrag);
  put16(b, 10, internetChecksum(b, 0, 20));
  b.set(payload, 20);
  return b;
}

/** An ICMP message of `type` whose data is `data`. */
function icmp(type: number, data: Uint8Array, rest = [0, 0, 0, 0]): Uint8Array {
  return Uint8Array.from([type, 0, 0, 0, ...rest, ...data]);
}

function parsed(buf: Uint8Array, ipOff = 0, len = buf.length - ipOff): FlowKeyView {
  const k = new FlowKeyView();
  const r = k.parse(buf, ipOff, len);
  if (r !== Drop.None) throw new Error(`dropped: ${name(r)}`);
  return k;
}

function reason(buf: Uint8Array, ipOff = 0, len = buf.length - ipOff): string {
  return name(new FlowKeyView().parse(buf, ipOff, len));
}

describe("FlowKeyView: the key of each kind of packet", () => {
  it("a captured TCP SYN: Plain, its ports and its flags byte", () => {
    const k = parsed(SYN, IP);
    expect({ kind: k.kind, proto: k.proto, src: k.src, dst: k.dst, sport: k.sport, dport: k.dport, flags: k.tcpFlags, l4Off: k.l4Off, ipLen: k.ipLen })
      .toEqual({ kind: FlowKind.Plain, proto: PROTO_TCP, src: ip4(10, 99, 0, 1), dst: ip4(10, 99, 0, 2), sport: 40001, dport: 7777, flags: TCP_SYN, l4Off: 34, ipLen: 60 });
    expect(k.qProto + k.qSrc + k.qDst + k.qSport + k.qDport + k.qIpOff).toBe(0);
  });

  it("a captured UDP datagram with Ethernet padding after it: the total length ends the packet", () => {
    const padded = new Uint8Array(60 + 4).fill(0xee);
    padded.set(UDP);
    const k = parsed(padded, IP);
    expect([k.kind, k.proto, k.sport, k.dport, k.tcpFlags, k.l4Off, k.ipLen]).toEqual([FlowKind.Plain, PROTO_UDP, 40000, 5555, 0, 34, 40]);
  });

  it("ICMP echo: sport is the identifier, dport the type (8 request, 0 reply)", () => {
    const k = parsed(ECHO, IP);
    expect([k.kind, k.proto, k.sport, k.dport, k.l4Off]).toEqual([FlowKind.Plain, PROTO_ICMP, 0x0f68, 8, 34]);
    const reply = ECHO.slice();
    reply[IP + 20] = 0;
    expect([parsed(reply, IP).sport, parsed(reply, IP).dport]).toEqual([0x0f68, 0]);
  });

  it("port unreachable quoting UDP: IcmpError, the outer addresses, the quoted tuple", () => {
    const k = parsed(PORT_UNREACH, IP);
    expect({ kind: k.kind, proto: k.proto, src: k.src, dst: k.dst, sport: k.sport, dport: k.dport, l4Off: k.l4Off })
      .toEqual({ kind: FlowKind.IcmpError, proto: PROTO_ICMP, src: ip4(10, 244, 2, 7), dst: ip4(10, 244, 1, 2), sport: 0, dport: 0, l4Off: 34 });
    expect({ p: k.qProto, s: k.qSrc, d: k.qDst, sp: k.qSport, dp: k.qDport, off: k.qIpOff })
      .toEqual({ p: PROTO_UDP, s: ip4(10, 244, 1, 2), d: ip4(10, 244, 2, 7), sp: 40000, dp: 53, off: 42 });
  });

  it("time exceeded quoting a TCP header's first 8 bytes: IcmpError with its ports", () => {
    const k = parsed(TIME_EXCEEDED, IP);
    expect([k.kind, k.src, k.dst, k.qProto, k.qSrc, k.qDst, k.qSport, k.qDport, k.qIpOff])
      .toEqual([FlowKind.IcmpError, ip4(10, 244, 0, 1), ip4(10, 244, 1, 2), PROTO_TCP, ip4(10, 244, 1, 2), ip4(10, 244, 2, 7), 40001, 8080, 42]);
  });

  it("every error type quotes (3, 4, 5, 11, 12); other ICMP types are Other", () => {
    const quote = parsed(PORT_UNREACH, IP);
    const inner = PORT_UNREACH.slice(quote.qIpOff);
    for (let type = 0; type < 256; type++) {
      const k = parsed(packet(PROTO_ICMP, icmp(type, inner)));
      const want = [3, 4, 5, 11, 12].includes(type) ? FlowKind.IcmpError : type === 0 || type === 8 ? FlowKind.Plain : FlowKind.Other;
      expect(k.kind, `type ${type}`).toBe(want);
      if (want === FlowKind.Other) expect([k.sport, k.dport, k.qSport, k.qDport]).toEqual([0, 0, 0, 0]);
    }
  });

  it("an error quoting an echo: qSport is its identifier, qDport its type", () => {
    const echo = ECHO.slice(IP, IP + 28);
    const k = parsed(packet(PROTO_ICMP, icmp(3, echo)));
    expect([k.kind, k.qProto, k.qSport, k.qDport, k.qIpOff]).toEqual([FlowKind.IcmpError, PROTO_ICMP, 0x0f68, 8, 28]);
  });

  it("an error quoting what no flow keys (a later fragment, another protocol, a non-echo ICMP) is Other", () => {
    const later = ECHO.slice(IP, IP + 28);
    put16(later, IPV4_FLAGS_FRAG, 0x2001);
    const gre = ECHO.slice(IP, IP + 28);
    gre[9] = 47;
    const timestamp = ECHO.slice(IP, IP + 28);
    timestamp[20] = 13;
    for (const q of [later, gre, timestamp]) {
      const k = parsed(packet(PROTO_ICMP, icmp(3, q)));
      expect([k.kind, k.qProto, k.qSrc, k.qSport, k.qIpOff]).toEqual([FlowKind.Other, 0, 0, 0, 0]);
    }
  });

  it("a fragment other than the first is Fragment, its payload not read; a first fragment is Plain", () => {
    for (const proto of [PROTO_TCP, PROTO_UDP, PROTO_ICMP, 47]) {
      const k = parsed(packet(proto, Uint8Array.of(1, 2, 3), 0x00b9)); // offset 185 × 8, last fragment
      expect([k.kind, k.proto, k.sport, k.dport, k.l4Off]).toEqual([FlowKind.Fragment, proto, 0, 0, 20]);
    }
    // The first fragment of a 1000-byte datagram: its UDP length counts bytes yet to come.
    const udp = Uint8Array.from([0x30, 0x39, 0x00, 0x35, 0x03, 0xe8, 0, 0, 1, 2, 3, 4]);
    const k = parsed(packet(PROTO_UDP, udp, 0x2000));
    expect([k.kind, k.sport, k.dport]).toEqual([FlowKind.Plain, 12345, 53]);
    expect(reason(packet(PROTO_UDP, udp, 0x4000))).toBe("UdpBadLength");
  });

  it("another protocol is Other, without ports", () => {
    const k = parsed(packet(47, Uint8Array.of(0, 0, 0x08, 0, 1, 2, 3, 4)));
    expect([k.kind, k.proto, k.sport, k.dport, k.l4Off]).toEqual([FlowKind.Other, 47, 0, 0, 20]);
  });

  it("one view parses many packets: nothing is left over from the one before", () => {
    const k = new FlowKeyView();
    expect(k.parse(PORT_UNREACH, IP, PORT_UNREACH.length - IP)).toBe(Drop.None);
    expect(k.parse(SYN, IP, SYN.length - IP)).toBe(Drop.None);
    expect([k.kind, k.qProto, k.qSrc, k.qDst, k.qSport, k.qDport, k.qIpOff]).toEqual([FlowKind.Plain, 0, 0, 0, 0, 0, 0]);
    expect(k.parse(ECHO, IP, ECHO.length - IP)).toBe(Drop.None);
    expect([k.tcpFlags, k.sport, k.dport]).toEqual([0, 0x0f68, 8]);
    const ack = SYN.slice();
    ack[IP + 33] = TCP_ACK_FLAG;
    expect(k.parse(ack, IP, ack.length - IP)).toBe(Drop.None);
    expect(k.tcpFlags).toBe(TCP_ACK_FLAG);
  });
});

describe("FlowKeyView: malformed packets are drops, each with its reason", () => {
  /** `frame`'s IPv4 packet cut to `n` bytes, its total length saying so. */
  function cut(frame: Uint8Array, n: number): Uint8Array {
    const b = frame.slice(IP, IP + n);
    if (n >= 4) put16(b, IPV4_TOTAL_LEN, n);
    return b;
  }

  // The naive model: which header a cut to n bytes leaves incomplete.
  const cases: { what: string; frame: Uint8Array; expect: (l4: number) => string }[] = [
    { what: "TCP SYN", frame: SYN, expect: (l4) => (l4 < 20 ? "TcpTruncated" : l4 < 40 ? "TcpBadHeaderLen" : "None") },
    { what: "UDP", frame: UDP, expect: (l4) => (l4 < 8 ? "UdpTruncated" : l4 < 20 ? "UdpBadLength" : "None") },
    { what: "echo", frame: ECHO, expect: (l4) => (l4 < 8 ? "IcmpTruncated" : "None") },
    { what: "port unreachable", frame: PORT_UNREACH, expect: (l4) => (l4 < 8 + 28 ? "IcmpTruncated" : "None") },
    { what: "time exceeded", frame: TIME_EXCEEDED, expect: (l4) => (l4 < 8 + 28 ? "IcmpTruncated" : "None") },
  ];
  for (const c of cases) {
    it(`every cut of the ${c.what}`, () => {
      const total = c.frame.length - IP;
      for (let n = 0; n <= total; n++) {
        const want = n < 20 ? "Ipv4Truncated" : c.expect(n - 20);
        expect(reason(cut(c.frame, n)), `${n} bytes`).toBe(want);
        // The same bytes with the total length uncut: the IPv4 header claims more than there is.
        if (n >= 20 && n < total) expect(reason(c.frame.slice(IP, IP + n))).toBe("Ipv4BadTotalLen");
      }
    });
  }

  it("a bad IPv4 header: version, header length, total length, a length past the buffer", () => {
    const b = SYN.slice(IP);
    const with_ = (i: number, v: number) => { const c = b.slice(); c[i] = v; return c; };
    expect(reason(with_(0, 0x65))).toBe("Ipv4BadVersion");
    expect(reason(with_(0, 0x44))).toBe("Ipv4BadHeaderLen");
    expect(reason(with_(0, 0x4f))).toBe("TcpTruncated"); // a 60-byte header fills the packet
    expect(reason(with_(0, 0x4f).subarray(0, 59))).toBe("Ipv4BadHeaderLen");
    expect(reason(with_(3, 0x3d))).toBe("Ipv4BadTotalLen");
    expect(reason(with_(3, 0x13))).toBe("Ipv4BadTotalLen");
    expect(reason(b, 0, b.length + 1)).toBe("Ipv4Truncated");
    expect(reason(SYN, -1, 20)).toBe("Ipv4Truncated");
  });

  it("a bad TCP data offset, a bad UDP length", () => {
    const tcp = SYN.slice(IP);
    tcp[32] = 0x40; // 16 bytes
    expect(reason(tcp)).toBe("TcpBadHeaderLen");
    tcp[32] = 0xf0; // 60 bytes, 40 there
    expect(reason(tcp)).toBe("TcpBadHeaderLen");
    const udp = UDP.slice(IP);
    put16(udp, 24, 7);
    expect(reason(udp)).toBe("UdpBadLength");
    put16(udp, 24, 21);
    expect(reason(udp)).toBe("UdpBadLength");
    put16(udp, 24, 19);
    expect(reason(udp)).toBe("None");
  });

  it("a bad quote: its version, its header length, a header longer than the quote", () => {
    const err = TIME_EXCEEDED.slice(IP);
    const q = 28;
    const with_ = (v: number) => { const c = err.slice(); c[q] = v; return c; };
    expect(reason(with_(0x65))).toBe("Ipv4BadVersion");
    expect(reason(with_(0x44))).toBe("Ipv4BadHeaderLen");
    expect(reason(with_(0x46))).toBe("IcmpTruncated"); // 24 + 8 bytes needed, 28 quoted
    const longer = packet(PROTO_ICMP, icmp(11, Uint8Array.from([...err.subarray(q, q + 20), 1, 2, 3, 4, ...err.subarray(q + 20)])));
    longer[28] = 0x46;
    expect(parsed(longer).qSport).toBe(40001);
  });
});

describe("FlowKeyView against 10,000 random inputs", () => {
  const corpus = [SYN, UDP, ECHO, PORT_UNREACH, TIME_EXCEEDED];
  const valid = new Set<number>(Object.values(Drop));

  it("never throws; returns a drop reason, or a key that describes the bytes", () => {
    const rnd = prng(0x5eed_0012);
    const k = new FlowKeyView();
    const kinds = new Map<number, number>();
    for (let t = 0; t < trials(10_000); t++) {
      let b: Uint8Array;
      let ipOff = 0;
      if (rnd() < 0.3) {
        b = Uint8Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256));
        if (b.length > 0 && rnd() < 0.5) b[0] = 0x45;
      } else {
        b = corpus[Math.floor(rnd() * corpus.length)].slice(IP);
        b = b.subarray(0, b.length - Math.floor(rnd() * rnd() * b.length));
        for (let m = Math.floor(rnd() * 4); m > 0; m--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        if (rnd() < 0.5) b[Math.floor(rnd() * Math.min(b.length, 4))] = Math.floor(rnd() * 256);
        const shifted = new Uint8Array(b.length + 14);
        shifted.set(b, 14);
        if (rnd() < 0.5) { b = shifted; ipOff = 14; }
      }
      const len = b.length - ipOff;
      const r = k.parse(b, ipOff, len);
      expect(valid.has(r)).toBe(true);
      if (r !== Drop.None) continue;
      kinds.set(k.kind, (kinds.get(k.kind) ?? 0) + 1);
      const hl = (b[ipOff] & 15) * 4;
      expect(k.ipLen).toBe(get16(b, ipOff + 2));
      expect(k.ipLen).toBeLessThanOrEqual(len);
      expect(k.l4Off).toBe(ipOff + hl);
      expect(k.proto).toBe(b[ipOff + 9]);
      const end = ipOff + k.ipLen;
      if (k.kind === FlowKind.Plain && k.proto !== PROTO_ICMP) {
        expect([k.sport, k.dport]).toEqual([get16(b, k.l4Off), get16(b, k.l4Off + 2)]);
        expect(k.l4Off + (k.proto === PROTO_TCP ? 20 : 8)).toBeLessThanOrEqual(end);
      } else if (k.kind === FlowKind.Plain) {
        expect([k.sport, k.dport]).toEqual([get16(b, k.l4Off + 4), b[k.l4Off]]);
      } else if (k.kind === FlowKind.IcmpError) {
        expect(k.qIpOff).toBe(k.l4Off + 8);
        expect(k.qIpOff + (b[k.qIpOff] & 15) * 4 + 8).toBeLessThanOrEqual(end);
      } else {
        expect([k.sport, k.dport, k.qSport, k.qDport, k.qIpOff]).toEqual([0, 0, 0, 0, 0]);
        if (k.kind === FlowKind.Fragment) expect(get16(b, ipOff + 6) & 0x1fff).not.toBe(0);
      }
    }
    // The inputs reach every kind.
    expect([...kinds.keys()].sort()).toEqual([0, 1, 2, 3]);
  });
});

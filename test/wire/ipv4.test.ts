import { describe, expect, it } from "vitest";
import { fromHex, get16, put16 } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import {
  IPV4_CHECKSUM, IPV4_FLAGS_FRAG, IPV4_ID, IPV4_MIN_HEADER_LEN, IPV4_TOTAL_LEN, IPV4_TTL, Ipv4View, PROTO_ICMP,
  PROTO_TCP, PROTO_UDP, emitIpv4, formatIpv4, parseIpv4, parseIpv4Address, type Ipv4Repr,
} from "../../src/wire/ipv4.ts";
import { prng, trials } from "../support/random.ts";

// Golden IPv4 packets (the frames minus their 14-byte Ethernet header), captured 2026-11-23 (UTC)
// between network namespaces tapnet-golden-a (veth-ga, 10.99.0.1/24) and tapnet-golden-b
// (veth-gb, 10.99.0.2/24), tx checksum offload off on both veths (`ethtool -K veth-g? tx off`), with
// `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w <name>.pcap -c <n> <filter>` and dumped
// with `tcpdump -r <name>.pcap -xx`:
//   ICMP: filter 'arp or icmp', -c 4, while `ping -c 1 -s 16 10.99.0.2` ran in tapnet-golden-a
//   UDP:  filter udp, -c 1, python3 sendto(b"hello tapnet") from 10.99.0.1:40000 to 10.99.0.2:5555
//   TCP:  filter tcp, -c 3, python3 connect() from 10.99.0.1:40001 to a listener on 10.99.0.2:7777

/** Echo request 10.99.0.1 → 10.99.0.2: DF, TTL 64, 24 bytes of ICMP. */
const IPV4_ICMP_REQUEST = fromHex(`
  4500 002c 4ea1 4000 4001 d767 0a63 0001
  0a63 0002 0800 00c5 0f68 0001 e5ab 036b
  0000 0000 f0ba 0e00 0000 0000`);

/** Echo reply 10.99.0.2 → 10.99.0.1: no flags. */
const IPV4_ICMP_REPLY = fromHex(`
  4500 002c 2560 0000 4001 40a9 0a63 0002
  0a63 0001 0000 08c5 0f68 0001 e5ab 036b
  0000 0000 f0ba 0e00 0000 0000`);

/** UDP 10.99.0.1:40000 → 10.99.0.2:5555, "hello tapnet". */
const IPV4_UDP = fromHex(`
  4500 0028 9db4 4000 4011 8848 0a63 0001
  0a63 0002 9c40 15b3 0014 aad3 6865 6c6c
  6f20 7461 706e 6574`);

/** TCP SYN 10.99.0.1:40001 → 10.99.0.2:7777 with options. */
const IPV4_TCP_SYN = fromHex(`
  4500 003c 2d7f 4000 4006 f874 0a63 0001
  0a63 0002 9c41 1e61 a041 8ee0 0000 0000
  a002 faf0 5e6e 0000 0204 05b4 0402 080a
  f2c5 fd4a 0000 0000 0103 030a`);

/** TCP SYN-ACK back: IP ID 0. */
const IPV4_TCP_SYN_ACK = fromHex(`
  4500 003c 0000 4000 4006 25f4 0a63 0002
  0a63 0001 1e61 9c41 08af cbbc a041 8ee1
  a012 fe88 a1ae 0000 0204 05b4 0402 080a
  d645 0e65 f2c5 fd4a 0103 030a`);

const ICMP_REQUEST_REPR: Ipv4Repr = {
  tos: 0, id: 0x4ea1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64,
  protocol: PROTO_ICMP, src: "10.99.0.1", dst: "10.99.0.2", payloadLen: 24, checksum: 0xd767,
};

const GOLDEN: [string, Uint8Array, Ipv4Repr][] = [
  ["ICMP echo request", IPV4_ICMP_REQUEST, ICMP_REQUEST_REPR],
  ["ICMP echo reply", IPV4_ICMP_REPLY, {
    tos: 0, id: 0x2560, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64,
    protocol: PROTO_ICMP, src: "10.99.0.2", dst: "10.99.0.1", payloadLen: 24, checksum: 0x40a9,
  }],
  ["UDP", IPV4_UDP, {
    tos: 0, id: 0x9db4, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64,
    protocol: PROTO_UDP, src: "10.99.0.1", dst: "10.99.0.2", payloadLen: 20, checksum: 0x8848,
  }],
  ["TCP SYN", IPV4_TCP_SYN, {
    tos: 0, id: 0x2d7f, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64,
    protocol: PROTO_TCP, src: "10.99.0.1", dst: "10.99.0.2", payloadLen: 40, checksum: 0xf874,
  }],
  ["TCP SYN-ACK", IPV4_TCP_SYN_ACK, {
    tos: 0, id: 0, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64,
    protocol: PROTO_TCP, src: "10.99.0.2", dst: "10.99.0.1", payloadLen: 40, checksum: 0x25f4,
  }],
];

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

/** The checksum the header at `off` should carry, computed from scratch. */
function fullChecksum(b: Uint8Array, off: number, headerLen: number): number {
  const copy = b.slice(off, off + headerLen);
  put16(copy, IPV4_CHECKSUM, 0);
  return internetChecksum(copy, 0, headerLen);
}

describe("IPv4, golden capture", () => {
  it("deconstruct: the view reads the header of the echo request inside its frame", () => {
    const frame = new Uint8Array(14 + IPV4_ICMP_REQUEST.length);
    frame.set(IPV4_ICMP_REQUEST, 14);
    const v = new Ipv4View();
    expect(v.wrap(frame, 14, frame.length - 14)).toBe(Drop.None);
    expect(v.headerLen).toBe(20);
    expect(v.totalLen).toBe(44);
    expect(v.src).toBe(0x0a630001);
    expect(v.dst).toBe(0x0a630002);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(PROTO_ICMP);
    expect(v.flagsFrag).toBe(0x4000);
    expect(v.dontFragment).toBe(true);
    expect(v.isFragment).toBe(false);
    expect(v.payloadOff).toBe(34);
    expect(v.payloadLen).toBe(24);
    expect(v.checksumValid()).toBe(true);
  });

  it("every captured header's checksum verifies (sums to zero)", () => {
    for (const [name, pkt] of GOLDEN) expect(internetChecksum(pkt, 0, IPV4_MIN_HEADER_LEN), name).toBe(0);
  });

  it("construct: emitIpv4 reproduces every captured header, checksum included, and returns 20", () => {
    for (const [name, pkt, repr] of GOLDEN) {
      const { checksum: _ignored, ...fields } = repr;
      const buf = new Uint8Array(IPV4_MIN_HEADER_LEN);
      expect(emitIpv4(fields, buf, 0), name).toBe(20);
      expect(buf, name).toEqual(pkt.subarray(0, 20));
    }
  });

  it("construct: emitIpv4 ignores the checksum given in the repr", () => {
    const buf = new Uint8Array(20);
    emitIpv4({ ...ICMP_REQUEST_REPR, checksum: 0x1234 } as Ipv4Repr, buf, 0);
    expect(get16(buf, IPV4_CHECKSUM)).toBe(0xd767);
  });

  it("construct: emitIpv4 writes at its offset", () => {
    const buf = new Uint8Array(14 + 20).fill(0xee);
    emitIpv4(ICMP_REQUEST_REPR, buf, 14);
    expect(buf.subarray(14)).toEqual(IPV4_ICMP_REQUEST.subarray(0, 20));
    expect(buf.subarray(0, 14).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: every captured packet gives its repr", () => {
    for (const [name, pkt, repr] of GOLDEN) expect(parseIpv4(pkt), name).toEqual(repr);
  });

  it("round-trip: parse then emit gives the same header bytes", () => {
    for (const [name, pkt] of GOLDEN) {
      const buf = new Uint8Array(20);
      emitIpv4(ok(parseIpv4(pkt)), buf, 0);
      expect(buf, name).toEqual(pkt.subarray(0, 20));
    }
  });

  it("Ethernet padding after the total length is accepted and left out of the payload", () => {
    const padded = new Uint8Array(IPV4_ICMP_REQUEST.length + 6);
    padded.set(IPV4_ICMP_REQUEST);
    padded.fill(0xaa, IPV4_ICMP_REQUEST.length);
    const v = new Ipv4View();
    expect(v.wrap(padded, 0, padded.length)).toBe(Drop.None);
    expect(v.totalLen).toBe(44);
    expect(v.payloadLen).toBe(24);
    expect(parseIpv4(padded)).toEqual(ICMP_REQUEST_REPR);
  });
});

describe("IPv4 header fields", () => {
  function withFlagsFrag(ff: number): Uint8Array {
    const p = IPV4_ICMP_REQUEST.slice();
    put16(p, IPV4_FLAGS_FRAG, ff);
    put16(p, IPV4_CHECKSUM, fullChecksum(p, 0, 20));
    return p;
  }

  it("a first fragment (MF) and a later fragment (offset) are fragments; DF alone is not", () => {
    const v = new Ipv4View();
    for (const [ff, frag] of [[0x4000, false], [0x0000, false], [0x2000, true], [0x0001, true], [0x1fff, true], [0x6000, true]] as const) {
      const p = withFlagsFrag(ff);
      v.wrap(p, 0, p.length);
      expect(v.isFragment, `flags/fragment 0x${ff.toString(16)}`).toBe(frag);
      expect(v.dontFragment).toBe((ff & 0x4000) !== 0);
    }
  });

  it("parse gives the fragment offset in bytes and the MF flag; emit writes them back", () => {
    const p = withFlagsFrag(0x2000 | 185); // MF, offset 185 × 8 = 1480
    const repr = ok(parseIpv4(p));
    expect(repr.moreFragments).toBe(true);
    expect(repr.dontFragment).toBe(false);
    expect(repr.fragmentOffset).toBe(1480);
    const buf = new Uint8Array(20);
    emitIpv4(repr, buf, 0);
    expect(buf).toEqual(p.subarray(0, 20));
  });

  it("a header with options: the payload starts after them and the checksum covers them", () => {
    // Hand-built from the echo request: IHL 6 with one 4-byte option (four NOPs).
    const p = new Uint8Array(48);
    p.set(IPV4_ICMP_REQUEST.subarray(0, 20));
    p[0] = 0x46;
    p.set([1, 1, 1, 1], 20);
    p.set(IPV4_ICMP_REQUEST.subarray(20), 24);
    put16(p, IPV4_TOTAL_LEN, 48);
    put16(p, IPV4_CHECKSUM, fullChecksum(p, 0, 24));
    const v = new Ipv4View();
    expect(v.wrap(p, 0, p.length)).toBe(Drop.None);
    expect(v.headerLen).toBe(24);
    expect(v.payloadOff).toBe(24);
    expect(v.payloadLen).toBe(24);
    expect(v.checksumValid()).toBe(true);
    expect(ok(parseIpv4(p)).payloadLen).toBe(24);
    p[21] = 0; // an option byte changed: the checksum no longer matches
    expect(v.checksumValid()).toBe(false);
    expect(parseIpv4(p)).toBe(Drop.Ipv4BadChecksum);
  });
});

describe("IPv4 malformed input", () => {
  it("every length below 20 is truncated", () => {
    const v = new Ipv4View();
    for (let len = 0; len < 20; len++) {
      expect(v.wrap(IPV4_ICMP_REQUEST, 0, len), `len ${len}`).toBe(Drop.Ipv4Truncated);
      expect(parseIpv4(IPV4_ICMP_REQUEST.slice(0, len)), `len ${len}`).toBe(Drop.Ipv4Truncated);
    }
  });

  it("every version other than 4 is a bad version", () => {
    for (let ver = 0; ver < 16; ver++) {
      if (ver === 4) continue;
      const p = IPV4_ICMP_REQUEST.slice();
      p[0] = (ver << 4) | 5;
      expect(new Ipv4View().wrap(p, 0, p.length), `version ${ver}`).toBe(Drop.Ipv4BadVersion);
      expect(parseIpv4(p), `version ${ver}`).toBe(Drop.Ipv4BadVersion);
    }
  });

  it("an IHL below 5 is a bad header length", () => {
    for (let ihl = 0; ihl < 5; ihl++) {
      const p = IPV4_ICMP_REQUEST.slice();
      p[0] = 0x40 | ihl;
      expect(new Ipv4View().wrap(p, 0, p.length), `IHL ${ihl}`).toBe(Drop.Ipv4BadHeaderLen);
      expect(parseIpv4(p), `IHL ${ihl}`).toBe(Drop.Ipv4BadHeaderLen);
    }
  });

  it("an IHL reaching past the end of the buffer is a bad header length", () => {
    const p = IPV4_ICMP_REQUEST.slice(0, 20);
    put16(p, IPV4_TOTAL_LEN, 20);
    p[0] = 0x46; // 24 bytes of header in a 20-byte packet
    expect(new Ipv4View().wrap(p, 0, 20)).toBe(Drop.Ipv4BadHeaderLen);
    expect(parseIpv4(p)).toBe(Drop.Ipv4BadHeaderLen);
    const q = IPV4_ICMP_REQUEST.slice();
    q[0] = 0x4f; // 60 bytes of header in a 44-byte packet
    expect(parseIpv4(q)).toBe(Drop.Ipv4BadHeaderLen);
  });

  it("a total length shorter than the header is a bad total length", () => {
    for (const total of [0, 19]) {
      const p = IPV4_ICMP_REQUEST.slice();
      put16(p, IPV4_TOTAL_LEN, total);
      expect(parseIpv4(p), `total ${total}`).toBe(Drop.Ipv4BadTotalLen);
    }
    const opts = IPV4_ICMP_REQUEST.slice();
    opts[0] = 0x46;
    put16(opts, IPV4_TOTAL_LEN, 20); // 20 < 24 bytes of header
    expect(parseIpv4(opts)).toBe(Drop.Ipv4BadTotalLen);
  });

  it("a total length larger than the buffer is a bad total length", () => {
    const p = IPV4_ICMP_REQUEST.slice();
    put16(p, IPV4_TOTAL_LEN, 45);
    expect(parseIpv4(p)).toBe(Drop.Ipv4BadTotalLen);
    put16(p, IPV4_TOTAL_LEN, 0xffff);
    expect(parseIpv4(p)).toBe(Drop.Ipv4BadTotalLen);
    // The whole packet is in the buffer, but the frame handed to the view ends a byte early.
    expect(new Ipv4View().wrap(IPV4_ICMP_REQUEST, 0, 43)).toBe(Drop.Ipv4BadTotalLen);
  });

  it("a wrong header checksum is dropped by parse but not by the view, which only checks lengths", () => {
    const p = IPV4_ICMP_REQUEST.slice();
    p[IPV4_ID] ^= 0x01;
    const v = new Ipv4View();
    expect(v.wrap(p, 0, p.length)).toBe(Drop.None);
    expect(v.checksumValid()).toBe(false);
    expect(parseIpv4(p)).toBe(Drop.Ipv4BadChecksum);
  });

  it("a change to the payload does not affect the header checksum", () => {
    const p = IPV4_ICMP_REQUEST.slice();
    p[30] ^= 0xff;
    expect(parseIpv4(p)).toEqual(ICMP_REQUEST_REPR);
  });

  it("emitIpv4 refuses malformed addresses, naming them, and writes nothing", () => {
    const buf = new Uint8Array(20).fill(0xee);
    expect(() => emitIpv4({ ...ICMP_REQUEST_REPR, src: "10.99.0" }, buf, 0)).toThrow(/^bad address in .*"src":"10\.99\.0"/);
    expect(() => emitIpv4({ ...ICMP_REQUEST_REPR, dst: "10.99.0.300" }, buf, 0)).toThrow(/^bad address in .*"dst":"10\.99\.0\.300"/);
    expect(buf.every((x) => x === 0xee)).toBe(true);
  });
});

describe("Ipv4View.decrementTtl", () => {
  function decremented(p: Uint8Array): Uint8Array {
    const q = p.slice();
    const v = new Ipv4View();
    expect(v.wrap(q, 0, q.length)).toBe(Drop.None);
    v.decrementTtl();
    return q;
  }

  it("the captured header goes from TTL 64 to 63 and still verifies", () => {
    const p = IPV4_ICMP_REQUEST.slice();
    const v = new Ipv4View();
    v.wrap(p, 0, p.length);
    expect(v.decrementTtl()).toBe(63);
    expect(v.ttl).toBe(63);
    expect(v.checksumValid()).toBe(true);
    expect(get16(p, IPV4_CHECKSUM)).toBe(0xd867); // one more 0x0100 in the ones' complement
    expect(get16(p, IPV4_CHECKSUM)).toBe(fullChecksum(p, 0, 20));
    // Nothing else changed.
    const expected = IPV4_ICMP_REQUEST.slice();
    expected[IPV4_TTL] = 63;
    put16(expected, IPV4_CHECKSUM, 0xd867);
    expect(p).toEqual(expected);
  });

  it("TTL 1 becomes 0 with a valid checksum", () => {
    const p = IPV4_UDP.slice();
    p[IPV4_TTL] = 1;
    put16(p, IPV4_CHECKSUM, fullChecksum(p, 0, 20));
    const q = decremented(p);
    expect(q[IPV4_TTL]).toBe(0);
    expect(internetChecksum(q, 0, 20)).toBe(0);
    expect(get16(q, IPV4_CHECKSUM)).toBe(fullChecksum(q, 0, 20));
  });

  /** The echo request with `id` and `ttl` set and a freshly computed checksum. */
  function header(id: number, ttl: number): Uint8Array {
    const p = IPV4_ICMP_REQUEST.slice(0, 20);
    put16(p, IPV4_TOTAL_LEN, 20);
    put16(p, IPV4_ID, id);
    p[IPV4_TTL] = ttl;
    put16(p, IPV4_CHECKSUM, fullChecksum(p, 0, 20));
    return p;
  }

  function findId(pred: (id: number) => boolean): number {
    for (let id = 0; id <= 0xffff; id++) if (pred(id)) return id;
    throw new Error("no such ID");
  }

  it("a header whose checksum is 0x0000 before the decrement", () => {
    const id = findId((i) => get16(header(i, 64), IPV4_CHECKSUM) === 0x0000);
    const p = header(id, 64);
    expect(get16(p, IPV4_CHECKSUM)).toBe(0);
    const q = decremented(p);
    expect(internetChecksum(q, 0, 20)).toBe(0);
    expect(get16(q, IPV4_CHECKSUM)).toBe(fullChecksum(q, 0, 20));
  });

  it("a header whose checksum becomes 0x0000 after the decrement", () => {
    const id = findId((i) => get16(header(i, 63), IPV4_CHECKSUM) === 0x0000);
    const q = decremented(header(id, 64));
    expect(q[IPV4_TTL]).toBe(63);
    expect(get16(q, IPV4_CHECKSUM)).toBe(0x0000);
    expect(internetChecksum(q, 0, 20)).toBe(0);
  });

  it("a header carrying 0xffff, the other ones' complement zero, as its checksum", () => {
    const id = findId((i) => get16(header(i, 64), IPV4_CHECKSUM) === 0x0000);
    const p = header(id, 64);
    put16(p, IPV4_CHECKSUM, 0xffff);
    expect(internetChecksum(p, 0, 20)).toBe(0); // a sender may write either zero; both verify
    const q = decremented(p);
    expect(internetChecksum(q, 0, 20)).toBe(0);
    expect(get16(q, IPV4_CHECKSUM)).toBe(fullChecksum(q, 0, 20));
  });

  it("10,000 random headers (TTL 1-255, with and without options) verify after the decrement", () => {
    const rnd = prng(0x7a9e7);
    const v = new Ipv4View();
    for (let n = 0, count = trials(10_000); n < count; n++) {
      const ihl = 5 + Math.floor(rnd() * 3);
      const hl = ihl * 4;
      const p = new Uint8Array(hl + 8);
      for (let i = 0; i < p.length; i++) p[i] = Math.floor(rnd() * 256);
      p[0] = 0x40 | ihl;
      put16(p, IPV4_TOTAL_LEN, p.length);
      const ttl = 1 + Math.floor(rnd() * 255);
      p[IPV4_TTL] = ttl;
      put16(p, IPV4_CHECKSUM, fullChecksum(p, 0, hl));
      const before = p.slice();
      expect(v.wrap(p, 0, p.length)).toBe(Drop.None);
      expect(v.decrementTtl()).toBe(ttl - 1);
      const msg = `case ${n}: ${Buffer.from(before).toString("hex")}`;
      expect(v.checksumValid(), msg).toBe(true);
      expect(get16(p, IPV4_CHECKSUM), msg).toBe(fullChecksum(p, 0, hl));
    }
  });
});

describe("IPv4 addresses", () => {
  it("parse and format dotted quads", () => {
    expect(parseIpv4Address("10.99.0.1")).toBe(0x0a630001);
    expect(parseIpv4Address("0.0.0.0")).toBe(0);
    expect(parseIpv4Address("255.255.255.255")).toBe(0xffffffff);
    expect(formatIpv4(0x0a630001)).toBe("10.99.0.1");
    expect(formatIpv4(0xffffffff)).toBe("255.255.255.255");
    expect(formatIpv4(0xc0a80001 | 0)).toBe("192.168.0.1"); // a negative int32 is the same address
  });

  it("reject anything but four decimal octets without leading zeros", () => {
    for (const bad of ["", "10.99.0", "10.99.0.1.2", "10.99.0.256", "10.99.0.01", "010.99.0.1", "10.99.0.-1",
      " 10.99.0.1", "10.99.0.1 ", "a.b.c.d", "0x0a.99.0.1", "10.99.0.1/24", "1000.0.0.1"]) {
      expect(parseIpv4Address(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it("format then parse round-trips 10,000 random addresses", () => {
    const rnd = prng(4);
    for (let n = 0, count = trials(10_000); n < count; n++) {
      const a = Math.floor(rnd() * 2 ** 32);
      expect(parseIpv4Address(formatIpv4(a))).toBe(a);
    }
  });
});

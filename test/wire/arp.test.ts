import { describe, expect, it } from "vitest";
import {
  ARP_HLEN, ARP_HTYPE, ARP_LEN, ARP_PLEN, ARP_PTYPE, ARP_REPLY, ARP_REQUEST, ArpView, emitArp, parseArp,
  writeArpReply, writeArpRequest, type ArpRepr,
} from "../../src/wire/arp.ts";
import { fromHex, put16 } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { formatIpv4 } from "../../src/wire/ipv4.ts";
import { formatMacHiLo } from "../../src/wire/mac.ts";
import { prng, trials } from "../support/random.ts";
import { countSubarrays } from "../support/subarrays.ts";

// Golden ARP messages (the 28 bytes after the Ethernet header), captured 2026-11-23 (UTC)
// between network namespaces tapnet-golden-a (veth-ga, 02:00:0a:63:00:01, 10.99.0.1/24) and
// tapnet-golden-b (veth-gb, 02:00:0a:63:00:02, 10.99.0.2/24), with
// `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w arp_icmp.pcap -c 4 'arp or icmp'`
// while `ip netns exec tapnet-golden-a ping -c 1 -s 16 10.99.0.2` ran with an empty neighbour
// cache; dumped with `tcpdump -r arp_icmp.pcap -xx`. Whole frames:
//   request: ffff ffff ffff 0200 0a63 0001 0806 | 0001 0800 0604 0001 ...
//   reply:   0200 0a63 0001 0200 0a63 0002 0806 | 0001 0800 0604 0002 ...

/** Who has 10.99.0.2? Tell 10.99.0.1. */
const ARP_REQUEST_MSG = fromHex(`
  0001 0800 0604 0001 0200 0a63 0001 0a63
  0001 0000 0000 0000 0a63 0002`);

/** 10.99.0.2 is at 02:00:0a:63:00:02. */
const ARP_REPLY_MSG = fromHex(`
  0001 0800 0604 0002 0200 0a63 0002 0a63
  0002 0200 0a63 0001 0a63 0001`);

/** The request as a whole frame, on VLAN 5 (see ethernet.test.ts for how it was captured). */
const VLAN_ARP_REQUEST_FRAME = fromHex(`
  ffff ffff ffff 0200 0a63 0001 8100 0005
  0806 0001 0800 0604 0001 0200 0a63 0001
  0a63 0501 0000 0000 0000 0a63 0502`);

const REQUEST_REPR: ArpRepr = {
  operation: ARP_REQUEST, senderMac: "02:00:0a:63:00:01", senderIp: "10.99.0.1",
  targetMac: "00:00:00:00:00:00", targetIp: "10.99.0.2",
};
const REPLY_REPR: ArpRepr = {
  operation: ARP_REPLY, senderMac: "02:00:0a:63:00:02", senderIp: "10.99.0.2",
  targetMac: "02:00:0a:63:00:01", targetIp: "10.99.0.1",
};

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

describe("ARP, golden capture", () => {
  it("deconstruct: the view reads operation and addresses of the request", () => {
    const v = new ArpView();
    expect(v.wrap(ARP_REQUEST_MSG, 0, ARP_REQUEST_MSG.length)).toBe(Drop.None);
    expect(v.operation).toBe(ARP_REQUEST);
    expect(v.senderIp).toBe(0x0a630001);
    expect(v.targetIp).toBe(0x0a630002);
  });

  it("deconstruct: the view reads the reply", () => {
    const v = new ArpView();
    expect(v.wrap(ARP_REPLY_MSG, 0, ARP_REPLY_MSG.length)).toBe(Drop.None);
    expect(v.operation).toBe(ARP_REPLY);
    expect(v.senderIp).toBe(0x0a630002);
    expect(v.targetIp).toBe(0x0a630001);
  });

  it("deconstruct: the view reads a message at an offset inside a tagged frame", () => {
    const v = new ArpView();
    expect(v.wrap(VLAN_ARP_REQUEST_FRAME, 18, VLAN_ARP_REQUEST_FRAME.length - 18)).toBe(Drop.None);
    expect(v.operation).toBe(ARP_REQUEST);
    expect(v.senderIp).toBe(0x0a630501);
    expect(v.targetIp).toBe(0x0a630502);
  });

  it("construct: emitArp reproduces the captured request and reply and returns 28", () => {
    for (const [repr, golden] of [[REQUEST_REPR, ARP_REQUEST_MSG], [REPLY_REPR, ARP_REPLY_MSG]] as const) {
      const buf = new Uint8Array(ARP_LEN);
      expect(emitArp(repr, buf, 0)).toBe(ARP_LEN);
      expect(buf).toEqual(golden);
    }
  });

  it("construct: emitArp writes at its offset", () => {
    const buf = new Uint8Array(18 + ARP_LEN).fill(0xee);
    emitArp(REQUEST_REPR, buf, 18);
    expect(buf.subarray(18)).toEqual(ARP_REQUEST_MSG);
    expect(buf.subarray(0, 18).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: the captured messages give their reprs", () => {
    expect(parseArp(ARP_REQUEST_MSG)).toEqual(REQUEST_REPR);
    expect(parseArp(ARP_REPLY_MSG)).toEqual(REPLY_REPR);
    expect(parseArp(VLAN_ARP_REQUEST_FRAME.slice(18))).toEqual({ ...REQUEST_REPR, senderIp: "10.99.5.1", targetIp: "10.99.5.2" });
  });

  it("round-trip: parse then emit gives the same bytes", () => {
    for (const golden of [ARP_REQUEST_MSG, ARP_REPLY_MSG]) {
      const buf = new Uint8Array(ARP_LEN);
      emitArp(ok(parseArp(golden)), buf, 0);
      expect(buf).toEqual(golden);
    }
  });

  it("ignores bytes after the 28 of the message (Ethernet padding)", () => {
    const padded = new Uint8Array(46);
    padded.set(ARP_REPLY_MSG);
    padded.fill(0xaa, ARP_LEN);
    expect(parseArp(padded)).toEqual(REPLY_REPR);
  });
});

describe("ARP malformed input", () => {
  it("every length below 28 is truncated", () => {
    const v = new ArpView();
    for (let len = 0; len < ARP_LEN; len++) {
      expect(v.wrap(ARP_REQUEST_MSG, 0, len), `len ${len}`).toBe(Drop.ArpTruncated);
      expect(parseArp(ARP_REQUEST_MSG.slice(0, len)), `len ${len}`).toBe(Drop.ArpTruncated);
    }
  });

  const unsupported: [string, (b: Uint8Array) => void][] = [
    ["hardware type IEEE 802 (6)", (b) => put16(b, ARP_HTYPE, 6)],
    ["hardware type 0", (b) => put16(b, ARP_HTYPE, 0)],
    ["hardware type 0x0100 (Ethernet with its bytes swapped)", (b) => put16(b, ARP_HTYPE, 0x0100)],
    ["protocol type IPv6", (b) => put16(b, ARP_PTYPE, 0x86dd)],
    ["hardware address length 8", (b) => { b[ARP_HLEN] = 8; }],
    ["protocol address length 16", (b) => { b[ARP_PLEN] = 16; }],
  ];
  for (const [what, corrupt] of unsupported) {
    it(`${what} is unsupported`, () => {
      const b = ARP_REQUEST_MSG.slice();
      corrupt(b);
      expect(new ArpView().wrap(b, 0, b.length)).toBe(Drop.ArpUnsupported);
      expect(parseArp(b)).toBe(Drop.ArpUnsupported);
    });
  }

  it("emitArp refuses a repr with a malformed address, naming it, and writes nothing", () => {
    const buf = new Uint8Array(ARP_LEN).fill(0xee);
    expect(() => emitArp({ ...REQUEST_REPR, senderIp: "10.99.0.256" }, buf, 0)).toThrow(/^bad ARP .*"senderIp":"10\.99\.0\.256"/);
    expect(() => emitArp({ ...REQUEST_REPR, targetIp: "10.99.0" }, buf, 0)).toThrow(/^bad ARP .*"targetIp":"10\.99\.0"/);
    expect(() => emitArp({ ...REQUEST_REPR, senderMac: "02:00:0a:63:00:0g" }, buf, 0)).toThrow(/^bad ARP .*"senderMac":"02:00:0a:63:00:0g"/);
    expect(() => emitArp({ ...REQUEST_REPR, targetMac: "" }, buf, 0)).toThrow(/^bad ARP .*"targetMac":""/);
    expect(buf.every((x) => x === 0xee)).toBe(true);
  });
});

// The captured request and reply as whole frames (the Ethernet headers quoted at the top).
const REQUEST_FRAME = fromHex(`ffff ffff ffff 0200 0a63 0001 0806 ${Buffer.from(ARP_REQUEST_MSG).toString("hex")}`);
const REPLY_FRAME = fromHex(`0200 0a63 0001 0200 0a63 0002 0806 ${Buffer.from(ARP_REPLY_MSG).toString("hex")}`);
const A_HI = 0x0200, A_LO = 0x0a630001, A_IP = 0x0a630001;
const B_HI = 0x0200, B_LO = 0x0a630002, B_IP = 0x0a630002;

/** `n` bytes of 0xee: what a writer does not write stays 0xee. */
function guarded(n: number): Uint8Array {
  return new Uint8Array(n).fill(0xee);
}

function untouchedOutside(buf: Uint8Array, from: number, to: number): boolean {
  return buf.subarray(0, from).every((x) => x === 0xee) && buf.subarray(to).every((x) => x === 0xee);
}

describe("ARP frame writers, golden capture", () => {
  it("writeArpRequest lays the captured request frame at its offset, 42 bytes and no more", () => {
    const buf = guarded(10 + 42 + 8);
    expect(writeArpRequest(buf, 10, A_HI, A_LO, A_IP, B_IP)).toBe(42);
    expect(buf.subarray(10, 52)).toEqual(REQUEST_FRAME);
    expect(untouchedOutside(buf, 10, 52)).toBe(true);
  });

  it("writeArpReply answers the captured request with the captured reply, into another buffer", () => {
    const buf = guarded(3 + 42 + 5);
    const req = new Uint8Array(7 + 42);
    req.set(REQUEST_FRAME, 7);
    expect(writeArpReply(buf, 3, req, 7, B_HI, B_LO, B_IP)).toBe(42);
    expect(buf.subarray(3, 45)).toEqual(REPLY_FRAME);
    expect(untouchedOutside(buf, 3, 45)).toBe(true);
    expect(req.subarray(7)).toEqual(REQUEST_FRAME);
  });

  it("writeArpReply answers in place: the request's frame becomes the reply", () => {
    const buf = guarded(10 + 42 + 4);
    buf.set(REQUEST_FRAME, 10);
    expect(writeArpReply(buf, 10, buf, 10, B_HI, B_LO, B_IP)).toBe(42);
    expect(buf.subarray(10, 52)).toEqual(REPLY_FRAME);
    expect(untouchedOutside(buf, 10, 52)).toBe(true);
  });

  it("the writers make no view of either buffer", () => {
    const buf = new Uint8Array(42), req = REQUEST_FRAME.slice();
    expect(countSubarrays(() => {
      writeArpRequest(buf, 0, A_HI, A_LO, A_IP, B_IP);
      writeArpReply(buf, 0, req, 0, B_HI, B_LO, B_IP);
      writeArpReply(req, 0, req, 0, B_HI, B_LO, B_IP);
    })).toBe(0);
  });

  it("writeArpReply copies the request's hardware and protocol types and lengths", () => {
    const req = REQUEST_FRAME.slice();
    req.set(fromHex("0006 86dd 0810"), 14);
    const buf = new Uint8Array(42);
    writeArpReply(buf, 0, req, 0, B_HI, B_LO, B_IP);
    expect(buf.subarray(14, 20)).toEqual(fromHex("0006 86dd 0810"));
    expect(buf.subarray(20)).toEqual(REPLY_FRAME.subarray(20));
  });
});

describe("ARP frame writers, random addresses against emitEthernet and emitArp", () => {
  const r = prng(826);
  const u32 = () => (r() * 2 ** 32) >>> 0;
  const u16 = () => (r() * 2 ** 16) >>> 0;

  function expected(dst: string, src: string, arp: ArpRepr): Uint8Array {
    const b = new Uint8Array(42);
    emitEthernet({ dst, src, vlans: [], etherType: 0x0806 }, b, 0);
    emitArp(arp, b, 14);
    return b;
  }

  it("requests and their replies (in place, into another buffer, and overlapping) are the model's", () => {
    for (let t = 0; t < trials(500); t++) {
      const [aHi, aLo, aIp, bHi, bLo, bIp] = [u16(), u32(), u32(), u16(), u32(), u32()];
      const a = formatMacHiLo(aHi, aLo), b = formatMacHiLo(bHi, bLo);
      const off = (r() * 64) | 0;
      const req = guarded(off + 42 + 64);
      writeArpRequest(req, off, aHi, aLo, aIp, bIp);
      const model = expected("ff:ff:ff:ff:ff:ff", a, {
        operation: ARP_REQUEST, senderMac: a, senderIp: formatIpv4(aIp), targetMac: "00:00:00:00:00:00", targetIp: formatIpv4(bIp),
      });
      expect(req.subarray(off, off + 42)).toEqual(model);
      expect(untouchedOutside(req, off, off + 42)).toBe(true);

      const reply = expected(a, b, {
        operation: ARP_REPLY, senderMac: b, senderIp: formatIpv4(bIp), targetMac: a, targetIp: formatIpv4(aIp),
      });
      const apart = new Uint8Array(42);
      writeArpReply(apart, 0, req, off, bHi, bLo, bIp);
      expect(apart).toEqual(reply);
      // The same buffer, the reply anywhere from 42 bytes before the request to 42 after it.
      const shift = ((r() * 85) | 0) - 42;
      const to = Math.max(0, off + shift);
      const same = req.slice();
      writeArpReply(same, to, same, off, bHi, bLo, bIp);
      expect(same.subarray(to, to + 42)).toEqual(reply);
    }
  });
});

/**
 * Every parser against random bytes: 10,000 inputs of 0-100 bytes, half pure noise and half
 * real captured frames cut short and with a few bytes changed (so the inputs get past the
 * first checks and reach every drop reason). No parser may throw; each returns one of its own
 * drop reasons or an object, and a view that accepts a buffer must describe bounds inside it.
 */
import { describe, expect, it } from "vitest";
import { ArpView, parseArp } from "../../src/wire/arp.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop } from "../../src/wire/drop.ts";
import { EthernetView, parseEthernet } from "../../src/wire/ethernet.ts";
import { IcmpView, parseIcmp } from "../../src/wire/icmp.ts";
import { Ipv4View, parseIpv4 } from "../../src/wire/ipv4.ts";
import { TcpView, parseTcp } from "../../src/wire/tcp.ts";
import { UdpView, parseUdp } from "../../src/wire/udp.ts";
import { parseVirtioNetHdr } from "../../src/wire/virtio.ts";
import { prng, trials } from "../support/random.ts";

// The corpus: whole frames from the golden captures of 2026-11-23 (the per-protocol test files
// say how each was captured), each with the offsets where its layers start.
const CORPUS: { frame: Uint8Array; layers: number[] }[] = [
  { // ARP request
    frame: fromHex(`ffff ffff ffff 0200 0a63 0001 0806 0001 0800 0604 0001 0200 0a63 0001 0a63 0001
      0000 0000 0000 0a63 0002`),
    layers: [0, 14],
  },
  { // ICMP echo request
    frame: fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63
      0002 0800 00c5 0f68 0001 e5ab 036b 0000 0000 f0ba 0e00 0000 0000`),
    layers: [0, 14, 34],
  },
  { // UDP
    frame: fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 0028 9db4 4000 4011 8848 0a63 0001 0a63
      0002 9c40 15b3 0014 aad3 6865 6c6c 6f20 7461 706e 6574`),
    layers: [0, 14, 34],
  },
  { // TCP SYN with options
    frame: fromHex(`0200 0a63 0002 0200 0a63 0001 0800 4500 003c 2d7f 4000 4006 f874 0a63 0001 0a63
      0002 9c41 1e61 a041 8ee0 0000 0000 a002 faf0 5e6e 0000 0204 05b4 0402 080a f2c5
      fd4a 0000 0000 0103 030a`),
    layers: [0, 14, 34],
  },
  { // ICMP echo request on VLAN 5
    frame: fromHex(`0200 0a63 0002 0200 0a63 0001 8100 0005 0800 4500 002c 0386 4000 4001 1883 0a63
      0501 0a63 0502 0800 63e7 1028 0001 edab 036b 0000 0000 8bd8 0700 0000 0000`),
    layers: [0, 18, 38],
  },
];

const N = trials(10_000);

function randomInput(rnd: () => number): Uint8Array {
  const len = Math.floor(rnd() * 101);
  if (rnd() < 0.5) {
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  }
  const { frame, layers } = CORPUS[Math.floor(rnd() * CORPUS.length)];
  const start = layers[Math.floor(rnd() * layers.length)];
  // Mostly cut at or below the real length; sometimes run on with noise.
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = start + i < frame.length ? frame[start + i] : Math.floor(rnd() * 256);
  const mutations = Math.floor(rnd() * 4);
  for (let m = 0; m < mutations && len > 0; m++) b[Math.floor(rnd() * len)] = Math.floor(rnd() * 256);
  return b;
}

type Check = (b: Uint8Array, off: number, len: number) => number | object;

/** Each view's wrap, with the bounds a successful wrap promises. */
const VIEWS: [string, Check, number[]][] = [
  ["EthernetView", (b, off, len) => {
    const v = new EthernetView();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) {
      holds(v.payloadOff <= off + len, "v.payloadOff <= off + len");
      holds(v.payloadOff >= off + 14, "v.payloadOff >= off + 14");
      holds(v.payloadOff + v.payloadLen === off + len, "v.payloadOff + v.payloadLen === off + len");
    }
    return r;
  }, [Drop.None, Drop.EthRunt, Drop.EthVlanTruncated]],
  ["ArpView", (b, off, len) => {
    const v = new ArpView();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) holds(len >= 28, "len >= 28");
    return r;
  }, [Drop.None, Drop.ArpTruncated, Drop.ArpUnsupported]],
  ["Ipv4View", (b, off, len) => {
    const v = new Ipv4View();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) {
      holds(v.headerLen >= 20, "v.headerLen >= 20");
      holds(v.totalLen >= v.headerLen, "v.totalLen >= v.headerLen");
      holds(v.totalLen <= len, "v.totalLen <= len");
      v.checksumValid(); // reads every header byte: must stay in bounds
    }
    return r;
  }, [Drop.None, Drop.Ipv4Truncated, Drop.Ipv4BadVersion, Drop.Ipv4BadHeaderLen, Drop.Ipv4BadTotalLen]],
  ["IcmpView", (b, off, len) => {
    const v = new IcmpView();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) v.checksumValid();
    return r;
  }, [Drop.None, Drop.IcmpTruncated]],
  ["UdpView", (b, off, len) => {
    const v = new UdpView();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) {
      holds(v.length >= 8, "v.length >= 8");
      holds(v.payloadOff + v.payloadLen <= off + len, "v.payloadOff + v.payloadLen <= off + len");
    }
    return r;
  }, [Drop.None, Drop.UdpTruncated, Drop.UdpBadLength]],
  ["TcpView", (b, off, len) => {
    const v = new TcpView();
    const r = v.wrap(b, off, len);
    if (r === Drop.None) {
      holds(v.headerLen >= 20, "v.headerLen >= 20");
      holds(v.headerLen <= len, "v.headerLen <= len");
    }
    return r;
  }, [Drop.None, Drop.TcpTruncated, Drop.TcpBadHeaderLen]],
];

const PARSERS: [string, (b: Uint8Array) => number | object, number[]][] = [
  ["parseEthernet", parseEthernet, [Drop.EthRunt, Drop.EthVlanTruncated]],
  ["parseArp", parseArp, [Drop.ArpTruncated, Drop.ArpUnsupported]],
  ["parseIpv4", parseIpv4, [Drop.Ipv4Truncated, Drop.Ipv4BadVersion, Drop.Ipv4BadHeaderLen, Drop.Ipv4BadTotalLen, Drop.Ipv4BadChecksum]],
  ["parseIcmp", parseIcmp, [Drop.IcmpTruncated]],
  ["parseUdp", parseUdp, [Drop.UdpTruncated, Drop.UdpBadLength]],
  ["parseTcp", parseTcp, [Drop.TcpTruncated, Drop.TcpBadHeaderLen]],
  ["parseVirtioNetHdr", (b) => parseVirtioNetHdr(b), [Drop.VnetHdrTruncated]],
];

/** Bounds a view promises after a successful wrap; throws (failing the test) when broken. */
function holds(cond: boolean, what: string): void {
  if (!cond) throw new Error(`broken: ${what}`);
}

/** Runs `f`, failing the test with `input` named if it throws. */
function attempt<T>(f: () => T, input: string): T {
  try {
    return f();
  } catch (e) {
    return expect.fail(`${input}: threw ${String(e)}`);
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function name(r: number | object): string {
  return typeof r === "number" ? DROP_NAMES[r] ?? `unknown ${r}` : "object";
}

describe("parsers against 10,000 random inputs of 0-100 bytes", () => {
  for (const [view, wrap, reasons] of VIEWS) {
    it(`${view}.wrap never throws, returns one of its drop reasons, and bounds what it accepts`, () => {
      const rnd = prng(0xf022 + view.length);
      const seen = new Set<string>();
      for (let n = 0; n < N; n++) {
        const b = randomInput(rnd);
        // Sometimes the packet starts part-way into the buffer, as it does behind a frame header.
        const off = rnd() < 0.3 ? Math.floor(rnd() * (b.length + 1)) : 0;
        const r = attempt(() => wrap(b, off, b.length - off), `input ${n} (${hex(b)}, off ${off})`);
        if (typeof r !== "number" || !reasons.includes(r)) expect.fail(`input ${n} (${hex(b)}, off ${off}): ${name(r)}`);
        seen.add(name(r));
      }
      // The inputs reached every outcome, or the test proves less than it says.
      expect([...seen].sort()).toEqual(reasons.map((r) => DROP_NAMES[r]).sort());
    });
  }

  for (const [parser, parse, reasons] of PARSERS) {
    it(`${parser} never throws and returns one of its drop reasons or an object`, () => {
      const rnd = prng(0x9a75e + parser.length);
      const seen = new Set<string>();
      for (let n = 0; n < N; n++) {
        const b = randomInput(rnd);
        const r = attempt(() => parse(b), `input ${n} (${hex(b)})`);
        const fine = typeof r === "number" ? reasons.includes(r) : typeof r === "object" && r !== null;
        if (!fine) expect.fail(`input ${n} (${hex(b)}): ${name(r)}`);
        seen.add(name(r));
      }
      expect([...seen].sort()).toEqual([...reasons.map((r) => DROP_NAMES[r]), "object"].sort());
    });
  }
});

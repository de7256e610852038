// pcapng: golden blocks written by hand from the layouts of draft-ietf-opsawg-pcapng (section 4.1
// SHB, 4.2 IDB, 4.3 EPB, 3.5 options), then the writer and the reader against each other over
// random files, and the reader against broken files.
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../src/wire/bytes.ts";
import {
  concatBytes, encodeEnhancedPacket, encodeInterface, encodeSectionHeader, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_RAW,
  pcapngFile, PcapngWriter, type InterfaceSpec, type PacketSpec, type Resolution,
} from "../../src/wire/pcapng.ts";
import { readPcapng, type PcapngFile } from "../../src/wire/pcapng-read.ts";
import { prng, trials } from "../support/random.ts";

/** Hex with annotations: only the hex words of each line's first columns count. */
function hex(s: string): string {
  return s.split("\n").map((l) => l.trim().split(/\s{2,}/)[0]).join(" ");
}

// Little-endian throughout: a 32-bit 0x38 is "38000000".
const SHB = fromHex(hex(`
  0a0d0d0a            block type: SHB (a palindrome)
  38000000            block total length 56
  4d3c2b1a            byte-order magic 0x1A2B3C4D, written little-endian
  0100 0000           major 1, minor 0
  ffffffff ffffffff   section length -1: not given
  0300 0500 4c696e7578 000000      shb_os (3), 5 bytes "Linux", 3 bytes of padding
  0400 0600 7461706e6574 0000      shb_userappl (4), 6 bytes "tapnet", 2 of padding
  0000 0000           opt_endofopt
  38000000            block total length again`));

const IDB = fromHex(hex(`
  01000000 40000000                       IDB, 64 bytes
  0100 0000                               link type 1 (Ethernet), reserved
  ffff0000                                snap length 65535
  0200 1400 6e6f6465312f7461703a6e6f6465312d706f6431    if_name (2), 20 bytes, "node1/tap:node1-pod1", no padding
  0300 0400 706f6431                      if_description (3), 4 bytes "pod1"
  0900 0100 09 000000                     if_tsresol (9), 1 byte: 9, nanoseconds; 3 of padding
  0000 0000                               opt_endofopt
  40000000`));

// 1,700,000,000.123456789 s = 0x17979cfe_3d85cd15 ns.
const EPB = fromHex(hex(`
  06000000 54000000       EPB, 84 bytes
  00000000                interface 0
  fe9c9717 15cd853d       timestamp high 0x17979cfe, then low 0x3d85cd15
  05000000 05000000       captured 5 bytes, original 5 bytes
  0102030405 000000       the packet, 3 bytes of padding
  0100 0800 696e3a20706f6431         opt_comment (1), 8 bytes "in: pod1"
  0200 0400 01000000                 epb_flags (2): direction inbound (bits 0-1 = 01)
  0500 0800 0807060504030201         epb_packetid (5): 0x0102030405060708
  0600 0400 03000000                 epb_queue (6): 3
  0000 0000
  54000000`));

const SECTION = { os: "Linux", userappl: "tapnet" };
const IFACE: InterfaceSpec = { linkType: LINKTYPE_ETHERNET, snaplen: 65535, name: "node1/tap:node1-pod1", description: "pod1", resolution: "ns" };
const PACKET: PacketSpec = {
  interfaceId: 0, timeNs: 1_700_000_000_123_456_789n, data: fromHex("0102030405"), comments: ["in: pod1"],
  direction: "inbound", packetId: 0x0102030405060708n, queue: 3,
};

describe("pcapng golden blocks", () => {
  it("writes the SHB, the IDB and the EPB byte for byte", () => {
    expect(toHex(encodeSectionHeader(SECTION))).toBe(toHex(SHB));
    expect(toHex(encodeInterface(IFACE))).toBe(toHex(IDB));
    expect(toHex(encodeEnhancedPacket(PACKET, { snaplen: 65535, resolution: "ns" }))).toBe(toHex(EPB));
  });

  it("streams the same blocks to a sink, one whole block a call, and makes the same file in memory", () => {
    const calls: string[] = [];
    const w = new PcapngWriter((b) => calls.push(toHex(b)), SECTION);
    expect(w.addInterface(IFACE)).toBe(0);
    w.writePacket(PACKET);
    expect(calls).toEqual([toHex(SHB), toHex(IDB), toHex(EPB)]);
    expect(toHex(pcapngFile(SECTION, [IFACE], [PACKET]))).toBe(toHex(concatBytes([SHB, IDB, EPB])));
  });

  it("reads the golden file", () => {
    expect(readPcapng(concatBytes([SHB, IDB, EPB]))).toEqual({
      sections: [{ offset: 0, byteOrder: "little", version: "1.0", os: "Linux", userappl: "tapnet", comments: [] }],
      interfaces: [{ section: 0, id: 0, linkType: 1, snaplen: 65535, name: "node1/tap:node1-pod1", description: "pod1", tsresol: 9, tsoffset: 0n, comments: [] }],
      packets: [{
        interface: 0, timestamp: 1_700_000_000_123_456_789n, timeNs: 1_700_000_000_123_456_789n, originalLength: 5,
        data: fromHex("0102030405"), comments: ["in: pod1"], flags: 1, direction: "inbound", packetId: 0x0102030405060708n, queue: 3,
      }],
      skipped: 0,
    });
  });

  it("writes microseconds by default: if_tsresol 6, the timestamp divided by 1000", () => {
    expect(toHex(encodeInterface({ linkType: LINKTYPE_IPV4, snaplen: 0 }))).toBe(
      "01000000" + "20000000" + "e4000000" + "00000000" + "09000100" + "06000000" + "00000000" + "20000000");
    // 1,700,000,000,123,456 us = 0x00060a24_18202240; no options: no opt_endofopt either.
    expect(toHex(encodeEnhancedPacket({ interfaceId: 2, timeNs: 1_700_000_000_123_456_789n, data: new Uint8Array(0) }, { snaplen: 0, resolution: "us" })))
      .toBe("06000000" + "20000000" + "02000000" + "240a0600" + "40222018" + "00000000" + "00000000" + "20000000");
  });

  it("reads a big-endian file (written by hand: every number the other way round)", () => {
    const be = fromHex(`
      0a0d0d0a 0000001c 1a2b3c4d 0001 0000 ffffffffffffffff 0000001c
      00000001 00000020 00e4 0000 00000400 0002 0002 7530 0000 0000 0000 00000020
      00000006 00000034 00000000 00000000 000f4241 00000002 00000010 abcd 0000 0005 0008 0000000000000009 00000000 00000034`);
    const f = readPcapng(be);
    expect(f.sections[0].byteOrder).toBe("big");
    expect(f.interfaces).toEqual([{ section: 0, id: 0, linkType: LINKTYPE_IPV4, snaplen: 1024, name: "u0", tsresol: 6, tsoffset: 0n, comments: [] }]);
    expect(f.packets).toEqual([{ interface: 0, timestamp: 1_000_001n, timeNs: 1_000_001_000n, originalLength: 16, data: fromHex("abcd"), comments: [], packetId: 9n }]);
  });
});

describe("pcapng writer refuses bad input, and writes nothing for it", () => {
  function writer() {
    const out: Uint8Array[] = [];
    const w = new PcapngWriter((b) => out.push(b));
    w.addInterface({ linkType: LINKTYPE_ETHERNET, snaplen: 8 });
    return { w, out };
  }
  const pkt = (p: Partial<PacketSpec>): PacketSpec => ({ interfaceId: 0, timeNs: 1n, data: new Uint8Array(4), ...p });

  it.each([
    ["an undeclared interface", pkt({ interfaceId: 1 }), /packet\.interfaceId: 1 is not a declared interface \(1 declared\)/],
    ["a negative interface", pkt({ interfaceId: -1 }), /packet\.interfaceId/],
    ["a comment with a lone surrogate", pkt({ comments: ["ok", "bad \ud800 here"] }), /packet\.comments\[1\]: is not valid Unicode \(a lone surrogate at index 4\)/],
    ["a comment with a zero character", pkt({ comments: ["a\0b"] }), /packet\.comments\[0\]: has a zero character at index 1/],
    ["a comment too long for an option", pkt({ comments: ["é".repeat(40000)] }), /packet\.comments\[0\]: is 80000 bytes of UTF-8/],
    ["a comment that is not a string", pkt({ comments: [7 as unknown as string] }), /packet\.comments\[0\]: must be a string/],
    ["an original length below the data's", pkt({ originalLength: 3 }), /packet\.originalLength: 3 is shorter than the data \(4 bytes\)/],
    ["a time as a number", pkt({ timeNs: 5 as unknown as bigint }), /packet\.timeNs: must be a bigint/],
    ["a time before 1970", pkt({ timeNs: -1n }), /packet\.timeNs: -1 is outside/],
    ["a packet id past 64 bits", pkt({ packetId: 1n << 64n }), /packet\.packetId: must be an integer from 0 to 2\^64-1/],
    ["a negative packet id", pkt({ packetId: -1 }), /packet\.packetId/],
    ["another direction", pkt({ direction: "sideways" as "inbound" }), /packet\.direction: must be "inbound" or "outbound"/],
    ["a queue past 32 bits", pkt({ queue: 2 ** 32 }), /packet\.queue: must be an integer from 0 to 4294967295/],
    ["data that is not bytes", pkt({ data: [1, 2] as unknown as Uint8Array }), /packet\.data: must be a Uint8Array/],
  ])("refuses %s", (_, p, message) => {
    const { w, out } = writer();
    expect(() => w.writePacket(p)).toThrow(message);
    expect(out.length).toBe(2); // the SHB and the IDB, nothing after
  });

  it.each([
    ["a link type past 16 bits", { linkType: 65536 }, /interface\.linkType: must be an integer from 0 to 65535, not 65536/],
    ["a fractional snap length", { linkType: 1, snaplen: 1.5 }, /interface\.snaplen/],
    ["another resolution", { linkType: 1, resolution: "ms" as Resolution }, /interface\.resolution: must be "us" or "ns", not ms/],
    ["a name with a lone surrogate", { linkType: 1, name: "\udc00" }, /interface\.name: is not valid Unicode/],
  ])("refuses an interface with %s, and does not count it", (_, i, message) => {
    const { w, out } = writer();
    expect(() => w.addInterface(i)).toThrow(message);
    expect(out.length).toBe(2);
    expect(w.interfaceCount).toBe(1);
  });

  it("refuses a section with a bad string before writing anything", () => {
    const out: Uint8Array[] = [];
    expect(() => new PcapngWriter((b) => out.push(b), { hardware: "x\ud83d" })).toThrow(/section\.hardware: is not valid Unicode/);
    expect(out).toEqual([]);
  });

  it("cuts a packet longer than the snap length, keeping its original length; accepts emoji (a surrogate pair)", () => {
    const { w, out } = writer();
    w.writePacket(pkt({ data: Uint8Array.from({ length: 11 }, (_, i) => i + 1), comments: ["ok 🙂"] }));
    const p = readPcapng(concatBytes(out)).packets[0];
    expect(p.data).toEqual(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    expect(p.originalLength).toBe(11);
    expect(p.comments).toEqual(["ok 🙂"]);
  });
});

/** A string of 0-12 code points from ASCII, Latin-1, CJK and emoji; never NUL, never a lone surrogate. */
function randomText(rnd: () => number): string {
  const ranges = [[0x20, 0x7e], [0xa0, 0xff], [0x4e00, 0x4fff], [0x1f600, 0x1f64f]];
  let s = "";
  for (let n = Math.floor(rnd() * 13); n > 0; n--) {
    const [lo, hi] = ranges[Math.floor(rnd() * ranges.length)];
    s += String.fromCodePoint(lo + Math.floor(rnd() * (hi - lo + 1)));
  }
  return s;
}

const maybe = <T>(rnd: () => number, f: () => T): T | undefined => (rnd() < 0.5 ? f() : undefined);

function randomFile(rnd: () => number): { interfaces: InterfaceSpec[]; packets: PacketSpec[] } {
  const interfaces: InterfaceSpec[] = [];
  for (let n = 1 + Math.floor(rnd() * 4); n > 0; n--) {
    interfaces.push({
      linkType: [LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_RAW][Math.floor(rnd() * 3)],
      snaplen: rnd() < 0.3 ? Math.floor(rnd() * 40) : undefined,
      name: maybe(rnd, () => randomText(rnd)), description: maybe(rnd, () => randomText(rnd)),
      resolution: maybe(rnd, () => (rnd() < 0.5 ? "us" : "ns")),
      comments: maybe(rnd, () => [randomText(rnd)]),
    });
  }
  const packets: PacketSpec[] = [];
  for (let n = Math.floor(rnd() * 6); n > 0; n--) {
    const data = Uint8Array.from({ length: Math.floor(rnd() * 70) }, () => Math.floor(rnd() * 256));
    const u64 = () => (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
    packets.push({
      interfaceId: Math.floor(rnd() * interfaces.length), timeNs: u64() >> BigInt(Math.floor(rnd() * 64)), data,
      originalLength: maybe(rnd, () => data.length + Math.floor(rnd() * 1000)),
      comments: maybe(rnd, () => Array.from({ length: Math.floor(rnd() * 4) }, () => randomText(rnd))),
      direction: maybe(rnd, () => (rnd() < 0.5 ? "inbound" : "outbound")),
      packetId: maybe(rnd, () => (rnd() < 0.5 ? u64() : Math.floor(rnd() * 1000))),
      queue: maybe(rnd, () => Math.floor(rnd() * 2 ** 32)),
    });
  }
  return { interfaces, packets };
}

/** What a reader must find: the naive model of the format. */
function expected(interfaces: InterfaceSpec[], packets: PacketSpec[]): Pick<PcapngFile, "interfaces" | "packets"> {
  return {
    interfaces: interfaces.map((i, id) => ({
      section: 0, id, linkType: i.linkType, snaplen: i.snaplen ?? 262144, tsresol: i.resolution === "ns" ? 9 : 6, tsoffset: 0n,
      comments: i.comments ?? [],
      ...(i.name !== undefined ? { name: i.name } : {}), ...(i.description !== undefined ? { description: i.description } : {}),
    })),
    packets: packets.map((p) => {
      const snaplen = interfaces[p.interfaceId].snaplen ?? 262144;
      const ns = interfaces[p.interfaceId].resolution === "ns";
      const timestamp = ns ? p.timeNs : p.timeNs / 1000n;
      return {
        interface: p.interfaceId, timestamp, timeNs: ns ? timestamp : timestamp * 1000n,
        originalLength: p.originalLength ?? p.data.length,
        data: snaplen > 0 ? p.data.slice(0, snaplen) : p.data, comments: p.comments ?? [],
        ...(p.direction ? { direction: p.direction, flags: p.direction === "inbound" ? 1 : 2 } : {}),
        ...(p.packetId !== undefined ? { packetId: BigInt(p.packetId) } : {}), ...(p.queue !== undefined ? { queue: p.queue } : {}),
      };
    }),
  };
}

describe("pcapng writer → reader", () => {
  it("reads back 500 random files as they were written", () => {
    const rnd = prng(0x9ca9);
    for (let t = 0; t < trials(500); t++) {
      const section = { hardware: maybe(rnd, () => randomText(rnd)), userappl: maybe(rnd, () => randomText(rnd)) };
      const { interfaces, packets } = randomFile(rnd);
      const bytes = pcapngFile(section, interfaces, packets);
      expect(bytes.length % 4).toBe(0);
      const f = readPcapng(bytes);
      expect(f.sections.length).toBe(1);
      expect(f.sections[0].hardware).toBe(section.hardware);
      expect(f.sections[0].userappl).toBe(section.userappl);
      expect({ interfaces: f.interfaces, packets: f.packets }).toEqual(expected(interfaces, packets));
    }
  });

  it("reads two sections, numbering each one's interfaces from 0, and skips blocks it does not know", () => {
    const a = pcapngFile({}, [{ linkType: 1, name: "a0" }, { linkType: 1, name: "a1" }], [{ interfaceId: 1, timeNs: 0n, data: Uint8Array.of(1) }]);
    const nrb = fromHex("04000000 10000000 00000000 10000000"); // a Name Resolution Block: an empty record list
    const b = pcapngFile({}, [{ linkType: 228, name: "b0" }], [{ interfaceId: 0, timeNs: 0n, data: Uint8Array.of(2) }]);
    const f = readPcapng(concatBytes([a, nrb, b]));
    expect(f.sections.map((s) => s.offset)).toEqual([0, a.length + 16]);
    expect(f.interfaces.map((i) => [i.name, i.section, i.id])).toEqual([["a0", 0, 0], ["a1", 0, 1], ["b0", 1, 0]]);
    expect(f.packets.map((p) => [p.interface, p.data[0]])).toEqual([[1, 1], [2, 2]]);
    expect(f.skipped).toBe(1);
  });
});

describe("pcapng reader against broken files", () => {
  const good = concatBytes([SHB, IDB, EPB]);

  /** Runs the reader: its answer, or its message if it refused (any other throw fails the test). */
  function read(b: Uint8Array): PcapngFile | string {
    try {
      return readPcapng(b);
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).toMatch(/^pcapng: offset \d+: /);
      return (e as Error).message;
    }
  }

  it("refuses every cut of a valid file but those between blocks, which read as the blocks before", () => {
    const full = readPcapng(good);
    for (let n = 0; n < good.length; n++) {
      const r = read(good.subarray(0, n));
      if (n === SHB.length) expect(r).toEqual({ ...full, interfaces: [], packets: [] });
      else if (n === SHB.length + IDB.length) expect(r).toEqual({ ...full, packets: [] });
      else expect(typeof r).toBe("string");
    }
  });

  it("never throws anything else, nor hangs, on 3,000 files with random bytes changed", () => {
    const rnd = prng(0xbad);
    for (let t = 0; t < trials(3000); t++) {
      const b = good.slice();
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      read(b);
    }
  });

  const cases: [string, string, RegExp][] = [
    ["an empty file", "", /offset 0: empty file/],
    ["a file not starting with an SHB", toHex(IDB), /offset 0: block type 0x1: a pcapng file starts with a Section Header Block/],
    ["a bad byte-order magic", "0a0d0d0a 1c000000 4d3c2b1b 01000000 ffffffffffffffff 1c000000", /offset 8: byte-order magic is 0x1b2b3c4d/],
    ["version 2.0", "0a0d0d0a 1c000000 4d3c2b1a 02000000 ffffffffffffffff 1c000000", /offset 12: version 2.0/],
    ["a length not a multiple of 4", toHex(SHB) + "01000000 15000000 01000000 00000000 15000000 00", /offset 60: block total length 21 is not a multiple of 4/],
    ["a block shorter than its fixed part", toHex(SHB) + "06000000 0c000000 0c000000", /offset 60: block total length 12 is less than the 32 bytes/],
    ["a zero length", toHex(SHB) + "99000000 00000000 00000000", /offset 60: block total length 0 is less than the 12 bytes/],
    ["lengths that disagree", toHex(SHB) + "01000000 14000000 01000000 00000000 18000000", /offset 72: block total length is 20 at the start but 24 at the end/],
    ["a block past the end", toHex(SHB) + "01000000 18000000 01000000 00000000 18000000", /offset 60: block total length 24 runs past the end of the file \(20 bytes left\)/],
    ["a tail too short for a block", toHex(SHB) + "0100", /offset 56: 2 bytes left/],
    ["a packet on an undeclared interface", toHex(SHB) + toHex(IDB) + "06000000 20000000 01000000 0000000000000000 00000000 00000000 20000000", /offset 128: interface id 1: the section declares 1 interfaces/],
    ["a captured length past its block", toHex(SHB) + toHex(IDB) + "06000000 20000000 00000000 0000000000000000 04000000 04000000 20000000", /offset 140: captured length 4 does not fit in a block of 32 bytes/],
    ["an option into the trailing length", toHex(SHB) + "01000000 18000000 01000000 00000000 02000400 18000000", /offset 72: option 2 of 4 bytes runs past the end of its block \(at 76\)/],
    ["an if_tsresol of 2 bytes", toHex(SHB) + "01000000 1c000000 01000000 00000000 09000200 0906 0000 1c000000", /offset 72: if_tsresol is 2 bytes, not 1/],
  ];
  it.each(cases)("refuses %s, naming the offset", (_, h, message) => {
    expect(read(fromHex(h))).toMatch(message);
  });
});

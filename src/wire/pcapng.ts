/**
 * pcapng, the capture file format of Wireshark and tcpdump (IETF draft-ietf-opsawg-pcapng): the
 * writer that the trace's `--pcapng FILE` and `tapnet capture -w FILE` use. wire/pcapng-read.ts
 * reads it back.
 *
 * A file is a list of blocks. Every block has the same frame: a type, its total length, a body,
 * and the total length again, so that a reader can skip a block it does not know, forwards or
 * backwards. Lengths count the whole block and are always a multiple of 4.
 *
 *   0            4                    8                           total-4      total
 *   | block type | block total length | body ... (padded to 4)    | total length |
 *
 * A file starts with a Section Header Block (SHB). Its byte-order magic, 0x1A2B3C4D, tells in
 * which byte order every number of the section is written: a reader that sees 4D 3C 2B 1A
 * knows it is little-endian. This writer writes little-endian, always. The block type,
 * 0x0A0D0D0A ("\n\r\r\n"), reads the same both ways round.
 *
 *   SHB  0          4          8            12      14      16                   24
 *        | 0A0D0D0A | total    | 1A2B3C4D   | major | minor | section length     | options | total
 *
 * major.minor is 1.0; the section length is -1, "not given", since a writer that streams does
 * not know it. Options: shb_hardware (2), shb_os (3), shb_userappl (4), UTF-8 strings.
 *
 * Then an Interface Description Block (IDB) for each interface packets are seen on. Interfaces
 * are numbered 0, 1, 2... in the order of their IDBs within the section.
 *
 *   IDB  0          4          8           10         12         16
 *        | 00000001 | total    | link type | reserved | snap len | options | total
 *
 * The link type says what the packet bytes start with: LINKTYPE_ETHERNET (1) for Ethernet
 * frames, LINKTYPE_IPV4 (228) for bare IPv4 packets (LINKTYPE_RAW, 101, is IPv4 or IPv6 told
 * apart by the version nibble). The snap length is the most bytes kept of a packet (0: no
 * limit). Options: if_name (2) and if_description (3), UTF-8 strings; if_tsresol (9), one byte:
 * timestamps count 10^-6 s (6, the default) or 10^-9 s (9).
 *
 * Then an Enhanced Packet Block (EPB) for each packet.
 *
 *   EPB  0          4          8              12               16              20
 *        | 00000006 | total    | interface id | timestamp high | timestamp low |
 *        20              24              28
 *        | captured len  | original len  | packet data (padded to 4) | options | total
 *
 * The timestamp is one 64-bit count of the interface's units since 1970-01-01 UTC, cut in two
 * 32-bit halves, the high one first whatever the byte order. The captured length is how many
 * bytes follow; the original length how long the packet was (longer when the snap length cut
 * it). Options: opt_comment (1, any block, repeatable), epb_flags (2, 32 bits; bits 0-1 are the
 * direction: 01 inbound, 10 outbound), epb_packetid (5, 64 bits: the same id on every
 * interface that saw one packet, so Wireshark can follow it), epb_queue (6, 32 bits).
 *
 * An option is a code (16 bits), the length of its value (16 bits, without padding), and the
 * value padded with zeros to 4 bytes. A list of options ends with opt_endofopt (code 0, length 0).
 *
 *   0      2        4
 *   | code | length | value ... (padded to 4) |   ...   | 0000 | 0000 |
 *
 * Everything is checked before a byte goes out: bad input is an Error naming the field, and
 * never half a block in the file. Off the hot path: one allocation per block.
 */

export const BLOCK_SHB = 0x0a0d0d0a;
export const BLOCK_IDB = 1;
export const BLOCK_EPB = 6;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_IPV4 = 228;

export const OPT_ENDOFOPT = 0;
export const OPT_COMMENT = 1;
export const SHB_HARDWARE = 2;
export const SHB_OS = 3;
export const SHB_USERAPPL = 4;
export const IF_NAME = 2;
export const IF_DESCRIPTION = 3;
export const IF_TSRESOL = 9;
export const IF_TSOFFSET = 14;
export const EPB_FLAGS = 2;
export const EPB_PACKETID = 5;
export const EPB_QUEUE = 6;

/** epb_flags bits 0-1. */
export const EPB_INBOUND = 1;
export const EPB_OUTBOUND = 2;

/** tcpdump's and Wireshark's snap length: more than any packet tapnet handles (64 KB + headers). */
export const DEFAULT_SNAPLEN = 262144;

const LE = true;
const MAX_OPTION_VALUE = 0xffff;
const MAX_BLOCK = 0xfffffffc;
const MAX_U64 = (1n << 64n) - 1n;

export interface SectionSpec {
  hardware?: string;
  os?: string;
  /** The application that wrote the file, e.g. "tapnet 0.4.0". */
  userappl?: string;
  comments?: string[];
}

export type Resolution = "us" | "ns";
export type Direction = "inbound" | "outbound";

export interface InterfaceSpec {
  linkType: number;
  /** The most bytes kept of each packet; 0 is no limit. Default 262144. */
  snaplen?: number;
  /** Such as "node1/tap:node1-pod1". */
  name?: string;
  description?: string;
  /** Units of the timestamps: microseconds (the format's default) or nanoseconds. */
  resolution?: Resolution;
  comments?: string[];
}

export interface PacketSpec {
  /** The interface's number: 0 for the section's first IDB, 1 for the next... */
  interfaceId: number;
  /** When the packet was seen, in nanoseconds since 1970-01-01 UTC. */
  timeNs: bigint;
  data: Uint8Array;
  /** How long the packet was, if `data` is already cut short. Default data.length. */
  originalLength?: number;
  comments?: string[];
  direction?: Direction;
  /** The same id on every interface that saw this packet (epb_packetid, 64 bits). */
  packetId?: bigint | number;
  queue?: number;
}

interface Option {
  code: number;
  value: Uint8Array;
}

const encoder = new TextEncoder();

function fail(field: string, why: string): never {
  throw new Error(`pcapng: ${field}: ${why}`);
}

function checkUint(field: string, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) fail(field, `must be an integer from 0 to ${max}, not ${String(v)}`);
  return v;
}

/** A UTF-8 string option. A lone UTF-16 surrogate has no UTF-8 form: TextEncoder would write U+FFFD. */
function stringOption(code: number, field: string, s: unknown): Option {
  if (typeof s !== "string") fail(field, `must be a string, not ${typeof s}`);
  const lone = /\p{Cs}/u.exec(s);
  if (lone) fail(field, `is not valid Unicode (a lone surrogate at index ${lone.index}), so has no UTF-8 form`);
  const nul = s.indexOf("\0");
  if (nul >= 0) fail(field, `has a zero character at index ${nul}, which readers take for the end of the string`);
  const value = encoder.encode(s);
  if (value.length > MAX_OPTION_VALUE) fail(field, `is ${value.length} bytes of UTF-8, more than an option holds (${MAX_OPTION_VALUE})`);
  return { code, value };
}

function commentOptions(field: string, comments: unknown): Option[] {
  if (comments === undefined) return [];
  if (!Array.isArray(comments)) fail(field, "must be an array of strings");
  return comments.map((c, i) => stringOption(OPT_COMMENT, `${field}[${i}]`, c));
}

function u32Option(code: number, v: number): Option {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, v, LE);
  return { code, value };
}

function u64Option(code: number, v: bigint): Option {
  const value = new Uint8Array(8);
  new DataView(value.buffer).setBigUint64(0, v, LE);
  return { code, value };
}

const pad4 = (n: number): number => (n + 3) & ~3;

/**
 * One block: type, total length, `bodyLen` bytes that `fill` writes from offset 8, the options
 * and their end, the total length again. Everything else is zero, padding included.
 */
function block(type: number, bodyLen: number, options: Option[], fill: (v: DataView, b: Uint8Array) => void): Uint8Array {
  let optLen = 0;
  for (const o of options) optLen += 4 + pad4(o.value.length);
  if (options.length > 0) optLen += 4; // opt_endofopt
  const total = 8 + bodyLen + optLen + 4;
  if (total > MAX_BLOCK) fail("block", `${total} bytes is more than a block can hold`);
  const b = new Uint8Array(total);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, LE);
  v.setUint32(4, total, LE);
  fill(v, b);
  let o = 8 + bodyLen;
  for (const opt of options) {
    v.setUint16(o, opt.code, LE);
    v.setUint16(o + 2, opt.value.length, LE);
    b.set(opt.value, o + 4);
    o += 4 + pad4(opt.value.length);
  }
  // opt_endofopt is 4 zero bytes, already there.
  v.setUint32(total - 4, total, LE);
  return b;
}

export function encodeSectionHeader(s: SectionSpec = {}): Uint8Array {
  const options = commentOptions("section.comments", s.comments);
  if (s.hardware !== undefined) options.push(stringOption(SHB_HARDWARE, "section.hardware", s.hardware));
  if (s.os !== undefined) options.push(stringOption(SHB_OS, "section.os", s.os));
  if (s.userappl !== undefined) options.push(stringOption(SHB_USERAPPL, "section.userappl", s.userappl));
  return block(BLOCK_SHB, 16, options, (v) => {
    v.setUint32(8, BYTE_ORDER_MAGIC, LE);
    v.setUint16(12, 1, LE); // major
    v.setUint16(14, 0, LE); // minor
    v.setBigInt64(16, -1n, LE); // section length: not given
  });
}

/** The if_tsresol byte of a resolution: 10^-6 or 10^-9 seconds. */
export function tsresolByte(r: Resolution): number {
  return r === "ns" ? 9 : 6;
}

function checkResolution(field: string, r: unknown): Resolution {
  if (r === undefined) return "us";
  if (r !== "us" && r !== "ns") fail(field, `must be "us" or "ns", not ${String(r)}`);
  return r;
}

export function encodeInterface(i: InterfaceSpec): Uint8Array {
  const linkType = checkUint("interface.linkType", i.linkType, 0xffff);
  const snaplen = checkUint("interface.snaplen", i.snaplen ?? DEFAULT_SNAPLEN, 0xffffffff);
  const resolution = checkResolution("interface.resolution", i.resolution);
  const options = commentOptions("interface.comments", i.comments);
  if (i.name !== undefined) options.push(stringOption(IF_NAME, "interface.name", i.name));
  if (i.description !== undefined) options.push(stringOption(IF_DESCRIPTION, "interface.description", i.description));
  options.push({ code: IF_TSRESOL, value: Uint8Array.of(tsresolByte(resolution)) });
  return block(BLOCK_IDB, 8, options, (v) => {
    v.setUint16(8, linkType, LE);
    v.setUint16(10, 0, LE); // reserved
    v.setUint32(12, snaplen, LE);
  });
}

function checkPacketId(v: unknown): bigint {
  const id = typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : v;
  if (typeof id !== "bigint" || id < 0n || id > MAX_U64) fail("packet.packetId", `must be an integer from 0 to 2^64-1, not ${String(v)}`);
  return id;
}

/** An EPB for a packet on an interface with this snap length and resolution (the writer's checks of the id aside). */
export function encodeEnhancedPacket(p: PacketSpec, iface: { snaplen: number; resolution: Resolution }): Uint8Array {
  const interfaceId = checkUint("packet.interfaceId", p.interfaceId, 0xffffffff);
  if (typeof p.timeNs !== "bigint") fail("packet.timeNs", `must be a bigint of nanoseconds since 1970, not ${typeof p.timeNs}`);
  const ts = iface.resolution === "ns" ? p.timeNs : p.timeNs / 1000n;
  if (p.timeNs < 0n || ts > MAX_U64) fail("packet.timeNs", `${p.timeNs} is outside 1970 to 2^64 units of the interface`);
  if (!(p.data instanceof Uint8Array)) fail("packet.data", "must be a Uint8Array");
  const originalLength = checkUint("packet.originalLength", p.originalLength ?? p.data.length, 0xffffffff);
  if (originalLength < p.data.length) fail("packet.originalLength", `${originalLength} is shorter than the data (${p.data.length} bytes)`);
  const data = iface.snaplen > 0 && p.data.length > iface.snaplen ? p.data.subarray(0, iface.snaplen) : p.data;
  const options = commentOptions("packet.comments", p.comments);
  if (p.direction !== undefined) {
    if (p.direction !== "inbound" && p.direction !== "outbound") fail("packet.direction", `must be "inbound" or "outbound", not ${String(p.direction)}`);
    options.push(u32Option(EPB_FLAGS, p.direction === "inbound" ? EPB_INBOUND : EPB_OUTBOUND));
  }
  if (p.packetId !== undefined) options.push(u64Option(EPB_PACKETID, checkPacketId(p.packetId)));
  if (p.queue !== undefined) options.push(u32Option(EPB_QUEUE, checkUint("packet.queue", p.queue, 0xffffffff)));
  return block(BLOCK_EPB, 20 + pad4(data.length), options, (v, b) => {
    v.setUint32(8, interfaceId, LE);
    v.setUint32(12, Number(ts >> 32n), LE);
    v.setUint32(16, Number(ts & 0xffffffffn), LE);
    v.setUint32(20, data.length, LE);
    v.setUint32(24, originalLength, LE);
    b.set(data, 28);
  });
}

/**
 * Writes a pcapng section to `sink`, a block per call, each block whole: the SHB at once, an
 * IDB per addInterface, an EPB per writePacket. A call that throws has written nothing.
 */
export class PcapngWriter {
  private readonly interfaces: { snaplen: number; resolution: Resolution }[] = [];

  constructor(private readonly sink: (block: Uint8Array) => void, section: SectionSpec = {}) {
    sink(encodeSectionHeader(section));
  }

  /** Declares an interface; returns its id, for writePacket. */
  addInterface(i: InterfaceSpec): number {
    const b = encodeInterface(i);
    this.sink(b);
    this.interfaces.push({ snaplen: i.snaplen ?? DEFAULT_SNAPLEN, resolution: i.resolution ?? "us" });
    return this.interfaces.length - 1;
  }

  /** Writes a packet, cut to its interface's snap length (the original length kept). */
  writePacket(p: PacketSpec): void {
    const iface = this.interfaces[p.interfaceId];
    if (!Number.isInteger(p.interfaceId) || iface === undefined) {
      fail("packet.interfaceId", `${String(p.interfaceId)} is not a declared interface (${this.interfaces.length} declared)`);
    }
    this.sink(encodeEnhancedPacket(p, iface));
  }

  get interfaceCount(): number {
    return this.interfaces.length;
  }
}

/** A whole file in memory: one section, its interfaces (ids 0, 1...) and packets. */
export function pcapngFile(section: SectionSpec, interfaces: InterfaceSpec[], packets: PacketSpec[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const w = new PcapngWriter((b) => blocks.push(b), section);
  for (const i of interfaces) w.addInterface(i);
  for (const p of packets) w.writePacket(p);
  return concatBytes(blocks);
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  n = 0;
  for (const p of parts) {
    out.set(p, n);
    n += p.length;
  }
  return out;
}

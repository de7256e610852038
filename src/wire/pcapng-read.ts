/**
 * A small pcapng reader: the files wire/pcapng.ts writes, and those Wireshark and tcpdump write,
 * read into plain objects. For tests, and for `tapnet` reading a capture back.
 *
 * It walks the blocks (layouts in wire/pcapng.ts) one after the other:
 *
 *   | SHB | IDB | IDB | EPB | EPB | ISB | SHB | IDB | EPB ...
 *
 * A Section Header Block starts a section and says its byte order (magic 1A2B3C4D read one way
 * or the other); the section's Interface Description Blocks are numbered from 0; an Enhanced
 * Packet Block names one of them. Any other block (Simple Packet, Name Resolution, Interface
 * Statistics, Decryption Secrets, a vendor's own...) is skipped by its length, and counted.
 *
 * Every length is checked before it is followed: a block must be a multiple of 4 bytes, at
 * least its fixed part, inside the file, with the same total length at both ends; an option
 * must fit in its block. Anything else is an Error saying what is wrong and at which byte
 * offset of the file. The walk always moves forward, so it ends.
 */
import {
  BLOCK_EPB, BLOCK_IDB, BLOCK_SHB, BYTE_ORDER_MAGIC, EPB_FLAGS, EPB_INBOUND, EPB_OUTBOUND, EPB_PACKETID, EPB_QUEUE,
  IF_DESCRIPTION, IF_NAME, IF_TSOFFSET, IF_TSRESOL, OPT_COMMENT, OPT_ENDOFOPT, SHB_HARDWARE, SHB_OS, SHB_USERAPPL,
  type Direction,
} from "./pcapng.ts";

export interface PcapngSection {
  /** Where its SHB starts in the file. */
  offset: number;
  byteOrder: "little" | "big";
  /** "1.0" */
  version: string;
  hardware?: string;
  os?: string;
  userappl?: string;
  comments: string[];
}

export interface PcapngInterface {
  /** Index of its section in PcapngFile.sections. */
  section: number;
  /** Its number within its section, as packets name it. */
  id: number;
  linkType: number;
  snaplen: number;
  name?: string;
  description?: string;
  /** The if_tsresol byte: 6 (microseconds, the default), 9 (nanoseconds), 0x80|n for 2^-n s. */
  tsresol: number;
  /** if_tsoffset: seconds added to every timestamp. */
  tsoffset: bigint;
  comments: string[];
}

export interface PcapngPacket {
  /** Index of its interface in PcapngFile.interfaces (which is its id when the file has one section). */
  interface: number;
  /** The timestamp as written, in the interface's units. */
  timestamp: bigint;
  /** The same, in nanoseconds since 1970-01-01 UTC (rounded down for units finer than 1 ns). */
  timeNs: bigint;
  originalLength: number;
  data: Uint8Array;
  comments: string[];
  /** epb_flags, whole. */
  flags?: number;
  direction?: Direction;
  packetId?: bigint;
  queue?: number;
}

export interface PcapngFile {
  sections: PcapngSection[];
  interfaces: PcapngInterface[];
  packets: PcapngPacket[];
  /** Blocks of other types, skipped. */
  skipped: number;
}

interface Option {
  code: number;
  /** Where its value starts in the file, and the value. */
  at: number;
  value: Uint8Array;
}

const decoder = new TextDecoder("utf-8");

function malformed(offset: number, why: string): never {
  throw new Error(`pcapng: offset ${offset}: ${why}`);
}

/** A string option: UTF-8, ending at its length or at a zero byte, whichever comes first. */
function text(value: Uint8Array): string {
  const nul = value.indexOf(0);
  return decoder.decode(nul < 0 ? value : value.subarray(0, nul));
}

/** The options from `start` to `end`, up to opt_endofopt (which a writer may leave out). */
function readOptions(b: Uint8Array, v: DataView, le: boolean, start: number, end: number): Option[] {
  const out: Option[] = [];
  let o = start;
  while (o + 4 <= end) {
    const code = v.getUint16(o, le);
    const len = v.getUint16(o + 2, le);
    if (code === OPT_ENDOFOPT) break;
    if (o + 4 + len > end) malformed(o, `option ${code} of ${len} bytes runs past the end of its block (at ${end})`);
    out.push({ code, at: o + 4, value: b.subarray(o + 4, o + 4 + len) });
    o += 4 + ((len + 3) & ~3);
  }
  return out;
}

function fixedLength(o: Option, n: number, name: string): DataView {
  if (o.value.length !== n) malformed(o.at - 4, `${name} is ${o.value.length} bytes, not ${n}`);
  return new DataView(o.value.buffer, o.value.byteOffset, n);
}

/** A timestamp in if_tsresol units, as nanoseconds. */
export function toNanoseconds(ts: bigint, tsresol: number, tsoffset = 0n): bigint {
  const exp = BigInt(tsresol & 0x7f);
  let ns: bigint;
  if (tsresol & 0x80) ns = (ts * 1_000_000_000n) >> exp;
  else ns = exp <= 9n ? ts * 10n ** (9n - exp) : ts / 10n ** (exp - 9n);
  return ns + tsoffset * 1_000_000_000n;
}

/** Smallest total length of each block this reader parses: frame (12) and fixed body. */
const MIN_LENGTH: Record<number, number> = { [BLOCK_SHB]: 28, [BLOCK_IDB]: 20, [BLOCK_EPB]: 32 };

export function readPcapng(b: Uint8Array): PcapngFile {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const file: PcapngFile = { sections: [], interfaces: [], packets: [], skipped: 0 };
  let le = true;
  let sectionInterfaces: number[] = []; // the section's interface ids → indexes in file.interfaces
  if (b.length === 0) malformed(0, "empty file: a pcapng file starts with a Section Header Block");
  let off = 0;
  while (off < b.length) {
    if (b.length - off < 12) malformed(off, `${b.length - off} bytes left: too few for a block (12 at least)`);
    const type = v.getUint32(off, le);
    if (type === BLOCK_SHB) {
      const magic = v.getUint32(off + 8, true);
      if (magic === BYTE_ORDER_MAGIC) le = true;
      else if (magic === 0x4d3c2b1a) le = false;
      else malformed(off + 8, `byte-order magic is 0x${magic.toString(16)}, not 1A2B3C4D either way round`);
    } else if (file.sections.length === 0) {
      malformed(off, `block type 0x${type.toString(16)}: a pcapng file starts with a Section Header Block (0x0a0d0d0a)`);
    }
    const total = v.getUint32(off + 4, le);
    const min = MIN_LENGTH[type] ?? 12;
    if (total % 4 !== 0) malformed(off + 4, `block total length ${total} is not a multiple of 4`);
    if (total < min) malformed(off + 4, `block total length ${total} is less than the ${min} bytes of a block of type 0x${type.toString(16)}`);
    if (total > b.length - off) malformed(off + 4, `block total length ${total} runs past the end of the file (${b.length - off} bytes left)`);
    const trailer = v.getUint32(off + total - 4, le);
    if (trailer !== total) malformed(off + total - 4, `block total length is ${total} at the start but ${trailer} at the end`);
    const end = off + total - 4;

    if (type === BLOCK_SHB) {
      const major = v.getUint16(off + 12, le);
      const minor = v.getUint16(off + 14, le);
      if (major !== 1) malformed(off + 12, `version ${major}.${minor}: only major version 1 is known`);
      const s: PcapngSection = { offset: off, byteOrder: le ? "little" : "big", version: `${major}.${minor}`, comments: [] };
      for (const o of readOptions(b, v, le, off + 24, end)) {
        if (o.code === OPT_COMMENT) s.comments.push(text(o.value));
        else if (o.code === SHB_HARDWARE) s.hardware = text(o.value);
        else if (o.code === SHB_OS) s.os = text(o.value);
        else if (o.code === SHB_USERAPPL) s.userappl = text(o.value);
      }
      file.sections.push(s);
      sectionInterfaces = [];
    } else if (type === BLOCK_IDB) {
      const i: PcapngInterface = {
        section: file.sections.length - 1, id: sectionInterfaces.length, linkType: v.getUint16(off + 8, le),
        snaplen: v.getUint32(off + 12, le), tsresol: 6, tsoffset: 0n, comments: [],
      };
      for (const o of readOptions(b, v, le, off + 16, end)) {
        if (o.code === OPT_COMMENT) i.comments.push(text(o.value));
        else if (o.code === IF_NAME) i.name = text(o.value);
        else if (o.code === IF_DESCRIPTION) i.description = text(o.value);
        else if (o.code === IF_TSRESOL) i.tsresol = fixedLength(o, 1, "if_tsresol").getUint8(0);
        else if (o.code === IF_TSOFFSET) i.tsoffset = fixedLength(o, 8, "if_tsoffset").getBigInt64(0, le);
      }
      sectionInterfaces.push(file.interfaces.length);
      file.interfaces.push(i);
    } else if (type === BLOCK_EPB) {
      const id = v.getUint32(off + 8, le);
      if (id >= sectionInterfaces.length) malformed(off + 8, `interface id ${id}: the section declares ${sectionInterfaces.length} interfaces`);
      const index = sectionInterfaces[id];
      const iface = file.interfaces[index];
      const captured = v.getUint32(off + 20, le);
      const dataEnd = off + 28 + ((captured + 3) & ~3);
      if (captured > total - 32 || dataEnd > end) malformed(off + 20, `captured length ${captured} does not fit in a block of ${total} bytes`);
      const timestamp = (BigInt(v.getUint32(off + 12, le)) << 32n) | BigInt(v.getUint32(off + 16, le));
      const p: PcapngPacket = {
        interface: index, timestamp, timeNs: toNanoseconds(timestamp, iface.tsresol, iface.tsoffset),
        originalLength: v.getUint32(off + 24, le), data: b.slice(off + 28, off + 28 + captured), comments: [],
      };
      for (const o of readOptions(b, v, le, dataEnd, end)) {
        if (o.code === OPT_COMMENT) p.comments.push(text(o.value));
        else if (o.code === EPB_FLAGS) {
          p.flags = fixedLength(o, 4, "epb_flags").getUint32(0, le);
          const dir = p.flags & 3;
          if (dir === EPB_INBOUND) p.direction = "inbound";
          else if (dir === EPB_OUTBOUND) p.direction = "outbound";
        } else if (o.code === EPB_PACKETID) p.packetId = fixedLength(o, 8, "epb_packetid").getBigUint64(0, le);
        else if (o.code === EPB_QUEUE) p.queue = fixedLength(o, 4, "epb_queue").getUint32(0, le);
      }
      file.packets.push(p);
    } else {
      file.skipped++;
    }
    off += total;
  }
  return file;
}

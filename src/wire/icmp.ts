/**
 * ICMP for IPv4 (RFC 792): the header every message shares, and the two kinds tapnet sends:
 * echo (for tests) and destination unreachable, including "fragmentation needed" with the
 * next-hop MTU (RFC 1191).
 *
 *   0      1      2         4                 8
 *   | type | code | checksum | rest of header  | data
 */
import { get16, put16 } from "./bytes.ts";
import { internetChecksum } from "./checksum.ts";
import { Drop, type DropReason } from "./drop.ts";

export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CHECKSUM = 2;
export const ICMP_REST = 4;
export const ICMP_HEADER_LEN = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

export const UNREACH_NET = 0;
export const UNREACH_HOST = 1;
export const UNREACH_FRAG_NEEDED = 4;

export class IcmpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;

  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < ICMP_HEADER_LEN) return Drop.IcmpTruncated;
    this.buf = buf;
    this.off = off;
    this.len = len;
    return Drop.None;
  }

  get type(): number { return this.buf[this.off + ICMP_TYPE]; }
  get code(): number { return this.buf[this.off + ICMP_CODE]; }
  checksumValid(): boolean { return internetChecksum(this.buf, this.off, this.len) === 0; }
}

export interface IcmpRepr {
  type: number;
  code: number;
  /** Bytes 4-7: identifier and sequence for echo; unused and next-hop MTU for unreachable. */
  rest: number;
  data: Uint8Array;
}

export function parseIcmp(msg: Uint8Array): IcmpRepr | DropReason {
  const v = new IcmpView();
  const r = v.wrap(msg, 0, msg.length);
  if (r !== Drop.None) return r;
  return {
    type: v.type, code: v.code,
    rest: ((get16(msg, ICMP_REST) << 16) >>> 0) + get16(msg, ICMP_REST + 2),
    data: msg.slice(ICMP_HEADER_LEN),
  };
}

/** Writes the message with its checksum; returns its length. */
export function emitIcmp(repr: IcmpRepr, buf: Uint8Array, off: number): number {
  buf[off + ICMP_TYPE] = repr.type;
  buf[off + ICMP_CODE] = repr.code;
  put16(buf, off + ICMP_CHECKSUM, 0);
  put16(buf, off + ICMP_REST, repr.rest >>> 16);
  put16(buf, off + ICMP_REST + 2, repr.rest & 0xffff);
  buf.set(repr.data, off + ICMP_HEADER_LEN);
  const len = ICMP_HEADER_LEN + repr.data.length;
  put16(buf, off + ICMP_CHECKSUM, internetChecksum(buf, off, len));
  return len;
}

/**
 * ICMP for IPv4 (RFC 792): the header every message shares, and the two kinds tapnet sends:
 * echo (for tests) and destination unreachable, including "fragmentation needed" with the
 * next-hop MTU (RFC 1191).
 *
 *   0      1      2         4                 8
 *   | type | code | checksum | rest of header  | data
 *
 * `writeIcmpError` lays a whole error frame (Ethernet, IPv4, ICMP, quote) for the hot path.
 */
import { copyBytes, get16, get32, put16, put32 } from "./bytes.ts";
import { internetChecksum } from "./checksum.ts";
import { Drop, type DropReason } from "./drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC, ETH_TYPE, ETHERTYPE_IPV4 } from "./ethernet.ts";
import {
  IPV4_CHECKSUM, IPV4_DST, IPV4_FLAGS_FRAG, IPV4_ID, IPV4_MIN_HEADER_LEN, IPV4_PROTOCOL, IPV4_SRC, IPV4_TOS,
  IPV4_TOTAL_LEN, IPV4_TTL, IPV4_VER_IHL, PROTO_ICMP,
} from "./ipv4.ts";
import { macHi, macLo, putMac } from "./mac.ts";

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
export const UNREACH_PORT = 3;
export const UNREACH_FRAG_NEEDED = 4;

/** RFC 792: an error quotes the offending datagram's IP header and the first 8 bytes after it. */
export const ICMP_QUOTE_DATA = 8;

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

/**
 * Writes at buf[ethOff..] an ICMP error about the IPv4 packet framed at orig[origEthOff..]
 * (untagged: its header at origEthOff + 14, already checked by Ipv4View), back to its sender:
 * Ethernet to the packet's source MAC from `srcHi`:`srcLo`; IPv4 from `srcIp` to the packet's
 * source, with identification `id`, TTL 64, no options and no flags; ICMP `type`, `code` and
 * the 32 bits after the checksum `rest` (the next-hop MTU for fragmentation needed), quoting the
 * packet's IP header and first ICMP_QUOTE_DATA bytes of payload, no more than its total length.
 * Both checksums are filled in. Everything is read from the packet before it is overwritten,
 * so `buf` may be `orig` at the same offset (the quote then moves 28 bytes forward). Returns
 * the bytes written: 42 and the quote.
 */
export function writeIcmpError(buf: Uint8Array, ethOff: number, orig: Uint8Array, origEthOff: number,
  type: number, code: number, rest: number, srcIp: number, srcHi: number, srcLo: number, id: number): number {
  const o = origEthOff + ETH_HEADER_LEN;
  const toHi = macHi(orig, origEthOff + ETH_SRC);
  const toLo = macLo(orig, origEthOff + ETH_SRC);
  const toIp = get32(orig, o + IPV4_SRC);
  const headerLen = (orig[o + IPV4_VER_IHL] & 0x0f) * 4;
  const origTotal = get16(orig, o + IPV4_TOTAL_LEN);
  const quote = origTotal < headerLen + ICMP_QUOTE_DATA ? origTotal : headerLen + ICMP_QUOTE_DATA;
  const ip = ethOff + ETH_HEADER_LEN;
  const icmp = ip + IPV4_MIN_HEADER_LEN;
  // The quote first: in place, it lies where the headers go.
  copyBytes(buf, icmp + ICMP_HEADER_LEN, orig, o, quote);

  putMac(buf, ethOff + ETH_DST, toHi, toLo);
  putMac(buf, ethOff + ETH_SRC, srcHi, srcLo);
  put16(buf, ethOff + ETH_TYPE, ETHERTYPE_IPV4);

  const total = IPV4_MIN_HEADER_LEN + ICMP_HEADER_LEN + quote;
  buf[ip + IPV4_VER_IHL] = 0x45;
  buf[ip + IPV4_TOS] = 0;
  put16(buf, ip + IPV4_TOTAL_LEN, total);
  put16(buf, ip + IPV4_ID, id);
  put16(buf, ip + IPV4_FLAGS_FRAG, 0);
  buf[ip + IPV4_TTL] = 64;
  buf[ip + IPV4_PROTOCOL] = PROTO_ICMP;
  put16(buf, ip + IPV4_CHECKSUM, 0);
  put32(buf, ip + IPV4_SRC, srcIp);
  put32(buf, ip + IPV4_DST, toIp);
  put16(buf, ip + IPV4_CHECKSUM, internetChecksum(buf, ip, IPV4_MIN_HEADER_LEN));

  buf[icmp + ICMP_TYPE] = type;
  buf[icmp + ICMP_CODE] = code;
  put16(buf, icmp + ICMP_CHECKSUM, 0);
  put32(buf, icmp + ICMP_REST, rest);
  put16(buf, icmp + ICMP_CHECKSUM, internetChecksum(buf, icmp, ICMP_HEADER_LEN + quote));
  return ETH_HEADER_LEN + total;
}

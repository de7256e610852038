/**
 * IPv4 headers (RFC 791), and IPv4 addresses as 32-bit unsigned integers.
 *
 *   0        1        2        3
 *   |ver ihl | tos    | total length    |
 *   | identification  |flg fragment off |
 *   | ttl    | proto  | header checksum |
 *   | source address                    |
 *   | destination address               |
 *   | options (ihl > 5) ...             |
 */
import { get16, get32, put16, put32 } from "./bytes.ts";
import { checksumUpdate16, internetChecksum } from "./checksum.ts";
import { Drop, type DropReason } from "./drop.ts";

export const IPV4_VER_IHL = 0;
export const IPV4_TOS = 1;
export const IPV4_TOTAL_LEN = 2;
export const IPV4_ID = 4;
export const IPV4_FLAGS_FRAG = 6;
export const IPV4_TTL = 8;
export const IPV4_PROTOCOL = 9;
export const IPV4_CHECKSUM = 10;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;
export const IPV4_MIN_HEADER_LEN = 20;

export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export class Ipv4View {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  headerLen = 0;
  /** The total length field: header and payload, excluding any Ethernet padding. */
  totalLen = 0;

  /** `len` is what the frame holds from `off`; it may exceed the total length (padding). */
  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < IPV4_MIN_HEADER_LEN) return Drop.Ipv4Truncated;
    const vi = buf[off];
    if (vi >> 4 !== 4) return Drop.Ipv4BadVersion;
    const hl = (vi & 0x0f) * 4;
    if (hl < IPV4_MIN_HEADER_LEN || hl > len) return Drop.Ipv4BadHeaderLen;
    const total = get16(buf, off + IPV4_TOTAL_LEN);
    if (total < hl || total > len) return Drop.Ipv4BadTotalLen;
    this.buf = buf;
    this.off = off;
    this.headerLen = hl;
    this.totalLen = total;
    return Drop.None;
  }

  get src(): number { return get32(this.buf, this.off + IPV4_SRC); }
  get dst(): number { return get32(this.buf, this.off + IPV4_DST); }
  get ttl(): number { return this.buf[this.off + IPV4_TTL]; }
  get protocol(): number { return this.buf[this.off + IPV4_PROTOCOL]; }
  get flagsFrag(): number { return get16(this.buf, this.off + IPV4_FLAGS_FRAG); }
  get dontFragment(): boolean { return (this.flagsFrag & IPV4_FLAG_DF) !== 0; }
  /** True for every fragment but a whole datagram's only one. */
  get isFragment(): boolean { return (this.flagsFrag & (IPV4_FLAG_MF | 0x1fff)) !== 0; }
  get payloadOff(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.totalLen - this.headerLen; }

  checksumValid(): boolean {
    return internetChecksum(this.buf, this.off, this.headerLen) === 0;
  }

  /** Decrements the TTL, updating the checksum incrementally (RFC 1624). Returns the new TTL. */
  decrementTtl(): number {
    const b = this.buf;
    const o = this.off;
    const oldWord = get16(b, o + IPV4_TTL);
    b[o + IPV4_TTL] = b[o + IPV4_TTL] - 1;
    const newWord = get16(b, o + IPV4_TTL);
    put16(b, o + IPV4_CHECKSUM, checksumUpdate16(get16(b, o + IPV4_CHECKSUM), oldWord, newWord));
    return b[o + IPV4_TTL];
  }
}

export interface Ipv4Repr {
  tos: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  /** Bytes after the header, up to the total length. */
  payloadLen: number;
  checksum: number;
}

export function parseIpv4(packet: Uint8Array): Ipv4Repr | DropReason {
  const v = new Ipv4View();
  const r = v.wrap(packet, 0, packet.length);
  if (r !== Drop.None) return r;
  if (!v.checksumValid()) return Drop.Ipv4BadChecksum;
  const ff = v.flagsFrag;
  return {
    tos: packet[IPV4_TOS], id: get16(packet, IPV4_ID),
    dontFragment: (ff & IPV4_FLAG_DF) !== 0, moreFragments: (ff & IPV4_FLAG_MF) !== 0,
    fragmentOffset: (ff & 0x1fff) * 8, ttl: v.ttl, protocol: v.protocol,
    src: formatIpv4(v.src), dst: formatIpv4(v.dst), payloadLen: v.payloadLen,
    checksum: get16(packet, IPV4_CHECKSUM),
  };
}

/** Writes a 20-byte header (no options) with its checksum; returns 20. `checksum` is ignored. */
export function emitIpv4(repr: Omit<Ipv4Repr, "checksum">, buf: Uint8Array, off: number): number {
  const src = parseIpv4Address(repr.src);
  const dst = parseIpv4Address(repr.dst);
  if (src === undefined || dst === undefined) throw new Error(`bad address in ${JSON.stringify(repr)}`);
  buf[off + IPV4_VER_IHL] = 0x45;
  buf[off + IPV4_TOS] = repr.tos;
  put16(buf, off + IPV4_TOTAL_LEN, IPV4_MIN_HEADER_LEN + repr.payloadLen);
  put16(buf, off + IPV4_ID, repr.id);
  put16(buf, off + IPV4_FLAGS_FRAG,
    (repr.dontFragment ? IPV4_FLAG_DF : 0) | (repr.moreFragments ? IPV4_FLAG_MF : 0) | (repr.fragmentOffset / 8));
  buf[off + IPV4_TTL] = repr.ttl;
  buf[off + IPV4_PROTOCOL] = repr.protocol;
  put16(buf, off + IPV4_CHECKSUM, 0);
  put32(buf, off + IPV4_SRC, src);
  put32(buf, off + IPV4_DST, dst);
  put16(buf, off + IPV4_CHECKSUM, internetChecksum(buf, off, IPV4_MIN_HEADER_LEN));
  return IPV4_MIN_HEADER_LEN;
}

/** "10.244.1.2" → 0x0af40102; undefined unless four decimal octets 0-255 without leading zeros. */
export function parseIpv4Address(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i];
    if (part.length > 1 && part[0] === "0") return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

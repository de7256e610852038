/**
 * The TCP header fields a switch looks at (RFC 9293): ports, sequence numbers, header length
 * and flags. tapnet never terminates TCP; it reads these to trace, to split super-frames into
 * segments, and to check them.
 *
 *   0          2          4          8          12        13      14       16         18
 *   | src port | dst port | seq      | ack      |off|rsvd | flags | window | checksum | urg |
 */
import { get16, get32, put16, put32 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";

export const TCP_SRC_PORT = 0;
export const TCP_DST_PORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
export const TCP_DATA_OFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CHECKSUM = 16;
export const TCP_URGENT = 18;
export const TCP_MIN_HEADER_LEN = 20;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK_FLAG = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export class TcpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  headerLen = 0;

  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < TCP_MIN_HEADER_LEN) return Drop.TcpTruncated;
    const hl = (buf[off + TCP_DATA_OFF] >> 4) * 4;
    if (hl < TCP_MIN_HEADER_LEN || hl > len) return Drop.TcpBadHeaderLen;
    this.buf = buf;
    this.off = off;
    this.headerLen = hl;
    return Drop.None;
  }

  get srcPort(): number { return get16(this.buf, this.off + TCP_SRC_PORT); }
  get dstPort(): number { return get16(this.buf, this.off + TCP_DST_PORT); }
  get seq(): number { return get32(this.buf, this.off + TCP_SEQ); }
  get ack(): number { return get32(this.buf, this.off + TCP_ACK); }
  get flags(): number { return this.buf[this.off + TCP_FLAGS]; }
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  checksum: number;
  urgent: number;
  /** Option bytes, as they are. */
  options: Uint8Array;
}

export function parseTcp(segment: Uint8Array): TcpRepr | DropReason {
  const v = new TcpView();
  const r = v.wrap(segment, 0, segment.length);
  if (r !== Drop.None) return r;
  return {
    srcPort: v.srcPort, dstPort: v.dstPort, seq: v.seq, ack: v.ack, flags: v.flags,
    window: get16(segment, TCP_WINDOW), checksum: get16(segment, TCP_CHECKSUM),
    urgent: get16(segment, TCP_URGENT), options: segment.slice(TCP_MIN_HEADER_LEN, v.headerLen),
  };
}

/** Writes the header as given (checksum included, not computed); returns its length. */
export function emitTcp(repr: TcpRepr, buf: Uint8Array, off: number): number {
  if (repr.options.length % 4) throw new Error("TCP options must fill whole 32-bit words");
  const hl = TCP_MIN_HEADER_LEN + repr.options.length;
  put16(buf, off + TCP_SRC_PORT, repr.srcPort);
  put16(buf, off + TCP_DST_PORT, repr.dstPort);
  put32(buf, off + TCP_SEQ, repr.seq);
  put32(buf, off + TCP_ACK, repr.ack);
  buf[off + TCP_DATA_OFF] = (hl / 4) << 4;
  buf[off + TCP_FLAGS] = repr.flags;
  put16(buf, off + TCP_WINDOW, repr.window);
  put16(buf, off + TCP_CHECKSUM, repr.checksum);
  put16(buf, off + TCP_URGENT, repr.urgent);
  buf.set(repr.options, off + TCP_MIN_HEADER_LEN);
  return hl;
}

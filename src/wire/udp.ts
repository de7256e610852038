/**
 * UDP headers (RFC 768).
 *
 *   0          2          4        6          8
 *   | src port | dst port | length | checksum | payload
 */
import { get16, put16 } from "./bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "./checksum.ts";
import { Drop, type DropReason } from "./drop.ts";
import { PROTO_UDP } from "./ipv4.ts";

export const UDP_SRC_PORT = 0;
export const UDP_DST_PORT = 2;
export const UDP_LENGTH = 4;
export const UDP_CHECKSUM = 6;
export const UDP_HEADER_LEN = 8;

export class UdpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  /** The length field: header and payload. */
  length = 0;

  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < UDP_HEADER_LEN) return Drop.UdpTruncated;
    const l = get16(buf, off + UDP_LENGTH);
    if (l < UDP_HEADER_LEN || l > len) return Drop.UdpBadLength;
    this.buf = buf;
    this.off = off;
    this.length = l;
    return Drop.None;
  }

  get srcPort(): number { return get16(this.buf, this.off + UDP_SRC_PORT); }
  get dstPort(): number { return get16(this.buf, this.off + UDP_DST_PORT); }
  get checksum(): number { return get16(this.buf, this.off + UDP_CHECKSUM); }
  get payloadOff(): number { return this.off + UDP_HEADER_LEN; }
  get payloadLen(): number { return this.length - UDP_HEADER_LEN; }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export function parseUdp(datagram: Uint8Array): UdpRepr | DropReason {
  const v = new UdpView();
  const r = v.wrap(datagram, 0, datagram.length);
  if (r !== Drop.None) return r;
  return { srcPort: v.srcPort, dstPort: v.dstPort, payload: datagram.slice(UDP_HEADER_LEN, v.length) };
}

/**
 * Writes header and payload; with addresses given, fills the checksum over the IPv4
 * pseudo-header, else leaves it 0 (allowed for UDP over IPv4, and what VXLAN senders do).
 */
export function emitUdp(repr: UdpRepr, buf: Uint8Array, off: number, addrs?: { src: number; dst: number }): number {
  const len = UDP_HEADER_LEN + repr.payload.length;
  put16(buf, off + UDP_SRC_PORT, repr.srcPort);
  put16(buf, off + UDP_DST_PORT, repr.dstPort);
  put16(buf, off + UDP_LENGTH, len);
  put16(buf, off + UDP_CHECKSUM, 0);
  buf.set(repr.payload, off + UDP_HEADER_LEN);
  if (addrs) {
    const c = internetChecksum(buf, off, len, pseudoHeaderSum(addrs.src, addrs.dst, PROTO_UDP, len));
    put16(buf, off + UDP_CHECKSUM, c === 0 ? 0xffff : c);
  }
  return len;
}

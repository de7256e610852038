/**
 * Receive coalescing for the udp and vxlan backends: what the kernel's GRO does for a NIC,
 * done on the TCP segments of one UDP_GRO read. Their senders cut every super-frame into
 * segments the size of the tunnel; written to a pod's TAP one by one, each would cost a write
 * and a trip through the pod's TCP. Consecutive segments of one flow are instead written as one
 * TSO super-frame: a head (virtio_net_hdr asking for GSO_TCPV4 at the segments' size, Ethernet,
 * the first segment's IPv4 and TCP headers with the whole length) and the segments' payloads
 * where they lie in the receive buffer (a FrameTail: one writev, nothing copied).
 *
 * The router decides what may be offered (verified, for a local pod, plain TCP data); this
 * class decides what continues the run, as Linux's tcp_gro_receive does: same addresses,
 * ports, TOS, DF, TTL, ACK, window and TCP options; the next sequence number; payloads of the
 * first one's size, a shorter one or one with PSH ending the run.
 *
 *   head:  | virtio_net_hdr (NEEDS_CSUM, GSO_TCPV4, gso_size) | eth | ipv4 (total length) | tcp (pseudo-header sum) |
 *   tail:  payload 1 | payload 2 | ... (in the receive buffer)
 */
import { get16, get32, put16 } from "../wire/bytes.ts";
import { fold, pseudoHeaderSum, sumWords } from "../wire/checksum.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { IPV4_CHECKSUM, IPV4_TOTAL_LEN, PROTO_TCP } from "../wire/ipv4.ts";
import { TCP_ACK, TCP_CHECKSUM, TCP_DATA_OFF, TCP_FLAGS, TCP_PSH, TCP_SEQ, TCP_WINDOW } from "../wire/tcp.ts";
import { ETH_OFF, GSO_TCPV4, VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_SIZE, VNET_GSO_TYPE, VNET_HDR_LEN_FIELD } from "../wire/virtio.ts";
import type { FrameTail } from "../tunnel/tapnet.ts";

/** Segments merged into one frame at most (the TAP writer's iovecs: the head and 64 pieces). */
export const COALESCE_MAX_SEGMENTS = 64;
const IP_HEADER = 20; // only IPv4 without options is coalesced
const MAX_IP_LEN = 65535;

export class TcpCoalescer {
  /** The merged frame's headers, built by `finish` (off V8's heap: over 64 bytes). */
  readonly head = new Uint8Array(ETH_OFF + ETH_HEADER_LEN + IP_HEADER + 60);
  readonly tail: FrameTail = { buf: new Uint8Array(0), headLen: 0, offs: new Int32Array(COALESCE_MAX_SEGMENTS), lens: new Int32Array(COALESCE_MAX_SEGMENTS), count: 0 };
  /** Segments in the run; 0 when there is none. */
  count = 0;
  /** Bytes of the datagrams the run's segments came in (for the tunnel's counters). */
  datagramBytes = 0;
  /** Where the run's first segment's IPv4 header lies, and its datagram. */
  firstIp = 0;
  firstDatagram = 0;
  firstDatagramLen = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private tcpHl = 0;
  private gsoSize = 0;
  private payload = 0;
  private nextSeq = 0;
  /** A shorter segment, or one with PSH, ends the run: nothing may follow it. */
  closed = false;

  /**
   * Does the TCP segment whose IPv4 header (20 bytes, no options) is at buf[ip..] continue the
   * run? Only the fields that must match are compared; the caller has verified the rest.
   */
  fits(buf: Uint8Array, ip: number): boolean {
    if (this.count === 0 || this.closed || this.count === COALESCE_MAX_SEGMENTS || buf !== this.buf) return false;
    const f = this.firstIp;
    const b = this.buf;
    const tcp = ip + IP_HEADER;
    const hl = (buf[tcp + TCP_DATA_OFF] >> 4) * 4;
    if (hl !== this.tcpHl) return false;
    const pay = get16(buf, ip + IPV4_TOTAL_LEN) - IP_HEADER - hl;
    if (pay <= 0 || pay > this.gsoSize || IP_HEADER + hl + this.payload + pay > MAX_IP_LEN) return false;
    if (get32(buf, tcp + TCP_SEQ) !== this.nextSeq) return false;
    // TOS (1), DF (6), TTL (8), protocol (9), addresses (12..20); ports; ACK; flags but PSH; window; options
    if (buf[ip + 1] !== b[f + 1] || ((buf[ip + 6] ^ b[f + 6]) & 0x40) !== 0 || buf[ip + 8] !== b[f + 8] || buf[ip + 9] !== b[f + 9]) return false;
    for (let i = 12; i < IP_HEADER; i++) if (buf[ip + i] !== b[f + i]) return false;
    const ft = f + IP_HEADER;
    if (get32(buf, tcp) !== get32(b, ft) || get32(buf, tcp + TCP_ACK) !== get32(b, ft + TCP_ACK)) return false;
    if ((buf[tcp + TCP_FLAGS] & ~TCP_PSH) !== (b[ft + TCP_FLAGS] & ~TCP_PSH) || get16(buf, tcp + TCP_WINDOW) !== get16(b, ft + TCP_WINDOW)) return false;
    for (let i = 20; i < hl; i++) if (buf[tcp + i] !== b[ft + i]) return false;
    return true;
  }

  /** Starts a run with the segment at buf[ip..], from the datagram at buf[datagram..] of `datagramLen` bytes. */
  start(buf: Uint8Array, ip: number, datagram: number, datagramLen: number): void {
    this.buf = buf;
    this.firstIp = ip;
    this.firstDatagram = datagram;
    this.firstDatagramLen = datagramLen;
    this.tcpHl = (buf[ip + IP_HEADER + TCP_DATA_OFF] >> 4) * 4;
    this.gsoSize = get16(buf, ip + IPV4_TOTAL_LEN) - IP_HEADER - this.tcpHl;
    this.count = 0;
    this.payload = 0;
    this.datagramBytes = 0;
    this.closed = false;
    this.nextSeq = get32(buf, ip + IP_HEADER + TCP_SEQ);
    this.tail.buf = buf;
    this.add(buf, ip, datagramLen);
  }

  /** Adds the segment at buf[ip..] (it `fits`), from a datagram of `datagramLen` bytes. */
  add(buf: Uint8Array, ip: number, datagramLen: number): void {
    const tcp = ip + IP_HEADER;
    const pay = get16(buf, ip + IPV4_TOTAL_LEN) - IP_HEADER - this.tcpHl;
    this.tail.offs[this.count] = tcp + this.tcpHl;
    this.tail.lens[this.count] = pay;
    this.count++;
    this.payload += pay;
    this.datagramBytes += datagramLen;
    this.nextSeq = (this.nextSeq + pay) >>> 0;
    if (pay < this.gsoSize || (buf[tcp + TCP_FLAGS] & TCP_PSH) !== 0) this.closed = true;
  }

  /**
   * Writes the merged frame's headers into `head` (Ethernet from `ethDst` to `ethSrc`, 6 bytes
   * each at their offsets, TTL one less) and readies `tail`; returns the frame's length, its
   * virtio_net_hdr included. The run is over after it (count 0).
   */
  finish(macs: Uint8Array, macsOff: number): number {
    const h = this.head;
    const b = this.buf;
    const f = this.firstIp;
    const ipo = ETH_OFF + ETH_HEADER_LEN;
    const tcpo = ipo + IP_HEADER;
    const hl = this.tcpHl;
    const tcpLen = hl + this.payload;
    h.fill(0, 0, ETH_OFF);
    h[0] = VNET_F_NEEDS_CSUM;
    h[VNET_GSO_TYPE] = GSO_TCPV4;
    put16le(h, VNET_HDR_LEN_FIELD, ETH_HEADER_LEN + IP_HEADER + hl);
    put16le(h, VNET_GSO_SIZE, this.gsoSize);
    put16le(h, VNET_CSUM_START, ETH_HEADER_LEN + IP_HEADER);
    put16le(h, VNET_CSUM_OFFSET, TCP_CHECKSUM);
    for (let i = 0; i < 12; i++) h[ETH_OFF + i] = macs[macsOff + i];
    put16(h, ETH_OFF + ETH_TYPE, ETHERTYPE_IPV4);
    for (let i = 0; i < IP_HEADER + hl; i++) h[ipo + i] = b[f + i];
    put16(h, ipo + IPV4_TOTAL_LEN, IP_HEADER + tcpLen);
    h[ipo + 8]--; // TTL: the caller checked it is over 1
    h[ipo + IPV4_CHECKSUM] = 0;
    h[ipo + IPV4_CHECKSUM + 1] = 0;
    put16(h, ipo + IPV4_CHECKSUM, ~fold(sumWords(h, ipo, IP_HEADER)) & 0xffff);
    // The last segment's PSH, as the sender's stack set it.
    const lastTcp = this.tail.offs[this.count - 1] - hl;
    h[tcpo + TCP_FLAGS] |= b[lastTcp + TCP_FLAGS] & TCP_PSH;
    // NEEDS_CSUM: the field holds the pseudo-header sum, the rest is the offloads' (Linux's form).
    put16(h, tcpo + TCP_CHECKSUM, fold(pseudoHeaderSum(get32(h, ipo + 12), get32(h, ipo + 16), PROTO_TCP, tcpLen)));
    const t = this.tail;
    t.headLen = tcpo + hl;
    t.count = this.count;
    this.count = 0;
    return t.headLen + this.payload;
  }
}

function put16le(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = v >> 8;
}

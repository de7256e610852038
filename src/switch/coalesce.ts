/**
 * Receive coalescing for the udp and vxlan backends: what the kernel's GRO does for a NIC,
 * done on the TCP segments of one UDP_GRO read. Their senders cut every super-frame into
 * segments the size of the tunnel; written to a pod's TAP one by one, each would cost a write
 * and a trip through the pod's TCP. Consecutive segments of one flow are instead written as one
 * TSO super-frame: a head (virtio_net_hdr asking for GSO_TCPV4 at the segments' size, Ethernet,
 * the first segment's IPv4 and TCP headers with the whole length) and the segments' payloads
 * where they lie in the receive buffer (a FrameTail: one writev, nothing copied).
 *
 * The merge stage decides what may be offered (verified, for a local pod, plain TCP data);
 * this class decides what continues the run, as Linux's tcp_gro_receive does: same addresses,
 * ports, TOS, DF, TTL, ACK, window and TCP options; the next sequence number; payloads of the
 * first one's size, a shorter one or one with PSH ending the run.
 *
 *   head:  | virtio_net_hdr (NEEDS_CSUM, GSO_TCPV4, gso_size) | eth | ipv4 (total length) | tcp (pseudo-header sum) |
 *   tail:  payload 1 | payload 2 | ... (in the receive buffer)
 */
import { get16, get32, put16, putLe16 } from "../wire/bytes.ts";
import { fold, pseudoHeaderSum, sumWords } from "../wire/checksum.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { IPV4_CHECKSUM, IPV4_DST, IPV4_FLAGS_FRAG, IPV4_PROTOCOL, IPV4_SRC, IPV4_TOS, IPV4_TOTAL_LEN, IPV4_TTL, PROTO_TCP } from "../wire/ipv4.ts";
import { TCP_ACK, TCP_CHECKSUM, TCP_DATA_OFF, TCP_FLAGS, TCP_PSH, TCP_SEQ, TCP_WINDOW } from "../wire/tcp.ts";
import { ETH_OFF, GSO_TCPV4, VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_SIZE, VNET_GSO_TYPE, VNET_HDR_LEN_FIELD } from "../wire/virtio.ts";
import type { FrameTail } from "../tunnel/contract.ts";
import { newTail } from "./frames.ts";

/** Segments merged into one frame at most (the TAP writer's iovecs: the head and 64 pieces). */
export const COALESCE_MAX_SEGMENTS = 64;
const IP_HEADER = 20; // only IPv4 without options is coalesced
const MAX_IP_LEN = 65535;

export class TcpCoalescer {
  /** Segments in the run; 0 when there is none. */
  count = 0;
  /** A shorter segment, or one with PSH, ends the run: nothing may follow it. */
  closed = false;
  /** The first segment's IPv4 and TCP headers, copied: the merged frame's are made of them. */
  private readonly first = new Uint8Array(IP_HEADER + 60);
  /** The payloads, where they lie: all in one buffer (one read from the tunnel). */
  private readonly pieces: FrameTail = newTail(COALESCE_MAX_SEGMENTS);
  private tcpHl = 0;
  private gsoSize = 0;
  private payload = 0;
  private nextSeq = 0;
  private lastPsh = 0;

  /**
   * Does the TCP segment whose IPv4 header (20 bytes, no options) is at h[ip..], and whose
   * payload lies in `pay`, continue the run? Only the fields that must match are compared; the
   * caller has verified the rest.
   */
  fits(h: Uint8Array, ip: number, pay: Uint8Array): boolean {
    if (this.count === 0 || this.closed || this.count === COALESCE_MAX_SEGMENTS || pay !== this.pieces.buf) return false;
    const b = this.first;
    const tcp = ip + IP_HEADER;
    const hl = (h[tcp + TCP_DATA_OFF] >> 4) * 4;
    if (hl !== this.tcpHl) return false;
    const len = get16(h, ip + IPV4_TOTAL_LEN) - IP_HEADER - hl;
    if (len <= 0 || len > this.gsoSize || IP_HEADER + hl + this.payload + len > MAX_IP_LEN) return false;
    if (get32(h, tcp + TCP_SEQ) !== this.nextSeq) return false;
    // TOS (1), DF (6), TTL (8), protocol (9), addresses (12..20); ports; ACK; flags but PSH; window; options
    if (h[ip + IPV4_TOS] !== b[IPV4_TOS] || ((h[ip + IPV4_FLAGS_FRAG] ^ b[IPV4_FLAGS_FRAG]) & 0x40) !== 0 ||
      h[ip + IPV4_TTL] !== b[IPV4_TTL] || h[ip + IPV4_PROTOCOL] !== b[IPV4_PROTOCOL]) return false;
    for (let i = IPV4_SRC; i < IP_HEADER; i++) if (h[ip + i] !== b[i]) return false;
    const ft = IP_HEADER;
    if (get32(h, tcp) !== get32(b, ft) || get32(h, tcp + TCP_ACK) !== get32(b, ft + TCP_ACK)) return false;
    if ((h[tcp + TCP_FLAGS] & ~TCP_PSH) !== (b[ft + TCP_FLAGS] & ~TCP_PSH) || get16(h, tcp + TCP_WINDOW) !== get16(b, ft + TCP_WINDOW)) return false;
    for (let i = 20; i < hl; i++) if (h[tcp + i] !== b[ft + i]) return false;
    return true;
  }

  /** Starts a run with the segment whose headers are at h[ip..] and payload at pay[payOff..]. */
  start(h: Uint8Array, ip: number, pay: Uint8Array, payOff: number): void {
    this.tcpHl = (h[ip + IP_HEADER + TCP_DATA_OFF] >> 4) * 4;
    for (let i = 0; i < IP_HEADER + this.tcpHl; i++) this.first[i] = h[ip + i];
    this.gsoSize = get16(h, ip + IPV4_TOTAL_LEN) - IP_HEADER - this.tcpHl;
    this.count = 0;
    this.payload = 0;
    this.closed = false;
    this.nextSeq = get32(h, ip + IP_HEADER + TCP_SEQ);
    this.pieces.buf = pay;
    this.add(h, ip, payOff);
  }

  /** Adds the segment whose headers are at h[ip..] (it `fits`) and payload at payOff in the run's buffer. */
  add(h: Uint8Array, ip: number, payOff: number): void {
    const tcp = ip + IP_HEADER;
    const len = get16(h, ip + IPV4_TOTAL_LEN) - IP_HEADER - this.tcpHl;
    this.pieces.offs[this.count] = payOff;
    this.pieces.lens[this.count] = len;
    this.count++;
    this.payload += len;
    this.nextSeq = (this.nextSeq + len) >>> 0;
    this.lastPsh = h[tcp + TCP_FLAGS] & TCP_PSH;
    if (len < this.gsoSize || this.lastPsh !== 0) this.closed = true;
  }

  /**
   * Writes the merged frame into `head` (virtio_net_hdr asking for GSO_TCPV4, an Ethernet header
   * whose MACs are the deliverer's to set, the IPv4 and TCP headers) and `tail` (the payloads);
   * returns the frame's length, its virtio_net_hdr included. The run is over after it (count 0).
   */
  finish(head: Uint8Array, tail: FrameTail): number {
    const h = head;
    const b = this.first;
    const ipo = ETH_OFF + ETH_HEADER_LEN;
    const tcpo = ipo + IP_HEADER;
    const hl = this.tcpHl;
    const tcpLen = hl + this.payload;
    h.fill(0, 0, ipo);
    h[0] = VNET_F_NEEDS_CSUM;
    h[VNET_GSO_TYPE] = GSO_TCPV4;
    putLe16(h, VNET_HDR_LEN_FIELD, ETH_HEADER_LEN + IP_HEADER + hl);
    putLe16(h, VNET_GSO_SIZE, this.gsoSize);
    putLe16(h, VNET_CSUM_START, ETH_HEADER_LEN + IP_HEADER);
    putLe16(h, VNET_CSUM_OFFSET, TCP_CHECKSUM);
    put16(h, ETH_OFF + ETH_TYPE, ETHERTYPE_IPV4);
    for (let i = 0; i < IP_HEADER + hl; i++) h[ipo + i] = b[i];
    put16(h, ipo + IPV4_TOTAL_LEN, IP_HEADER + tcpLen);
    h[ipo + IPV4_CHECKSUM] = 0;
    h[ipo + IPV4_CHECKSUM + 1] = 0;
    put16(h, ipo + IPV4_CHECKSUM, ~fold(sumWords(h, ipo, IP_HEADER)) & 0xffff);
    // The last segment's PSH, as the sender's stack set it.
    h[tcpo + TCP_FLAGS] |= this.lastPsh;
    // NEEDS_CSUM: the field holds the pseudo-header sum, the rest is the offloads' (Linux's form).
    put16(h, tcpo + TCP_CHECKSUM, fold(pseudoHeaderSum(get32(h, ipo + IPV4_SRC), get32(h, ipo + IPV4_DST), PROTO_TCP, tcpLen)));
    const p = this.pieces;
    tail.buf = p.buf;
    tail.headLen = tcpo + hl;
    tail.count = this.count;
    for (let k = 0; k < this.count; k++) {
      tail.offs[k] = p.offs[k];
      tail.lens[k] = p.lens[k];
    }
    this.count = 0;
    return tail.headLen + this.payload;
  }
}

/**
 * Address and port translation (NAT) of IPv4 packets in place, with every checksum the change
 * touches updated incrementally (RFC 1624): nothing is summed again, nothing is allocated.
 *
 * A checksum covers a run of 16-bit words. When word m becomes m', a finished checksum HC
 * (complemented) becomes ~(~HC + ~m + m'), and a plain sum S (not complemented) becomes
 * S + ~m + m'. So each change is kept as a "delta", ~m + m' added up over the words that
 * changed, and applied once per checksum field. A field that does not change adds nothing.
 *
 * Which checksums cover what:
 *   - the IPv4 header checksum covers the addresses;
 *   - the TCP and UDP checksums cover the addresses (pseudo-header) and the ports. In "full"
 *     mode the field is a finished checksum; a UDP checksum of 0 means "none" and stays 0, and
 *     a UDP result of 0 is written 0xffff (0 would mean "none"). In "partial" mode (a frame from
 *     a TAP with virtio NEEDS_CSUM, see virtio.ts) the field holds the folded pseudo-header sum,
 *     not complemented, and whoever finishes it sums from the L4 header on, ports included: the
 *     address changes go into the field, the port changes do not;
 *   - the ICMP checksum covers the ICMP message only: for echo, the identifier. For an error,
 *     everything it quotes: the quoted addresses, ports and checksums.
 *
 * The offsets given must come from a packet FlowKeyView parsed without a drop (flow-key.ts):
 * nothing here checks bounds again.
 */
import { get16, get32, put16, put32 } from "./bytes.ts";
import { fold } from "./checksum.ts";
import { ICMP_CHECKSUM, ICMP_HEADER_LEN, ICMP_REST } from "./icmp.ts";
import {
  IPV4_CHECKSUM, IPV4_DST, IPV4_PROTOCOL, IPV4_SRC, IPV4_TOTAL_LEN, IPV4_VER_IHL, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
} from "./ipv4.ts";
import { TCP_CHECKSUM, TCP_DST_PORT, TCP_SRC_PORT } from "./tcp.ts";
import { UDP_CHECKSUM } from "./udp.ts";

/** Writes `v` as the 16-bit word at `o`; returns the delta (~old + new), 0 if unchanged. */
function set16(buf: Uint8Array, o: number, v: number): number {
  const old = get16(buf, o);
  if (old === v) return 0;
  put16(buf, o, v);
  return (~old & 0xffff) + v;
}

/** Writes `v` as the 32-bit word at `o` (two 16-bit words); returns their delta, 0 if unchanged. */
function set32(buf: Uint8Array, o: number, v: number): number {
  const old = get32(buf, o);
  if (old === v) return 0;
  put32(buf, o, v);
  const n = ~old;
  return ((n >>> 16) & 0xffff) + (n & 0xffff) + (v >>> 16) + (v & 0xffff);
}

/**
 * Applies `delta` to the finished checksum at `o`. With `udp`, a field of 0 (no checksum) is
 * left alone and a result of 0 is written 0xffff. Returns the delta of the field's own change,
 * for a checksum that covers this one.
 */
function adjustFull(buf: Uint8Array, o: number, delta: number, udp: boolean): number {
  if (delta === 0) return 0;
  const old = get16(buf, o);
  if (udp && old === 0) return 0;
  let c = ~fold((~old & 0xffff) + delta) & 0xffff;
  if (udp && c === 0) c = 0xffff;
  return set16(buf, o, c);
}

/** Applies `delta` to the plain (not complemented) pseudo-header sum at `o`: partial mode. */
function adjustPartial(buf: Uint8Array, o: number, delta: number): void {
  if (delta === 0) return;
  put16(buf, o, fold(get16(buf, o) + delta));
}

/**
 * Sets the addresses of the IPv4 header at `ipOff` and updates its checksum. Returns the delta
 * of the address words, which the TCP/UDP pseudo-header covers too.
 */
function rewriteAddrs(buf: Uint8Array, ipOff: number, src: number, dst: number): number {
  const d = set32(buf, ipOff + IPV4_SRC, src) + set32(buf, ipOff + IPV4_DST, dst);
  adjustFull(buf, ipOff + IPV4_CHECKSUM, d, false);
  return d;
}

/**
 * Sets only the IPv4 source and destination, with the header checksum: for a fragment other
 * than the first, or a protocol whose payload covers no address (FlowKind Fragment, Other).
 */
export function natRewriteAddrs(buf: Uint8Array, ipOff: number, src: number, dst: number): void {
  rewriteAddrs(buf, ipOff, src, dst);
}

/**
 * Makes the packet at `ipOff` go from src:sport to dst:dport. `l4Off` and `proto` as
 * FlowKeyView gave them. For TCP and UDP, `partial` says the L4 checksum field holds a
 * NEEDS_CSUM pseudo-header sum rather than a finished checksum. For ICMP echo, `sport` is the
 * identifier and `dport` is ignored (it is the ICMP type, which NAT never changes). For another
 * protocol only the addresses change.
 */
export function natRewrite(buf: Uint8Array, ipOff: number, l4Off: number, proto: number, src: number, sport: number,
  dst: number, dport: number, partial: boolean): void {
  const addr = rewriteAddrs(buf, ipOff, src, dst);
  if (proto === PROTO_TCP || proto === PROTO_UDP) {
    const ports = set16(buf, l4Off + TCP_SRC_PORT, sport) + set16(buf, l4Off + TCP_DST_PORT, dport);
    const co = l4Off + (proto === PROTO_TCP ? TCP_CHECKSUM : UDP_CHECKSUM);
    if (partial) adjustPartial(buf, co, addr);
    else adjustFull(buf, co, addr + ports, proto === PROTO_UDP);
  } else if (proto === PROTO_ICMP) {
    adjustFull(buf, l4Off + ICMP_CHECKSUM, set16(buf, l4Off + ICMP_REST, sport), false);
  }
}

/**
 * Translates an ICMP error (FlowKind IcmpError) at `ipOff`: the outer packet goes from
 * outerSrc to outerDst, and the datagram it quotes becomes qSrc:qSport -> qDst:qDport (for a
 * quoted echo, qSport is the identifier and qDport is ignored). Updates the outer IPv4
 * checksum, the quoted IPv4 header's checksum, the quoted TCP or UDP checksum when the quote
 * holds it (a quoted UDP checksum of 0 stays 0), the quoted echo's checksum, and the ICMP
 * checksum over all of the quote's changes.
 */
export function natRewriteIcmpError(buf: Uint8Array, ipOff: number, outerSrc: number, outerDst: number,
  qSrc: number, qSport: number, qDst: number, qDport: number): void {
  rewriteAddrs(buf, ipOff, outerSrc, outerDst);
  const end = ipOff + get16(buf, ipOff + IPV4_TOTAL_LEN);
  const icmp = ipOff + (buf[ipOff + IPV4_VER_IHL] & 0x0f) * 4;
  const q = icmp + ICMP_HEADER_LEN;
  const ql4 = q + (buf[q + IPV4_VER_IHL] & 0x0f) * 4;
  const qProto = buf[q + IPV4_PROTOCOL];
  // Every word changed inside the ICMP message adds to `inner`, for the ICMP checksum. They
  // all lie at even offsets from the ICMP header, as header lengths are multiples of 4.
  const addrs = set32(buf, q + IPV4_SRC, qSrc) + set32(buf, q + IPV4_DST, qDst);
  let inner = addrs + adjustFull(buf, q + IPV4_CHECKSUM, addrs, false);
  if (qProto === PROTO_TCP || qProto === PROTO_UDP) {
    const ports = set16(buf, ql4 + TCP_SRC_PORT, qSport) + set16(buf, ql4 + TCP_DST_PORT, qDport);
    inner += ports;
    const co = ql4 + (qProto === PROTO_TCP ? TCP_CHECKSUM : UDP_CHECKSUM);
    if (co + 2 <= end) inner += adjustFull(buf, co, addrs + ports, qProto === PROTO_UDP);
  } else if (qProto === PROTO_ICMP) {
    const id = set16(buf, ql4 + ICMP_REST, qSport);
    inner += id + adjustFull(buf, ql4 + ICMP_CHECKSUM, id, false);
  }
  adjustFull(buf, icmp + ICMP_CHECKSUM, inner, false);
}

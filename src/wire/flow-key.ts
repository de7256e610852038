/**
 * The flow key of an IPv4 packet, for connection tracking: protocol, addresses and ports.
 * `FlowKeyView.parse` reads one packet into the view's numeric fields, allocating nothing, and
 * returns Drop.None or why the packet is malformed. The fields are valid only after Drop.None.
 *
 * What `kind` a packet gets, and what its ports are:
 *   - Plain: TCP and UDP (sport, dport from the header; tcpFlags for TCP), and ICMP echo
 *     request (8) and reply (0), whose sport is the identifier and dport the ICMP type.
 *   - IcmpError: destination unreachable, source quench, redirect, time exceeded and parameter
 *     problem. src, dst and proto are the outer packet's, sport and dport are 0; the q* fields
 *     hold the quoted packet's tuple as Plain would give it (TCP/UDP ports, or echo id and
 *     type), and qIpOff where its IPv4 header starts. An error quoting anything else (another
 *     protocol, another ICMP type, a fragment other than the first) cannot be matched to a flow:
 *     it is kind Other.
 *   - Fragment: a fragment other than the first (fragment offset not 0), any protocol. It
 *     carries no L4 header, so none is read: sport and dport are 0.
 *   - Other: any other protocol or ICMP type; sport and dport are 0.
 *
 * Checks: the IPv4 header as Ipv4View.wrap checks it (the total length, not `len`, ends the
 * packet: `len` may include Ethernet padding), a TCP header as TcpView.wrap does, a UDP header
 * of 8 bytes whose length field is at least 8 and, unless the packet is a first fragment, no
 * longer than the packet; an ICMP header of 8 bytes. An error's quote must hold an IPv4
 * header (version 4, header length at least 20) and the 8 bytes after it: a short quote is
 * IcmpTruncated.
 */
import { get16, get32 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";
import {
  ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, ICMP_REST, ICMP_TIME_EXCEEDED, ICMP_TYPE,
} from "./icmp.ts";
import {
  IPV4_DST, IPV4_FLAG_MF, IPV4_FLAGS_FRAG, IPV4_MIN_HEADER_LEN, IPV4_PROTOCOL, IPV4_SRC, IPV4_VER_IHL, Ipv4View,
  PROTO_ICMP, PROTO_TCP, PROTO_UDP,
} from "./ipv4.ts";
import { TCP_DATA_OFF, TCP_DST_PORT, TCP_FLAGS, TCP_MIN_HEADER_LEN, TCP_SRC_PORT, TcpView } from "./tcp.ts";
import { UDP_DST_PORT, UDP_HEADER_LEN, UDP_LENGTH, UDP_SRC_PORT } from "./udp.ts";

export const FlowKind = { Plain: 0, IcmpError: 1, Fragment: 2, Other: 3 } as const;
export type FlowKind = (typeof FlowKind)[keyof typeof FlowKind];

/** The ICMP types that quote the datagram they are about (RFC 792). */
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_PARAMETER_PROBLEM = 12;

/** True for the ICMP types that are errors quoting a datagram: 3, 4, 5, 11, 12. */
export function isIcmpError(type: number): boolean {
  return type === ICMP_DEST_UNREACHABLE || type === ICMP_SOURCE_QUENCH || type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED || type === ICMP_PARAMETER_PROBLEM;
}

const FRAG_OFFSET_MASK = 0x1fff;

export class FlowKeyView {
  proto = 0;
  src = 0;
  dst = 0;
  sport = 0;
  dport = 0;
  kind: FlowKind = FlowKind.Other;
  /** The TCP flags byte (TCP_SYN, TCP_ACK_FLAG, …) of a Plain TCP packet; 0 otherwise. */
  tcpFlags = 0;
  /** Where the L4 header starts in buf (for IcmpError, the ICMP header). */
  l4Off = 0;
  /** The IPv4 total length: where the packet ends, ipOff + ipLen, padding left out. */
  ipLen = 0;
  /** The quoted packet's tuple, for IcmpError; 0 otherwise. */
  qProto = 0;
  qSrc = 0;
  qDst = 0;
  qSport = 0;
  qDport = 0;
  /** Where the quoted IPv4 header starts in buf, for IcmpError; 0 otherwise. */
  qIpOff = 0;

  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();

  /**
   * Reads the IPv4 packet of `len` bytes at buf[ipOff..]; see the header comment. `held`: how
   * many of them lie in buf (a super-frame's head holds its headers, the rest lies in pieces
   * elsewhere): the headers read must be within those.
   */
  parse(buf: Uint8Array, ipOff: number, len: number, held = len): DropReason {
    if (ipOff < 0 || held > len || held > buf.length - ipOff) return Drop.Ipv4Truncated;
    if (held < len && held < IPV4_MIN_HEADER_LEN) return Drop.Ipv4Truncated;
    const ip = this.ip;
    const r = ip.wrap(buf, ipOff, len);
    if (r !== Drop.None) return r;
    if (ip.headerLen > held) return Drop.Ipv4Truncated;
    const proto = buf[ipOff + IPV4_PROTOCOL];
    const ff = get16(buf, ipOff + IPV4_FLAGS_FRAG);
    const l4Off = ipOff + ip.headerLen;
    const l4Len = ip.totalLen - ip.headerLen;
    // What of the L4 part is in buf, to read headers from.
    const l4Held = Math.min(held, ip.totalLen) - ip.headerLen;
    this.proto = proto;
    this.src = get32(buf, ipOff + IPV4_SRC);
    this.dst = get32(buf, ipOff + IPV4_DST);
    this.sport = 0;
    this.dport = 0;
    this.tcpFlags = 0;
    this.l4Off = l4Off;
    this.ipLen = ip.totalLen;
    this.qProto = 0;
    this.qSrc = 0;
    this.qDst = 0;
    this.qSport = 0;
    this.qDport = 0;
    this.qIpOff = 0;
    if ((ff & FRAG_OFFSET_MASK) !== 0) {
      this.kind = FlowKind.Fragment;
      return Drop.None;
    }
    if (proto === PROTO_TCP) {
      if (l4Held < TCP_MIN_HEADER_LEN) return Drop.TcpTruncated;
      const t = this.tcp.wrap(buf, l4Off, l4Len);
      if (t !== Drop.None) return t;
      if ((buf[l4Off + TCP_DATA_OFF] >> 4) * 4 > l4Held) return Drop.TcpTruncated;
      this.sport = get16(buf, l4Off + TCP_SRC_PORT);
      this.dport = get16(buf, l4Off + TCP_DST_PORT);
      this.tcpFlags = buf[l4Off + TCP_FLAGS];
      this.kind = FlowKind.Plain;
      return Drop.None;
    }
    if (proto === PROTO_UDP) {
      if (l4Len < UDP_HEADER_LEN || l4Held < UDP_HEADER_LEN) return Drop.UdpTruncated;
      const ul = get16(buf, l4Off + UDP_LENGTH);
      // A first fragment holds only part of the datagram its length field counts.
      if (ul < UDP_HEADER_LEN || (ul > l4Len && (ff & IPV4_FLAG_MF) === 0)) return Drop.UdpBadLength;
      this.sport = get16(buf, l4Off + UDP_SRC_PORT);
      this.dport = get16(buf, l4Off + UDP_DST_PORT);
      this.kind = FlowKind.Plain;
      return Drop.None;
    }
    if (proto === PROTO_ICMP) {
      if (l4Len < ICMP_HEADER_LEN || l4Held < ICMP_HEADER_LEN) return Drop.IcmpTruncated;
      const type = buf[l4Off + ICMP_TYPE];
      if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
        this.sport = get16(buf, l4Off + ICMP_REST);
        this.dport = type;
        this.kind = FlowKind.Plain;
        return Drop.None;
      }
      if (isIcmpError(type)) return this.parseQuote(buf, l4Off + ICMP_HEADER_LEN, l4Held - ICMP_HEADER_LEN);
    }
    this.kind = FlowKind.Other;
    return Drop.None;
  }

  /** Reads the datagram an ICMP error quotes: `len` bytes at `off`. */
  private parseQuote(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < IPV4_MIN_HEADER_LEN) return Drop.IcmpTruncated;
    const vi = buf[off + IPV4_VER_IHL];
    if (vi >> 4 !== 4) return Drop.Ipv4BadVersion;
    const hl = (vi & 0x0f) * 4;
    if (hl < IPV4_MIN_HEADER_LEN) return Drop.Ipv4BadHeaderLen;
    if (hl + 8 > len) return Drop.IcmpTruncated;
    const proto = buf[off + IPV4_PROTOCOL];
    const l4 = off + hl;
    this.kind = FlowKind.Other;
    if ((get16(buf, off + IPV4_FLAGS_FRAG) & FRAG_OFFSET_MASK) !== 0) return Drop.None;
    if (proto === PROTO_TCP || proto === PROTO_UDP) {
      // TCP and UDP both start with the two ports.
      this.qSport = get16(buf, l4);
      this.qDport = get16(buf, l4 + 2);
    } else if (proto === PROTO_ICMP) {
      const type = buf[l4 + ICMP_TYPE];
      if (type !== ICMP_ECHO_REQUEST && type !== ICMP_ECHO_REPLY) return Drop.None;
      this.qSport = get16(buf, l4 + ICMP_REST);
      this.qDport = type;
    } else {
      return Drop.None;
    }
    this.kind = FlowKind.IcmpError;
    this.qProto = proto;
    this.qSrc = get32(buf, off + IPV4_SRC);
    this.qDst = get32(buf, off + IPV4_DST);
    this.qIpOff = off;
    return Drop.None;
  }
}

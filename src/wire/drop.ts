/**
 * Why a frame was dropped. Parsers return one of these instead of throwing: on the hot path a
 * malformed frame is a counted drop, never an exception. `DROP_NAMES` is the counter name of
 * each, in order; the switch keeps one counter per port per reason.
 */
export const Drop = {
  None: 0,
  /** Shorter than an Ethernet header. */
  EthRunt: 1,
  /** An 802.1Q/802.1ad tag cut short. */
  EthVlanTruncated: 2,
  /** Source MAC is multicast or broadcast: no station sends from a group address. */
  EthBadSource: 3,
  /** The destination is on the port the frame came in on: a bridge filters it. */
  SamePort: 4,
  ArpTruncated: 5,
  ArpUnsupported: 6,
  Ipv4Truncated: 7,
  Ipv4BadVersion: 8,
  Ipv4BadHeaderLen: 9,
  Ipv4BadTotalLen: 10,
  Ipv4BadChecksum: 11,
  IcmpTruncated: 12,
  UdpTruncated: 13,
  UdpBadLength: 14,
  TcpTruncated: 15,
  TcpBadHeaderLen: 16,
  VnetHdrTruncated: 17,
  /** Writing to the output port failed (its queue full, or the device gone). */
  TxError: 18,
  /** The output port was removed while the frame was in flight. */
  NoPort: 19,
  /** A super-frame of a kind not segmented here: TCPv6, UFO, anything over IPv6, an unknown gso_type. */
  GsoUnsupported: 20,
  /** A super-frame whose headers parse but do not fit its gso_type (wrong protocol, an IP fragment, not IP). */
  GsoMalformed: 21,
  /** A super-frame with gso_size 0. */
  GsoBadSize: 22,
  /** A segment would not fit the wire (maxSegmentFrame) or the output buffer. */
  GsoTooBig: 23,
  /** NEEDS_CSUM with csum_start/csum_offset pointing outside the frame. */
  CsumBadOffset: 24,
  /** A VXLAN datagram shorter than its header and an inner Ethernet header. */
  VxlanTruncated: 25,
  /** A VXLAN header without the I flag (no valid VNI). */
  VxlanBadFlags: 26,
  /** A VXLAN header with another VNI than the cluster's. */
  VxlanWrongVni: 27,
  /** An inner frame addressed to another VTEP MAC than this node's. */
  VxlanNotForUs: 28,
  /** A tunnel datagram whose inner packet is not IPv4. */
  TunnelNotIpv4: 29,
  /** A tunnel datagram from an address that is no other node of the cluster. */
  TunnelUnknownPeer: 30,
  /** A tunnel datagram whose inner source is a cluster address of another node than the sender. */
  TunnelSpoofed: 31,
  /** A tunnel datagram for an address that is not this node's to deliver. */
  TunnelNotLocal: 32,
  /** Sent to a VTEP MAC but for no remote pod CIDR. */
  NoRoute: 33,
  /** For a cluster address no node owns: ICMP destination unreachable sent back. */
  ClusterUnreachable: 34,
  /** DF set and larger than the tunnel MTU: ICMP fragmentation needed sent back. */
  FragNeeded: 35,
  /** Larger than the tunnel MTU without DF: tapnet does not fragment. */
  TooBig: 36,
  /** TTL would reach 0: ICMP time exceeded sent back (when it came from a port). */
  TtlExpired: 37,
  /** For a pod whose MAC is not known yet: an ARP request was sent. */
  NeighUnresolved: 38,
  /** The inner TCP/UDP checksum of a tunnel datagram is wrong (and not merely left partial). */
  TunnelBadChecksum: 39,
  /** A tapnet-format datagram no longer than its header. */
  TapnetTruncated: 40,
  /** A tapnet-format datagram of another version. */
  TapnetBadVersion: 41,
  /** A tapnet-format chunk that does not fit its frame, or a frame over 64 KB. */
  TapnetBadChunk: 42,
  /** A frame whose chunks did not all arrive, in order, before the next frame began. */
  TapnetIncomplete: 43,
} as const;

export type DropReason = (typeof Drop)[keyof typeof Drop];

export const DROP_NAMES: readonly string[] = [
  "none", "eth_runt", "eth_vlan_truncated", "eth_bad_source", "same_port",
  "arp_truncated", "arp_unsupported", "ipv4_truncated", "ipv4_bad_version",
  "ipv4_bad_header_len", "ipv4_bad_total_len", "ipv4_bad_checksum", "icmp_truncated",
  "udp_truncated", "udp_bad_length", "tcp_truncated", "tcp_bad_header_len",
  "vnet_hdr_truncated", "tx_error", "no_port",
  "gso_unsupported", "gso_malformed", "gso_bad_size", "gso_too_big", "csum_bad_offset",
  "vxlan_truncated", "vxlan_bad_flags", "vxlan_wrong_vni", "vxlan_not_for_us", "tunnel_not_ipv4",
  "tunnel_unknown_peer", "tunnel_spoofed", "tunnel_not_local", "no_route", "cluster_unreachable",
  "frag_needed", "too_big", "ttl_expired", "neigh_unresolved", "tunnel_bad_checksum",
  "tapnet_truncated", "tapnet_bad_version", "tapnet_bad_chunk", "tapnet_incomplete",
];

export const DROP_REASON_COUNT = DROP_NAMES.length;

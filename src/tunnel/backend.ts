/**
 * Tunnel backends: how a routed IPv4 packet travels to another node inside UDP. Each backend
 * turns a frame in a slot into a datagram in place, and a received datagram back into a frame,
 * without copying: the slot keeps room before the Ethernet header for the headers a backend
 * adds (see `recvOff`), and the space the virtio_net_hdr used is free once a frame is routed.
 *
 * Slot layout (ETH_OFF = 10, the virtio_net_hdr's length):
 *
 *   udp     [ vnet 10 ][ eth 14 ][ IPv4 ... ]        the datagram is the IPv4 packet
 *                               ^ datagram
 *   vxlan   [2][ vxlan 8 ][ eth 14 ][ IPv4 ... ]     the datagram is VXLAN + inner Ethernet
 *              ^ datagram
 */
import type { BackendType } from "../control/config.ts";
import type { DropReason } from "../wire/drop.ts";

/** Where the Ethernet header sits in a slot: after a virtio_net_hdr. */
export const ETH_OFF = 10;

export interface PeerMacs {
  /** VTEP MAC of each node, by node index, as hi (2 bytes) and lo (4 bytes). */
  vtepHi: Uint16Array;
  vtepLo: Uint32Array;
  self: number;
}

export interface TunnelBackend {
  readonly type: BackendType;
  /** Bytes of tunnel headers between the outer UDP header and the inner IPv4 packet. */
  readonly overhead: number;
  /** Offset in a slot at which to receive a datagram so that its frame lands at ETH_OFF. */
  readonly recvOff: number;
  /**
   * Makes a datagram for node `peer` of the frame at buf[ethOff..], an Ethernet header then an
   * IPv4 packet of `ipLen` bytes. Returns the datagram's offset; it ends where the packet does.
   */
  encapsulate(buf: Uint8Array, ethOff: number, ipLen: number, peer: number): number;
  /**
   * Checks the datagram of `len` bytes received at buf[recvOff..] and leaves an Ethernet header
   * at ETH_OFF whose EtherType is IPv4 (the MACs are the router's to set). Returns a drop reason.
   */
  decapsulate(buf: Uint8Array, len: number): DropReason;
  /** Bytes of the IPv4 packet in a decapsulated datagram of `len` bytes. */
  innerLen(len: number): number;
}

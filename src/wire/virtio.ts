/**
 * struct virtio_net_hdr (virtio spec 5.1.6; linux/virtio_net.h), the 10 bytes a TAP opened with
 * IFF_VNET_HDR puts before every frame. It lets a frame be a TCP "super-frame" of up to 64 KB
 * (gso_type, gso_size: cut it into segments of gso_size later) with a checksum left partial
 * (NEEDS_CSUM: the sum of everything from csum_start belongs at csum_start + csum_offset).
 * Little-endian, unlike everything else on the wire. On a TAP, csum_start counts from the
 * start of the Ethernet frame.
 *
 *   0     1        2         4         6          8
 *   |flags|gso_type| hdr_len | gso_size| csum_start| csum_offset |
 */
import { getLe16, putLe16 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";

export const VNET_FLAGS = 0;
export const VNET_GSO_TYPE = 1;
export const VNET_HDR_LEN_FIELD = 2;
export const VNET_GSO_SIZE = 4;
export const VNET_CSUM_START = 6;
export const VNET_CSUM_OFFSET = 8;
/** Where a TAP frame's Ethernet header starts: after its virtio_net_hdr (10 bytes). */
export const ETH_OFF = 10;

export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;

export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_UDP = 3;
export const GSO_TCPV6 = 4;
export const GSO_UDP_L4 = 5;
export const GSO_ECN = 0x80;

export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function parseVirtioNetHdr(b: Uint8Array, off = 0): VirtioNetHdr | DropReason {
  if (b.length - off < ETH_OFF) return Drop.VnetHdrTruncated;
  return {
    flags: b[off + VNET_FLAGS], gsoType: b[off + VNET_GSO_TYPE],
    hdrLen: getLe16(b, off + VNET_HDR_LEN_FIELD), gsoSize: getLe16(b, off + VNET_GSO_SIZE),
    csumStart: getLe16(b, off + VNET_CSUM_START), csumOffset: getLe16(b, off + VNET_CSUM_OFFSET),
  };
}

export function emitVirtioNetHdr(h: VirtioNetHdr, b: Uint8Array, off: number): number {
  b[off + VNET_FLAGS] = h.flags;
  b[off + VNET_GSO_TYPE] = h.gsoType;
  putLe16(b, off + VNET_HDR_LEN_FIELD, h.hdrLen);
  putLe16(b, off + VNET_GSO_SIZE, h.gsoSize);
  putLe16(b, off + VNET_CSUM_START, h.csumStart);
  putLe16(b, off + VNET_CSUM_OFFSET, h.csumOffset);
  return ETH_OFF;
}

/** The gso_type byte of a header at `off`, for the hot path. */
export function vnetGsoType(b: Uint8Array, off: number): number {
  return b[off + VNET_GSO_TYPE] & ~GSO_ECN;
}

/**
 * The VXLAN header (RFC 7348): 8 bytes in a UDP datagram (port 8472 on Linux and flannel,
 * 4789 by IANA), then the inner Ethernet frame.
 *
 *   0       1              4                  7        8
 *   | flags | reserved (3) | VNI (24 bits)    | rsvd   |
 *
 * flags must have the I bit (0x08) set: the VNI is valid. Everything reserved is sent as zero
 * and ignored on receipt.
 */
import { Drop, type DropReason } from "./drop.ts";

export const VXLAN_FLAGS = 0;
export const VXLAN_VNI = 4;
export const VXLAN_HEADER_LEN = 8;
export const VXLAN_FLAG_I = 0x08;

/** Writes the header at `off`. */
export function writeVxlanHeader(buf: Uint8Array, off: number, vni: number): void {
  buf[off] = VXLAN_FLAG_I;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = vni >>> 16;
  buf[off + 5] = (vni >>> 8) & 0xff;
  buf[off + 6] = vni & 0xff;
  buf[off + 7] = 0;
}

/** The VNI of the header at `off`, or a drop reason (negative-free: check `len` first). */
export function checkVxlanHeader(buf: Uint8Array, off: number, len: number, vni: number): DropReason {
  if (len < VXLAN_HEADER_LEN) return Drop.VxlanTruncated;
  if ((buf[off] & VXLAN_FLAG_I) === 0) return Drop.VxlanBadFlags;
  const got = (buf[off + 4] << 16) | (buf[off + 5] << 8) | buf[off + 6];
  if (got !== vni) return Drop.VxlanWrongVni;
  return Drop.None;
}

export interface VxlanRepr {
  vni: number;
}

export function parseVxlan(b: Uint8Array): VxlanRepr | DropReason {
  if (b.length < VXLAN_HEADER_LEN) return Drop.VxlanTruncated;
  if ((b[0] & VXLAN_FLAG_I) === 0) return Drop.VxlanBadFlags;
  return { vni: (b[4] << 16) | (b[5] << 8) | b[6] };
}

export function emitVxlan(repr: VxlanRepr, buf: Uint8Array, off: number): number {
  writeVxlanHeader(buf, off, repr.vni);
  return VXLAN_HEADER_LEN;
}

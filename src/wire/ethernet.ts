/**
 * Ethernet II frames, with 802.1Q and 802.1ad (QinQ) tags skipped to find the EtherType that
 * says what the payload is. No preamble and no FCS: Linux hands over neither.
 *
 *   0      6      12        14 (or 18, 22 with tags)
 *   | dst  | src  | type    | payload
 */
import { get16, put16 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";
import { formatMac, parseMac } from "./mac.ts";

export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const ETH_HEADER_LEN = 14;
export const VLAN_TAG_LEN = 4;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_IPV6 = 0x86dd;

/**
 * A view over one frame in a caller's buffer. `wrap` checks lengths once and returns a drop
 * reason; after a successful wrap every accessor is in bounds. One instance is reused for
 * every frame: it allocates nothing.
 */
export class EthernetView {
  buf: Uint8Array = new Uint8Array(0);
  /** Offset of the frame (destination MAC) in `buf`. */
  off = 0;
  len = 0;
  /** EtherType after any VLAN tags. */
  etherType = 0;
  /** Offset of the payload in `buf`, after any VLAN tags. */
  payloadOff = 0;
  vlanTags = 0;

  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < ETH_HEADER_LEN) return Drop.EthRunt;
    this.buf = buf;
    this.off = off;
    this.len = len;
    let typeOff = off + ETH_TYPE;
    let type = get16(buf, typeOff);
    let tags = 0;
    while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) {
      typeOff += VLAN_TAG_LEN;
      if (typeOff + 2 > off + len) return Drop.EthVlanTruncated;
      type = get16(buf, typeOff);
      tags++;
    }
    this.etherType = type;
    this.payloadOff = typeOff + 2;
    this.vlanTags = tags;
    return Drop.None;
  }

  get payloadLen(): number {
    return this.off + this.len - this.payloadOff;
  }
}

/** A frame's header as a plain object, for tests, traces and code off the hot path. */
export interface EthernetRepr {
  dst: string;
  src: string;
  /** VLAN IDs of the tags, outermost first. */
  vlans: number[];
  etherType: number;
}

export function parseEthernet(frame: Uint8Array): EthernetRepr | DropReason {
  const v = new EthernetView();
  const r = v.wrap(frame, 0, frame.length);
  if (r !== Drop.None) return r;
  const vlans: number[] = [];
  for (let i = 0; i < v.vlanTags; i++) vlans.push(get16(frame, ETH_HEADER_LEN + i * VLAN_TAG_LEN) & 0x0fff);
  return { dst: formatMac(frame, ETH_DST), src: formatMac(frame, ETH_SRC), vlans, etherType: v.etherType };
}

/** Writes the header at `off`; returns its length (the payload goes right after). */
export function emitEthernet(repr: EthernetRepr, buf: Uint8Array, off: number): number {
  const dst = parseMac(repr.dst);
  const src = parseMac(repr.src);
  if (!dst || !src) throw new Error(`bad MAC in ${JSON.stringify(repr)}`);
  buf.set(dst, off + ETH_DST);
  buf.set(src, off + ETH_SRC);
  let o = off + ETH_TYPE;
  for (const vid of repr.vlans) {
    put16(buf, o, ETHERTYPE_VLAN);
    put16(buf, o + 2, vid & 0x0fff);
    o += VLAN_TAG_LEN;
  }
  put16(buf, o, repr.etherType);
  return o + 2 - off;
}

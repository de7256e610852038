/**
 * The `vxlan` backend, wire-compatible with Linux VXLAN as flannel's vxlan backend sets it up
 * (RFC 7348, default port 8472, VNI 1). The inner Ethernet frame goes from the sending node's
 * VTEP MAC to the receiving node's, as a Linux node with a `flannel.1` device, permanent
 * neighbour entries and FDB entries expects. Pod MTU = underlay MTU - 50.
 */
import { Drop, type DropReason } from "../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { macHi, macLo } from "../wire/mac.ts";
import { checkVxlanHeader, VXLAN_HEADER_LEN, writeVxlanHeader } from "../wire/vxlan.ts";
import { ETH_OFF, type PeerMacs, type TunnelBackend } from "./backend.ts";

export class VxlanBackend implements TunnelBackend {
  readonly type = "vxlan" as const;
  readonly overhead = VXLAN_HEADER_LEN + ETH_HEADER_LEN;
  readonly recvOff = ETH_OFF - VXLAN_HEADER_LEN;

  constructor(readonly vni: number, readonly macs: PeerMacs) {}

  encapsulate(buf: Uint8Array, ethOff: number, _ipLen: number, peer: number): number {
    const { vtepHi, vtepLo, self } = this.macs;
    putMac(buf, ethOff, vtepHi[peer], vtepLo[peer]);
    putMac(buf, ethOff + 6, vtepHi[self], vtepLo[self]);
    writeVxlanHeader(buf, ethOff - VXLAN_HEADER_LEN, this.vni);
    return ethOff - VXLAN_HEADER_LEN;
  }

  decapsulate(buf: Uint8Array, len: number): DropReason {
    const r = checkVxlanHeader(buf, this.recvOff, len, this.vni);
    if (r !== Drop.None) return r;
    if (len < VXLAN_HEADER_LEN + ETH_HEADER_LEN) return Drop.VxlanTruncated;
    const { vtepHi, vtepLo, self } = this.macs;
    if (macHi(buf, ETH_OFF) !== vtepHi[self] || macLo(buf, ETH_OFF) !== vtepLo[self]) return Drop.VxlanNotForUs;
    if (buf[ETH_OFF + ETH_TYPE] !== ETHERTYPE_IPV4 >> 8 || buf[ETH_OFF + ETH_TYPE + 1] !== (ETHERTYPE_IPV4 & 0xff)) return Drop.TunnelNotIpv4;
    return Drop.None;
  }

  innerLen(len: number): number {
    return len - VXLAN_HEADER_LEN - ETH_HEADER_LEN;
  }
}

export function putMac(buf: Uint8Array, off: number, hi: number, lo: number): void {
  buf[off] = hi >>> 8;
  buf[off + 1] = hi & 0xff;
  buf[off + 2] = lo >>> 24;
  buf[off + 3] = (lo >>> 16) & 0xff;
  buf[off + 4] = (lo >>> 8) & 0xff;
  buf[off + 5] = lo & 0xff;
}

/**
 * The `vxlan` backend, wire-compatible with Linux VXLAN as flannel's vxlan backend sets it up
 * (RFC 7348, default port 8472, VNI 1). The inner Ethernet frame goes from the sending node's
 * VTEP MAC to the receiving node's, as a Linux node with a `flannel.1` device, permanent
 * neighbour entries and FDB entries expects. Pod MTU = underlay MTU - 50.
 *
 *   slot:  [2][ vxlan 8 ][ eth 14 ][ IPv4 ... ]   sent from the VXLAN header, written over the
 *             ^ recvOff = 2                        virtio_net_hdr; received at recvOff = 2
 */
import { Drop } from "../wire/drop.ts";
import { TunnelDrop } from "./drops.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { macHi, macLo, putMac } from "../wire/mac.ts";
import { checkVxlanHeader, VXLAN_HEADER_LEN, writeVxlanHeader } from "../wire/vxlan.ts";
import type { BackendInfo } from "./index.ts";
import type { FrameSink } from "./contract.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import { innerFrame } from "./inner.ts";
import { PacketBackend } from "./packet.ts";

export class VxlanBackend extends PacketBackend {
  readonly name = "vxlan";
  readonly recvOff = ETH_OFF - VXLAN_HEADER_LEN;

  /** Writes the VXLAN header before the Ethernet header at buf[eth..] and the VTEP MACs in it. */
  protected encapsulate(buf: Uint8Array, eth: number, peer: number): number {
    const { vtepHi, vtepLo, self } = this.ctx;
    putMac(buf, eth, vtepHi[peer], vtepLo[peer]);
    putMac(buf, eth + 6, vtepHi[self], vtepLo[self]);
    writeVxlanHeader(buf, eth - VXLAN_HEADER_LEN, this.ctx.vni);
    return eth - VXLAN_HEADER_LEN;
  }

  datagram(buf: Uint8Array, at: number, len: number, first: boolean, _peer: number, sink: FrameSink): void {
    const { vtepHi, vtepLo, self } = this.ctx;
    const r = checkVxlanHeader(buf, at, len, this.ctx.vni);
    const eth = at + VXLAN_HEADER_LEN;
    if (r !== Drop.None) sink.drop(r);
    else if (len < VXLAN_HEADER_LEN + ETH_HEADER_LEN) sink.drop(Drop.VxlanTruncated);
    else if (macHi(buf, eth) !== vtepHi[self] || macLo(buf, eth) !== vtepLo[self]) sink.drop(TunnelDrop.VxlanNotForUs);
    else if (buf[eth + ETH_TYPE] !== ETHERTYPE_IPV4 >> 8 || buf[eth + ETH_TYPE + 1] !== (ETHERTYPE_IPV4 & 0xff)) sink.drop(TunnelDrop.TunnelNotIpv4);
    else innerFrame(buf, eth + ETH_HEADER_LEN, len - VXLAN_HEADER_LEN - ETH_HEADER_LEN, eth, first, sink);
  }
}

export const vxlanBackend: BackendInfo = {
  name: "vxlan",
  port: 8472,
  // RFC 7348: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
  overhead: 50,
  vni: true,
  about: "Ethernet in VXLAN (RFC 7348), as flannel's vxlan backend",
  create: (ctx) => new VxlanBackend(ctx),
};

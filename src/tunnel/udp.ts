/**
 * The `udp` backend, wire-compatible with flannel's: the UDP payload is the inner IPv4 packet
 * itself, with no header of its own (default port 8285). Pod MTU = underlay MTU - 28.
 *
 *   slot:  [ vnet 10 ][ eth 14 ][ IPv4 ... ]     sent: the IPv4 packet; received at recvOff = 24
 */
import { TunnelDrop } from "./drops.ts";
import { ETH_HEADER_LEN } from "../wire/ethernet.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import type { FrameSink } from "./contract.ts";
import type { BackendInfo } from "./index.ts";
import { innerFrame } from "./inner.ts";
import { PacketBackend } from "./packet.ts";

export class UdpBackend extends PacketBackend {
  readonly name = "udp";
  readonly recvOff = ETH_OFF + ETH_HEADER_LEN;

  /** The datagram is the packet itself. */
  protected encapsulate(_buf: Uint8Array, eth: number): number {
    return eth + ETH_HEADER_LEN;
  }

  datagram(buf: Uint8Array, at: number, len: number, first: boolean, _peer: number, sink: FrameSink): void {
    if (len < 1 || buf[at] >> 4 !== 4) sink.drop(TunnelDrop.TunnelNotIpv4);
    else innerFrame(buf, at, len, -1, first, sink);
  }
}

export const udpBackend: BackendInfo = {
  name: "udp",
  port: 8285,
  // The inner IPv4 packet is the UDP payload: outer IPv4 20 + UDP 8.
  overhead: 28,
  vni: false,
  about: "IPv4 in UDP, as flannel's udp backend",
  create: (ctx) => new UdpBackend(ctx),
};

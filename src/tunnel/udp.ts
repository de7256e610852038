/**
 * The `udp` backend, wire-compatible with flannel's: the UDP payload is the inner IPv4 packet
 * itself, with no header of its own (default port 8285). Pod MTU = underlay MTU - 28.
 */
import { Drop, type DropReason } from "../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { ETH_OFF, type TunnelBackend } from "./backend.ts";

export class UdpBackend implements TunnelBackend {
  readonly type = "udp" as const;
  readonly overhead = 0;
  readonly recvOff = ETH_OFF + ETH_HEADER_LEN;

  encapsulate(_buf: Uint8Array, ethOff: number): number {
    return ethOff + ETH_HEADER_LEN;
  }

  decapsulate(buf: Uint8Array, len: number): DropReason {
    if (len < 1 || buf[this.recvOff] >> 4 !== 4) return Drop.TunnelNotIpv4;
    buf[ETH_OFF + ETH_TYPE] = ETHERTYPE_IPV4 >> 8;
    buf[ETH_OFF + ETH_TYPE + 1] = ETHERTYPE_IPV4 & 0xff;
    return Drop.None;
  }

  innerLen(len: number): number {
    return len;
  }
}

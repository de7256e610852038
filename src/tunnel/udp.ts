/**
 * The `udp` backend, wire-compatible with flannel's: the UDP payload is the inner IPv4 packet
 * itself, with no header of its own (default port 8285). Pod MTU = underlay MTU - 28.
 *
 *   slot:  [ vnet 10 ][ eth 14 ][ IPv4 ... ]     sent: the IPv4 packet; received at recvOff = 24
 */
import { TunnelDrop } from "./drops.ts";
import { ETH_HEADER_LEN } from "../wire/ethernet.ts";
import type { BackendInfo } from "./index.ts";
import { type BackendContext, type FrameSink, type TunnelBackend } from "./contract.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import { eachDatagram, innerFrame, type DatagramReader } from "./inner.ts";
import { DatagramRun } from "./run.ts";

const IP_OFF = ETH_OFF + ETH_HEADER_LEN;

export class UdpBackend implements TunnelBackend, DatagramReader {
  readonly name = "udp";
  readonly recvOff = IP_OFF;
  readonly wholeFrames = false;
  readonly mergeReceived = true;
  private readonly run: DatagramRun;

  constructor(ctx: BackendContext) {
    this.run = new DatagramRun(ctx.out, ctx.segmenting, ctx.events);
  }

  send(buf: Uint8Array, off: number, len: number, peer: number): number {
    const d = len - IP_OFF;
    this.run.open(peer, d);
    this.run.out.add(buf, off + IP_OFF, d);
    this.run.close(d);
    return 1;
  }

  sendSegment(hdr: Uint8Array, hdrOff: number, hdrLen: number, pay: Uint8Array, payOff: number, payLen: number, peer: number): void {
    const h = hdrLen - ETH_HEADER_LEN;
    this.run.open(peer, h + payLen);
    this.run.out.add(hdr, hdrOff + ETH_HEADER_LEN, h);
    if (payLen > 0) this.run.out.add(pay, payOff, payLen);
    this.run.close(h + payLen);
  }

  flush(): void {
    this.run.flush();
  }

  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number {
    return eachDatagram(this, buf, off, len, stride, peer, sink);
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

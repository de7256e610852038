/**
 * What the backends that carry one packet per datagram (udp, vxlan) have in common: they take
 * packets no larger than the pods' MTU (the switch cuts super-frames into segments for them),
 * wrap each in place in front of its Ethernet header (`encapsulate`, the one thing each does its
 * own way on the way out), gather the datagrams into runs (run.ts), and turn every datagram of
 * a read back into a frame (`datagram`, their own way in; inner.ts does the frame).
 */
import type { BackendContext, FrameSink, TunnelBackend } from "./contract.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import { eachDatagram, type DatagramReader } from "./inner.ts";
import { DatagramRun } from "./run.ts";

export abstract class PacketBackend implements TunnelBackend, DatagramReader {
  abstract readonly name: string;
  abstract readonly recvOff: number;
  readonly wholeFrames = false;
  readonly mergeReceived: boolean = true;
  protected readonly run: DatagramRun;

  constructor(protected readonly ctx: BackendContext) {
    this.run = new DatagramRun(ctx.out, ctx.segmenting, ctx.events);
  }

  /**
   * Makes the packet behind the Ethernet header at buf[eth..] a datagram for node `peer`,
   * writing what the backend adds in front of it or over the Ethernet header (there are 16
   * bytes of room before `eth`); returns where the datagram starts. It ends where the packet does.
   */
  protected abstract encapsulate(buf: Uint8Array, eth: number, peer: number): number;

  abstract datagram(buf: Uint8Array, at: number, len: number, first: boolean, peer: number, sink: FrameSink): void;

  send(buf: Uint8Array, off: number, len: number, peer: number): number {
    const d = this.encapsulate(buf, off + ETH_OFF, peer);
    this.run.datagram(peer, buf, d, off + len - d, buf, 0, 0);
    return 1;
  }

  sendSegment(hdr: Uint8Array, hdrOff: number, hdrLen: number, pay: Uint8Array, payOff: number, payLen: number, peer: number): void {
    const d = this.encapsulate(hdr, hdrOff, peer);
    this.run.datagram(peer, hdr, d, hdrOff + hdrLen - d, pay, payOff, payLen);
  }

  flush(): void {
    this.run.flush();
  }

  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number {
    return eachDatagram(this, buf, off, len, stride, peer, sink);
  }
}

/**
 * Where the datapath meets the kernel: the TAP ports' writes (a PortWriter) and the tunnel's
 * UDP socket (a GatherSink to send through, reads into the batch). Both go through a Libc, so
 * the datapath runs as well over tests' in-memory one (test/support/fake-libc.ts).
 */
import type { Libc } from "../io/libc.ts";
import { Iovecs } from "../io/iovec.ts";
import { enableUdpGro, enableUdpGso, GatherSender, GroReceiver, SOCKADDR_IN_LEN, sockaddrAddress, sockaddrIn } from "../io/udp.ts";
import { MAX_SEGMENTS_PER_SEND, type FrameTail } from "../tunnel/contract.ts";
import { TUNNEL, type Frames } from "./frames.ts";
import type { PortWriter } from "./stages/port-out.ts";

/** Writes frames to the TAPs: one write, or one writev of a head and its tail (FrameTail). */
export class TapWriter implements PortWriter {
  private readonly iov: Iovecs;

  constructor(private readonly libc: Libc, readonly fds: Int32Array) {
    this.iov = new Iovecs(libc, MAX_SEGMENTS_PER_SEND + 3);
  }

  write(port: number, buf: Uint8Array, off: number, len: number, tail: FrameTail | null): boolean {
    if (!tail && off === 0) return this.libc.write(this.fds[port], buf, len) === len;
    const iov = this.iov;
    iov.reset();
    iov.add(buf, off, tail ? Math.min(len, tail.headLen) : len);
    if (tail) for (let k = 0; k < tail.count && iov.total < len; k++) iov.add(tail.buf, tail.offs[k], Math.min(tail.lens[k], len - iov.total));
    return this.libc.writev(this.fds[port], iov.mem, iov.count) === len;
  }
}

/**
 * The tunnel's socket. With UDP_SEGMENT, one sendmsg carries up to 64 datagrams the kernel cuts
 * apart (see tunnel/run.ts); with UDP_GRO, one read returns a run of them. Where the kernel has
 * neither, a datagram per call still works. The socket's own segment size is the largest
 * datagram, so a send of one datagram is never cut.
 */
export class TunnelSocket {
  /** Where the backend sends: node i's sockaddr at peer i. Made anew by `setPeers`. */
  out: GatherSender;
  readonly segmenting: boolean;
  readonly gro: boolean;
  private groReceiver?: GroReceiver;
  private recvOff = 0;
  /** Each slot from the receive offset on, and (with GRO) its address. */
  private views: Uint8Array[] = [];
  private addrs: number[] = [];
  private readonly peerAddr = new Uint8Array(SOCKADDR_IN_LEN);
  private readonly peerAddrLen = new Uint8Array(4);

  constructor(private readonly libc: Libc, readonly fd: number, addresses: number[], private readonly port: number, datagramSize: number) {
    this.segmenting = enableUdpGso(libc, fd, datagramSize);
    this.out = this.sender(addresses);
    this.gro = enableUdpGro(libc, fd);
    if (this.gro) this.groReceiver = new GroReceiver(libc);
  }

  private sender(addresses: number[]): GatherSender {
    return new GatherSender(this.libc, this.fd, addresses.map((a) => sockaddrIn(a, this.port)), 2 * MAX_SEGMENTS_PER_SEND + 2, this.segmenting);
  }

  /**
   * The node list changed (membership.ts): sends go to these addresses from now on, node i's at
   * peer i, through a new `out` (a backend made with the old one must be made anew). The socket,
   * its options, the GRO receiver and the read views stay. Nothing may be gathered in the old one.
   */
  setPeers(addresses: number[]): void {
    this.out = this.sender(addresses);
  }

  /** Reads will go into these slots, each datagram at `recvOff` (the backend's). */
  readInto(slots: Uint8Array[], recvOff: number): void {
    this.recvOff = recvOff;
    this.views = slots.map((s) => s.subarray(recvOff));
    if (this.groReceiver) this.addrs = this.views.map((v) => this.libc.addressOf(v));
  }

  /**
   * Reads up to `budget` times into the batch's next slots: each read an entry from TUNNEL, its
   * sender's address in aux[i], its GRO segment size in strides[i]. Stops when the socket is
   * drained (EAGAIN) or on any other error, which the next round sees again.
   */
  read(batch: Frames, slots: Uint8Array[], budget: number): void {
    const gro = this.groReceiver;
    for (let n = 0; n < budget && !batch.full; n++) {
      const k = batch.count;
      const view = this.views[k];
      let got: number;
      let from: number;
      let stride = 0;
      if (gro) {
        got = gro.read(this.fd, this.addrs[k], view.length);
        if (got < 0) break;
        from = sockaddrAddress(gro.from);
        stride = gro.segmentSize;
      } else {
        this.peerAddrLen[0] = SOCKADDR_IN_LEN; // socklen_t, little-endian: in, the room; out, the length
        got = this.libc.recvfrom(this.fd, view, view.length, 0, this.peerAddr, this.peerAddrLen);
        if (got < 0) break;
        from = sockaddrAddress(this.peerAddr);
      }
      const i = batch.push(slots[k], this.recvOff, got, TUNNEL);
      batch.aux[i] = from;
      batch.strides[i] = stride;
    }
  }
}


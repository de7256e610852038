/**
 * A test-only tunnel backend, `seq`: each datagram is the inner IPv4 packet in plain UDP behind a
 * 4-byte big-endian sequence number, counted per peer from 0. It exists to show that a backend is
 * one file and one registry line: nothing in src/switch names it, and the router tests and the
 * two-node test run over it as over udp and vxlan. Importing this module registers it (once).
 *
 *   slot:  [ vnet 10 ][ eth 10 | seq 4 ][ IPv4 ... ]     sent: seq + the IPv4 packet;
 *                               ^ recvOff = 20            received at recvOff, the frame in front
 *
 * It carries packets, not super-frames (the switch cuts those), and wants no merging on receive.
 * Receiving checks the header: a datagram shorter than the sequence number and an IPv4 header,
 * or whose packet is not IPv4, is dropped as tunnel_not_ipv4. Gaps in the sequence are not
 * drops; the last number seen from each peer is kept (`lastSeq`) for the tests to read.
 */
import type { BackendContext, FrameSink, TunnelBackend } from "../../src/tunnel/contract.ts";
import { MAX_SEGMENTS_PER_SEND } from "../../src/tunnel/contract.ts";
import { findBackend, registerBackend, type BackendInfo } from "../../src/tunnel/index.ts";
import { eachDatagram, innerFrame, type DatagramReader } from "../../src/tunnel/inner.ts";
import { DatagramRun } from "../../src/tunnel/run.ts";
import { get32, put32 } from "../../src/wire/bytes.ts";
import { TunnelDrop } from "../../src/tunnel/drops.ts";
import { ETH_HEADER_LEN } from "../../src/wire/ethernet.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";

export const SEQ_HEADER_LEN = 4;
const IP_OFF = ETH_OFF + ETH_HEADER_LEN;
const IPV4_MIN = 20;

export class SeqBackend implements TunnelBackend, DatagramReader {
  readonly name = "seq";
  readonly recvOff = IP_OFF - SEQ_HEADER_LEN;
  readonly wholeFrames = false;
  readonly mergeReceived = false;
  /** The next sequence number to each peer. */
  readonly nextSeq: Uint32Array;
  /** The last sequence number received from each peer; -1 before the first. */
  readonly lastSeq: Float64Array;
  private readonly run: DatagramRun;
  /** The headers of the run being gathered: one per datagram, by its place in the run. */
  private readonly headers = new Uint8Array(MAX_SEGMENTS_PER_SEND * SEQ_HEADER_LEN);

  constructor(ctx: BackendContext) {
    this.run = new DatagramRun(ctx.out, ctx.segmenting, ctx.events);
    this.nextSeq = new Uint32Array(ctx.nodes);
    this.lastSeq = new Float64Array(ctx.nodes).fill(-1);
  }

  /** Gathers one datagram: its sequence number, then the packet's pieces. */
  private gather(peer: number, a: Uint8Array, aOff: number, aLen: number, b: Uint8Array | null, bOff: number, bLen: number): void {
    const run = this.run;
    const bytes = SEQ_HEADER_LEN + aLen + bLen;
    run.open(peer, bytes);
    const h = run.count * SEQ_HEADER_LEN;
    put32(this.headers, h, this.nextSeq[peer]);
    this.nextSeq[peer] = (this.nextSeq[peer] + 1) >>> 0;
    run.out.add(this.headers, h, SEQ_HEADER_LEN);
    run.out.add(a, aOff, aLen);
    if (b && bLen > 0) run.out.add(b, bOff, bLen);
    run.close(bytes);
  }

  send(buf: Uint8Array, off: number, len: number, peer: number): number {
    this.gather(peer, buf, off + IP_OFF, len - IP_OFF, null, 0, 0);
    return 1;
  }

  sendSegment(hdr: Uint8Array, hdrOff: number, hdrLen: number, pay: Uint8Array, payOff: number, payLen: number, peer: number): void {
    this.gather(peer, hdr, hdrOff + ETH_HEADER_LEN, hdrLen - ETH_HEADER_LEN, pay, payOff, payLen);
  }

  flush(): void {
    this.run.flush();
  }

  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number {
    return eachDatagram(this, buf, off, len, stride, peer, sink);
  }

  datagram(buf: Uint8Array, at: number, len: number, first: boolean, peer: number, sink: FrameSink): void {
    if (len < SEQ_HEADER_LEN + IPV4_MIN || buf[at + SEQ_HEADER_LEN] >> 4 !== 4) {
      sink.drop(TunnelDrop.TunnelNotIpv4);
      return;
    }
    this.lastSeq[peer] = get32(buf, at);
    innerFrame(buf, at + SEQ_HEADER_LEN, len - SEQ_HEADER_LEN, -1, first, sink);
  }
}

export const seqBackend: BackendInfo = {
  name: "seq",
  port: 8299,
  // Outer IPv4 20 + UDP 8 + the sequence number 4.
  overhead: 28 + SEQ_HEADER_LEN,
  vni: false,
  about: "IPv4 in UDP behind a 4-byte sequence number (test-only)",
  create: (ctx) => new SeqBackend(ctx),
};

if (!findBackend(seqBackend.name)) registerBackend(seqBackend);

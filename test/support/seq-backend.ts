/**
 * A test-only tunnel backend, `seq`: each datagram is the inner IPv4 packet in plain UDP behind a
 * 4-byte big-endian sequence number, counted per peer from 0. It exists to show that a backend is
 * one file and one registry line: nothing in src/switch names it, and the router tests and the
 * two-node test run over it as over udp and vxlan. Importing this module registers it (once).
 *
 *   slot:  [ vnet 10 ][ eth 10 | seq 4 ][ IPv4 ... ]     sent: seq + the IPv4 packet;
 *                               ^ recvOff = 20            received at recvOff, the frame in front
 *
 * Like udp and vxlan it is a PacketBackend (src/tunnel/packet.ts): it carries packets, not
 * super-frames (the switch cuts those); unlike them it wants no merging on receive.
 * Receiving checks the header: a datagram shorter than the sequence number and an IPv4 header,
 * or whose packet is not IPv4, is dropped as tunnel_not_ipv4. Gaps in the sequence are not
 * drops; the last number seen from each peer is kept (`lastSeq`) for the tests to read.
 */
import type { BackendContext, FrameSink } from "../../src/tunnel/contract.ts";
import { findBackend, registerBackend, type BackendInfo } from "../../src/tunnel/index.ts";
import { innerFrame } from "../../src/tunnel/inner.ts";
import { PacketBackend } from "../../src/tunnel/packet.ts";
import { get32, put32 } from "../../src/wire/bytes.ts";
import { ETH_HEADER_LEN } from "../../src/wire/ethernet.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { TunnelDrop } from "../../src/tunnel/drops.ts";

export const SEQ_HEADER_LEN = 4;
const IP_OFF = ETH_OFF + ETH_HEADER_LEN;
const IPV4_MIN = 20;

export class SeqBackend extends PacketBackend {
  readonly name = "seq";
  override readonly mergeReceived = false;
  readonly recvOff = IP_OFF - SEQ_HEADER_LEN;
  /** The next sequence number to each peer. */
  readonly nextSeq: Uint32Array;
  /** The last sequence number received from each peer; -1 before the first. */
  readonly lastSeq: Float64Array;

  constructor(ctx: BackendContext) {
    super(ctx);
    this.nextSeq = new Uint32Array(ctx.nodes);
    this.lastSeq = new Float64Array(ctx.nodes).fill(-1);
  }

  /** The sequence number goes over the end of the Ethernet header, right before the packet. */
  protected encapsulate(buf: Uint8Array, eth: number, peer: number): number {
    const d = eth + ETH_HEADER_LEN - SEQ_HEADER_LEN;
    put32(buf, d, this.nextSeq[peer]);
    this.nextSeq[peer] = (this.nextSeq[peer] + 1) >>> 0;
    return d;
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

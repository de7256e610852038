/**
 * tunnel out: frames routed to another node (TO_NODE) go to the tunnel backend. A backend
 * that carries super-frames whole (tapnet) gets the frame as the TAP gave it. Any other gets
 * packets no larger than the pods' MTU: a single packet whole, its partial checksum completed
 * first if the pod's kernel left it to the NIC; a TCP/UDP super-frame cut here into segments
 * (wire/gso.ts), each segment's headers written into `segHeaders` and its payload left where
 * it lies in the slot, so that a super-frame's segments go in as few sends as the kernel allows
 * (see tunnel/run.ts). The backend sends what it gathered when a run is full, after each
 * super-frame (its segments' headers are reused by the next) and at the end of the batch.
 */
import { Drop, type DropReason } from "../../wire/drop.ts";
import { ETH_HEADER_LEN } from "../../wire/ethernet.ts";
import { completeChecksumAt, GsoSegmenter, type SegmentPiecesSink } from "../../wire/gso.ts";
import { IPV4_TOTAL_LEN } from "../../wire/ipv4.ts";
import { get16, getLe16 } from "../../wire/bytes.ts";
import { GSO_NONE, VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_SIZE, vnetGsoType } from "../../wire/virtio.ts";
import { type TunnelBackend } from "../../tunnel/contract.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchCounter } from "../counters.ts";
import { SwitchDrop } from "../drops.ts";
import { DONE, TO_NODE, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";

/** Room left before a segment's Ethernet header for the backend's headers. */
const SEGMENT_HEADROOM = 16;
/** Each segment's headers at this stride: the headroom, Ethernet (+2 tags), IPv4 and TCP at their longest, rounded up. */
const SEGMENT_STRIDE = 176;
/** A super-frame of more segments than this (a tiny gso_size) is sent a segment at a time. */
const MAX_GATHERED_SEGMENTS = 128;

export class TunnelOut implements Stage {
  readonly name = "tunnel-out";
  private readonly segmenter: GsoSegmenter;
  private readonly segHeaders = new Uint8Array(MAX_GATHERED_SEGMENTS * SEGMENT_STRIDE);
  private readonly emit: SegmentPiecesSink;
  private peer = 0;
  private segments = 0;
  private perSegment = false;

  constructor(private readonly state: SwitchState, private readonly backend: TunnelBackend) {
    this.segmenter = new GsoSegmenter(ETH_HEADER_LEN + state.cluster!.cfg.tunnelMtu);
    this.emit = (out, hdrOff, hdrLen, frame, payOff, payLen) => {
      this.backend.sendSegment(out, hdrOff, hdrLen, frame, payOff, payLen, this.peer);
      this.segments++;
      if (this.perSegment) this.backend.flush(); // the next segment's headers go where these are
    };
  }

  run(f: Frames): void {
    const c = this.state.counters;
    for (let i = 0; i < f.count; i++) {
      if (f.outs[i] !== TO_NODE) continue;
      f.outs[i] = DONE;
      const r = this.backend.wholeFrames ? this.whole(f, i) : this.packets(f, i);
      if (r !== Drop.None) {
        c.drop(f.ports[i], r);
        f.why[i] = r;
      }
    }
    this.backend.flush();
  }

  private whole(f: Frames, i: number): DropReason {
    if (this.backend.send(f.bufs[i], f.offs[i], f.lens[i], f.nodes[i]) < 0) return SwitchDrop.TxError;
    this.state.counters.v[this.state.counters.switchBase + SwitchCounter.Routed]++;
    return Drop.None;
  }

  private packets(f: Frames, i: number): DropReason {
    const buf = f.bufs[i];
    const off = f.offs[i];
    const len = f.lens[i];
    const gso = vnetGsoType(buf, off);
    const c = this.state.counters;
    if (gso === GSO_NONE) {
      if (buf[off] & VNET_F_NEEDS_CSUM) {
        const r = completeChecksumAt(buf, off + ETH_OFF, len - ETH_OFF, getLe16(buf, off + VNET_CSUM_START), getLe16(buf, off + VNET_CSUM_OFFSET));
        if (r !== Drop.None) return r;
      }
      this.backend.send(buf, off, len, f.nodes[i]);
      c.v[c.switchBase + SwitchCounter.Routed]++;
      return Drop.None;
    }
    const gsoSize = getLe16(buf, off + VNET_GSO_SIZE);
    const ipLen = get16(buf, off + ETH_OFF + ETH_HEADER_LEN + IPV4_TOTAL_LEN);
    this.peer = f.nodes[i];
    this.segments = 0;
    this.perSegment = gsoSize === 0 || ipLen > MAX_GATHERED_SEGMENTS * gsoSize;
    const r = this.segmenter.segmentPieces(buf, off + ETH_OFF, len - ETH_OFF, gso, gsoSize, this.segHeaders, SEGMENT_HEADROOM,
      this.perSegment ? 0 : SEGMENT_STRIDE, this.emit);
    this.backend.flush(); // before the next super-frame's headers take these ones' place
    c.v[c.switchBase + SwitchCounter.Routed] += this.segments;
    return r;
  }
}

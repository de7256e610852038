/**
 * tunnel in: the first stage; it takes the reads from the tunnel socket out of the batch and
 * turns them into frames of their own vector, which the receive pipeline (merge, deliver,
 * gateway, port out) then works on. A read is accepted only from a node in the subnet map; the
 * backend takes it apart (one datagram, or a GRO run of them) into frames, through this stage
 * as its FrameSink. Frames point into the batch's slots, so they are delivered before the
 * batch's slots are reused: when this stage's vector is full, when the backend is about to
 * reuse memory a frame lies in (`commit`), and at the end of the stage.
 */
import type { DropReason } from "../../wire/drop.ts";
import type { FrameSink, FrameTail, TunnelBackend } from "../../tunnel/contract.ts";
import { DROP_BASE, PORT_COUNTERS, PortCounter } from "../counters.ts";
import { SwitchDrop } from "../drops.ts";
import { DONE, Frames, PENDING, TUNNEL } from "../frames.ts";
import type { Pipeline, Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";

/** Frames taken out of reads before the receive pipeline runs over them. */
export const RX_FRAMES = 256;

export class TunnelIn implements Stage, FrameSink {
  readonly name = "tunnel-in";
  /** The frames taken out of the reads, until the receive pipeline has run over them. */
  readonly rx = new Frames(RX_FRAMES);
  /** Set by the datapath: the stages after this one, over `rx`. */
  receive?: Pipeline;
  private peer = 0;
  private read = 0;
  private now = 0;
  private readonly lent: { head: Uint8Array; tail: FrameTail } = { head: new Uint8Array(0), tail: this.rx.tails[0] };

  constructor(private readonly state: SwitchState, private readonly backend: TunnelBackend) {}

  run(f: Frames, now: number): void {
    this.now = now;
    const cl = this.state.cluster!;
    const v = this.state.counters.v;
    const t = this.state.tunnelRow * PORT_COUNTERS;
    for (let i = 0; i < f.count; i++) {
      if (f.ports[i] !== TUNNEL || f.outs[i] !== PENDING) continue;
      f.outs[i] = DONE;
      const len = f.lens[i];
      const stride = f.strides[i];
      const peer = cl.map.nodeForAddress(f.aux[i]);
      v[t + PortCounter.RxBytes] += len;
      if (peer < 0 || peer === cl.cfg.self) {
        const n = stride > 0 ? Math.max(1, Math.ceil(len / stride)) : 1; // every datagram of a GRO run counts
        v[t + PortCounter.RxFrames] += n;
        v[t + DROP_BASE + SwitchDrop.TunnelUnknownPeer] += n;
        continue;
      }
      this.peer = peer;
      this.read++;
      v[t + PortCounter.RxFrames] += this.backend.receive(f.bufs[i], f.offs[i], len, stride, peer, this);
    }
    this.commit();
  }

  lend(): { head: Uint8Array; tail: FrameTail } {
    const rx = this.rx;
    if (rx.full) this.commit();
    this.lent.head = rx.heads[rx.count];
    this.lent.tail = rx.tails[rx.count];
    this.lent.tail.count = 0;
    return this.lent;
  }

  frame(buf: Uint8Array, off: number, len: number, tail?: FrameTail): void {
    const rx = this.rx;
    if (rx.full) this.commit();
    const i = rx.count;
    const pieces = tail ? tail.count : 0;
    if (tail && tail !== rx.tails[i]) throw new Error("a backend handed over a tail it was not lent for this frame");
    rx.push(buf, off, len, TUNNEL, this.peer);
    rx.tails[i].count = pieces;
    rx.reads[i] = this.read;
  }

  drop(reason: DropReason): void {
    this.state.counters.drop(this.state.tunnelRow, reason);
  }

  commit(): void {
    if (this.rx.count === 0) return;
    this.receive!.run(this.rx, this.now);
    this.rx.clear();
  }

}

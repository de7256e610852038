// The tunnel-in stage (stages/tunnel-in.ts) with a scripted backend: which reads it hands to the
// backend, and how the frames the backend hands back reach the receive pipeline, a vector at a time.
import { describe, expect, it } from "vitest";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, newTail, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import { Pipeline, type Stage } from "../../src/switch/pipeline.ts";
import { RX_FRAMES, TunnelIn } from "../../src/switch/stages/tunnel-in.ts";
import { SwitchState } from "../../src/switch/state.ts";
import type { FrameSink, TunnelBackend } from "../../src/tunnel/contract.ts";
import { ADDR, config, ip } from "./router-support.ts";

/** Notes every run of the receive pipeline: the frames' lengths, tails' piece counts and reads. */
class Recorder implements Stage {
  readonly name = "recorder";
  runs: { lens: number[]; pieces: number[]; reads: number[] }[] = [];
  run(f: Frames): void {
    const n = f.count;
    this.runs.push({ lens: Array.from(f.lens.subarray(0, n)), pieces: f.tails.slice(0, n).map((t) => t.count), reads: Array.from(f.reads.subarray(0, n)) });
  }
}

/** A backend whose `receive` is `script`, counting its calls; it reports one frame per call. */
function scripted(script: (sink: FrameSink, buf: Uint8Array, off: number, len: number) => void) {
  const calls: number[] = [];
  const backend = {
    receive(buf: Uint8Array, off: number, len: number, _stride: number, _peer: number, sink: FrameSink): number {
      calls.push(len);
      script(sink, buf, off, len);
      return 1;
    },
  } as unknown as TunnelBackend;
  return { backend, calls };
}

function make(script: (sink: FrameSink, buf: Uint8Array, off: number, len: number) => void = () => {}) {
  const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
  const { backend, calls } = scripted(script);
  const stage = new TunnelIn(state, backend);
  const rec = new Recorder();
  stage.receive = new Pipeline("receive", [rec]);
  return { state, stage, rec, calls };
}

/** Pushes a read of `len` bytes from node 2 to the batch. */
function pushRead(f: Frames, buf: Uint8Array, len: number): number {
  const i = f.push(buf, 0, len, TUNNEL);
  f.aux[i] = ip(ADDR[1]);
  return i;
}

describe("tunnel-in stage", () => {
  it("a read with more frames than the vector holds reaches the receive pipeline a full vector at a time, none lost", () => {
    const total = 2 * RX_FRAMES + 88;
    const { stage, rec } = make((sink, buf) => {
      for (let k = 0; k < total; k++) sink.frame(buf, k, 60 + k);
    });
    const f = new Frames(4);
    pushRead(f, new Uint8Array(100), 100);
    stage.run(f, 0);
    expect(rec.runs.map((r) => r.lens.length)).toEqual([RX_FRAMES, RX_FRAMES, 88]);
    expect(rec.runs.flatMap((r) => r.lens)).toEqual(Array.from({ length: total }, (_, k) => 60 + k));
  });

  it("heads lent past a full vector: the vector is delivered first, and each frame keeps its tail", () => {
    const total = RX_FRAMES + 44;
    const pay = new Uint8Array(10);
    const { stage, rec } = make((sink) => {
      for (let k = 0; k < total; k++) {
        const { head, tail } = sink.lend();
        tail.buf = pay;
        tail.headLen = 54;
        tail.count = 1 + (k % 3);
        sink.frame(head, 0, 100 + k, tail);
      }
    });
    const f = new Frames(4);
    pushRead(f, new Uint8Array(100), 100);
    stage.run(f, 0);
    expect(rec.runs.map((r) => r.lens.length)).toEqual([RX_FRAMES, 44]);
    expect(rec.runs.flatMap((r) => r.pieces)).toEqual(Array.from({ length: total }, (_, k) => 1 + (k % 3)));
  });

  it("a tail the sink did not lend for this very frame is refused with a clear error", () => {
    const foreign = make((sink, buf) => sink.frame(buf, 0, 60, newTail()));
    const f = new Frames(4);
    pushRead(f, new Uint8Array(100), 100);
    expect(() => foreign.stage.run(f, 0)).toThrow("a backend handed over a tail it was not lent for this frame");
    const stale = make((sink, buf) => {
      const { tail } = sink.lend();
      sink.frame(buf, 0, 60); // contiguous: the lent tail was not used...
      tail.count = 1;
      sink.frame(buf, 0, 60, tail); // ...and is not this frame's
    });
    const g = new Frames(4);
    pushRead(g, new Uint8Array(100), 100);
    expect(() => stale.stage.run(g, 0)).toThrow("a backend handed over a tail it was not lent for this frame");
  });

  it("takes only the undecided reads of the batch, and none past its count", () => {
    const { stage, calls, rec } = make((sink, buf, off, len) => sink.frame(buf, off, len));
    const f = new Frames(4);
    const buf = new Uint8Array(100);
    pushRead(f, buf, 10);
    pushRead(f, buf, 20);
    pushRead(f, buf, 30);
    f.clear();
    pushRead(f, buf, 40);
    const done = pushRead(f, buf, 50);
    f.outs[done] = DONE; // a stage before took it
    stage.run(f, 0);
    expect(calls).toEqual([40]);
    expect(rec.runs.map((r) => r.lens)).toEqual([[40]]);
    expect(Array.from(f.outs.subarray(0, 2))).toEqual([DONE, DONE]);
    expect(f.outs[2]).toBe(PENDING); // past the count: not touched
  });

  it("runs the receive pipeline only when there are frames: not for a batch without reads, nor for reads that yield none", () => {
    const { stage, rec, calls } = make();
    const f = new Frames(4);
    f.push(new Uint8Array(60), 0, 60, 2);
    stage.run(f, 0);
    pushRead(f, new Uint8Array(100), 100);
    stage.run(f, 0);
    stage.commit();
    expect(calls).toEqual([100]);
    expect(rec.runs).toEqual([]);
  });
});

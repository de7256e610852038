// switch/pipeline.ts: stages run one after another over a batch, and a stage is placed by name.
import { describe, expect, it } from "vitest";
import { buildStages } from "../../src/switch/datapath.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, PENDING } from "../../src/switch/frames.ts";
import { Pipeline, type Stage } from "../../src/switch/pipeline.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { RecordingWriter } from "../support/writer.ts";

/** A stage that notes, in `log`, its name, the time and the frames it saw. */
function noting(name: string, log: string[]): Stage {
  return {
    name,
    run: (f: Frames, now: number) => { log.push(`${name} at ${now}: ${f.count} frames`); },
  };
}

function batch(n: number): Frames {
  const f = new Frames(8);
  for (let i = 0; i < n; i++) f.push(new Uint8Array(64), 0, 64, i);
  return f;
}

describe("Pipeline", () => {
  it("runs its stages in order, each over the whole batch, with the datapath's clock", () => {
    const log: string[] = [];
    const p = new Pipeline("ports", [noting("a", log), noting("b", log), noting("c", log)]);
    p.run(batch(3), 12.5);
    expect(log).toEqual(["a at 12.5: 3 frames", "b at 12.5: 3 frames", "c at 12.5: 3 frames"]);
  });

  it("names its stages in order", () => {
    const p = new Pipeline("ports", [noting("a", []), noting("b", [])]);
    expect(p.names()).toEqual(["a", "b"]);
    expect(p.name).toBe("ports");
  });

  it("insertBefore and insertAfter place a stage next to the one named, first and last included", () => {
    const log: string[] = [];
    const p = new Pipeline("ports", [noting("a", log), noting("b", log)]);
    p.insertBefore("b", noting("x", log));
    p.insertAfter("b", noting("y", log));
    p.insertBefore("a", noting("first", log));
    p.insertAfter("y", noting("last", log));
    p.insertAfter("a", noting("z", log));
    expect(p.names()).toEqual(["first", "a", "z", "x", "b", "y", "last"]);
    p.run(batch(1), 0);
    expect(log.map((l) => l.split(" ")[0])).toEqual(["first", "a", "z", "x", "b", "y", "last"]);
  });

  it("placing a stage next to one it does not have is an error naming the pipeline and its stages", () => {
    const p = new Pipeline("receive", [noting("merge", []), noting("deliver", [])]);
    expect(() => p.insertBefore("bridge", noting("x", []))).toThrow(new Error('the receive pipeline has no stage "bridge" (it has: merge, deliver)'));
    expect(() => p.insertAfter("Merge", noting("x", []))).toThrow(new Error('the receive pipeline has no stage "Merge" (it has: merge, deliver)'));
    expect(p.names()).toEqual(["merge", "deliver"]);
  });

  it("a stage added to a switch's pipeline by name drops frames by a predicate; the stages after it leave those alone", () => {
    const state = SwitchState.make(4, FDB_DEFAULTS);
    for (const p of [0, 1, 2]) state.ports.add(p);
    const writer = new RecordingWriter();
    const { ports } = buildStages(state, writer);
    expect(ports.names()).toEqual(["validate", "port-security", "bridge", "port-out"]);
    let dropped = 0;
    ports.insertBefore("bridge", {
      name: "drop-odd-tags",
      run(f: Frames) {
        for (let i = 0; i < f.count; i++) {
          if (f.outs[i] === PENDING && f.bufs[i][f.offs[i] + ETH_OFF + 14] % 2 === 1) {
            f.outs[i] = DONE;
            dropped++;
          }
        }
      },
    });
    const f = new Frames(8);
    for (let tag = 0; tag < 4; tag++) {
      const b = new Uint8Array(ETH_OFF + 60);
      emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: `02:00:00:00:00:0${tag}`, vlans: [], etherType: 0x88b5 }, b, ETH_OFF);
      b[ETH_OFF + 14] = tag;
      f.push(b, 0, b.length, 0);
    }
    ports.run(f, 0);
    expect(dropped).toBe(2);
    expect(writer.written.map((w) => [w.bytes[ETH_OFF + 14], w.port])).toEqual([[0, 1], [0, 2], [2, 1], [2, 2]]);
    expect(state.fdb.size).toBe(2); // the bridge learned only the frames it saw
    expect(state.counters.portSnapshot(0)).toMatchObject({ rx_frames: 4, rx_flooded: 2 });
  });
});

/**
 * A pipeline: stages run one after another, each over the whole batch (see frames.ts). A
 * stage looks at the entries it cares about (by their `outs` and `ports`), does its work on
 * them and says where each goes; it never calls another stage. Adding a stage is making one
 * and placing it by name: `insertBefore("bridge", myStage)`; the others do not change.
 *
 * With a tracer attached (`trace`, trace/tracer.ts) and a filter armed, the batch's frames are
 * marked as the pipeline starts, and after each stage the marked ones are recorded. Otherwise
 * a run costs one comparison more than the stages.
 */
import type { Frames } from "./frames.ts";
import type { Tracer } from "./trace/tracer.ts";

export interface Stage {
  /** Its name: in the datapath's list, in traces, and to place another stage by. */
  readonly name: string;
  /** Does its work on the batch's entries; `now` is the datapath's clock, in seconds. */
  run(f: Frames, now: number): void;
}

export class Pipeline {
  private tracer?: Tracer;
  /** This pipeline's number in the tracer's records: where = id * 256 + stage index. */
  private traceId = 0;
  /** Its frames come from the tunnel (the receive pipeline). */
  private received = false;

  constructor(readonly name: string, private readonly stages: Stage[]) {}

  run(f: Frames, now: number): void {
    const s = this.stages;
    const tr = this.tracer;
    if (tr !== undefined && (tr.armed > 0 || f.marked > 0)) {
      if (tr.armed > 0) tr.mark(f, this.received);
      if (f.marked > 0) {
        const base = this.traceId * 256;
        for (let k = 0; k < s.length; k++) {
          s[k].run(f, now);
          tr.record(f, base + k);
        }
        return;
      }
    }
    for (let k = 0; k < s.length; k++) s[k].run(f, now);
  }

  /** Records its marked frames in `tracer` as pipeline `id` (undefined: no tracing); `received`: the receive pipeline. */
  trace(tracer: Tracer | undefined, id: number, received: boolean): void {
    this.tracer = tracer;
    this.traceId = id;
    this.received = received;
  }

  /** The name of stage `k`. */
  stageName(k: number): string {
    return this.stages[k]?.name ?? `stage ${k}`;
  }

  /** The stages' names, in order. */
  names(): string[] {
    return this.stages.map((s) => s.name);
  }

  insertBefore(name: string, stage: Stage): void {
    this.stages.splice(this.indexOf(name), 0, stage);
  }

  insertAfter(name: string, stage: Stage): void {
    this.stages.splice(this.indexOf(name) + 1, 0, stage);
  }

  private indexOf(name: string): number {
    const i = this.stages.findIndex((s) => s.name === name);
    if (i < 0) throw new Error(`the ${this.name} pipeline has no stage "${name}" (it has: ${this.names().join(", ")})`);
    return i;
  }
}

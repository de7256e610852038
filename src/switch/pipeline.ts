/**
 * A pipeline: stages run one after another, each over the whole batch (see frames.ts). A
 * stage looks at the entries it cares about (by their `outs` and `ports`), does its work on
 * them and says where each goes; it never calls another stage. Adding a stage is making one
 * and placing it by name: `insertBefore("bridge", myStage)`; the others do not change.
 */
import type { Frames } from "./frames.ts";

export interface Stage {
  /** Its name: in the datapath's list, in traces, and to place another stage by. */
  readonly name: string;
  /** Does its work on the batch's entries; `now` is the datapath's clock, in seconds. */
  run(f: Frames, now: number): void;
}

export class Pipeline {
  constructor(readonly name: string, private readonly stages: Stage[]) {}

  run(f: Frames, now: number): void {
    const s = this.stages;
    for (let k = 0; k < s.length; k++) s[k].run(f, now);
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

// io/thread-stat.ts: /proc/thread-self's schedstat and status read into a thread's scheduling figures.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseCtxSwitches, parseSchedstat, threadStat } from "../../src/io/thread-stat.ts";

describe("thread-stat", () => {
  it("parses a schedstat line as this kernel writes it, and refuses anything else", () => {
    expect(parseSchedstat("5213381092 812340551 48211\n")).toEqual({ cpuNs: 5213381092, waitNs: 812340551, slices: 48211 });
    expect(parseSchedstat("")).toBeUndefined();
    expect(parseSchedstat("1 2\n")).toBeUndefined();
    expect(parseSchedstat("1 2 x\n")).toBeUndefined();
  });

  it("finds the two context-switch counts among a status file's lines", () => {
    const status = "Name:\tnode\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t40210\nnonvoluntary_ctxt_switches:\t311\n";
    expect(parseCtxSwitches(status)).toEqual({ voluntary: 40210, involuntary: 311 });
    expect(parseCtxSwitches("voluntary_ctxt_switches:\t4\n")).toBeUndefined();
  });

  it("reads the calling thread's own figures, which move as it works and sleeps", async () => {
    const a = threadStat();
    expect(a).toBeDefined();
    let x = 0;
    for (let i = 0; i < 2e7; i++) x += i;
    await new Promise((r) => setTimeout(r, 20));
    const b = threadStat()!;
    expect(x).toBeGreaterThan(0);
    expect(b.cpuMs).toBeGreaterThan(a!.cpuMs);
    expect(b.sleeps).toBeGreaterThan(a!.sleeps);
  });

  it("gives undefined where the files are missing or not what they should be", () => {
    const dir = mkdtempSync(join(tmpdir(), "thread-stat-"));
    try {
      expect(threadStat(dir)).toBeUndefined();
      writeFileSync(join(dir, "schedstat"), "10 20 30\n");
      writeFileSync(join(dir, "status"), "voluntary_ctxt_switches:\t4\nnonvoluntary_ctxt_switches:\t5\n");
      expect(threadStat(dir)).toEqual({ cpuMs: 0.00001, waitMs: 0.00002, slices: 30, sleeps: 4, preempted: 5 });
      writeFileSync(join(dir, "schedstat"), "garbage");
      expect(threadStat(dir)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

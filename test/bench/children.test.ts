// What the hostile-input script and the soak read of a process in /proc, and how they start a TypeScript file.
import { closeSync, openSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fdCount, rssKb, scriptCommand, startTicks } from "../../src/bench/children.ts";

describe("/proc readings", () => {
  it("resident memory and fds of this process; an fd opened is one more; nothing for a pid that is gone", () => {
    expect(rssKb(process.pid)).toBeGreaterThan(10_000);
    const before = fdCount(process.pid);
    const fd = openSync("/proc/self/status", "r");
    try {
      expect(fdCount(process.pid)).toBe(before + 1);
    } finally {
      closeSync(fd);
    }
    expect(fdCount(process.pid)).toBe(before);
    expect(rssKb(2 ** 22 + 1)).toBe(0);
    expect(fdCount(2 ** 22 + 1)).toBe(0);
  });

  it("a start time that stays for one process, differs for another, and is 0 when there is none", () => {
    const mine = startTicks(process.pid);
    expect(mine).toBeGreaterThan(0);
    expect(startTicks(process.pid)).toBe(mine);
    expect(startTicks(1)).toBeLessThanOrEqual(mine);
    expect(startTicks(2 ** 22 + 1)).toBe(0);
  });
});

describe("scriptCommand", () => {
  it("runs a source file with tsx on Node, with deno run on Deno", () => {
    const node = scriptCommand("node", "src/bench/hostile-send.ts");
    expect(node.cmd).toBe(process.execPath);
    expect(node.args).toEqual(["--import", "tsx", expect.stringMatching(/\/src\/bench\/hostile-send\.ts$/)]);
    const deno = scriptCommand("deno", "src/bench/hostile-send.ts");
    expect(deno.args.slice(0, 3)).toEqual(["run", "--allow-all", "--quiet"]);
    expect(deno.args[3]).toMatch(/\/src\/bench\/hostile-send\.ts$/);
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonLogger, silentLogger } from "../../src/node/log.ts";

function capture(): { lines: string[]; write: (l: string) => void; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  return { lines, write: (l) => lines.push(l), records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("jsonLogger", () => {
  it("writes one JSON object per line with time, level, msg and the fields", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-03-04T05:06:07.089Z"));
    const out = capture();
    const log = jsonLogger({}, "info", out.write);
    log.info("pod added", { pod: "pod1", ip: "10.244.1.2" });
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).not.toContain("\n");
    expect(JSON.parse(out.lines[0])).toEqual({ time: "2026-03-04T05:06:07.089Z", level: "info", msg: "pod added", pod: "pod1", ip: "10.244.1.2" });
  });

  it("keeps time, level and msg first and its own, whatever fields of those names say", () => {
    const out = capture();
    const log = jsonLogger({ level: "base" }, "info", out.write);
    log.warn("real", { msg: "fake", time: "never" });
    const o = JSON.parse(out.lines[0]);
    expect(Object.keys(o).slice(0, 3)).toEqual(["time", "level", "msg"]);
    expect(o.level).toBe("warn");
    expect(o.msg).toBe("real");
    expect(o.time).not.toBe("never");
  });

  it("writes a line per call, each with its own level", () => {
    const out = capture();
    const log = jsonLogger({}, "debug", out.write);
    log.debug("a");
    log.info("b");
    log.warn("c");
    log.error("d");
    expect(out.records().map((r) => [r.level, r.msg])).toEqual([["debug", "a"], ["info", "b"], ["warn", "c"], ["error", "d"]]);
  });

  it("keeps a message with newlines and quotes on one line", () => {
    const out = capture();
    jsonLogger({}, "info", out.write).warn('line one\nline "two"');
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).not.toContain("\n");
    expect(out.records()[0].msg).toBe('line one\nline "two"');
  });

  it("drops levels below the minimum", () => {
    const out = capture();
    const log = jsonLogger({}, "warn", out.write);
    log.debug("no");
    log.info("no");
    log.warn("yes");
    log.error("yes too");
    expect(out.records().map((r) => r.level)).toEqual(["warn", "error"]);
  });

  it("drops debug by default", () => {
    const out = capture();
    const log = jsonLogger({}, undefined, out.write);
    log.debug("no");
    log.info("yes");
    expect(out.records().map((r) => r.msg)).toEqual(["yes"]);
  });

  it("adds the base fields to every line", () => {
    const out = capture();
    const log = jsonLogger({ node: "node1", pid: 42 }, "info", out.write);
    log.info("up");
    log.error("down", { why: "signal" });
    expect(out.records()).toMatchObject([{ msg: "up", node: "node1", pid: 42 }, { msg: "down", node: "node1", pid: 42, why: "signal" }]);
  });

  it("child merges its fields over the parent's and a call's fields over both", () => {
    const out = capture();
    const parent = jsonLogger({ node: "node1", part: "switch" }, "info", out.write);
    const child = parent.child({ part: "agent", pod: "pod1" });
    child.info("a");
    child.info("b", { pod: "pod2" });
    expect(out.records()).toMatchObject([
      { msg: "a", node: "node1", part: "agent", pod: "pod1" },
      { msg: "b", node: "node1", part: "agent", pod: "pod2" },
    ]);
  });

  it("child does not change the parent, and keeps the parent's minimum level and writer", () => {
    const out = capture();
    const parent = jsonLogger({ node: "node1" }, "warn", out.write);
    const child = parent.child({ pod: "pod1" }).child({ port: 3 });
    child.info("dropped");
    child.warn("kept");
    parent.warn("parent");
    const [a, b] = out.records();
    expect(out.lines).toHaveLength(2);
    expect(a).toMatchObject({ msg: "kept", node: "node1", pod: "pod1", port: 3 });
    expect(b).toMatchObject({ msg: "parent", node: "node1" });
    expect(b).not.toHaveProperty("pod");
  });

  it("writes to stderr, one line each, by default", () => {
    const writes: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => { writes.push(String(s)); return true; }) as typeof process.stderr.write);
    jsonLogger({ node: "n" }).info("hello");
    expect(writes).toHaveLength(1);
    expect(writes[0].endsWith("\n")).toBe(true);
    expect(JSON.parse(writes[0])).toMatchObject({ level: "info", msg: "hello", node: "n" });
  });
});

describe("silentLogger", () => {
  it("writes nothing, even errors, nor do its children", () => {
    const writes: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => { writes.push(String(s)); return true; }) as typeof process.stderr.write);
    vi.spyOn(process.stdout, "write").mockImplementation(((s: string) => { writes.push(String(s)); return true; }) as typeof process.stdout.write);
    silentLogger.error("boom");
    silentLogger.child({ a: 1 }).error("boom");
    expect(writes).toEqual([]);
  });
});

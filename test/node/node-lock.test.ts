// One switch at a time per control socket: a second one is refused, naming the first's pid; a
// standby waits and takes the lock the moment it is let go. (flock on a file in a temporary
// directory: a second lock in this same process conflicts, as locks of two open files do.)
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NodeLock, NodeLockError } from "../../src/node/node-lock.ts";
import type { Logger } from "../../src/node/log.ts";

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function logger(lines: string[]): Logger {
  const put = (msg: string) => { lines.push(msg); };
  return { info: put, warn: put, error: put, debug: put } as unknown as Logger;
}

describe("NodeLock", () => {
  it("is taken once; a second switch is refused with the holder's pid; free again once released", async () => {
    const dir = mkdtempSync(join(tmpdir(), "survive-lock-"));
    dirs.push(dir);
    const control = join(dir, "node1.sock");
    const lines: string[] = [];
    const first = await NodeLock.acquire(control, { wait: false, log: logger(lines) });
    expect(readFileSync(join(dir, "node1.lock"), "utf8")).toBe(`${process.pid}\n`);
    const refused = await NodeLock.acquire(control, { wait: false, log: logger(lines) }).then(() => undefined, (e: Error) => e);
    expect(refused).toBeInstanceOf(NodeLockError);
    expect(refused!.message).toBe(`another switch (pid ${process.pid}) holds ${join(dir, "node1.lock")}: this node's switch is running already`);
    first.release();
    first.release(); // twice is harmless
    const again = await NodeLock.acquire(control, { wait: false, log: logger(lines) });
    again.release();
    expect(lines).toEqual([]);
  });

  it("a standby waits for the lock on a helper thread, JavaScript going on meanwhile, and takes it at its release", async () => {
    const dir = mkdtempSync(join(tmpdir(), "survive-lock-"));
    dirs.push(dir);
    const control = join(dir, "n.sock");
    const lines: string[] = [];
    const holder = await NodeLock.acquire(control, { wait: false, log: logger(lines) });
    let got = 0;
    const standby = NodeLock.acquire(control, { wait: true, log: logger(lines) }).then((l) => { got = Date.now(); return l; });
    // The wait blocks no JavaScript: timers fire on time all along.
    let ticks = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 150) { await new Promise((r) => setTimeout(r, 5)); ticks++; }
    expect(ticks).toBeGreaterThan(10);
    expect(got).toBe(0);
    const released = Date.now();
    holder.release();
    const lock = await standby;
    expect(got - released).toBeLessThan(500);
    expect(lines).toEqual(["standby: waiting for the running switch to exit", "standby: the switch exited, taking over"]);
    lock.release();
  });
});

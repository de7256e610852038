// What the bench reads of processes in /proc: their threads' wakeups, summed over a process tree.
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { processTree, treeSched } from "../../src/bench/proc.ts";

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("treeSched", () => {
  it("counts the wakeups of a descendant's threads: a timer every 2 ms wakes it about 150 times in 300 ms", async () => {
    // sh forks node (the "; :" keeps sh from exec'ing it): the counting thread is a grandchild's
    const sh = spawn("sh", ["-c", "node -e 'setInterval(() => {}, 2)'; :"], { stdio: "ignore" });
    children.push(sh);
    let tree: number[] = [];
    for (let i = 0; i < 100 && tree.length < 2; i++) { await sleep(20); tree = processTree(sh.pid!); }
    expect(tree.length).toBeGreaterThanOrEqual(2);
    await sleep(300); // node has started and its threads are there
    const a = treeSched([sh.pid!]);
    await sleep(300);
    const b = treeSched([sh.pid!]);
    const woken = b.sleeps - a.sleeps;
    expect(woken).toBeGreaterThan(60);
    expect(woken).toBeLessThan(2000);
    expect(b.waitMs).toBeGreaterThanOrEqual(a.waitMs);
    expect(treeSched([])).toEqual({ sleeps: 0, waitMs: 0 });
  });

  it("a process that is gone counts nothing", async () => {
    const c = spawn("true");
    await new Promise((r) => c.on("exit", r));
    await sleep(50);
    expect(treeSched([c.pid!])).toEqual({ sleeps: 0, waitMs: 0 });
  });
});

// The file store shared by real processes, as the CLI and a lab's switches share it: Node (and
// one Deno) processes racing to create the same keys (exactly one wins each), incrementing one
// counter by conditional writes (no increment lost, a watcher in another process sees every
// revision in order), one of them stopped and then killed while it holds the lock (the others
// wait while it lives, then take its lock over, and the store stays whole), and a process that leaves a watch open still exits. Each process is
// `node --import tsx -e` (or `deno eval`) on a few lines importing src/cluster/file-kv.ts.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { FileKv } from "../../src/cluster/file-kv.ts";
import type { KvEvent } from "../../src/cluster/kv.ts";
import { pidAlive, REPO } from "./helpers.ts";

const MODULE = `${REPO}src/cluster/file-kv.ts`;
const DENO = `${REPO}node_modules/.bin/deno`;
const root = mkdtempSync(join(tmpdir(), "store-it-filekv-"));
const children: ChildProcess[] = [];
let n = 0;

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

// The code each process runs. `go`: a file each waits for, after saying "ready", so that they all
// begin at once however long each took to load (goWhenReady).
const CREATE = (dir: string, id: string, keys: number, first: number, go: string) => `
const { FileKv } = await import(${JSON.stringify(MODULE)});
const kv = new FileKv(${JSON.stringify(dir)});
const { existsSync } = await import("node:fs");
console.log("ready");
while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));
for (let i = 0; i < ${keys}; i++) {
  const k = (i + ${first}) % ${keys}; // each process starts at a key of its own, and runs into the others
  try { console.log(JSON.stringify({ key: k, rev: await kv.put("/race/" + k, ${JSON.stringify(id)}, { expect: 0 }) })); }
  catch (e) { if (e.constructor.name !== "KvConflict") throw e; console.log("lost " + k); }
}
console.log("done");`;

const INCREMENT = (dir: string, times: number, go: string) => `
const { FileKv } = await import(${JSON.stringify(MODULE)});
const kv = new FileKv(${JSON.stringify(dir)});
const { existsSync } = await import("node:fs");
console.log("ready");
while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));
for (let i = 0; i < ${times}; i++) {
  for (;;) {
    const e = await kv.get("/counter");
    const next = Number(e?.value ?? 0) + 1;
    try { await kv.put("/counter", String(next), { expect: e?.modRevision ?? 0 }); console.log("ack " + next); break; }
    catch (err) { if (err.constructor.name !== "KvConflict") throw err; }
  }
}
console.log("done");`;

interface Proc {
  child: ChildProcess;
  lines: string[];
  exit: Promise<{ code: number | null; signal: string | null; stderr: string }>;
}

function run(code: string, runtime: "node" | "deno" = "node"): Proc {
  const child =
    runtime === "node"
      ? spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] })
      : spawn(DENO, ["eval", "--quiet", code], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const lines: string[] = [];
  let out = "";
  let stderr = "";
  child.stdout!.on("data", (d) => {
    out += d;
    const parts = out.split("\n");
    out = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on("data", (d) => (stderr += d));
  const exit = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stderr })));
  return { child, lines, exit };
}

async function finished(p: Proc): Promise<void> {
  const r = await p.exit;
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(p.lines[p.lines.length - 1]).toBe("done");
}

/** Lets the processes go once every one of them has said it is ready. */
async function goWhenReady(procs: Proc[], go: string): Promise<void> {
  const t0 = Date.now();
  while (!procs.every((p) => p.lines.includes("ready"))) {
    if (Date.now() - t0 > 30_000) throw new Error("the processes did not load in 30 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  writeFileSync(go, "");
}

function freshDir(): string {
  return join(root, `s${n++}`);
}

it("processes racing to create the same keys: exactly one wins each, at consecutive revisions", async () => {
  const dir = freshDir();
  const keys = 30;
  const procs = Array.from({ length: 6 }, (_, i) => run(CREATE(dir, `p${i}`, keys, i * 5, `${dir}.go`)));
  await goWhenReady(procs, `${dir}.go`);
  for (const p of procs) await finished(p);
  const wins = procs.flatMap((p, i) => p.lines.filter((l) => l.startsWith("{")).map((l) => ({ ...(JSON.parse(l) as { key: number; rev: number }), id: `p${i}` })));
  expect(wins.map((w) => w.key).sort((a, b) => a - b)).toEqual(Array.from({ length: keys }, (_, k) => k));
  expect(wins.map((w) => w.rev).sort((a, b) => a - b)).toEqual(Array.from({ length: keys }, (_, k) => k + 1));
  // Every process tried every key, and lost all the others.
  for (const p of procs) expect(p.lines.filter((l) => l.startsWith("{") || l.startsWith("lost "))).toHaveLength(keys);
  expect(new Set(wins.map((w) => w.id)).size).toBeGreaterThan(1);
  const kv = new FileKv(dir);
  const list = await kv.list("/race/");
  expect(list.revision).toBe(keys);
  for (const w of wins) expect(list.entries.find((e) => e.key === `/race/${w.key}`)).toMatchObject({ value: w.id, modRevision: w.rev });
  expect(existsSync(join(dir, "lock"))).toBe(false);
}, 60_000);

it("Node and Deno processes incrementing one counter lose no increment; a watcher elsewhere sees every revision in order", async () => {
  const dir = freshDir();
  const watcher = new FileKv(dir, { pollMs: 50 });
  const seen: KvEvent[] = [];
  const w = watcher.watch("/", 1, { events: (evs) => void seen.push(...evs) });
  const times = 40;
  const procs = [...Array.from({ length: 3 }, () => run(INCREMENT(dir, times, `${dir}.go`))), run(INCREMENT(dir, times, `${dir}.go`), "deno")];
  await goWhenReady(procs, `${dir}.go`);
  for (const p of procs) await finished(p);
  const total = times * procs.length;
  expect(await watcher.get("/counter")).toMatchObject({ value: String(total), modRevision: total, createRevision: 1 });
  for (const p of procs) expect(p.lines.filter((l) => l.startsWith("ack"))).toHaveLength(times);
  const deadline = Date.now() + 5000;
  while (seen.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  w.close();
  expect(seen.map((e) => `${e.entry.modRevision}=${e.entry.value}`)).toEqual(Array.from({ length: total }, (_, i) => `${i + 1}=${i + 1}`));
}, 90_000);

it("a process killed holding the lock: the others wait while it lives, then take the lock over, and the store stays whole", async () => {
  for (let round = 0; round < 2; round++) {
    const dir = freshDir();
    const lock = join(dir, "lock");
    const procs = Array.from({ length: 4 }, () => run(INCREMENT(dir, 60, `${dir}.go`)));
    await goWhenReady(procs, `${dir}.go`);
    const victim = procs[0];
    const holds = (): boolean => {
      try {
        return readFileSync(lock, "utf8").startsWith(`${victim.child.pid} `);
      } catch {
        return false;
      }
    };
    const acks = (ps: Proc[]) => ps.reduce((sum, p) => sum + p.lines.filter((l) => l.startsWith("ack")).length, 0);
    // Stop the victim while it holds the lock (in the middle of an operation).
    while (victim.lines.length < 2 + round * 10) await new Promise((r) => setTimeout(r, 2));
    for (const deadline = Date.now() + 15_000; ; ) {
      while (!holds() && Date.now() < deadline);
      victim.child.kill("SIGSTOP");
      if (holds()) break;
      victim.child.kill("SIGCONT");
      expect(Date.now()).toBeLessThan(deadline);
    }
    // A live holder's lock is respected: nobody gets on. (First the output the busy loop held up.)
    await new Promise((r) => setTimeout(r, 200));
    const before = acks(procs.slice(1));
    await new Promise((r) => setTimeout(r, 300));
    expect(acks(procs.slice(1))).toBe(before);
    victim.child.kill("SIGKILL");
    expect((await victim.exit).signal).toBe("SIGKILL");
    for (const p of procs.slice(1)) await finished(p);
    const acked = acks(procs);
    const kv = new FileKv(dir);
    const counter = await kv.get("/counter");
    // Its last increment may have been written but not acknowledged: at most one more.
    expect(Number(counter?.value) - acked, `round ${round}`).toBeGreaterThanOrEqual(0);
    expect(Number(counter?.value) - acked, `round ${round}`).toBeLessThanOrEqual(1);
    expect(counter?.modRevision).toBe(Number(counter?.value));
    expect((await kv.list("/")).revision).toBe(Number(counter?.value));
    expect(existsSync(lock)).toBe(false);
  }
}, 120_000);

it("a process that leaves a watch open still exits when its work is done", async () => {
  const dir = freshDir();
  const p = run(`
const { FileKv } = await import(${JSON.stringify(MODULE)});
const kv = new FileKv(${JSON.stringify(dir)}, { pollMs: 20 });
kv.watch("/", 1, { events() {} });
await kv.put("/a", "1");
console.log("done");`);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 20_000);
  await finished(p);
  clearTimeout(timer);
  expect(pidAlive(p.child.pid!)).toBe(false);
}, 30_000);

/**
 * FileKv against the shared Kv contract (test/support/kv-contract.ts), plus what only the file
 * store has: several instances sharing one directory, its lock (taken over from a dead writer,
 * or after its time), a change left half made by a crash, torn temp files, corrupt files,
 * watches that fall behind the trimmed log or see the directory replaced, and key file names.
 * Processes racing on one directory are in test/integration/file-kv.test.ts.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileKv, keyFileName, type FileKvOptions } from "../../src/cluster/file-kv.ts";
import { KvConflict, KvError, type KvList } from "../../src/cluster/kv.ts";
import { describeEvents, kvContract, recorder, waitFor } from "../support/kv-contract.ts";

const dirs: string[] = [];
const kvs: FileKv[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "store-filekv-"));
  dirs.push(dir);
  return dir;
}

function open(dir: string, opts: FileKvOptions = {}): FileKv {
  const kv = new FileKv(dir, { pollMs: 20, ...opts });
  kvs.push(kv);
  return kv;
}

afterEach(async () => {
  for (const kv of kvs.splice(0)) await kv.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

kvContract("FileKv", async () => {
  const dir = mkdtempSync(join(tmpdir(), "store-filekv-contract-"));
  const kv = new FileKv(dir, { pollMs: 50 });
  return { kv, cleanup: async () => (await kv.close(), rmSync(dir, { recursive: true, force: true })) };
});

/** The pid of a process that has exited. */
function deadPid(): number {
  const pid = spawnSync("true").pid!;
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  return pid;
}

describe("FileKv: one directory, several instances", () => {
  it("describes itself by its directory", () => {
    const dir = tempDir();
    expect(open(dir).description).toBe(`file ${dir}`);
  });

  it("two instances see each other's writes and watch events", async () => {
    const dir = tempDir();
    const a = open(dir);
    const b = open(dir);
    const wa = recorder();
    const wb = recorder();
    a.watch("/x/", 1, wa);
    b.watch("/x/", 1, wb);
    const r1 = await a.put("/x/one", "1");
    const r2 = await b.put("/x/two", "2", { expect: 0 });
    await b.delete("/x/one", { expect: r1 });
    expect(await b.get("/x/two")).toEqual({ key: "/x/two", value: "2", createRevision: r2, modRevision: r2, lease: 0 });
    expect((await a.list("/x/")).entries.map((e) => e.key)).toEqual(["/x/two"]);
    const want = [`put one=1 @${r1}`, `put two=2 @${r2}`, `delete one @${r2 + 1}`];
    await waitFor("both watches", () => wa.seen.length === 3 && wb.seen.length === 3);
    expect(describeEvents(wa.seen, "/x/")).toEqual(want);
    expect(describeEvents(wb.seen, "/x/")).toEqual(want);
  });

  it("keeps its revision and leases across instances: a new one goes on from the last", async () => {
    const dir = tempDir();
    const a = open(dir);
    await a.put("/k", "1");
    const lease = await a.grant(60);
    await a.close();
    const b = open(dir);
    expect(await b.put("/k", "2")).toBe(2);
    expect(await b.grant(60)).toBe(lease + 1);
    expect(await b.keepAlive(lease)).toBe(60);
  });

  it("of several instances making the same key at once (expect 0), exactly one wins", async () => {
    const dir = tempDir();
    const many = Array.from({ length: 8 }, () => open(dir));
    for (let round = 0; round < 5; round++) {
      const res = await Promise.allSettled(many.map((kv, i) => kv.put(`/race/${round}`, `w${i}`, { expect: 0 })));
      const won = res.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of res) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(KvConflict);
      expect((await many[3].get(`/race/${round}`))?.value).toBe(`w${won[0]}`);
    }
  });

  it("expires a lease on the clock given, from whichever instance acts first", async () => {
    let now = 1_000_000;
    const dir = tempDir();
    const a = open(dir, { now: () => now });
    const b = open(dir, { now: () => now });
    const l = await a.grant(10);
    const r = await a.put("/leased", "1", { lease: l });
    await a.put("/kept", "1");
    const w = recorder();
    a.watch("/", r + 2, w);
    now += 9_999;
    expect(await b.get("/leased")).toMatchObject({ lease: l });
    expect(await b.keepAlive(l)).toBe(10);
    now += 10_000;
    expect(await b.get("/leased")).toBeUndefined();
    expect(await a.keepAlive(l)).toBe(0);
    await waitFor("the expiry's delete", () => w.seen.length > 0);
    expect(describeEvents(w.seen)).toEqual([`delete /leased @${r + 2}`]);
  });

  it("a watch alone expires leases: their keys go without another write", async () => {
    let now = 1_000_000;
    const dir = tempDir();
    const kv = open(dir, { now: () => now });
    const r = await kv.put("/leased", "1", { lease: await kv.grant(5) });
    const w = recorder();
    kv.watch("/", r + 1, w);
    now += 5_000;
    await waitFor("the expiry's delete", () => w.seen.length > 0);
    expect(describeEvents(w.seen)).toEqual([`delete /leased @${r + 1}`]);
  });
});

describe("FileKv: the lock", () => {
  it("waits for a lock held by a live writer, then goes on", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    writeFileSync(join(dir, "lock"), `${process.pid} held-by-the-test`);
    let done = false;
    const put = kv.put("/a", "2").then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 150));
    expect(done).toBe(false);
    rmSync(join(dir, "lock"));
    expect(await put).toBe(2);
  });

  it("takes over a lock left by a dead process, and removes its temp files", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    const pid = deadPid();
    writeFileSync(join(dir, "lock"), `${pid} crashed`);
    writeFileSync(join(dir, "tmp", `${pid}-deadbeef-7`), '{"key":"/a","val');
    expect(await kv.put("/a", "2")).toBe(2);
    expect(existsSync(join(dir, "lock"))).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  });

  it("takes over a lock older than staleMs even if its pid lives", async () => {
    const dir = tempDir();
    const kv = open(dir, { staleMs: 1_000 });
    writeFileSync(join(dir, "lock"), `1 hung`);
    const old = new Date(Date.now() - 2_000);
    utimesSync(join(dir, "lock"), old, old);
    expect(await kv.put("/a", "1")).toBe(1);
  });

  it("gives up on a lock held too long, with an error naming the lock and its holder", async () => {
    const dir = tempDir();
    const kv = open(dir, { lockWaitMs: 100 });
    writeFileSync(join(dir, "lock"), `${process.pid} stuck`);
    const err = await kv.put("/a", "1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvError);
    expect((err as Error).message).toContain(`${join(dir, "lock")}: held by "${process.pid} stuck"`);
  });
});

describe("FileKv: crashes and damage", () => {
  it("ignores a torn temp file: reads and lists see only whole files", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    writeFileSync(join(dir, "tmp", "99999-torn-0"), '{"key":"/b","value":"half');
    expect((await kv.list("/")).entries.map((e) => `${e.key}=${e.value}`)).toEqual(["/a=1"]);
    expect(await kv.get("/b")).toBeUndefined();
  });

  it("finishes a change a crashed writer logged but did not apply, and its watchers get it", async () => {
    const dir = tempDir();
    const kv = open(dir);
    const r1 = await kv.put("/a", "1");
    const w = recorder();
    kv.watch("/", r1 + 1, w);
    // The writer wrote the log file (the commit point) and died before the key and meta.
    writeFileSync(join(dir, "log", String(r1 + 1)), JSON.stringify({ type: "put", entry: { key: "/b", value: "2", createRevision: r1 + 1, modRevision: r1 + 1, lease: 0 } }));
    expect(await kv.put("/c", "3")).toBe(r1 + 2);
    expect((await kv.list("/")).entries.map((e) => `${e.key}=${e.value}@${e.modRevision}`)).toEqual([`/a=1@${r1}`, `/b=2@${r1 + 1}`, `/c=3@${r1 + 2}`]);
    await waitFor("two events", () => w.seen.length === 2);
    expect(describeEvents(w.seen)).toEqual([`put /b=2 @${r1 + 1}`, `put /c=3 @${r1 + 2}`]);
  });

  it("reports a corrupt key file as a KvError naming the file", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    const file = join(dir, "keys", keyFileName("/a"));
    writeFileSync(file, "{not json");
    for (const op of [kv.get("/a"), kv.list("/"), kv.put("/a", "2")]) {
      const err = await op.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KvError);
      expect((err as Error).message).toContain(`${file}: corrupt`);
    }
  });

  it("a watch reports a corrupt meta as lost, then restored when it is whole again", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    const w = recorder();
    kv.watch("/", 2, w);
    const meta = readFileSync(join(dir, "meta"), "utf8");
    writeFileSync(join(dir, "meta"), "garbage");
    await waitFor("lost", () => w.statuses.length === 1);
    expect(w.statuses[0]).toMatch(/^lost: file .*meta: corrupt/);
    writeFileSync(join(dir, "meta"), meta);
    await waitFor("restored", () => w.statuses.length === 2);
    expect(w.statuses[1]).toBe(`restored: file ${dir}`);
    await kv.put("/b", "2");
    await waitFor("the event", () => w.seen.length === 1);
  });

  it("refuses a directory it cannot create, naming it", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "");
    expect(() => new FileKv(join(dir, "file", "store"))).toThrow(/file\/store\/keys: cannot create the store's directory/);
  });
});

describe("FileKv: the log and resync", () => {
  it("keeps the last keepLog changes; a watch from further back lists again", async () => {
    const dir = tempDir();
    const kv = open(dir, { keepLog: 4 });
    for (let i = 1; i <= 10; i++) await kv.put(`/k${i % 3}`, String(i));
    expect(readdirSync(join(dir, "log")).map(Number).sort((a, b) => a - b)).toEqual([7, 8, 9, 10]);
    const lists: KvList[] = [];
    const w = { ...recorder(), resync: (l: KvList) => void lists.push(l) };
    kv.watch("/", 3, w);
    await waitFor("a resync", () => lists.length === 1);
    expect(lists[0].revision).toBe(10);
    expect(lists[0].entries.map((e) => `${e.key}=${e.value}`)).toEqual(["/k0=9", "/k1=10", "/k2=8"]);
    await kv.put("/k1", "11");
    await waitFor("the next event", () => w.seen.length === 1);
    expect(describeEvents(w.seen)).toEqual(["put /k1=11 @11"]);
  });

  it("a watch within the log replays from there without a resync", async () => {
    const dir = tempDir();
    const kv = open(dir, { keepLog: 4 });
    for (let i = 1; i <= 10; i++) await kv.put("/k", String(i));
    const w = recorder();
    kv.watch("/", 7, w);
    await waitFor("four events", () => w.seen.length === 4);
    expect(w.resyncs).toBe(0);
    expect(w.seen.map((e) => e.entry.value)).toEqual(["7", "8", "9", "10"]);
  });

  it("a watch lists again when the directory is replaced by a new store", async () => {
    const dir = tempDir();
    const kv = open(dir);
    await kv.put("/old", "1");
    await kv.put("/old", "2");
    const lists: KvList[] = [];
    const w = { ...recorder(), resync: (l: KvList) => void lists.push(l) };
    kv.watch("/", 3, w);
    await new Promise((r) => setTimeout(r, 60));
    for (const sub of ["meta", "keys", "log", "leases"]) rmSync(join(dir, sub), { recursive: true, force: true });
    const fresh = open(dir);
    await fresh.put("/new", "1");
    await waitFor("a resync", () => lists.length === 1);
    expect(lists[0].entries.map((e) => e.key)).toEqual(["/new"]);
    expect(w.seen).toEqual([]);
  });

  it("a watch lists again when the directory is restored from an older copy", async () => {
    const dir = tempDir();
    const backup = tempDir();
    const kv = open(dir);
    await kv.put("/a", "1");
    cpSync(dir, backup, { recursive: true });
    await kv.put("/a", "2");
    await kv.put("/b", "1");
    const lists: KvList[] = [];
    const w = { ...recorder(), resync: (l: KvList) => void lists.push(l) };
    kv.watch("/", 4, w);
    await new Promise((r) => setTimeout(r, 60));
    for (const sub of ["meta", "keys", "log"]) rmSync(join(dir, sub), { recursive: true });
    cpSync(backup, dir, { recursive: true });
    await waitFor("a resync", () => lists.length === 1);
    expect(lists[0]).toMatchObject({ revision: 1, entries: [{ key: "/a", value: "1", modRevision: 1 }] });
  });

  it("a watch from a future revision waits for it", async () => {
    const dir = tempDir();
    const kv = open(dir);
    const w = recorder();
    kv.watch("/", 3, w);
    await kv.put("/a", "1");
    await kv.put("/a", "2");
    await kv.put("/a", "3");
    await waitFor("the third", () => w.seen.length === 1);
    await new Promise((r) => setTimeout(r, 60));
    expect(describeEvents(w.seen)).toEqual(["put /a=3 @3"]);
    expect(w.resyncs).toBe(0);
  });
});

describe("FileKv: key file names", () => {
  it("maps keys to names one to one, with no dot names and nothing a shell or a path would split", () => {
    const keys = ["/a", "/a/", "a", ".", "..", "/a.b", "/a%2Eb", "/a%2eb", "/a b", "/ü", "/a~b", "/a*b", "#x", "/a/b/c"];
    const names = keys.map(keyFileName);
    expect(new Set(names).size).toBe(keys.length);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_%-]+$/);
    expect(keyFileName("/tapnet/lab/pods/default/web")).toBe("%2Ftapnet%2Flab%2Fpods%2Fdefault%2Fweb");
    expect(keyFileName(".")).toBe("%2E");
  });

  it("refuses a key no file can be named for (a lone UTF-16 surrogate) with a KvError", async () => {
    const kv = open(tempDir());
    await expect(kv.put("/a\uD800", "v")).rejects.toThrow(KvError);
    await expect(kv.put("/a\uD800", "v")).rejects.toThrow("cannot name a file for this key");
  });

  it("names a long key by its hash and still lists it under its prefix", async () => {
    const long = "/long/" + "x".repeat(300);
    expect(keyFileName(long)).toMatch(/^#[0-9a-f]{64}$/);
    const dir = tempDir();
    const kv = open(dir);
    await kv.put(long, "v");
    await kv.put("/other/" + "y".repeat(300), "w");
    await kv.put("/long/short", "s");
    expect((await kv.list("/long/")).entries.map((e) => e.key)).toEqual(["/long/short", long]);
    expect(await kv.get(long)).toMatchObject({ value: "v" });
    expect(await kv.delete(long)).toBe(true);
    expect((await kv.list("/long/")).entries.map((e) => e.key)).toEqual(["/long/short"]);
  });

  it("keeps unusual keys byte for byte through list and watch", async () => {
    const dir = tempDir();
    const kv = open(dir);
    const keys = ["/u/ü", "/u/a b", "/u/.", "/u/..", "/u/%2E", "/u/a\nb", "/u/日本"];
    const w = recorder();
    kv.watch("/u/", 1, w);
    for (const k of keys) await kv.put(k, k);
    expect((await kv.list("/u/")).entries.map((e) => e.key)).toEqual([...keys].sort());
    await waitFor("the events", () => w.seen.length === keys.length);
    expect(w.seen.map((e) => e.entry.key)).toEqual(keys);
  });
});

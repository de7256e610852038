/**
 * The Kv contract (src/cluster/kv.ts) as one shared vitest suite: every store (memory, file,
 * etcd) runs it and must behave the same. `kvContract(name, make)` declares a describe() block;
 * `make` is called before each test and gives a Kv plus its cleanup. The tests write under a
 * key prefix of their own, so several may share one store (a real etcd), and they check only
 * what the contract promises: revisions that rise by one per write, conditional writes decided
 * on modRevision, prefix lists in key order, leases whose keys go when they end, and watches
 * that deliver every change in order from a revision (also past ones) until closed.
 * Watches may be asynchronous (a polled file store, a network stream): tests wait for events
 * with a deadline instead of expecting them at once.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KvConflict, KvError, type Kv, type KvEvent, type KvWatch, type WatchHandlers } from "../../src/cluster/kv.ts";
import { prng, trials } from "./random.ts";

export interface KvUnderTest {
  kv: Kv;
  cleanup(): Promise<void>;
}

/** Polls `cond` every 20 ms until it holds; fails after `ms` with `what`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A watch whose events are collected in order, with the revisions checked to never go back. */
export interface Recorder extends WatchHandlers {
  seen: KvEvent[];
  resyncs: number;
  statuses: string[];
}

export function recorder(): Recorder {
  const r: Recorder = {
    seen: [],
    resyncs: 0,
    statuses: [],
    events(evs) {
      for (const e of evs) {
        const last = r.seen[r.seen.length - 1];
        if (last && e.entry.modRevision < last.entry.modRevision) throw new Error(`event at revision ${e.entry.modRevision} after ${last.entry.modRevision}`);
        r.seen.push(e);
      }
    },
    resync() {
      r.resyncs++;
    },
    status(state, detail) {
      r.statuses.push(`${state}: ${detail}`);
    },
  };
  return r;
}

/** The events as "put key=value @rev" / "delete key @rev" lines, for readable comparisons. */
export function describeEvents(evs: KvEvent[], prefix = ""): string[] {
  return evs.map((e) => {
    const key = e.entry.key.slice(prefix.length);
    return e.type === "put" ? `put ${key}=${e.entry.value} @${e.entry.modRevision}` : `delete ${key} @${e.entry.modRevision}`;
  });
}

export function kvContract(name: string, make: () => Promise<KvUnderTest>): void {
  describe(`Kv contract: ${name}`, () => {
    let under: KvUnderTest;
    let kv: Kv;
    let p: string;
    let n = 0;
    const run = Math.floor(Math.random() * 2 ** 32).toString(36);
    const watches: KvWatch[] = [];
    const leases: number[] = [];

    beforeEach(async () => {
      under = await make();
      kv = under.kv;
      p = `/kvc-${run}/t${n++}/`;
    });
    afterEach(async () => {
      for (const w of watches.splice(0)) w.close();
      for (const l of leases.splice(0)) await kv.revoke(l).catch(() => {});
      await under.cleanup();
    });
    const watch = (prefix: string, from: number, h: WatchHandlers): KvWatch => {
      const w = kv.watch(prefix, from, h);
      watches.push(w);
      return w;
    };
    const grant = async (ttl: number): Promise<number> => {
      const id = await kv.grant(ttl);
      leases.push(id);
      return id;
    };

    it("names itself", () => {
      expect(kv.description).toMatch(/\S/);
    });

    it("puts and gets, with the revisions of creation and of the last write", async () => {
      expect(await kv.get(`${p}a`)).toBeUndefined();
      const r1 = await kv.put(`${p}a`, "one");
      expect(await kv.get(`${p}a`)).toEqual({ key: `${p}a`, value: "one", createRevision: r1, modRevision: r1, lease: 0 });
      const r2 = await kv.put(`${p}a`, "two");
      expect(r2).toBe(r1 + 1);
      expect(await kv.get(`${p}a`)).toEqual({ key: `${p}a`, value: "two", createRevision: r1, modRevision: r2, lease: 0 });
      // Deleting and writing again makes a new key: its creation revision is new.
      expect(await kv.delete(`${p}a`)).toBe(true);
      const r4 = await kv.put(`${p}a`, "three");
      expect(r4).toBe(r2 + 2);
      expect(await kv.get(`${p}a`)).toMatchObject({ createRevision: r4, modRevision: r4 });
    });

    it("keeps values byte for byte: empty, unicode, newlines, JSON", async () => {
      const values = ["", "ü – 日本 🙂", "line\nline\r\n\ttab", JSON.stringify({ kind: "Pod", metadata: { name: "web", labels: { "a/b": "c" } } })];
      for (const [i, v] of values.entries()) await kv.put(`${p}v${i}`, v);
      for (const [i, v] of values.entries()) expect((await kv.get(`${p}v${i}`))?.value).toBe(v);
    });

    it("raises the revision by one per write and not for a refused one", async () => {
      const r1 = await kv.put(`${p}x`, "1");
      const r2 = await kv.put(`${p}y`, "1");
      await expect(kv.put(`${p}x`, "2", { expect: 0 })).rejects.toThrow(KvConflict);
      expect(await kv.delete(`${p}y`)).toBe(true);
      expect(await kv.delete(`${p}y`)).toBe(false);
      const r4 = await kv.put(`${p}z`, "1");
      expect([r2, r4]).toEqual([r1 + 1, r1 + 3]);
      expect((await kv.list(p)).revision).toBe(r4);
    });

    it("writes with expect 0 only when the key does not exist", async () => {
      const r1 = await kv.put(`${p}k`, "first", { expect: 0 });
      const err = await kv.put(`${p}k`, "second", { expect: 0 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KvConflict);
      expect(err).toBeInstanceOf(KvError);
      expect((err as Error).message).toContain(`${p}k`);
      expect(await kv.get(`${p}k`)).toMatchObject({ value: "first", modRevision: r1 });
    });

    it("writes with expect N only when the key is at modRevision N", async () => {
      const r1 = await kv.put(`${p}k`, "a");
      const r2 = await kv.put(`${p}k`, "b", { expect: r1 });
      expect(r2).toBe(r1 + 1);
      await expect(kv.put(`${p}k`, "c", { expect: r1 })).rejects.toThrow(KvConflict);
      await expect(kv.put(`${p}k`, "c", { expect: r2 + 5 })).rejects.toThrow(KvConflict);
      await expect(kv.put(`${p}absent`, "c", { expect: r2 })).rejects.toThrow(KvConflict);
      expect(await kv.get(`${p}absent`)).toBeUndefined();
      expect(await kv.get(`${p}k`)).toMatchObject({ value: "b", createRevision: r1, modRevision: r2 });
    });

    it("deletes conditionally on modRevision", async () => {
      const r1 = await kv.put(`${p}k`, "a");
      await expect(kv.delete(`${p}k`, { expect: r1 + 1 })).rejects.toThrow(KvConflict);
      await expect(kv.delete(`${p}k`, { expect: 0 })).rejects.toThrow(KvConflict);
      expect(await kv.get(`${p}k`)).toMatchObject({ value: "a" });
      expect(await kv.delete(`${p}k`, { expect: r1 })).toBe(true);
      expect(await kv.get(`${p}k`)).toBeUndefined();
      expect(await kv.delete(`${p}k`, { expect: 0 })).toBe(false);
      await expect(kv.delete(`${p}k`, { expect: r1 })).rejects.toThrow(KvConflict);
    });

    it("lists a prefix in key order, and only that prefix", async () => {
      const inside = ["dir/b", "dir/a", "dir/a/deep", "dir/é", "dir/Z", "dir/"];
      const outside = ["dir", "dir0", "dis/a", "di"];
      for (const k of [...inside, ...outside].sort(() => Math.random() - 0.5)) await kv.put(`${p}${k}`, k);
      const last = await kv.put(`${p}dir/c`, "dir/c");
      const list = await kv.list(`${p}dir/`);
      expect(list.entries.map((e) => e.key.slice(p.length))).toEqual(["dir/", "dir/Z", "dir/a", "dir/a/deep", "dir/b", "dir/c", "dir/é"]);
      expect(list.entries.every((e) => e.value === e.key.slice(p.length) && e.modRevision > 0 && e.createRevision === e.modRevision)).toBe(true);
      expect(list.revision).toBe(last);
      expect((await kv.list(`${p}nothing/`)).entries).toEqual([]);
    });

    it("matches a naive model over a random run of writes and conditional writes", async () => {
      const rnd = prng(20261123);
      const model = new Map<string, { value: string; create: number; mod: number }>();
      let rev = (await kv.list(p)).revision;
      const keys = ["a", "b", "c", "d/e"];
      for (let i = 0; i < trials(150); i++) {
        const key = p + keys[Math.floor(rnd() * keys.length)];
        const have = model.get(key);
        const op = rnd();
        // expect: undefined, the right revision, 0, or a wrong one.
        const pick = rnd();
        const expectRev = pick < 0.4 ? undefined : pick < 0.7 ? (have?.mod ?? 0) : pick < 0.85 ? 0 : (have?.mod ?? 0) + 1 + Math.floor(rnd() * 3);
        const holds = expectRev === undefined || expectRev === (have?.mod ?? 0);
        if (op < 0.6) {
          const value = `v${i}`;
          const res = await kv.put(key, value, expectRev === undefined ? {} : { expect: expectRev }).catch((e: unknown) => e);
          if (!holds) {
            expect(res, `put #${i}`).toBeInstanceOf(KvConflict);
            continue;
          }
          expect(res, `put #${i}`).toBe(++rev);
          model.set(key, { value, create: have?.create ?? rev, mod: rev });
        } else {
          const res = await kv.delete(key, expectRev === undefined ? {} : { expect: expectRev }).catch((e: unknown) => e);
          if (!holds) {
            expect(res, `delete #${i}`).toBeInstanceOf(KvConflict);
            continue;
          }
          expect(res, `delete #${i}`).toBe(have !== undefined);
          if (have) {
            rev++;
            model.delete(key);
          }
        }
      }
      const list = await kv.list(p);
      expect(list.revision).toBe(rev);
      const want = [...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, m]) => ({ key, value: m.value, createRevision: m.create, modRevision: m.mod, lease: 0 }));
      expect(list.entries).toEqual(want);
    });

    it("grants leases, keeps them alive, and revoking one deletes its keys", async () => {
      const l1 = await grant(30);
      const l2 = await grant(30);
      for (const l of [l1, l2]) expect(Number.isSafeInteger(l) && l !== 0).toBe(true);
      expect(l1).not.toBe(l2);
      await kv.put(`${p}a`, "1", { lease: l1 });
      await kv.put(`${p}b`, "1", { lease: l1 });
      await kv.put(`${p}c`, "1", { lease: l2 });
      await kv.put(`${p}d`, "1");
      expect(await kv.get(`${p}a`)).toMatchObject({ lease: l1 });
      const ttl = await kv.keepAlive(l1);
      expect(ttl).toBeGreaterThanOrEqual(29);
      expect(ttl).toBeLessThanOrEqual(30);
      await kv.revoke(l1);
      expect((await kv.list(p)).entries.map((e) => e.key.slice(p.length))).toEqual(["c", "d"]);
      expect(await kv.keepAlive(l1)).toBe(0);
      await kv.revoke(l1); // Revoking a lease that is gone is not an error.
    });

    it("refuses a write to a lease that does not exist, as an error that is not a conflict", async () => {
      const l = await grant(30);
      await kv.revoke(l);
      const err = await kv.put(`${p}a`, "1", { lease: l }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KvError);
      expect(err).not.toBeInstanceOf(KvConflict);
      expect(await kv.get(`${p}a`)).toBeUndefined();
    });

    it("deletes the keys of a lease that is not kept alive, and its keepAlive then says 0", async () => {
      const l = await grant(1);
      const r = await kv.put(`${p}leased`, "1", { lease: l });
      await kv.put(`${p}kept`, "1");
      const w = recorder();
      watch(p, r, w);
      await waitFor("the leased key to expire", async () => (await kv.get(`${p}leased`)) === undefined, 15_000);
      expect(await kv.keepAlive(l)).toBe(0);
      expect(await kv.get(`${p}kept`)).toMatchObject({ value: "1" });
      await waitFor("the expiry's delete event", () => w.seen.some((e) => e.type === "delete" && e.entry.key === `${p}leased`));
    }, 30_000);

    it("watches from a past revision: every change since, in order, then live ones", async () => {
      const r1 = await kv.put(`${p}a`, "1");
      await kv.put(`${p}b`, "1");
      await kv.delete(`${p}a`);
      await kv.put(`${p}b`, "2");
      const w = recorder();
      watch(p, r1, w);
      await waitFor("the past events", () => w.seen.length >= 4);
      const r5 = await kv.put(`${p}c`, "x");
      await kv.delete(`${p}b`);
      await waitFor("the live events", () => w.seen.length >= 6);
      await new Promise((r) => setTimeout(r, 100));
      expect(describeEvents(w.seen, p)).toEqual([`put a=1 @${r1}`, `put b=1 @${r1 + 1}`, `delete a @${r1 + 2}`, `put b=2 @${r1 + 3}`, `put c=x @${r5}`, `delete b @${r5 + 1}`]);
      const b = w.seen[3].entry;
      expect(b).toMatchObject({ createRevision: r1 + 1, lease: 0 });
      expect(w.seen[2].entry.value).toBe("");
    });

    it("watches from list revision + 1 and misses nothing written after the list", async () => {
      await kv.put(`${p}old`, "1");
      const list = await kv.list(p);
      const writes = [kv.put(`${p}n1`, "1"), kv.put(`${p}n2`, "2")];
      const w = recorder();
      watch(p, list.revision + 1, w);
      const revs = await Promise.all(writes);
      const r3 = await kv.put(`${p}n3`, "3");
      await waitFor("three events", () => w.seen.length >= 3);
      expect(w.seen.map((e) => e.entry.modRevision)).toEqual([...revs.sort((a, b) => a - b), r3]);
      expect(w.seen.some((e) => e.entry.key === `${p}old`)).toBe(false);
    });

    it("watches only its prefix", async () => {
      const w = recorder();
      const from = (await kv.list(p)).revision + 1;
      watch(`${p}in/`, from, w);
      await kv.put(`${p}in`, "no");
      await kv.put(`${p}out/x`, "no");
      await kv.put(`${p}in/x`, "yes");
      await kv.put(`${p}in0`, "no");
      const last = await kv.put(`${p}in/y`, "yes");
      await waitFor("the two events inside", () => w.seen.length >= 2);
      await new Promise((r) => setTimeout(r, 200));
      expect(describeEvents(w.seen, p)).toEqual([`put in/x=yes @${last - 2}`, `put in/y=yes @${last}`]);
    });

    it("delivers the deletes of a revoked lease's keys", async () => {
      const l = await grant(30);
      await kv.put(`${p}a`, "1", { lease: l });
      const r = await kv.put(`${p}b`, "1", { lease: l });
      const w = recorder();
      watch(p, r + 1, w);
      await kv.revoke(l);
      await waitFor("two deletes", () => w.seen.length >= 2);
      expect(w.seen.map((e) => `${e.type} ${e.entry.key.slice(p.length)}`).sort()).toEqual(["delete a", "delete b"]);
    });

    it("stops delivering once closed", async () => {
      const closed = recorder();
      const open = recorder();
      const from = (await kv.list(p)).revision + 1;
      const w = watch(p, from, closed);
      watch(p, from, open);
      await kv.put(`${p}a`, "1");
      await waitFor("both watches to see the first write", () => closed.seen.length === 1 && open.seen.length === 1);
      w.close();
      w.close(); // Closing twice is harmless.
      await kv.put(`${p}b`, "1");
      await waitFor("the open watch to see the second write", () => open.seen.length === 2);
      await new Promise((r) => setTimeout(r, 200));
      expect(closed.seen.length).toBe(1);
    });
  });
}

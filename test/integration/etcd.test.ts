/**
 * EtcdKv against a real etcd 3.4 (/usr/bin/etcd) on 127.0.0.1, on a free port pair and a
 * temporary data directory, both removed afterwards even when a test fails. It runs the
 * shared Kv contract, then what only a real server shows: a watch that outlives etcd being
 * stopped and started again (status lost, then restored, and nothing missed), a watch resumed
 * from a compacted revision (resync with a list), and requests to a dead endpoint failing
 * quickly with an error that names it. Also startEtcd's own cases: in a network namespace,
 * an etcd that cannot start (its log's tail in the error), and stopEtcd sparing a pid that is
 * not an etcd.
 */
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdKv } from "../../src/cluster/etcd.ts";
import { KvError, type KvEntry } from "../../src/cluster/kv.ts";
import { EtcdServerError, isEtcd, startEtcd, stopEtcd, type EtcdServerOptions } from "../../src/lab/etcd-server.ts";
import { kvContract, recorder, waitFor } from "../support/kv-contract.ts";

/** A TCP port nothing listens on now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let dir = "";
let opts: EtcdServerOptions;
let pid = 0;
let url = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tapnet-etcd-it-"));
  const [client, peer] = [await freePort(), await freePort()];
  opts = { name: "etcd-it", dataDir: join(dir, "data"), clientUrl: `http://127.0.0.1:${client}`, peerUrl: `http://127.0.0.1:${peer}`, logFile: join(dir, "etcd.log") };
  ({ pid, url } = await startEtcd(opts));
});

afterAll(async () => {
  if (pid) await stopEtcd(pid);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

kvContract("EtcdKv on etcd 3.4", async () => {
  const kv = new EtcdKv([url]);
  return { kv, cleanup: () => kv.close() };
});

describe("EtcdKv on a real etcd", () => {
  it("starts an etcd that is really etcd, and describes itself by endpoint", () => {
    expect(isEtcd(pid)).toBe(true);
    expect(new EtcdKv([url]).description).toBe(`etcd ${url}`);
  });

  it("keeps a watch through etcd stopped and started again: lost, restored, nothing missed", async () => {
    const kv = new EtcdKv([url], { timeoutMs: 2000 });
    const p = "/restart/";
    try {
      const from = (await kv.put(`${p}a`, "1")) + 1;
      const w = recorder();
      const watch = kv.watch(p, from - 1, w);
      await kv.put(`${p}b`, "1");
      await waitFor("the first two events", () => w.seen.length === 2);

      await stopEtcd(pid);
      pid = 0;
      await waitFor("the watch to report the loss", () => w.statuses.some((s) => s.startsWith("lost")));
      const err = await kv.put(`${p}c`, "down").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KvError);
      expect(String(err)).toContain(`etcd ${url}`);
      // Let the retries back off a few times before etcd comes back.
      await new Promise((r) => setTimeout(r, 1500));

      ({ pid } = await startEtcd(opts));
      await kv.put(`${p}c`, "up");
      await kv.delete(`${p}a`);
      const last = await kv.put(`${p}b`, "2");
      await waitFor("the events after the restart", () => w.seen.length === 5, 15_000);
      expect(w.statuses.map((s) => s.split(":")[0])).toEqual(["lost", "restored"]);
      expect(w.seen.map((e) => e.entry.modRevision)).toEqual([from - 1, from, last - 2, last - 1, last]);

      // The state the events build is the state a list reads.
      const state = new Map<string, KvEntry>();
      for (const e of w.seen) e.type === "put" ? state.set(e.entry.key, e.entry) : state.delete(e.entry.key);
      const list = await kv.list(p);
      expect([...state.values()].sort((x, y) => (x.key < y.key ? -1 : 1))).toEqual(list.entries);
      watch.close();
    } finally {
      await kv.close();
    }
  }, 60_000);

  it("resumes a watch from a compacted revision by listing again (resync)", async () => {
    const kv = new EtcdKv([url]);
    const p = "/compact/";
    try {
      const r1 = await kv.put(`${p}a`, "1");
      await kv.put(`${p}b`, "1");
      const r3 = await kv.put(`${p}a`, "2");
      const res = await fetch(`${url}/v3/kv/compaction`, { method: "POST", body: JSON.stringify({ revision: String(r3), physical: true }) });
      expect(res.ok).toBe(true);
      const lists: { keys: string[]; revision: number }[] = [];
      const w = recorder();
      const watch = kv.watch(p, r1, { ...w, events: (evs) => w.events(evs), resync: (l) => lists.push({ keys: l.entries.map((e) => `${e.key}=${e.value}`), revision: l.revision }) });
      await waitFor("the resync", () => lists.length === 1);
      expect(lists[0]).toEqual({ keys: [`${p}a=2`, `${p}b=1`], revision: r3 });
      const r4 = await kv.put(`${p}c`, "1");
      await waitFor("the event after the resync", () => w.seen.length === 1);
      expect(w.seen.map((e) => e.entry.modRevision)).toEqual([r4]);
      watch.close();
    } finally {
      await kv.close();
    }
  });

  it("fails over from a dead endpoint to a live one", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const kv = new EtcdKv([dead, url], { timeoutMs: 2000 });
    try {
      const rev = await kv.put("/failover/a", "1");
      expect(await kv.get("/failover/a")).toMatchObject({ modRevision: rev });
      const w = recorder();
      kv.watch("/failover/", rev, w);
      await waitFor("the watch on the live endpoint", () => w.seen.length === 1);
    } finally {
      await kv.close();
    }
  });

  it("fails fast, naming the endpoint, when nothing listens", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const kv = new EtcdKv([dead], { timeoutMs: 2000 });
    const t0 = Date.now();
    const err = await kv.get("/x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvError);
    expect((err as Error).message).toBe(`etcd ${dead}: kv/range: connection refused`);
    expect(Date.now() - t0).toBeLessThan(2000);
    await kv.close();
  });
});

describe("startEtcd and stopEtcd", () => {
  it("runs etcd inside a network namespace, checking its health from in there", async () => {
    const ns = `etcd-it-${process.pid}`;
    const sub = join(dir, "netns");
    let started = 0;
    try {
      spawnSync("ip", ["netns", "add", ns]);
      spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const o = { name: "etcd-ns", dataDir: join(sub, "data"), clientUrl: "http://127.0.0.1:2379", peerUrl: "http://127.0.0.1:2380", netns: ns, logFile: join(sub, "etcd.log") };
      const s = await startEtcd(o);
      started = s.pid;
      expect(s.url).toBe("http://127.0.0.1:2379");
      expect(isEtcd(started)).toBe(true);
      // It is in the namespace, not here: the namespace's inode is not ours.
      const nsOf = (pid: number | string) => spawnSync("readlink", [`/proc/${pid}/ns/net`], { encoding: "utf8" }).stdout.trim();
      expect(nsOf(started)).not.toBe(nsOf("self"));
      await stopEtcd(started);
      expect(isEtcd(started)).toBe(false);
    } finally {
      if (started) await stopEtcd(started);
      if (existsSync(`/run/netns/${ns}`)) spawnSync("ip", ["netns", "del", ns]);
    }
  });

  it("throws with the log's tail when etcd cannot start", async () => {
    // The client port is the running etcd's: the second one exits at once.
    const o = { ...opts, name: "etcd-clash", dataDir: join(dir, "clash"), peerUrl: `http://127.0.0.1:${await freePort()}`, logFile: join(dir, "clash.log") };
    const err = await startEtcd(o).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdServerError);
    expect((err as Error).message).toMatch(/^etcd etcd-clash did not start \(exit status \d+\); the end of .*clash\.log:\n[^]*address already in use/);
  });

  it("refuses bad URLs, and leaves alone a pid that is not an etcd", async () => {
    await expect(startEtcd({ ...opts, clientUrl: "127.0.0.1:2379" })).rejects.toThrow('etcd clientUrl "127.0.0.1:2379": must be http://ip:port');
    const sleeper = spawn("sleep", ["30"]);
    try {
      await stopEtcd(sleeper.pid!);
      expect(sleeper.exitCode).toBe(null);
      expect(sleeper.signalCode).toBe(null);
    } finally {
      sleeper.kill();
    }
  });
});

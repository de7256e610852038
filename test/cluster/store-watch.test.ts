/**
 * ObjectStore's watch: the first list, live changes, resyncs, bad values. Then a randomized run
 * of creates, updates, puts and deletes against a naive model, with watchers whose
 * reconstructed view must end equal to the model: over MemoryKv with lost events and forced
 * resyncs, and over FileKv with a log short enough that its watches fall behind and resync.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileKv } from "../../src/cluster/file-kv.ts";
import { KvError, type KvList, type WatchHandlers } from "../../src/cluster/kv.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { refOf, type Kind, type KubeObject } from "../../src/cluster/objects.ts";
import { AlreadyExistsError, ConflictError, NotFoundError, ObjectStore, StoreError, type WatchEvent } from "../../src/cluster/store.ts";
import { waitFor } from "../support/kv-contract.ts";
import { prng, trials } from "../support/random.ts";
import { fresh, name, obj, Wrapped } from "../support/store-fixtures.ts";

function view() {
  const objects = new Map<string, KubeObject>();
  const log: string[] = [];
  const onEvent = (ev: WatchEvent) => {
    const k = name(ev.object);
    log.push(`${ev.type} ${k}@${ev.object.metadata.resourceVersion}`);
    if (ev.type === "ADDED" && objects.has(k)) throw new Error(`ADDED ${k}, which the watcher has`);
    if (ev.type !== "ADDED" && !objects.has(k)) throw new Error(`${ev.type} ${k}, which the watcher does not have`);
    if (ev.type === "DELETED") {
      expect(ev.object).toEqual(objects.get(k));
      objects.delete(k);
    } else objects.set(k, ev.object);
  };
  return { objects, log, onEvent };
}

describe("ObjectStore: watch", () => {
  it("reports the objects there as ADDED before ready, then changes as they come, for its kinds only", async () => {
    const { store } = fresh();
    await store.create(obj("Pod", "a", "x"));
    await store.create(obj("Node", "n1"));
    await store.create(obj("Service", "s", "x"));
    const v = view();
    const w = store.watch(["Pod", "Node"], v.onEvent);
    await w.ready;
    expect(v.log).toEqual(["ADDED Pod/x/a@1", "ADDED Node//n1@2"]);
    await store.update(obj("Pod", "a", "x", { v: 2 }));
    await store.create(obj("Pod", "b", "y"));
    await store.create(obj("Service", "t", "x"));
    const last = await store.get({ kind: "Pod", namespace: "x", name: "a" });
    await store.delete({ kind: "Pod", namespace: "x", name: "a" });
    await store.delete({ kind: "Node", name: "n1" });
    expect(v.log.slice(2)).toEqual(["MODIFIED Pod/x/a@4", "ADDED Pod/y/b@5", "DELETED Pod/x/a@4", "DELETED Node//n1@2"]);
    expect(v.objects.get("Pod/y/b")?.metadata.resourceVersion).toBe("5");
    expect(last?.spec).toEqual({ v: 2 });
    w.close();
    await store.create(obj("Pod", "c", "x"));
    expect(v.log).toHaveLength(6);
  });

  it("misses nothing written between its list and its watch, and repeats nothing", async () => {
    const kv = new Wrapped(new MemoryKv());
    const store = new ObjectStore(kv, "lab");
    await store.create(obj("Node", "n1"));
    let n = 0;
    // After each kind's list, a write to that kind and to the other: Pods listed, then a Node and a Pod written, then Nodes listed...
    kv.afterList = async () => {
      await kv.inner.put("/tapnet/lab/nodes/late", JSON.stringify(obj("Node", "late")));
      await kv.inner.put("/tapnet/lab/pods/x/late", JSON.stringify(obj("Pod", "late", "x")));
      // n1 deleted and made again: the Node list has the new one, and the watch replays both events.
      await kv.inner.delete("/tapnet/lab/nodes/n1");
      await kv.inner.put("/tapnet/lab/nodes/n1", JSON.stringify(obj("Node", "n1")));
      n++;
    };
    const v = view();
    const w = store.watch(["Pod", "Node"], v.onEvent);
    await w.ready;
    expect(n).toBe(1);
    expect(v.log).toEqual(["ADDED Node//late@2", "ADDED Node//n1@5", "ADDED Pod/x/late@3"]);
    await store.delete({ kind: "Node", name: "late" });
    expect(v.log.slice(3)).toEqual(["DELETED Node//late@2"]);
    w.close();
  });

  it("after a resync reports what changed while it was away, and goes on", async () => {
    const kv = new Wrapped(new MemoryKv());
    const store = new ObjectStore(kv, "lab");
    const statuses: string[] = [];
    await store.create(obj("Pod", "stays", "x"));
    await store.create(obj("Pod", "changes", "x"));
    await store.create(obj("Pod", "goes", "x"));
    const v = view();
    const w = store.watch(["Pod"], v.onEvent, { onStatus: (s, d) => statuses.push(`${s} ${d}`) });
    await w.ready;
    // Changes the watch does not see, then a resync.
    kv.deaf = true;
    await kv.inner.put("/tapnet/lab/pods/x/changes", JSON.stringify(obj("Pod", "changes", "x", { v: 2 })));
    await kv.inner.delete("/tapnet/lab/pods/x/goes");
    await kv.inner.put("/tapnet/lab/pods/x/new", JSON.stringify(obj("Pod", "new", "x")));
    expect(v.log).toHaveLength(3);
    v.log.length = 0;
    const watched = kv.watches[0];
    await kv.resync();
    expect(v.log).toEqual(["DELETED Pod/x/goes@3", "MODIFIED Pod/x/changes@4", "ADDED Pod/x/new@6"]);
    expect([...v.objects.keys()].sort()).toEqual(["Pod/x/changes", "Pod/x/new", "Pod/x/stays"]);
    // The events of the revisions the list covered are not reported again; later ones are.
    watched.handlers.events([{ type: "put", entry: { key: "/tapnet/lab/pods/x/new", value: JSON.stringify(obj("Pod", "new", "x")), createRevision: 6, modRevision: 6, lease: 0 } }]);
    await store.delete({ kind: "Pod", namespace: "x", name: "stays" });
    expect(v.log.slice(3)).toEqual(["DELETED Pod/x/stays@1"]);
    // An event delivered twice (a Kv that resumes a little early) is reported once.
    await store.update(obj("Pod", "new", "x", { v: 3 }));
    const again = await kv.inner.get("/tapnet/lab/pods/x/new");
    watched.handlers.events([{ type: "put", entry: again! }]);
    expect(v.log.slice(4)).toEqual(["MODIFIED Pod/x/new@8"]);
    watched.handlers.status!("lost", "connection refused");
    expect(statuses).toEqual(["lost connection refused"]);
    w.close();
  });

  it("skips and counts values that are not its objects, and keeps going", async () => {
    const kv = new Wrapped(new MemoryKv());
    const store = new ObjectStore(kv, "lab");
    await kv.put("/tapnet/lab/pods/x/bad", "not json");
    await kv.put("/tapnet/lab/pods/x/y/z", JSON.stringify(obj("Pod", "z", "x")));
    await store.create(obj("Pod", "good", "x"));
    const v = view();
    const w = store.watch(["Pod"], v.onEvent);
    await w.ready;
    expect(w.skipped).toBe(2);
    await kv.put("/tapnet/lab/pods/x/good", JSON.stringify(obj("Node", "good")));
    await kv.put("/tapnet/lab/pods/x/worse", "{");
    await store.create(obj("Pod", "after", "x"));
    expect(w.skipped).toBe(4);
    expect(v.log).toEqual(["ADDED Pod/x/good@3", "ADDED Pod/x/after@6"]);
    await kv.delete("/tapnet/lab/pods/x/bad"); // a delete of a key it never reported: nothing
    expect(v.log).toHaveLength(2);
    // After a resync too, an object whose value went bad stays as it was last seen.
    await kv.put("/tapnet/lab/pods/x/after", "garbage");
    expect(w.skipped).toBe(5);
    await kv.resync();
    expect(w.skipped).toBe(8); // good (a Node now), worse and after
    expect(v.log).toHaveLength(2);
    expect(v.objects.get("Pod/x/after")?.metadata.resourceVersion).toBe("6");
    expect(v.objects.get("Pod/x/good")?.metadata.resourceVersion).toBe("3");
    w.close();
  });

  it("rejects ready when its first list fails", async () => {
    const kv = new MemoryKv();
    kv.list = async () => {
      throw new KvError("no store");
    };
    const w = new ObjectStore(kv, "lab").watch(["Pod"], () => {});
    await expect(w.ready).rejects.toThrow("no store");
  });
});

interface Run {
  store: ObjectStore;
  /** Called now and then: may force resyncs. */
  poke(): Promise<void>;
  settle(check: () => boolean): Promise<void>;
  done(): Promise<void>;
}

/** Random operations against a naive model; two watchers (one from the start, one joining halfway) must end with the model. */
async function randomRun(make: () => Promise<Run>, seed: number, steps: number): Promise<void> {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const run = await make();
  const { store } = run;
  const model = new Map<string, KubeObject>();
  const v1 = view();
  const w1 = store.watch(["Pod", "Namespace", "Node", "Service"], v1.onEvent);
  await w1.ready;
  let v2: ReturnType<typeof view> | undefined;
  let w2: ReturnType<ObjectStore["watch"]> | undefined;
  for (let i = 0; i < steps; i++) {
    if (i === steps >> 1) {
      v2 = view();
      w2 = store.watch(["Pod", "Namespace", "Node", "Service"], v2.onEvent);
      await w2.ready;
    }
    const kind = pick(["Pod", "Pod", "Service", "Namespace", "Node"] as Kind[]);
    const ns = pick(["default", "a", "b"]);
    const o = obj(kind, kind === "Namespace" ? ns : pick(["x", "y", "z"]), kind === "Pod" || kind === "Service" ? ns : undefined, { step: i });
    const k = name(o);
    const have = model.get(k);
    const op = rnd();
    const what = `step ${i}: ${k}`;
    if (op < 0.3) {
      const res = await store.create(o).catch((e: unknown) => e);
      if (have) expect(res, what).toBeInstanceOf(AlreadyExistsError);
      else model.set(k, res as KubeObject);
    } else if (op < 0.55) {
      const rv = have && rnd() < 0.5 ? (rnd() < 0.7 ? have.metadata.resourceVersion : String(Number(have.metadata.resourceVersion) + 1 + Math.floor(rnd() * 3))) : undefined;
      const res = await store.update({ ...o, metadata: { ...o.metadata, ...(rv ? { resourceVersion: rv } : {}) } }).catch((e: unknown) => e);
      if (!have) expect(res, what).toBeInstanceOf(NotFoundError);
      else if (rv !== undefined && rv !== have.metadata.resourceVersion) expect(res, what).toBeInstanceOf(ConflictError);
      else {
        expect((res as KubeObject).metadata.uid, what).toBe(have.metadata.uid);
        model.set(k, res as KubeObject);
      }
    } else if (op < 0.7) {
      const res = await store.put(o);
      if (have) expect(res.metadata.uid, what).toBe(have.metadata.uid);
      model.set(k, res);
    } else {
      const ref = { kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
      if (kind === "Namespace" && ns === "default") {
        await expect(store.delete(ref), what).rejects.toThrow(StoreError);
        continue;
      }
      expect(await store.delete(ref), what).toBe(have !== undefined);
      model.delete(k);
      if (kind === "Namespace") for (const key of [...model.keys()]) if (key.startsWith(`Pod/${ns}/`) || key.startsWith(`Service/${ns}/`)) model.delete(key);
    }
    if (rnd() < 0.1) await run.poke();
    if (rnd() < 0.3) expect(await store.get(refOf(o)), what).toEqual(model.get(k));
  }
  const sorted = (m: Map<string, KubeObject>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  const listed = (await Promise.all((["Namespace", "Node", "Pod", "Service"] as Kind[]).map((kind) => store.list(kind)))).flat();
  expect(new Map(listed.map((o) => [name(o), o]))).toEqual(model);
  await run.settle(() => JSON.stringify(sorted(v1.objects)) === JSON.stringify(sorted(model)) && JSON.stringify(sorted(v2!.objects)) === JSON.stringify(sorted(model)));
  expect(sorted(v1.objects)).toEqual(sorted(model));
  expect(sorted(v2!.objects)).toEqual(sorted(model));
  expect(w1.skipped + w2!.skipped).toBe(0);
  w1.close();
  w2!.close();
  await run.done();
}

describe("ObjectStore: randomized against a naive model, with watchers", () => {
  it("over MemoryKv, with forced resyncs", async () => {
    for (let seed = 1; seed <= trials(20, 4); seed++) {
      let resyncs = 0;
      await randomRun(async () => {
        const kv = new Wrapped(new MemoryKv());
        return {
          store: new ObjectStore(kv, "lab"),
          // Deaf for a while, then a resync.
          poke: async () => void (kv.deaf ? (await kv.resync(), resyncs++) : (kv.deaf = true)),
          settle: async () => void (kv.deaf && (await kv.resync(), resyncs++)),
          done: () => kv.close(),
        };
      }, seed, 200);
      expect(resyncs).toBeGreaterThan(0);
    }
  });

  it("over FileKv, whose watches fall behind a short log and resync", async () => {
    const dir = mkdtempSync(join(tmpdir(), "store-objectstore-"));
    let resyncs = 0;
    try {
      for (let seed = 1; seed <= trials(3, 1); seed++) {
        await randomRun(async () => {
          const file = new FileKv(join(dir, String(seed)), { pollMs: 10, keepLog: 3 });
          const kv = new Wrapped(file);
          const count = (h: WatchHandlers): WatchHandlers => ({ ...h, resync: (l: KvList) => (resyncs++, h.resync?.(l)) });
          const watch = kv.watch.bind(kv);
          kv.watch = (p, f, h) => watch(p, f, count(h));
          return {
            store: new ObjectStore(kv, "lab"),
            poke: () => new Promise((r) => setTimeout(r, 15)),
            settle: (check) => waitFor("the watchers to catch up", check),
            done: () => file.close(),
          };
        }, 100 + seed, 150);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(resyncs).toBeGreaterThan(0);
  });
});

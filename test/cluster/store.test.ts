/**
 * ObjectStore over MemoryKv: keys and values as stored, every method and its errors, the
 * namespace cascade; and the store URLs of open.ts. Watches are in store-watch.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EtcdKv } from "../../src/cluster/etcd.ts";
import { FileKv } from "../../src/cluster/file-kv.ts";
import { KvConflict, KvError } from "../../src/cluster/kv.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import type { Kind } from "../../src/cluster/objects.ts";
import { openKv, parseStoreUrl } from "../../src/cluster/open.ts";
import { AlreadyExistsError, ConflictError, NotFoundError, ObjectStore, StoreError } from "../../src/cluster/store.ts";
import { fresh, name, obj, Wrapped } from "../support/store-fixtures.ts";

describe("ObjectStore: keys, values and methods", () => {
  it("keeps each object under /tapnet/<cluster>/<plural>/[<namespace>/]<name>, as JSON without resourceVersion", async () => {
    const { kv, store } = fresh();
    const pod = await store.create({ ...obj("Pod", "web", "default", { containers: [{ name: "c" }] }), metadata: { name: "web", namespace: "default", labels: { app: "web" }, resourceVersion: "77" } });
    const node = await store.create(obj("Node", "n1", undefined, { podCIDR: "10.244.1.0/24" }));
    expect((await kv.list("/")).entries.map((e) => e.key)).toEqual(["/tapnet/lab/nodes/n1", "/tapnet/lab/pods/default/web"]);
    const stored = JSON.parse((await kv.get("/tapnet/lab/pods/default/web"))!.value);
    expect(stored).toEqual({ apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "default", labels: { app: "web" }, uid: pod.metadata.uid, creationTimestamp: "2026-12-03T04:00:00Z" }, spec: { containers: [{ name: "c" }] } });
    expect(pod.metadata.uid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(node.metadata.uid).not.toBe(pod.metadata.uid);
    expect(pod.metadata.resourceVersion).toBe("1");
    expect(node.metadata.resourceVersion).toBe("2");
    expect(await store.get({ kind: "Pod", namespace: "default", name: "web" })).toEqual(pod);
    expect(await store.get({ kind: "Node", name: "n1" })).toEqual(node);
    expect(await store.get({ kind: "Pod", namespace: "other", name: "web" })).toBeUndefined();
  });

  it("leaves the object given unchanged, and gives back a copy", async () => {
    const { store } = fresh();
    const input = obj("Node", "n1");
    const copy = JSON.parse(JSON.stringify(input));
    const out = await store.create(input);
    expect(input).toEqual(copy);
    out.metadata.labels = { changed: "yes" };
    expect((await store.get({ kind: "Node", name: "n1" }))?.metadata.labels).toBeUndefined();
  });

  it("refuses to create an object twice, with AlreadyExistsError naming it", async () => {
    const { store } = fresh();
    await store.create(obj("Pod", "web", "default"));
    const err = await store.create(obj("Pod", "web", "default")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlreadyExistsError);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toBe("pod/web -n default already exists");
    await store.create(obj("Pod", "web", "other")); // the same name in another namespace is another object
  });

  it("updates keeping uid and creationTimestamp, conditional on resourceVersion when given", async () => {
    const kv = new MemoryKv();
    let t = "2026-01-01T00:00:00.000Z";
    const store = new ObjectStore(kv, "lab", () => new Date(t));
    const made = await store.create(obj("Service", "db", "x", { ports: [] }));
    t = "2027-01-01T00:00:00.000Z";
    const u1 = await store.update({ ...obj("Service", "db", "x", { ports: [1] }), metadata: { name: "db", namespace: "x", uid: "forged", creationTimestamp: "1999-01-01T00:00:00Z", resourceVersion: made.metadata.resourceVersion } });
    expect(u1.metadata).toEqual({ name: "db", namespace: "x", uid: made.metadata.uid, creationTimestamp: "2026-01-01T00:00:00Z", resourceVersion: String(Number(made.metadata.resourceVersion) + 1) });
    expect(u1.spec).toEqual({ ports: [1] });
    const stale = await store.update({ ...obj("Service", "db", "x", { ports: [2] }), metadata: { name: "db", namespace: "x", resourceVersion: made.metadata.resourceVersion } }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ConflictError);
    expect((stale as Error).message).toBe(`service/db -n x has been modified (resourceVersion 1, now 2): read it again and retry`);
    const u2 = await store.update(obj("Service", "db", "x", { ports: [3] })); // no resourceVersion: unconditional
    expect(u2.metadata.resourceVersion).toBe("3");
    expect((await store.get({ kind: "Service", namespace: "x", name: "db" }))?.spec).toEqual({ ports: [3] });
    await expect(store.update(obj("Service", "nope", "x"))).rejects.toThrow(NotFoundError);
    await expect(store.update(obj("Service", "nope", "x"))).rejects.toThrow("service/nope -n x not found");
    await expect(store.update({ ...obj("Service", "db", "x"), metadata: { name: "db", namespace: "x", resourceVersion: "abc" } })).rejects.toThrow('service/db -n x: metadata.resourceVersion must be a revision number, not "abc"');
  });

  it("update without resourceVersion and put retry when another writer comes in between", async () => {
    const kv = new Wrapped(new MemoryKv());
    const store = new ObjectStore(kv, "lab");
    const made = await store.create(obj("Node", "n1", undefined, { v: 0 }));
    kv.afterGet = async () => void (await kv.inner.put("/tapnet/lab/nodes/n1", JSON.stringify({ ...obj("Node", "n1", undefined, { v: "other" }), metadata: { name: "n1", uid: made.metadata.uid } })));
    expect((await store.update(obj("Node", "n1", undefined, { v: 1 }))).metadata.resourceVersion).toBe("3");
    kv.afterGet = async () => void (await kv.inner.delete("/tapnet/lab/nodes/n1"));
    const put = await store.put(obj("Node", "n1", undefined, { v: 2 }));
    expect(put.metadata.resourceVersion).toBe("5");
    expect(put.metadata.uid).not.toBe(made.metadata.uid); // it was deleted in between: a new object
    // With a resourceVersion, the writer in between is a conflict.
    kv.afterGet = async () => void (await kv.inner.put("/tapnet/lab/nodes/n1", JSON.stringify(obj("Node", "n1"))));
    await expect(store.update({ ...obj("Node", "n1"), metadata: { name: "n1", resourceVersion: "5" } })).rejects.toThrow(ConflictError);
  });

  it("put creates or replaces, whatever the resourceVersion, keeping the uid", async () => {
    const { store } = fresh();
    const p1 = await store.put({ ...obj("Pod", "a", "x"), metadata: { name: "a", namespace: "x", resourceVersion: "999" } });
    expect(p1.metadata).toMatchObject({ resourceVersion: "1", creationTimestamp: "2026-12-03T04:00:00Z" });
    const p2 = await store.put({ ...obj("Pod", "a", "x", { v: 2 }), metadata: { name: "a", namespace: "x", resourceVersion: "1234" } });
    expect(p2.metadata.uid).toBe(p1.metadata.uid);
    expect(p2.metadata.resourceVersion).toBe("2");
    expect(p2.spec).toEqual({ v: 2 });
  });

  it("lists a kind in one namespace or all, sorted by namespace then name", async () => {
    const { store } = fresh();
    for (const [ns, n] of [["a-b", "x"], ["a", "z"], ["b", "a"], ["a", "y"], ["a", "y-"], ["a", "y0"]]) await store.create(obj("Pod", n, ns));
    await store.create(obj("Service", "s", "a"));
    await store.create(obj("Node", "n2"));
    await store.create(obj("Node", "n1"));
    expect((await store.list("Pod")).map(name)).toEqual(["Pod/a/y", "Pod/a/y-", "Pod/a/y0", "Pod/a/z", "Pod/a-b/x", "Pod/b/a"]);
    expect((await store.list("Pod", "a")).map(name)).toEqual(["Pod/a/y", "Pod/a/y-", "Pod/a/y0", "Pod/a/z"]);
    expect((await store.list("Pod", "nothing")).map(name)).toEqual([]);
    expect((await store.list("Service")).map(name)).toEqual(["Service/a/s"]);
    expect((await store.list("Node", "a")).map(name)).toEqual(["Node//n1", "Node//n2"]);
    expect((await store.list("Pod")).every((o) => Number(o.metadata.resourceVersion) > 0)).toBe(true);
  });

  it("deletes an object, false if there was none", async () => {
    const { store } = fresh();
    await store.create(obj("Pod", "a", "x"));
    expect(await store.delete({ kind: "Pod", namespace: "x", name: "a" })).toBe(true);
    expect(await store.delete({ kind: "Pod", namespace: "x", name: "a" })).toBe(false);
    expect(await store.get({ kind: "Pod", namespace: "x", name: "a" })).toBeUndefined();
  });

  it("deleting a Namespace deletes every namespaced object in it, and only those", async () => {
    const { kv, store } = fresh();
    await store.create(obj("Namespace", "x"));
    await store.create(obj("Namespace", "xy"));
    for (const kind of ["Pod", "Service", "EndpointSlice", "NetworkPolicy"] as Kind[]) {
      await store.create(obj(kind, "one", "x"));
      await store.create(obj(kind, "one", "xy"));
    }
    await store.create(obj("Node", "x"));
    expect(await store.delete({ kind: "Namespace", name: "x" })).toBe(true);
    expect((await kv.list("/")).entries.map((e) => e.key.slice("/tapnet/lab/".length))).toEqual(["endpointslices/xy/one", "namespaces/xy", "networkpolicies/xy/one", "nodes/x", "pods/xy/one", "services/xy/one"]);
    // Objects left in a namespace whose Namespace object is gone still go.
    await store.create(obj("Pod", "stray", "x"));
    expect(await store.delete({ kind: "Namespace", name: "x" })).toBe(false);
    expect(await store.list("Pod", "x")).toEqual([]);
  });

  it("refuses to delete the namespace default, and deletes nothing", async () => {
    const { store } = fresh();
    await store.create(obj("Namespace", "default"));
    await store.create(obj("Pod", "a", "default"));
    await expect(store.delete({ kind: "Namespace", name: "default" })).rejects.toThrow(StoreError);
    await expect(store.delete({ kind: "Namespace", name: "default" })).rejects.toThrow("namespace/default cannot be deleted");
    expect((await store.list("Pod")).map(name)).toEqual(["Pod/default/a"]);
    expect(await store.get({ kind: "Namespace", name: "default" })).toBeDefined();
  });

  it("refuses refs and objects that cannot make a key, naming the field", async () => {
    const { store } = fresh();
    await expect(store.create(obj("Pod", "web"))).rejects.toThrow("pod/web: a Pod lives in a namespace: metadata.namespace is missing");
    await expect(store.create(obj("Pod", "a/b", "x"))).rejects.toThrow('pod/a/b -n x: metadata.name must be a non-empty name without "/", not "a/b"');
    await expect(store.create(obj("Pod", "", "x"))).rejects.toThrow("metadata.name must be a non-empty name");
    await expect(store.get({ kind: "Pod", namespace: "x/y", name: "a" })).rejects.toThrow("metadata.namespace must be a non-empty name");
    await expect(store.create(obj("Node", "n1", "x"))).rejects.toThrow("node/n1 -n x: metadata.namespace: a Node is not namespaced");
    await expect(store.create(obj("Deployment" as Kind, "d", "x"))).rejects.toThrow('"Deployment" is not a kind tapnet keeps');
    await expect(store.list("Deployment" as Kind)).rejects.toThrow('"Deployment" is not a kind tapnet keeps');
    expect(() => new ObjectStore(new MemoryKv(), "a/b")).toThrow(StoreError);
    expect(() => new ObjectStore(new MemoryKv(), "")).toThrow(StoreError);
    // A ref to a cluster-wide object ignores a namespace, as kubectl does.
    await store.create(obj("Node", "n1"));
    expect(await store.get({ kind: "Node", namespace: "x", name: "n1" })).toBeDefined();
  });

  it("refuses values that are not its objects, naming the key", async () => {
    const { kv, store } = fresh();
    await kv.put("/tapnet/lab/pods/x/bad", "{oops");
    await expect(store.get({ kind: "Pod", namespace: "x", name: "bad" })).rejects.toThrow(/^\/tapnet\/lab\/pods\/x\/bad in memory: not JSON/);
    await expect(store.list("Pod")).rejects.toThrow(StoreError);
    await kv.put("/tapnet/lab/pods/x/bad", JSON.stringify(obj("Pod", "other", "x")));
    await expect(store.get({ kind: "Pod", namespace: "x", name: "bad" })).rejects.toThrow("holds pod/other -n x, not pod/bad -n x");
    await kv.put("/tapnet/lab/pods/x/bad", "[1]");
    await expect(store.get({ kind: "Pod", namespace: "x", name: "bad" })).rejects.toThrow("not an object with metadata");
    // It can still be deleted, and replaced.
    await store.put(obj("Pod", "bad", "x"));
    expect(await store.delete({ kind: "Pod", namespace: "x", name: "bad" })).toBe(true);
  });

  it("passes the store's own errors through", async () => {
    const kv = new MemoryKv();
    kv.put = async () => {
      throw new KvError("disk full");
    };
    await expect(new ObjectStore(kv, "lab").create(obj("Node", "n"))).rejects.toThrow("disk full");
  });
});

/** A watcher's view of the store, rebuilt from its events; it fails on an event that does not fit. */

it("KvConflict from the store is never let out of create, update or put as it is", async () => {
  const { store } = fresh();
  await store.create(obj("Node", "n"));
  for (const e of await Promise.all([store.create(obj("Node", "n")).catch((x: unknown) => x), store.update({ ...obj("Node", "n"), metadata: { name: "n", resourceVersion: "9" } }).catch((x: unknown) => x)])) {
    expect(e).toBeInstanceOf(StoreError);
    expect(e).not.toBeInstanceOf(KvConflict);
  }
});

describe("store URLs (open.ts)", () => {
  it("reads the file forms as a directory", () => {
    expect(parseStoreUrl("/run/tapnet/lab")).toEqual({ type: "file", dir: "/run/tapnet/lab" });
    expect(parseStoreUrl("file:/run/tapnet/lab")).toEqual({ type: "file", dir: "/run/tapnet/lab" });
    expect(parseStoreUrl("file:///run/tapnet/lab")).toEqual({ type: "file", dir: "/run/tapnet/lab" });
    expect(parseStoreUrl("file:///var/lib/my%20store")).toEqual({ type: "file", dir: "/var/lib/my store" });
  });

  it("reads the etcd forms as http endpoints, with 2379 when no port is given", () => {
    expect(parseStoreUrl("etcd://192.168.56.2:2379")).toEqual({ type: "etcd", endpoints: ["http://192.168.56.2:2379"] });
    expect(parseStoreUrl("etcd://a:1,b:2, c")).toEqual({ type: "etcd", endpoints: ["http://a:1", "http://b:2", "http://c:2379"] });
    expect(parseStoreUrl("http://127.0.0.1:2379,http://127.0.0.2:2380")).toEqual({ type: "etcd", endpoints: ["http://127.0.0.1:2379", "http://127.0.0.2:2380"] });
    expect(parseStoreUrl("https://etcd.example:2379/")).toEqual({ type: "etcd", endpoints: ["https://etcd.example:2379"] });
    expect(parseStoreUrl("etcd://[::1]:2379")).toEqual({ type: "etcd", endpoints: ["http://[::1]:2379"] });
  });

  it("refuses anything else, saying which forms it takes", () => {
    const cases: [string, string][] = [
      ["lab", "not a store URL"],
      ["file:relative/dir", "the directory must be an absolute path"],
      ["file://otherhost/dir", "a file store is a directory on this machine (file:///DIR), not on a host"],
      ["etcd://", '"" is not HOST or HOST:PORT'],
      ["etcd://a:1,", '"" is not HOST or HOST:PORT'],
      ["etcd://a:99999", "port 99999 is not 1-65535"],
      ["etcd://a:b", '"a:b" is not HOST or HOST:PORT'],
      ["redis://a:1", "not a store URL"],
    ];
    for (const [url, why] of cases) {
      const err = (() => {
        try {
          parseStoreUrl(url);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err, url).toBeInstanceOf(StoreError);
      expect(err?.message, url).toBe(`store ${JSON.stringify(url)}: ${why} (a store is file:/DIR, /DIR, etcd://HOST:PORT[,HOST:PORT] or http://HOST:PORT[,HOST:PORT])`);
    }
  });

  it("opens a FileKv for a file form and an EtcdKv for an etcd form", async () => {
    const dir = mkdtempSync(join(tmpdir(), "store-open-"));
    try {
      const kv = openKv(`file://${dir}`);
      expect(kv).toBeInstanceOf(FileKv);
      expect(kv.description).toBe(`file ${dir}`);
      await kv.close();
      expect(openKv("etcd://127.0.0.1:1")).toBeInstanceOf(EtcdKv);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

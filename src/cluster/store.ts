/**
 * The cluster's objects (objects.ts) kept in a Kv store (kv.ts), one key per object, as the
 * Kubernetes API server keeps them in etcd:
 *
 *   /tapnet/<cluster>/<plural>/<namespace>/<name>   a namespaced object ("pods", "services", ...)
 *   /tapnet/<cluster>/<plural>/<name>               a cluster-wide one ("nodes", "namespaces")
 *
 * The value is the object as JSON, without metadata.resourceVersion: that is the key's
 * modRevision, set on every object read. create() sets metadata.uid and creationTimestamp and
 * writes only if the key is absent; update() and put() keep the stored uid and creation time.
 * update() with a resourceVersion writes only if the object is still at it (optimistic
 * concurrency, as `kubectl apply` relies on); the others retry their read-modify-write by
 * themselves when another writer came in between.
 *
 * watch() lists each kind, reports every object as ADDED, then follows one Kv watch on the
 * cluster's prefix from the list's revision on. When the Kv says the watch could not go on
 * (etcd compacted past it, the file store trimmed its log or was replaced) it lists again and
 * reports the differences from what the watcher had seen. A value that is not one of our objects
 * (not JSON, or a kind or name that disagrees with its key) is skipped and counted; get() and
 * list() refuse it with a StoreError naming the key.
 */
import { randomUUID } from "node:crypto";
import { kindInfo } from "./kinds.ts";
import { KvConflict, type Kv, type KvEntry, type KvEvent, type KvList, type KvWatch } from "./kv.ts";
import { describeRef, KINDS, refOf, type Kind, type KubeObject, type ObjectRef } from "./objects.ts";

export class StoreError extends Error {}
/** create() of an object that exists. */
export class AlreadyExistsError extends StoreError {}
/** update() of an object no longer at the resourceVersion given. */
export class ConflictError extends StoreError {}
/** update() of an object that does not exist. */
export class NotFoundError extends StoreError {}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatchEvent {
  type: WatchEventType;
  /** For DELETED, the object as last seen. */
  object: KubeObject;
}

export interface ObjectWatch {
  /** Settles when the current objects have been reported and the watch is on (rejects if the first list fails). */
  readonly ready: Promise<void>;
  /** How many values were skipped because they are not objects of ours. */
  readonly skipped: number;
  close(): void;
}

export interface ObjectWatchOptions {
  /** The store's connection was lost or came back (the watch retries by itself): for logs. */
  onStatus?(state: "lost" | "restored", detail: string): void;
}

const KIND_OF_PLURAL = new Map<string, Kind>(KINDS.map((k) => [kindInfo(k).plural, k]));
const NAMESPACED_KINDS = KINDS.filter((k) => kindInfo(k).namespaced);
/** How often put() and update() without a resourceVersion retry when other writers keep coming in between. */
const ATTEMPTS = 10;

/** The Kubernetes timestamp form: "2026-12-03T04:00:00Z". */
function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

function sameRef(a: ObjectRef, b: ObjectRef): boolean {
  return a.kind === b.kind && a.name === b.name && a.namespace === b.namespace;
}

export class ObjectStore {
  /** "/tapnet/<cluster>/": every key of this cluster starts with it. */
  readonly prefix: string;

  constructor(readonly kv: Kv, readonly cluster: string, private readonly now: () => Date = () => new Date()) {
    if (!/^[^/\s]+$/.test(cluster)) throw new StoreError(`the cluster name must be one word without "/", not ${JSON.stringify(cluster)}`);
    this.prefix = `/tapnet/${cluster}/`;
  }

  /** The key an object is kept under. */
  keyOf(ref: ObjectRef): string {
    if (!KINDS.includes(ref.kind)) throw new StoreError(`${JSON.stringify(ref.kind)} is not a kind tapnet keeps (it keeps ${KINDS.join(", ")})`);
    const info = kindInfo(ref.kind);
    const name = this.segment(ref, "name", ref.name);
    if (!info.namespaced) return `${this.prefix}${info.plural}/${name}`;
    if (ref.namespace === undefined) throw new StoreError(`${describeRef(ref)}: a ${ref.kind} lives in a namespace: metadata.namespace is missing`);
    return `${this.prefix}${info.plural}/${this.segment(ref, "namespace", ref.namespace)}/${name}`;
  }

  private segment(ref: ObjectRef, field: string, value: unknown): string {
    if (typeof value !== "string" || value === "" || value.includes("/")) throw new StoreError(`${describeRef(ref)}: metadata.${field} must be a non-empty name without "/", not ${JSON.stringify(value)}`);
    return value;
  }

  /** The object a key names, if it is one of this cluster's keys. */
  refOfKey(key: string): ObjectRef | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const parts = key.slice(this.prefix.length).split("/");
    const kind = KIND_OF_PLURAL.get(parts[0]);
    if (!kind || parts.some((p) => p === "")) return undefined;
    if (kindInfo(kind).namespaced) return parts.length === 3 ? { kind, namespace: parts[1], name: parts[2] } : undefined;
    return parts.length === 2 ? { kind, name: parts[1] } : undefined;
  }

  /** The object a Kv entry holds, with its resourceVersion; or why it is not one. */
  private decode(e: KvEntry): KubeObject | string {
    const ref = this.refOfKey(e.key);
    if (!ref) return "not the key of an object";
    let o: any;
    try {
      o = JSON.parse(e.value);
    } catch (err) {
      return `not JSON (${(err as Error).message})`;
    }
    if (o === null || typeof o !== "object" || Array.isArray(o) || o.metadata === null || typeof o.metadata !== "object") return "not an object with metadata";
    const held = { kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace !== undefined ? { namespace: o.metadata.namespace } : {}) } as ObjectRef;
    if (!sameRef(held, ref)) return `holds ${describeRef(held)}, not ${describeRef(ref)}`;
    o.metadata.resourceVersion = String(e.modRevision);
    return o as KubeObject;
  }

  private decodeOrThrow(e: KvEntry): KubeObject {
    const o = this.decode(e);
    if (typeof o === "string") throw new StoreError(`${e.key} in ${this.kv.description}: ${o}`);
    return o;
  }

  /** The key of an object to write, after checking its kind, name and namespace. */
  private keyOfObject(obj: KubeObject): string {
    if (obj === null || typeof obj !== "object" || obj.metadata === null || typeof obj.metadata !== "object") throw new StoreError(`not an object with metadata: ${JSON.stringify(obj)?.slice(0, 80)}`);
    const ref = refOf(obj);
    if (KINDS.includes(ref.kind) && !kindInfo(ref.kind).namespaced && ref.namespace !== undefined) throw new StoreError(`${describeRef(ref)}: metadata.namespace: a ${ref.kind} is not namespaced`);
    return this.keyOf(ref);
  }

  /** The object as it is stored: a copy, without resourceVersion, with uid and creationTimestamp from `stored` (else new). */
  private stored(obj: KubeObject, stored: KvEntry | undefined): KubeObject {
    const o = JSON.parse(JSON.stringify(obj)) as KubeObject;
    delete o.metadata.resourceVersion;
    const prev = stored && this.decode(stored);
    const meta = typeof prev === "object" ? prev.metadata : undefined;
    o.metadata.uid = meta?.uid ?? randomUUID();
    o.metadata.creationTimestamp = meta?.creationTimestamp ?? timestamp(this.now());
    return o;
  }

  private withVersion(o: KubeObject, revision: number): KubeObject {
    o.metadata.resourceVersion = String(revision);
    return o;
  }

  async get(ref: ObjectRef): Promise<KubeObject | undefined> {
    const e = await this.kv.get(this.keyOf(ref));
    return e && this.decodeOrThrow(e);
  }

  /** The objects of a kind, in one namespace or (undefined) all, sorted by namespace and name. */
  async list(kind: Kind, namespace?: string): Promise<KubeObject[]> {
    if (!KINDS.includes(kind)) this.keyOf({ kind, name: "-" }); // throws, naming the kinds
    const info = kindInfo(kind);
    const within = namespace !== undefined && info.namespaced ? `${this.segment({ kind, namespace, name: "" }, "namespace", namespace)}/` : "";
    const { entries } = await this.kv.list(`${this.prefix}${info.plural}/${within}`);
    const objs = entries.map((e) => this.decodeOrThrow(e));
    const order = (o: KubeObject): [string, string] => [o.metadata.namespace ?? "", o.metadata.name];
    return objs.sort((a, b) => {
      const [an, aa] = order(a);
      const [bn, bb] = order(b);
      return an !== bn ? (an < bn ? -1 : 1) : aa < bb ? -1 : aa > bb ? 1 : 0;
    });
  }

  /** Writes a new object; AlreadyExistsError if it exists. Returns it as stored. */
  async create(obj: KubeObject): Promise<KubeObject> {
    const key = this.keyOfObject(obj);
    const o = this.stored(obj, undefined);
    try {
      return this.withVersion(o, await this.kv.put(key, JSON.stringify(o), { expect: 0 }));
    } catch (e) {
      if (e instanceof KvConflict) throw new AlreadyExistsError(`${describeRef(refOf(obj))} already exists`);
      throw e;
    }
  }

  /**
   * Replaces an existing object (NotFoundError if there is none). With
   * metadata.resourceVersion, only if the object is still at it (else ConflictError).
   */
  async update(obj: KubeObject): Promise<KubeObject> {
    const key = this.keyOfObject(obj);
    const what = describeRef(refOf(obj));
    const want = obj.metadata.resourceVersion;
    if (want !== undefined && !/^[1-9][0-9]*$/.test(want)) throw new StoreError(`${what}: metadata.resourceVersion must be a revision number, not ${JSON.stringify(want)}`);
    for (let attempt = 1; ; attempt++) {
      const cur = await this.kv.get(key);
      if (!cur) throw new NotFoundError(`${what} not found`);
      if (want !== undefined && cur.modRevision !== Number(want)) throw new ConflictError(`${what} has been modified (resourceVersion ${want}, now ${cur.modRevision}): read it again and retry`);
      const o = this.stored(obj, cur);
      try {
        return this.withVersion(o, await this.kv.put(key, JSON.stringify(o), { expect: cur.modRevision }));
      } catch (e) {
        if (!(e instanceof KvConflict)) throw e;
        if (want !== undefined || attempt >= ATTEMPTS) throw new ConflictError(`${what} has been modified while it was written (${e.message}): read it again and retry`);
      }
    }
  }

  /** Creates or replaces an object, whatever its resourceVersion. Returns it as stored. */
  async put(obj: KubeObject): Promise<KubeObject> {
    const key = this.keyOfObject(obj);
    for (let attempt = 1; ; attempt++) {
      const cur = await this.kv.get(key);
      const o = this.stored(obj, cur);
      try {
        return this.withVersion(o, await this.kv.put(key, JSON.stringify(o), { expect: cur?.modRevision ?? 0 }));
      } catch (e) {
        if (!(e instanceof KvConflict) || attempt >= ATTEMPTS) throw e instanceof KvConflict ? new ConflictError(`${describeRef(refOf(obj))}: other writers kept changing it (${e.message})`) : e;
      }
    }
  }

  /**
   * Deletes an object; false if it did not exist. A Namespace takes every namespaced object in
   * it first (even if the Namespace object itself is absent). "default" cannot be deleted.
   */
  async delete(ref: ObjectRef): Promise<boolean> {
    const key = this.keyOf(ref);
    if (ref.kind === "Namespace") {
      if (ref.name === "default") throw new StoreError(`namespace/default cannot be deleted (as in Kubernetes: it is where objects without a namespace go)`);
      for (const kind of NAMESPACED_KINDS) {
        const { entries } = await this.kv.list(`${this.prefix}${kindInfo(kind).plural}/${ref.name}/`);
        for (const e of entries) await this.kv.delete(e.key);
      }
    }
    return this.kv.delete(key);
  }

  /** Reports the objects of `kinds` as they are, then as they change (see the header). */
  watch(kinds: Kind[], onEvent: (ev: WatchEvent) => void, opts: ObjectWatchOptions = {}): ObjectWatch {
    for (const kind of kinds) if (!KINDS.includes(kind)) this.keyOf({ kind, name: "-" });
    const wanted = new Set(kinds);
    /** key → the object as last reported. */
    let known = new Map<string, KubeObject>();
    /** kind → the revision its objects were listed at: events up to it are already in the list. */
    const listedAt = new Map<Kind, number>();
    let skipped = 0;
    let closed = false;
    let kvWatch: KvWatch | undefined;
    const emit = (type: WatchEventType, object: KubeObject): void => {
      if (!closed) onEvent({ type, object });
    };
    const watched = (key: string): ObjectRef | undefined => {
      const ref = this.refOfKey(key);
      return ref && wanted.has(ref.kind) ? ref : undefined;
    };
    const decode = (e: KvEntry): KubeObject | undefined => {
      const o = this.decode(e);
      if (typeof o === "string") skipped++;
      return typeof o === "string" ? undefined : o;
    };
    const changed = (ev: KvEvent): void => {
      const ref = watched(ev.entry.key);
      if (!ref || ev.entry.modRevision <= (listedAt.get(ref.kind) ?? 0)) return;
      const prev = known.get(ev.entry.key);
      if (ev.type === "delete") {
        known.delete(ev.entry.key);
        if (prev) emit("DELETED", prev);
        return;
      }
      if (prev && Number(prev.metadata.resourceVersion) >= ev.entry.modRevision) return;
      const obj = decode(ev.entry);
      if (!obj) return;
      known.set(ev.entry.key, obj);
      emit(prev ? "MODIFIED" : "ADDED", obj);
    };
    const resync = (list: KvList): void => {
      const now = new Map<string, KubeObject>();
      for (const e of list.entries) {
        if (!watched(e.key)) continue;
        const prev = known.get(e.key);
        const obj = prev?.metadata.resourceVersion === String(e.modRevision) ? prev : decode(e);
        // A value gone bad keeps the object as it was last seen.
        if (obj ?? prev) now.set(e.key, (obj ?? prev)!);
      }
      const before = known;
      known = now;
      for (const kind of wanted) listedAt.set(kind, list.revision);
      for (const [key, prev] of before) if (!now.has(key)) emit("DELETED", prev);
      for (const [key, obj] of now) if (before.get(key) !== obj) emit(before.has(key) ? "MODIFIED" : "ADDED", obj);
    };
    const ready = (async () => {
      let from = Infinity;
      for (const kind of wanted) {
        const list = await this.kv.list(`${this.prefix}${kindInfo(kind).plural}/`);
        if (closed) return;
        listedAt.set(kind, list.revision);
        from = Math.min(from, list.revision);
        for (const e of list.entries) {
          const obj = watched(e.key) ? decode(e) : (skipped++, undefined);
          if (!obj) continue;
          known.set(e.key, obj);
          emit("ADDED", obj);
        }
      }
      if (closed || from === Infinity) return;
      kvWatch = this.kv.watch(this.prefix, from + 1, {
        events: (evs) => evs.forEach(changed),
        resync,
        status: (state, detail) => opts.onStatus?.(state, detail),
      });
    })();
    ready.catch(() => {}); // The caller sees the failure through `ready`; nothing unhandled if it never looks.
    return {
      ready,
      get skipped() {
        return skipped;
      },
      close: () => {
        closed = true;
        kvWatch?.close();
      },
    };
  }
}

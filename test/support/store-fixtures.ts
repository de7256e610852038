/**
 * Fixtures for the ObjectStore tests (test/cluster/store*.test.ts): objects of each kind, a
 * store on a fixed clock, and a Kv wrapper that lets a test write between a store's read and
 * its write, lose a watch's events, or make its watches resync.
 */
import type { Kv, WatchHandlers } from "../../src/cluster/kv.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import type { Kind, KubeObject } from "../../src/cluster/objects.ts";
import { ObjectStore } from "../../src/cluster/store.ts";

export const CLOCK = () => new Date("2026-12-03T04:00:00.789Z");

export function obj(kind: Kind, name: string, namespace?: string, spec: unknown = {}): KubeObject {
  return { apiVersion: kind === "EndpointSlice" ? "discovery.k8s.io/v1" : kind === "NetworkPolicy" ? "networking.k8s.io/v1" : "v1", kind, metadata: { name, ...(namespace !== undefined ? { namespace } : {}) }, spec };
}

export function fresh(): { kv: MemoryKv; store: ObjectStore } {
  const kv = new MemoryKv();
  return { kv, store: new ObjectStore(kv, "lab", CLOCK) };
}

export const name = (o: KubeObject): string => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/** A Kv that passes everything through, and can make its watches resync or write between a read and a write. */
export class Wrapped implements Kv {
  readonly watches: { prefix: string; handlers: WatchHandlers }[] = [];
  /** Called once after the next get(): a competing writer. */
  afterGet?: () => Promise<void>;
  /** Called once after the next list(): a write between a watch's list and its watch. */
  afterList?: () => Promise<void>;
  /** While set, watches lose their events (as over a lost connection) until the next resync(). */
  deaf = false;
  constructor(readonly inner: Kv) {}
  get description() {
    return `wrapped ${this.inner.description}`;
  }
  async get(key: string) {
    const r = await this.inner.get(key);
    const f = this.afterGet;
    this.afterGet = undefined;
    await f?.();
    return r;
  }
  async list(prefix: string) {
    const r = await this.inner.list(prefix);
    const f = this.afterList;
    this.afterList = undefined;
    await f?.();
    return r;
  }
  put(key: string, value: string, opts?: { expect?: number; lease?: number }) {
    return this.inner.put(key, value, opts);
  }
  delete(key: string, opts?: { expect?: number }) {
    return this.inner.delete(key, opts);
  }
  grant(ttl: number) {
    return this.inner.grant(ttl);
  }
  keepAlive(lease: number) {
    return this.inner.keepAlive(lease);
  }
  revoke(lease: number) {
    return this.inner.revoke(lease);
  }
  watch(prefix: string, from: number, handlers: WatchHandlers) {
    const w = { prefix, handlers };
    this.watches.push(w);
    const inner = this.inner.watch(prefix, from, { ...handlers, events: (evs) => void (this.deaf || handlers.events(evs)) });
    return { close: () => (inner.close(), this.watches.splice(this.watches.indexOf(w), 1)) };
  }
  /** Every watch lists again, as after a compaction. */
  async resync(): Promise<void> {
    this.deaf = false;
    for (const w of [...this.watches]) w.handlers.resync?.(await this.inner.list(w.prefix));
  }
  close() {
    return this.inner.close();
  }
}

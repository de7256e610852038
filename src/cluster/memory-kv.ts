/**
 * The Kv contract (kv.ts) in one process's memory, with etcd's semantics: one revision
 * counter, conditional writes decided atomically, leases that expire on a clock the caller may
 * drive. Tests use it as the fake store (the subnet-lease race runs many nodes on one), and it
 * is the model the file and etcd stores are checked against.
 */
import { KvConflict, KvError, type Kv, type KvEntry, type KvEvent, type KvList, type KvWatch, type WatchHandlers } from "./kv.ts";

interface Watcher {
  prefix: string;
  handlers: WatchHandlers;
  closed: boolean;
}

export class MemoryKv implements Kv {
  readonly description = "memory";
  private revision = 0;
  private readonly data = new Map<string, KvEntry>();
  private readonly leases = new Map<number, { ttl: number; expires: number }>();
  private nextLease = 1;
  private readonly watchers = new Set<Watcher>();
  /** Every change, for watches that start in the past. */
  private readonly history: KvEvent[] = [];

  /** `now`: the clock leases expire on, in milliseconds (tests drive it; default Date.now). */
  constructor(private readonly now: () => number = Date.now) {}

  /** Deletes the keys of every lease whose time has run out. Called before every operation. */
  expire(): void {
    const t = this.now();
    for (const [id, l] of this.leases) {
      if (l.expires > t) continue;
      this.leases.delete(id);
      for (const e of [...this.data.values()]) if (e.lease === id) this.remove(e.key);
    }
  }

  private remove(key: string): void {
    this.revision++;
    this.data.delete(key);
    this.emit({ type: "delete", entry: { key, value: "", createRevision: 0, modRevision: this.revision, lease: 0 } });
  }

  private emit(ev: KvEvent): void {
    this.history.push(ev);
    for (const w of this.watchers) if (!w.closed && ev.entry.key.startsWith(w.prefix)) w.handlers.events([{ type: ev.type, entry: { ...ev.entry } }]);
  }

  private check(key: string, expect: number | undefined): void {
    if (expect === undefined) return;
    const have = this.data.get(key)?.modRevision ?? 0;
    if (have !== expect) throw new KvConflict(`${key} is at revision ${have}, not ${expect}`);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.expire();
    const e = this.data.get(key);
    return e && { ...e };
  }

  async list(prefix: string): Promise<KvList> {
    this.expire();
    const entries = [...this.data.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((e) => ({ ...e }));
    return { entries, revision: this.revision };
  }

  async put(key: string, value: string, opts: { expect?: number; lease?: number } = {}): Promise<number> {
    this.expire();
    this.check(key, opts.expect);
    const lease = opts.lease ?? 0;
    if (lease && !this.leases.has(lease)) throw new KvError(`lease ${lease} not found`);
    this.revision++;
    const prev = this.data.get(key);
    const entry: KvEntry = { key, value, createRevision: prev?.createRevision ?? this.revision, modRevision: this.revision, lease };
    this.data.set(key, entry);
    this.emit({ type: "put", entry: { ...entry } });
    return this.revision;
  }

  async delete(key: string, opts: { expect?: number } = {}): Promise<boolean> {
    this.expire();
    this.check(key, opts.expect);
    if (!this.data.has(key)) return false;
    this.remove(key);
    return true;
  }

  async grant(ttlSeconds: number): Promise<number> {
    this.expire();
    const id = this.nextLease++;
    this.leases.set(id, { ttl: ttlSeconds, expires: this.now() + ttlSeconds * 1000 });
    return id;
  }

  async keepAlive(lease: number): Promise<number> {
    this.expire();
    const l = this.leases.get(lease);
    if (!l) return 0;
    l.expires = this.now() + l.ttl * 1000;
    return l.ttl;
  }

  async revoke(lease: number): Promise<void> {
    this.expire();
    if (!this.leases.has(lease)) return;
    this.leases.set(lease, { ttl: 0, expires: -Infinity });
    this.expire();
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): KvWatch {
    const w: Watcher = { prefix, handlers, closed: false };
    const past = this.history.filter((e) => e.entry.modRevision >= fromRevision && e.entry.key.startsWith(prefix));
    if (past.length) handlers.events(past.map((e) => ({ type: e.type, entry: { ...e.entry } })));
    this.watchers.add(w);
    return { close: () => { w.closed = true; this.watchers.delete(w); } };
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.closed = true;
    this.watchers.clear();
  }
}

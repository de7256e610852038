/**
 * The embedded store: the Kv contract (kv.ts) kept in a directory that every process on the
 * machine shares (the CLI, every switch of a lab). The layout:
 *
 *   meta            {"id", "revision", "nextLease"}: the store's revision counter
 *   keys/<name>     one file per key: {key, value, createRevision, modRevision, lease}
 *   log/<revision>  the change made at that revision, {type, entry}; the last `keepLog` kept
 *   leases/<id>     {id, ttl, expires, keys}: a lease and the keys once put under it
 *   tmp/            files being written; renamed into place when whole
 *   lock            held by a writer, holding "<pid> <token>"
 *
 * A key's file name is encodeURIComponent of the key with every character but letters, digits,
 * "_", "-" escaped, so any key maps to one name and back; a key whose name would be too long
 * for the file system is named "#" and its SHA-256 instead ("#" is always escaped otherwise).
 *
 * Writers take the lock (a file created with O_EXCL) and hold it only while they read, decide
 * and write one operation, synchronously. A lock whose pid is dead, or older than `staleMs`, is
 * broken, under a second lock so that two breakers never break a live one. Every file is
 * written whole to tmp/ and renamed over its place: a reader sees the old file or the new one.
 * One change is: the log file of revision r (the commit point), then the key's file, then meta
 * at r. A writer that finds log/<r+1> past meta's revision finishes that change (a writer
 * crashed in the middle), so the log and the keys never disagree.
 *
 * A watch polls meta every `pollMs` (one small file) and reads the log files of the revisions
 * it has not seen; if they are already trimmed, or the directory was replaced (a new id, or a
 * revision gone back), it lists again and calls resync. Leases expire on the wall clock: any
 * writer, and every watch about once a second, deletes the keys of the leases that ran out.
 */
import { createHash, randomUUID } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { clearInterval, setInterval, setTimeout } from "node:timers";
import { KvConflict, KvError, type Kv, type KvEntry, type KvEvent, type KvList, type KvWatch, type WatchHandlers } from "./kv.ts";

export interface FileKvOptions {
  /** How often a watch reads meta, in milliseconds (200). */
  pollMs?: number;
  /** How many revisions' changes the log keeps for watches that fall behind (1000). */
  keepLog?: number;
  /** A lock held longer than this is taken as left by a crash, in milliseconds (10 000). */
  staleMs?: number;
  /** How long a writer waits for the lock before it gives up, in milliseconds (30 000). */
  lockWaitMs?: number;
  /** fsync every file before it is renamed into place (true). */
  durable?: boolean;
  /** The clock leases expire on, in milliseconds (Date.now). */
  now?: () => number;
}

type Meta = { id: string; revision: number; nextLease: number };
type Lease = { id: number; ttl: number; expires: number; keys: string[] };

const NAME_MAX = 200;

/** The file name of a key (see the header). */
export function keyFileName(key: string): string {
  const name = attempt(JSON.stringify(key), "cannot name a file for this key: ", () => encodeURIComponent(key))!.replace(/[.!~*'()]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
  return name.length <= NAME_MAX ? name : "#" + createHash("sha256").update(key).digest("hex");
}

/** `fn()`; undefined if it fails with the error code `absent`; any other failure as a KvError naming `path`. */
function attempt<T>(path: string, what: string, fn: () => T, absent?: string): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (absent && (e as NodeJS.ErrnoException)?.code === absent) return undefined;
    throw new KvError(`${path}: ${what}${(e as Error).message}`);
  }
}

/** Is `pid` a live process (not a zombie)? Unknown (no /proc): taken as alive. */
function pidAlive(pid: number): boolean {
  if (!existsSync("/proc/self/stat")) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

export class FileKv implements Kv {
  readonly description: string;
  private readonly o: Required<FileKvOptions>;
  private readonly token = `${process.pid} ${randomUUID()}`;
  private tmpCount = 0;
  private readonly watches = new Set<{ close(): void }>();

  constructor(readonly dir: string, opts: FileKvOptions = {}) {
    this.description = `file ${dir}`;
    this.o = { pollMs: 200, keepLog: 1000, staleMs: 10_000, lockWaitMs: 30_000, durable: true, now: Date.now, ...opts };
    for (const sub of ["keys", "log", "leases", "tmp"]) attempt(join(dir, sub), "cannot create the store's directory: ", () => mkdirSync(join(dir, sub), { recursive: true }));
  }

  private path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** The file's text, or undefined if it does not exist. */
  private read(path: string): string | undefined {
    return attempt(path, "", () => readFileSync(path, "utf8"), "ENOENT");
  }

  private readJson<T>(path: string, check: (v: any) => boolean): T | undefined {
    const text = this.read(path);
    if (text === undefined) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {}
    if (v === null || typeof v !== "object" || !check(v)) throw new KvError(`${path}: corrupt (not what this store writes): ${JSON.stringify(text.slice(0, 80))}`);
    return v as T;
  }

  /** Writes `path` whole: to tmp/ first, then renamed over it. */
  private write(path: string, text: string): void {
    const tmp = this.path("tmp", `${process.pid}-${this.token.slice(-8)}-${this.tmpCount++}`);
    attempt(path, "cannot write: ", () => {
      const fd = openSync(tmp, "w");
      try {
        writeSync(fd, text);
        if (this.o.durable) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    });
  }

  private remove(path: string): void {
    attempt(path, "cannot remove: ", () => unlinkSync(path), "ENOENT");
  }

  private files(dir: string): string[] {
    return attempt(this.path(dir), "", () => readdirSync(this.path(dir))) ?? [];
  }

  private readMeta(): Meta | undefined {
    return this.readJson<Meta>(this.path("meta"), (m) => typeof m.id === "string" && Number.isInteger(m.revision) && Number.isInteger(m.nextLease));
  }

  private readEntry(path: string): KvEntry | undefined {
    return this.readJson<KvEntry>(path, (e) => typeof e.key === "string" && typeof e.value === "string" && Number.isInteger(e.modRevision) && Number.isInteger(e.createRevision) && Number.isInteger(e.lease));
  }

  private readLog(revision: number): KvEvent | undefined {
    return this.readJson<KvEvent>(this.path("log", String(revision)), (e) => (e.type === "put" || e.type === "delete") && typeof e.entry?.key === "string" && e.entry.modRevision === revision);
  }

  private readLease(id: number): Lease | undefined {
    return this.readJson<Lease>(this.path("leases", String(id)), (l) => l.id === id && Array.isArray(l.keys) && typeof l.expires === "number");
  }

  /** Runs `fn` holding the lock, after finishing a crashed writer's change and expiring leases. */
  private async locked<T>(fn: (meta: Meta) => T): Promise<T> {
    const lock = this.path("lock");
    const start = Date.now();
    for (let tries = 0; ; tries++) {
      if (attempt(lock, "cannot take the lock: ", () => (writeFileSync(lock, this.token, { flag: "wx" }), true), "EEXIST")) break;
      if (this.breakStale(lock)) continue;
      if (Date.now() - start > this.o.lockWaitMs) throw new KvError(`${lock}: held by "${this.read(lock) ?? "?"}" for over ${this.o.lockWaitMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * Math.min(tries, 10)));
    }
    try {
      const meta = this.recover();
      this.expire(meta);
      return fn(meta);
    } finally {
      if (this.read(lock) === this.token) this.remove(lock);
    }
  }

  /** Breaks `lock` if its holder is dead or it is older than staleMs; true if it is gone. */
  private breakStale(lock: string): boolean {
    const held = this.read(lock);
    const mtime = attempt(lock, "", () => statSync(lock).mtimeMs, "ENOENT");
    if (held === undefined || mtime === undefined) return true;
    const age = Date.now() - mtime;
    const pid = Number(held.split(" ")[0]);
    const dead = Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid);
    if (!dead && age < this.o.staleMs) return false;
    const breaker = lock + ".break";
    if (!attempt(breaker, "", () => (writeFileSync(breaker, this.token, { flag: "wx" }), true), "EEXIST")) {
      // Another process is breaking it; a breaker's lock left by a crash goes after staleMs.
      const since = attempt(breaker, "", () => statSync(breaker).mtimeMs, "ENOENT");
      if (since !== undefined && Date.now() - since > this.o.staleMs) this.remove(breaker);
      return false;
    }
    try {
      if (this.read(lock) === held) this.remove(lock);
      if (dead) for (const f of this.files("tmp")) if (f.startsWith(`${pid}-`)) this.remove(this.path("tmp", f));
    } finally {
      this.remove(breaker);
    }
    return true;
  }

  /** Reads meta (making it if new) and finishes any change logged past it. */
  private recover(): Meta {
    let meta = this.readMeta();
    if (!meta) {
      if (this.files("log").length) throw new KvError(`${this.path("meta")}: missing, but the log is not empty: the store is damaged`);
      meta = { id: randomUUID(), revision: 0, nextLease: 1 };
      this.write(this.path("meta"), JSON.stringify(meta));
    }
    for (let ev = this.readLog(meta.revision + 1); ev; ev = this.readLog(meta.revision + 1)) this.apply(meta, ev);
    return meta;
  }

  private keyPath(key: string): string {
    return this.path("keys", keyFileName(key));
  }

  /** Makes one change: log (the commit point), key file, meta; then trims the log. */
  private change(meta: Meta, type: "put" | "delete", entry: KvEntry): void {
    this.write(this.path("log", String(entry.modRevision)), JSON.stringify({ type, entry }));
    this.apply(meta, { type, entry });
  }

  private apply(meta: Meta, ev: KvEvent): void {
    if (ev.type === "put") this.write(this.keyPath(ev.entry.key), JSON.stringify(ev.entry));
    else this.remove(this.keyPath(ev.entry.key));
    meta.revision = ev.entry.modRevision;
    this.write(this.path("meta"), JSON.stringify(meta));
    const old = meta.revision - this.o.keepLog;
    if (old > 0) this.remove(this.path("log", String(old)));
    if (meta.revision % this.o.keepLog === 0) {
      for (const f of this.files("log")) if (Number(f) <= old) this.remove(this.path("log", f));
    }
  }

  private deleteKey(meta: Meta, key: string): void {
    this.change(meta, "delete", { key, value: "", createRevision: 0, modRevision: meta.revision + 1, lease: 0 });
  }

  /** Ends `lease`: deletes the keys still under it, then its record. */
  private endLease(meta: Meta, lease: Lease): void {
    for (const key of lease.keys) if (this.readEntry(this.keyPath(key))?.lease === lease.id) this.deleteKey(meta, key);
    this.remove(this.path("leases", String(lease.id)));
  }

  private expiredLeases(): Lease[] {
    const t = this.o.now();
    return this.files("leases").map((f) => this.readLease(Number(f))).filter((l): l is Lease => l !== undefined && l.expires <= t);
  }

  private expire(meta: Meta): void {
    for (const lease of this.expiredLeases()) this.endLease(meta, lease);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = this.readEntry(this.keyPath(key));
    if (e?.lease && (this.readLease(e.lease)?.expires ?? -Infinity) <= this.o.now()) {
      await this.locked(() => undefined);
      return this.readEntry(this.keyPath(key));
    }
    return e;
  }

  async list(prefix: string): Promise<KvList> {
    return this.locked((meta) => {
      const entries: KvEntry[] = [];
      for (const name of this.files("keys")) {
        if (!name.startsWith("#") && !attempt(this.path("keys", name), "not a key's name: ", () => decodeURIComponent(name))?.startsWith(prefix)) continue;
        const e = this.readEntry(this.path("keys", name));
        if (e && e.key.startsWith(prefix)) entries.push(e);
      }
      entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      return { entries, revision: meta.revision };
    });
  }

  async put(key: string, value: string, opts: { expect?: number; lease?: number } = {}): Promise<number> {
    return this.locked((meta) => {
      const prev = this.readEntry(this.keyPath(key));
      this.check(key, prev, opts.expect);
      const leaseId = opts.lease ?? 0;
      if (leaseId) {
        const lease = this.readLease(leaseId);
        if (!lease) throw new KvError(`lease ${leaseId} not found`);
        if (!lease.keys.includes(key)) this.write(this.path("leases", String(leaseId)), JSON.stringify({ ...lease, keys: [...lease.keys, key] }));
      }
      const revision = meta.revision + 1;
      this.change(meta, "put", { key, value, createRevision: prev?.createRevision ?? revision, modRevision: revision, lease: leaseId });
      return revision;
    });
  }

  private check(key: string, prev: KvEntry | undefined, expect: number | undefined): void {
    if (expect === undefined) return;
    const have = prev?.modRevision ?? 0;
    if (have !== expect) throw new KvConflict(`${key} is at revision ${have}, not ${expect}`);
  }

  async delete(key: string, opts: { expect?: number } = {}): Promise<boolean> {
    return this.locked((meta) => {
      const prev = this.readEntry(this.keyPath(key));
      this.check(key, prev, opts.expect);
      if (!prev) return false;
      this.deleteKey(meta, key);
      return true;
    });
  }

  async grant(ttlSeconds: number): Promise<number> {
    if (!(ttlSeconds > 0)) throw new KvError(`lease TTL must be a positive number of seconds, not ${ttlSeconds}`);
    return this.locked((meta) => {
      const id = meta.nextLease++;
      this.write(this.path("meta"), JSON.stringify(meta));
      this.write(this.path("leases", String(id)), JSON.stringify({ id, ttl: ttlSeconds, expires: this.o.now() + ttlSeconds * 1000, keys: [] }));
      return id;
    });
  }

  async keepAlive(lease: number): Promise<number> {
    return this.locked(() => {
      const l = this.readLease(lease);
      if (!l) return 0;
      this.write(this.path("leases", String(lease)), JSON.stringify({ ...l, expires: this.o.now() + l.ttl * 1000 }));
      return l.ttl;
    });
  }

  async revoke(lease: number): Promise<void> {
    await this.locked((meta) => {
      const l = this.readLease(lease);
      if (l) this.endLease(meta, l);
    });
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): KvWatch {
    // next: the first revision not delivered; seen: the highest revision meta has shown; id: the store's.
    let next = Math.max(1, fromRevision);
    let start: Meta | undefined;
    try {
      start = this.readMeta();
    } catch {} // a meta it cannot read: the first poll reports it
    let seen = start?.revision ?? 0;
    let id = start?.id;
    let closed = false;
    let busy = false;
    let lost = false;
    let polls = 0;
    const poll = async (): Promise<void> => {
      if (closed || busy) return;
      busy = true;
      try {
        if (polls++ % Math.ceil(1000 / this.o.pollMs) === 0 && this.expiredLeases().length) await this.locked(() => undefined);
        const meta = this.readMeta();
        const revision = meta?.revision ?? 0;
        const batch: KvEvent[] = [];
        let gone = (id !== undefined && meta?.id !== id) || revision < seen;
        for (let r = next; r <= revision && !gone; r++) {
          const ev = this.readLog(r);
          if (!ev) gone = true;
          else if (ev.entry.key.startsWith(prefix)) batch.push(ev);
        }
        if (gone) {
          // Trimmed past us, or a new store in the directory: list again.
          const list = await this.list(prefix);
          [id, seen, next] = [this.readMeta()?.id, list.revision, list.revision + 1];
          if (!closed) handlers.resync?.(list);
        } else {
          [id, seen, next] = [meta?.id, revision, Math.max(next, revision + 1)];
          if (batch.length && !closed) handlers.events(batch);
        }
        if (lost) handlers.status?.("restored", this.description);
        lost = false;
      } catch (e) {
        if (!lost) handlers.status?.("lost", `${this.description}: ${(e as Error).message}`);
        lost = true;
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void poll(), this.o.pollMs).unref();
    setTimeout(() => void poll(), 0);
    const w = {
      close: () => {
        closed = true;
        clearInterval(timer);
        this.watches.delete(w);
      },
    };
    this.watches.add(w);
    return w;
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.close();
  }
}

/**
 * The key-value contract every store speaks: etcd v3's data model, cut to what tapnet uses.
 * Keys are strings ("/tapnet/<cluster>/pods/default/web"), values JSON text. Every change
 * raises the store's revision by one; each key remembers the revision that created it and the
 * one that last changed it. A write may be made conditional on the key's modRevision (0: the
 * key must not exist), which is how optimistic updates and "first one wins" races are decided.
 * A lease is a TTL that keys can be attached to: when it is not kept alive, its keys go.
 *
 * Implemented by etcd.ts (a real etcd, over its v3 JSON gateway), file-kv.ts (a directory:
 * the embedded store) and memory-kv.ts (in one process: tests, and the fake of the race tests).
 */

export interface KvEntry {
  key: string;
  value: string;
  /** The revision of the change that created the key. */
  createRevision: number;
  /** The revision of the change that last wrote it. */
  modRevision: number;
  /** The lease the key is attached to; 0 for none. */
  lease: number;
}

export interface KvEvent {
  type: "put" | "delete";
  /** For a delete: the key, with modRevision the deleting revision and value "". */
  entry: KvEntry;
}

export interface KvList {
  entries: KvEntry[];
  /** The store's revision when the list was taken: a watch from revision + 1 misses nothing. */
  revision: number;
}

export interface KvWatch {
  close(): void;
}

export interface WatchHandlers {
  /** Changes in revision order, in batches as they come. */
  events(events: KvEvent[]): void;
  /**
   * The watch could not go on from where it was (the store compacted past it, or was
   * replaced): the watcher must list again. The watch itself goes on from the new list.
   */
  resync?(list: KvList): void;
  /** The connection was lost or came back; the watch retries by itself. For logs. */
  status?(state: "lost" | "restored", detail: string): void;
}

export class KvError extends Error {}

/** A conditional write or delete whose condition did not hold. */
export class KvConflict extends KvError {}

export interface Kv {
  /** What the store is, for messages: "etcd http://192.168.56.2:2379", "file /run/tapnet/lab". */
  readonly description: string;
  get(key: string): Promise<KvEntry | undefined>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<KvList>;
  /**
   * Writes `key`. With `expect`, only if the key's modRevision is `expect` (0: only if it does
   * not exist); otherwise throws KvConflict. Returns the revision of the write.
   */
  put(key: string, value: string, opts?: { expect?: number; lease?: number }): Promise<number>;
  /** Deletes `key` (with `expect`, only at that modRevision, else KvConflict). False if absent. */
  delete(key: string, opts?: { expect?: number }): Promise<boolean>;
  /** A new lease of `ttlSeconds`; returns its id (never 0). */
  grant(ttlSeconds: number): Promise<number>;
  /** Renews a lease; returns the TTL it now has, 0 if it had already expired (its keys are gone). */
  keepAlive(lease: number): Promise<number>;
  /** Ends a lease now: its keys are deleted. */
  revoke(lease: number): Promise<void>;
  /** Watches every key under `prefix`, from revision `fromRevision` on (inclusive). */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): KvWatch;
  close(): Promise<void>;
}

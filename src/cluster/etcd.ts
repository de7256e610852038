/**
 * EtcdKv: the Kv contract (kv.ts) on a real etcd v3, over its JSON gateway with the global
 * fetch (etcd-http.ts), so it runs on Node and Deno with no client library. The gateway maps
 * the gRPC API one to one, which keeps the Kv calls thin:
 *
 *   get, list        POST /v3/kv/range        (list: range_end = the prefix's end)
 *   put, delete      POST /v3/kv/put, /v3/kv/deleterange; with `expect`, POST /v3/kv/txn:
 *                    compare the key's MOD revision EQUAL to `expect` (etcd takes an absent
 *                    key's as 0, so expect 0 means "does not exist"), then the put or delete;
 *                    else a range of the key, to say in the conflict what revision it is at
 *   grant            POST /v3/lease/grant     with an ID of our choosing (see below)
 *   keepAlive        POST /v3/lease/keepalive (a stream: its first answer; no TTL = expired)
 *   revoke           POST /v3/lease/revoke    (a lease already gone is not an error)
 *   watch            POST /v3/watch           (a stream: etcd-watch.ts)
 *
 * Lease ids: etcd picks ids near 2^63, which a JavaScript number cannot hold exactly, so
 * grant asks for a random id below 2^53 (etcd takes a requested ID) and tries another if
 * etcd already has it. etcd raises a TTL below its minimum (2 s with default settings).
 */
import { KvConflict, KvError, type Kv, type KvEntry, type KvList, type KvWatch, type WatchHandlers } from "./kv.ts";
import { EtcdError, EtcdTransport, GRPC, b64, int64, parseEndpoint, prefixEnd } from "./etcd-http.ts";
import { EtcdWatch, entryOf } from "./etcd-watch.ts";

export interface EtcdOptions {
  /** The deadline of each request, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** How long a quiet watch stream waits before checking that its endpoint still answers (default 10000). */
  probeMs?: number;
}

export class EtcdKv implements Kv {
  readonly description: string;
  private readonly transport: EtcdTransport;
  private readonly watches = new Set<EtcdWatch>();
  private readonly probeMs: number;

  /** `endpoints`: "http://host:port" (or "host:port"), tried in turn. */
  constructor(endpoints: string[], opts: EtcdOptions = {}) {
    if (endpoints.length === 0) throw new KvError("etcd: no endpoint given");
    const eps = endpoints.map(parseEndpoint);
    const timeoutMs = opts.timeoutMs ?? 5000;
    if (!(timeoutMs > 0)) throw new KvError(`etcd: the request timeout must be above 0 ms, not ${timeoutMs}`);
    this.transport = new EtcdTransport(eps, timeoutMs);
    this.probeMs = opts.probeMs ?? 10_000;
    this.description = `etcd ${eps.join(",")}`;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const r = await this.transport.call("kv/range", { key: b64(key) }, { idempotent: true });
    const kv = (r.kvs ?? [])[0];
    return kv ? entryOf(kv) : undefined;
  }

  async list(prefix: string): Promise<KvList> {
    const r = await this.transport.call("kv/range", { key: b64(prefix === "" ? "\0" : prefix), range_end: prefixEnd(prefix) }, { idempotent: true });
    const entries = ((r.kvs ?? []) as Record<string, any>[]).map(entryOf);
    return { entries, revision: int64(r.header?.revision, "header.revision") };
  }

  async put(key: string, value: string, opts: { expect?: number; lease?: number } = {}): Promise<number> {
    const put: Record<string, string> = { key: b64(key), value: b64(value) };
    if (opts.lease) put.lease = String(opts.lease);
    try {
      if (opts.expect === undefined) {
        const r = await this.transport.call("kv/put", put, { idempotent: false });
        return int64(r.header?.revision, "header.revision");
      }
      const r = await this.txn(key, opts.expect, { request_put: put });
      return int64(r.header?.revision, "header.revision");
    } catch (err) {
      if (err instanceof EtcdError && err.grpcCode === GRPC.NOT_FOUND && opts.lease) throw new KvError(`${this.description}: put ${key}: lease ${opts.lease} not found (expired or revoked)`);
      throw err;
    }
  }

  async delete(key: string, opts: { expect?: number } = {}): Promise<boolean> {
    if (opts.expect === undefined) {
      const r = await this.transport.call("kv/deleterange", { key: b64(key) }, { idempotent: false });
      return int64(r.deleted, "deleted") > 0;
    }
    const r = await this.txn(key, opts.expect, { request_delete_range: { key: b64(key) } });
    return int64(r.responses?.[0]?.response_delete_range?.deleted, "deleted") > 0;
  }

  /** `op` if `key` is at modRevision `expect`; else KvConflict saying where the key is. */
  private async txn(key: string, expect: number, op: Record<string, unknown>): Promise<Record<string, any>> {
    if (!Number.isSafeInteger(expect) || expect < 0) throw new KvError(`${this.description}: ${key}: expect must be a revision (0 or more), not ${expect}`);
    const r = await this.transport.call(
      "kv/txn",
      {
        compare: [{ key: b64(key), target: "MOD", result: "EQUAL", mod_revision: String(expect) }],
        success: [op],
        failure: [{ request_range: { key: b64(key) } }],
      },
      { idempotent: false },
    );
    if (r.succeeded === true) return r;
    const kv = r.responses?.[0]?.response_range?.kvs?.[0];
    const have = kv ? `is at revision ${int64(kv.mod_revision, "mod_revision")}` : "does not exist";
    throw new KvConflict(`${key} ${have}, not ${expect === 0 ? "absent" : `at ${expect}`}`);
  }

  async grant(ttlSeconds: number): Promise<number> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new KvError(`${this.description}: a lease TTL is a whole number of seconds, 1 or more, not ${ttlSeconds}`);
    for (let tries = 0; ; tries++) {
      const id = 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1));
      try {
        const r = await this.transport.call("lease/grant", { TTL: String(ttlSeconds), ID: String(id) }, { idempotent: false });
        if (r.error) throw new KvError(`${this.description}: lease/grant: ${r.error}`);
        return int64(r.ID, "ID");
      } catch (err) {
        if (!(err instanceof EtcdError && err.grpcCode === GRPC.FAILED_PRECONDITION) || tries >= 4) throw err;
      }
    }
  }

  async keepAlive(lease: number): Promise<number> {
    const r = await this.transport.call("lease/keepalive", { ID: String(lease) }, { idempotent: true, stream: true });
    return int64(r.TTL, "TTL");
  }

  async revoke(lease: number): Promise<void> {
    try {
      await this.transport.call("lease/revoke", { ID: String(lease) }, { idempotent: true });
    } catch (err) {
      if (!(err instanceof EtcdError && err.grpcCode === GRPC.NOT_FOUND)) throw err;
    }
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): KvWatch {
    if (this.transport.closed) throw new KvError(`${this.description}: watch: the client is closed`);
    const w = new EtcdWatch({ transport: this.transport, list: (p) => this.list(p), probeMs: this.probeMs }, prefix, fromRevision, handlers);
    this.watches.add(w);
    return {
      close: () => {
        w.close();
        this.watches.delete(w);
      },
    };
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.close();
    this.watches.clear();
    this.transport.close();
  }
}

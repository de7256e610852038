/**
 * One watch on etcd, over the JSON gateway's streaming /v3/watch: a POST of
 * {"create_request": {key, range_end, start_revision}} whose answer never ends; it is a
 * stream of JSON objects, one a line, each {"result": WatchResponse} or {"error": ...}.
 * The first result says "created"; then come batches of events in revision order. The stream
 * is read as it arrives and each line handed on as soon as it is whole.
 *
 * The watch remembers the revision after the last event it delivered. When the stream fails or
 * ends (etcd stopped, the connection reset, an error object) it reports status "lost" once,
 * waits (100 ms doubling to 5 s, with jitter), and opens a new stream from that revision, on the
 * next endpoint if the last one failed; the first "created" after that reports "restored". If
 * etcd has compacted past that revision (the result says "canceled" with "compact_revision"),
 * the watch lists the prefix again, hands the list to resync(), and goes on from its revision + 1.
 *
 * A connection can also die without a word (a machine gone, a cable pulled): when the stream has
 * been quiet for `probeMs`, the watch asks the same endpoint a cheap range; if that fails, or the
 * header says another member or raft term answers now (etcd restarted: this stream is a dead
 * one's), the stream is dropped and opened again. close() aborts the stream and ends the retries.
 */
import type { KvEvent, KvList, KvWatch, WatchHandlers } from "./kv.ts";
import { b64, describeFailure, int64, prefixEnd, unb64, type EtcdTransport } from "./etcd-http.ts";

export interface WatchDeps {
  transport: EtcdTransport;
  list(prefix: string): Promise<KvList>;
  /** How long a quiet stream waits before checking its endpoint. */
  probeMs: number;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/** etcd's key-value as a KvEntry (a delete event's has only key and mod_revision). */
export function entryOf(kv: Record<string, any>) {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: int64(kv.create_revision, "create_revision"),
    modRevision: int64(kv.mod_revision, "mod_revision"),
    lease: int64(kv.lease, "lease"),
  };
}

export function eventsOf(events: Record<string, any>[]): KvEvent[] {
  return events.map((e) => ({ type: e.type === "DELETE" ? "delete" : "put", entry: entryOf(e.kv ?? {}) }));
}

class Dropped extends Error {}

/** Why a stream ended that is no loss: go on at once (after listing again, for RESYNC). */
const RESYNC = "resync";
const RECONNECT = "reconnect";

/** Runs a handler; an exception in it is the caller's bug, thrown where it is seen, not taken for a lost stream. */
function deliver(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

export class EtcdWatch implements KvWatch {
  private next: number;
  private closed = false;
  private lost = false;
  private needResync = false;
  private backoff = BACKOFF_MIN_MS;
  private stream?: AbortController;
  /** The endpoint of the stream being followed: the next try starts on another if it fails. */
  private following?: string;
  private sleeper?: { timer: ReturnType<typeof setTimeout>; wake: () => void };

  constructor(private readonly deps: WatchDeps, private readonly prefix: string, from: number, private readonly handlers: WatchHandlers) {
    this.next = Math.max(1, from);
    void this.run();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream?.abort(new Dropped("closed"));
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.wake();
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      let detail: string;
      try {
        if (this.needResync) await this.resync();
        detail = await this.follow();
      } catch (err) {
        detail = err instanceof Dropped ? err.message : describeFailure(err, this.deps.transport.timeoutMs).text;
      }
      if (this.closed) return;
      if (detail === RESYNC || detail === RECONNECT) continue;
      if (this.following) this.deps.transport.failed(this.following);
      this.following = undefined;
      if (!this.lost) {
        this.lost = true;
        deliver(() => this.handlers.status?.("lost", detail));
      }
      const wait = this.backoff / 2 + Math.random() * (this.backoff / 2);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
      await new Promise<void>((wake) => (this.sleeper = { timer: setTimeout(wake, wait), wake }));
      this.sleeper = undefined;
    }
  }

  private async resync(): Promise<void> {
    this.following = undefined;
    const list = await this.deps.list(this.prefix);
    if (this.closed) return;
    this.needResync = false;
    this.next = list.revision + 1;
    deliver(() => this.handlers.resync?.(list));
  }

  /** Follows one stream until it ends; returns why (RESYNC when etcd compacted past us). */
  private async follow(): Promise<string> {
    const { transport } = this.deps;
    const ep = transport.endpoint;
    this.following = ep;
    const ctl = new AbortController();
    this.stream = ctl;
    const body = { create_request: { key: b64(this.prefix), range_end: prefixEnd(this.prefix), start_revision: String(this.next) } };
    // Only the answer's head has a deadline: the body then lasts as long as the watch.
    const connect = setTimeout(() => ctl.abort(new Dropped(`etcd ${ep}: watch: no answer within ${transport.timeoutMs} ms`)), transport.timeoutMs);
    let quietSince = Date.now();
    let member: string | undefined;
    let probing = false;
    const probe = setInterval(() => {
      if (probing || Date.now() - quietSince < this.deps.probeMs) return;
      probing = true;
      this.probe(ep, member)
        .then((why) => why !== undefined && ctl.abort(new Dropped(why)))
        .finally(() => ((probing = false), (quietSince = Date.now())));
    }, Math.max(50, this.deps.probeMs / 4));
    try {
      let res: Response;
      try {
        res = await fetch(`${ep}/v3/watch`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: ctl.signal });
      } catch (err) {
        throw err instanceof Dropped ? err : new Dropped(`etcd ${ep}: watch: ${describeFailure(err, transport.timeoutMs).text}`);
      } finally {
        clearTimeout(connect);
      }
      if (!res.ok || !res.body) {
        const text = (await res.text().catch(() => "")).trim().slice(0, 200);
        throw new Dropped(`etcd ${ep}: watch: HTTP ${res.status}: ${text || "no body"}`);
      }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw err instanceof Dropped ? err : new Dropped(`etcd ${ep}: watch: ${describeFailure(err, transport.timeoutMs).text}`);
        }
        if (chunk.done) return `etcd ${ep}: watch: the stream ended`;
        quietSince = Date.now();
        buf += dec.decode(chunk.value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const outcome = this.handle(ep, line, (m) => (member ??= m));
          if (outcome) {
            ctl.abort(new Dropped("done"));
            return outcome;
          }
          if (this.closed) return "closed";
        }
      }
    } finally {
      clearInterval(probe);
      if (!ctl.signal.aborted) ctl.abort(new Dropped("done"));
    }
  }

  /** One line of the stream. Returns why the stream must end, or undefined to go on. */
  private handle(ep: string, line: string, sawMember: (m: string) => void): string | undefined {
    let msg: Record<string, any>;
    try {
      msg = JSON.parse(line);
    } catch {
      return `etcd ${ep}: watch: not JSON: ${line.slice(0, 100)}`;
    }
    if (msg.error) return `etcd ${ep}: watch: ${String(msg.error.message ?? msg.error.error ?? JSON.stringify(msg.error))}`;
    const r: Record<string, any> = msg.result ?? {};
    if (r.header?.member_id) sawMember(`${r.header.member_id}/${r.header.raft_term ?? ""}`);
    if (r.created) {
      this.backoff = BACKOFF_MIN_MS;
      if (this.lost) {
        this.lost = false;
        const detail = `etcd ${ep}: watching from revision ${this.next}`;
        deliver(() => this.handlers.status?.("restored", detail));
      }
    }
    if (r.canceled) {
      const compacted = int64(r.compact_revision, "compact_revision");
      if (compacted > 0) {
        this.needResync = true;
        return RESYNC;
      }
      return `etcd ${ep}: watch canceled: ${r.cancel_reason ?? "no reason given"}`;
    }
    const events: Record<string, any>[] = r.events ?? [];
    if (events.length === 0) return undefined;
    const evs = eventsOf(events);
    this.next = evs[evs.length - 1].entry.modRevision + 1;
    deliver(() => this.handlers.events(evs));
    return undefined;
  }

  /** Asks `ep` for a cheap range: why the stream should be dropped, or undefined if all is well. */
  private async probe(ep: string, member: string | undefined): Promise<string | undefined> {
    const { transport } = this.deps;
    try {
      const res = await fetch(`${ep}/v3/kv/range`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key: b64(this.prefix), count_only: true }),
        signal: transport.signal(),
      });
      const answer = (await res.json()) as Record<string, any>;
      const now = answer.header?.member_id ? `${answer.header.member_id}/${answer.header.raft_term ?? ""}` : undefined;
      if (!res.ok) return `etcd ${ep}: watch: the endpoint answers HTTP ${res.status}`;
      return member && now && now !== member ? RECONNECT : undefined;
    } catch (err) {
      return this.closed ? undefined : `etcd ${ep}: watch: ${describeFailure(err, transport.timeoutMs).text}`;
    }
  }
}

/**
 * Traces that run at once on one switch, each as if it were alone. The datapath's tracer has
 * one set of filters (at most MAX_FILTERS) and one ring of records; a trace (`tapnet trace`, its
 * `--follow`, the live page) arms filters, reads records and disarms. Without this, a second
 * trace's trace.set replaced the first's filters and each read took the other's records.
 *
 * So each trace names a session (any token it picks; "" for a client that gives none), and:
 *   set   gives the session's filters datapath ids of their own (a counter, never reused while
 *         armed) and the session's group (its frames numbered 1, 2, ... apart from the
 *         others'), then arms every session's filters together: the others' keep what they had
 *         left (tracer.ts). More filters than the tracer holds: refused, naming how many are
 *         taken. An empty list ends the session, its unread records with it.
 *   read  drains the tracer and hands each record to the session whose filter marked it, under
 *         that session's own filter id; returns and forgets the asking session's. Records of
 *         filters no longer armed are dropped. The ring's `lost` goes to every session armed
 *         then (the tracer cannot say whose records were overwritten).
 * A session not heard from (set or read) for IDLE_S is ended, as a trace whose client died.
 * Each session keeps at most MAX_KEPT records unread; more are counted in its `lost`.
 */
import { MAX_FILTERS, type TraceFilter, type TraceRecord } from "../switch/trace/tracer.ts";
import { RpcError } from "./rpc.ts";

/** What this needs of the switch (switch.ts's Switch has it). */
export interface TraceSource {
  trace(filters: TraceFilter[]): Promise<void>;
  traceRecords(): Promise<{ records: TraceRecord[]; lost: number }>;
}

export const IDLE_S = 60;
export const MAX_KEPT = 8192;
const SESSION_RE = /^[A-Za-z0-9._:-]{0,64}$/;

interface Session {
  group: number;
  /** The session's filters as armed: datapath ids. */
  filters: TraceFilter[];
  kept: TraceRecord[];
  lost: number;
  seen: number;
}

/** Checks a session name from the socket: "" when left out. */
export function parseSession(raw: unknown, method: string): string {
  if (raw === undefined) return "";
  if (typeof raw !== "string" || !SESSION_RE.test(raw)) throw new RpcError(`${method}: session must be up to 64 letters, digits or . _ : -, not ${JSON.stringify(raw)}`);
  return raw;
}

export class TraceSessions {
  private readonly sessions = new Map<string, Session>();
  /** Datapath filter id -> its session and the id the session gave it. */
  private readonly owners = new Map<number, { session: string; id: number }>();
  private nextId = 1;
  private nextGroup = 1;
  /** One set or read at a time: each drains and re-arms the one tracer. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly sw: TraceSource, private readonly now: () => number = () => Date.now() / 1000) {}

  /** Arms `filters` (their ids the session's own) for `session`; [] ends it. Returns how many are armed for it. */
  set(session: string, filters: TraceFilter[]): Promise<number> {
    return this.serial(async () => {
      await this.distribute();
      this.expire(session);
      const others = this.armed - (this.sessions.get(session)?.filters.length ?? 0);
      if (others + filters.length > MAX_FILTERS) {
        throw new RpcError(`trace.set: the tracer holds ${MAX_FILTERS} filters and other traces have ${others} of them armed; try again when they end`);
      }
      const old = this.sessions.get(session);
      if (filters.length === 0) {
        if (old) this.sessions.delete(session);
      } else {
        const group = old?.group ?? this.nextGroup++;
        const armed = filters.map((f) => ({ ...f, id: this.takeId(session, f.id), group }));
        this.sessions.set(session, { group, filters: armed, kept: old?.kept ?? [], lost: old?.lost ?? 0, seen: this.now() });
      }
      try {
        await this.arm();
      } catch (e) {
        // Refused: as it was (its new ids freed).
        for (const f of this.sessions.get(session)?.filters ?? []) if (!old?.filters.includes(f)) this.owners.delete(f.id);
        if (old) this.sessions.set(session, old);
        else this.sessions.delete(session);
        throw e;
      }
      // What the old filters marked before the tracer took the new ones, then they are gone.
      await this.distribute();
      for (const f of old?.filters ?? []) this.owners.delete(f.id);
      return filters.length;
    });
  }

  /** The records `session`'s filters marked since its last read, oldest first, and how many it lost. */
  read(session: string): Promise<{ records: TraceRecord[]; lost: number }> {
    return this.serial(async () => {
      await this.distribute();
      const s = this.sessions.get(session);
      if (this.expire(session)) await this.arm();
      if (!s) return { records: [], lost: 0 };
      s.seen = this.now();
      const out = { records: s.kept, lost: s.lost };
      s.kept = [];
      s.lost = 0;
      return out;
    });
  }

  /** How many sessions are open (for status and tests). */
  get open(): number {
    return this.sessions.size;
  }

  /** How many filters the tracer has armed, every session's together: 0 is a switch disarmed. */
  get armed(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.filters.length;
    return n;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private takeId(session: string, own: number): number {
    while (this.owners.has(this.nextId)) this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const id = this.nextId;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    this.owners.set(id, { session, id: own });
    return id;
  }

  /** Arms every session's filters together. */
  private arm(): Promise<void> {
    return this.sw.trace([...this.sessions.values()].flatMap((s) => s.filters));
  }

  /** Reads the tracer and hands its records to their sessions. */
  private async distribute(): Promise<void> {
    if (this.owners.size === 0) return;
    const { records, lost } = await this.sw.traceRecords();
    for (const r of records) {
      const owner = this.owners.get(r.filter);
      const s = owner && this.sessions.get(owner.session);
      if (!owner || !s) continue;
      if (s.kept.length >= MAX_KEPT) s.lost++;
      else s.kept.push({ ...r, filter: owner.id });
    }
    if (lost) for (const s of this.sessions.values()) s.lost += lost;
  }

  /** Ends the sessions, other than `except`, not heard from for IDLE_S; true if any (the caller re-arms). */
  private expire(except: string): boolean {
    const t = this.now();
    let gone = false;
    for (const [name, s] of this.sessions) {
      if (name === except || t - s.seen < IDLE_S) continue;
      this.sessions.delete(name);
      for (const f of s.filters) this.owners.delete(f.id);
      gone = true;
    }
    return gone;
  }
}

// node/trace-sessions.ts: traces at once on one switch, over a stand-in tracer that keeps the
// filters it is given and marks frames for the filter the test names, as the datapath's would.
import { describe, expect, it } from "vitest";
import { IDLE_S, MAX_KEPT, TraceSessions } from "../../src/node/trace-sessions.ts";
import { RpcError } from "../../src/node/rpc.ts";
import { MAX_FILTERS, type TraceFilter, type TraceRecord } from "../../src/switch/trace/tracer.ts";

/** A filter the test can recognise after its id is changed: its session in proto, its own id in aPort. */
const filter = (session: number, id: number, count = 1000): TraceFilter => ({ id, proto: session, a: 0, b: 0, aPort: id, bPort: 0, bothWays: false, count });

function tracer() {
  let filters: TraceFilter[] = [];
  let ring: TraceRecord[] = [];
  let lost = 0;
  const sets: TraceFilter[][] = [];
  let serial = 0;
  return {
    sets,
    get armed() { return filters; },
    source: {
      trace: async (f: TraceFilter[]) => { filters = f.map((x) => ({ ...x })); sets.push(filters); },
      traceRecords: async () => { const out = { records: ring, lost }; ring = []; lost = 0; return out; },
    },
    /** The armed filter of `session` with its own id `id` marks a frame; false if none is armed. */
    mark(session: number, id: number): boolean {
      const f = filters.find((x) => x.proto === session && x.aPort === id);
      if (!f) return false;
      ring.push({ filter: f.id, frame: ++serial, t: serial, pipeline: "ports", stage: "validate", port: 1, node: -1, out: 0, len: 60, head: "" });
      return true;
    },
    overwrite(n: number) { lost += n; },
  };
}

describe("TraceSessions", () => {
  it("arms two traces' filters together, each under its own ids and group, and reads each its own records", async () => {
    const t = tracer();
    const s = new TraceSessions(t.source);
    await s.set("a", [filter(1, 0)]);
    await s.set("b", [filter(2, 0), filter(2, 1)]);
    expect(t.armed.map((f) => [f.id, f.group])).toEqual([[1, 1], [2, 2], [3, 2]]);
    t.mark(1, 0); t.mark(2, 1); t.mark(1, 0); t.mark(2, 0);
    const a = await s.read("a");
    expect(a.records.map((r) => [r.filter, r.frame])).toEqual([[0, 1], [0, 3]]);
    const b = await s.read("b");
    expect(b.records.map((r) => [r.filter, r.frame])).toEqual([[1, 2], [0, 4]]);
    expect(await s.read("a")).toEqual({ records: [], lost: 0 });
  });

  it("ending one trace re-arms the other's filters as they were (same ids: the tracer keeps their counts)", async () => {
    const t = tracer();
    const s = new TraceSessions(t.source);
    await s.set("a", [filter(1, 5)]);
    const before = t.armed[0];
    await s.set("b", [filter(2, 0)]);
    await s.set("b", []);
    expect(t.armed).toEqual([before]);
    expect(s.open).toBe(1);
  });

  it("refuses more filters than the tracer holds, naming how many others have, and changes nothing", async () => {
    const t = tracer();
    const s = new TraceSessions(t.source);
    await s.set("a", Array.from({ length: MAX_FILTERS - 1 }, (_, k) => filter(1, k)));
    const armed = t.armed;
    const err = await s.set("b", [filter(2, 0), filter(2, 1)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as Error).message).toBe(`trace.set: the tracer holds ${MAX_FILTERS} filters and other traces have ${MAX_FILTERS - 1} of them armed; try again when they end`);
    expect(t.armed).toBe(armed);
    // A trace may replace its own filters with as many as the tracer holds, less the others'.
    await s.set("b", [filter(2, 0)]);
    expect(t.armed.length).toBe(MAX_FILTERS);
  });

  it("keeps what a trace's old filters marked when it re-arms, and drops a trace's unread records when it ends", async () => {
    const t = tracer();
    const s = new TraceSessions(t.source);
    await s.set("a", [filter(1, 0)]);
    t.mark(1, 0);
    await s.set("a", [filter(1, 7)]);
    t.mark(1, 7);
    expect((await s.read("a")).records.map((r) => r.filter)).toEqual([0, 7]);
    t.mark(1, 7);
    await s.set("a", []);
    expect(await s.read("a")).toEqual({ records: [], lost: 0 });
    expect(t.armed).toEqual([]);
  });

  it("ends a trace not heard from for IDLE_S (its client died) and disarms its filters", async () => {
    let now = 1000;
    const t = tracer();
    const s = new TraceSessions(t.source, () => now);
    await s.set("dead", [filter(1, 0)]);
    await s.set("live", [filter(2, 0)]);
    now += IDLE_S - 1;
    await s.read("live");
    expect(t.armed.length).toBe(2);
    now += 2;
    await s.read("live");
    expect(t.armed.map((f) => f.proto)).toEqual([2]);
    expect(s.open).toBe(1);
  });

  it("counts records past MAX_KEPT unread as lost, and the ring's overwritten records for every trace armed", async () => {
    const t = tracer();
    const s = new TraceSessions(t.source);
    await s.set("a", [filter(1, 0)]);
    await s.set("b", [filter(2, 0)]);
    for (let i = 0; i < MAX_KEPT + 3; i++) t.mark(1, 0);
    t.overwrite(5);
    const a = await s.read("a");
    expect(a.records.length).toBe(MAX_KEPT);
    expect(a.lost).toBe(3 + 5);
    expect(await s.read("b")).toEqual({ records: [], lost: 5 });
  });

  it("randomized against a naive model: each read gives exactly what the trace's armed filters marked since its last read", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      let x = seed;
      const rnd = (n: number) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n; };
      const t = tracer();
      const s = new TraceSessions(t.source);
      const names = ["a", "b", "c"];
      // The model: each trace's own filter ids armed, and what they marked unread.
      const own = new Map<number, number[]>();
      const unread = new Map<number, number[]>();
      for (let step = 0; step < 300; step++) {
        const k = rnd(3);
        const op = rnd(10);
        if (op < 2) {
          const n = rnd(3);
          const ids = Array.from({ length: n }, () => rnd(50)).filter((v, i, all) => all.indexOf(v) === i);
          const taken = [...own].filter(([j]) => j !== k).reduce((m, [, v]) => m + v.length, 0);
          const ok = await s.set(names[k], ids.map((id) => filter(k, id))).then(() => true, () => false);
          expect(ok).toBe(taken + ids.length <= MAX_FILTERS);
          if (ok && ids.length) own.set(k, ids);
          if (ok && !ids.length) { own.delete(k); unread.delete(k); }
        } else if (op < 4) {
          const got = await s.read(names[k]);
          expect(got.records.map((r) => r.filter)).toEqual(unread.get(k) ?? []);
          unread.delete(k);
        } else {
          const ids = own.get(k) ?? [];
          const id = ids.length ? ids[rnd(ids.length)] : rnd(50);
          expect(t.mark(k, id)).toBe(ids.includes(id));
          if (ids.includes(id)) unread.set(k, [...(unread.get(k) ?? []), id]);
        }
      }
    }
  });
});

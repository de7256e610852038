// The FDB's port security (#13): pinned entries (a pod's own MAC on its port: never learned over,
// moved, aged or evicted by learning) and the per-port quota of learned entries, one rule at a
// time, then op by op against a naive model with pins, quotas, ageing and a full table together.
import { describe, expect, it } from "vitest";
import { Fdb, Learn, type FdbEntry, type LearnResult } from "../../src/switch/fdb.ts";
import { formatMacHiLo } from "../../src/wire/mac.ts";
import { prng, trials } from "../support/random.ts";

interface Mac { hi: number; lo: number }

function randomMacs(rnd: () => number, n: number): Mac[] {
  const out: Mac[] = [];
  const seen = new Set<string>();
  while (out.length < n) {
    const m = { hi: Math.floor(rnd() * 0x10000) & 0xfeff, lo: Math.floor(rnd() * 2 ** 32) };
    const key = formatMacHiLo(m.hi, m.lo);
    if (!seen.has(key)) { seen.add(key); out.push(m); }
  }
  return out;
}

const A: Mac = { hi: 0x0a58, lo: 0x0af40102 };
const B: Mac = { hi: 0x0a58, lo: 0x0af40103 };

describe("Fdb pinned entries", () => {
  it("a pinned MAC is Known on its port and Pinned (not moved) from any other", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    expect(fdb.pin(A.hi, A.lo, 2, 0)).toBe(true);
    expect(fdb.learn(A.hi, A.lo, 2, 1)).toBe(Learn.Known);
    expect(fdb.learn(A.hi, A.lo, 5, 1)).toBe(Learn.Pinned);
    expect(fdb.lookup(A.hi, A.lo, 1)).toBe(2);
    expect(fdb.pinnedPort(A.hi, A.lo)).toBe(2);
    expect([fdb.size, fdb.pinnedCount, fdb.learned(2), fdb.learned(5)]).toEqual([1, 1, 0, 0]);
  });

  it("never ages, by lookup or sweep, however long it is silent", () => {
    const fdb = new Fdb({ ageingSeconds: 10 });
    fdb.pin(A.hi, A.lo, 1, 0);
    fdb.learn(B.hi, B.lo, 1, 0);
    expect(fdb.age(1e9)).toBe(1);
    expect(fdb.lookup(A.hi, A.lo, 1e9)).toBe(1);
    expect(fdb.agedOut).toBe(1);
    expect(fdb.entries(1e9)).toEqual([{ mac: "0a:58:0a:f4:01:02", port: 1, age: 0, pinned: true }]);
  });

  it("replaces a learned entry of the same MAC, wherever it was learned, and the counts follow", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    fdb.learn(A.hi, A.lo, 3, 0);
    expect(fdb.learned(3)).toBe(1);
    fdb.pin(A.hi, A.lo, 1, 0);
    expect([fdb.size, fdb.pinnedCount, fdb.learned(3), fdb.learned(1), fdb.lookup(A.hi, A.lo, 0)]).toEqual([1, 1, 0, 0, 1]);
    fdb.pin(A.hi, A.lo, 4, 0); // pinned again elsewhere: it goes there
    expect([fdb.size, fdb.pinnedCount, fdb.lookup(A.hi, A.lo, 0)]).toEqual([1, 1, 4]);
  });

  it("goes with its port (flushPort) or by delete, and nothing else", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    fdb.pin(A.hi, A.lo, 1, 0);
    fdb.pin(B.hi, B.lo, 2, 0);
    expect(fdb.flushPort(1)).toBe(1);
    expect(fdb.pinnedPort(A.hi, A.lo)).toBe(-1);
    expect(fdb.learn(A.hi, A.lo, 3, 0)).toBe(Learn.New); // learnable again once its port is gone
    expect(fdb.delete(B.hi, B.lo)).toBe(true);
    expect([fdb.size, fdb.pinnedCount]).toEqual([1, 0]);
  });

  it("a full table of learned entries makes room for a pin: the expired first, else the stalest (then the lowest MAC)", () => {
    const fdb = new Fdb({ maxEntries: 3, ageingSeconds: 10 });
    const m = randomMacs(prng(21), 6);
    fdb.learn(m[0].hi, m[0].lo, 0, 5);
    fdb.learn(m[1].hi, m[1].lo, 0, 0);
    fdb.learn(m[2].hi, m[2].lo, 0, 8);
    expect(fdb.pin(m[3].hi, m[3].lo, 1, 9)).toBe(true); // nothing expired: m[1], heard at 0, goes
    expect(fdb.lookup(m[1].hi, m[1].lo, 9)).toBe(-1);
    expect(fdb.pin(m[4].hi, m[4].lo, 1, 16)).toBe(true); // m[0] expired at 15: swept
    expect(fdb.agedOut).toBe(1);
    expect(fdb.lookup(m[2].hi, m[2].lo, 16)).toBe(0);
    const [lo, hi] = [m[2], m[5]].sort((x, y) => x.hi - y.hi || x.lo - y.lo);
    const t = new Fdb({ maxEntries: 2 });
    t.learn(hi.hi, hi.lo, 0, 1);
    t.learn(lo.hi, lo.lo, 0, 1);
    t.pin(m[3].hi, m[3].lo, 1, 1);
    expect([t.lookup(lo.hi, lo.lo, 1), t.lookup(hi.hi, hi.lo, 1)]).toEqual([-1, 0]);
  });

  it("a table of pinned entries only refuses another pin, and learning", () => {
    const fdb = new Fdb({ maxEntries: 2 });
    const m = randomMacs(prng(22), 3);
    expect(fdb.pin(m[0].hi, m[0].lo, 0, 0)).toBe(true);
    expect(fdb.pin(m[1].hi, m[1].lo, 1, 0)).toBe(true);
    expect(fdb.pin(m[2].hi, m[2].lo, 2, 0)).toBe(false);
    expect(fdb.learn(m[2].hi, m[2].lo, 2, 5)).toBe(Learn.Full);
    expect(fdb.size).toBe(2);
  });

  it("pin refuses a port outside 0..maxPorts-1; learn there is Full", () => {
    const fdb = new Fdb({}, 4);
    expect(() => fdb.pin(A.hi, A.lo, 4, 0)).toThrow(new RangeError("port 4 is not 0 to 3"));
    expect(() => fdb.pin(A.hi, A.lo, -1, 0)).toThrow(RangeError);
    expect(fdb.learn(A.hi, A.lo, 4, 0)).toBe(Learn.Full);
    expect(fdb.size).toBe(0);
  });
});

describe("Fdb per-port quota", () => {
  it("a port at its quota is refused new MACs while another port still learns, and may still refresh its own", () => {
    const fdb = new Fdb({ maxEntries: 64, portQuota: 3 });
    const m = randomMacs(prng(31), 6);
    for (let k = 0; k < 3; k++) expect(fdb.learn(m[k].hi, m[k].lo, 1, 0)).toBe(Learn.New);
    expect(fdb.learn(m[3].hi, m[3].lo, 1, 0)).toBe(Learn.Full);
    expect(fdb.learn(m[4].hi, m[4].lo, 2, 0)).toBe(Learn.New);
    expect(fdb.learn(m[0].hi, m[0].lo, 1, 0.5)).toBe(Learn.Known);
    expect([fdb.learned(1), fdb.learned(2), fdb.size]).toEqual([3, 1, 4]);
  });

  it("a MAC does not move onto a port at its quota; it moves off one, freeing its share", () => {
    const fdb = new Fdb({ maxEntries: 64, portQuota: 2 });
    const m = randomMacs(prng(32), 4);
    fdb.learn(m[0].hi, m[0].lo, 1, 0);
    fdb.learn(m[1].hi, m[1].lo, 1, 0);
    fdb.learn(m[2].hi, m[2].lo, 2, 0);
    expect(fdb.learn(m[2].hi, m[2].lo, 1, 0)).toBe(Learn.Full);
    expect(fdb.lookup(m[2].hi, m[2].lo, 0)).toBe(2);
    expect(fdb.learn(m[0].hi, m[0].lo, 2, 0)).toBe(Learn.Moved);
    expect([fdb.learned(1), fdb.learned(2)]).toEqual([1, 2]);
    expect(fdb.learn(m[3].hi, m[3].lo, 1, 0)).toBe(Learn.New);
  });

  it("pinned entries do not count against the quota", () => {
    const fdb = new Fdb({ maxEntries: 64, portQuota: 1 });
    fdb.pin(A.hi, A.lo, 1, 0);
    expect(fdb.learn(B.hi, B.lo, 1, 0)).toBe(Learn.New);
    expect([fdb.learned(1), fdb.pinnedCount]).toEqual([1, 1]);
  });

  it("a port at its quota makes room from its expired entries, at most one sweep a second", () => {
    const fdb = new Fdb({ maxEntries: 64, portQuota: 2, ageingSeconds: 10 });
    const m = randomMacs(prng(33), 3);
    fdb.learn(m[0].hi, m[0].lo, 1, 0);
    fdb.learn(m[1].hi, m[1].lo, 1, 5);
    expect(fdb.learn(m[2].hi, m[2].lo, 1, 9.5)).toBe(Learn.Full); // swept at 9.5: nothing expired yet
    expect(fdb.learn(m[2].hi, m[2].lo, 1, 10.2)).toBe(Learn.Full); // m[0] expired, but no sweep within a second
    expect(fdb.learned(1)).toBe(2);
    expect(fdb.learn(m[2].hi, m[2].lo, 1, 10.5)).toBe(Learn.New);
    expect(fdb.lookup(m[0].hi, m[0].lo, 10.5)).toBe(-1);
    expect(fdb.agedOut).toBe(1);
  });

  it("8192 random MACs from one port leave room for a new port's MAC: the flooding port holds its quota only", () => {
    const fdb = new Fdb();
    expect([fdb.maxEntries, fdb.portQuota]).toEqual([8192, 1024]);
    const m = randomMacs(prng(34), 8193);
    let full = 0;
    for (let k = 0; k < 8192; k++) if (fdb.learn(m[k].hi, m[k].lo, 3, k / 8192) === Learn.Full) full++;
    expect([fdb.learned(3), full]).toEqual([1024, 8192 - 1024]);
    expect(fdb.learn(m[8192].hi, m[8192].lo, 4, 1)).toBe(Learn.New);
    expect(fdb.lookup(m[8192].hi, m[8192].lo, 1)).toBe(4);
  });

  it("the quota is at most the table's size; a bad quota or port count is refused, naming it", () => {
    expect(new Fdb({ maxEntries: 8 }).portQuota).toBe(8);
    expect(new Fdb({ maxEntries: 8, portQuota: 3 }).portQuota).toBe(3);
    for (const bad of [0, -1, 1.5, NaN, 2 ** 22 + 1]) expect(() => new Fdb({ portQuota: bad }), String(bad)).toThrow(new RangeError("FDB port quota must be 1 to 4194304"));
    for (const bad of [0, 1.5, 65537]) expect(() => new Fdb({}, bad), String(bad)).toThrow(new RangeError("FDB port count must be 1 to 65536"));
  });
});

/**
 * The reference, written the obvious way: a map of MAC to port, when last heard, pinned or not.
 * Expired learned entries stay (and count) until a lookup or a sweep removes them; a table at
 * its size, or a port at its quota, sweeps expired entries before refusing, at most once a
 * second; a pin into a full table takes the expired learned entries out, else the stalest.
 */
class ModelFdb {
  readonly m = new Map<string, { port: number; seen: number; pinned: boolean }>();
  private lastFullSweep = -Infinity;
  agedOut = 0;
  constructor(readonly maxEntries: number, readonly ageingSeconds: number, readonly quota: number) {}

  learned(port: number): number {
    let n = 0;
    for (const e of this.m.values()) if (e.port === port && !e.pinned) n++;
    return n;
  }

  learn(mac: string, port: number, now: number): LearnResult {
    const e = this.m.get(mac);
    if (e?.pinned) return e.port === port ? Learn.Known : Learn.Pinned;
    if (e && e.port === port) { e.seen = now; return Learn.Known; }
    const full = () => (!this.m.has(mac) && this.m.size >= this.maxEntries) || this.learned(port) >= this.quota;
    if (full()) {
      if (now - this.lastFullSweep < 1) return Learn.Full;
      this.lastFullSweep = now;
      if (this.age(now) === 0 || full()) return Learn.Full;
    }
    const still = this.m.get(mac);
    if (still) { still.port = port; still.seen = now; return Learn.Moved; }
    this.m.set(mac, { port, seen: now, pinned: false });
    return Learn.New;
  }

  pin(mac: string, port: number, now: number): boolean {
    if (this.m.has(mac)) this.m.delete(mac);
    else if (this.m.size >= this.maxEntries && this.age(now) === 0) {
      const learned = [...this.m].filter(([, e]) => !e.pinned).sort(([ma, a], [mb, b]) => a.seen - b.seen || (ma < mb ? -1 : 1));
      if (!learned.length) return false;
      this.m.delete(learned[0][0]);
    }
    this.m.set(mac, { port, seen: now, pinned: true });
    return true;
  }

  pinnedPort(mac: string): number {
    const e = this.m.get(mac);
    return e?.pinned ? e.port : -1;
  }

  lookup(mac: string, now: number): number {
    const e = this.m.get(mac);
    if (!e) return -1;
    if (!e.pinned && now - e.seen > this.ageingSeconds) {
      this.m.delete(mac);
      this.agedOut++;
      return -1;
    }
    return e.port;
  }

  age(now: number): number {
    let n = 0;
    for (const [mac, e] of this.m) if (!e.pinned && now - e.seen > this.ageingSeconds) { this.m.delete(mac); n++; }
    this.agedOut += n;
    return n;
  }

  flushPort(port: number): number {
    let n = 0;
    for (const [mac, e] of this.m) if (e.port === port) { this.m.delete(mac); n++; }
    return n;
  }

  entries(now: number): FdbEntry[] {
    const out: FdbEntry[] = [];
    for (const [mac, e] of this.m) {
      if (e.pinned) out.push({ mac, port: e.port, age: 0, pinned: true });
      else if (now - e.seen <= this.ageingSeconds) out.push({ mac, port: e.port, age: now - e.seen });
    }
    return out.sort((a, b) => a.port - b.port || (a.mac < b.mac ? -1 : 1));
  }
}

describe("Fdb with pins and quotas against a naive model, random operations", () => {
  const OPS = trials(20_000, 5000);
  const PORTS = 5;

  for (const [maxEntries, quota] of [[8, 3], [13, 5], [64, 20]] as const) {
    for (const seed of [1, 2, 3, 0x5ec, 0xbeef]) {
      it(`agrees op by op: maxEntries ${maxEntries}, portQuota ${quota}, seed ${seed}`, () => {
        const rnd = prng(seed * 7919 + maxEntries);
        const ageing = maxEntries * 4;
        const fdb = new Fdb({ maxEntries, ageingSeconds: ageing, portQuota: quota }, PORTS);
        const model = new ModelFdb(maxEntries, ageing, quota);
        const macs = randomMacs(rnd, maxEntries * 3 + 2);
        const keys = macs.map((m) => formatMacHiLo(m.hi, m.lo));
        let now = 1000;
        const seen = { pinned: 0, quotaFull: 0, tableFull: 0, pinEvicted: 0, pinRefused: 0 };
        const same = (actual: unknown, expected: unknown, i: number, op: string) => {
          if (actual !== expected) expect(actual, `seed ${seed}, maxEntries ${maxEntries}, op ${i}: ${op}`).toEqual(expected);
        };

        for (let i = 0; i < OPS; i++) {
          if (rnd() < 0.3) now += rnd() < 0.95 ? rnd() * 2 : rnd() * ageing;
          const k = Math.floor(rnd() * macs.length);
          const { hi, lo } = macs[k];
          const port = Math.floor(rnd() * PORTS);
          const r = rnd();
          if (r < 0.5) {
            const tableWasFull = model.m.size >= maxEntries && !model.m.has(keys[k]);
            const expected = model.learn(keys[k], port, now);
            if (expected === Learn.Pinned) seen.pinned++;
            if (expected === Learn.Full) { if (tableWasFull) seen.tableFull++; else seen.quotaFull++; }
            same(fdb.learn(hi, lo, port, now), expected, i, `learn ${keys[k]} on ${port} at ${now}`);
          } else if (r < 0.55) {
            const before = model.m.size;
            const had = model.m.has(keys[k]);
            const expected = model.pin(keys[k], port, now);
            if (!expected) seen.pinRefused++;
            else if (!had && before >= maxEntries) seen.pinEvicted++;
            same(fdb.pin(hi, lo, port, now), expected, i, `pin ${keys[k]} on ${port} at ${now}`);
          } else if (r < 0.75) {
            same(fdb.lookup(hi, lo, now), model.lookup(keys[k], now), i, `lookup ${keys[k]} at ${now}`);
          } else if (r < 0.8) {
            same(fdb.pinnedPort(hi, lo), model.pinnedPort(keys[k]), i, `pinnedPort ${keys[k]}`);
          } else if (r < 0.88) {
            same(fdb.delete(hi, lo), model.m.delete(keys[k]), i, `delete ${keys[k]}`);
          } else if (r < 0.92) {
            same(fdb.age(now), model.age(now), i, `age at ${now}`);
          } else if (r < 0.94) {
            same(fdb.flushPort(port), model.flushPort(port), i, `flushPort ${port}`);
          } else {
            same(fdb.learned(port), model.learned(port), i, `learned(${port})`);
            same(fdb.size, model.m.size, i, "size");
            same(fdb.pinnedCount, [...model.m.values()].filter((e) => e.pinned).length, i, "pinnedCount");
          }
          if (i % 500 === 499) {
            same(fdb.agedOut, model.agedOut, i, "agedOut");
            expect(fdb.entries(now), `op ${i}: entries`).toEqual(model.entries(now));
            for (let p = 0; p < PORTS; p++) expect(fdb.learned(p), `learned(${p}) <= quota`).toBeLessThanOrEqual(quota);
          }
        }
        // The run reached each rule: learning refused over a pin, at a port's quota and at the
        // table's size, and pins that evicted or were refused.
        expect(seen.pinned).toBeGreaterThan(OPS / 200);
        expect(seen.quotaFull).toBeGreaterThan(0);
        expect(seen.pinEvicted + seen.pinRefused).toBeGreaterThan(0);
      });
    }
  }
});

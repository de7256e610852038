import { describe, expect, it } from "vitest";
import { Fdb, FDB_DEFAULTS, Learn, type FdbEntry, type LearnResult } from "../../src/switch/fdb.ts";
import { formatMacHiLo } from "../../src/wire/mac.ts";
import { prng, trials } from "../support/random.ts";

interface Mac { hi: number; lo: number }

/** The slot a MAC hashes to. White-box: used only to pick colliding MACs and to prove collisions happen. */
function home(fdb: Fdb, m: Mac): number {
  return (fdb as unknown as { home(hi: number, lo: number): number }).home(m.hi, m.lo);
}

function randomMacs(rnd: () => number, n: number): Mac[] {
  const out: Mac[] = [];
  const seen = new Set<string>();
  while (out.length < n) {
    let m: Mac = { hi: Math.floor(rnd() * 0x10000) & 0xfeff, lo: Math.floor(rnd() * 2 ** 32) }; // unicast
    // Some MACs share one half with an earlier one, so that comparing only one half shows.
    if (out.length > 0 && rnd() < 0.25) {
      const other = out[Math.floor(rnd() * out.length)];
      m = rnd() < 0.5 ? { hi: other.hi, lo: m.lo } : { hi: m.hi, lo: other.lo };
    }
    const key = formatMacHiLo(m.hi, m.lo);
    if (!seen.has(key)) { seen.add(key); out.push(m); }
  }
  return out;
}

/** MACs (from a fixed stream) whose home slot in `fdb` is `slot`. */
function macsHomedAt(fdb: Fdb, slot: number, n: number, seed = 1): Mac[] {
  const rnd = prng(seed);
  const out: Mac[] = [];
  while (out.length < n) {
    const m = randomMacs(rnd, 1)[0];
    if (home(fdb, m) === slot && !out.some((o) => o.hi === m.hi && o.lo === m.lo)) out.push(m);
  }
  return out;
}

/**
 * The reference: what a forwarding database means, written the obvious way. Expired entries
 * stay (and count towards the maximum) until a lookup or an ageing sweep removes them; a full
 * table sweeps them out before refusing a new MAC, at most once a second.
 */
class ModelFdb {
  readonly m = new Map<string, { port: number; seen: number }>();
  private lastFullSweep = -Infinity;
  agedOut = 0;
  constructor(readonly maxEntries: number, readonly ageingSeconds: number) {}

  learn(mac: string, port: number, now: number): LearnResult {
    const e = this.m.get(mac);
    if (e) {
      e.seen = now;
      if (e.port === port) return Learn.Known;
      e.port = port;
      return Learn.Moved;
    }
    if (this.m.size >= this.maxEntries) {
      if (now - this.lastFullSweep < 1) return Learn.Full;
      this.lastFullSweep = now;
      if (this.age(now) === 0) return Learn.Full;
    }
    this.m.set(mac, { port, seen: now });
    return Learn.New;
  }

  lookup(mac: string, now: number): number {
    const e = this.m.get(mac);
    if (!e) return -1;
    if (now - e.seen > this.ageingSeconds) {
      this.m.delete(mac);
      this.agedOut++;
      return -1;
    }
    return e.port;
  }

  age(now: number): number {
    let n = 0;
    for (const [mac, e] of this.m) if (now - e.seen > this.ageingSeconds) { this.m.delete(mac); n++; }
    this.agedOut += n;
    return n;
  }

  flushPort(port: number): number {
    let n = 0;
    for (const [mac, e] of this.m) if (e.port === port) { this.m.delete(mac); n++; }
    return n;
  }

  delete(mac: string): boolean {
    return this.m.delete(mac);
  }

  entries(now: number): FdbEntry[] {
    const out: FdbEntry[] = [];
    for (const [mac, e] of this.m) if (now - e.seen <= this.ageingSeconds) out.push({ mac, port: e.port, age: now - e.seen });
    return out;
  }
}

function byPortThenMac(a: FdbEntry, b: FdbEntry): number {
  return a.port - b.port || (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0);
}

describe("Fdb basics", () => {
  const A: Mac = { hi: 0x0200, lo: 0x0a630001 };
  const B: Mac = { hi: 0x0200, lo: 0x0a630002 };

  it("learns a new MAC, knows it again on the same port, and reports a move to another", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    expect(fdb.learn(A.hi, A.lo, 1, 0)).toBe(Learn.New);
    expect(fdb.size).toBe(1);
    expect(fdb.learn(A.hi, A.lo, 1, 1)).toBe(Learn.Known);
    expect(fdb.lookup(A.hi, A.lo, 1)).toBe(1);
    expect(fdb.learn(A.hi, A.lo, 3, 2)).toBe(Learn.Moved);
    expect(fdb.lookup(A.hi, A.lo, 2)).toBe(3);
    expect(fdb.size).toBe(1);
  });

  it("an unknown MAC looks up as -1", () => {
    const fdb = new Fdb();
    expect(fdb.lookup(A.hi, A.lo, 0)).toBe(-1);
    fdb.learn(A.hi, A.lo, 1, 0);
    expect(fdb.lookup(B.hi, B.lo, 0)).toBe(-1);
  });

  it("MACs equal in one half and different in the other are different stations", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    fdb.learn(0x0200, 0x11111111, 1, 0);
    fdb.learn(0x0202, 0x11111111, 2, 0);
    fdb.learn(0x0200, 0x22222222, 3, 0);
    expect(fdb.size).toBe(3);
    expect(fdb.lookup(0x0200, 0x11111111, 0)).toBe(1);
    expect(fdb.lookup(0x0202, 0x11111111, 0)).toBe(2);
    expect(fdb.lookup(0x0200, 0x22222222, 0)).toBe(3);
  });

  it("a full table refuses new MACs but still refreshes and moves known ones", () => {
    const fdb = new Fdb({ maxEntries: 3 });
    const macs = randomMacs(prng(3), 5);
    for (let i = 0; i < 3; i++) expect(fdb.learn(macs[i].hi, macs[i].lo, i, 0)).toBe(Learn.New);
    expect(fdb.learn(macs[3].hi, macs[3].lo, 0, 0)).toBe(Learn.Full);
    expect(fdb.size).toBe(3);
    expect(fdb.lookup(macs[3].hi, macs[3].lo, 0)).toBe(-1);
    expect(fdb.learn(macs[0].hi, macs[0].lo, 0, 1)).toBe(Learn.Known);
    expect(fdb.learn(macs[1].hi, macs[1].lo, 2, 1)).toBe(Learn.Moved);
    expect(fdb.delete(macs[2].hi, macs[2].lo)).toBe(true);
    expect(fdb.learn(macs[4].hi, macs[4].lo, 4, 1)).toBe(Learn.New);
  });

  it("an entry lives exactly ageingSeconds after it was last heard, then lookup forgets it", () => {
    const fdb = new Fdb({ ageingSeconds: 300 });
    fdb.learn(A.hi, A.lo, 2, 1000);
    expect(fdb.lookup(A.hi, A.lo, 1300)).toBe(2);
    expect(fdb.size).toBe(1);
    expect(fdb.lookup(A.hi, A.lo, 1300.5)).toBe(-1);
    expect(fdb.size).toBe(0);
    expect(fdb.lookup(A.hi, A.lo, 1000)).toBe(-1); // gone, not just hidden
  });

  it("learning again restarts the ageing clock", () => {
    const fdb = new Fdb({ ageingSeconds: 10 });
    fdb.learn(A.hi, A.lo, 2, 0);
    fdb.learn(A.hi, A.lo, 2, 8);
    expect(fdb.lookup(A.hi, A.lo, 15)).toBe(2);
  });

  it("age() removes only expired entries and says how many", () => {
    const fdb = new Fdb({ ageingSeconds: 10 });
    const macs = randomMacs(prng(5), 6);
    macs.forEach((m, i) => fdb.learn(m.hi, m.lo, i, i < 4 ? 0 : 5));
    expect(fdb.age(10)).toBe(0);
    expect(fdb.age(12)).toBe(4);
    expect(fdb.size).toBe(2);
    expect(fdb.lookup(macs[4].hi, macs[4].lo, 12)).toBe(4);
    expect(fdb.lookup(macs[0].hi, macs[0].lo, 12)).toBe(-1);
  });

  it("flushPort() forgets every MAC on that port and no other", () => {
    const fdb = new Fdb({ maxEntries: 16 });
    const macs = randomMacs(prng(6), 9);
    macs.forEach((m, i) => fdb.learn(m.hi, m.lo, i % 3, 0));
    expect(fdb.flushPort(1)).toBe(3);
    expect(fdb.size).toBe(6);
    macs.forEach((m, i) => expect(fdb.lookup(m.hi, m.lo, 0)).toBe(i % 3 === 1 ? -1 : i % 3));
    expect(fdb.flushPort(1)).toBe(0);
  });

  it("delete() says whether the MAC was there", () => {
    const fdb = new Fdb();
    fdb.learn(A.hi, A.lo, 1, 0);
    expect(fdb.delete(B.hi, B.lo)).toBe(false);
    expect(fdb.delete(A.hi, A.lo)).toBe(true);
    expect(fdb.delete(A.hi, A.lo)).toBe(false);
    expect(fdb.size).toBe(0);
  });

  it("entries() lists live entries with their MAC, port and age, sorted by port, leaving out expired ones", () => {
    const fdb = new Fdb({ ageingSeconds: 10 });
    fdb.learn(0x0a58, 0x0af40103, 2, 100);
    fdb.learn(0x0a58, 0x0af40102, 2, 104);
    fdb.learn(0x0a58, 0x0af40101, 1, 103);
    fdb.learn(0x0a58, 0x0af40104, 0, 90); // expired at 105, though still counted until swept
    expect(fdb.entries(105)).toEqual([
      { mac: "0a:58:0a:f4:01:01", port: 1, age: 2 },
      { mac: "0a:58:0a:f4:01:02", port: 2, age: 1 },
      { mac: "0a:58:0a:f4:01:03", port: 2, age: 5 },
    ]);
    expect(fdb.size).toBe(4);
  });

  it("entries() lists an entry exactly ageingSeconds old, as lookup still finds it", () => {
    const fdb = new Fdb({ ageingSeconds: 10 });
    fdb.learn(0x0a58, 0x0af40101, 1, 100);
    expect(fdb.entries(110)).toEqual([{ mac: "0a:58:0a:f4:01:01", port: 1, age: 10 }]);
    expect(fdb.entries(110.25)).toEqual([]);
  });

  it("entries() sorts by port, then by MAC, whatever the order of the slots", () => {
    const fdb = new Fdb({ maxEntries: 64 });
    const macs = randomMacs(prng(11), 40);
    macs.forEach((m, i) => fdb.learn(m.hi, m.lo, (i * 7) % 5, 0));
    // The expected order, by hand: the port, then the MAC text compared character by character.
    const want = macs.map((m, i) => ({ mac: formatMacHiLo(m.hi, m.lo), port: (i * 7) % 5, age: 0 }))
      .sort((a, b) => a.port - b.port || (a.mac < b.mac ? -1 : 1));
    expect(fdb.entries(0)).toEqual(want);
  });

  it("the constructor takes 1 to 4194304 entries and defaults to 8192 and 300 s", () => {
    for (const bad of [0, -1, NaN, 2 ** 22 + 1]) {
      expect(() => new Fdb({ maxEntries: bad }), String(bad)).toThrow(new RangeError("FDB size must be 1 to 4194304"));
    }
    expect(new Fdb({ maxEntries: 1 }).maxEntries).toBe(1);
    expect(new Fdb({ maxEntries: 2 ** 22 }).maxEntries).toBe(4194304);
    const d = new Fdb();
    expect([d.maxEntries, d.ageingSeconds]).toEqual([FDB_DEFAULTS.maxEntries, FDB_DEFAULTS.ageingSeconds]);
    expect([d.maxEntries, d.ageingSeconds]).toEqual([8192, 300]);
  });

  it("a one-entry table holds one MAC", () => {
    const fdb = new Fdb({ maxEntries: 1 });
    expect(fdb.learn(A.hi, A.lo, 0, 0)).toBe(Learn.New);
    expect(fdb.learn(B.hi, B.lo, 0, 0)).toBe(Learn.Full);
    expect(fdb.lookup(A.hi, A.lo, 0)).toBe(0);
  });
});

describe("Fdb collisions and backward-shift deletion", () => {
  // maxEntries 8 gives 16 slots; MACs are picked by the slot they hash to.

  it("MACs with the same home slot are all found, and deleting the first keeps the rest reachable", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    const [x, y, z] = macsHomedAt(fdb, 5, 3);
    fdb.learn(x.hi, x.lo, 1, 0);
    fdb.learn(y.hi, y.lo, 2, 0);
    fdb.learn(z.hi, z.lo, 3, 0);
    expect([fdb.lookup(x.hi, x.lo, 0), fdb.lookup(y.hi, y.lo, 0), fdb.lookup(z.hi, z.lo, 0)]).toEqual([1, 2, 3]);
    expect(fdb.delete(x.hi, x.lo)).toBe(true);
    expect([fdb.lookup(x.hi, x.lo, 0), fdb.lookup(y.hi, y.lo, 0), fdb.lookup(z.hi, z.lo, 0)]).toEqual([-1, 2, 3]);
    expect(fdb.delete(y.hi, y.lo)).toBe(true);
    expect(fdb.lookup(z.hi, z.lo, 0)).toBe(3);
    expect(fdb.learn(x.hi, x.lo, 4, 0)).toBe(Learn.New);
    expect(fdb.learn(z.hi, z.lo, 3, 0)).toBe(Learn.Known); // not a second copy
    expect(fdb.size).toBe(2);
  });

  it("an entry homed inside the run stays when a hole opens before its home", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    const [a, b] = macsHomedAt(fdb, 5, 2); // slots 5, 6
    const [c] = macsHomedAt(fdb, 7, 1, 2); // slot 7, its own home
    const [d] = macsHomedAt(fdb, 6, 1, 3); // slot 8, displaced from 6
    for (const [m, p] of [[a, 1], [b, 2], [c, 3], [d, 4]] as const) fdb.learn(m.hi, m.lo, p, 0);
    fdb.delete(a.hi, a.lo); // b moves to 5; c stays at 7; d moves to 6
    expect([fdb.lookup(b.hi, b.lo, 0), fdb.lookup(c.hi, c.lo, 0), fdb.lookup(d.hi, d.lo, 0)]).toEqual([2, 3, 4]);
    fdb.delete(c.hi, c.lo);
    expect([fdb.lookup(b.hi, b.lo, 0), fdb.lookup(d.hi, d.lo, 0)]).toEqual([2, 4]);
    expect(fdb.size).toBe(2);
  });

  it("a probe run that wraps from the last slot to slot 0 survives deletions", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    const [x, y] = macsHomedAt(fdb, 15, 2); // slots 15 and 0
    const [z] = macsHomedAt(fdb, 0, 1, 4); // slot 1, displaced from 0
    const [w] = macsHomedAt(fdb, 1, 1, 5); // slot 2, displaced from 1
    for (const [m, p] of [[x, 1], [y, 2], [z, 3], [w, 4]] as const) fdb.learn(m.hi, m.lo, p, 0);
    fdb.delete(x.hi, x.lo);
    expect([fdb.lookup(y.hi, y.lo, 0), fdb.lookup(z.hi, z.lo, 0), fdb.lookup(w.hi, w.lo, 0)]).toEqual([2, 3, 4]);
    fdb.delete(z.hi, z.lo);
    expect([fdb.lookup(y.hi, y.lo, 0), fdb.lookup(w.hi, w.lo, 0)]).toEqual([2, 4]);
    expect(fdb.flushPort(2)).toBe(1);
    expect(fdb.lookup(w.hi, w.lo, 0)).toBe(4);
    expect(fdb.size).toBe(1);
  });

  it("an entry that wrapped to slot 0 is not pulled back before its home slot", () => {
    const fdb = new Fdb({ maxEntries: 8 });
    const [a] = macsHomedAt(fdb, 14, 1); // slot 14
    const [b, c] = macsHomedAt(fdb, 15, 2, 8); // slots 15 and 0
    for (const [m, p] of [[a, 1], [b, 2], [c, 3]] as const) fdb.learn(m.hi, m.lo, p, 0);
    fdb.delete(a.hi, a.lo); // the hole at 14 lies before b's and c's home: both stay put
    expect([fdb.lookup(b.hi, b.lo, 0), fdb.lookup(c.hi, c.lo, 0)]).toEqual([2, 3]);
    fdb.delete(b.hi, b.lo); // now c moves to 15, its home
    expect(fdb.lookup(c.hi, c.lo, 0)).toBe(3);
    expect(fdb.size).toBe(1);
  });

  it("age() and flushPort() remove every matching entry of a wrapped run, including ones shifted into visited slots", () => {
    const fdb = new Fdb({ maxEntries: 8, ageingSeconds: 10 });
    const run = [...macsHomedAt(fdb, 14, 3), ...macsHomedAt(fdb, 15, 2, 7)]; // slots 14, 15, 0, 1, 2
    run.forEach((m, i) => fdb.learn(m.hi, m.lo, i % 2, i % 2 === 0 ? 0 : 20));
    expect(fdb.age(25)).toBe(3); // those learned at 0
    expect(fdb.size).toBe(2);
    run.forEach((m, i) => expect(fdb.lookup(m.hi, m.lo, 25)).toBe(i % 2 === 0 ? -1 : 1));
    run.forEach((m, i) => { if (i % 2 === 0) fdb.learn(m.hi, m.lo, 1, 25); });
    expect(fdb.flushPort(1)).toBe(5);
    expect(fdb.size).toBe(0);
    expect(fdb.entries(25)).toEqual([]);
  });
});

describe("Fdb when full", () => {
  it("makes room from expired entries before refusing a new MAC, at most one sweep a second", () => {
    const fdb = new Fdb({ maxEntries: 2, ageingSeconds: 10 });
    fdb.learn(0x0200, 1, 1, 0);
    fdb.learn(0x0200, 2, 2, 5);
    expect(fdb.learn(0x0200, 3, 3, 8)).toBe(Learn.Full); // nothing expired yet
    expect(fdb.learn(0x0200, 3, 3, 8.5)).toBe(Learn.Full); // within a second: no second sweep
    expect(fdb.learn(0x0200, 3, 3, 11)).toBe(Learn.New); // the one heard at 0 has expired
    expect(fdb.agedOut).toBe(1);
    expect(fdb.lookup(0x0200, 1, 11)).toBe(-1);
    expect(fdb.lookup(0x0200, 2, 11)).toBe(2);
    expect(fdb.lookup(0x0200, 3, 11)).toBe(3);
  });

  it("a full table sweeps again exactly one second after its last sweep, not sooner", () => {
    const fdb = new Fdb({ maxEntries: 2, ageingSeconds: 10 });
    fdb.learn(0x0200, 1, 1, -2); // expired from 8 on (older than 10 s)
    fdb.learn(0x0200, 2, 2, 0);
    expect(fdb.learn(0x0200, 3, 3, 8)).toBe(Learn.Full); // the sweep at 8 finds nothing expired
    expect(fdb.learn(0x0200, 3, 3, 8.5)).toBe(Learn.Full); // the first has expired, but no sweep yet
    expect(fdb.size).toBe(2);
    expect(fdb.learn(0x0200, 3, 3, 9)).toBe(Learn.New); // one second on: sweeps, makes room
    expect(fdb.agedOut).toBe(1);
    expect(fdb.entries(9).map((e) => e.port)).toEqual([2, 3]);
  });

  it("counts entries that a lookup finds expired as aged", () => {
    const fdb = new Fdb({ maxEntries: 4, ageingSeconds: 10 });
    fdb.learn(0x0200, 1, 1, 0);
    expect(fdb.lookup(0x0200, 1, 20)).toBe(-1);
    expect(fdb.agedOut).toBe(1);
  });
});

describe("Fdb against a naive model, random operations", () => {
  const OPS = trials(20_000, 5000);
  const PORTS = 5;

  for (const maxEntries of [8, 13, 64]) {
    for (const seed of [1, 2, 3, 0xfdb, 0xbeef]) {
      it(`agrees op by op: maxEntries ${maxEntries}, seed ${seed}`, () => {
        const rnd = prng(seed * 1000 + maxEntries);
        // Stations age out after a few table-fulls of operations, so the table both fills and empties.
        const ageing = maxEntries * 4;
        const fdb = new Fdb({ maxEntries, ageingSeconds: ageing });
        const model = new ModelFdb(maxEntries, ageing);
        // A MAC space a few times the table size, so the table fills, evicts and collides.
        const macs = randomMacs(rnd, maxEntries * 3 + 2);
        const keys = macs.map((m) => formatMacHiLo(m.hi, m.lo));
        const homeOf = new Map(macs.map((m, j) => [keys[j], home(fdb, m)]));
        let now = 1000;
        let sharedHomeLearns = 0;
        let fullLearns = 0;
        let removals = 0;

        // expect() only on a mismatch (or for arrays): one per operation would dominate the run time.
        const same = (actual: unknown, expected: unknown, i: number, op: string) => {
          if (actual !== expected) expect(actual, `seed ${seed}, maxEntries ${maxEntries}, op ${i}: ${op}`).toEqual(expected);
        };

        for (let i = 0; i < OPS; i++) {
          if (rnd() < 0.3) now += rnd() < 0.95 ? rnd() * 2 : rnd() * ageing;
          const k = Math.floor(rnd() * macs.length);
          const { hi, lo } = macs[k];
          const r = rnd();
          if (r < 0.5) {
            const port = Math.floor(rnd() * PORTS);
            const expected = model.learn(keys[k], port, now);
            if (expected === Learn.Full) fullLearns++;
            if (expected === Learn.New && [...model.m.keys()].some((key) => key !== keys[k] && homeOf.get(key) === homeOf.get(keys[k]))) sharedHomeLearns++;
            same(fdb.learn(hi, lo, port, now), expected, i, `learn ${keys[k]} on ${port} at ${now}`);
          } else if (r < 0.78) {
            const before = model.m.size;
            same(fdb.lookup(hi, lo, now), model.lookup(keys[k], now), i, `lookup ${keys[k]} at ${now}`);
            removals += before - model.m.size;
          } else if (r < 0.9) {
            const expected = model.delete(keys[k]);
            if (expected) removals++;
            same(fdb.delete(hi, lo), expected, i, `delete ${keys[k]}`);
          } else if (r < 0.94) {
            const expected = model.age(now);
            removals += expected;
            same(fdb.age(now), expected, i, `age at ${now}`);
          } else if (r < 0.97) {
            const port = Math.floor(rnd() * PORTS);
            const expected = model.flushPort(port);
            removals += expected;
            same(fdb.flushPort(port), expected, i, `flushPort ${port}`);
          } else {
            same(fdb.size, model.m.size, i, "size");
          }
          if (i % 500 === 499) {
            same(fdb.size, model.m.size, i, "size");
            same(fdb.agedOut, model.agedOut, i, "agedOut");
            same(fdb.entries(now).sort(byPortThenMac), model.entries(now).sort(byPortThenMac), i, `entries at ${now}`);
          }
        }
        // The run did what it was for: MACs shared home slots (probe chains) and were removed
        // from them (backward shifts), and the table filled up (thresholds scaled with OPS).
        expect(sharedHomeLearns).toBeGreaterThan(OPS / 200);
        expect(removals).toBeGreaterThan(OPS / 20);
        expect(fullLearns).toBeGreaterThan(0);
      });
    }
  }
});

/**
 * The forwarding database of a learning bridge: which port each MAC address was last seen on.
 *
 * An open-addressing hash table with linear probing over typed arrays, sized once: learning
 * and lookup allocate nothing, and the table never grows past `maxEntries` (a flood of random
 * source MACs fills it, then is counted, instead of eating memory). Entries age out
 * `ageingSeconds` after the station was last heard from, as in 802.1D (default 300 s); a full
 * table sweeps out expired entries before it refuses a new one.
 * Deletion shifts the following entries back, so no tombstones build up.
 *
 * A MAC is passed as `hi` (bytes 0-1) and `lo` (bytes 2-5), as read from the frame.
 */
import { formatMacHiLo } from "../wire/mac.ts";

export const Learn = { Known: 0, New: 1, Moved: 2, Full: 3 } as const;
export type LearnResult = (typeof Learn)[keyof typeof Learn];

export interface FdbOptions {
  maxEntries: number;
  ageingSeconds: number;
}

export const FDB_DEFAULTS: FdbOptions = { maxEntries: 8192, ageingSeconds: 300 };

export interface FdbEntry {
  mac: string;
  port: number;
  /** Seconds since the station was last heard from. */
  age: number;
}

const EMPTY = -1;

export class Fdb {
  readonly maxEntries: number;
  readonly ageingSeconds: number;
  private readonly mask: number;
  private readonly his: Uint16Array;
  private readonly los: Uint32Array;
  private readonly ports: Int32Array;
  private readonly seen: Float64Array;
  private count = 0;
  /** When a full table last swept out expired entries to make room. */
  private lastFullSweep = -Infinity;
  /** Entries removed because they expired, by lookups and sweeps alike. */
  agedOut = 0;

  constructor(opts: Partial<FdbOptions> = {}) {
    const o = { ...FDB_DEFAULTS, ...opts };
    if (!(o.maxEntries >= 1 && o.maxEntries <= 1 << 22)) throw new RangeError("FDB size must be 1 to 4194304");
    this.maxEntries = o.maxEntries;
    this.ageingSeconds = o.ageingSeconds;
    let cap = 16;
    while (cap < o.maxEntries * 2) cap *= 2; // load factor at most 1/2: short probe runs
    this.mask = cap - 1;
    this.his = new Uint16Array(cap);
    this.los = new Uint32Array(cap);
    this.ports = new Int32Array(cap).fill(EMPTY);
    this.seen = new Float64Array(cap);
  }

  get size(): number {
    return this.count;
  }

  private home(hi: number, lo: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  private find(hi: number, lo: number): number {
    let i = this.home(hi, lo);
    while (this.ports[i] !== EMPTY) {
      if (this.los[i] === lo && this.his[i] === hi) return i;
      i = (i + 1) & this.mask;
    }
    return -1 - i; // not found: -1 - (the empty slot where it would go)
  }

  /** Records that `hi:lo` was heard on `port` at `now` (seconds). */
  learn(hi: number, lo: number, port: number, now: number): LearnResult {
    const i = this.find(hi, lo);
    if (i >= 0) {
      this.seen[i] = now;
      if (this.ports[i] === port) return Learn.Known;
      this.ports[i] = port;
      return Learn.Moved;
    }
    let slot = -1 - i;
    if (this.count >= this.maxEntries) {
      // Full: make room from expired entries, at most once a second, so that a flood of new
      // MACs into a full table costs a sweep a second, not one a frame.
      if (now - this.lastFullSweep < 1) return Learn.Full;
      this.lastFullSweep = now;
      if (this.age(now) === 0) return Learn.Full;
      slot = -1 - this.find(hi, lo);
    }
    this.his[slot] = hi;
    this.los[slot] = lo;
    this.ports[slot] = port;
    this.seen[slot] = now;
    this.count++;
    return Learn.New;
  }

  /** The port `hi:lo` was last heard on, or -1 if unknown or aged out. */
  lookup(hi: number, lo: number, now: number): number {
    const i = this.find(hi, lo);
    if (i < 0) return -1;
    if (now - this.seen[i] > this.ageingSeconds) {
      this.removeAt(i);
      this.agedOut++;
      return -1;
    }
    return this.ports[i];
  }

  /** Removes entries not heard from for longer than the ageing time; returns how many. */
  age(now: number): number {
    let removed = 0;
    for (let i = 0; i <= this.mask; i++) {
      // removeAt may shift a later entry into slot i: look at i again until it stays.
      while (this.ports[i] !== EMPTY && now - this.seen[i] > this.ageingSeconds) {
        this.removeAt(i);
        removed++;
      }
    }
    this.agedOut += removed;
    return removed;
  }

  /** Forgets every MAC learned on `port` (the port went away); returns how many. */
  flushPort(port: number): number {
    let removed = 0;
    for (let i = 0; i <= this.mask; i++) {
      while (this.ports[i] === port) {
        this.removeAt(i);
        removed++;
      }
    }
    return removed;
  }

  delete(hi: number, lo: number): boolean {
    const i = this.find(hi, lo);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Backward-shift deletion: pull later entries of the probe run into the hole. */
  private removeAt(hole: number): void {
    const m = this.mask;
    let i = hole;
    let j = hole;
    for (;;) {
      j = (j + 1) & m;
      if (this.ports[j] === EMPTY) break;
      const k = this.home(this.his[j], this.los[j]);
      // Entry j may fill the hole unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      this.his[i] = this.his[j];
      this.los[i] = this.los[j];
      this.ports[i] = this.ports[j];
      this.seen[i] = this.seen[j];
      i = j;
    }
    this.ports[i] = EMPTY;
    this.count--;
  }

  /** Every live entry as a plain object, for status and tests (off the hot path). */
  entries(now: number): FdbEntry[] {
    const out: FdbEntry[] = [];
    for (let i = 0; i <= this.mask; i++) {
      if (this.ports[i] === EMPTY) continue;
      const age = now - this.seen[i];
      if (age > this.ageingSeconds) continue;
      out.push({ mac: formatMacHiLo(this.his[i], this.los[i]), port: this.ports[i], age });
    }
    return out.sort((a, b) => a.port - b.port || a.mac.localeCompare(b.mac));
  }
}

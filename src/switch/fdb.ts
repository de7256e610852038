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
 * Two kinds of entry (port security, like a bridge's static entries and `max_learned`):
 *   - pinned: a pod's own MAC on its port, put there when the port is added (`pin`). Traffic
 *     never moves it, it never ages, and learning never evicts it; only the port's removal
 *     (`flushPort`) or `delete` takes it out. Pinning into a full table makes room from the
 *     learned entries (the expired ones first, else the stalest).
 *   - learned: from frames' source addresses, as above, and at most `portQuota` of them on any
 *     one port, so that a port flooding random MACs fills its own share and not the table.
 *
 * A MAC is passed as `hi` (bytes 0-1) and `lo` (bytes 2-5), as read from the frame.
 */
import { formatMacHiLo } from "../wire/mac.ts";

/** What learning a source MAC did: Pinned says the MAC is pinned to another port (nothing changed). */
export const Learn = { Known: 0, New: 1, Moved: 2, Full: 3, Pinned: 4 } as const;
export type LearnResult = (typeof Learn)[keyof typeof Learn];

export interface FdbOptions {
  maxEntries: number;
  ageingSeconds: number;
  /** Learned entries one port may hold at most (default 1024); pinned ones do not count. */
  portQuota?: number;
}

export const FDB_DEFAULTS: FdbOptions = { maxEntries: 8192, ageingSeconds: 300, portQuota: 1024 };
/** The port numbers an Fdb takes when not told: 0 to 4095. */
export const FDB_DEFAULT_PORTS = 4096;

export interface FdbEntry {
  mac: string;
  port: number;
  /** Seconds since the station was last heard from (0 for a pinned entry). */
  age: number;
  /** A pod's own MAC on its port, never learned, moved or aged. */
  pinned?: true;
}

const EMPTY = -1;
const MAX_ENTRIES = 1 << 22;

export class Fdb {
  readonly maxEntries: number;
  readonly ageingSeconds: number;
  readonly portQuota: number;
  private readonly mask: number;
  private readonly his: Uint16Array;
  private readonly los: Uint32Array;
  private readonly ports: Int32Array;
  private readonly seen: Float64Array;
  private readonly pinned: Uint8Array;
  /** Learned (not pinned) entries on each port. */
  private readonly learnedOn: Int32Array;
  private count = 0;
  private pins = 0;
  /** When a full table (or a port at its quota) last swept out expired entries to make room. */
  private lastFullSweep = -Infinity;
  /** Entries removed because they expired, by lookups and sweeps alike. */
  agedOut = 0;

  /** `maxPorts`: ports are numbered 0 to maxPorts - 1. */
  constructor(opts: Partial<FdbOptions> = {}, readonly maxPorts = FDB_DEFAULT_PORTS) {
    const o = { ...FDB_DEFAULTS, ...opts };
    if (!(o.maxEntries >= 1 && o.maxEntries <= MAX_ENTRIES)) throw new RangeError("FDB size must be 1 to 4194304");
    const quota = o.portQuota ?? FDB_DEFAULTS.portQuota!;
    if (!(Number.isInteger(quota) && quota >= 1 && quota <= MAX_ENTRIES)) throw new RangeError("FDB port quota must be 1 to 4194304");
    if (!(Number.isInteger(maxPorts) && maxPorts >= 1 && maxPorts <= 65536)) throw new RangeError("FDB port count must be 1 to 65536");
    this.maxEntries = o.maxEntries;
    this.ageingSeconds = o.ageingSeconds;
    this.portQuota = Math.min(quota, o.maxEntries);
    let cap = 16;
    while (cap < o.maxEntries * 2) cap *= 2; // load factor at most 1/2: short probe runs
    this.mask = cap - 1;
    this.his = new Uint16Array(cap);
    this.los = new Uint32Array(cap);
    this.ports = new Int32Array(cap).fill(EMPTY);
    this.seen = new Float64Array(cap);
    this.pinned = new Uint8Array(cap);
    this.learnedOn = new Int32Array(maxPorts);
  }

  /** Entries in the table, pinned and learned, expired ones not yet swept out included. */
  get size(): number {
    return this.count;
  }

  /** Pinned entries in the table. */
  get pinnedCount(): number {
    return this.pins;
  }

  /** Learned entries on `port`, expired ones not yet swept out included. */
  learned(port: number): number {
    return port >= 0 && port < this.maxPorts ? this.learnedOn[port] : 0;
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

  /**
   * Records that `hi:lo` was heard on `port` at `now` (seconds). A MAC pinned to another port
   * stays where it is (Pinned); a new or moving MAC needs room in the table and in the port's
   * quota (Full if there is none, even after a sweep of expired entries).
   */
  learn(hi: number, lo: number, port: number, now: number): LearnResult {
    if (!(port >= 0 && port < this.maxPorts)) return Learn.Full;
    let i = this.find(hi, lo);
    if (i >= 0 && this.pinned[i]) return this.ports[i] === port ? Learn.Known : Learn.Pinned;
    if (i >= 0 && this.ports[i] === port) {
      this.seen[i] = now;
      return Learn.Known;
    }
    if ((i < 0 && this.count >= this.maxEntries) || this.learnedOn[port] >= this.portQuota) {
      // Full: make room from expired entries, at most once a second, so that a flood of new
      // MACs into a full table (or port) costs a sweep a second, not one a frame.
      if (now - this.lastFullSweep < 1) return Learn.Full;
      this.lastFullSweep = now;
      if (this.age(now) === 0) return Learn.Full;
      i = this.find(hi, lo); // the sweep may have removed or shifted it
      if ((i < 0 && this.count >= this.maxEntries) || this.learnedOn[port] >= this.portQuota) return Learn.Full;
    }
    if (i >= 0) {
      this.learnedOn[this.ports[i]]--;
      this.learnedOn[port]++;
      this.ports[i] = port;
      this.seen[i] = now;
      return Learn.Moved;
    }
    this.put(-1 - i, hi, lo, port, now, 0);
    this.learnedOn[port]++;
    return Learn.New;
  }

  private put(slot: number, hi: number, lo: number, port: number, now: number, pinned: number): void {
    this.his[slot] = hi;
    this.los[slot] = lo;
    this.ports[slot] = port;
    this.seen[slot] = now;
    this.pinned[slot] = pinned;
    this.count++;
  }

  /**
   * Pins `hi:lo` to `port` (a pod's own MAC): whatever entry the MAC had is replaced. In a
   * full table the expired learned entries are swept out, else the stalest learned one makes
   * room. False only if the table holds nothing but pinned entries. Off the hot path.
   */
  pin(hi: number, lo: number, port: number, now: number): boolean {
    if (!(Number.isInteger(port) && port >= 0 && port < this.maxPorts)) throw new RangeError(`port ${port} is not 0 to ${this.maxPorts - 1}`);
    let i = this.find(hi, lo);
    if (i >= 0) {
      this.removeAt(i);
    } else if (this.count >= this.maxEntries && this.age(now) === 0) {
      let stalest = -1; // the least recently heard; of those, the lowest MAC
      for (let j = 0; j <= this.mask; j++) {
        if (this.ports[j] === EMPTY || this.pinned[j]) continue;
        const d = stalest < 0 ? -1 : this.seen[j] - this.seen[stalest] || this.his[j] - this.his[stalest] || this.los[j] - this.los[stalest];
        if (d < 0) stalest = j;
      }
      if (stalest < 0) return false;
      this.removeAt(stalest);
    }
    i = this.find(hi, lo);
    this.put(-1 - i, hi, lo, port, now, 1);
    this.pins++;
    return true;
  }

  /** The port `hi:lo` is pinned to, or -1 if it is not pinned. */
  pinnedPort(hi: number, lo: number): number {
    const i = this.find(hi, lo);
    return i >= 0 && this.pinned[i] ? this.ports[i] : -1;
  }

  /** The port `hi:lo` was last heard on (or is pinned to), or -1 if unknown or aged out. */
  lookup(hi: number, lo: number, now: number): number {
    const i = this.find(hi, lo);
    if (i < 0) return -1;
    if (!this.pinned[i] && now - this.seen[i] > this.ageingSeconds) {
      this.removeAt(i);
      this.agedOut++;
      return -1;
    }
    return this.ports[i];
  }

  /** Removes learned entries not heard from for longer than the ageing time; returns how many. */
  age(now: number): number {
    let removed = 0;
    for (let i = 0; i <= this.mask; i++) {
      // removeAt may shift a later entry into slot i: look at i again until it stays.
      while (this.ports[i] !== EMPTY && !this.pinned[i] && now - this.seen[i] > this.ageingSeconds) {
        this.removeAt(i);
        removed++;
      }
    }
    this.agedOut += removed;
    return removed;
  }

  /** Forgets every MAC on `port`, pinned ones too (the port went away); returns how many. */
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

  /** Takes entry `hole` out of the counts, then backward-shift deletion: later entries of the probe run fill the hole. */
  private removeAt(hole: number): void {
    if (this.pinned[hole]) this.pins--;
    else this.learnedOn[this.ports[hole]]--;
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
      this.pinned[i] = this.pinned[j];
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
      const mac = formatMacHiLo(this.his[i], this.los[i]);
      if (this.pinned[i]) {
        out.push({ mac, port: this.ports[i], age: 0, pinned: true });
        continue;
      }
      const age = now - this.seen[i];
      if (age > this.ageingSeconds) continue;
      out.push({ mac, port: this.ports[i], age });
    }
    return out.sort((a, b) => a.port - b.port || a.mac.localeCompare(b.mac));
  }
}

/**
 * The switch's connection-tracking table: every flow the datapath has seen, by its 5-tuple.
 *
 * A flow f (0 to capacity-1) has two directions d (ORIG, REPLY), each with the tuple
 * (proto, src, dst, sport, dport) its packets carry on the wire: the reply tuple is the inverse
 * of the original one, or its translation when NAT is involved. Both tuples are keys, so a
 * packet of either direction finds its flow; a key is named by k = f*2+d.
 *
 * Everything lives in typed arrays sized once in the constructor, and nothing on the packet path
 * allocates: the per-flow and per-direction fields are public arrays the caller reads in place.
 * The index is a chained hash table: bucket heads and one `next` link per key, both Int32Arrays,
 * with at most one key per bucket on average. Removing a key unlinks it (exact, no tombstones).
 * The hash mixes the five words with Math.imul (MurmurHash3's steps) from a seed chosen at random
 * unless given, so no sender can aim tuples at one bucket. Free flow ids are kept on a stack. The
 * table never grows: a full table refuses new flows (the caller counts that drop).
 *
 * Each flow has an owner, a number from 0 to owners-1 the caller gives at create (tracker.ts:
 * the port it came from, the peer node that sent it), and no owner holds more than `quota` flows:
 * one more is refused (the caller counts that drop too), so one sender cannot fill the table for
 * all. The flow keeps its owner's number, and every removal (remove, which sweep and the
 * tracker's flushes go through) gives the flow back to it, so the counts are exact. The options
 * and their defaults (a quarter of the table per owner, and why) are in options.ts.
 *
 * States follow Linux conntrack's broad ones (new, established, closing); every packet sets the
 * expiry from the new state's timeout. `sweep` removes expired flows a few slots at a time, from
 * where the last sweep stopped, so a round of the datapath never pays for the whole table.
 *
 * Memory: 91 bytes a flow (the counters are 32 of them), 5.7 MiB for the default 65536 flows,
 * and 4 bytes an owner.
 *
 * Addresses are taken as unsigned 32-bit numbers, ports as 16-bit, the protocol as 8-bit (values
 * are reduced to those widths, the same way for keys and lookups).
 */
import { randomBytes } from "node:crypto";
import { MAX_FLOWS_LIMIT, TIMEOUT_NAMES, type ConntrackTimeouts } from "./options.ts";

export {
  DEFAULT_MAX_FLOWS, DEFAULT_TIMEOUTS, defaultQuota, formatTimeouts, MAX_FLOWS_LIMIT, parseTimeouts, type ConntrackOptions, type ConntrackTimeouts,
} from "./options.ts";

export const FlowState = { New: 0, Established: 1, Closing: 2 } as const;
export type FlowStateValue = (typeof FlowState)[keyof typeof FlowState];

export const ORIG = 0, REPLY = 1;

const TCP = 6, UDP = 17, ICMP = 1;
const FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10;
const NONE = -1;

/** One MurmurHash3 round: mixes the word k into h. */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

export class FlowTable {
  readonly capacity: number;
  readonly timeouts: ConntrackTimeouts;
  // Per flow f.
  readonly proto: Uint8Array;
  readonly state: Uint8Array;
  /** Seconds, on the caller's clock. */
  readonly expires: Float64Array;
  /** The owner's number, given at create. */
  readonly owner: Int32Array;
  // Per direction, index f*2+d: the tuple as it is on the wire that way, and the counters.
  readonly src: Uint32Array;
  readonly dst: Uint32Array;
  readonly sport: Uint16Array;
  readonly dport: Uint16Array;
  readonly packets: Float64Array;
  readonly bytes: Float64Array;

  /** How many owners there are, and the most flows each may hold. */
  readonly owners: number;
  readonly quota: number;

  private readonly live: Uint8Array;
  /** Live flows per owner. */
  private readonly held: Int32Array;
  private readonly seed: number;
  private readonly mask: number;
  /** First key of each bucket, or NONE. */
  private readonly heads: Int32Array;
  /** Next key in the same bucket, per key. */
  private readonly next: Int32Array;
  /** Free flow ids: a stack, freeTop of them. */
  private readonly free: Int32Array;
  private freeTop: number;
  private liveCount = 0;
  private cursor = 0;

  /** `owners`: 1 unless given; `quota`: max unless given (no owner limited below the table). */
  constructor(opts: { max: number; timeouts: ConntrackTimeouts; seed?: number; owners?: number; quota?: number }) {
    const max = opts.max;
    if (!(Number.isInteger(max) && max >= 1 && max <= MAX_FLOWS_LIMIT)) {
      throw new RangeError(`conntrack max must be a whole number of flows from 1 to ${MAX_FLOWS_LIMIT}, not ${max}`);
    }
    const owners = opts.owners ?? 1, quota = opts.quota ?? max;
    if (!(Number.isInteger(owners) && owners >= 1 && owners <= MAX_FLOWS_LIMIT)) {
      throw new RangeError(`conntrack owners must be a whole number from 1 to ${MAX_FLOWS_LIMIT}, not ${owners}`);
    }
    if (!(Number.isInteger(quota) && quota >= 1 && quota <= max)) {
      throw new RangeError(`conntrack max per pod must be a whole number of flows from 1 to the table's ${max}, not ${quota}`);
    }
    for (const [, field] of TIMEOUT_NAMES) {
      const v = opts.timeouts[field];
      if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
        throw new RangeError(`conntrack timeout ${field} must be a positive number of seconds, not ${v}`);
      }
    }
    this.capacity = max;
    this.owners = owners;
    this.quota = quota;
    this.held = new Int32Array(owners);
    this.owner = new Int32Array(max);
    const t = Object.freeze({ ...opts.timeouts });
    this.timeouts = t;
    this.seed = opts.seed === undefined ? randomBytes(4).readInt32LE(0) : opts.seed | 0;
    this.proto = new Uint8Array(max);
    this.state = new Uint8Array(max);
    this.expires = new Float64Array(max);
    this.live = new Uint8Array(max);
    this.src = new Uint32Array(max * 2);
    this.dst = new Uint32Array(max * 2);
    this.sport = new Uint16Array(max * 2);
    this.dport = new Uint16Array(max * 2);
    this.packets = new Float64Array(max * 2);
    this.bytes = new Float64Array(max * 2);
    let buckets = 8;
    while (buckets < max * 2) buckets *= 2; // one bucket per key or more: short chains
    this.mask = buckets - 1;
    this.heads = new Int32Array(buckets).fill(NONE);
    this.next = new Int32Array(max * 2).fill(NONE);
    this.free = new Int32Array(max);
    for (let i = 0; i < max; i++) this.free[i] = max - 1 - i; // flow 0 is handed out first
    this.freeTop = max;
  }

  /** Live flows. */
  get count(): number {
    return this.liveCount;
  }

  /** Live flows of `owner` (0 for a number out of range). */
  heldBy(owner: number): number {
    return owner >= 0 && owner < this.owners ? this.held[owner] : 0;
  }

  /** Seconds a flow of this protocol lives in this state without packets. */
  private timeout(proto: number, state: number): number {
    const t = this.timeouts;
    if (proto === TCP) return state === FlowState.New ? t.tcpNew : state === FlowState.Established ? t.tcpEstablished : t.tcpClosing;
    if (proto === UDP) return state === FlowState.New ? t.udp : t.udpStream;
    return proto === ICMP ? t.icmp : t.other;
  }

  /** The bucket of a tuple (already reduced to its widths). */
  private bucket(proto: number, src: number, dst: number, sport: number, dport: number): number {
    let h = mix(this.seed, proto);
    h = mix(h, src);
    h = mix(h, dst);
    h = mix(h, (sport << 16) | dport);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & this.mask;
  }

  private find(proto: number, src: number, dst: number, sport: number, dport: number): number {
    let k = this.heads[this.bucket(proto, src, dst, sport, dport)];
    while (k !== NONE) {
      if (this.src[k] === src && this.dst[k] === dst && this.sport[k] === sport && this.dport[k] === dport && this.proto[k >> 1] === proto) return k;
      k = this.next[k];
    }
    return NONE;
  }

  /** f*2+d of the flow whose direction d has this tuple, or -1. */
  lookup(proto: number, src: number, dst: number, sport: number, dport: number): number {
    return this.find(proto & 0xff, src >>> 0, dst >>> 0, sport & 0xffff, dport & 0xffff);
  }

  /** Writes key k's tuple (proto is the flow's) and links it into its bucket. */
  private link(k: number, src: number, dst: number, sport: number, dport: number): void {
    this.src[k] = src;
    this.dst[k] = dst;
    this.sport[k] = sport;
    this.dport[k] = dport;
    const b = this.bucket(this.proto[k >> 1], src, dst, sport, dport);
    this.next[k] = this.heads[b];
    this.heads[b] = k;
  }

  private unlink(k: number): void {
    const b = this.bucket(this.proto[k >> 1], this.src[k], this.dst[k], this.sport[k], this.dport[k]);
    let i = this.heads[b];
    if (i === k) {
      this.heads[b] = this.next[k];
    } else {
      while (i !== NONE && this.next[i] !== k) i = this.next[i];
      if (i !== NONE) this.next[i] = this.next[k];
    }
    this.next[k] = NONE;
  }

  /**
   * Makes a flow of `owner` with both tuples, state New, no packets counted, expiring at now +
   * the New timeout of its protocol. Returns f; or, nothing changed: -2 (checked first) when
   * either tuple is already a key or the two tuples are the same; -1 when the table is full (it
   * never grows); -3 when the owner holds its quota. An owner out of range is the last one.
   */
  create(proto: number, oSrc: number, oDst: number, oSport: number, oDport: number, rSrc: number, rDst: number, rSport: number, rDport: number, now: number, owner = 0): number {
    proto &= 0xff;
    oSrc >>>= 0; oDst >>>= 0; oSport &= 0xffff; oDport &= 0xffff;
    rSrc >>>= 0; rDst >>>= 0; rSport &= 0xffff; rDport &= 0xffff;
    if (oSrc === rSrc && oDst === rDst && oSport === rSport && oDport === rDport) return -2;
    if (this.find(proto, oSrc, oDst, oSport, oDport) !== NONE || this.find(proto, rSrc, rDst, rSport, rDport) !== NONE) return -2;
    if (!(owner >= 0 && owner < this.owners)) owner = this.owners - 1;
    owner |= 0;
    if (this.freeTop === 0) return -1;
    if (this.held[owner] >= this.quota) return -3;
    const f = this.free[--this.freeTop];
    this.live[f] = 1;
    this.liveCount++;
    this.owner[f] = owner;
    this.held[owner]++;
    this.proto[f] = proto;
    this.state[f] = FlowState.New;
    this.expires[f] = now + this.timeout(proto, FlowState.New);
    const o = f * 2, r = o + 1;
    this.packets[o] = 0; this.packets[r] = 0;
    this.bytes[o] = 0; this.bytes[r] = 0;
    this.link(o, oSrc, oDst, oSport, oDport);
    this.link(r, rSrc, rDst, rSport, rDport);
    return f;
  }

  /** Replaces the REPLY tuple of flow f (for NAT port allocation), re-keying it; false (nothing changed) if the new tuple is already another key, or f is not a live flow. */
  setReply(f: number, rSrc: number, rDst: number, rSport: number, rDport: number): boolean {
    if (!this.isLive(f)) return false;
    rSrc >>>= 0; rDst >>>= 0; rSport &= 0xffff; rDport &= 0xffff;
    const r = f * 2 + 1;
    const k = this.find(this.proto[f], rSrc, rDst, rSport, rDport);
    if (k === r) return true;
    if (k !== NONE) return false;
    this.unlink(r);
    this.link(r, rSrc, rDst, rSport, rDport);
    return true;
  }

  /**
   * A packet of `bytes` bytes of flow f in direction d: counted; the state moves and the expiry is
   * set from the new state's timeout. TCP: a FIN or RST either way → Closing; on a Closing flow, a
   * SYN without ACK in ORIG direction → New (the port reused); otherwise New → Established on a
   * REPLY packet. Other protocols: Established on a REPLY packet (flags ignored). A flow that is
   * not live is left alone.
   */
  seen(f: number, d: number, tcpFlags: number, bytes: number, now: number): void {
    if (!this.isLive(f)) return;
    const dir = d & 1;
    const k = f * 2 + dir;
    this.packets[k]++;
    this.bytes[k] += bytes;
    const p = this.proto[f];
    let s = this.state[f];
    if (p === TCP) {
      if ((tcpFlags & (FIN | RST)) !== 0) s = FlowState.Closing;
      else if (s === FlowState.Closing) {
        if (dir === ORIG && (tcpFlags & (SYN | ACK)) === SYN) s = FlowState.New;
      } else if (dir === REPLY) s = FlowState.Established;
    } else if (dir === REPLY) {
      s = FlowState.Established;
    }
    this.state[f] = s;
    this.expires[f] = now + this.timeout(p, s);
  }

  /** Removes flow f and both its keys, and gives it back to its owner; nothing if it is not live. */
  remove(f: number): void {
    if (!this.isLive(f)) return;
    this.unlink(f * 2);
    this.unlink(f * 2 + 1);
    this.live[f] = 0;
    this.liveCount--;
    this.held[this.owner[f]]--;
    this.free[this.freeTop++] = f;
  }

  isLive(f: number): boolean {
    return f >= 0 && f < this.capacity && this.live[f] === 1;
  }

  /**
   * Looks at up to `budget` flow slots (at most the whole table once) from where the last sweep
   * stopped, wrapping, and removes those with expires <= now, calling onExpired(f) before each
   * removal (the flow still readable). Returns how many it removed.
   */
  sweep(now: number, budget: number, onExpired?: (f: number) => void): number {
    const n = Math.min(Math.floor(budget), this.capacity);
    let removed = 0;
    let f = this.cursor;
    for (let i = 0; i < n; i++) {
      if (this.live[f] === 1 && this.expires[f] <= now) {
        if (onExpired) onExpired(f);
        if (this.live[f] === 1) this.remove(f); // the callback may have removed it
        removed++;
      }
      f = f + 1 === this.capacity ? 0 : f + 1;
    }
    this.cursor = f;
    return removed;
  }

  /** fn(f) for every live flow, in slot order (off the hot path). fn may remove flows. */
  forEach(fn: (f: number) => void): void {
    for (let f = 0; f < this.capacity; f++) if (this.live[f] === 1) fn(f);
  }
}

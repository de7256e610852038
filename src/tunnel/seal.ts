/**
 * Sealing the tapnet backend's datagrams (format in wire/sealed.ts): the keys, their epochs, the
 * nonces, and replay protection, per peer. The tapnet backend seals each datagram it sends and
 * opens each it receives through a Sealer; everything here is per node pair, by node index.
 *
 * Keys. Every ordered pair of nodes (from, to) has its own key in each epoch: HKDF-SHA256 of the
 * cluster secret (backend.secret), with info "tapnet sealed v2", from's address, to's address
 * and the epoch (RFC 5869; no salt). Node B's datagrams to A are sealed with key(B, A, e); a
 * datagram of A's to B sent back to A, or one made without the secret, fails its tag.
 *
 * Epochs (the rekey counter). A sender starts an epoch for a peer at its first datagram to it,
 * and a new one after REKEY_AFTER_MS or REKEY_AFTER_DATAGRAMS, whichever comes first. An epoch
 * is the sender's clock in milliseconds when it began, or one more than the last it began if the
 * clock has not moved on: epochs only grow, so a restarted switch never reuses a key and nonce
 * (the counter starts again at 0 in a new epoch, under a new key). A receiver keeps each peer's
 * current and previous epochs (datagrams that crossed a rekey still open) and takes a later one
 * as current once a datagram of it opens. An earlier epoch is refused. A peer heard from for the
 * first time since this switch started (or since it joined) must be in an epoch begun within
 * REKEY_AFTER_MS + CLOCK_SKEW_MS of this node's clock: traffic recorded long ago cannot be
 * replayed to a switch that restarted. Nodes' clocks must agree to within CLOCK_SKEW_MS.
 *
 * Replays. The counter is the nonce, and each (peer, epoch) has a sliding window of
 * REPLAY_WINDOW counters (RFC 6479's bitmap, as WireGuard and IPsec keep it): a counter already
 * seen, or REPLAY_WINDOW or more below the highest seen, is refused. The window moves only for a
 * datagram whose tag held.
 *
 * Hot path: a seal or an open is a few calls into the cipher over byte ranges; nothing is
 * allocated except when a key is derived (once an epoch per peer and direction).
 */
import { hkdfSync } from "node:crypto";
import { Drop, type DropReason } from "../wire/drop.ts";
import { put16, put32 } from "../wire/bytes.ts";
import { MAX_UDP_PAYLOAD } from "./contract.ts";
import { TunnelDrop } from "./drops.ts";
import {
  SEALED_HEADER_LEN, SEALED_KEY_LEN, SEALED_MAX_EPOCH, SEALED_TAG_LEN, SEALED_VERSION, sealedCounterHi, sealedCounterLo, sealedEpoch, writeSealedHeader,
  type Aead, type AeadKey,
} from "../wire/sealed.ts";

/** A sender starts a new epoch after this long... */
export const REKEY_AFTER_MS = 120_000;
/** ...or after this many datagrams under one key (AES-GCM's margin for 1.5 KB messages, with room). */
export const REKEY_AFTER_DATAGRAMS = 2 ** 31;
/** How far nodes' clocks may disagree: see the first contact above. */
export const CLOCK_SKEW_MS = 300_000;
/** Counters per replay window. */
export const REPLAY_WINDOW = 2048;
const WORDS = REPLAY_WINDOW / 32;
const KDF_LABEL = new TextEncoder().encode("tapnet sealed v2");

/** What a sealing backend is given: the secret, the nodes' addresses (by index), the cipher. */
export interface SealContext {
  secret: string | Uint8Array;
  addresses: ArrayLike<number>;
  aead: Aead;
  /** Milliseconds, Date.now's by default (tests set the clock). */
  now?: () => number;
  /** Datagrams under one key before a new epoch; REKEY_AFTER_DATAGRAMS by default (tests lower it). */
  rekeyAfter?: number;
}

/** The key of datagrams from node address `from` to `to` in `epoch` (32 bytes). */
export function deriveKey(secret: Uint8Array, from: number, to: number, epoch: number): Uint8Array {
  const info = new Uint8Array(KDF_LABEL.length + 14);
  info.set(KDF_LABEL);
  const l = KDF_LABEL.length;
  put32(info, l, from);
  put32(info, l + 4, to);
  put16(info, l + 8, Math.floor(epoch / 2 ** 32));
  put32(info, l + 10, epoch >>> 0);
  return new Uint8Array(hkdfSync("sha256", secret, new Uint8Array(0), info, SEALED_KEY_LEN));
}

/** The secret as the key derivation takes it: a string's UTF-8 bytes. */
export function secretBytes(secret: string | Uint8Array): Uint8Array {
  return typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
}

/**
 * Sliding windows of counters seen, one per slot: the highest counter taken and a bitmap of the
 * REPLAY_WINDOW counters at and below it (counter c at bit c mod REPLAY_WINDOW). Counters are
 * below 2^32.
 */
export class ReplayWindow {
  private readonly top: Float64Array;
  private readonly bits: Int32Array;

  constructor(readonly slots: number) {
    this.top = new Float64Array(slots).fill(-1);
    this.bits = new Int32Array(slots * WORDS);
  }

  /** Forgets every counter of `slot`. */
  reset(slot: number): void {
    this.top[slot] = -1;
    this.bits.fill(0, slot * WORDS, (slot + 1) * WORDS);
  }

  /** Would counter `n` be taken: above the highest, or within the window and not seen? */
  fresh(slot: number, n: number): boolean {
    const top = this.top[slot];
    if (n > top) return true;
    if (top - n >= REPLAY_WINDOW) return false;
    const b = n & (REPLAY_WINDOW - 1);
    return (this.bits[slot * WORDS + (b >>> 5)] & (1 << (b & 31))) === 0;
  }

  /** Takes counter `n` (fresh), moving the window up to it if it is the highest. */
  take(slot: number, n: number): void {
    const base = slot * WORDS;
    const top = this.top[slot];
    if (n > top) {
      if (top < 0 || n - top >= REPLAY_WINDOW) this.bits.fill(0, base, base + WORDS);
      else for (let c = top + 1; c < n; c++) this.bits[base + ((c & (REPLAY_WINDOW - 1)) >>> 5)] &= ~(1 << (c & 31));
      this.top[slot] = n;
    }
    const b = n & (REPLAY_WINDOW - 1);
    this.bits[base + (b >>> 5)] |= 1 << (b & 31);
  }

  /** Copies `from`'s slot `s` into this window's slot `d`. */
  copy(from: ReplayWindow, s: number, d: number): void {
    this.top[d] = from.top[s];
    this.bits.set(from.bits.subarray(s * WORDS, (s + 1) * WORDS), d * WORDS);
  }
}

/** The last epoch begun in this thread: epochs only grow, whichever Sealer begins them. */
let lastEpoch = 0;

function nextEpoch(now: number): number {
  lastEpoch = Math.min(SEALED_MAX_EPOCH, Math.max(Math.floor(now), lastEpoch + 1));
  return lastEpoch;
}

export class Sealer {
  /** The sealed datagrams of the run being gathered, from 0 to `pos`. */
  readonly out = new Uint8Array(MAX_UDP_PAYLOAD + 64);
  pos = 0;
  private readonly secret: Uint8Array;
  private readonly addresses: Uint32Array;
  private readonly aead: Aead;
  private readonly now: () => number;
  private readonly rekeyAfter: number;
  // Sending, by peer: the key, its epoch, the next counter, when the epoch ends.
  private readonly txKey: (AeadKey | null)[];
  private readonly txEpoch: Float64Array;
  private readonly txNext: Float64Array;
  private readonly txUntil: Float64Array;
  // Receiving: two slots per peer (2p, 2p + 1), the current one rxCur[p]; and a candidate key.
  private readonly rxKey: (AeadKey | null)[];
  private readonly rxEpoch: Float64Array;
  private readonly rxCur: Uint8Array;
  private readonly window: ReplayWindow;
  private readonly candKey: (AeadKey | null)[];
  private readonly candEpoch: Float64Array;

  constructor(ctx: SealContext, readonly self: number, readonly peers: number) {
    this.secret = secretBytes(ctx.secret);
    this.addresses = Uint32Array.from(ctx.addresses);
    this.aead = ctx.aead;
    this.now = ctx.now ?? Date.now;
    this.rekeyAfter = Math.min(ctx.rekeyAfter ?? REKEY_AFTER_DATAGRAMS, 2 ** 32); // counters stay below 2^32
    this.txKey = new Array<AeadKey | null>(peers).fill(null);
    this.txEpoch = new Float64Array(peers);
    this.txNext = new Float64Array(peers);
    this.txUntil = new Float64Array(peers).fill(-Infinity);
    this.rxKey = new Array<AeadKey | null>(2 * peers).fill(null);
    this.rxEpoch = new Float64Array(2 * peers).fill(-1);
    this.rxCur = new Uint8Array(peers);
    this.window = new ReplayWindow(2 * peers);
    this.candKey = new Array<AeadKey | null>(peers).fill(null);
    this.candEpoch = new Float64Array(peers).fill(-1);
  }

  /** Readies the key to `peer` for `datagrams` more: a new epoch if its time or count is up. */
  prepare(peer: number, datagrams: number): void {
    if (this.txNext[peer] + datagrams <= this.rekeyAfter && this.now() < this.txUntil[peer]) return;
    const now = this.now();
    const epoch = nextEpoch(now);
    const key = deriveKey(this.secret, this.addresses[this.self], this.addresses[peer], epoch);
    const k = this.txKey[peer];
    if (k) k.rekey(key);
    else this.txKey[peer] = this.aead.key(key, true);
    this.txEpoch[peer] = epoch;
    this.txNext[peer] = 0;
    this.txUntil[peer] = now + REKEY_AFTER_MS;
  }

  /**
   * Seals a datagram to `peer` (prepared) whose plaintext is hdr[hOff..hOff+hLen) then
   * chunk[cOff..cOff+cLen), into `out` at `pos`: returns where it starts (it is SEALED_OVERHEAD
   * bytes longer), or -1 if the cipher failed.
   */
  seal(peer: number, hdr: Uint8Array, hOff: number, hLen: number, chunk: Uint8Array, cOff: number, cLen: number): number {
    const at = this.pos;
    const n = this.txNext[peer];
    this.txNext[peer] = n + 1;
    const out = this.out;
    writeSealedHeader(out, at, this.txEpoch[peer], n);
    const p = at + SEALED_HEADER_LEN;
    for (let i = 0; i < hLen; i++) out[p + i] = hdr[hOff + i];
    if (!this.txKey[peer]!.seal(0, n >>> 0, out, p, hLen, chunk, cOff, cLen, out, p)) return -1;
    this.pos = p + hLen + cLen + SEALED_TAG_LEN;
    return at;
  }

  /**
   * Opens the sealed datagram buf[at..at+len) from `peer` in place: Drop.None when it is
   * authentic, fresh and of a current epoch (its plaintext is then at at + SEALED_HEADER_LEN,
   * SEALED_OVERHEAD bytes shorter), else why it is dropped.
   */
  open(buf: Uint8Array, at: number, len: number, peer: number): DropReason {
    const v = buf[at];
    if (v !== SEALED_VERSION || buf[at + 1] !== 0) return v === 1 ? TunnelDrop.TapnetUnsealed : Drop.TapnetBadVersion;
    const clen = len - SEALED_HEADER_LEN - SEALED_TAG_LEN;
    if (clen <= 0) return Drop.TapnetTruncated;
    if (sealedCounterHi(buf, at) !== 0) return TunnelDrop.SealAuthFailed; // no sender of this version counts so far
    const n = sealedCounterLo(buf, at);
    const epoch = sealedEpoch(buf, at);
    const cur = 2 * peer + this.rxCur[peer];
    const prev = cur ^ 1;
    let slot: number;
    if (epoch === this.rxEpoch[cur]) slot = cur;
    else if (epoch === this.rxEpoch[prev]) slot = prev;
    else if (epoch > this.rxEpoch[cur]) return this.openNewEpoch(buf, at, clen, peer, epoch, n);
    else return TunnelDrop.SealOldEpoch;
    if (!this.window.fresh(slot, n)) return TunnelDrop.SealReplayed;
    if (!this.rxKey[slot]!.open(0, n, buf, at + SEALED_HEADER_LEN, clen)) return TunnelDrop.SealAuthFailed;
    this.window.take(slot, n);
    return Drop.None;
  }

  /** A datagram of a later epoch than `peer`'s current: if it opens, that epoch becomes current. */
  private openNewEpoch(buf: Uint8Array, at: number, clen: number, peer: number, epoch: number, n: number): DropReason {
    const cur = 2 * peer + this.rxCur[peer];
    if (this.rxEpoch[cur] < 0 && epoch < this.now() - REKEY_AFTER_MS - CLOCK_SKEW_MS) return TunnelDrop.SealOldEpoch;
    if (this.candEpoch[peer] !== epoch) {
      // Derived once per epoch: a datagram that fails keeps the candidate for the next of its epoch.
      const key = deriveKey(this.secret, this.addresses[peer], this.addresses[this.self], epoch);
      const k = this.candKey[peer];
      if (k) k.rekey(key);
      else this.candKey[peer] = this.aead.key(key, false);
      this.candEpoch[peer] = epoch;
    }
    if (!this.candKey[peer]!.open(0, n, buf, at + SEALED_HEADER_LEN, clen)) return TunnelDrop.SealAuthFailed;
    // The previous slot takes the new epoch and becomes current; its old key is the next candidate.
    const next = cur ^ 1;
    const old = this.rxKey[next];
    this.rxKey[next] = this.candKey[peer];
    this.candKey[peer] = old;
    this.candEpoch[peer] = -1;
    this.rxEpoch[next] = epoch;
    this.rxCur[peer] ^= 1;
    this.window.reset(next);
    this.window.take(next, n);
    return Drop.None;
  }

  /**
   * After a change of the node list: each peer that stays keeps its keys, epochs, counters and
   * windows (peerOf[i] is old peer i's index now, or -1); the keys of peers that left are freed.
   */
  adopt(previous: Sealer, peerOf: Int32Array): void {
    for (let old = 0; old < peerOf.length && old < previous.peers; old++) {
      const now = peerOf[old];
      if (now < 0 || now >= this.peers || now === this.self) {
        previous.release(old);
        continue;
      }
      this.txKey[now] = previous.txKey[old];
      this.txEpoch[now] = previous.txEpoch[old];
      this.txNext[now] = previous.txNext[old];
      this.txUntil[now] = previous.txUntil[old];
      this.rxCur[now] = previous.rxCur[old];
      this.candKey[now] = previous.candKey[old];
      this.candEpoch[now] = previous.candEpoch[old];
      for (let s = 0; s < 2; s++) {
        this.rxKey[2 * now + s] = previous.rxKey[2 * old + s];
        this.rxEpoch[2 * now + s] = previous.rxEpoch[2 * old + s];
        this.window.copy(previous.window, 2 * old + s, 2 * now + s);
      }
    }
  }

  /** Frees the keys of old peer `p`. */
  private release(p: number): void {
    for (const k of [this.txKey[p], this.candKey[p], this.rxKey[2 * p], this.rxKey[2 * p + 1]]) k?.free();
    this.txKey[p] = this.candKey[p] = this.rxKey[2 * p] = this.rxKey[2 * p + 1] = null;
  }
}

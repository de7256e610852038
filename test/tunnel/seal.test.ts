// Sealing (tunnel/seal.ts): the key derivation against RFC 5869 computed by hand, the replay
// window against a naive model, and a sealer's verdicts: what opens, and every way a datagram
// that should not is dropped (another key, a flipped bit, a replay, an old epoch, a reflection).
import { createHmac, hkdfSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openSslAead } from "../../src/io/aead.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { CLOCK_SKEW_MS, deriveKey, REKEY_AFTER_MS, REPLAY_WINDOW, ReplayWindow, Sealer, type SealContext } from "../../src/tunnel/seal.ts";
import { fromHex, toHex } from "../../src/wire/bytes.ts";
import { Drop } from "../../src/wire/drop.ts";
import { SEALED_HEADER_LEN, SEALED_OVERHEAD, sealedCounterLo, sealedEpoch, writeSealedHeader } from "../../src/wire/sealed.ts";
import { prng, trials } from "../support/random.ts";

const SECRET = "correct horse battery staple, tapnet!!";
const A = 0xc0a8380b; // 192.168.56.11
const B = 0xc0a8380c;
const C = 0xc0a8380d;
const EPOCH = 1_767_225_600_000;

/** HKDF-SHA256 (RFC 5869) by hand, from HMAC: extract, then expand's first block. */
function hkdfByHand(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, len: number): Uint8Array {
  const prk = createHmac("sha256", salt.length ? salt : new Uint8Array(32)).update(ikm).digest();
  const out: number[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; out.length < len; i++) {
    t = createHmac("sha256", prk).update(Buffer.concat([t, info, Buffer.from([i])])).digest();
    out.push(...t);
  }
  return Uint8Array.from(out.slice(0, len));
}

describe("key derivation", () => {
  it("the hand-made HKDF gives RFC 5869's test case 1 (and so does node:crypto's)", () => {
    const ikm = new Uint8Array(22).fill(0x0b);
    const salt = fromHex("000102030405060708090a0b0c");
    const info = fromHex("f0f1f2f3f4f5f6f7f8f9");
    const okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    expect(toHex(hkdfByHand(ikm, salt, info, 42))).toBe(okm);
    expect(toHex(new Uint8Array(hkdfSync("sha256", ikm, salt, info, 42)))).toBe(okm);
  });

  it("is HKDF-SHA256 of the secret, no salt, info \"tapnet sealed v2\" || from || to || epoch (48 bits)", () => {
    const secret = new TextEncoder().encode(SECRET);
    const info = (from: number, to: number, e: number) => {
      const b = Buffer.alloc(30);
      b.write("tapnet sealed v2");
      b.writeUInt32BE(from, 16);
      b.writeUInt32BE(to, 20);
      b.writeUIntBE(e, 24, 6);
      return b;
    };
    // Vectors, each also computed by hand.
    const vectors: [number, number, number, string][] = [
      [A, B, EPOCH, "fc7c2458d18b45314889c888705e33c00749784ba40d8abd99ba5971d3f2e432"],
      [B, A, EPOCH, "f2ba70a3eb2ed7badcfe0b6b69a1c661d4a2e7dd9f3c1c5efbafe779c7f1406e"],
      [A, B, EPOCH + 1, "95e3f6e049b293d4193158efda7506e621cc4c0f30d9cd68b149a26ccf427f55"],
    ];
    for (const [from, to, e, want] of vectors) {
      expect(toHex(deriveKey(secret, from, to, e))).toBe(want);
      expect(toHex(hkdfByHand(secret, new Uint8Array(0), info(from, to, e), 32))).toBe(want);
    }
    // Every input matters: the other secret, each address, the epoch's high bits.
    const base = toHex(deriveKey(secret, A, B, EPOCH));
    expect(toHex(deriveKey(new TextEncoder().encode(SECRET + "x"), A, B, EPOCH))).not.toBe(base);
    expect(toHex(deriveKey(secret, C, B, EPOCH))).not.toBe(base);
    expect(toHex(deriveKey(secret, A, C, EPOCH))).not.toBe(base);
    expect(toHex(deriveKey(secret, A, B, EPOCH + 2 ** 40))).not.toBe(base);
  });
});

/** The window as its definition says: taken counters in a set, and the highest. */
class NaiveWindow {
  private readonly seen = new Set<number>();
  private top = -1;
  fresh(n: number): boolean {
    return n > this.top || (this.top - n < REPLAY_WINDOW && !this.seen.has(n));
  }
  take(n: number): void {
    this.seen.add(n);
    this.top = Math.max(this.top, n);
  }
}

describe("the replay window", () => {
  it("takes what a naive model takes: a counter above the highest, or within 2048 below it and not seen", () => {
    const rnd = prng(4242);
    let checked = 0;
    for (let t = 0; t < trials(60); t++) {
      const w = new ReplayWindow(3);
      const slot = t % 3;
      const model = new NaiveWindow();
      let next = Math.floor(rnd() * 2 ** 31);
      const sent: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const r = rnd();
        let n: number;
        if (r < 0.55) n = next++; // in order
        else if (r < 0.75 && sent.length) n = sent[Math.floor(rnd() * sent.length)]; // a replay, or late
        else if (r < 0.85) n = Math.max(0, next - 1 - Math.floor(rnd() * 2 * REPLAY_WINDOW)); // around the window's edge
        else if (r < 0.9) n = next += Math.floor(rnd() * 3 * REPLAY_WINDOW); // a jump ahead
        else n = next + Math.floor(rnd() * 40); // a little ahead: leaves holes
        n = Math.min(n, 2 ** 32 - 1);
        const want = model.fresh(n);
        if (w.fresh(slot, n) !== want) expect(w.fresh(slot, n), `trial ${t}, step ${i}, counter ${n}`).toBe(want);
        if (want) {
          w.take(slot, n);
          model.take(n);
          sent.push(n);
          checked++;
        }
      }
      // The other slots saw nothing.
      for (const s of [0, 1, 2]) if (s !== slot) expect(w.fresh(s, 0)).toBe(true);
    }
    expect(checked).toBeGreaterThan(trials(60) * 1000);
  });

  it("edges: 2047 below the highest is in, 2048 is out; a reset forgets; counters near 2^32", () => {
    const w = new ReplayWindow(1);
    w.take(0, 5000);
    expect(w.fresh(0, 5000 - 2047)).toBe(true);
    expect(w.fresh(0, 5000 - 2048)).toBe(false);
    expect(w.fresh(0, 5000)).toBe(false);
    w.reset(0);
    expect(w.fresh(0, 0)).toBe(true);
    w.take(0, 2 ** 32 - 1);
    expect(w.fresh(0, 2 ** 32 - 1)).toBe(false);
    expect(w.fresh(0, 2 ** 32 - 2)).toBe(true);
    const copy = new ReplayWindow(2);
    copy.copy(w, 0, 1);
    expect(copy.fresh(1, 2 ** 32 - 1)).toBe(false);
    expect(copy.fresh(0, 2 ** 32 - 1)).toBe(true);
  });
});

/** A node's sealer in a cluster of `addresses`, with a clock the test moves. */
function node(self: number, o: Partial<SealContext> & { clock?: { t: number } } = {}) {
  const clock = o.clock ?? { t: EPOCH };
  const addresses = o.addresses ?? [A, B, C];
  return new Sealer({ secret: SECRET, aead: openSslAead(), now: () => clock.t, ...o, addresses }, self, Array.from(addresses).length);
}

/** Seals a datagram of `len` bytes of pattern `seed` from `s` to `peer`; returns a copy of it. */
function seal(s: Sealer, peer: number, len = 100, seed = 1): Uint8Array {
  s.prepare(peer, 1);
  s.pos = 0;
  const plain = Uint8Array.from({ length: len }, (_, i) => (i * 13 + seed) & 0xff);
  plain[0] = 1; // a version-1 header would start so: not that the sealer looks
  const at = s.seal(peer, plain, 0, 12, plain, 12, len - 12);
  expect(at).toBe(0);
  return s.out.slice(0, len + SEALED_OVERHEAD);
}

/** Opens a copy of datagram `d` at `s` as from `peer`: the drop's name, or "ok". */
function open(s: Sealer, d: Uint8Array, peer: number): string {
  const buf = new Uint8Array(d.length + 300);
  buf.set(d, 100);
  const r = s.open(buf, 100, d.length, peer);
  return r === Drop.None ? "ok" : DROP_NAMES[r];
}

describe("a sealer", () => {
  it("opens what its peer sealed for it, to the same plaintext", () => {
    const a = node(0);
    const b = node(1);
    const d = seal(a, 1, 300, 7);
    const buf = new Uint8Array(1000);
    buf.set(d, 64);
    expect(b.open(buf, 64, d.length, 0)).toBe(Drop.None);
    expect(toHex(buf.subarray(64 + SEALED_HEADER_LEN, 64 + SEALED_HEADER_LEN + 300))).toBe(toHex(Uint8Array.from({ length: 300 }, (_, i) => (i === 0 ? 1 : (i * 13 + 7) & 0xff))));
    expect(sealedEpoch(d, 0)).toBeGreaterThanOrEqual(EPOCH);
    expect(sealedCounterLo(d, 0)).toBe(0);
    expect(sealedCounterLo(seal(a, 1), 0)).toBe(1);
  });

  it("drops another secret's datagrams, a reflection of its own, and one sealed for another node", () => {
    const a = node(0);
    const b = node(1);
    const stranger = node(0, { secret: "another secret, also long enough!!!" });
    expect(open(b, seal(stranger, 1), 0)).toBe("seal_auth_failed");
    const toB = seal(a, 1);
    expect(open(a, toB, 1)).toBe("seal_auth_failed"); // sent back to A as if B had sealed it
    expect(open(node(2), toB, 0)).toBe("seal_auth_failed"); // C is not who A sealed it for
    expect(open(b, seal(node(2), 1), 0)).toBe("seal_auth_failed"); // C's, claiming to be A's
    expect(open(b, toB, 0)).toBe("ok");
  });

  it("drops a datagram with any one bit flipped, and still opens the original after", () => {
    const a = node(0);
    const b = node(1);
    const d = seal(a, 1, 200);
    const reasons = new Set<string>();
    for (let bit = 0; bit < d.length * 8; bit++) {
      const f = d.slice();
      f[bit >> 3] ^= 1 << (bit & 7);
      const r = open(b, f, 0);
      expect(r, `bit ${bit}`).not.toBe("ok");
      reasons.add(r);
    }
    // The epoch's high bits flipped down make it too old for a peer B has not heard from.
    expect([...reasons].sort()).toEqual(["seal_auth_failed", "seal_old_epoch", "tapnet_bad_version"]);
    expect(open(b, d, 0)).toBe("ok");
  });

  it("drops a replay, and one too far below the highest counter; takes late ones within the window once", () => {
    const a = node(0);
    const b = node(1);
    const ds = Array.from({ length: REPLAY_WINDOW + 10 }, () => seal(a, 1, 40));
    expect(open(b, ds[5], 0)).toBe("ok");
    expect(open(b, ds[5], 0)).toBe("seal_replayed");
    expect(open(b, ds[3], 0)).toBe("ok"); // late, within the window
    expect(open(b, ds[3], 0)).toBe("seal_replayed");
    expect(open(b, ds[REPLAY_WINDOW + 9], 0)).toBe("ok");
    expect(open(b, ds[2], 0)).toBe("seal_replayed"); // 2057 below the highest: outside the window
    expect(open(b, ds[10], 0)).toBe("ok"); // 2047 below: inside
  });

  it("starts a new epoch after REKEY_AFTER_MS or rekeyAfter datagrams; the receiver follows, keeps one previous epoch, drops older ones", () => {
    const clock = { t: EPOCH };
    const a = node(0, { clock, rekeyAfter: 3 });
    const b = node(1, { clock });
    const e1 = [seal(a, 1), seal(a, 1), seal(a, 1)];
    const e2 = seal(a, 1); // the fourth under one key: a new epoch
    expect(sealedEpoch(e2, 0)).toBeGreaterThan(sealedEpoch(e1[0], 0));
    expect(sealedCounterLo(e2, 0)).toBe(0);
    expect(open(b, e1[0], 0)).toBe("ok");
    expect(open(b, e2, 0)).toBe("ok");
    expect(open(b, e1[1], 0)).toBe("ok"); // the previous epoch still opens (it crossed the rekey)
    clock.t += REKEY_AFTER_MS;
    const e3 = seal(a, 1); // the time is up: another epoch
    expect(sealedEpoch(e3, 0)).toBe(clock.t);
    expect(open(b, e3, 0)).toBe("ok");
    expect(open(b, e1[2], 0)).toBe("seal_old_epoch"); // two epochs back
    expect(open(b, seal(a, 1), 0)).toBe("ok");
  });

  it("refuses, from a peer it has not heard from, an epoch begun before the freshness bound (a recording replayed to a restarted node)", () => {
    const clock = { t: EPOCH };
    const a = node(0, { clock });
    const old = seal(a, 1);
    clock.t = sealedEpoch(old, 0) + REKEY_AFTER_MS + CLOCK_SKEW_MS + 1; // epochs may run ahead of the clock: from the datagram's
    expect(open(node(1, { clock }), old, 0)).toBe("seal_old_epoch"); // a restarted B
    clock.t -= 2;
    expect(open(node(1, { clock }), old, 0)).toBe("ok"); // within the bound
  });

  it("drops a datagram in the clear, a short one, another version or flags, a counter beyond 2^32", () => {
    const b = node(1);
    expect(open(b, fromHex("01 00 1234 0000fde8 00000b68 deadbeef"), 0)).toBe("tapnet_unsealed");
    const d = seal(node(0), 1, 20);
    expect(open(b, d.slice(0, SEALED_OVERHEAD), 0)).toBe("tapnet_truncated");
    for (const [at, v] of [[0, 3], [1, 1]]) {
      const f = d.slice();
      f[at] = v;
      expect(open(b, f, 0)).toBe("tapnet_bad_version");
    }
    const far = d.slice();
    writeSealedHeader(far, 0, sealedEpoch(d, 0), 2 ** 32);
    expect(open(b, far, 0)).toBe("seal_auth_failed");
    expect(open(b, d, 0)).toBe("ok");
  });

  it("never seals two datagrams under one key and nonce, across rekeys, new sealers and a clock that goes back", () => {
    const clock = { t: EPOCH + 10_000 };
    const used = new Set<string>();
    const rnd = prng(77);
    for (let s = 0; s < 5; s++) {
      const a = node(0, { clock, rekeyAfter: 1 + Math.floor(rnd() * 5) });
      for (let i = 0; i < 40; i++) {
        if (rnd() < 0.2) clock.t -= Math.floor(rnd() * 5000);
        if (rnd() < 0.1) clock.t += REKEY_AFTER_MS;
        const d = seal(a, 1 + (i & 1), 20);
        const id = `${i & 1}:${sealedEpoch(d, 0)}:${sealedCounterLo(d, 0)}`;
        expect(used.has(id), id).toBe(false);
        used.add(id);
      }
    }
  });

  it("after a change of the node list, keeps each staying peer's key, counter and window", () => {
    const a = node(0);
    const b = node(1);
    const d0 = seal(a, 1);
    expect(open(b, d0, 0)).toBe("ok");
    // The list becomes [C, B, A]: A is now peer 2 of B's, B is A's peer 1 still.
    const b2 = node(1, { addresses: [C, B, A] });
    b2.adopt(b, Int32Array.of(2, 1, 0));
    const a2 = node(2, { addresses: [C, B, A] });
    a2.adopt(a, Int32Array.of(2, 1, 0));
    expect(open(b2, d0, 2)).toBe("seal_replayed");
    const d1 = seal(a2, 1);
    expect(sealedEpoch(d1, 0)).toBe(sealedEpoch(d0, 0)); // no new epoch for a new list
    expect(sealedCounterLo(d1, 0)).toBe(1);
    expect(open(b2, d1, 2)).toBe("ok");
    expect(open(b2, seal(a2, 1), 0)).toBe("seal_auth_failed"); // C's key is not A's
  });
});

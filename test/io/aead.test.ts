// AES-256-GCM through OpenSSL's EVP calls by FFI (io/aead.ts): known answers from the GCM spec's
// test cases, and random messages against node:crypto (another way to the same cipher).
import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openSslAead } from "../../src/io/aead.ts";
import { fromHex, toHex } from "../../src/wire/bytes.ts";
import { prng, trials } from "../support/random.ts";

const aead = openSslAead();

function nodeSeal(key: Uint8Array, hi: number, lo: number, plain: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12);
  const v = new DataView(nonce.buffer);
  v.setUint32(4, hi);
  v.setUint32(8, lo);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  return new Uint8Array(Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]));
}

describe("AES-256-GCM from OpenSSL", () => {
  it("gives the GCM spec's answers (McGrew and Viega, test cases 13 and 14: zero key, zero nonce)", () => {
    const zero = new Uint8Array(32);
    const out = new Uint8Array(128);
    const none = new Uint8Array(128);
    expect(aead.key(zero, true).seal(0, 0, none, 0, 0, none, 0, 0, out, 0)).toBe(true);
    expect(toHex(out.subarray(0, 16))).toBe("530f8afbc74536b9a963b4f1c4cb738b");
    expect(aead.key(zero, true).seal(0, 0, none, 0, 16, none, 0, 0, out, 0)).toBe(true);
    expect(toHex(out.subarray(0, 32))).toBe("cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919");
    const open = aead.key(zero, false);
    expect(open.open(0, 0, out, 0, 16)).toBe(true);
    expect(toHex(out.subarray(0, 16))).toBe("00".repeat(16));
  });

  it("seals what node:crypto seals, from two pieces anywhere in large or small buffers, and opens it in place", () => {
    const rnd = prng(1301);
    const big = new Uint8Array(70_000);
    const out = new Uint8Array(70_000);
    for (let t = 0; t < trials(300); t++) {
      const key = Uint8Array.from({ length: 32 }, () => Math.floor(rnd() * 256));
      const aLen = Math.floor(rnd() * 40);
      const bLen = 1 + Math.floor(rnd() * (rnd() < 0.2 ? 40 : 3000));
      const small = rnd() < 0.3; // pieces in buffers of 64 bytes or fewer: V8 keeps them on its heap
      for (let i = 0; i < big.length; i += 1 + Math.floor(rnd() * 64)) big[i] = Math.floor(rnd() * 256);
      const a = small ? big.slice(0, aLen) : big;
      const aOff = small ? 0 : Math.floor(rnd() * 1000);
      const b = small && bLen <= 64 ? big.slice(2000, 2000 + bLen) : big;
      const bOff = b === big ? 2000 + Math.floor(rnd() * 1000) : 0;
      const hi = rnd() < 0.1 ? Math.floor(rnd() * 2 ** 32) : 0;
      const lo = Math.floor(rnd() * 2 ** 32);
      const plain = new Uint8Array([...a.subarray(aOff, aOff + aLen), ...b.subarray(bOff, bOff + bLen)]);
      const at = Math.floor(rnd() * 5000);
      const k = aead.key(key, true);
      expect(k.seal(hi, lo, a, aOff, aLen, b, bOff, bLen, out, at)).toBe(true);
      const want = nodeSeal(key, hi, lo, plain);
      expect(toHex(out.subarray(at, at + want.length)), `trial ${t}`).toBe(toHex(want));
      const o = aead.key(key, false);
      expect(o.open(hi, lo, out, at, plain.length)).toBe(true);
      expect(toHex(out.subarray(at, at + plain.length))).toBe(toHex(plain));
      k.free();
      o.free();
    }
  });

  it("seals in place (the first piece where the output goes), and opens a datagram on V8's heap", () => {
    const key = fromHex("11".repeat(32));
    const buf = new Uint8Array(4096);
    buf.set(fromHex("0102030405060708090a0b0c"), 100);
    const chunk = new Uint8Array(500).fill(7);
    expect(aead.key(key, true).seal(0, 9, buf, 100, 12, chunk, 0, 500, buf, 100)).toBe(true);
    const want = nodeSeal(key, 0, 9, new Uint8Array([...fromHex("0102030405060708090a0b0c"), ...chunk]));
    expect(toHex(buf.subarray(100, 100 + want.length))).toBe(toHex(want));
    const tiny = nodeSeal(key, 0, 3, fromHex("cafe")); // 18 bytes
    expect(aead.key(key, false).open(0, 3, tiny, 0, 2)).toBe(true);
    expect(toHex(tiny.subarray(0, 2))).toBe("cafe");
  });

  it("takes a new key in place; a key that opens nothing else fails", () => {
    const k = aead.key(new Uint8Array(32).fill(1), true);
    const o = aead.key(new Uint8Array(32).fill(2), false);
    const buf = new Uint8Array(256);
    buf.fill(5, 0, 40);
    expect(k.seal(0, 1, buf, 0, 40, buf, 0, 0, buf, 0)).toBe(true);
    expect(o.open(0, 1, buf.slice(), 0, 40)).toBe(false);
    k.rekey(new Uint8Array(32).fill(2));
    buf.fill(5, 0, 40);
    expect(k.seal(0, 1, buf, 0, 40, buf, 0, 0, buf, 0)).toBe(true);
    expect(o.open(0, 1, buf, 0, 40)).toBe(true);
    expect(buf.subarray(0, 40).every((x) => x === 5)).toBe(true);
    expect(() => k.rekey(new Uint8Array(16))).toThrow("a key is 32 bytes, not 16");
  });
});

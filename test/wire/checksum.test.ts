import { describe, expect, it } from "vitest";
import { fromHex, get16, put16, put32 } from "../../src/wire/bytes.ts";
import { checksumUpdate16, fold, internetChecksum, pseudoHeaderSum, sumPieces, sumWords } from "../../src/wire/checksum.ts";
import { prng, trials } from "../support/random.ts";

/** RFC 1071 done the slow, obvious way: add each 16-bit word, carry around at once. */
function naiveChecksum(b: Uint8Array, initial = 0): number {
  let s = initial;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  for (let i = 0; i < b.length; i += 2) {
    s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return ~s & 0xffff;
}

/** The echo request's IPv4 header from the golden capture (see ipv4.test.ts). */
const IPV4_HEADER = fromHex("4500 002c 4ea1 4000 4001 d767 0a63 0001 0a63 0002");

describe("Internet checksum (RFC 1071)", () => {
  it("the worked example of RFC 1071 section 3", () => {
    // 00 01 f2 03 f4 f5 f6 f7: the words sum to 2ddf0, which folds to ddf2; the checksum is ~ddf2.
    const b = fromHex("00 01 f2 03 f4 f5 f6 f7");
    expect(sumWords(b, 0, 8)).toBe(0x2ddf0);
    expect(fold(0x2ddf0)).toBe(0xddf2);
    expect(internetChecksum(b, 0, 8)).toBe(0x220d);
  });

  it("the sum does not depend on byte order (RFC 1071 section 2(B)): swapped input, swapped sum", () => {
    const b = fromHex("00 01 f2 03 f4 f5 f6 f7");
    const swapped = fromHex("01 00 03 f2 f5 f4 f7 f6");
    const s = fold(sumWords(b, 0, 8));
    expect(fold(sumWords(swapped, 0, 8))).toBe(((s & 0xff) << 8) | (s >>> 8));
  });

  it("data carrying its own checksum sums to zero", () => {
    const b = fromHex("00 01 f2 03 f4 f5 f6 f7 00 00");
    put16(b, 8, internetChecksum(b, 0, 8));
    expect(internetChecksum(b, 0, 10)).toBe(0);
  });

  it("a captured IPv4 header verifies, and with its checksum field zeroed computes that checksum", () => {
    expect(internetChecksum(IPV4_HEADER, 0, 20)).toBe(0);
    const h = IPV4_HEADER.slice();
    put16(h, 10, 0);
    expect(internetChecksum(h, 0, 20)).toBe(0xd767);
  });

  it("an odd trailing byte counts as the high byte of a word", () => {
    expect(sumWords(Uint8Array.of(0x01), 0, 1)).toBe(0x0100);
    expect(sumWords(Uint8Array.of(0x12, 0x34, 0x56), 0, 3)).toBe(0x1234 + 0x5600);
    expect(sumWords(Uint8Array.of(0x12, 0x34, 0x56, 0x78, 0x9a), 0, 5)).toBe(0x1234 + 0x5678 + 0x9a00);
  });

  it("sums only the bytes from off to off + len", () => {
    const b = fromHex("ff ff 00 01 f2 03 f4 f5 f6 f7 ff ff");
    expect(internetChecksum(b, 2, 8)).toBe(0x220d);
    expect(sumWords(b, 2, 0)).toBe(0);
    expect(sumWords(b, 3, 2)).toBe(0x01f2);
  });

  it("adds the initial sum (a pseudo-header) before folding", () => {
    const b = fromHex("00 01 f2 03 f4 f5 f6 f7");
    expect(sumWords(b, 0, 8, 0x10000)).toBe(0x3ddf0);
    expect(internetChecksum(b, 0, 8, 0x1234)).toBe(~fold(0x2ddf0 + 0x1234) & 0xffff);
  });

  it("all-zero data checksums to 0xffff and all-ones to 0x0000", () => {
    expect(internetChecksum(new Uint8Array(20), 0, 20)).toBe(0xffff);
    expect(internetChecksum(new Uint8Array(20).fill(0xff), 0, 20)).toBe(0x0000);
  });

  it("fold carries around more than once when it must", () => {
    expect(fold(0)).toBe(0);
    expect(fold(0xffff)).toBe(0xffff);
    expect(fold(0x1ffff)).toBe(0x1);
    expect(fold(0x1fffe)).toBe(0xffff); // 0xfffe + 1
    expect(fold(0xffffffff)).toBe(0xffff);
    expect(fold(2 ** 40 - 1)).toBe(0xff); // 2^16 ≡ 1 (mod 0xffff), so 2^40 - 1 ≡ 2^8 - 1
    expect(fold(2 ** 48 - 1)).toBe(0xffff);
  });

  it("a 64 KB buffer of 0xff bytes does not overflow the sum", () => {
    const b = new Uint8Array(65535).fill(0xff);
    expect(internetChecksum(b, 0, b.length)).toBe(naiveChecksum(b));
  });

  it("matches the naive checksum on views inside larger buffers, alternating between buffers", () => {
    const rnd = prng(1624);
    const pools = [new Uint8Array(8192), new Uint8Array(5000)];
    for (const p of pools) for (let i = 0; i < p.length; i++) p[i] = Math.floor(rnd() * 256);
    for (let n = 0; n < trials(2000); n++) {
      const pool = pools[n % 2]; // a different underlying buffer every call
      const start = Math.floor(rnd() * 1000);
      const view = pool.subarray(start, start + 2000); // byteOffset != 0
      const off = Math.floor(rnd() * 16);
      const len = 64 + Math.floor(rnd() * 1800);
      expect(internetChecksum(view, off, len), `case ${n}`).toBe(naiveChecksum(view.subarray(off, off + len)));
    }
  });

  it("matches the naive word-by-word checksum on 2,000 random buffers of random length and offset", () => {
    const rnd = prng(1071);
    for (let n = 0; n < trials(2000); n++) {
      const len = Math.floor(rnd() * 1500);
      const off = Math.floor(rnd() * 8);
      const b = new Uint8Array(off + len + 3);
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
      const initial = Math.floor(rnd() * 0x40000);
      expect(internetChecksum(b, off, len, initial), `case ${n}`).toBe(naiveChecksum(b.subarray(off, off + len), initial));
    }
  });
});

describe("sums over pieces (sumPieces)", () => {
  const none = new Int32Array(0);

  it("the RFC 1071 example cut after an odd byte: head 00 01 f2, then 03 f4 and f5 f6 f7", () => {
    const head = fromHex("ee 00 01 f2");
    const tail = fromHex("f5 f6 f7 ee 03 f4");
    expect(sumPieces(head, 1, 3, tail, Int32Array.of(4, 0), Int32Array.of(2, 3), 2, 0)).toBe(0x2ddf0);
    expect(sumPieces(head, 1, 3, tail, none, none, 0, 0x10)).toBe(0x0001 + 0xf200 + 0x10);
    expect(sumPieces(head, 1, 0, tail, Int32Array.of(4), Int32Array.of(1), 1, 0)).toBe(0x0300);
  });

  it("equals sumWords over the concatenation, for random cuts of odd and even lengths", () => {
    const rnd = prng(1624);
    const int = (n: number) => Math.floor(rnd() * n);
    for (let t = 0; t < trials(2000); t++) {
      const whole = new Uint8Array(int(t % 4 === 0 ? 9000 : 300));
      for (let i = 0; i < whole.length; i++) whole[i] = int(256);
      // Cut points, then the pieces after the head placed in a tail buffer in shuffled order.
      const cuts = [0, whole.length];
      for (let k = int(12); k > 0; k--) cuts.push(int(whole.length + 1));
      cuts.sort((a, b) => a - b);
      const headOff = int(5);
      const head = new Uint8Array(headOff + cuts[1] + 3).fill(0xa5);
      head.set(whole.subarray(0, cuts[1]), headOff);
      const count = cuts.length - 2;
      const offs = new Int32Array(count + 1).fill(-1), lens = new Int32Array(count + 1).fill(-1);
      const tail = new Uint8Array(whole.length + 8 * count).fill(0x5a);
      const order = Array.from({ length: count }, (_, k) => k).sort(() => rnd() - 0.5);
      let at = int(4);
      for (const k of order) {
        offs[k] = at;
        lens[k] = cuts[k + 2] - cuts[k + 1];
        tail.set(whole.subarray(cuts[k + 1], cuts[k + 2]), at);
        at += lens[k] + int(8);
      }
      const initial = int(0x40000);
      expect(sumPieces(head, headOff, cuts[1], tail, offs, lens, count, initial), `trial ${t}`).toBe(sumWords(whole, 0, whole.length, initial));
      // With a limit: only the first `limit` bytes of the whole, wherever that falls.
      const limit = int(whole.length + 1);
      expect(sumPieces(head, headOff, cuts[1], tail, offs, lens, count, initial, limit), `trial ${t}, limit ${limit}`).toBe(sumWords(whole, 0, limit, initial));
    }
  });
});

describe("IPv4 pseudo-header sum", () => {
  it("equals the sum of the 12 pseudo-header bytes", () => {
    const rnd = prng(768);
    for (let n = 0; n < trials(1000); n++) {
      const src = Math.floor(rnd() * 2 ** 32);
      const dst = Math.floor(rnd() * 2 ** 32);
      const proto = Math.floor(rnd() * 256);
      const len = Math.floor(rnd() * 65536);
      const ph = new Uint8Array(12);
      put32(ph, 0, src);
      put32(ph, 4, dst);
      ph[9] = proto;
      put16(ph, 10, len);
      expect(fold(pseudoHeaderSum(src, dst, proto, len))).toBe(fold(sumWords(ph, 0, 12)));
    }
  });
});

describe("incremental update (RFC 1624)", () => {
  it("the example of RFC 1624 section 4: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff", () => {
    // HC = 0xdd2f, a word changes from 0x5555 to 0x3285.
    expect(checksumUpdate16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it("changing a word to itself leaves a checksum as it is", () => {
    for (const c of [0x0001, 0x1234, 0xd767, 0xfffe]) expect(checksumUpdate16(c, 0xabcd, 0xabcd)).toBe(c);
  });

  it("equals a full recompute for 10,000 random headers with a random word changed", () => {
    const rnd = prng(1624);
    for (let n = 0; n < trials(10_000); n++) {
      const words = 10 + 2 * Math.floor(rnd() * 6); // 20 to 40 bytes, like an IPv4 header
      const h = new Uint8Array(words * 2);
      for (let i = 0; i < h.length; i++) h[i] = Math.floor(rnd() * 256);
      h[0] = 0x45; // never all zeros: a real header has its version
      put16(h, 10, 0);
      put16(h, 10, internetChecksum(h, 0, h.length));
      let w = Math.floor(rnd() * (words - 1));
      if (w >= 5) w++; // any word but the checksum itself
      const oldWord = get16(h, 2 * w);
      // Some changes by a random amount, some by the ±1 and ±0x100 a TTL or counter makes.
      const r = rnd();
      const newWord = r < 0.5 ? Math.floor(rnd() * 65536) : (oldWord + [1, -1, 0x100, -0x100][Math.floor(r * 8) - 4] + 65536) & 0xffff;
      const updated = checksumUpdate16(get16(h, 10), oldWord, newWord);
      put16(h, 2 * w, newWord);
      put16(h, 10, 0);
      const recomputed = internetChecksum(h, 0, h.length);
      const msg = `case ${n}: word ${w} ${oldWord.toString(16)} → ${newWord.toString(16)}`;
      expect(updated, msg).toBe(recomputed);
      put16(h, 10, updated);
      expect(internetChecksum(h, 0, h.length), msg).toBe(0);
    }
  });

  it("from a header carrying 0xffff (the other ones' complement zero) the result still verifies", () => {
    // Build a header whose rest sums to 0xffff, so both 0x0000 and 0xffff are valid checksums.
    const h = new Uint8Array(20);
    h[0] = 0x45;
    put16(h, 2, 0xffff - 0x4500);
    expect(internetChecksum(h, 0, 20)).toBe(0);
    put16(h, 10, 0xffff);
    expect(internetChecksum(h, 0, 20)).toBe(0);
    const updated = checksumUpdate16(0xffff, get16(h, 8), 0x4001);
    put16(h, 8, 0x4001);
    put16(h, 10, updated);
    expect(internetChecksum(h, 0, 20)).toBe(0);
  });
});

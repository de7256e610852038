import { describe, expect, it } from "vitest";
import { copyBytes, fromHex, get16, get32, getLe16, put16, put32, putLe16, toHex } from "../../src/wire/bytes.ts";
import { countSubarrays } from "../support/subarrays.ts";
import { prng, trials } from "../support/random.ts";

describe("big-endian fields", () => {
  it("get16 and get32 read network byte order at an offset; get32 is unsigned", () => {
    const b = Uint8Array.of(0xee, 0x12, 0x34, 0x56, 0x78, 0xff, 0xfe, 0xfd, 0xfc);
    expect(get16(b, 1)).toBe(0x1234);
    expect(get32(b, 1)).toBe(0x12345678);
    expect(get32(b, 5)).toBe(0xfffefdfc);
  });

  it("put16 and put32 write network byte order and keep only the low bits", () => {
    const b = new Uint8Array(8);
    put16(b, 1, 0x1234);
    put32(b, 3, 0xfffefdfc);
    expect([...b]).toEqual([0, 0x12, 0x34, 0xff, 0xfe, 0xfd, 0xfc, 0]);
    put16(b, 0, 0x12345);
    expect([b[0], b[1]]).toEqual([0x23, 0x45]);
    put32(b, 0, -1);
    expect(get32(b, 0)).toBe(0xffffffff);
  });
});

describe("little-endian 16-bit fields", () => {
  it("getLe16 reads the low byte first, at an offset", () => {
    const b = Uint8Array.of(0xee, 0x34, 0x12, 0xff, 0xfe);
    expect(getLe16(b, 1)).toBe(0x1234);
    expect(getLe16(b, 3)).toBe(0xfeff);
  });

  it("putLe16 writes the low byte first, keeps only 16 bits, and round-trips", () => {
    const b = new Uint8Array(5);
    putLe16(b, 1, 0x1234);
    expect([...b]).toEqual([0, 0x34, 0x12, 0, 0]);
    putLe16(b, 3, 0x5abcd);
    expect([b[3], b[4]]).toEqual([0xcd, 0xab]);
    for (const v of [0, 1, 0xff, 0x100, 0x8000, 0xffff]) {
      putLe16(b, 2, v);
      expect(getLe16(b, 2)).toBe(v);
    }
    expect([b[0], b[1], b[4]]).toEqual([0, 0x34, 0xab]);
  });
});

describe("copyBytes", () => {
  /** memmove done the obvious way: a copy of the source range first, then written out. */
  function model(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
    const taken = Array.from(src.subarray(srcOff, srcOff + len));
    for (let i = 0; i < len; i++) dst[dstOff + i] = taken[i];
  }

  const r = prng(1071);
  const int = (n: number) => (r() * n) | 0;
  /** Two views for a trial: one array, two views of one buffer (maybe overlapping), or two buffers. */
  function views(kind: number, size: number): [Uint8Array, Uint8Array] {
    const ab = new ArrayBuffer(2 * size);
    const a = new Uint8Array(ab);
    for (let i = 0; i < a.length; i++) a[i] = int(256);
    if (kind === 0) return [a, a];
    if (kind === 1) return [new Uint8Array(ab, int(size), size), new Uint8Array(ab, int(size), size)];
    const from = int(size);
    return [new Uint8Array(size).fill(0xee), a.subarray(from, from + size)];
  }

  it("copies as memmove would, for overlapping and separate ranges, short and long", () => {
    for (let t = 0; t < trials(3000); t++) {
      const kind = t % 3;
      const size = 1 + int(t % 2 ? 64 : 400);
      const [dst, src] = views(kind, size);
      const len = int(size + 1);
      const dstOff = int(size - len + 1), srcOff = int(size - len + 1);
      const want = new Uint8Array(dst.buffer).slice(); // the whole of dst's buffer, as it should end
      const wantDst = want.subarray(dst.byteOffset, dst.byteOffset + dst.length);
      const wantSrc = kind === 2 ? src : want.subarray(src.byteOffset, src.byteOffset + src.length);
      model(wantDst, dstOff, wantSrc, srcOff, len);
      copyBytes(dst, dstOff, src, srcOff, len);
      expect(new Uint8Array(dst.buffer), `trial ${t}`).toEqual(want);
    }
  });

  it("makes no view when both lie in one buffer or the copy is short, one otherwise", () => {
    const ab = new ArrayBuffer(4096);
    const slot = new Uint8Array(ab, 100, 2000), out = new Uint8Array(ab, 2200, 1800), other = new Uint8Array(1800);
    expect(countSubarrays(() => copyBytes(out, 3, slot, 10, 1500))).toBe(0);
    expect(countSubarrays(() => copyBytes(slot, 0, slot, 10, 1500))).toBe(0);
    expect(countSubarrays(() => copyBytes(other, 0, slot, 10, 95))).toBe(0);
    expect(countSubarrays(() => copyBytes(other, 0, slot, 10, 96))).toBe(1);
  });
});

describe("hex", () => {
  it("fromHex ignores spaces, newlines and separators between digits", () => {
    expect(fromHex("0a58 0A:f4\n01-02")).toEqual(Uint8Array.of(0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02));
    expect(fromHex("")).toEqual(new Uint8Array(0));
  });

  it("fromHex refuses an odd number of digits", () => {
    expect(() => fromHex("abc")).toThrow("odd number of hex digits");
    expect(() => fromHex("0a 58 0")).toThrow("odd number of hex digits");
  });

  it("toHex writes two lower-case digits a byte, and round-trips", () => {
    const b = Uint8Array.of(0, 0x0f, 0xab, 0xff);
    expect(toHex(b)).toBe("000fabff");
    expect(fromHex(toHex(b))).toEqual(b);
  });
});

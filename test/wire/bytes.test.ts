import { describe, expect, it } from "vitest";
import { fromHex, get16, get32, put16, put32, toHex } from "../../src/wire/bytes.ts";

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

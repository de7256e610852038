// The tapnet tunnel format (version 1): golden bytes, written by hand from the layout in
// src/wire/tapnet.ts (the format is tapnet's own: no capture of anyone else's to compare with).
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../src/wire/bytes.ts";
import { Drop } from "../../src/wire/drop.ts";
import { checkTapnetHeader, emitTapnet, parseTapnet, TAPNET_HEADER_LEN } from "../../src/wire/tapnet.ts";

// version 1, flags 0, frame id 0x1234, frame length 65000 (0x0000fde8), offset 2920 (0x00000b68),
// then a 4-byte chunk.
const GOLDEN = fromHex("01 00 1234 0000fde8 00000b68 deadbeef");

describe("tapnet header", () => {
  it("deconstructs the golden datagram", () => {
    expect(parseTapnet(GOLDEN)).toEqual({ frameId: 0x1234, frameLen: 65000, offset: 2920, chunk: fromHex("deadbeef") });
  });

  it("emits the golden bytes", () => {
    const b = new Uint8Array(GOLDEN.length);
    expect(emitTapnet({ frameId: 0x1234, frameLen: 65000, offset: 2920, chunk: fromHex("deadbeef") }, b, 0)).toBe(16);
    expect(toHex(b)).toBe(toHex(GOLDEN));
  });

  it("refuses a datagram no longer than its header, another version, and a chunk outside its frame", () => {
    expect(checkTapnetHeader(GOLDEN, 0, TAPNET_HEADER_LEN)).toBe(Drop.TapnetTruncated);
    const v2 = GOLDEN.slice();
    v2[0] = 2;
    expect(parseTapnet(v2)).toBe(Drop.TapnetBadVersion);
    const past = fromHex("01 00 0001 00000010 0000000e deadbeef"); // 14 + 4 > 16
    expect(parseTapnet(past)).toBe(Drop.TapnetBadChunk);
    const huge = fromHex("01 00 0001 00100000 00000000 deadbeef"); // a 1 MiB frame
    expect(parseTapnet(huge)).toBe(Drop.TapnetBadChunk);
  });

  it("accepts the edges: a 1-byte chunk, a chunk ending its frame, a frame of 65,664 bytes, any flags", () => {
    expect(parseTapnet(fromHex("01 00 0001 00000001 00000000 aa"))).toEqual({ frameId: 1, frameLen: 1, offset: 0, chunk: fromHex("aa") });
    expect(parseTapnet(fromHex("01 00 0001 00000012 0000000e deadbeef"))).toEqual({ frameId: 1, frameLen: 18, offset: 14, chunk: fromHex("deadbeef") });
    expect(parseTapnet(fromHex("01 00 ffff 00010080 0001007c deadbeef"))).toEqual({ frameId: 0xffff, frameLen: 65664, offset: 65660, chunk: fromHex("deadbeef") });
    expect(parseTapnet(fromHex("01 00 ffff 00010081 00000000 deadbeef"))).toBe(Drop.TapnetBadChunk); // 65,665
    expect(parseTapnet(fromHex("01 00 0001 00000010 fffffffe deadbeef"))).toBe(Drop.TapnetBadChunk); // no wrapping around 2^32
    expect(parseTapnet(fromHex("01 ff 1234 0000fde8 00000b68 deadbeef"))).toEqual(parseTapnet(GOLDEN));
  });

  it("checks a datagram where it lies in a larger buffer", () => {
    const b = new Uint8Array(40).fill(0xee);
    b.set(GOLDEN, 7);
    expect(checkTapnetHeader(b, 7, GOLDEN.length)).toBe(Drop.None);
    expect(checkTapnetHeader(b, 7, TAPNET_HEADER_LEN + 1)).toBe(Drop.None);
    expect(checkTapnetHeader(b, 7, TAPNET_HEADER_LEN)).toBe(Drop.TapnetTruncated);
    expect(checkTapnetHeader(b, 6, GOLDEN.length)).toBe(Drop.TapnetBadVersion);
  });

  it("emits over old bytes at an offset, clearing the flags, and writes nothing else", () => {
    const b = new Uint8Array(GOLDEN.length + 5).fill(0xff);
    expect(emitTapnet({ frameId: 0x1234, frameLen: 65000, offset: 2920, chunk: fromHex("deadbeef") }, b, 3)).toBe(16);
    expect(toHex(b)).toBe("ffffff" + toHex(GOLDEN) + "ffff");
  });
});

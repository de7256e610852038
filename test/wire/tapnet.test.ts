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
});

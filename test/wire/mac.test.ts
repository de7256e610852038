import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import {
  BROADCAST_MAC, formatMac, formatMacHiLo, isGroupMac, macForIpv4, macHi, macLo, parseMac, putMac,
} from "../../src/wire/mac.ts";

describe("MAC addresses", () => {
  it("parse accepts colons or dashes, in either case", () => {
    const expected = Uint8Array.of(0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02);
    expect(parseMac("0a:58:0a:f4:01:02")).toEqual(expected);
    expect(parseMac("0A-58-0A-F4-01-02")).toEqual(expected);
    expect(parseMac("  0a:58:0a:f4:01:02\n")).toEqual(expected);
    expect(parseMac(BROADCAST_MAC)).toEqual(new Uint8Array(6).fill(0xff));
  });

  it("parse rejects mixed separators, wrong lengths and non-hex digits", () => {
    for (const bad of ["", "0a:58:0a:f4:01", "0a:58:0a:f4:01:02:03", "0a:58-0a:f4:01:02", "0a58.0af4.0102",
      "0a:58:0a:f4:01:2", "0a:58:0a:f4:01:0g", "0a580af40102", "0a:58:0a:f4:01:002"]) {
      expect(parseMac(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it("format writes six lower-case two-digit groups from an offset", () => {
    const b = fromHex("ffff 0a58 0af4 0102 ffff");
    expect(formatMac(b, 2)).toBe("0a:58:0a:f4:01:02");
    expect(formatMac(Uint8Array.of(0, 1, 2, 0xab, 0xcd, 0xef))).toBe("00:01:02:ab:cd:ef");
  });

  it("hi and lo split a MAC into its first 2 and last 4 bytes, unsigned", () => {
    const b = fromHex("00 fe ff ee dd cc bb 00");
    expect(macHi(b, 1)).toBe(0xfeff);
    expect(macLo(b, 1)).toBe(0xeeddccbb);
    expect(formatMacHiLo(0xfeff, 0xeeddccbb)).toBe("fe:ff:ee:dd:cc:bb");
  });

  it("putMac writes hi as 2 bytes then lo as 4, big-endian, at its offset and nowhere else", () => {
    const b = new Uint8Array(8).fill(0xee);
    putMac(b, 1, 0xfeff, 0xeeddccbb);
    expect(b).toEqual(fromHex("ee fe ff ee dd cc bb ee"));
    putMac(b, 1, 0x0a58, 0x0af40102);
    expect(b).toEqual(fromHex("ee 0a 58 0a f4 01 02 ee"));
    expect([macHi(b, 1), macLo(b, 1)]).toEqual([0x0a58, 0x0af40102]);
  });

  it("format of hi and lo round-trips through parse", () => {
    for (const s of ["0a:58:0a:f4:01:02", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "80:00:00:00:00:01"]) {
      const b = parseMac(s)!;
      expect(formatMacHiLo(macHi(b, 0), macLo(b, 0))).toBe(s);
    }
  });

  it("group addresses have the low bit of the first byte set", () => {
    expect(isGroupMac(parseMac(BROADCAST_MAC)!, 0)).toBe(true);
    expect(isGroupMac(parseMac("01:00:5e:00:00:fb")!, 0)).toBe(true); // IPv4 multicast
    expect(isGroupMac(parseMac("33:33:00:00:00:01")!, 0)).toBe(true); // IPv6 multicast
    expect(isGroupMac(parseMac("02:00:0a:63:00:01")!, 0)).toBe(false);
    expect(isGroupMac(parseMac("fe:ff:ff:ff:ff:ff")!, 0)).toBe(false);
    expect(isGroupMac(fromHex("00 01"), 1)).toBe(true);
  });

  it("a pod's MAC is 0a:58 and its IPv4 address: unicast and locally administered", () => {
    expect(macForIpv4(0x0af40102)).toBe("0a:58:0a:f4:01:02");
    expect(macForIpv4(0xffffffff)).toBe("0a:58:ff:ff:ff:ff");
    const b = parseMac(macForIpv4(0xc0a80001))!;
    expect(isGroupMac(b, 0)).toBe(false);
    expect(b[0] & 2).toBe(2);
  });
});

import { describe, expect, it } from "vitest";
import { counterName, counterNames, Drop, numberAfter, numbered } from "../../src/wire/drop.ts";

describe("counterName", () => {
  it("is the snake_case of a PascalCase name, digits kept with their word", () => {
    expect(counterName("Ipv4BadChecksum")).toBe("ipv4_bad_checksum");
    expect(counterName("VnetHdrTruncated")).toBe("vnet_hdr_truncated");
    expect(counterName("None")).toBe("none");
    expect(counterName("Ipv4BadHeaderLen")).toBe("ipv4_bad_header_len");
    expect(counterName("RxFrames")).toBe("rx_frames");
  });

  it("refuses a name that would not read back the same way", () => {
    for (const bad of ["", "ipv4Bad", "TCPBad", "Ipv4_Bad", "Bad Name", "A", "4Bad"]) {
      expect(() => counterName(bad), bad).toThrow(`not a PascalCase name of words: ${JSON.stringify(bad)}`);
    }
  });
});

describe("numbered", () => {
  it("numbers the names from the base in their order, in a frozen table", () => {
    const t = numbered(7, ["FirstOne", "SecondOne", "Third"]);
    expect(t).toEqual({ FirstOne: 7, SecondOne: 8, Third: 9 });
    expect(Object.keys(t)).toEqual(["FirstOne", "SecondOne", "Third"]);
    expect(Object.isFrozen(t)).toBe(true);
    expect(numberAfter(t)).toBe(10);
    // @ts-expect-error an unknown name is a compile error (tsc fails if this line type-checks)
    expect(t.Fourth).toBeUndefined();
  });

  it("gives the counter names in the order of the numbers", () => {
    expect(counterNames(numbered(3, ["Ipv4BadChecksum", "VnetHdrTruncated", "NoPort"])))
      .toEqual(["ipv4_bad_checksum", "vnet_hdr_truncated", "no_port"]);
  });

  it("refuses a name listed twice, a bad name, an empty list and a bad base", () => {
    expect(() => numbered(0, ["SamePort", "NoPort", "SamePort"])).toThrow("SamePort is listed twice");
    expect(() => numbered(0, ["SamePort", "no_port"])).toThrow('not a PascalCase name of words: "no_port"');
    expect(() => numbered(0, [])).toThrow(new RangeError("an empty list of names"));
    expect(() => numbered(-1, ["SamePort"])).toThrow(new RangeError("bad base -1"));
    expect(() => numbered(1.5, ["SamePort"])).toThrow(new RangeError("bad base 1.5"));
  });
});

describe("wire's drop reasons", () => {
  it("are numbered 0, 1, 2, … in the order they are declared, None first", () => {
    expect(Object.values(Drop)).toEqual(Object.keys(Drop).map((_, i) => i));
    expect(Drop.None).toBe(0);
    expect(numberAfter(Drop)).toBe(Object.keys(Drop).length);
  });

  it("are what the parsers find, by these counter names", () => {
    expect(counterNames(Drop)).toEqual([
      "none", "eth_runt", "eth_vlan_truncated", "arp_truncated", "arp_unsupported",
      "ipv4_truncated", "ipv4_bad_version", "ipv4_bad_header_len", "ipv4_bad_total_len", "ipv4_bad_checksum",
      "icmp_truncated", "udp_truncated", "udp_bad_length", "tcp_truncated", "tcp_bad_header_len",
      "vnet_hdr_truncated", "gso_unsupported", "gso_malformed", "gso_bad_size", "gso_too_big", "csum_bad_offset",
      "vxlan_truncated", "vxlan_bad_flags", "vxlan_wrong_vni", "tapnet_truncated", "tapnet_bad_version", "tapnet_bad_chunk",
    ]);
  });
});

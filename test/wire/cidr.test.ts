import { describe, expect, it } from "vitest";
import {
  cidrContains, cidrInside, cidrOverlaps, cidrSize, formatCidr, lastAddress, nthSubnet, parseCidr, subnetCount, type Cidr,
} from "../../src/wire/cidr.ts";
import { prng, trials } from "../support/random.ts";
import { ip, cidr } from "../support/addresses.ts";

/** TAPNET_SEED=<n> replays one run; otherwise a fixed seed keeps the suite deterministic. */
const SEED = Number(process.env.TAPNET_SEED ?? 0x5eed_c1d2);

/** The network of `addr` at `prefix`, by plain integer arithmetic. */
function mask(addr: number, prefix: number): number {
  const size = 2 ** (32 - prefix);
  return addr - (addr % size);
}

/** The naive model: a CIDR is the closed integer interval [first, last]. */
function interval(c: Cidr): [number, number] {
  return [c.network, c.network + 2 ** (32 - c.prefix) - 1];
}

describe("parseCidr", () => {
  it("parses a network address and prefix into a 32-bit network and prefix", () => {
    expect(parseCidr("10.244.0.0/16")).toEqual({ network: ip("10.244.0.0"), prefix: 16 });
    expect(parseCidr("192.168.56.0/24")).toEqual({ network: ip("192.168.56.0"), prefix: 24 });
  });

  it("parses the extremes: 0.0.0.0/0 and a /32 at 255.255.255.255", () => {
    expect(parseCidr("0.0.0.0/0")).toEqual({ network: 0, prefix: 0 });
    expect(parseCidr("255.255.255.255/32")).toEqual({ network: 0xffffffff, prefix: 32 });
  });

  it("ignores surrounding whitespace", () => {
    expect(parseCidr("  10.244.1.0/24\n")).toEqual({ network: ip("10.244.1.0"), prefix: 24 });
  });

  it("refuses host bits and suggests the network address", () => {
    const r = parseCidr("10.244.1.5/16");
    expect(typeof r).toBe("string");
    expect(r).toContain("host bits");
    expect(r).toContain("10.244.0.0/16");
  });

  it.each([
    ["an address without a prefix", "10.244.0.0"],
    ["a prefix above 32", "10.0.0.0/33"],
    ["a negative prefix", "10.0.0.0/-1"],
    ["an octet above 255", "256.0.0.0/8"],
    ["three octets", "10.244.0/16"],
    ["five octets", "10.244.0.0.0/16"],
    ["a hostname", "cluster.local/16"],
    ["an IPv6 CIDR", "fd00::/64"],
    ["an empty string", ""],
    ["a space inside", "10.0.0.0/ 8"],
    ["a trailing slash", "10.0.0.0/"],
  ])("refuses %s (%j) with a message quoting the input", (_what, s) => {
    const r = parseCidr(s);
    expect(typeof r).toBe("string");
    expect(r).toContain(`"${s}"`);
  });

  it("refuses text that is not shaped like a CIDR with the example of one, word for word", () => {
    for (const s of ["x10.0.0.0/8", "10.0.0.0/8x", "10.0.0.0", "10.0.0.0/ 8", ""]) {
      expect(parseCidr(s), s).toBe(`"${s}" is not an IPv4 CIDR like 10.244.0.0/16`);
    }
  });

  it("refuses a CIDR-shaped text that ip-num rejects with its reason", () => {
    const r = parseCidr("10.0.0.0/33");
    expect(r).toMatch(/^"10\.0\.0\.0\/33" is not an IPv4 CIDR: \S/);
    expect(r).not.toContain("like 10.244.0.0/16");
  });

  it("names the network for host bits, word for word", () => {
    expect(parseCidr(" 10.244.1.5/16 ")).toBe('" 10.244.1.5/16 " has host bits set (did you mean 10.244.0.0/16?)');
  });

  it("refuses a non-string input instead of throwing", () => {
    expect(typeof parseCidr(42 as unknown as string)).toBe("string");
  });
});

describe("formatCidr", () => {
  it("writes dotted quad and prefix", () => {
    expect(formatCidr({ network: ip("10.244.3.0"), prefix: 24 })).toBe("10.244.3.0/24");
    expect(formatCidr({ network: 0, prefix: 0 })).toBe("0.0.0.0/0");
    expect(formatCidr({ network: 0xffffffff, prefix: 32 })).toBe("255.255.255.255/32");
  });
});

describe("cidrSize, lastAddress and cidrContains", () => {
  it("gives the number of addresses in the block", () => {
    expect(cidrSize(cidr("10.244.0.0/16"))).toBe(65536);
    expect(cidrSize(cidr("10.244.1.0/24"))).toBe(256);
    expect(cidrSize(cidr("10.244.1.4/30"))).toBe(4);
    expect(cidrSize(cidr("10.244.1.4/32"))).toBe(1);
    expect(cidrSize(cidr("0.0.0.0/0"))).toBe(2 ** 32);
  });

  it("gives the broadcast address as the last address", () => {
    expect(lastAddress(cidr("10.244.0.0/16"))).toBe(ip("10.244.255.255"));
    expect(lastAddress(cidr("10.244.1.0/24"))).toBe(ip("10.244.1.255"));
    expect(lastAddress(cidr("10.244.1.4/32"))).toBe(ip("10.244.1.4"));
    expect(lastAddress(cidr("0.0.0.0/0"))).toBe(0xffffffff);
  });

  it("contains exactly the addresses from the network to the last address", () => {
    const c = cidr("10.244.1.0/24");
    expect(cidrContains(c, ip("10.244.1.0"))).toBe(true);
    expect(cidrContains(c, ip("10.244.1.255"))).toBe(true);
    expect(cidrContains(c, ip("10.244.0.255"))).toBe(false);
    expect(cidrContains(c, ip("10.244.2.0"))).toBe(false);
  });
});

describe("cidrInside and cidrOverlaps", () => {
  it("counts a block as inside itself and inside any block that encloses it", () => {
    expect(cidrInside(cidr("10.244.0.0/16"), cidr("10.244.0.0/16"))).toBe(true);
    expect(cidrInside(cidr("10.244.1.0/24"), cidr("10.244.0.0/16"))).toBe(true);
    expect(cidrInside(cidr("10.244.255.0/24"), cidr("10.244.0.0/16"))).toBe(true);
    expect(cidrInside(cidr("10.244.0.0/16"), cidr("0.0.0.0/0"))).toBe(true);
  });

  it("does not count a larger block, a neighbour or a partly outside block as inside", () => {
    expect(cidrInside(cidr("10.244.0.0/16"), cidr("10.244.1.0/24"))).toBe(false);
    expect(cidrInside(cidr("10.245.0.0/24"), cidr("10.244.0.0/16"))).toBe(false);
    expect(cidrInside(cidr("10.244.0.0/15"), cidr("10.244.0.0/16"))).toBe(false);
  });

  it("overlaps when one block holds the other, in either order", () => {
    expect(cidrOverlaps(cidr("10.0.0.0/8"), cidr("10.1.0.0/16"))).toBe(true);
    expect(cidrOverlaps(cidr("10.1.0.0/16"), cidr("10.0.0.0/8"))).toBe(true);
    expect(cidrOverlaps(cidr("10.1.0.0/16"), cidr("10.1.0.0/16"))).toBe(true);
    expect(cidrOverlaps(cidr("0.0.0.0/0"), cidr("255.255.255.255/32"))).toBe(true);
  });

  it("does not overlap adjacent blocks", () => {
    expect(cidrOverlaps(cidr("10.244.0.0/24"), cidr("10.244.1.0/24"))).toBe(false);
    expect(cidrOverlaps(cidr("10.244.1.0/24"), cidr("10.244.0.0/24"))).toBe(false);
    expect(cidrOverlaps(cidr("10.244.0.0/25"), cidr("10.244.0.128/25"))).toBe(false);
  });
});

describe("nthSubnet and subnetCount", () => {
  const cluster = cidr("10.244.0.0/16");

  it("gives the index-th subnet in address order", () => {
    expect(nthSubnet(cluster, 24, 0)).toEqual(cidr("10.244.0.0/24"));
    expect(nthSubnet(cluster, 24, 1)).toEqual(cidr("10.244.1.0/24"));
    expect(nthSubnet(cluster, 24, 255)).toEqual(cidr("10.244.255.0/24"));
    expect(nthSubnet(cluster, 26, 5)).toEqual(cidr("10.244.1.64/26"));
    expect(nthSubnet(cluster, 16, 0)).toEqual(cluster);
  });

  it("gives undefined past either end", () => {
    expect(nthSubnet(cluster, 24, 256)).toBeUndefined();
    expect(nthSubnet(cluster, 24, -1)).toBeUndefined();
    expect(nthSubnet(cluster, 16, 1)).toBeUndefined();
  });

  it("gives /32 subnets, the smallest, up to the last address", () => {
    const outer = cidr("10.244.1.0/30");
    expect(nthSubnet(outer, 32, 0)).toEqual(cidr("10.244.1.0/32"));
    expect(nthSubnet(outer, 32, 3)).toEqual(cidr("10.244.1.3/32"));
    expect(nthSubnet(outer, 32, 4)).toBeUndefined();
    expect(subnetCount(outer, 32)).toBe(4);
  });

  it("gives undefined for a subnet prefix shorter than the outer block's or longer than 32", () => {
    expect(nthSubnet(cluster, 15, 0)).toBeUndefined();
    expect(nthSubnet(cluster, 33, 0)).toBeUndefined();
  });

  it("counts the subnets of a size, and none larger than the block", () => {
    expect(subnetCount(cluster, 24)).toBe(256);
    expect(subnetCount(cluster, 16)).toBe(1);
    expect(subnetCount(cluster, 30)).toBe(16384);
    expect(subnetCount(cluster, 15)).toBe(0);
    expect(subnetCount(cidr("10.244.0.0/22"), 24)).toBe(4);
  });

  it("tiles the outer block: every subnet is inside it, adjacent to the next, and the last ends at its last address", () => {
    const outer = cidr("172.16.8.0/22");
    const n = subnetCount(outer, 27);
    expect(n).toBe(32);
    for (let i = 0; i < n; i++) {
      const s = nthSubnet(outer, 27, i)!;
      expect(cidrInside(s, outer), formatCidr(s)).toBe(true);
      if (i + 1 < n) expect(nthSubnet(outer, 27, i + 1)!.network).toBe(lastAddress(s) + 1);
      else expect(lastAddress(s)).toBe(lastAddress(outer));
    }
  });
});

describe("randomized against an integer model", () => {
  it(`format then parse gives back the same block (10,000 random blocks, seed ${SEED})`, () => {
    const rnd = prng(SEED);
    for (let i = 0; i < trials(10_000); i++) {
      const prefix = Math.floor(rnd() * 33);
      const c: Cidr = { network: mask(Math.floor(rnd() * 2 ** 32), prefix), prefix };
      const text = formatCidr(c);
      expect(parseCidr(text), `seed ${SEED}, case ${i}: ${text}`).toEqual(c);
    }
  });

  it(`refuses random addresses with host bits set and suggests their network (seed ${SEED})`, () => {
    const rnd = prng(SEED + 1);
    let refused = 0;
    const n = trials(2_000);
    for (let i = 0; i < n; i++) {
      const prefix = Math.floor(rnd() * 32); // 0..31: there are host bits to set
      const addr = Math.floor(rnd() * 2 ** 32);
      const network = mask(addr, prefix);
      if (addr === network) continue;
      const text = `${formatCidr({ network: addr, prefix })}`;
      const r = parseCidr(text);
      expect(typeof r, `seed ${SEED + 1}, case ${i}: ${text}`).toBe("string");
      expect(r, `seed ${SEED + 1}, case ${i}: ${text}`).toContain(formatCidr({ network, prefix }));
      refused++;
    }
    expect(refused).toBeGreaterThan(n * 0.95);
  });

  // ip-num does the work with BigInts (about 0.1 ms a call), hence the generous timeout.
  it(`cidrOverlaps and cidrInside agree with integer intervals (10,000 random pairs, seed ${SEED})`, { timeout: 120_000 }, () => {
    const rnd = prng(SEED + 2);
    let overlapping = 0;
    let inside = 0;
    const wrong: string[] = [];
    const n = trials(10_000);
    for (let i = 0; i < n; i++) {
      // Pairs drawn near each other, so that overlap and containment are common but not certain.
      const addr = Math.floor(rnd() * 2 ** 32);
      const pa = Math.floor(rnd() * 33);
      const pb = Math.min(32, Math.max(0, pa + Math.floor(rnd() * 9) - 4));
      const nearby = (addr ^ Math.floor(rnd() * 2 ** (32 - Math.min(pa, pb) + 2))) >>> 0;
      const a: Cidr = { network: mask(addr, pa), prefix: pa };
      const b: Cidr = { network: mask(nearby, pb), prefix: pb };
      const [a0, a1] = interval(a);
      const [b0, b1] = interval(b);
      const want = { overlapsAB: a0 <= b1 && b0 <= a1, overlapsBA: a0 <= b1 && b0 <= a1, aInsideB: a0 >= b0 && a1 <= b1, bInsideA: b0 >= a0 && b1 <= a1 };
      const got = { overlapsAB: cidrOverlaps(a, b), overlapsBA: cidrOverlaps(b, a), aInsideB: cidrInside(a, b), bInsideA: cidrInside(b, a) };
      for (const k of Object.keys(want) as (keyof typeof want)[]) {
        if (got[k] !== want[k]) wrong.push(`case ${i}: a=${formatCidr(a)} b=${formatCidr(b)} ${k} gave ${got[k]}, want ${want[k]}`);
      }
      if (want.overlapsAB) overlapping++;
      if (want.aInsideB) inside++;
    }
    expect(wrong.slice(0, 10), `seed ${SEED + 2} (replay with TAPNET_SEED=${SEED}): ${wrong.length} disagreements`).toEqual([]);
    // The draw must exercise both answers of both functions, or the test proves little.
    expect(overlapping).toBeGreaterThan(n / 10);
    expect(overlapping).toBeLessThan(n * 0.9);
    expect(inside).toBeGreaterThan(n / 10);
    expect(inside).toBeLessThan(n * 0.9);
  });
});

import { describe, expect, it } from "vitest";
import { Neighbors } from "../../src/switch/neighbors.ts";
import { prng, trials } from "../support/random.ts";

const NET = 0x0af40100; // 10.244.1.0
const NET16 = 0x0af40000; // 10.244.0.0
// 0a:58:0a:f4:01:05 as hi/lo: every byte distinct, so a swapped half shows.
const HI = 0x0a58;
const LO = 0x0af40105;

describe("neighbour table size", () => {
  it("refuses a pod CIDR wider than /16 or narrower than /32", () => {
    expect(() => new Neighbors(NET16, 15)).toThrow(RangeError);
    expect(() => new Neighbors(NET, 33)).toThrow(RangeError);
    expect(() => new Neighbors(0, 0)).toThrow("a pod CIDR for the neighbour table must be /16 to /32");
  });

  it("accepts /16 and /32, and a /16 table covers all 65536 addresses", () => {
    const wide = new Neighbors(NET16, 16);
    expect(wide.contains(NET16 + 65535)).toBe(true);
    expect(wide.contains(NET16 + 65536)).toBe(false);
    wide.learn(NET16 + 65535, HI, LO);
    expect(wide.known(NET16 + 65535)).toBe(true);
    expect(wide.entries()).toEqual([{ ip: "10.244.255.255", mac: "0a:58:0a:f4:01:05" }]);
    const one = new Neighbors(NET, 32);
    expect(one.contains(NET)).toBe(true);
    expect(one.contains(NET + 1)).toBe(false);
  });
});

describe("neighbour table bounds", () => {
  it("a /24 contains network .. network+255; network-1 and network+256 (the next CIDR's first address) are outside", () => {
    const n = new Neighbors(NET, 24);
    expect(n.contains(NET - 1)).toBe(false);
    expect(n.contains(NET)).toBe(true);
    expect(n.contains(NET + 255)).toBe(true);
    expect(n.contains(NET + 256)).toBe(false);
  });

  it("the next CIDR's first address is never learned, known or listed", () => {
    const n = new Neighbors(NET, 24);
    n.learn(NET + 256, HI, LO);
    expect(n.known(NET + 256)).toBe(false);
    n.learn(NET - 1, HI, LO);
    expect(n.known(NET - 1)).toBe(false);
    expect(n.entries()).toEqual([]);
  });

  it("learning outside the CIDR leaves the entries inside alone", () => {
    const n = new Neighbors(NET, 31);
    n.learn(NET + 1, HI, LO);
    n.learn(NET + 2, 0xffff, 0xffffffff);
    n.learn(NET - 1, 0xffff, 0xffffffff);
    expect(n.entries()).toEqual([{ ip: "10.244.1.1", mac: "0a:58:0a:f4:01:05" }]);
    expect([n.hi(NET + 1), n.lo(NET + 1)]).toEqual([HI, LO]);
  });

  it("the network address itself (index 0) and the last address can be learned and forgotten", () => {
    const n = new Neighbors(NET, 24);
    for (const ip of [NET, NET + 255]) {
      expect(n.known(ip)).toBe(false);
      n.learn(ip, HI, LO);
      expect(n.known(ip)).toBe(true);
      expect([n.hi(ip), n.lo(ip)]).toEqual([HI, LO]);
      n.forget(ip);
      expect(n.known(ip)).toBe(false);
    }
  });

  it("works for a pod CIDR above 128.0.0.0 (addresses as unsigned 32-bit numbers)", () => {
    const net = 0xc0a83800; // 192.168.56.0
    const n = new Neighbors(net, 24);
    expect(n.contains(net + 255)).toBe(true);
    expect(n.contains(net + 256)).toBe(false);
    n.learn(net + 11, HI, LO);
    expect(n.entries()).toEqual([{ ip: "192.168.56.11", mac: "0a:58:0a:f4:01:05" }]);
  });
});

describe("neighbour learning", () => {
  it("learn records the MAC: hi, lo and known", () => {
    const n = new Neighbors(NET, 24);
    n.learn(NET + 5, HI, LO);
    expect(n.known(NET + 5)).toBe(true);
    expect(n.hi(NET + 5)).toBe(HI);
    expect(n.lo(NET + 5)).toBe(LO);
    expect(n.known(NET + 6)).toBe(false);
    expect(n.known(NET + 4)).toBe(false);
  });

  it("learning again replaces the MAC", () => {
    const n = new Neighbors(NET, 24);
    n.learn(NET + 5, HI, LO);
    n.learn(NET + 5, 0x0200, 0x0a630001);
    expect([n.hi(NET + 5), n.lo(NET + 5)]).toEqual([0x0200, 0x0a630001]);
    expect(n.entries()).toEqual([{ ip: "10.244.1.5", mac: "02:00:0a:63:00:01" }]);
  });

  it("forget makes an address unknown, leaves its neighbours, and ignores addresses outside", () => {
    const n = new Neighbors(NET, 24);
    n.learn(NET + 5, HI, LO);
    n.learn(NET + 6, HI, LO + 1);
    n.forget(NET + 5);
    n.forget(NET - 1);
    n.forget(NET + 256);
    expect(n.known(NET + 5)).toBe(false);
    expect(n.known(NET + 6)).toBe(true);
    expect(n.entries()).toEqual([{ ip: "10.244.1.6", mac: "0a:58:0a:f4:01:06" }]);
  });

  it("entries lists the known neighbours in address order, with dotted addresses and colon MACs", () => {
    const n = new Neighbors(NET, 24);
    expect(n.entries()).toEqual([]);
    n.learn(NET + 200, 0xfedc, 0xba987654);
    n.learn(NET + 2, HI, LO);
    n.learn(NET, 0x0001, 0x00000002);
    expect(n.entries()).toEqual([
      { ip: "10.244.1.0", mac: "00:01:00:00:00:02" },
      { ip: "10.244.1.2", mac: "0a:58:0a:f4:01:05" },
      { ip: "10.244.1.200", mac: "fe:dc:ba:98:76:54" },
    ]);
  });

  it("random learn/forget/lookups agree with a naive map keyed by address", () => {
    const rnd = prng(1918);
    for (let t = 0; t < trials(50, 5); t++) {
      const prefix = 22 + Math.floor(rnd() * 11); // /22 .. /32
      const size = 2 ** (32 - prefix);
      const n = new Neighbors(NET16 + 0x400 * Math.floor(rnd() * 60), prefix);
      const model = new Map<number, [number, number]>();
      const inside = (ip: number) => ip >= n.network && ip <= n.network + size - 1;
      const got: [number, boolean, boolean, number, number][] = [];
      const want: [number, boolean, boolean, number, number][] = [];
      for (let op = 0; op < 60; op++) {
        // Addresses around the CIDR: a little before it, inside, and a little after.
        const ip = n.network - 2 + Math.floor(rnd() * (size + 4));
        const r = rnd();
        if (r < 0.5) {
          const hi = Math.floor(rnd() * 0x10000);
          const lo = Math.floor(rnd() * 0x100000000);
          n.learn(ip, hi, lo);
          if (inside(ip)) model.set(ip, [hi, lo]);
        } else if (r < 0.7) {
          n.forget(ip);
          model.delete(ip);
        }
        const m = model.get(ip);
        got.push([ip, n.contains(ip), n.known(ip), m ? n.hi(ip) : 0, m ? n.lo(ip) : 0]);
        want.push([ip, inside(ip), m !== undefined, m ? m[0] : 0, m ? m[1] : 0]);
      }
      expect(got, `trial ${t}`).toEqual(want);
      const listed = [...model.entries()].sort((a, b) => a[0] - b[0]).map(([ip, [hi, lo]]) => ({
        ip: [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join("."),
        mac: [hi >>> 8, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255].map((x) => x.toString(16).padStart(2, "0")).join(":"),
      }));
      expect(n.entries()).toEqual(listed);
    }
  });
});

describe("pinned neighbours (a pod's own address, #13)", () => {
  const OTHER_HI = 0x0a58;
  const OTHER_LO = 0x0af40109;

  it("learning, forgetting and seeding leave a pinned entry as it was; learn says it did nothing", () => {
    const n = new Neighbors(NET, 24);
    expect(n.pin(NET + 5, HI, LO)).toBe(true);
    expect(n.learn(NET + 5, OTHER_HI, OTHER_LO)).toBe(false);
    n.forget(NET + 5);
    expect([n.known(NET + 5), n.isPinned(NET + 5), n.hi(NET + 5), n.lo(NET + 5)]).toEqual([true, true, HI, LO]);
    expect(n.learn(NET + 6, OTHER_HI, OTHER_LO)).toBe(true);
    expect(n.entries()).toEqual([{ ip: "10.244.1.5", mac: "0a:58:0a:f4:01:05", pinned: true }, { ip: "10.244.1.6", mac: "0a:58:0a:f4:01:09" }]);
  });

  it("a pin replaces what was learned; outside the CIDR it is refused", () => {
    const n = new Neighbors(NET, 24);
    n.learn(NET + 5, OTHER_HI, OTHER_LO);
    n.pin(NET + 5, HI, LO);
    expect([n.hi(NET + 5), n.lo(NET + 5)]).toEqual([HI, LO]);
    expect(n.pin(NET + 256, HI, LO)).toBe(false);
    expect(n.isPinned(NET + 256)).toBe(false);
  });

  it("unpin takes the entry out only if it is pinned to that MAC; then the address is learnable again", () => {
    const n = new Neighbors(NET, 24);
    n.pin(NET + 5, HI, LO);
    n.unpin(NET + 5, OTHER_HI, OTHER_LO); // another pod's MAC: not its pin
    expect(n.isPinned(NET + 5)).toBe(true);
    n.unpin(NET + 5, HI, LO);
    expect([n.known(NET + 5), n.isPinned(NET + 5)]).toEqual([false, false]);
    expect(n.learn(NET + 5, OTHER_HI, OTHER_LO)).toBe(true);
    n.unpin(NET + 5, OTHER_HI, OTHER_LO); // learned, not pinned: stays
    expect(n.known(NET + 5)).toBe(true);
  });
});

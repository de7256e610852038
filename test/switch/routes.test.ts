import { describe, expect, it } from "vitest";
import { SubnetMap, type NodeRoute } from "../../src/switch/routes.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";
import { prng, trials } from "../support/random.ts";

const ip = (s: string) => parseIpv4Address(s)!;
// Given out of order, with CIDRs of different sizes.
const nodes = [
  { address: ip("192.168.56.13"), network: ip("10.244.3.0"), prefix: 24 },
  { address: ip("192.168.56.11"), network: ip("10.244.0.0"), prefix: 23 },
  { address: ip("192.168.56.12"), network: ip("10.244.4.0"), prefix: 25 },
];

/** The naive model: scan every node. */
function naiveNodeForIp(ns: readonly NodeRoute[], a: number): number {
  return ns.findIndex((n) => a >= n.network && a < n.network + 2 ** (32 - n.prefix));
}

// Each test builds its own map, so that the map is built while the test runs.
describe("the subnet map", () => {
  it("finds the node of a pod address, edges included, and no node outside every CIDR", () => {
    const map = new SubnetMap(nodes);
    expect(map.nodeForIp(ip("10.244.0.0"))).toBe(1);
    expect(map.nodeForIp(ip("10.244.1.255"))).toBe(1);
    expect(map.nodeForIp(ip("10.244.2.0"))).toBe(-1);
    expect(map.nodeForIp(ip("10.244.2.255"))).toBe(-1);
    expect(map.nodeForIp(ip("10.244.3.0"))).toBe(0);
    expect(map.nodeForIp(ip("10.244.3.7"))).toBe(0);
    expect(map.nodeForIp(ip("10.244.3.255"))).toBe(0);
    expect(map.nodeForIp(ip("10.244.4.0"))).toBe(2);
    expect(map.nodeForIp(ip("10.244.4.127"))).toBe(2);
    expect(map.nodeForIp(ip("10.244.4.128"))).toBe(-1);
    expect(map.nodeForIp(ip("10.243.255.255"))).toBe(-1);
    expect(map.nodeForIp(ip("255.255.255.255"))).toBe(-1);
  });

  it("finds every node by its underlay address, and no node for another address", () => {
    const map = new SubnetMap(nodes);
    expect(map.nodeForAddress(ip("192.168.56.11"))).toBe(1);
    expect(map.nodeForAddress(ip("192.168.56.12"))).toBe(2);
    expect(map.nodeForAddress(ip("192.168.56.13"))).toBe(0);
    expect(map.nodeForAddress(ip("192.168.56.10"))).toBe(-1);
    expect(map.nodeForAddress(ip("192.168.56.14"))).toBe(-1);
  });

  it("says whether a node owns an address: exactly its CIDR, as nodeForIp does", () => {
    const map = new SubnetMap(nodes);
    for (const a of ["10.243.255.255", "10.244.0.0", "10.244.1.255", "10.244.2.0", "10.244.2.255", "10.244.3.0", "10.244.3.255", "10.244.4.0", "10.244.4.127", "10.244.4.128"]) {
      for (let n = 0; n < nodes.length; n++) expect(map.owns(n, ip(a)), `${a} node ${n}`).toBe(map.nodeForIp(ip(a)) === n);
    }
    expect(map.owns(1, ip("10.244.2.0"))).toBe(false); // the address after node 1's /23
    expect(map.owns(2, ip("10.244.4.128"))).toBe(false); // the address after node 2's /25
  });

  it("says whether a node speaks for an address: its CIDR and its own underlay address, nothing else", () => {
    const map = new SubnetMap(nodes);
    const addrs = ["10.243.255.255", "10.244.0.0", "10.244.1.255", "10.244.2.0", "10.244.3.7", "10.244.4.127", "10.244.4.128",
      "192.168.56.11", "192.168.56.12", "192.168.56.13", "192.168.56.14", "8.8.8.8", "0.0.0.0"];
    for (const a of addrs) {
      for (let n = 0; n < nodes.length; n++) {
        expect(map.speaksFor(n, ip(a)), `${a} node ${n}`).toBe(map.owns(n, ip(a)) || nodes[n].address === ip(a));
      }
    }
    expect(map.speaksFor(1, ip("192.168.56.11"))).toBe(true);
    expect(map.speaksFor(1, ip("192.168.56.12"))).toBe(false);
  });

  it("an empty map has no node for any address", () => {
    const map = new SubnetMap([]);
    expect(map.nodeForIp(ip("10.244.0.1"))).toBe(-1);
    expect(map.nodeForAddress(ip("192.168.56.11"))).toBe(-1);
  });

  it("agrees with a scan of every node on random clusters given in random order", () => {
    const rnd = prng(0x5b7e7);
    for (let run = 0; run < trials(200); run++) {
      // Up to 40 nodes: distinct /24../26 pod CIDRs in 10.96.0.0/16 and distinct underlay addresses.
      const count = 1 + Math.floor(rnd() * 40);
      const ns: NodeRoute[] = [];
      const addrs = new Set<number>();
      while (ns.length < count) {
        const prefix = 24 + Math.floor(rnd() * 3);
        const network = ip("10.96.0.0") + Math.floor(rnd() * 2 ** (prefix - 16)) * 2 ** (32 - prefix);
        const last = network + 2 ** (32 - prefix) - 1;
        if (ns.some((n) => network <= n.network + 2 ** (32 - n.prefix) - 1 && n.network <= last)) continue;
        let address: number;
        do address = ip("192.168.0.0") + Math.floor(rnd() * 65536); while (addrs.has(address));
        addrs.add(address);
        ns.push({ address, network, prefix });
      }
      const map = new SubnetMap(ns);
      for (let i = 0; i < 50; i++) {
        const a = ip("10.96.0.0") - 256 + Math.floor(rnd() * (65536 + 512));
        const want = naiveNodeForIp(ns, a);
        const got = map.nodeForIp(a);
        if (got !== want) expect(got, `run ${run}, ${a}`).toBe(want);
      }
      ns.forEach((n, i) => {
        if (map.nodeForAddress(n.address) !== i) expect(map.nodeForAddress(n.address), `run ${run}, node ${i}`).toBe(i);
        if (map.nodeForIp(n.network + 2 ** (32 - n.prefix) - 1) !== i) expect(map.nodeForIp(n.network + 2 ** (32 - n.prefix) - 1), `run ${run}, last of ${i}`).toBe(i);
      });
      expect(map.nodeForAddress(ip("192.167.255.255"))).toBe(-1);
    }
  });
});

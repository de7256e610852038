import { describe, expect, it } from "vitest";
import { SubnetMap } from "../../src/switch/routes.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";

const ip = (s: string) => parseIpv4Address(s)!;
// Given out of order, with CIDRs of different sizes.
const nodes = [
  { address: ip("192.168.56.13"), network: ip("10.244.3.0"), prefix: 24 },
  { address: ip("192.168.56.11"), network: ip("10.244.0.0"), prefix: 23 },
  { address: ip("192.168.56.12"), network: ip("10.244.4.0"), prefix: 25 },
];

describe("the subnet map", () => {
  const map = new SubnetMap(nodes);

  it("finds the node of a pod address, edges included, and no node outside every CIDR", () => {
    expect(map.nodeForIp(ip("10.244.0.0"))).toBe(1);
    expect(map.nodeForIp(ip("10.244.1.255"))).toBe(1);
    expect(map.nodeForIp(ip("10.244.2.0"))).toBe(-1);
    expect(map.nodeForIp(ip("10.244.3.7"))).toBe(0);
    expect(map.nodeForIp(ip("10.244.4.127"))).toBe(2);
    expect(map.nodeForIp(ip("10.244.4.128"))).toBe(-1);
    expect(map.nodeForIp(ip("255.255.255.255"))).toBe(-1);
  });

  it("finds a node by its underlay address", () => {
    expect(map.nodeForAddress(ip("192.168.56.12"))).toBe(2);
    expect(map.nodeForAddress(ip("192.168.56.14"))).toBe(-1);
  });

  it("says whether a node owns an address: exactly its CIDR, as nodeForIp does", () => {
    for (const a of ["10.243.255.255", "10.244.0.0", "10.244.1.255", "10.244.2.0", "10.244.2.255", "10.244.3.0", "10.244.3.255", "10.244.4.0", "10.244.4.127", "10.244.4.128"]) {
      for (let n = 0; n < nodes.length; n++) expect(map.owns(n, ip(a)), `${a} node ${n}`).toBe(map.nodeForIp(ip(a)) === n);
    }
  });
});

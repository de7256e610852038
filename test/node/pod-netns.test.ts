import { describe, expect, it } from "vitest";
import { clusterAddresses } from "../../src/node/pod-netns.ts";
import { cidr } from "../support/addresses.ts";

// `ip -j -4 addr show` in a namespace (iproute2 6.1), trimmed to what is read.
const link = (ifname: string, ...locals: string[]) => ({ ifindex: 2, ifname, flags: ["UP"], addr_info: locals.map((local) => ({ family: "inet", local, prefixlen: 24 })) });
const CLUSTER = cidr("10.244.0.0/16");

describe("clusterAddresses: which interfaces of a namespace hold an address of the cluster", () => {
  it("names a pod's eth0 and a node's tapnet0, and nothing else", () => {
    const json = JSON.stringify([link("lo", "127.0.0.1"), link("eth0", "10.244.1.2"), link("tapnet0", "10.244.3.1"), link("veth0", "192.168.56.11")]);
    expect(clusterAddresses(json, CLUSTER)).toEqual(["eth0 10.244.1.2", "tapnet0 10.244.3.1"]);
  });

  it("finds nothing in an empty namespace, or one with addresses just outside the cluster CIDR", () => {
    expect(clusterAddresses("[]", CLUSTER)).toEqual([]);
    expect(clusterAddresses(JSON.stringify([link("lo"), link("eth0", "10.243.255.255", "10.245.0.0")]), CLUSTER)).toEqual([]);
  });

  it("takes the cluster CIDR's first and last addresses as inside, and every address of an interface", () => {
    expect(clusterAddresses(JSON.stringify([link("dummy0", "192.168.1.1", "10.244.0.0", "10.244.255.255")]), CLUSTER)).toEqual(["dummy0 10.244.0.0", "dummy0 10.244.255.255"]);
  });

  it("reads nothing from output it does not understand, rather than throwing", () => {
    for (const out of ["", "not json", "{}", "null", '[{"ifname":"x"}]', '[{"addr_info":[{"family":"inet6","local":"fd00::1"}]}]', '[null, {"addr_info": [null, {"family":"inet","local":7}]}]']) {
      expect(clusterAddresses(out, CLUSTER), out).toEqual([]);
    }
  });
});

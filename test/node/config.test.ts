import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { cidrInside, cidrOverlaps, formatCidr, nthSubnet } from "../../src/wire/cidr.ts";
import {
  ConfigError, checkClusterConfig, formatClusterConfig, parseClusterConfig, readClusterConfig, vtepMacFor, type ClusterConfig,
} from "../../src/node/config.ts";
import { prng, trials } from "../support/random.ts";
import { ip, cidr } from "../support/addresses.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0xc0f1_6);

function node(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: `node${i}`, address: `192.168.56.${10 + i}`, ...extra };
}

function nodes(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => node(i + 1));
}

/** The ConfigError `raw` is refused with; fails the test if it is accepted or throws anything else. */
function refusal(raw: unknown): ConfigError {
  try {
    checkClusterConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

/** Asserts that `raw` is refused with a message naming `field` and matching every pattern. */
function expectRefused(raw: unknown, field: string, ...patterns: RegExp[]): void {
  const msg = refusal(raw).message;
  expect(msg, "names the field").toContain(field);
  for (const p of patterns) expect(msg).toMatch(p);
  expect(msg, "one line").not.toContain("\n");
}

describe("defaults", () => {
  it("fills in cluster CIDR 10.244.0.0/16, /24 node subnets, MTU 1500 and the tapnet backend on port 8287", () => {
    const c = checkClusterConfig({ nodes: [node(1)] });
    expect(c.clusterCidr).toEqual(cidr("10.244.0.0/16"));
    expect(c.nodeSubnetPrefix).toBe(24);
    expect(c.mtu).toBe(1500);
    expect(c.backend).toEqual({ type: "tapnet", port: 8287, vni: 1 });
    expect(c.podMtu).toBe(1500); // whole frames are chunked: pods keep the underlay's MTU
  });

  it("gives pods the MTU less 28 bytes on udp (IPv4 + UDP headers)", () => {
    expect(checkClusterConfig({ backend: { type: "udp" }, nodes: [node(1)] }).podMtu).toBe(1472);
    expect(checkClusterConfig({ backend: { type: "udp" }, mtu: 9000, nodes: [node(1)] }).podMtu).toBe(8972);
  });

  it("defaults vxlan to port 8472 and VNI 1, and gives pods the MTU less 50 bytes", () => {
    const c = checkClusterConfig({ backend: { type: "vxlan" }, nodes: [node(1)] });
    expect(c.backend).toEqual({ type: "vxlan", port: 8472, vni: 1 });
    expect(c.podMtu).toBe(1450);
    expect(checkClusterConfig({ mtu: 9000, backend: { type: "vxlan" }, nodes: [node(1)] }).podMtu).toBe(8950);
  });

  it("keeps a given port, VNI, MTU, cluster CIDR and node subnet prefix", () => {
    const c = checkClusterConfig({
      clusterCidr: "172.20.0.0/14", nodeSubnetPrefix: 26, mtu: 1400, backend: { type: "vxlan", port: 4789, vni: 42 }, nodes: [node(1)],
    });
    expect(c.clusterCidr).toEqual(cidr("172.20.0.0/14"));
    expect(c.nodeSubnetPrefix).toBe(26);
    expect(c.mtu).toBe(1400);
    expect(c.podMtu).toBe(1350);
    expect(c.backend).toEqual({ type: "vxlan", port: 4789, vni: 42 });
    expect(c.nodes[0].podCidr).toEqual(cidr("172.20.0.64/26"));
  });

  it("keeps node names and parses addresses to 32-bit integers", () => {
    const c = checkClusterConfig({ nodes: [{ name: "worker-a", address: "10.0.0.7" }] });
    expect(c.nodes[0].name).toBe("worker-a");
    expect(c.nodes[0].address).toBe(ip("10.0.0.7"));
  });
});

describe("pod CIDR assignment", () => {
  it("gives node1 10.244.1.0/24: subnet 0 is skipped, as flannel's SubnetMin does", () => {
    const c = checkClusterConfig({ nodes: [node(1)] });
    expect(formatCidr(c.nodes[0].podCidr)).toBe("10.244.1.0/24");
  });

  it("assigns the next subnets in node order", () => {
    const c = checkClusterConfig({ nodes: nodes(3) });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
  });

  it("assigns subnets of the configured node subnet prefix", () => {
    const c = checkClusterConfig({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodeSubnetPrefix: 20, nodes: nodes(2) });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.0.16.0/20", "10.0.32.0/20"]);
  });

  it("keeps a given pod CIDR and never assigns one that overlaps it, even for an earlier node", () => {
    const c = checkClusterConfig({ nodes: [node(1), node(2, { podCidr: "10.244.1.0/24" }), node(3)] });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.244.2.0/24", "10.244.1.0/24", "10.244.3.0/24"]);
  });

  it("skips every subnet that a larger given pod CIDR covers", () => {
    const c = checkClusterConfig({ nodes: [node(1, { podCidr: "10.244.2.0/23" }), node(2), node(3, { podCidr: "10.244.5.0/25" }), node(4), node(5)] });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.244.2.0/23", "10.244.1.0/24", "10.244.5.0/25", "10.244.4.0/24", "10.244.6.0/24"]);
  });

  it("gives the same answer for the same input", () => {
    const raw = { nodes: [node(1), node(2, { podCidr: "10.244.7.0/24" }), node(3), node(4)] };
    const a = checkClusterConfig(structuredClone(raw));
    const b = checkClusterConfig(structuredClone(raw));
    expect(a).toEqual(b);
    expect(parseClusterConfig(JSON.stringify(raw))).toEqual(a);
  });

  it("uses every usable subnet: a /22 with /24 nodes holds exactly three", () => {
    const c = checkClusterConfig({ clusterCidr: "10.244.0.0/22", nodes: nodes(3) });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
  });

  it(`agrees with a naive lowest-free model on random mixes of given and assigned CIDRs (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const cluster = cidr("10.96.0.0/20");
    let assigned = 0;
    let given = 0;
    const runs = trials(200);
    for (let run = 0; run < runs; run++) {
      const prefix = 24 + Math.floor(rnd() * 3); // /24../26: 16..64 subnets
      const count = 2 ** (prefix - 20);
      const n = 1 + Math.floor(rnd() * 10);
      // Some nodes are given a distinct subnet; the rest are left to the assigner.
      const picks = new Set<number>();
      const raw = Array.from({ length: n }, (_, i) => {
        if (rnd() < 0.4) {
          let k: number;
          do k = 1 + Math.floor(rnd() * (count - 1)); while (picks.has(k)); // never the reserved subnet 0
          picks.add(k);
          return node(i + 1, { podCidr: formatCidr(nthSubnet(cluster, prefix, k)!) });
        }
        return node(i + 1);
      });
      const c = checkClusterConfig({ clusterCidr: formatCidr(cluster), serviceCidr: "172.30.0.0/16", nodeSubnetPrefix: prefix, nodes: raw });

      const taken = new Set(picks);
      let next = 1;
      const want = raw.map((r) => {
        if (r.podCidr) { given++; return r.podCidr as string; }
        while (taken.has(next)) next++;
        taken.add(next);
        assigned++;
        return formatCidr(nthSubnet(cluster, prefix, next)!);
      });
      const where = `seed ${SEED}, run ${run}: ${JSON.stringify(raw)}`;
      expect(c.nodes.map((x) => formatCidr(x.podCidr)), where).toEqual(want);
      c.nodes.forEach((a, i) => {
        expect(cidrInside(a.podCidr, cluster), where).toBe(true);
        c.nodes.forEach((b, j) => { if (i < j) expect(cidrOverlaps(a.podCidr, b.podCidr), where).toBe(false); });
      });
    }
    expect(assigned).toBeGreaterThan(runs / 2);
    expect(given).toBeGreaterThan(runs / 2);
  });
});

describe("VTEP MAC", () => {
  it("is derived as 0e:00 followed by the node's address bytes", () => {
    expect(vtepMacFor(ip("192.168.56.11"))).toBe("0e:00:c0:a8:38:0b");
    expect(vtepMacFor(ip("255.255.255.255"))).toBe("0e:00:ff:ff:ff:ff");
    expect(vtepMacFor(0)).toBe("0e:00:00:00:00:00");
    const c = checkClusterConfig({ backend: { type: "vxlan" }, nodes: [{ name: "a", address: "10.1.2.3" }] });
    expect(c.nodes[0].vtepMac).toBe("0e:00:0a:01:02:03");
  });

  it("keeps an explicit vtepMac, normalised to lower case with colons", () => {
    const c = checkClusterConfig({ backend: { type: "vxlan" }, nodes: [node(1, { vtepMac: "02:AA:bb:CC:dd:0E" }), node(2, { vtepMac: "02-00-00-00-00-02" })] });
    expect(c.nodes.map((n) => n.vtepMac)).toEqual(["02:aa:bb:cc:dd:0e", "02:00:00:00:00:02"]);
  });

  it("refuses a vtepMac that is not a MAC address", () => {
    expectRefused({ nodes: [node(1, { vtepMac: "02:00:00:00:00" })] }, "nodes[0].vtepMac", /not a MAC/);
    expectRefused({ nodes: [node(1, { vtepMac: 12 })] }, "nodes[0].vtepMac", /not a MAC/);
  });

  it("refuses a multicast vtepMac", () => {
    expectRefused({ nodes: [node(1, { vtepMac: "01:00:5e:00:00:01" })] }, "nodes[0].vtepMac", /multicast/);
  });

  it("refuses an explicit vtepMac equal to another node's, written differently", () => {
    expectRefused({ nodes: [node(1, { vtepMac: "02:00:00:00:00:aa" }), node(2, { vtepMac: "02-00-00-00-00-AA" })] }, "nodes[1].vtepMac", /also nodes\[0\]\.vtepMac/);
  });

  it("refuses an explicit vtepMac equal to another node's derived one", () => {
    expectRefused({ nodes: [node(1), node(2, { vtepMac: vtepMacFor(ip("192.168.56.11")) })] }, "nodes[1].vtepMac", /0e:00:c0:a8:38:0b/, /also nodes\[0\]\.vtepMac/);
  });
});

describe("refusals: every fault is a ConfigError naming the field", () => {
  it("refuses a pod CIDR outside the cluster CIDR", () => {
    expectRefused({ nodes: [node(1, { podCidr: "10.245.0.0/24" })] }, "nodes[0].podCidr", /10\.245\.0\.0\/24/, /outside/, /10\.244\.0\.0\/16/);
    expectRefused({ nodes: [node(1, { podCidr: "10.244.0.0/15" })] }, "nodes[0].podCidr", /outside/);
  });

  it("refuses overlapping pod CIDRs, naming both nodes", () => {
    expectRefused({ nodes: [node(1, { podCidr: "10.244.1.0/24" }), node(2, { podCidr: "10.244.1.128/25" })] }, "nodes[1].podCidr", /overlaps/, /nodes\[0\]\.podCidr/);
    expectRefused({ nodes: [node(1, { podCidr: "10.244.4.0/24" }), node(2), node(3, { podCidr: "10.244.4.0/24" })] }, "nodes[2].podCidr", /overlaps/, /nodes\[0\]/);
  });

  it("refuses duplicate node names", () => {
    expectRefused({ nodes: [node(1), { name: "node1", address: "192.168.56.99" }] }, "nodes[1].name", /node1/, /also nodes\[0\]\.name/);
  });

  it("refuses duplicate node addresses, written as an address", () => {
    expectRefused({ nodes: [node(1), { name: "other", address: "192.168.56.11" }] }, "nodes[1].address", /192\.168\.56\.11/, /also nodes\[0\]\.address/);
  });

  it("refuses a pod CIDR too small for a gateway and a pod (/31, /32)", () => {
    expectRefused({ nodes: [node(1, { podCidr: "10.244.1.0/31" })] }, "nodes[0].podCidr", /too small/);
    expectRefused({ nodes: [node(1, { podCidr: "10.244.1.0/32" })] }, "nodes[0].podCidr", /too small/);
    expect(checkClusterConfig({ nodes: [node(1, { podCidr: "10.244.1.4/30" })] }).nodes[0].podCidr).toEqual(cidr("10.244.1.4/30"));
  });

  it("refuses a node subnet prefix too long for a gateway and a pod, or shorter than the cluster's", () => {
    expectRefused({ nodeSubnetPrefix: 31, nodes: [node(1)] }, "nodeSubnetPrefix", /whole number/, /31/);
    expectRefused({ nodeSubnetPrefix: 15, nodes: [node(1)] }, "nodeSubnetPrefix", /whole number/, /15/);
    expectRefused({ nodeSubnetPrefix: "24", nodes: [node(1)] }, "nodeSubnetPrefix", /whole number/);
  });

  it("refuses a cluster CIDR too small for a cluster", () => {
    expectRefused({ clusterCidr: "10.244.0.0/29", nodes: [node(1)] }, "clusterCidr", /too small/);
  });

  it("refuses host bits in the cluster CIDR and in a pod CIDR", () => {
    expectRefused({ clusterCidr: "10.244.0.1/16", nodes: [node(1)] }, "clusterCidr", /host bits/, /10\.244\.0\.0\/16/);
    expectRefused({ nodes: [node(1, { podCidr: "10.244.1.1/24" })] }, "nodes[0].podCidr", /host bits/, /10\.244\.1\.0\/24/);
  });

  it("refuses a cluster CIDR or pod CIDR that is not a CIDR", () => {
    expectRefused({ clusterCidr: "10.244.0.0", nodes: [node(1)] }, "clusterCidr", /not an IPv4 CIDR/);
    expectRefused({ nodes: [node(1, { podCidr: "ten/24" })] }, "nodes[0].podCidr", /not an IPv4 CIDR/);
  });

  it("refuses an unknown backend, listing the known ones", () => {
    expectRefused({ backend: { type: "wireguard" }, nodes: [node(1)] }, "backend.type", /unknown backend/, /wireguard/, /udp/, /vxlan/);
  });

  // Once a bug (src/node/config.ts, `type in BACKENDS`, before the registry): the `in` operator also finds names on
  // Object.prototype, so "constructor" passes as a backend type; with a port given, the config is
  // accepted with backend.type "constructor" and podMtu NaN (1500 - undefined).
  it("refuses a backend type that names an Object.prototype member (constructor)", () => {
    expectRefused({ backend: { type: "constructor", port: 1 }, nodes: [node(1)] }, "backend.type", /unknown backend/);
  });

  // Same bug, once: without a port, "toString" is refused, but as `backend.port: ... not undefined`.
  it("names backend.type when refusing a backend type that names an Object.prototype member (toString)", () => {
    expectRefused({ backend: { type: "toString" }, nodes: [node(1)] }, "backend.type", /unknown backend/);
  });

  it("refuses a node subnet as large as the cluster CIDR (its only subnet is the reserved first)", () => {
    expectRefused({ clusterCidr: "10.244.0.0/16", nodeSubnetPrefix: 16, nodes: [node(1)] }, "nodeSubnetPrefix", /17 to 30/);
  });

  // #13 finding 6: both were accepted silently.
  it("refuses a node address inside the cluster CIDR, naming the node's address field", () => {
    expect(refusal({ nodes: [node(1), { name: "node2", address: "10.244.3.7" }] }).message)
      .toBe("nodes[1].address: 10.244.3.7 is inside clusterCidr 10.244.0.0/16: a node's address is its underlay address, outside the pods' addresses");
    for (const address of ["10.244.0.0", "10.244.0.1", "10.244.255.255"]) expectRefused({ nodes: [{ name: "a", address }] }, "nodes[0].address", /inside clusterCidr/);
    expectRefused({ clusterCidr: "172.20.0.0/14", nodes: [{ name: "a", address: "172.23.1.1" }] }, "nodes[0].address", /172\.20\.0\.0\/14/);
    // The addresses just outside it are a node's to have.
    expect(checkClusterConfig({ nodes: [{ name: "a", address: "10.243.255.255" }, { name: "b", address: "10.245.0.0" }] }).nodes).toHaveLength(2);
  });

  it("refuses a given pod CIDR on the reserved first subnet, whatever its size", () => {
    expect(refusal({ nodes: [node(1, { podCidr: "10.244.0.0/24" })] }).message)
      .toBe("nodes[0].podCidr: 10.244.0.0/24 overlaps 10.244.0.0/24, the first /24 of clusterCidr, which is reserved (no pod holds the cluster CIDR's first address)");
    expectRefused({ nodes: [node(1), node(2, { podCidr: "10.244.0.0/23" })] }, "nodes[1].podCidr", /the first \/24/);
    expectRefused({ nodes: [node(1, { podCidr: "10.244.0.128/25" })] }, "nodes[0].podCidr", /reserved/);
    expectRefused({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodeSubnetPrefix: 20, nodes: [node(1, { podCidr: "10.0.15.0/24" })] }, "nodes[0].podCidr", /10\.0\.0\.0\/20/);
    // The subnet right after it is free to give.
    expect(formatCidr(checkClusterConfig({ nodes: [node(1, { podCidr: "10.244.1.0/24" })] }).nodes[0].podCidr)).toBe("10.244.1.0/24");
  });

  it("refuses a pod CIDR larger than /16", () => {
    expectRefused({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodes: [node(1, { podCidr: "10.0.0.0/15" })] }, "nodes[0].podCidr", /at most a \/16/);
  });

  it("refuses a backend that is not a mapping", () => {
    expectRefused({ backend: "udp", nodes: [node(1)] }, "backend", /mapping/);
  });

  it("refuses an unknown field anywhere, listing the expected ones", () => {
    expectRefused({ backend: { type: "udp", prot: 8285 }, nodes: [node(1)] }, "backend.prot", /unknown field/, /type, port, vni/);
    expectRefused({ nodez: [node(1)] }, "nodez", /unknown field/, /nodes/);
    expectRefused({ nodes: [node(1, { adress: "192.168.56.11" })] }, "nodes[0].adress", /unknown field/, /address/);
  });

  it("refuses an MTU that leaves pods less than 576 bytes after the backend's headers", () => {
    expectRefused({ mtu: 600, backend: { type: "vxlan" }, nodes: [node(1)] }, "mtu", /600/, /550/, /vxlan/, /576/);
    expectRefused({ mtu: 603, backend: { type: "udp" }, nodes: [node(1)] }, "mtu", /575/, /udp/);
    expectRefused({ mtu: 575, nodes: [node(1)] }, "mtu", /575/, /tapnet/);
    expectRefused({ mtu: 625, backend: { type: "vxlan" }, nodes: [node(1)] }, "mtu", /575/);
  });

  it("accepts an MTU that leaves pods exactly 576 bytes", () => {
    expect(checkClusterConfig({ mtu: 604, backend: { type: "udp" }, nodes: [node(1)] }).podMtu).toBe(576);
    expect(checkClusterConfig({ mtu: 576, nodes: [node(1)] }).podMtu).toBe(576);
    expect(checkClusterConfig({ mtu: 626, backend: { type: "vxlan" }, nodes: [node(1)] }).podMtu).toBe(576);
  });

  it("refuses an MTU that is not a whole number in range", () => {
    expectRefused({ mtu: 1500.5, nodes: [node(1)] }, "mtu", /whole number/);
    expectRefused({ mtu: "1500", nodes: [node(1)] }, "mtu", /whole number/);
    expectRefused({ mtu: 70000, nodes: [node(1)] }, "mtu", /whole number/, /65535/);
  });

  it("refuses a VNI on the udp backend", () => {
    expectRefused({ backend: { vni: 1 }, nodes: [node(1)] }, "backend.vni", /vxlan/);
    expectRefused({ backend: { type: "udp", vni: 7 }, nodes: [node(1)] }, "backend.vni", /vxlan/);
  });

  it("refuses a VNI outside 24 bits and a port outside 1..65535", () => {
    expectRefused({ backend: { type: "vxlan", vni: 0x1000000 }, nodes: [node(1)] }, "backend.vni", /16777215/);
    expectRefused({ backend: { type: "vxlan", port: 0 }, nodes: [node(1)] }, "backend.port", /whole number/);
    expectRefused({ backend: { type: "udp", port: 65536 }, nodes: [node(1)] }, "backend.port", /whole number/);
  });

  it.each([
    ["upper case", "Node1"],
    ["a leading hyphen", "-node"],
    ["a trailing hyphen", "node-"],
    ["an underscore", "node_1"],
    ["a dot", "node.1"],
    ["the empty string", ""],
    ["64 characters", "a".repeat(64)],
    ["a number", 1],
    ["nothing", undefined],
  ])("refuses a node name with %s", (_what, name) => {
    expectRefused({ nodes: [{ name, address: "192.168.56.11" }] }, "nodes[0].name", /lower-case/);
  });

  it("accepts a 63-character node name and a one-character one", () => {
    expect(checkClusterConfig({ nodes: [{ name: "a".repeat(63), address: "10.0.0.1" }, { name: "b", address: "10.0.0.2" }] }).nodes).toHaveLength(2);
  });

  it.each([
    ["three octets", "192.168.56"],
    ["an octet above 255", "192.168.56.256"],
    ["a leading zero", "192.168.056.11"],
    ["a prefix", "192.168.56.11/24"],
    ["a hostname", "node1.local"],
    ["a number", 3232249867],
    ["a list holding an address", ["192.168.56.11"]],
    ["nothing", undefined],
  ])("refuses a node address with %s", (_what, address) => {
    expectRefused({ nodes: [{ name: "node1", address }] }, "nodes[0].address", /not an IPv4 address/);
  });

  it("takes an empty or missing nodes list (nodes that join through etcd), refuses nodes that is not a list", () => {
    expect(checkClusterConfig({ nodes: [] }).nodes).toEqual([]);
    expect(checkClusterConfig({ clusterCidr: "10.244.0.0/16" }).nodes).toEqual([]);
    expectRefused({ nodes: { name: "node1", address: "10.0.0.1" } }, "nodes", /list/);
  });

  it("refuses a config that is not a mapping", () => {
    for (const raw of [null, undefined, "nodes", 42, [node(1)]]) {
      expect(refusal(raw).message, JSON.stringify(raw)).toMatch(/mapping/);
    }
  });

  it("refuses a node that is not a mapping, naming its index", () => {
    expectRefused({ nodes: [node(1), "node2"] }, "nodes[1]", /mapping/);
  });

  it("refuses when the cluster CIDR runs out: a /22 of /24s has room for 3 nodes, not 4", () => {
    expectRefused({ clusterCidr: "10.244.0.0/22", nodes: nodes(4) }, "nodes[3].podCidr", /no \/24 left/, /10\.244\.0\.0\/22/);
  });

  it("refuses when given pod CIDRs leave no room for the others", () => {
    expectRefused({ clusterCidr: "10.244.0.0/22", nodes: [node(1, { podCidr: "10.244.2.0/23" }), node(2), node(3)] }, "nodes[2].podCidr", /no \/24 left/);
  });
});

describe("boundaries of the accepted ranges", () => {
  it("accepts a /28 cluster CIDR (the smallest) with /30 node subnets, and refuses a /29 naming the prefix", () => {
    const c = checkClusterConfig({ clusterCidr: "10.244.0.0/28", nodeSubnetPrefix: 30, nodes: nodes(3) });
    expect(c.nodes.map((n) => formatCidr(n.podCidr))).toEqual(["10.244.0.4/30", "10.244.0.8/30", "10.244.0.12/30"]);
    expect(refusal({ clusterCidr: "10.244.0.0/29", nodeSubnetPrefix: 30, nodes: [node(1)] }).message).toBe("clusterCidr: /29 is too small for a cluster");
  });

  it("lets node subnets be as large as a /16 in a larger cluster CIDR, and no larger", () => {
    const c = checkClusterConfig({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodeSubnetPrefix: 16, nodes: [node(1)] });
    expect(formatCidr(c.nodes[0].podCidr)).toBe("10.1.0.0/16");
    expect(refusal({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodeSubnetPrefix: 15, nodes: [node(1)] }).message).toBe("nodeSubnetPrefix: must be a whole number from 16 to 30, not 15");
  });

  it("accepts a given /16 pod CIDR, the largest, and names the /15 it refuses", () => {
    const c = checkClusterConfig({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodes: [node(1, { podCidr: "10.1.0.0/16" })] });
    expect(c.nodes[0].podCidr).toEqual(cidr("10.1.0.0/16"));
    expect(refusal({ clusterCidr: "10.0.0.0/8", serviceCidr: "172.30.0.0/16", nodes: [node(1, { podCidr: "10.0.0.0/15" })] }).message)
      .toBe("nodes[0].podCidr: 10.0.0.0/15 is too large: a node's pod CIDR can be at most a /16");
  });

  it("refuses an MTU below 68 with the range in the message", () => {
    expect(refusal({ mtu: 67, nodes: [node(1)] }).message).toBe("mtu: must be a whole number from 68 to 65535, not 67");
    expect(checkClusterConfig({ mtu: 65535, nodes: [node(1)] }).podMtu).toBe(65535);
  });

  it("accepts port 1 and 65535 and VNI 0 and 16777215", () => {
    expect(checkClusterConfig({ backend: { type: "udp", port: 1 }, nodes: [node(1)] }).backend.port).toBe(1);
    expect(checkClusterConfig({ backend: { type: "vxlan", port: 65535, vni: 0 }, nodes: [node(1)] }).backend).toEqual({ type: "vxlan", port: 65535, vni: 0 });
    expect(checkClusterConfig({ backend: { type: "vxlan", vni: 0xffffff }, nodes: [node(1)] }).backend.vni).toBe(0xffffff);
  });
});

describe("refusal messages, word for word", () => {
  it.each([
    ["a config that is not a mapping", [node(1)], "the config must be a mapping (clusterCidr, backend, nodes, ...)"],
    ["an unknown top-level field", { nodez: [] }, "nodez: unknown field (expected one of: clusterCidr, serviceCidr, nodeSubnetPrefix, mtu, backend, nodes)"],
    ["an unknown backend field", { backend: { prot: 1 }, nodes: [node(1)] }, "backend.prot: unknown field (expected one of: type, port, vni, secret, keyFile, insecure)"],
    ["an unknown node field", { nodes: [node(1, { adress: "x" })] }, "nodes[0].adress: unknown field (expected one of: name, address, podCidr, vtepMac)"],
    ["a backend that is not a mapping", { backend: "udp", nodes: [node(1)] }, "backend: must be a mapping like { type: udp }"],
    ["an unknown backend type", { backend: { type: "wireguard" }, nodes: [node(1)] }, 'backend.type: unknown backend "wireguard" (known: tapnet, udp, vxlan)'],
    ["a VNI on udp", { backend: { type: "udp", vni: 7 }, nodes: [node(1)] }, "backend.vni: only the vxlan backend has a VNI"],
    ["a port out of range", { backend: { port: 0 }, nodes: [node(1)] }, "backend.port: must be a whole number from 1 to 65535, not 0"],
    ["a VNI out of range", { backend: { type: "vxlan", vni: -1 }, nodes: [node(1)] }, "backend.vni: must be a whole number from 0 to 16777215, not -1"],
    ["an MTU too small for vxlan", { mtu: 625, backend: { type: "vxlan" }, nodes: [node(1)] },
      "mtu: 625 leaves 575 bytes for pods after the vxlan backend's 50 bytes of headers; pods need at least 576"],
    ["nodes not a list", { nodes: "node1" }, "nodes: must be a list of nodes (or empty: nodes that join through etcd)"],
    ["a node that is not a mapping", { nodes: ["node1"] }, "nodes[0]: must be a mapping with name and address"],
    ["a bad node name", { nodes: [{ name: "Node1", address: "10.0.0.1" }] }, 'nodes[0].name: "Node1" must be lower-case letters, digits and \'-\', 1-63 long'],
    ["a bad node address", { nodes: [{ name: "a", address: "10.0.0" }] }, 'nodes[0].address: "10.0.0" is not an IPv4 address'],
    ["a pod CIDR outside the cluster", { nodes: [node(1, { podCidr: "10.245.0.0/24" })] }, "nodes[0].podCidr: 10.245.0.0/24 is outside clusterCidr 10.244.0.0/16"],
    ["a /31 pod CIDR", { nodes: [node(1, { podCidr: "10.244.1.0/31" })] },
      "nodes[0].podCidr: 10.244.1.0/31 is too small: a node needs a gateway and at least one pod (/30 or larger)"],
    ["a vtepMac that is not a MAC", { nodes: [node(1, { vtepMac: "xx" })] }, 'nodes[0].vtepMac: "xx" is not a MAC address'],
    ["a multicast vtepMac", { nodes: [node(1, { vtepMac: "01:00:5E:00:00:01" })] }, "nodes[0].vtepMac: 01:00:5E:00:00:01 is a multicast address"],
    ["a duplicate name", { nodes: [node(1), { name: "node1", address: "10.0.0.9" }] }, "nodes[1].name: node1 is also nodes[0].name"],
    ["a duplicate address", { nodes: [node(1), { name: "b", address: "192.168.56.11" }] }, "nodes[1].address: 192.168.56.11 is also nodes[0].address"],
    ["overlapping pod CIDRs", { nodes: [node(1, { podCidr: "10.244.1.0/24" }), node(2, { podCidr: "10.244.1.128/25" })] },
      "nodes[1].podCidr: 10.244.1.128/25 overlaps nodes[0].podCidr 10.244.1.0/24"],
    ["a full cluster CIDR", { clusterCidr: "10.244.0.0/22", nodes: nodes(4) },
      "nodes[3].podCidr: no /24 left in clusterCidr 10.244.0.0/22 (it holds 4, the first reserved); give a larger clusterCidr or a longer nodeSubnetPrefix"],
  ])("%s", (_what, raw, message) => {
    expect(refusal(raw).message).toBe(message);
  });

  // Object.hasOwn turns a key into a string, so ["udp"] would pass as "udp" without the type check.
  it("refuses a backend type that is a list holding a known name", () => {
    expect(refusal({ backend: { type: ["udp"] }, nodes: [node(1)] }).message).toMatch(/^backend\.type: unknown backend "udp"/);
  });

  it("a pod CIDR given as a number is refused as not a CIDR, not thrown", () => {
    expect(refusal({ nodes: [node(1, { podCidr: 24 })] }).message).toBe('nodes[0].podCidr: "24" is not an IPv4 CIDR like 10.244.0.0/16');
  });
});

describe("text input", () => {
  const yaml = `
# a two-node cluster
clusterCidr: 10.244.0.0/16
nodeSubnetPrefix: 24
mtu: 1500
backend: { type: vxlan, port: 8472, vni: 7 }
nodes:
  - { name: node1, address: 192.168.56.11, podCidr: 10.244.1.0/24 }
  - name: node2
    address: 192.168.56.12
    vtepMac: "02:00:00:00:00:02"
`;

  it("parses YAML", () => {
    const c = parseClusterConfig(yaml);
    expect(c.backend).toEqual({ type: "vxlan", port: 8472, vni: 7 });
    expect(c.nodes.map((n) => [n.name, n.address, formatCidr(n.podCidr), n.vtepMac])).toEqual([
      ["node1", ip("192.168.56.11"), "10.244.1.0/24", "0e:00:c0:a8:38:0b"],
      ["node2", ip("192.168.56.12"), "10.244.2.0/24", "02:00:00:00:00:02"],
    ]);
  });

  it("parses JSON, which is a subset of YAML, to the same config", () => {
    const json = JSON.stringify({
      clusterCidr: "10.244.0.0/16", nodeSubnetPrefix: 24, mtu: 1500, backend: { type: "vxlan", port: 8472, vni: 7 },
      nodes: [{ name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" }, { name: "node2", address: "192.168.56.12", vtepMac: "02:00:00:00:00:02" }],
    }, null, 2);
    expect(parseClusterConfig(json)).toEqual(parseClusterConfig(yaml));
  });

  it("refuses invalid YAML with a ConfigError naming the source", () => {
    for (const text of ["nodes: [\n  - a", "nodes:\n\t- name: a", "a: 1\na: 2\n"]) {
      let err: unknown;
      try { parseClusterConfig(text, "/etc/tapnet/cluster.yaml"); } catch (e) { err = e; }
      expect(err, JSON.stringify(text)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain("/etc/tapnet/cluster.yaml");
      expect((err as Error).message).toMatch(/not valid YAML or JSON/);
      expect((err as Error).message).not.toContain("\n");
    }
  });

  it("gives the parser's first line without its trailing colon, after the source (\"config\" by default)", () => {
    expect(() => parseClusterConfig("a: 1\na: 2\n")).toThrow(new ConfigError("config is not valid YAML or JSON: Map keys must be unique at line 2, column 1"));
    expect(() => parseClusterConfig("{", "c.yaml")).toThrow(new ConfigError("c.yaml is not valid YAML or JSON: Flow map must end with a } at line 1, column 2"));
  });

  it("keeps a colon inside the parser's message: only a trailing one is cut", () => {
    expect(() => parseClusterConfig("nodes: *pods:x")).toThrow(
      new ConfigError("config is not valid YAML or JSON: Unresolved alias (the anchor must be set before the alias): pods:x"),
    );
  });

  it("refuses an empty file as not a mapping", () => {
    expect(() => parseClusterConfig("")).toThrow(ConfigError);
    expect(() => parseClusterConfig("")).toThrow(/mapping/);
  });

  it("reports faults found after parsing with the field path", () => {
    expect(() => parseClusterConfig("nodes:\n  - name: node1\n    address: 192.168.56.300\n")).toThrow(/nodes\[0\]\.address/);
  });
});

describe("serviceCidr", () => {
  it("defaults to 10.96.0.0/12, as Kubernetes' service-cluster-ip-range does, and keeps one given", () => {
    expect(checkClusterConfig({ nodes: [node(1)] }).serviceCidr).toEqual(cidr("10.96.0.0/12"));
    expect(parseClusterConfig("serviceCidr: 172.20.0.0/16\nnodes: []\n").serviceCidr).toEqual(cidr("172.20.0.0/16"));
    expect(checkClusterConfig({ serviceCidr: "10.96.0.0/30", nodes: [] }).serviceCidr).toEqual(cidr("10.96.0.0/30"));
  });

  it("refuses one that is not a CIDR, has host bits, or is larger than /12 or smaller than /30", () => {
    expectRefused({ serviceCidr: "10.96.0.0", nodes: [] }, "serviceCidr", /not an IPv4 CIDR/);
    expectRefused({ serviceCidr: 42, nodes: [] }, "serviceCidr", /not an IPv4 CIDR/);
    expectRefused({ serviceCidr: "10.96.0.1/12", nodes: [] }, "serviceCidr", /host bits/);
    expectRefused({ serviceCidr: "10.0.0.0/8", nodes: [] }, "serviceCidr", /too large/);
    expectRefused({ serviceCidr: "10.96.0.0/31", nodes: [] }, "serviceCidr", /too small/);
  });

  it("refuses one that overlaps the cluster CIDR, either way round", () => {
    expectRefused({ serviceCidr: "10.244.128.0/24", nodes: [] }, "serviceCidr", /^serviceCidr: 10\.244\.128\.0\/24 overlaps clusterCidr 10\.244\.0\.0\/16$/);
    expectRefused({ clusterCidr: "10.96.16.0/20", nodes: [] }, "serviceCidr", /^serviceCidr: 10\.96\.0\.0\/12 overlaps clusterCidr 10\.96\.16\.0\/20 \(the default: give a serviceCidr outside it\)$/);
    expect(checkClusterConfig({ clusterCidr: "10.112.0.0/16", nodes: [] }).serviceCidr).toEqual(cidr("10.96.0.0/12")); // adjacent: 10.96-10.111
  });

  it("refuses one that holds a node's address, naming the node", () => {
    expectRefused({ nodes: [node(1), { name: "n2", address: "10.100.0.5" }] }, "serviceCidr", /^serviceCidr: 10\.96\.0\.0\/12 holds nodes\[1\]\.address 10\.100\.0\.5 \(the default/);
    expectRefused({ serviceCidr: "192.168.56.0/24", nodes: [node(1)] }, "serviceCidr", /^serviceCidr: 192\.168\.56\.0\/24 holds nodes\[0\]\.address 192\.168\.56\.11$/);
    expect(checkClusterConfig({ nodes: [{ name: "n1", address: "10.112.0.5" }] }).nodes).toHaveLength(1);
  });
});

describe("formatClusterConfig", () => {
  const roundTrip = (c: ClusterConfig) => parseClusterConfig(stringifyYaml(formatClusterConfig(c)));

  it("writes every default out", () => {
    const f = formatClusterConfig(checkClusterConfig({ nodes: [node(1)] }));
    expect(f).toEqual({
      clusterCidr: "10.244.0.0/16", serviceCidr: "10.96.0.0/12", nodeSubnetPrefix: 24, mtu: 1500, backend: { type: "tapnet", port: 8287 },
      nodes: [{ name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" }],
    });
  });

  it("writes the VNI and the VTEP MACs for vxlan", () => {
    const f = formatClusterConfig(checkClusterConfig({ backend: { type: "vxlan", vni: 9 }, nodes: [node(1)] }));
    expect(f.backend).toEqual({ type: "vxlan", port: 8472, vni: 9 });
    expect(f.nodes).toEqual([{ name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24", vtepMac: "0e:00:c0:a8:38:0b" }]);
  });

  it.each([
    ["defaults", { nodes: nodes(3) }],
    ["udp with a port and MTU", { mtu: 9000, backend: { type: "udp", port: 9999 }, nodes: nodes(2) }],
    ["vxlan with VNI and explicit VTEP MAC", { backend: { type: "vxlan", port: 4789, vni: 0xabcdef }, nodes: [node(1, { vtepMac: "02:00:00:00:00:01" }), node(2)] }],
    ["given and assigned pod CIDRs", { clusterCidr: "172.16.0.0/12", nodeSubnetPrefix: 20, nodes: [node(1), node(2, { podCidr: "172.16.16.0/20" }), node(3)] }],
    ["a service CIDR", { serviceCidr: "10.32.0.0/24", nodes: nodes(2) }],
  ])("round-trips: parse(format(c)) equals c (%s)", (_what, raw) => {
    const c = checkClusterConfig(raw);
    expect(roundTrip(c)).toEqual(c);
    expect(checkClusterConfig(JSON.parse(JSON.stringify(formatClusterConfig(c))))).toEqual(c);
  });

  // Once a bug (src/node/config.ts formatClusterConfig): on the udp backend an explicit vtepMac is
  // accepted by checkClusterConfig but left out of the formatted config, so parsing it back
  // derives 0e:00:... instead, and parse(format(c)) differs from c.
  it("round-trips an explicit vtepMac on the udp backend", () => {
    const c = checkClusterConfig({ nodes: [node(1, { vtepMac: "02:00:00:00:00:01" })] });
    expect(roundTrip(c)).toEqual(c);
  });

  it(`round-trips random vxlan configs (seed ${SEED})`, () => {
    const rnd = prng(SEED + 1);
    for (let run = 0; run < trials(100); run++) {
      const n = 1 + Math.floor(rnd() * 6);
      const raw = {
        clusterCidr: "10.200.0.0/16",
        nodeSubnetPrefix: 22 + Math.floor(rnd() * 5),
        mtu: 1000 + Math.floor(rnd() * 8000),
        backend: { type: "vxlan", port: 1 + Math.floor(rnd() * 65535), vni: Math.floor(rnd() * 0x1000000) },
        nodes: Array.from({ length: n }, (_, i) => node(i + 1, rnd() < 0.3 ? { vtepMac: `02:00:00:00:00:${(i + 1).toString(16).padStart(2, "0")}` } : {})),
      };
      const c = checkClusterConfig(raw);
      expect(roundTrip(c), `seed ${SEED + 1}, run ${run}: ${JSON.stringify(raw)}`).toEqual(c);
    }
  });
});

describe("readClusterConfig", () => {
  it("reads a file and checks it; a file it cannot read is a ConfigError naming it, with the reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "tapnet-config-test-"));
    try {
      const good = join(dir, "cluster.yaml");
      const text = "backend: { type: vxlan }\nnodes:\n  - { name: n1, address: 192.168.56.11 }\n";
      writeFileSync(good, text);
      expect(readClusterConfig(good)).toEqual(parseClusterConfig(text, good));
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, "nodes: 3\n");
      expect(() => readClusterConfig(bad)).toThrow(new ConfigError("nodes: must be a list of nodes (or empty: nodes that join through etcd)"));
      expect(() => readClusterConfig(join(dir, "none.yaml"))).toThrow(new ConfigError(`cannot read ${join(dir, "none.yaml")}: ENOENT`));
      expect(() => readClusterConfig(dir)).toThrow(new ConfigError(`cannot read ${dir}: EISDIR`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A host-gw node's commands: the bridge with the gateway address at the underlay's MTU, and a
// route to every other node's pod CIDR via that node's underlay address; nothing encapsulated.
import { describe, expect, it } from "vitest";
import { checkClusterConfig } from "../../src/node/config.ts";
import { hostGwNodeCommands } from "../../src/lab/host-gw-node.ts";

const config = checkClusterConfig({
  backend: { type: "vxlan" },
  nodes: [1, 2, 3].map((i) => ({ name: `node${i}`, address: `192.168.56.${10 + i}` })),
});

describe("hostGwNodeCommands", () => {
  it("routes the other nodes' pod CIDRs via their underlay addresses", () => {
    expect(hostGwNodeCommands(config, config.nodes[1], "eth0")).toEqual([
      "link add cni0 address 0a:58:0a:f4:02:01 type bridge", // the gateway's own MAC, which no pod's veth changes
      "link set cni0 mtu 1500 up",
      "addr add 10.244.2.1/24 dev cni0",
      "route replace 10.244.1.0/24 via 192.168.56.11 dev eth0",
      "route replace 10.244.3.0/24 via 192.168.56.13 dev eth0",
    ]);
  });

  it("makes no tunnel device and no neighbour entry", () => {
    for (const n of config.nodes) {
      const lines = hostGwNodeCommands(config, n, "ens3").join("\n");
      expect(lines).not.toMatch(/vxlan|neigh|flannel/);
      expect(lines).toContain("dev ens3");
    }
  });
});

// The lab's plan for its store: the options refused (with a message naming the flag), the
// config the switches get (every node on the file store, none on etcd), the journal's store
// record, and the exact `tapnet switch` arguments a node is started (and started again) with.
import { describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import {
  checkLabOptions, DEFAULT_LEASE_TTL, labConfig, labConfigFile, labStore, nodeAddress, podNetnsMade, switchArgs, type LabOptions, type LabState,
} from "../../src/lab/plan.ts";
import { endpoints, stoppedNodes } from "../../src/lab/check.ts";

const base: LabOptions = { nodes: 3, pods: 2, prefix: "lab-ht", backend: "tapnet", runtime: "node" };

describe("checkLabOptions with a store", () => {
  it("takes file (the default) and etcd in tapnet mode", () => {
    expect(checkLabOptions(base)).toBe("tapnet");
    expect(checkLabOptions({ ...base, store: "file" })).toBe("tapnet");
    expect(checkLabOptions({ ...base, store: "etcd", leaseTtl: 4 })).toBe("tapnet");
  });

  it("refuses an unknown store, naming the choices", () => {
    expect(() => checkLabOptions({ ...base, store: "consul" as never })).toThrow('--store must be one of file, etcd, not "consul"');
  });

  it("refuses etcd with plain Linux nodes, which lease nothing", () => {
    expect(() => checkLabOptions({ ...base, store: "etcd", mode: "host-gw" })).toThrow(/--store etcd is for --mode tapnet: with --mode host-gw/);
    expect(() => checkLabOptions({ ...base, store: "etcd", mode: "kernel-vxlan", backend: "vxlan" })).toThrow(/--store etcd is for --mode tapnet: with --mode kernel-vxlan/);
    expect(() => checkLabOptions({ ...base, store: "etcd", backend: "vxlan", kernelNode: 2 })).toThrow(/--store etcd cannot have a --kernel-node/);
  });

  it("takes a lease TTL of 2 to 3600 s, and only with etcd", () => {
    expect(checkLabOptions({ ...base, store: "etcd", leaseTtl: 2 })).toBe("tapnet");
    expect(checkLabOptions({ ...base, store: "etcd", leaseTtl: 3600 })).toBe("tapnet");
    for (const bad of [0, 1, 3601, 2.5, NaN]) expect(() => checkLabOptions({ ...base, store: "etcd", leaseTtl: bad })).toThrow("--lease-ttl must be 2 to 3600 seconds");
    expect(() => checkLabOptions({ ...base, leaseTtl: 10 })).toThrow("--lease-ttl is for --store etcd");
  });
});

describe("the config the switches get", () => {
  const config = labConfig(3, "tapnet");

  it("lists every node and its pod CIDR on the file store", () => {
    const file = parseYaml(toYaml(labConfigFile(config, "file")));
    expect(file.nodes).toEqual([
      { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" },
      { name: "node2", address: "192.168.56.12", podCidr: "10.244.2.0/24" },
      { name: "node3", address: "192.168.56.13", podCidr: "10.244.3.0/24" },
    ]);
  });

  it("lists no node, and so no pod CIDR, on etcd; the rest is the same", () => {
    const etcd = labConfigFile(config, "etcd");
    const file = labConfigFile(config, "file");
    expect(etcd.nodes).toEqual([]);
    expect(JSON.stringify(etcd)).not.toMatch(/podCidr|10\.244\.\d+\.0\/24/);
    expect({ ...etcd, nodes: undefined }).toEqual({ ...file, nodes: undefined });
    expect(etcd.clusterCidr).toBe("10.244.0.0/16");
  });

  it("numbers nodes' underlay addresses from .11, as lab up always has", () => {
    expect([1, 2, 16, 64].map(nodeAddress)).toEqual(["192.168.56.11", "192.168.56.12", "192.168.56.26", "192.168.56.74"]);
    expect(config.nodes.map((n) => n.address)).toEqual([0xc0a8380b, 0xc0a8380c, 0xc0a8380d]);
  });
});

describe("the journal's store", () => {
  it("file: a directory inside the lab's, no etcd", () => {
    expect(labStore("lab-ht", "file")).toEqual({ type: "file", url: "file:/run/tapnet/lab-ht/store" });
  });

  it("etcd: its URL on the underlay, the TTL, no pid yet, its data and log in the lab's directory", () => {
    expect(labStore("lab-ht", "etcd", 4)).toEqual({
      type: "etcd", url: "etcd://192.168.56.2:2379", leaseTtl: 4, etcdPid: 0,
      etcdDataDir: "/run/tapnet/lab-ht/etcd", etcdLog: "/run/tapnet/lab-ht/etcd.log",
    });
    expect(labStore("lab-ht", "etcd").leaseTtl).toBe(DEFAULT_LEASE_TTL);
  });
});

function state(store: LabState["store"]): LabState {
  return {
    prefix: "lab-ht", backend: "tapnet", mode: "tapnet", runtime: "node", createdAt: "", namespaces: [], pods: [], kernelNodes: [],
    nodes: [], ...(store ? { store } : {}),
  };
}
const node = { name: "node4", address: "192.168.56.14", control: "/run/tapnet/lab-ht/node4.sock" };

describe("switchArgs", () => {
  it("file store: the config names the node; the store, the cluster (the prefix) and the pods' namespace prefix", () => {
    expect(switchArgs(state(labStore("lab-ht", "file")), { ...node, cpu: 1 })).toEqual([
      "switch", "--config", "/run/tapnet/lab-ht/cluster.yaml", "--node", "node4", "--control", "/run/tapnet/lab-ht/node4.sock", "--cpu", "1",
      "--store", "file:/run/tapnet/lab-ht/store", "--cluster", "lab-ht", "--netns-prefix", "lab-ht-",
    ]);
  });

  it("etcd store: also the node's address (the config has none) and the lease TTL", () => {
    expect(switchArgs(state(labStore("lab-ht", "etcd", 4)), node)).toEqual([
      "switch", "--config", "/run/tapnet/lab-ht/cluster.yaml", "--node", "node4", "--control", "/run/tapnet/lab-ht/node4.sock",
      "--store", "etcd://192.168.56.2:2379", "--cluster", "lab-ht", "--netns-prefix", "lab-ht-", "--address", "192.168.56.14", "--lease-ttl", "4",
    ]);
  });

  it("a journal from before stores: no store flags, as its switches were started", () => {
    expect(switchArgs(state(undefined), node)).toEqual(["switch", "--config", "/run/tapnet/lab-ht/cluster.yaml", "--node", "node4", "--control", "/run/tapnet/lab-ht/node4.sock"]);
  });
});

describe("lab check and stopped nodes", () => {
  const s = state(labStore("lab-ht", "etcd", 4));
  const mk = (i: number, pid: number) => ({
    name: `node${i}`, netns: `lab-ht-node${i}`, address: nodeAddress(i), podCidr: `10.244.${i}.0/24`, gateway: `10.244.${i}.1`, pid, control: "", log: "",
  });
  s.nodes = [mk(1, 100), mk(2, 0), mk(3, 300)];
  s.pods = [1, 2, 3].map((i) => ({ name: `node${i}-pod1`, netns: `lab-ht-node${i}-pod1`, node: `node${i}`, ip: `10.244.${i}.2`, mac: "", ifname: "eth0" }));

  it("leaves out a node whose switch is stopped, and its pods", () => {
    expect(stoppedNodes(s)).toEqual(["node2"]);
    const e = endpoints(s);
    expect(e.nodes.map((n) => n.name)).toEqual(["node1", "node3"]);
    expect(e.pods.map((p) => p.name)).toEqual(["node1-pod1", "node3-pod1"]);
  });

  it("leaves out the outside when node 1, its way there, is stopped", () => {
    const withOutside = { ...s, outside: { netns: "lab-ht-outside", address: "203.0.113.2" } };
    expect(endpoints(withOutside).outside?.ip).toBe("203.0.113.2");
    const node1Stopped = { ...withOutside, nodes: [{ ...s.nodes[0], pid: 0 }, ...s.nodes.slice(1)] };
    expect(endpoints(node1Stopped).outside).toBeUndefined();
    expect(endpoints(node1Stopped).pods.map((p) => p.name)).toEqual(["node3-pod1"]);
  });

  it("does not count a plain Linux node (pid 0 too) as stopped", () => {
    const k = { ...s, kernelNodes: ["node2"] };
    expect(stoppedNodes(k)).toEqual([]);
    const e = endpoints(k);
    expect(e.nodes.map((n) => n.name)).toEqual(["node1", "node2", "node3"]);
    // its own traffic to remote pods leaves from flannel.1, holding its CIDR's network address
    expect(e.nodes[1].sources).toEqual(["192.168.56.12", "10.244.2.1", "10.244.2.0"]);
    expect(e.nodes[2].sources).toEqual(["192.168.56.13", "10.244.3.1"]);
  });
});

describe("podNetnsMade: the pods' namespaces a lab's switches made, from their logs", () => {
  it("takes every namespace a switch made for a pod, once; not one it was given; survives a line cut short", () => {
    const log1 = [
      '{"level":"info","msg":"switch ready","node":"node1"}',
      '{"level":"info","msg":"pod attached","pod":"blue/web","netns":"lab-blue-web","ownsNetns":true}',
      '{"level":"info","msg":"pod attached","pod":"mine","netns":"users-own","ownsNetns":false}',
      '{"level":"info","msg":"pod attached","pod":"blue/web","netns":"lab-blue-web","ownsNetns":true}',
      '{"level":"info","msg":"pod attached","pod":"x","netns":"lab-x"',
    ].join("\n");
    const log2 = '{"level":"info","msg":"pod attached","pod":"p","netns":"lab-default-p","ownsNetns":true}\n';
    expect(podNetnsMade([log1, log2, ""])).toEqual(["lab-blue-web", "lab-default-p"]);
  });
});

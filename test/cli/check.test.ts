/**
 * `tapnet check`'s plan: which endpoints a node checks, from its switch's status and the
 * store's Pods, and its --to option; which of them it moves TCP to without starting a server. The checks themselves (ping, iperf3) are lab/check.ts's,
 * run for real by the boot test (test/vm/boot.test.ts) on booted machines.
 */
import { describe, expect, it } from "vitest";
import { CHECK_PORT, checkPlan, toOption } from "../../src/cli/commands/check.ts";
import { IPERF_PORT } from "../../src/lab/check.ts";
import type { NodeStatusAnswer } from "../../src/cli/commands/status.ts";
import type { Pod } from "../../src/cluster/objects.ts";
import { UsageError } from "../../src/cli/args.ts";
import { inNetns } from "../../src/node/exec.ts";

function status(): NodeStatusAnswer {
  return {
    node: { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24", gateway: "10.244.1.1", gatewayMac: "", podMtu: 1500, backend: "tapnet", pid: 1, runtime: "node" },
    pods: [
      { name: "a", namespace: "default", netns: "tapnet-default-a", ip: "10.244.1.2", mac: "", ifname: "eth0", port: 1 },
      { name: "web", namespace: "default", netns: "/run/netns/cni-42", ip: "10.244.1.3", mac: "", ifname: "eth0", port: -1 },
      { name: "odd", namespace: "default", netns: "/var/run/other/ns", ip: "10.244.1.4", mac: "", ifname: "eth0", port: -1 },
    ],
    nodes: [
      { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" },
      { name: "node2", address: "192.168.56.12", podCidr: "10.244.2.0/24" },
      { name: "node3", address: "192.168.56.13", podCidr: "10.244.3.0/25" },
    ],
    ports: [], fdb: [], counters: {},
  };
}

function pod(name: string, nodeName: string | undefined, ip: string | undefined, labels?: Record<string, string>): Pod {
  return { apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", ...(labels ? { labels } : {}) }, spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: "c" }] }, ...(ip ? { status: { podIP: ip } } : {}) } as Pod;
}

describe("tapnet check's plan", () => {
  it("checks the node and its pods, CNI pods by their namespace's name, and leaves out a namespace ip netns cannot enter", () => {
    const plan = checkPlan(status(), [], []);
    expect(plan.node).toEqual({ name: "node1", netns: "", ip: "192.168.56.11", sources: ["192.168.56.11", "10.244.1.1"] });
    expect(plan.pods).toEqual([
      { name: "a", netns: "tapnet-default-a", ip: "10.244.1.2", sources: ["10.244.1.2"] },
      { name: "web", netns: "cni-42", ip: "10.244.1.3", sources: ["10.244.1.3"] },
    ]);
    expect(plan.skipped).toEqual(["odd"]);
  });

  it("reaches every other node at its address and its gateway, other nodes' pods from the store, then --to, each once", () => {
    const plan = checkPlan(status(), [
      pod("b", "node2", "10.244.2.2"),
      pod("mine", "node1", "10.244.1.2"), // this node's own: checked as a pod already
      pod("pending", "node3", undefined), // no address yet
      pod("unscheduled", undefined, "10.244.9.9"),
    ], ["10.244.2.3", "10.244.2.2", "192.168.56.12"]);
    expect(plan.peers.map((e) => [e.name, e.ip])).toEqual([["node2", "192.168.56.12"], ["node3", "192.168.56.13"]]);
    expect(plan.remote.map((e) => [e.name, e.ip])).toEqual([
      ["node2 gateway", "10.244.2.1"], ["node3 gateway", "10.244.3.1"],
      ["node2/b", "10.244.2.2"],
      ["10.244.2.3", "10.244.2.3"],
    ]);
    expect([...plan.peers, ...plan.remote].every((e) => e.netns === "")).toBe(true);
  });

  it("moves TCP to other nodes' demo pods (app=tapnet-demo) and to --to's addresses, which serve iperf3; not to other pods, gateways or nodes", () => {
    const plan = checkPlan(status(), [
      pod("node2-demo1", "node2", "10.244.2.2", { app: "tapnet-demo" }),
      pod("web", "node2", "10.244.2.4", { app: "web" }),
      pod("plain", "node3", "10.244.3.2"),
      pod("node1-demo1", "node1", "10.244.1.2", { app: "tapnet-demo" }), // this node's: TCP to it is checked from here already
      pod("node3-demo1", "node3", undefined, { app: "tapnet-demo" }), // no address yet
    ], ["10.244.3.9", "10.244.2.2", "10.244.2.1"]);
    expect(plan.servers.map((e) => [e.name, e.ip])).toEqual([["node2/node2-demo1", "10.244.2.2"], ["10.244.3.9", "10.244.3.9"]]);
    // Each server is also pinged, once.
    expect(plan.remote.map((e) => e.ip)).toEqual(["10.244.2.1", "10.244.3.1", "10.244.2.2", "10.244.2.4", "10.244.3.2", "10.244.3.9"]);
    expect(plan.servers.every((e) => plan.remote.includes(e))).toBe(true);
    expect(checkPlan(status(), [], []).servers).toEqual([]);
  });

  it("starts its own servers on another port than the demo pods' iperf3", () => {
    expect(IPERF_PORT).toBe(5201);
    expect(CHECK_PORT).not.toBe(IPERF_PORT);
  });

  it("--to takes a list of IPv4 addresses, and names the one that is not", () => {
    expect(toOption(undefined)).toEqual([]);
    expect(toOption("10.244.2.2, 10.244.2.3,10.244.2.2")).toEqual(["10.244.2.2", "10.244.2.3"]);
    expect(() => toOption(",")).toThrow(new UsageError("--to needs addresses, as 10.244.2.2,10.244.2.3"));
    expect(() => toOption("10.244.2.2,pod-b")).toThrow(new UsageError('--to: "pod-b" is not an IPv4 address'));
  });

  it("the node's own checks run in this process's namespace (netns \"\")", async () => {
    expect(await inNetns("", "echo", ["here"])).toBe("here\n");
  });
});

// The CNI host's logic that needs no devices: checking cni.add's parameters, naming the store's Pod, its shape.
import { describe, expect, it } from "vitest";
import { CniError, kubeName, parseAddRequest, podNameCandidates, podObject } from "../../src/node/cni-host.ts";

const ok = { containerId: "3f2a9c0d1e4b5a6c7d8e9f00", netns: "/proc/123/ns/net", ifname: "eth0" };

describe("parseAddRequest", () => {
  it("takes the contract's fields, empty optional ones as absent", () => {
    expect(parseAddRequest({ ...ok, podName: "web", podNamespace: "team-a" })).toEqual({ ...ok, podName: "web", podNamespace: "team-a" });
    expect(parseAddRequest({ ...ok, podName: "", podNamespace: "" })).toEqual(ok);
    expect(parseAddRequest({ ...ok, containerId: "a_b.c-d" }).containerId).toBe("a_b.c-d");
  });

  it.each([
    [{ ...ok, containerId: "" }, /^containerId "" must start with a letter or digit/],
    [{ ...ok, containerId: "-x" }, /^containerId "-x" must start/],
    [{ ...ok, containerId: "a b" }, /^containerId "a b" must start/],
    [{ ...ok, containerId: 7 }, /^containerId 7 must start/],
    [{ ...ok, netns: "netns-1" }, /^netns "netns-1" must be the absolute path of a network namespace$/],
    [{ ...ok, netns: undefined }, /^netns undefined must be the absolute path/],
    [{ ...ok, ifname: "" }, /^interface name "" must be 1-15 characters$/],
    [{ ...ok, ifname: "a-very-long-name0" }, /must be 1-15 characters/],
    [{ ...ok, ifname: "et/h" }, /has a character Linux refuses/],
    [{ ...ok, podName: 3 }, /^podName must be a string$/],
    [{ ...ok, podNamespace: "Team_A" }, /^podNamespace "Team_A" must be lower-case letters, digits and '-', 1-63 long$/],
  ])("refuses %j", (p, msg) => {
    expect(() => parseAddRequest(p as Record<string, unknown>)).toThrow(CniError);
    expect(() => parseAddRequest(p as Record<string, unknown>)).toThrow(msg);
  });
});

describe("the store Pod's name", () => {
  it("kubeName: lower case, other characters '-', no leading or trailing '-' or '.'", () => {
    expect(kubeName("My_App")).toBe("my-app");
    expect(kubeName("_x.")).toBe("x");
    expect(kubeName("___")).toBe("");
    expect(kubeName("a".repeat(300))).toHaveLength(253);
  });

  it("the pod's name, then with the container id's 12 first, then the id alone; the id alone without a name", () => {
    expect(podNameCandidates("web", ok.containerId)).toEqual(["web", "web-3f2a9c0d1e4b", "3f2a9c0d1e4b"]);
    expect(podNameCandidates("Box_1", "ABC_def")).toEqual(["box-1", "box-1-abc-def", "abc-def"]);
    expect(podNameCandidates(undefined, ok.containerId)).toEqual(["3f2a9c0d1e4b"]);
    expect(podNameCandidates("__", "c1")).toEqual(["c1"]);
    for (const n of podNameCandidates("x".repeat(253), ok.containerId)) expect(n.length).toBeLessThanOrEqual(253);
  });

  it("podObject: the node, the address, the annotations a restart needs", () => {
    const a = { containerId: "c1", ifname: "eth0", netns: "/run/netns/x", inode: 4026532247, name: "web", namespace: "team-a", ip: "10.244.1.5", mac: "0a:58:0a:f4:01:05" };
    expect(podObject(a, "node1", "192.168.56.11")).toEqual({
      apiVersion: "v1", kind: "Pod",
      metadata: {
        name: "web", namespace: "team-a",
        annotations: {
          "tapnet.dev/source": "cni", "tapnet.dev/container-id": "c1", "tapnet.dev/netns": "/run/netns/x",
          "tapnet.dev/netns-inode": "4026532247", "tapnet.dev/ifname": "eth0",
        },
      },
      spec: { nodeName: "node1", containers: [{ name: "pause" }] },
      status: { phase: "Running", podIP: "10.244.1.5", podIPs: [{ ip: "10.244.1.5" }], hostIP: "192.168.56.11" },
    });
  });
});

/**
 * kubectl-shaped output: ages as apimachinery's HumanDuration rounds them, the table of every
 * kind (golden text, on a fixed clock), -A and -o wide columns, JSON and YAML documents, and the
 * one-line outcomes of apply and delete.
 */
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { KubeObject } from "../../src/cluster/objects.ts";
import {
  applyLine, deleteLine, formatAge, formatColumns, formatObjects, formatObjectTable, formatSelector, kubectlName, noResourcesMessage, notFoundMessage,
} from "../../src/cluster/print.ts";

const NOW = Date.parse("2024-05-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();
const meta = (name: string, ageSeconds: number, more: Record<string, unknown> = {}) => ({ name, creationTimestamp: ago(ageSeconds), uid: `uid-${name}`, resourceVersion: "7", ...more });

describe("formatAge", () => {
  it.each([
    [-5_000, "<invalid>"], [-1_500, "0s"], [-500, "0s"], [0, "0s"], [999, "0s"], [45_000, "45s"], [119_999, "119s"],
    [120_000, "2m"], [200_000, "3m20s"], [599_000, "9m59s"], [600_000, "10m"], [179 * 60_000 + 59_000, "179m"],
    [3 * 3600_000, "3h"], [5 * 3600_000 + 10 * 60_000, "5h10m"], [8 * 3600_000, "8h"], [47 * 3600_000 + 59 * 60_000, "47h"],
    [48 * 3600_000, "2d"], [(3 * 24 + 4) * 3600_000, "3d4h"], [8 * 24 * 3600_000, "8d"], [729 * 24 * 3600_000, "729d"],
    [730 * 24 * 3600_000, "2y"], [(3 * 365 + 40) * 24 * 3600_000, "3y40d"], [9 * 365 * 24 * 3600_000 + 5 * 24 * 3600_000, "9y"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });
});

describe("formatColumns", () => {
  it("pads every column but the last to its widest cell plus three spaces, and shows empty cells as <none>", () => {
    expect(formatColumns(["NAME", "IP", "AGE"], [["a", "", "1s"], ["longer-name", "10.0.0.1", "3d"]])).toBe(
      "NAME          IP         AGE\n" +
      "a             <none>     1s\n" +
      "longer-name   10.0.0.1   3d",
    );
  });
});

const pods: KubeObject[] = [
  {
    apiVersion: "v1", kind: "Pod", metadata: meta("web", 45, { namespace: "blue", annotations: { "tapnet.dev/netns": "tapnet-node1-web" } }),
    spec: { nodeName: "node1", containers: [{ name: "c" }] }, status: { phase: "Running", podIP: "10.244.1.5" },
  },
  { apiVersion: "v1", kind: "Pod", metadata: meta("pending-one", 200, { namespace: "default" }), spec: { containers: [{ name: "c" }] } },
];

describe("formatObjectTable", () => {
  it("prints pods as NAME STATUS AGE, with a missing phase as Pending", () => {
    expect(formatObjectTable("Pod", pods, { now: NOW })).toBe(
      "NAME          STATUS    AGE\n" +
      "web           Running   45s\n" +
      "pending-one   Pending   3m20s",
    );
  });

  it("adds IP NODE NETNS after AGE with wide, and leads with NAMESPACE with -A", () => {
    expect(formatObjectTable("Pod", pods, { now: NOW, wide: true, allNamespaces: true })).toBe(
      "NAMESPACE   NAME          STATUS    AGE     IP           NODE     NETNS\n" +
      "blue        web           Running   45s     10.244.1.5   node1    tapnet-node1-web\n" +
      "default     pending-one   Pending   3m20s   <none>       <none>   <none>",
    );
  });

  it("prints nodes with Ready from their conditions, their address and pod CIDR; -A adds nothing to a cluster-wide kind", () => {
    const nodes: KubeObject[] = [
      { apiVersion: "v1", kind: "Node", metadata: meta("node1", 5 * 3600 + 600, { annotations: { "tapnet.dev/vtep-mac": "02:00:00:00:00:01" } }), spec: { podCIDR: "10.244.1.0/24" },
        status: { addresses: [{ type: "Hostname", address: "n1" }, { type: "InternalIP", address: "192.168.56.11" }], conditions: [{ type: "Ready", status: "True" }] } },
      { apiVersion: "v1", kind: "Node", metadata: meta("node2", 3 * 86400), spec: {}, status: { conditions: [{ type: "Ready", status: "Unknown" }] } },
      { apiVersion: "v1", kind: "Node", metadata: meta("node3", 60), spec: { podCIDRs: ["10.244.3.0/24"] } },
    ];
    expect(formatObjectTable("Node", nodes, { now: NOW, allNamespaces: true, wide: true })).toBe(
      "NAME    STATUS     ADDRESS         POD-CIDR        AGE     VTEP-MAC\n" +
      "node1   Ready      192.168.56.11   10.244.1.0/24   5h10m   02:00:00:00:00:01\n" +
      "node2   NotReady   <none>          <none>          3d      <none>\n" +
      "node3   Unknown    <none>          10.244.3.0/24   60s     <none>",
    );
  });

  it("prints services with their ports as kubectl does (port[:nodePort]/protocol) and the selector when wide", () => {
    const svcs: KubeObject[] = [
      { apiVersion: "v1", kind: "Service", metadata: meta("web", 86400 * 30, { namespace: "default" }),
        spec: { type: "NodePort", clusterIP: "10.96.0.10", selector: { tier: "front", app: "web" }, sessionAffinity: "None",
          ports: [{ port: 80, targetPort: 8080, protocol: "TCP", nodePort: 30080 }, { port: 53, targetPort: 53, protocol: "UDP" }] } },
      { apiVersion: "v1", kind: "Service", metadata: meta("bare", 10, { namespace: "default" }), spec: { type: "ClusterIP", sessionAffinity: "None", ports: [{ port: 443, targetPort: 443, protocol: "TCP" }] } },
    ];
    expect(formatObjectTable("Service", svcs, { now: NOW, wide: true })).toBe(
      "NAME   TYPE        CLUSTER-IP   PORT(S)               AGE   SELECTOR\n" +
      "web    NodePort    10.96.0.10   80:30080/TCP,53/UDP   30d   app=web,tier=front\n" +
      "bare   ClusterIP   <none>       443/TCP               10s   <none>",
    );
  });

  it("prints endpoint slices with at most three ports and addresses, then how many more", () => {
    const slices: KubeObject[] = [
      { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: meta("web-abc", 90, { namespace: "default" }), addressType: "IPv4",
        endpoints: [{ addresses: ["10.244.1.2"] }, { addresses: ["10.244.1.3", "10.244.2.2"] }, { addresses: ["10.244.2.3", "10.244.3.9"] }],
        ports: [{ port: 80 }, { name: "metrics" }, {}, { port: 9000 }] } as KubeObject,
      { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: meta("empty", 90, { namespace: "default" }), addressType: "IPv4", endpoints: [] } as KubeObject,
    ];
    expect(formatObjectTable("EndpointSlice", slices, { now: NOW })).toBe(
      "NAME      ADDRESSTYPE   PORTS                      ENDPOINTS                                      AGE\n" +
      "web-abc   IPv4          80,metrics,* + 1 more...   10.244.1.2,10.244.1.3,10.244.2.2 + 2 more...   90s\n" +
      "empty     IPv4          <unset>                    <unset>                                        90s",
    );
  });

  it("prints network policies with their pod selector and namespaces with their status", () => {
    const pols: KubeObject[] = [
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: meta("deny-all", 30, { namespace: "default" }), spec: { podSelector: {}, policyTypes: ["Ingress"] } },
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: meta("web", 30, { namespace: "default" }),
        spec: { podSelector: { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "In", values: ["b", "a"] }, { key: "canary", operator: "DoesNotExist" }] }, policyTypes: ["Ingress"] } },
    ];
    expect(formatObjectTable("NetworkPolicy", pols, { now: NOW })).toBe(
      "NAME       POD-SELECTOR                    AGE\n" +
      "deny-all   <none>                          30s\n" +
      "web        app=web,!canary,tier in (a,b)   30s",
    );
    expect(formatObjectTable("Namespace", [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "blue" } }], { now: NOW })).toBe(
      "NAME   STATUS   AGE\n" +
      "blue   Active   <unknown>",
    );
  });
});

describe("formatSelector", () => {
  it("shows each operator as kubectl does, sorted by key", () => {
    expect(formatSelector({ matchExpressions: [{ key: "z", operator: "Exists" }, { key: "b", operator: "NotIn", values: ["x"] }] })).toBe("b notin (x),z");
    expect(formatSelector(undefined)).toBe("<none>");
  });
});

describe("formatObjects", () => {
  it("prints one object asked for by name as itself, in JSON indented by four as kubectl does", () => {
    const text = formatObjects([pods[0]], "json", true);
    expect(JSON.parse(text)).toEqual(pods[0]);
    expect(text.split("\n")[1]).toBe('    "apiVersion": "v1",');
  });

  it("prints a list, or one object not asked for by name, as a v1 List in JSON and YAML", () => {
    const list = { apiVersion: "v1", kind: "List", items: [pods[0]], metadata: { resourceVersion: "" } };
    expect(JSON.parse(formatObjects([pods[0]], "json", false))).toEqual(list);
    expect(parse(formatObjects([pods[0]], "yaml", false))).toEqual(list);
    expect(formatObjects([], "yaml", false)).toBe('apiVersion: v1\nkind: List\nitems: []\nmetadata:\n  resourceVersion: ""');
    expect(formatObjects([pods[0]], "yaml", true).split("\n").slice(0, 3)).toEqual(["apiVersion: v1", "kind: Pod", "metadata:"]);
  });
});

describe("messages", () => {
  it("names resources as kubectl does, with their API group", () => {
    expect(kubectlName("Pod")).toBe("pod");
    expect(kubectlName("NetworkPolicy")).toBe("networkpolicy.networking.k8s.io");
    expect(kubectlName("EndpointSlice", undefined, true)).toBe("endpointslices.discovery.k8s.io");
  });

  it("says what apply did in kubectl's words", () => {
    expect(applyLine({ ref: { kind: "Namespace", name: "blue" }, apiVersion: "v1", outcome: "created" })).toBe("namespace/blue created");
    expect(applyLine({ ref: { kind: "Pod", namespace: "blue", name: "web" }, apiVersion: "v1", outcome: "configured" })).toBe("pod/web configured");
    expect(applyLine({ ref: { kind: "NetworkPolicy", namespace: "a", name: "deny" }, apiVersion: "networking.k8s.io/v1", outcome: "unchanged" })).toBe("networkpolicy.networking.k8s.io/deny unchanged");
    expect(applyLine({ ref: { kind: "Pod", namespace: "blue", name: "web" }, apiVersion: "v1", outcome: "failed", error: "store down" })).toBe("error: pod/web -n blue: store down");
  });

  it("says what delete did in kubectl's words", () => {
    expect(deleteLine({ ref: { kind: "Pod", namespace: "default", name: "web" }, outcome: "deleted" })).toBe('pod "web" deleted');
    expect(deleteLine({ ref: { kind: "Pod", namespace: "default", name: "web" }, outcome: "not found" })).toBe('Error from server (NotFound): pods "web" not found');
    expect(deleteLine({ ref: { kind: "Service", namespace: "default", name: "x" }, outcome: "failed", error: "boom" })).toBe('error: deleting service "x": boom');
    expect(notFoundMessage({ kind: "NetworkPolicy", name: "deny" })).toBe('Error from server (NotFound): networkpolicies.networking.k8s.io "deny" not found');
  });

  it("says nothing was found with the namespace for a namespaced kind, without one for all namespaces or cluster-wide kinds", () => {
    expect(noResourcesMessage("Pod", "blue")).toBe("No resources found in blue namespace.");
    expect(noResourcesMessage("Pod", undefined)).toBe("No resources found");
    expect(noResourcesMessage("Node", undefined)).toBe("No resources found");
  });
});

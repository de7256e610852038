/**
 * buildNetworkView: the view of a small cluster, whole (a golden object written out by hand):
 * what is kept, what is left out (pods without an address, headless and unallocated Services,
 * bad addresses), the order of every list, endpoints and affinity; and that it never fails on
 * objects missing what it looks for, and gives equal views for the same objects in any order.
 */
import { describe, expect, it } from "vitest";
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { buildNetworkView, PROTO, type ClusterObjects, type NetworkView } from "../../src/cluster/network-view.ts";
import type { EndpointSlice, Namespace, NetworkPolicy, Node, Pod, Service } from "../../src/cluster/objects.ts";
import { prng } from "../support/random.ts";

const SERVICE_CIDR = parseCidr("10.96.0.0/12") as Cidr;

const ns = (name: string, labels?: Record<string, string>): Namespace => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, ...(labels ? { labels } : {}) } });

function node(name: string, internal: string | undefined, podCIDR: string | undefined): Node {
  const addresses = [{ type: "Hostname" as const, address: name }, ...(internal ? [{ type: "InternalIP" as const, address: internal }] : [])];
  return { apiVersion: "v1", kind: "Node", metadata: { name }, spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {}, status: { addresses } };
}

function pod(namespace: string, name: string, nodeName: string, status: Pod["status"], labels: Record<string, string>, ports: Pod["spec"]["containers"][0]["ports"] = []): Pod {
  return { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels }, spec: { nodeName, containers: [{ name: "c", ports }] }, status };
}

function service(namespace: string, name: string, spec: Partial<Service["spec"]> & Record<string, unknown>): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { type: "ClusterIP", sessionAffinity: "None", ports: [{ protocol: "TCP", port: 80, targetPort: 80 }], ...spec },
  } as Service;
}

function policy(namespace: string, name: string): NetworkPolicy {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec: { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Ingress"], ingress: [] } };
}

const slice: EndpointSlice = {
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: "db-1", namespace: "prod", labels: { "kubernetes.io/service-name": "db" } },
  addressType: "IPv4",
  endpoints: [{ addresses: ["192.168.50.100"] }, { addresses: ["192.168.50.101"], conditions: { ready: false } }],
  ports: [{ name: "", protocol: "TCP", port: 5432 }],
};

const policies = [policy("prod", "b-allow"), policy("default", "deny-all"), policy("prod", "a-allow")];

function cluster(): ClusterObjects {
  const http = [{ name: "http", containerPort: 8080, protocol: "TCP" as const }, { containerPort: 9090, protocol: "TCP" as const }, { name: "dns", containerPort: 5353, protocol: "UDP" as const }];
  return {
    namespaces: [ns("prod", { env: "prod" }), ns("default")],
    nodes: [node("node2", "192.168.50.12", "10.244.2.0/24"), node("node1", "192.168.50.11", "10.244.1.0/24"), node("node3", undefined, undefined)],
    pods: [
      pod("prod", "web-b", "node2", { phase: "Running", podIP: "10.244.2.2", podIPs: [{ ip: "10.244.2.2" }] }, { app: "web" }, http),
      pod("prod", "web-a", "node1", { phase: "Running", podIP: "10.244.1.2" }, { app: "web", tier: "front" }, http),
      pod("prod", "web-new", "node1", { phase: "Pending" }, { app: "web" }, http),
      pod("prod", "web-bad", "node1", { phase: "Running", podIP: "10.244.1.999" }, { app: "web" }, http),
      pod("default", "client", "node3", { phase: "Running", podIP: "10.244.3.2" }, {}),
    ],
    services: [
      service("prod", "web", {
        type: "NodePort",
        selector: { app: "web" },
        clusterIP: "10.96.0.50",
        sessionAffinity: "ClientIP",
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        ports: [
          { name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 },
          { name: "dns", protocol: "UDP", port: 53, targetPort: "dns", nodePort: 30053 },
        ],
      }),
      service("prod", "db", { clusterIP: "10.96.0.40", ports: [{ protocol: "TCP", port: 5432, targetPort: 5432 }] }),
      service("prod", "headless", { clusterIP: "None", selector: { app: "web" }, ports: [] }),
      service("prod", "unallocated", { selector: { app: "web" } }),
      service("default", "kubernetes", { clusterIP: "10.96.0.1", sessionAffinity: "ClientIP", ports: [{ name: "https", protocol: "TCP", port: 443, targetPort: 6443 }] }),
    ],
    endpointSlices: [slice],
    policies,
  };
}

const GOLDEN: NetworkView = {
  serviceCidr: { network: 0x0a600000, prefix: 12 },
  namespaces: [
    { name: "default", labels: {} },
    { name: "prod", labels: { env: "prod" } },
  ],
  pods: [
    { ip: 0x0af40302, namespace: "default", name: "client", labels: {}, node: "node3", ports: [] },
    {
      ip: 0x0af40102, namespace: "prod", name: "web-a", labels: { app: "web", tier: "front" }, node: "node1",
      ports: [{ name: "http", protocol: 6, port: 8080 }, { name: "dns", protocol: 17, port: 5353 }],
    },
    {
      ip: 0x0af40202, namespace: "prod", name: "web-b", labels: { app: "web" }, node: "node2",
      ports: [{ name: "http", protocol: 6, port: 8080 }, { name: "dns", protocol: 17, port: 5353 }],
    },
  ],
  nodes: [
    { name: "node1", addresses: [0xc0a8320b, 0x0af40101] },
    { name: "node2", addresses: [0xc0a8320c, 0x0af40201] },
    { name: "node3", addresses: [] },
  ],
  policies: [policies[1], policies[2], policies[0]],
  services: [
    {
      namespace: "default", name: "kubernetes", clusterIp: 0x0a600001, affinitySeconds: 10800,
      ports: [{ name: "https", protocol: 6, port: 443, endpoints: [] }],
    },
    {
      namespace: "prod", name: "db", clusterIp: 0x0a600028,
      ports: [{ name: "", protocol: 6, port: 5432, endpoints: [{ ip: 0xc0a83264, port: 5432 }] }],
    },
    {
      namespace: "prod", name: "web", clusterIp: 0x0a600032, affinitySeconds: 60,
      ports: [
        { name: "http", protocol: 6, port: 80, nodePort: 30080, endpoints: [{ ip: 0x0af40102, port: 8080 }, { ip: 0x0af40202, port: 8080 }] },
        { name: "dns", protocol: 17, port: 53, nodePort: 30053, endpoints: [{ ip: 0x0af40102, port: 5353 }, { ip: 0x0af40202, port: 5353 }] },
      ],
    },
  ],
};

describe("buildNetworkView", () => {
  it("gives the view of a small cluster", () => {
    expect(buildNetworkView(cluster(), SERVICE_CIDR)).toEqual(GOLDEN);
    expect(PROTO).toEqual({ TCP: 6, UDP: 17, SCTP: 132 });
  });

  it("gives the same view for the same objects in any order, and leaves its input alone", () => {
    const rand = prng(0x71e3);
    const shuffle = <T>(xs: T[]): T[] => xs.map((x) => [rand(), x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
    const before = JSON.stringify(cluster());
    for (let t = 0; t < 20; t++) {
      const c = cluster();
      const mixed: ClusterObjects = {
        namespaces: shuffle(c.namespaces), nodes: shuffle(c.nodes), pods: shuffle(c.pods), services: shuffle(c.services),
        endpointSlices: shuffle(c.endpointSlices), policies: shuffle(c.policies),
      };
      expect(buildNetworkView(mixed, SERVICE_CIDR)).toEqual(GOLDEN);
      expect(JSON.stringify(c)).toBe(before);
    }
  });

  it("crosses to another thread as it is (structured clone)", () => {
    const view = buildNetworkView(cluster(), SERVICE_CIDR);
    expect(structuredClone(view)).toEqual(view);
  });

  it("is empty for an empty cluster, and does not fail on objects missing what it looks for", () => {
    const none: ClusterObjects = { namespaces: [], pods: [], services: [], endpointSlices: [], policies: [], nodes: [] };
    expect(buildNetworkView(none, parseCidr("10.32.0.0/16") as Cidr)).toEqual({
      serviceCidr: { network: 0x0a200000, prefix: 16 }, namespaces: [], pods: [], nodes: [], policies: [], services: [],
    });
    const sparse: ClusterObjects = {
      ...none,
      nodes: [{ apiVersion: "v1", kind: "Node", metadata: { name: "n" }, spec: { podCIDR: "not a cidr" }, status: { addresses: [{ type: "InternalIP", address: "nope" }] } }],
      pods: [{ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c" }] }, status: { phase: "Running", podIP: "10.244.1.7" } }],
      services: [{ apiVersion: "v1", kind: "Service", metadata: { name: "s" }, spec: { type: "ClusterIP", sessionAffinity: "None", clusterIP: "10.96.0.9", ports: [{ protocol: "TCP", port: 80, targetPort: 80 }] } }],
    };
    expect(buildNetworkView(sparse, SERVICE_CIDR)).toMatchObject({
      nodes: [{ name: "n", addresses: [] }],
      pods: [{ ip: 0x0af40107, namespace: "default", name: "p", labels: {}, node: "", ports: [] }],
      services: [{ namespace: "default", name: "s", clusterIp: 0x0a600009, ports: [{ name: "", protocol: 6, port: 80, endpoints: [] }] }],
    });
  });
});

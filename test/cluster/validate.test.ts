/**
 * validateObject: every kind's faults refused with the exact message naming the field, the API
 * server's defaults filled, server-owned fields dropped; and the label selector matcher against
 * a naive model.
 */
import { describe, expect, it } from "vitest";
import type { LabelSelector, LabelSelectorRequirement } from "../../src/cluster/objects.ts";
import { formatSelector, matchesLabels, matchesSelector } from "../../src/cluster/selectors.ts";
import { ManifestError, validateObject } from "../../src/cluster/validate.ts";
import { prng, trials } from "../support/random.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0x5e1ec7);

type Raw = Record<string, any>;

function pod(extra: Raw = {}): Raw {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web", labels: { app: "web" } },
    spec: { nodeName: "node1", containers: [{ name: "c", ports: [{ name: "http", containerPort: 80 }, { containerPort: 53, protocol: "UDP" }] }] },
    ...extra,
  };
}

function service(spec: Raw = {}): Raw {
  return { apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }], ...spec } };
}

function policy(spec: Raw = {}): Raw {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "p" }, spec };
}

function slice(extra: Raw = {}): Raw {
  return { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "web-1" }, addressType: "IPv4", endpoints: [{ addresses: ["10.244.1.2"] }], ...extra };
}

function node(spec: Raw = {}, meta: Raw = {}): Raw {
  return { apiVersion: "v1", kind: "Node", metadata: { name: "node1", ...meta }, spec };
}

/** The lines `raw` is refused with (where = "t"); fails if it is accepted. */
function refusal(raw: unknown): string[] {
  try {
    validateObject(raw, "t");
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    expect((e as ManifestError).message).toBe((e as ManifestError).problems.join("\n"));
    return (e as ManifestError).problems;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

/** `raw` with `edit` applied to a deep copy. */
function edited(raw: Raw, edit: (r: Raw) => void): Raw {
  const copy = structuredClone(raw);
  edit(copy);
  return copy;
}

describe("validateObject refuses, naming the field", () => {
  const cases: [string, unknown, string][] = [
    ["an unknown field, with a near name", edited(pod(), (r) => (r.spec.containers[0].portz = [])), 't: spec.containers[0].portz: unknown field (did you mean "ports"?)'],
    ["an unknown field", edited(pod(), (r) => (r.spec.dnsConfig = {})), "t: spec.dnsConfig: unknown field"],
    ["a port out of range", edited(pod(), (r) => (r.spec.containers[0].ports[1].containerPort = 70000)), "t: spec.containers[0].ports[1].containerPort: must be 1-65535, not 70000"],
    ["a port that is not a number", edited(pod(), (r) => (r.spec.containers[0].ports[0].containerPort = "80")), 't: spec.containers[0].ports[0].containerPort: must be a whole number, not "80"'],
    ["a lower-case protocol", edited(pod(), (r) => (r.spec.containers[0].ports[1].protocol = "udp")), 't: spec.containers[0].ports[1].protocol: must be one of TCP, UDP, SCTP, not "udp" (did you mean "UDP"?)'],
    ["the wrong apiVersion", { ...pod(), apiVersion: "apps/v1" }, 't: apiVersion: must be "v1" for a Pod, not "apps/v1"'],
    ["a missing apiVersion", { ...pod(), apiVersion: undefined }, "t: apiVersion: required field missing"],
    ["an unknown kind", { ...pod(), kind: "Deployment" }, 't: kind: unknown kind "Deployment" (tapnet knows Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)'],
    ["a kind in the wrong case", { ...pod(), kind: "pod" }, 't: kind: unknown kind "pod" (did you mean "Pod"?)'],
    ["a missing kind", { ...pod(), kind: undefined }, "t: kind: required field missing (one of Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)"],
    ["a list for an object", [pod()], "t: must be a mapping with apiVersion, kind and metadata, not a list"],
    ["a missing name", edited(pod(), (r) => delete r.metadata.name), "t: metadata.name: required field missing"],
    ["generateName", edited(pod(), (r) => ((r.metadata.generateName = "web-"), delete r.metadata.name)), "t: metadata.name: required field missing\nt: metadata.generateName: tapnet needs every object named: set metadata.name (generateName is not supported)"],
    ["a pod name with capitals", edited(pod(), (r) => (r.metadata.name = "Web")), `t: metadata.name: "Web" must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`],
    ["a service name starting with a digit", edited(service(), (r) => (r.metadata.name = "1web")), `t: metadata.name: "1web" must be lower-case letters, digits and '-', starting with a letter and ending with a letter or digit`],
    ["a namespace name with a dot", { apiVersion: "v1", kind: "Namespace", metadata: { name: "a.b" } }, `t: metadata.name: "a.b" must be lower-case letters, digits and '-', starting and ending with a letter or digit`],
    ["a namespace name too long", edited(pod(), (r) => (r.metadata.namespace = "n".repeat(64))), `t: metadata.namespace: "${"n".repeat(64)}" is too long: at most 63 characters`],
    ["a namespace on a Node", node({}, { namespace: "default" }), "t: metadata.namespace: a Node is not namespaced: remove metadata.namespace"],
    ["finalizers", edited(pod(), (r) => (r.metadata.finalizers = ["x"])), "t: metadata.finalizers: unknown field"],
    ["ownerReferences", edited(pod(), (r) => (r.metadata.ownerReferences = [])), "t: metadata.ownerReferences: unknown field"],
    ["a boolean label value", edited(pod(), (r) => (r.metadata.labels.canary = true)), 't: metadata.labels.canary: must be a string, not true (quote it: "true")'],
    ["a bad label value", edited(pod(), (r) => (r.metadata.labels["app.kubernetes.io/name"] = "-web")), `t: metadata.labels["app.kubernetes.io/name"]: label value "-web" must be empty or letters, digits, '-', '_' and '.', starting and ending with a letter or digit`],
    ["a label key with two slashes", edited(pod(), (r) => (r.metadata.labels["a/b/c"] = "x")), `t: metadata.labels["a/b/c"]: key "a/b/c" may contain at most one '/'`],
    ["a label key too long", edited(pod(), (r) => (r.metadata.labels["k".repeat(64)] = "x")), `t: metadata.labels.${"k".repeat(64)}: key "${"k".repeat(64)}": the name part must be 1-63 characters`],
    ["annotations over 256 KiB", edited(pod(), (r) => (r.metadata.annotations = { a: "x".repeat(262144) })), "t: metadata.annotations: total 262145 bytes; the limit is 262144"],
    ["no containers", edited(pod(), (r) => (r.spec.containers = [])), "t: spec.containers: must have at least one item"],
    ["containers left out", edited(pod(), (r) => delete r.spec.containers), "t: spec.containers: required field missing"],
    ["a container without a name", edited(pod(), (r) => delete r.spec.containers[0].name), "t: spec.containers[0].name: required field missing"],
    ["two containers of one name", edited(pod(), (r) => r.spec.containers.push({ name: "c" })), 't: spec.containers[1].name: container name "c" is already used by spec.containers[0]'],
    ["two ports of one name", edited(pod(), (r) => (r.spec.containers[0].ports[1].name = "http")), 't: spec.containers[0].ports[1].name: port name "http" is already used by spec.containers[0].ports[0]'],
    ["a port name too long", edited(pod(), (r) => (r.spec.containers[0].ports[0].name = "a-very-long-name")), 't: spec.containers[0].ports[0].name: port name "a-very-long-name" must be 1-15 characters'],
    ["a port name without a letter", edited(pod(), (r) => (r.spec.containers[0].ports[0].name = "8080")), 't: spec.containers[0].ports[0].name: port name "8080" must contain at least one letter'],
    ["a port name with --", edited(pod(), (r) => (r.spec.containers[0].ports[0].name = "a--b")), `t: spec.containers[0].ports[0].name: port name "a--b" must not start or end with '-' or contain "--"`],
    ["hostNetwork", edited(pod(), (r) => (r.spec.hostNetwork = true)), "t: spec.hostNetwork: tapnet gives every pod its own network namespace; hostNetwork pods are not supported"],
    ["a bad pod IP in status", pod({ status: { podIP: "10.244.1.300" } }), 't: status.podIP: "10.244.1.300" is not an IPv4 address like 10.244.1.5'],
    ["a node podCIDR with host bits", node({ podCIDR: "10.244.1.1/24" }), 't: spec.podCIDR: "10.244.1.1/24" has host bits set (did you mean 10.244.1.0/24?)'],
    ["a node podCIDR that is no CIDR", node({ podCIDR: "10.244.1.0" }), 't: spec.podCIDR: "10.244.1.0" is not an IPv4 CIDR like 10.244.0.0/16'],
    ["podCIDRs against podCIDR", node({ podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.2.0/24"] }), 't: spec.podCIDRs[0]: must be the same as spec.podCIDR ("10.244.1.0/24"), not "10.244.2.0/24"'],
    ["a node InternalIP that is not an address", { ...node(), status: { addresses: [{ type: "InternalIP", address: "node1" }] } }, 't: status.addresses[0].address: "node1" is not an IPv4 address like 10.244.1.5'],
    ["a bad clusterIP", service({ clusterIP: "10.96.0.300" }), 't: spec.clusterIP: "10.96.0.300" is not an IPv4 address or "None"'],
    ["a LoadBalancer Service", service({ type: "LoadBalancer" }), 't: spec.type: must be one of ClusterIP, NodePort, not "LoadBalancer" (tapnet has no LoadBalancer or ExternalName Services)'],
    ["a numeric string targetPort", service({ ports: [{ port: 80, targetPort: "8080" }] }), 't: spec.ports[0].targetPort: port name "8080" must contain at least one letter; or give a port number 1-65535'],
    ["a targetPort of 0", service({ ports: [{ port: 80, targetPort: 0 }] }), "t: spec.ports[0].targetPort: must be 1-65535, not 0"],
    ["a Service without ports", service({ ports: [] }), "t: spec.ports: must have at least one port (only a headless Service, clusterIP None, may have none)"],
    ["a Service with ports left out", service({ ports: undefined }), "t: spec.ports: required field missing"],
    ["two unnamed Service ports", service({ ports: [{ port: 80 }, { name: "b", port: 81 }] }), "t: spec.ports[0].name: required when a Service has more than one port"],
    ["one Service port twice", service({ ports: [{ name: "a", port: 80 }, { name: "b", port: 80 }] }), "t: spec.ports[1]: port 80/TCP is already used by spec.ports[0]"],
    ["a nodePort on a ClusterIP Service", service({ ports: [{ port: 80, nodePort: 30080 }] }), "t: spec.ports[0].nodePort: only a NodePort Service has node ports (spec.type is ClusterIP)"],
    ["a nodePort out of range", service({ type: "NodePort", ports: [{ port: 80, nodePort: 80 }] }), "t: spec.ports[0].nodePort: must be 30000-32767, not 80"],
    ["a headless NodePort Service", service({ type: "NodePort", clusterIP: "None" }), "t: spec.clusterIP: a NodePort Service cannot be headless (clusterIP None)"],
    ["IPv6 families", service({ ipFamilies: ["IPv6"] }), 't: spec.ipFamilies[0]: must be "IPv4", not "IPv6" (tapnet is IPv4 only)'],
    ["an empty peer", policy({ ingress: [{ from: [{}] }] }), "t: spec.ingress[0].from[0]: must have a podSelector, a namespaceSelector or an ipBlock"],
    ["ipBlock with a selector", policy({ egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }] }), "t: spec.egress[0].to[0].ipBlock: cannot be given with podSelector or namespaceSelector in the same peer"],
    ["an except outside cidr", policy({ ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.1.0.0/24"] } }] }] }), "t: spec.ingress[0].from[0].ipBlock.except[0]: 10.1.0.0/24 must be strictly inside cidr 10.0.0.0/16"],
    ["an except equal to cidr", policy({ ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.0.0/16"] } }] }] }), "t: spec.ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/16 must be strictly inside cidr 10.0.0.0/16"],
    ["an ipBlock without cidr", policy({ ingress: [{ from: [{ ipBlock: {} }] }] }), "t: spec.ingress[0].from[0].ipBlock.cidr: required field missing"],
    ["a bad operator", policy({ podSelector: { matchExpressions: [{ key: "app", operator: "in", values: ["a"] }] } }), 't: spec.podSelector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist, not "in" (did you mean "In"?)'],
    ["In without values", policy({ podSelector: { matchExpressions: [{ key: "app", operator: "In" }] } }), "t: spec.podSelector.matchExpressions[0].values: must have at least one value for operator In"],
    ["Exists with values", policy({ podSelector: { matchExpressions: [{ key: "app", operator: "Exists", values: ["a"] }] } }), "t: spec.podSelector.matchExpressions[0].values: must be empty for operator Exists"],
    ["an endPort with a named port", policy({ ingress: [{ ports: [{ port: "http", endPort: 90 }] }] }), "t: spec.ingress[0].ports[0].endPort: needs a numbered port (a port range cannot start at a named port)"],
    ["an endPort below port", policy({ ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }), "t: spec.ingress[0].ports[0].endPort: must be at least port (90), not 80"],
    ["a policyType twice", policy({ policyTypes: ["Egress", "Egress"] }), 't: spec.policyTypes[1]: "Egress" is listed twice'],
    ["a NetworkPolicy without spec", { ...policy(), spec: undefined }, "t: spec: required field missing"],
    ["an IPv6 EndpointSlice", slice({ addressType: "IPv6" }), 't: addressType: must be "IPv4", not "IPv6" (tapnet is IPv4 only)'],
    ["an endpoint without addresses", slice({ endpoints: [{ addresses: [] }] }), "t: endpoints[0].addresses: must have at least one item"],
    ["an endpoint with a bad address", slice({ endpoints: [{ addresses: ["10.1.2"] }] }), 't: endpoints[0].addresses[0]: "10.1.2" is not an IPv4 address like 10.244.1.5'],
    ["two slice ports of one name", slice({ ports: [{ name: "a", port: 1 }, { name: "a", port: 2 }] }), 't: ports[1].name: port name "a" is already used by ports[0]'],
    ["a spec on an EndpointSlice", slice({ spec: {} }), "t: spec: unknown field"],
  ];
  for (const [what, raw, message] of cases) {
    it(what, () => expect(refusal(raw).join("\n")).toBe(message));
  }

  it("reports every fault of an object, not only the first", () => {
    const raw = edited(pod(), (r) => {
      r.metadata.labels.tier = 3;
      r.spec.containers[0].ports[0].containerPort = 0;
      r.spec.containers[0].imagePullPolicy = "Sometimes";
      r.spec.extra = 1;
    });
    expect(refusal(raw)).toEqual([
      't: metadata.labels.tier: must be a string, not 3 (quote it: "3")',
      "t: spec.extra: unknown field",
      "t: spec.containers[0].imagePullPolicy: must be one of Always, IfNotPresent, Never, not \"Sometimes\"",
      "t: spec.containers[0].ports[0].containerPort: must be 1-65535, not 0",
    ]);
  });
});

describe("validateObject fills the API server's defaults", () => {
  it("a Pod: namespace default, container port protocol TCP", () => {
    const p = validateObject(pod(), "t");
    expect(p).toEqual({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web", namespace: "default", labels: { app: "web" } },
      spec: { nodeName: "node1", containers: [{ name: "c", ports: [{ name: "http", containerPort: 80, protocol: "TCP" }, { containerPort: 53, protocol: "UDP" }] }] },
    });
  });

  it("a Service: type ClusterIP, sessionAffinity None, protocol TCP, targetPort = port", () => {
    expect(validateObject(service({ ports: [{ port: 8080 }] }), "t").spec).toEqual({
      type: "ClusterIP", selector: { app: "web" }, ports: [{ protocol: "TCP", port: 8080, targetPort: 8080 }], sessionAffinity: "None",
    });
    const s = validateObject(service({ clusterIP: "10.96.0.10", ports: [{ name: "dns", port: 53, protocol: "UDP", targetPort: "dns" }] }), "t");
    expect(s.spec).toEqual({
      type: "ClusterIP", selector: { app: "web" }, clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"],
      ports: [{ name: "dns", protocol: "UDP", port: 53, targetPort: "dns" }], sessionAffinity: "None",
    });
    // "" is the same as leaving it out; a headless Service may have no ports.
    expect((validateObject(service({ clusterIP: "" }), "t").spec as Raw).clusterIP).toBeUndefined();
    expect(validateObject(service({ clusterIP: "None", ports: undefined }), "t").spec).toEqual({
      type: "ClusterIP", selector: { app: "web" }, clusterIP: "None", clusterIPs: ["None"], ports: [], sessionAffinity: "None",
    });
    expect((validateObject(service({ clusterIPs: ["10.96.0.11"] }), "t").spec as Raw).clusterIP).toBe("10.96.0.11");
  });

  it("a NetworkPolicy: podSelector {}, policyTypes from egress, port protocol TCP", () => {
    expect(validateObject(policy({}), "t").spec).toEqual({ podSelector: {}, policyTypes: ["Ingress"] });
    expect(validateObject(policy({ egress: [] }), "t").spec).toEqual({ podSelector: {}, policyTypes: ["Ingress"], egress: [] });
    expect(validateObject(policy({ egress: [{}] }), "t").spec).toEqual({ podSelector: {}, policyTypes: ["Ingress", "Egress"], egress: [{}] });
    expect(validateObject(policy({ policyTypes: [], egress: [{}] }), "t").spec).toEqual({ podSelector: {}, policyTypes: ["Ingress", "Egress"], egress: [{}] });
    expect(validateObject(policy({ policyTypes: ["Egress"], ingress: [{ ports: [{ port: 80 }] }] }), "t").spec).toEqual({
      podSelector: {}, policyTypes: ["Egress"], ingress: [{ ports: [{ protocol: "TCP", port: 80 }] }],
    });
  });

  it("an EndpointSlice: port name \"\" and protocol TCP", () => {
    expect(validateObject(slice({ ports: [{ port: 80 }] }), "t")).toEqual({ ...slice(), metadata: { name: "web-1", namespace: "default" }, ports: [{ name: "", protocol: "TCP", port: 80 }] });
  });

  it("a Node: spec {} when left out, podCIDR and podCIDRs kept in step", () => {
    expect(validateObject({ apiVersion: "v1", kind: "Node", metadata: { name: "n1" } }, "t")).toEqual({ apiVersion: "v1", kind: "Node", metadata: { name: "n1" }, spec: {} });
    expect(validateObject(node({ podCIDR: "10.244.1.0/24" }), "t").spec).toEqual({ podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] });
    expect(validateObject(node({ podCIDRs: ["10.244.1.0/24"] }), "t").spec).toEqual({ podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] });
  });

  it("drops the fields the server owns and the status of kinds tapnet writes none for; null is absent", () => {
    const meta = { name: "web", namespace: "", uid: "x", resourceVersion: "7", creationTimestamp: "2024-01-01T00:00:00Z", generation: 2, managedFields: [], labels: null };
    expect(validateObject(service({}), "t").metadata).toEqual({ name: "web", namespace: "default" });
    expect(validateObject({ ...service(), metadata: meta, status: { loadBalancer: {} } }, "t")).toEqual(validateObject(service(), "t"));
    const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: "shop", namespace: "" }, spec: { finalizers: ["kubernetes"] }, status: { phase: "Active" } };
    expect(validateObject(ns, "t")).toEqual({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    const status = { phase: "Running", podIP: "10.244.1.2", podIPs: [{ ip: "10.244.1.2" }], hostIP: "192.168.56.11" };
    expect(validateObject(pod({ status }), "t").status).toEqual(status);
  });

  it("does not change the object it is given", () => {
    const raw = service({ ports: [{ port: 80 }] });
    const copy = structuredClone(raw);
    validateObject(raw, "t");
    expect(raw).toEqual(copy);
  });
});

describe("label selectors", () => {
  it("follow Kubernetes' rules on examples", () => {
    const labels = { app: "web", tier: "front" };
    expect(matchesSelector({}, labels)).toBe(true);
    expect(matchesSelector({}, {})).toBe(true);
    expect(matchesLabels({}, undefined)).toBe(true);
    expect(matchesLabels({ app: "web" }, labels)).toBe(true);
    expect(matchesLabels({ app: "web", tier: "back" }, labels)).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] }, labels)).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] }, labels)).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] }, labels)).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: "tier", operator: "Exists" }] }, labels)).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] }, labels)).toBe(false);
    expect(matchesLabels({ toString: "x" }, {})).toBe(false);
    expect(formatSelector({ matchLabels: { app: "web" }, matchExpressions: [{ key: "t", operator: "In", values: ["b", "a"] }, { key: "x", operator: "DoesNotExist" }] })).toBe("app=web,t in (a,b),!x");
    expect(formatSelector({})).toBe("<none>");
  });

  /** The naive model: labels as a list of "key=value" strings, each rule a search of it. */
  function naive(sel: LabelSelector, labels: Record<string, string>): boolean {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const hasKey = (k: string): boolean => pairs.some((p) => p.startsWith(`${k}=`));
    const hasPair = (k: string, vs: string[]): boolean => vs.some((v) => pairs.includes(`${k}=${v}`));
    for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (!pairs.includes(`${k}=${v}`)) return false;
    for (const r of sel.matchExpressions ?? []) {
      const ok = { In: hasPair(r.key, r.values ?? []), NotIn: !hasPair(r.key, r.values ?? []), Exists: hasKey(r.key), DoesNotExist: !hasKey(r.key) }[r.operator];
      if (!ok) return false;
    }
    return true;
  }

  it("agree with a naive model on random selectors and labels", () => {
    const rand = prng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const keys = ["app", "tier", "env", "example.com/team"];
    const values = ["a", "b", "c", ""];
    const some = (xs: string[], max: number): string[] => Array.from({ length: Math.floor(rand() * (max + 1)) }, () => pick(xs));
    let matched = 0;
    const n = trials(5000);
    for (let t = 0; t < n; t++) {
      const labels: Record<string, string> = {};
      for (const k of some(keys, 4)) labels[k] = pick(values);
      const sel: LabelSelector = {};
      if (rand() < 0.5) sel.matchLabels = Object.fromEntries(some(keys, 2).map((k) => [k, pick(values)]));
      if (rand() < 0.7) {
        sel.matchExpressions = some(keys, 3).map((key): LabelSelectorRequirement => {
          const operator = pick(["In", "NotIn", "Exists", "DoesNotExist"] as const);
          return operator === "In" || operator === "NotIn" ? { key, operator, values: [pick(values), ...some(values, 2)] } : { key, operator };
        });
      }
      const want = naive(sel, labels);
      expect(matchesSelector(sel, labels), JSON.stringify({ sel, labels })).toBe(want);
      if (!sel.matchExpressions) expect(matchesLabels(sel.matchLabels ?? {}, labels)).toBe(want);
      if (want) matched++;
    }
    // Both answers happen often: the model is not trivially true or false.
    expect(matched).toBeGreaterThan(n / 10);
    expect(matched).toBeLessThan(n - n / 10);
  });
});

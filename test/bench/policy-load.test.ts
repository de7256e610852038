// The bench's policy load: its manifest (counts, every object valid as `tapnet apply -f` reads
// it, the same bytes for the same lab), and, applied to a store holding the lab's pods as
// `lab up` records them, what the policy engine decides: every flow the bench measures allowed
// by a rule, the idle pod and other traffic denied.
import { describe, expect, it } from "vitest";
import { applyObjects } from "../../src/cluster/apply.ts";
import { parseManifests, validateObject } from "../../src/cluster/manifest.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { buildNetworkView, PROTO } from "../../src/cluster/network-view.ts";
import type { KubeObject, NetworkPolicy, Service } from "../../src/cluster/objects.ts";
import { PolicyEngine, Verdict } from "../../src/cluster/policy.ts";
import { ObjectStore } from "../../src/cluster/store.ts";
import { parseCidr, type Cidr, cidrContains } from "../../src/wire/cidr.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";
import { BenchError } from "../../src/bench/figures.ts";
import { BENCH_PORTS, policyLoad, type LoadPods } from "../../src/bench/policy-load.ts";

const cidr = (s: string) => parseCidr(s) as Cidr;
const CLUSTER = cidr("10.244.0.0/16");
const SERVICES = cidr("10.96.0.0/12");
const opts = { clusterCidr: CLUSTER, serviceCidr: SERVICES };

// The bench lab: 2 nodes with 2 pods each, as `lab up` numbers them.
const pod = (node: number, j: number) => ({ name: `node${node}-pod${j}`, node: `node${node}`, ip: `10.244.${node}.${j + 1}`, netns: `b-node${node}-pod${j}` });
const pods: LoadPods = { client: pod(1, 1), servers: [pod(2, 1), pod(1, 2)], idle: [pod(2, 2)] };
const ip = (s: string) => parseIpv4Address(s)!;

const ofKind = (objects: KubeObject[], kind: string) => objects.filter((o) => o.kind === kind);

describe("the policy load's manifest", () => {
  it("has the namespace, the lab's 4 pods, 100 Services and 100 NetworkPolicies, each valid as apply reads it", () => {
    const { manifest, objects } = policyLoad(pods, opts);
    expect(objects.map((o) => o.kind).slice(0, 5)).toEqual(["Namespace", "Pod", "Pod", "Pod", "Pod"]);
    expect(ofKind(objects, "Service")).toHaveLength(100);
    expect(ofKind(objects, "NetworkPolicy")).toHaveLength(100);
    expect(objects).toHaveLength(205);
    // what `tapnet apply -f` of the manifest gives, and checked again (the switch checks what it is sent)
    expect(parseManifests(manifest, "load.yaml")).toEqual(objects);
    objects.forEach((o, i) => expect(validateObject(JSON.parse(JSON.stringify(o)), `objects[${i}]`)).toEqual(o));
    expect(manifest.startsWith("# tapnet bench's policy load: 100 Services and 100 NetworkPolicies over the lab's pods\n")).toBe(true);
  });

  it("is the same, byte for byte, for the same lab; other addresses change it", () => {
    expect(policyLoad(pods, opts).manifest).toBe(policyLoad(structuredClone(pods), opts).manifest);
    const moved = { ...pods, servers: [{ ...pods.servers[0], ip: "10.244.2.9" }, pods.servers[1]] };
    expect(policyLoad(moved, opts).manifest).not.toBe(policyLoad(pods, opts).manifest);
  });

  it("takes other counts, and refuses counts out of range", () => {
    const { objects } = policyLoad(pods, { ...opts, services: 7, policies: 13 });
    expect([ofKind(objects, "Service").length, ofKind(objects, "NetworkPolicy").length]).toEqual([7, 13]);
    expect(() => policyLoad(pods, { ...opts, policies: 1001 })).toThrow(/policies must be 0 to 1000, not 1001/);
    expect(() => policyLoad(pods, { ...opts, services: 1.5 })).toThrow(BenchError);
    expect(() => policyLoad({ ...pods, servers: [] }, opts)).toThrow(/at least one server/);
    expect(() => policyLoad({ ...pods, idle: [{ ...pods.idle[0], ip: "10.244.2" }] }, opts)).toThrow(/node2-pod2: "10.244.2" is not an IPv4 address/);
  });

  it("gives every Service its own ClusterIP in the service CIDR, a few of them NodePorts", () => {
    const services = ofKind(policyLoad(pods, opts).objects, "Service") as Service[];
    const ips = services.map((s) => s.spec.clusterIP!);
    expect(new Set(ips).size).toBe(100);
    expect(ips[0]).toBe("10.96.100.1");
    for (const a of ips) expect(cidrContains(SERVICES, ip(a))).toBe(true);
    expect(services.filter((s) => s.spec.type === "NodePort").map((s) => s.spec.ports[0].nodePort)).toEqual([30001, 30021, 30041, 30061, 30081]);
    expect(services.filter((s) => s.spec.sessionAffinity === "ClientIP")).toHaveLength(13);
  });

  it("uses every kind of peer and port: selectors with expressions, namespaces, ipBlocks with except, named ports, ranges", () => {
    const policies = ofKind(policyLoad(pods, opts).objects, "NetworkPolicy") as NetworkPolicy[];
    const json = JSON.stringify(policies);
    for (const s of ['"namespaceSelector":{}', '"operator":"NotIn"', '"operator":"In"', '"operator":"Exists"', '"except":["10.244.255.0/24"]', '"cidr":"10.244.2.2/32"', '"port":"iperf-udp"', '"endPort":5301']) expect(json.includes(s), s).toBe(true);
    expect(policies.filter((p) => !p.spec.ingress?.length && !p.spec.egress?.length)).toHaveLength(10); // the default denies
    // no except holds a pod of the lab
    const excepts = policies.flatMap((p) => (p.spec.ingress ?? []).flatMap((r) => r.from ?? []).flatMap((peer) => peer.ipBlock?.except ?? []));
    expect(excepts.length).toBe(10);
    for (const e of excepts) for (const p of [pods.client, ...pods.servers, ...pods.idle]) expect(cidrContains(cidr(e), ip(p.ip))).toBe(false);
  });
});

/** A store as the lab leaves it: namespace default, the nodes, the pods `pod add` recorded. */
async function labStore(): Promise<ObjectStore> {
  const store = new ObjectStore(new MemoryKv(), "bench");
  await store.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } });
  for (const n of [1, 2]) {
    await store.create({ apiVersion: "v1", kind: "Node", metadata: { name: `node${n}` }, spec: { podCIDR: `10.244.${n}.0/24`, podCIDRs: [`10.244.${n}.0/24`] }, status: { addresses: [{ type: "InternalIP", address: `192.168.56.1${n}` }] } } as KubeObject);
  }
  for (const p of [pods.client, ...pods.servers, ...pods.idle]) {
    await store.create({
      apiVersion: "v1", kind: "Pod",
      metadata: { name: p.name, namespace: "default", annotations: { "tapnet.dev/source": "pod-add", "tapnet.dev/netns": `b-${p.name}`, "tapnet.dev/ifname": "eth0" } },
      spec: { nodeName: p.node, containers: [{ name: "pause" }] },
      status: { phase: "Running", podIP: p.ip, podIPs: [{ ip: p.ip }], hostIP: `192.168.56.1${p.node.slice(-1)}` },
    } as KubeObject);
  }
  return store;
}

describe("the policy load applied, as the switches' policy engine sees it", async () => {
  const store = await labStore();
  const results = await applyObjects(store, policyLoad(pods, opts).objects);
  const view = buildNetworkView({
    namespaces: await store.list("Namespace") as never, pods: await store.list("Pod") as never, services: await store.list("Service") as never,
    endpointSlices: await store.list("EndpointSlice") as never, policies: await store.list("NetworkPolicy") as never, nodes: await store.list("Node") as never,
  }, SERVICES);
  const engine = new PolicyEngine(view);
  const [client, cross, same] = [pods.client, ...pods.servers].map((p) => ip(p.ip));
  const idle = ip(pods.idle[0].ip);
  const outside = ip("203.0.113.2");

  it("applies: the namespace and the pods configured (labels, ports), the rest created", () => {
    expect(results.filter((r) => r.outcome === "configured").map((r) => r.ref.name)).toEqual(["default", "node1-pod1", "node2-pod1", "node1-pod2", "node2-pod2"]);
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(200);
    expect(view.pods.map((p) => [p.name, p.labels.app, p.ports.length])).toEqual([
      ["node1-pod1", "bench-client", 3], ["node1-pod2", "bench-server", 3], ["node2-pod1", "bench-server", 3], ["node2-pod2", "bench-idle", 3],
    ]);
    expect(engine.problems).toEqual([]);
  });

  it("isolates the client for egress, the servers for ingress, the idle pod both ways, by the policies meant to", () => {
    expect(engine.isolatedBy(client, "egress")).toHaveLength(50);
    expect(engine.isolatedBy(client, "ingress")).toHaveLength(10);
    for (const s of [cross, same]) {
      expect(engine.isolatedBy(s, "ingress")).toHaveLength(50);
      expect(engine.isolatedBy(s, "egress")).toHaveLength(10);
    }
    expect(engine.isolatedBy(idle, "ingress")).toHaveLength(10);
    expect(engine.isolatedBy(idle, "egress")).toHaveLength(10);
  });

  it("allows by a rule, both ends, every flow the bench measures (and the ICMP its check uses)", () => {
    const flows: [number, number, number][] = [
      [cross, PROTO.TCP, BENCH_PORTS.iperf], [cross, PROTO.UDP, BENCH_PORTS.iperf], [cross, PROTO.UDP, BENCH_PORTS.sockperf],
      [same, PROTO.TCP, BENCH_PORTS.iperf], [same, PROTO.UDP, BENCH_PORTS.iperf], [same, PROTO.UDP, BENCH_PORTS.sockperf],
      [cross, 1, 8], [same, 1, 8],
    ];
    for (const [dst, proto, port] of flows) {
      expect(engine.egress(client, dst, proto, port), `egress to ${dst} ${proto}/${port}`).toBe(Verdict.AllowedByRule);
      expect(engine.ingress(client, dst, proto, port), `ingress to ${dst} ${proto}/${port}`).toBe(Verdict.AllowedByRule);
    }
  });

  it("each policy alone allows the bench's TCP and UDP flows on every side it isolates, but the 10 default denies", () => {
    const flows: [number, number, number][] = [cross, same].flatMap((dst) => [[dst, PROTO.TCP, BENCH_PORTS.iperf], [dst, PROTO.UDP, BENCH_PORTS.iperf], [dst, PROTO.UDP, BENCH_PORTS.sockperf]] as [number, number, number][]);
    let denies = 0;
    for (const p of view.policies) {
      const one = new PolicyEngine({ ...view, policies: [p] });
      const sides = [one.isolatedBy(client, "egress").length, ...[cross, same].map((s) => one.isolatedBy(s, "ingress").length)];
      if (p.spec.policyTypes.length === 2 && !p.spec.ingress && !p.spec.egress) {
        expect(sides, p.metadata.name).toEqual([0, 0, 0]);
        expect(one.isolatedBy(idle, "egress"), p.metadata.name).toHaveLength(1);
        denies++;
        continue;
      }
      expect(sides.some((n) => n > 0), `${p.metadata.name} selects a bench pod`).toBe(true);
      for (const [dst, proto, port] of flows) {
        expect(one.egress(client, dst, proto, port), `${p.metadata.name}: egress ${proto}/${port}`).toBe(sides[0] ? Verdict.AllowedByRule : Verdict.NotIsolated);
        expect(one.ingress(client, dst, proto, port), `${p.metadata.name}: ingress ${proto}/${port}`).toBe(one.isolatedBy(dst, "ingress").length ? Verdict.AllowedByRule : Verdict.NotIsolated);
      }
    }
    expect(denies).toBe(10);
  });

  it("denies the idle pod both ways, and what no rule allows", () => {
    expect(engine.egress(idle, client, 1, 8)).toBe(Verdict.Denied); // the bench's check: idle no longer reaches the client
    expect(engine.ingress(idle, client, 1, 8)).toBe(Verdict.Denied);
    expect(engine.egress(idle, cross, PROTO.TCP, BENCH_PORTS.iperf)).toBe(Verdict.Denied);
    expect(engine.ingress(client, idle, PROTO.TCP, BENCH_PORTS.iperf)).toBe(Verdict.Denied);
    // the client to an address outside the cluster: its bench ports only
    expect(engine.egress(client, outside, PROTO.TCP, BENCH_PORTS.iperf)).toBe(Verdict.AllowedByRule);
    expect(engine.egress(client, outside, PROTO.TCP, 22)).toBe(Verdict.Denied);
    // into a server from outside the cluster: its bench ports only
    expect(engine.ingress(outside, cross, PROTO.UDP, BENCH_PORTS.sockperf)).toBe(Verdict.AllowedByRule);
    expect(engine.ingress(outside, cross, PROTO.TCP, 22)).toBe(Verdict.Denied);
    expect(engine.ingress(outside, cross, 1, 8)).toBe(Verdict.Denied);
  });

  it("gives the Services their endpoints: both servers, the cross-node one alone, or none", () => {
    expect(view.services).toHaveLength(100);
    const eps = (i: number) => view.services.find((s) => s.name === `bench-svc-${String(i).padStart(3, "0")}`)!.ports.map((p) => p.endpoints.map((e) => `${e.ip === cross ? "cross" : e.ip === same ? "same" : e.ip}:${e.port}`).sort());
    expect(eps(0)).toEqual([["cross:5201", "same:5201"], ["cross:11111", "same:11111"]]);
    expect(eps(1)).toEqual([["cross:5201", "same:5201"]]);
    expect(eps(2)).toEqual([["cross:5201"], ["cross:11111"]]);
    expect(eps(3)).toEqual([[]]);
  });
});

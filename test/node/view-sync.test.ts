/**
 * ViewSync over a MemoryKv store, with recording sinks in place of the switch and the node's
 * kernel: the first view built from the objects already there and applied before start()
 * resolves; a burst of changes is one rebuild (setTimeout faked: the test moves the clock);
 * changes during an apply make the next view; a failing sink is logged and the next change
 * applied; stop closes the watch and builds nothing after; a store that cannot be listed fails
 * start. And nodePortsOf, the NodePorts of a view.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { PROTO, type NetworkView } from "../../src/cluster/network-view.ts";
import type { EndpointSlice, KubeObject, Namespace, NetworkPolicy, Node, Pod, Service } from "../../src/cluster/objects.ts";
import { ObjectStore } from "../../src/cluster/store.ts";
import type { NodePort } from "../../src/node/host-net.ts";
import { nodePortsOf, ViewSync } from "../../src/node/view-sync.ts";
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { formatIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";

const SERVICE_CIDR = parseCidr("10.96.0.0/12") as Cidr;
const ip = (s: string) => parseIpv4Address(s)!;

const namespace = (name: string, labels: Record<string, string>): Namespace => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });

function pod(name: string, podIP: string, labels: Record<string, string> = { app: "web" }, ns = "shop"): Pod {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, labels },
    spec: { nodeName: "node1", containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] }] },
    status: { phase: "Running", podIP, podIPs: [{ ip: podIP }] },
  };
}

/** A NodePort Service over the pods labelled app=web: TCP 80 → their port "http", UDP 53 → 5353. */
const web: Service = {
  apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "shop" },
  spec: {
    type: "NodePort", selector: { app: "web" }, clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], sessionAffinity: "None",
    ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 }, { name: "dns", protocol: "UDP", port: 53, targetPort: 5353, nodePort: 30053 }],
  },
};

/** A Service without a selector, and its EndpointSlice. */
const external: Service = {
  apiVersion: "v1", kind: "Service", metadata: { name: "db", namespace: "shop" },
  spec: { type: "ClusterIP", clusterIP: "10.96.0.20", clusterIPs: ["10.96.0.20"], sessionAffinity: "None", ports: [{ name: "", protocol: "TCP", port: 5432, targetPort: 5432 }] },
};
const slice: EndpointSlice = {
  apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "db-1", namespace: "shop", labels: { "kubernetes.io/service-name": "db" } },
  addressType: "IPv4", endpoints: [{ addresses: ["10.244.9.9"], conditions: { ready: true } }], ports: [{ name: "", protocol: "TCP", port: 5432 }],
};

const denyAll: NetworkPolicy = {
  apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-all", namespace: "shop" },
  spec: { podSelector: {}, policyTypes: ["Ingress"] },
};

const node1: Node = {
  apiVersion: "v1", kind: "Node", metadata: { name: "node1" },
  spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] }, status: { addresses: [{ type: "InternalIP", address: "192.168.56.11" }] },
};

function logger() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const log = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => log };
  return { log, lines };
}

/** A store, a ViewSync on it and what its sinks were given. */
function rig(opts: { coalesceMs?: number; apply?: (v: NetworkView) => Promise<void>; kv?: MemoryKv } = {}) {
  const kv = opts.kv ?? new MemoryKv();
  const store = new ObjectStore(kv, "lab");
  const views: NetworkView[] = [];
  const ports: NodePort[][] = [];
  const { log, lines } = logger();
  const sync = new ViewSync({
    store, serviceCidr: SERVICE_CIDR, log, coalesceMs: opts.coalesceMs ?? 50,
    apply: async (v) => { views.push(v); await opts.apply?.(v); },
    nodePorts: async (p) => void ports.push(p),
  });
  return { kv, store, sync, views, ports, lines };
}

const put = (store: ObjectStore, ...objs: KubeObject[]) => Promise.all(objs.map((o) => store.put(o)));
const endpointsOf = (v: NetworkView, name: string, port = 0) => v.services.find((s) => s.name === name)?.ports[port].endpoints.map((e) => `${formatIpv4(e.ip)}:${e.port}`);

afterEach(() => {
  vi.useRealTimers();
});

describe("ViewSync", () => {
  it("builds the first view from the objects there and applies it before start() resolves, not after the coalescing time", async () => {
    const { store, sync, views, ports, lines } = rig({ coalesceMs: 60_000 });
    await put(store, namespace("shop", { team: "a" }), pod("a", "10.244.1.5"), pod("b", "10.244.1.6", { app: "other" }), web, external, slice, denyAll, node1);
    await sync.start();
    expect(views).toHaveLength(1);
    const v = views[0];
    expect(v.serviceCidr).toEqual({ network: ip("10.96.0.0"), prefix: 12 });
    expect(v.namespaces).toEqual([{ name: "shop", labels: { team: "a" } }]);
    expect(v.pods.map((p) => `${p.namespace}/${p.name}`)).toEqual(["shop/a", "shop/b"]);
    expect(v.services.map((s) => `${s.name} ${formatIpv4(s.clusterIp)}`)).toEqual(["db 10.96.0.20", "web 10.96.0.10"]);
    expect(endpointsOf(v, "web", 0)).toEqual(["10.244.1.5:8080"]);
    expect(endpointsOf(v, "web", 1)).toEqual(["10.244.1.5:5353"]);
    expect(endpointsOf(v, "db")).toEqual(["10.244.9.9:5432"]);
    expect(v.policies.map((p) => p.metadata.name)).toEqual(["deny-all"]);
    expect(v.nodes).toEqual([{ name: "node1", addresses: [ip("192.168.56.11"), ip("10.244.1.1")] }]);
    expect(ports).toEqual([[
      { protocol: "tcp", nodePort: 30080, clusterIp: "10.96.0.10", port: 80 },
      { protocol: "udp", nodePort: 30053, clusterIp: "10.96.0.10", port: 53 },
    ]]);
    expect(lines).toContainEqual({ level: "info", msg: "network view applied", fields: { services: 2, policies: 1, pods: 2, nodePorts: 2 } });
    await sync.stop();
  });

  it("an empty store: the first view is empty, and applied", async () => {
    const { sync, views, ports } = rig();
    await sync.start();
    expect(views).toEqual([{ serviceCidr: { network: ip("10.96.0.0"), prefix: 12 }, namespaces: [], pods: [], nodes: [], policies: [], services: [] }]);
    expect(ports).toEqual([[]]);
    await sync.stop();
  });

  it("gathers a burst of changes for the coalescing time and builds one view with all of them", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, sync, views, ports } = rig();
    await put(store, web);
    await sync.start();
    expect(views).toHaveLength(1);
    expect(endpointsOf(views[0], "web")).toEqual([]);

    for (let i = 1; i <= 30; i++) await store.put(pod(`p${i}`, `10.244.1.${100 + i}`));
    await store.put(denyAll);
    await vi.advanceTimersByTimeAsync(49);
    expect(views).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(views).toHaveLength(2);
    expect(endpointsOf(views[1], "web")).toHaveLength(30);
    expect(views[1].policies).toHaveLength(1);
    expect(sync.built).toBe(2);

    // Deletions too: the Service goes, and with it its NodePorts.
    await store.delete({ kind: "Service", namespace: "shop", name: "web" });
    await store.delete({ kind: "Pod", namespace: "shop", name: "p1" });
    await vi.advanceTimersByTimeAsync(50);
    expect(views).toHaveLength(3);
    expect(views[2].services).toEqual([]);
    expect(views[2].pods).toHaveLength(29);
    expect(ports.at(-1)).toEqual([]);

    // Nothing changed: nothing built.
    await vi.advanceTimersByTimeAsync(1000);
    expect(views).toHaveLength(3);
    await sync.stop();
  });

  it("changes that come while a view is being applied make the next view, one coalescing time after", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let release!: () => void;
    let gate: Promise<void> | undefined;
    const { store, sync, views } = rig({ apply: () => gate ?? Promise.resolve() });
    await put(store, web);
    await sync.start();
    gate = new Promise((r) => (release = r));
    await store.put(pod("a", "10.244.1.5"));
    await vi.advanceTimersByTimeAsync(50);
    expect(views).toHaveLength(2); // being applied, held at the gate
    await store.put(pod("b", "10.244.1.6"));
    await store.put(pod("c", "10.244.1.7"));
    await vi.advanceTimersByTimeAsync(500);
    expect(views).toHaveLength(2); // no second apply while the first runs
    gate = undefined;
    release();
    await vi.advanceTimersByTimeAsync(49);
    expect(views).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(views).toHaveLength(3);
    expect(endpointsOf(views[2], "web")).toEqual(["10.244.1.5:8080", "10.244.1.6:8080", "10.244.1.7:8080"]);
    await vi.advanceTimersByTimeAsync(500);
    expect(views).toHaveLength(3);
    await sync.stop();
  });

  it("a failing sink is logged, not fatal: start resolves, and the next change is applied", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let fail = true;
    const { store, sync, views, lines } = rig({ apply: async () => { if (fail) throw new Error("datapath busy"); } });
    await sync.start();
    expect(lines).toContainEqual({ level: "warn", msg: "network view not applied: the switch keeps the one it has", fields: { error: "datapath busy" } });
    expect(lines.some((l) => l.msg === "network view applied")).toBe(false);
    fail = false;
    await store.put(web);
    await vi.advanceTimersByTimeAsync(50);
    expect(views).toHaveLength(2);
    expect(views[1].services.map((s) => s.name)).toEqual(["web"]);
    expect(lines.at(-1)).toMatchObject({ level: "debug", msg: "network view applied" });
    await sync.stop();
  });

  it("a failing NodePort sink is logged; the switch still gets the view", async () => {
    const { log, lines } = logger();
    const views: NetworkView[] = [];
    const store = new ObjectStore(new MemoryKv(), "lab");
    await store.put(web);
    const sync = new ViewSync({ store, serviceCidr: SERVICE_CIDR, log, apply: async (v) => void views.push(v), nodePorts: () => { throw new Error("nft: no such file"); } });
    await sync.start();
    expect(views).toHaveLength(1);
    expect(lines).toContainEqual({ level: "warn", msg: "NodePorts not set", fields: { error: "nft: no such file" } });
    await sync.stop();
  });

  it("stop closes the watch, drops a pending rebuild, and builds nothing after", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, sync, views } = rig();
    const watch = vi.spyOn(store, "watch");
    await sync.start();
    expect(watch).toHaveBeenCalledTimes(1);
    expect(watch.mock.calls[0][0]).toEqual(["Namespace", "Pod", "Service", "EndpointSlice", "NetworkPolicy", "Node"]);
    const close = vi.spyOn(watch.mock.results[0].value, "close");
    await store.put(web); // a rebuild is pending
    await sync.stop();
    expect(close).toHaveBeenCalledTimes(1);
    await store.put(pod("a", "10.244.1.5"));
    await vi.advanceTimersByTimeAsync(1000);
    expect(views).toHaveLength(1);
    await sync.stop(); // twice is fine
  });

  it("start fails when the store cannot be listed", async () => {
    const kv = new MemoryKv();
    kv.list = async () => { throw new Error("store unreachable"); };
    const { sync, views } = rig({ kv });
    await expect(sync.start()).rejects.toThrow("store unreachable");
    expect(views).toEqual([]);
    await sync.stop();
  });
});

describe("nodePortsOf", () => {
  it("gives each TCP and UDP port of a NodePort Service, to its ClusterIP and port; not ClusterIP Services', not SCTP", () => {
    const view: NetworkView = {
      serviceCidr: { network: ip("10.96.0.0"), prefix: 12 }, namespaces: [], pods: [], nodes: [], policies: [],
      services: [
        { namespace: "a", name: "plain", clusterIp: ip("10.96.0.1"), ports: [{ name: "", protocol: PROTO.TCP, port: 80, endpoints: [] }] },
        {
          namespace: "a", name: "np", clusterIp: ip("10.96.0.2"), ports: [
            { name: "h", protocol: PROTO.TCP, port: 80, nodePort: 30080, endpoints: [] },
            { name: "d", protocol: PROTO.UDP, port: 53, nodePort: 30053, endpoints: [] },
            { name: "s", protocol: PROTO.SCTP, port: 9, nodePort: 30009, endpoints: [] },
          ],
        },
      ],
    };
    expect(nodePortsOf(view)).toEqual([
      { protocol: "tcp", nodePort: 30080, clusterIp: "10.96.0.2", port: 80 },
      { protocol: "udp", nodePort: 30053, clusterIp: "10.96.0.2", port: 53 },
    ]);
  });
});

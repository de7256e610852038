/**
 * applyObjects and deleteObjects on an ObjectStore over a MemoryKv: created, configured and
 * unchanged; what a configure keeps of the stored object (status, identity, tapnet's
 * annotations, server-filled spec fields); inputs refused whole (a namespace that does not
 * exist, an immutable field changed) leaving the store as it was; updates that lose a race
 * and are merged again; a failed write failing its object only; delete and its cascade; and
 * a randomized run of many inputs against a naive model of kubectl apply; and Services' addresses
 * allocated on create as the API server does (ClusterIP, node ports), kept, and refused when taken.
 */
import { describe, expect, it } from "vitest";
import { ApplyError, applyObjects, deleteObjects, refsForDelete, storeClient, type ApplyResult } from "../../src/cluster/apply.ts";
import type { Service } from "../../src/cluster/objects.ts";
import { validateObject } from "../../src/cluster/validate.ts";
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";
import { KvError } from "../../src/cluster/kv.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { KINDS, type KubeObject } from "../../src/cluster/objects.ts";
import { ObjectStore } from "../../src/cluster/store.ts";
import { prng, trials } from "../support/random.ts";

const newStore = () => new ObjectStore(new MemoryKv(), "test");

const ns = (name: string, labels?: Record<string, string>): KubeObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, ...(labels ? { labels } : {}) } });
const pod = (name: string, namespace = "default", more: { labels?: Record<string, string>; annotations?: Record<string, string>; nodeName?: string; image?: string } = {}): KubeObject => ({
  apiVersion: "v1", kind: "Pod",
  metadata: { name, namespace, ...(more.labels ? { labels: more.labels } : {}), ...(more.annotations ? { annotations: more.annotations } : {}) },
  spec: { ...(more.nodeName ? { nodeName: more.nodeName } : {}), containers: [{ name: "c", ...(more.image ? { image: more.image } : {}) }] },
});
const svc = (name: string, clusterIP?: string): KubeObject => ({
  apiVersion: "v1", kind: "Service", metadata: { name, namespace: "default" },
  spec: { type: "ClusterIP", sessionAffinity: "None", ...(clusterIP ? { clusterIP } : {}), ports: [{ port: 80, targetPort: 80, protocol: "TCP" }] },
});

const outcomes = (rs: ApplyResult[]) => rs.map((r) => `${r.ref.kind}/${r.ref.namespace ?? ""}/${r.ref.name} ${r.outcome}${r.error ? `: ${r.error}` : ""}`);

/** Everything in the store, every kind, as JSON: to compare before and after. */
async function snapshot(store: ObjectStore): Promise<string> {
  const all: KubeObject[] = [];
  for (const k of KINDS) all.push(...(await store.list(k)));
  return JSON.stringify(all);
}

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApplyError);
    return (e as Error).message;
  }
  throw new Error("was not refused");
}

describe("applyObjects", () => {
  it("creates new objects, leaves equal ones unchanged and configures changed ones, in input order", async () => {
    const store = newStore();
    expect(outcomes(await applyObjects(store, [ns("blue"), pod("web", "blue", { labels: { app: "web" } })]))).toEqual(["Namespace//blue created", "Pod/blue/web created"]);
    const first = await store.get({ kind: "Pod", namespace: "blue", name: "web" });
    expect(outcomes(await applyObjects(store, [ns("blue"), pod("web", "blue", { labels: { app: "web" } })]))).toEqual(["Namespace//blue unchanged", "Pod/blue/web unchanged"]);
    expect(await store.get({ kind: "Pod", namespace: "blue", name: "web" })).toEqual(first);
    expect(outcomes(await applyObjects(store, [ns("blue", { team: "x" }), pod("web", "blue", { labels: { app: "web2" } })]))).toEqual(["Namespace//blue configured", "Pod/blue/web configured"]);
    const now = await store.get({ kind: "Pod", namespace: "blue", name: "web" });
    expect(now!.metadata.labels).toEqual({ app: "web2" });
    expect(now!.metadata.uid).toBe(first!.metadata.uid);
    expect(now!.metadata.creationTimestamp).toBe(first!.metadata.creationTimestamp);
    expect(Number(now!.metadata.resourceVersion)).toBeGreaterThan(Number(first!.metadata.resourceVersion));
  });

  it("fills the namespace of a namespaced object as default and drops the identity a saved manifest carries", async () => {
    const store = newStore();
    const saved = pod("web");
    delete saved.metadata.namespace;
    saved.metadata.uid = "stale";
    saved.metadata.resourceVersion = "999";
    expect(outcomes(await applyObjects(store, [saved]))).toEqual(["Pod/default/web created"]);
    const got = await store.get({ kind: "Pod", namespace: "default", name: "web" });
    expect(got!.metadata.uid).not.toBe("stale");
    expect(outcomes(await applyObjects(store, [saved]))).toEqual(["Pod/default/web unchanged"]);
  });

  it("keeps the stored status, identity, tapnet's annotations and server-filled fields across a configure", async () => {
    const store = newStore();
    await applyObjects(store, [pod("web", "default", { nodeName: "node1", annotations: { note: "a" } }), svc("s")]);
    // What a switch writes once it has started the pod; what an allocator writes on a service.
    const live = await store.get({ kind: "Pod", namespace: "default", name: "web" });
    await store.update({ ...live!, metadata: { ...live!.metadata, annotations: { note: "a", "tapnet.dev/netns": "lab-node1-web" } }, status: { phase: "Running", podIP: "10.244.1.2" } });
    const s = await store.get({ kind: "Service", namespace: "default", name: "s" });
    await store.update({ ...s!, spec: { ...(s!.spec as object), clusterIP: "10.96.0.9", clusterIPs: ["10.96.0.9"] } });

    // The same manifests again: nothing the user wrote changed.
    expect(outcomes(await applyObjects(store, [pod("web", "default", { nodeName: "node1", annotations: { note: "a" } }), svc("s")]))).toEqual(["Pod/default/web unchanged", "Service/default/s unchanged"]);
    // A manifest without nodeName or the user's annotation, with an image.
    expect(outcomes(await applyObjects(store, [pod("web", "default", { image: "busybox" })]))).toEqual(["Pod/default/web configured"]);
    const got = await store.get({ kind: "Pod", namespace: "default", name: "web" });
    expect(got!.status).toEqual({ phase: "Running", podIP: "10.244.1.2" });
    expect(got!.metadata.annotations).toEqual({ "tapnet.dev/netns": "lab-node1-web" });
    expect(got!.spec).toEqual({ nodeName: "node1", containers: [{ name: "c", image: "busybox" }] });
    expect(got!.metadata.uid).toBe(live!.metadata.uid);
    expect((await store.get({ kind: "Service", namespace: "default", name: "s" }))!.spec).toMatchObject({ clusterIP: "10.96.0.9", clusterIPs: ["10.96.0.9"] });
  });

  it("refuses the whole input when a namespace neither exists nor is created earlier in it, and writes nothing", async () => {
    const store = newStore();
    await applyObjects(store, [ns("blue"), pod("a", "blue")]);
    const before = await snapshot(store);
    const msg = await refused(applyObjects(store, [ns("green"), pod("b", "blue"), pod("c", "red"), pod("a", "blue", { labels: { x: "1" } })]));
    expect(msg).toContain('pod/c -n red: namespaces "red" not found');
    expect(msg).toContain("nothing was applied");
    expect(await snapshot(store)).toBe(before);
    // A Namespace later in the input than its objects does not count, as kubectl applies in order.
    expect(await refused(applyObjects(store, [pod("d", "green"), ns("green")]))).toContain('namespaces "green" not found');
    expect(await snapshot(store)).toBe(before);
    expect(outcomes(await applyObjects(store, [ns("green"), pod("d", "green")]))).toEqual(["Namespace//green created", "Pod/green/d created"]);
  });

  it("refuses to move a pod to another node or change a service's cluster IP, and writes nothing", async () => {
    const store = newStore();
    await applyObjects(store, [pod("web", "default", { nodeName: "node1" }), svc("s", "10.96.0.5")]);
    const before = await snapshot(store);
    expect(await refused(applyObjects(store, [ns("x"), pod("web", "default", { nodeName: "node2" })]))).toContain("spec.nodeName: Forbidden");
    expect(await refused(applyObjects(store, [svc("s", "10.96.0.6")]))).toContain('spec.clusterIP: Invalid value: "10.96.0.6": field is immutable');
    expect(await snapshot(store)).toBe(before);
  });

  it("merges again when another writer changes the object between its read and its write", async () => {
    const store = newStore();
    await applyObjects(store, [pod("web")]);
    let raced = 0;
    // A store whose first update is overtaken by a switch writing the pod's status.
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== "update") return Reflect.get(target, prop, receiver);
        return async (o: KubeObject) => {
          if (raced++ === 0) {
            const live = await target.get({ kind: "Pod", namespace: "default", name: "web" });
            await target.update({ ...live!, status: { phase: "Running", podIP: "10.244.1.7" } });
          }
          return target.update(o);
        };
      },
    });
    expect(outcomes(await applyObjects(racing, [pod("web", "default", { labels: { v: "2" } })]))).toEqual(["Pod/default/web configured"]);
    expect(raced).toBe(2);
    const got = await store.get({ kind: "Pod", namespace: "default", name: "web" });
    expect(got!.metadata.labels).toEqual({ v: "2" });
    expect(got!.status).toEqual({ phase: "Running", podIP: "10.244.1.7" });
  });

  it("gives up on an object that keeps changing, and goes on with the others", async () => {
    const store = newStore();
    await applyObjects(store, [pod("web")]);
    let n = 0;
    const busy = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== "update") return Reflect.get(target, prop, receiver);
        return async (o: KubeObject) => {
          const live = await target.get({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
          await target.update({ ...live!, status: { phase: "Running", message: String(n++) } });
          return target.update(o);
        };
      },
    });
    const rs = await applyObjects(busy, [pod("web", "default", { labels: { v: "2" } }), pod("other")]);
    expect(rs.map((r) => r.outcome)).toEqual(["failed", "created"]);
    expect(rs[0].error).toMatch(/gave up after 5 attempts/);
    expect(n).toBe(5);
  });

  it("fails an object whose write fails, and the objects in a namespace whose creation failed, but not the rest", async () => {
    const store = newStore();
    const broken = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== "create") return Reflect.get(target, prop, receiver);
        return async (o: KubeObject) => {
          if (o.kind === "Namespace" && o.metadata.name === "blue") throw new KvError("store unreachable");
          return target.create(o);
        };
      },
    });
    expect(outcomes(await applyObjects(broken, [ns("blue"), pod("a", "blue"), pod("b")]))).toEqual([
      "Namespace//blue failed: store unreachable", 'Pod/blue/a failed: namespaces "blue" not found', "Pod/default/b created",
    ]);
    expect((await store.list("Pod")).map((p) => p.metadata.name)).toEqual(["b"]);
  });
});

/** A Service as a manifest gives it, validated (defaults filled) as apply's callers do. */
function service(name: string, spec: Record<string, unknown> = {}, namespace = "default"): KubeObject {
  return validateObject({ apiVersion: "v1", kind: "Service", metadata: { name, namespace }, spec: { ports: [{ port: 80 }], ...spec } }, name);
}
const cidr = (s: string) => parseCidr(s) as Cidr;
const getSvc = async (store: ObjectStore, name: string, namespace = "default") => (await store.get({ kind: "Service", namespace, name })) as Service;
const inRange = (ip: string | undefined, c: Cidr) => {
  const a = parseIpv4Address(ip ?? "");
  return a !== undefined && a > c.network && a < c.network + 2 ** (32 - c.prefix) - 1;
};

describe("applyObjects: Services' addresses", () => {
  it("gives a new Service a ClusterIP from 10.96.0.0/12 by default, clusterIPs in step, kept on every later apply", async () => {
    const store = newStore();
    expect(outcomes(await applyObjects(store, [service("web")]))).toEqual(["Service/default/web created"]);
    const created = await getSvc(store, "web");
    expect(inRange(created.spec.clusterIP, cidr("10.96.0.0/12"))).toBe(true);
    expect(created.spec.clusterIPs).toEqual([created.spec.clusterIP]);
    expect(created.spec.ports[0].nodePort).toBeUndefined();
    expect(outcomes(await applyObjects(store, [service("web")]))).toEqual(["Service/default/web unchanged"]);
    expect(outcomes(await applyObjects(store, [service("web", { selector: { app: "web" } })]))).toEqual(["Service/default/web configured"]);
    const configured = await getSvc(store, "web");
    expect(configured.spec.clusterIP).toBe(created.spec.clusterIP);
    expect(configured.spec.clusterIPs).toEqual(created.spec.clusterIPs);
    expect(configured.spec.selector).toEqual({ app: "web" });
  });

  it("takes ClusterIPs from the service CIDR given, each Service its own, and fails one when the range is full", async () => {
    const store = newStore();
    const small = cidr("10.100.0.0/29"); // 6 usable addresses
    const names = ["a", "b", "c", "d", "e", "f"];
    const rs = await applyObjects(store, names.map((n) => service(n)), { serviceCidr: small });
    expect(rs.every((r) => r.outcome === "created")).toBe(true);
    const ips = await Promise.all(names.map(async (n) => (await getSvc(store, n)).spec.clusterIP));
    for (const ip of ips) expect(inRange(ip, small), ip).toBe(true);
    expect(new Set(ips).size).toBe(6);
    expect(outcomes(await applyObjects(store, [service("g"), service("a")], { serviceCidr: small }))).toEqual([
      'Service/default/g failed: The Service "g" is invalid: failed to allocate a serviceIP: range is full (every address of 10.100.0.0/29 is taken)',
      "Service/default/a unchanged",
    ]);
    expect(await store.get({ kind: "Service", namespace: "default", name: "g" })).toBeUndefined();
  });

  it("keeps a ClusterIP the manifest names, and fails the object, not the input, when it is taken or out of range", async () => {
    const store = newStore();
    expect(outcomes(await applyObjects(store, [service("dns", { clusterIP: "10.96.0.10" })]))).toEqual(["Service/default/dns created"]);
    expect((await getSvc(store, "dns")).spec.clusterIPs).toEqual(["10.96.0.10"]);
    await applyObjects(store, [ns("blue")]);
    expect(outcomes(await applyObjects(store, [service("other", { clusterIP: "10.96.0.10" }, "blue"), service("far", { clusterIP: "10.200.0.1" }), pod("p")]))).toEqual([
      'Service/blue/other failed: The Service "other" is invalid: spec.clusterIP: Invalid value: "10.96.0.10": provided IP is already allocated',
      'Service/default/far failed: The Service "far" is invalid: spec.clusterIP: Invalid value: "10.200.0.1": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12',
      "Pod/default/p created",
    ]);
    expect(await store.list("Service")).toHaveLength(1);
  });

  it("gives a NodePort Service's ports node ports, keeps them by port and protocol, and allocates one for a port added later", async () => {
    const store = newStore();
    const twoPorts = [{ name: "http", port: 80 }, { name: "dns", port: 53, protocol: "UDP" }];
    expect(outcomes(await applyObjects(store, [service("np", { type: "NodePort", ports: twoPorts })]))).toEqual(["Service/default/np created"]);
    const created = await getSvc(store, "np");
    const [p80, p53] = created.spec.ports.map((p) => p.nodePort!);
    for (const p of [p80, p53]) expect(p >= 30000 && p <= 32767, String(p)).toBe(true);
    expect(p80).not.toBe(p53);
    // The same manifest, its ports in another order: each keeps its own node port.
    expect(outcomes(await applyObjects(store, [service("np", { type: "NodePort", ports: [twoPorts[1], twoPorts[0]] })]))).toEqual(["Service/default/np configured"]);
    expect((await getSvc(store, "np")).spec.ports.map((p) => [p.port, p.nodePort])).toEqual([[53, p53], [80, p80]]);
    expect(outcomes(await applyObjects(store, [service("np", { type: "NodePort", ports: [twoPorts[1], twoPorts[0]] })]))).toEqual(["Service/default/np unchanged"]);
    const three = [...twoPorts, { name: "https", port: 443 }];
    expect(outcomes(await applyObjects(store, [service("np", { type: "NodePort", ports: three })]))).toEqual(["Service/default/np configured"]);
    const after = (await getSvc(store, "np")).spec.ports.map((p) => p.nodePort!);
    expect(after.slice(0, 2)).toEqual([p80, p53]);
    expect(after[2] >= 30000 && after[2] <= 32767 && !after.slice(0, 2).includes(after[2])).toBe(true);
    expect((await getSvc(store, "np")).spec.clusterIP).toBe(created.spec.clusterIP);
  });

  it("allocates node ports when a ClusterIP Service becomes NodePort, and drops them when it goes back", async () => {
    const store = newStore();
    await applyObjects(store, [service("s")]);
    const ip = (await getSvc(store, "s")).spec.clusterIP;
    expect(outcomes(await applyObjects(store, [service("s", { type: "NodePort" })]))).toEqual(["Service/default/s configured"]);
    const np = await getSvc(store, "s");
    expect(np.spec.ports[0].nodePort).toBeGreaterThanOrEqual(30000);
    expect(np.spec.clusterIP).toBe(ip);
    expect(outcomes(await applyObjects(store, [service("s")]))).toEqual(["Service/default/s configured"]);
    expect((await getSvc(store, "s")).spec.ports[0].nodePort).toBeUndefined();
  });

  it("fails a node port another Service holds or that is given twice over the input, and keeps the first", async () => {
    const store = newStore();
    expect(outcomes(await applyObjects(store, [service("a", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }), service("b", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] })]))).toEqual([
      "Service/default/a created",
      'Service/default/b failed: The Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated',
    ]);
    // Moving a's node port onto c's is refused (a keeps its own); onto a free one is allowed.
    await applyObjects(store, [service("c", { type: "NodePort", ports: [{ port: 80, nodePort: 30090 }] })]);
    expect(outcomes(await applyObjects(store, [service("a", { type: "NodePort", ports: [{ port: 80, nodePort: 30090 }] })]))).toEqual([
      'Service/default/a failed: The Service "a" is invalid: spec.ports[0].nodePort: Invalid value: 30090: provided port is already allocated',
    ]);
    expect((await getSvc(store, "a")).spec.ports[0].nodePort).toBe(30080);
    expect(outcomes(await applyObjects(store, [service("a", { type: "NodePort", ports: [{ port: 80, nodePort: 30091 }] })]))).toEqual(["Service/default/a configured"]);
  });

  it("gives a headless Service no address", async () => {
    const store = newStore();
    expect(outcomes(await applyObjects(store, [service("h", { clusterIP: "None", ports: [] })]))).toEqual(["Service/default/h created"]);
    expect((await getSvc(store, "h")).spec.clusterIP).toBe("None");
    expect(outcomes(await applyObjects(store, [service("h", { clusterIP: "None", ports: [] })]))).toEqual(["Service/default/h unchanged"]);
  });

  it("gives a Service stored without an address (before tapnet allocated them) one on its next apply", async () => {
    const store = newStore();
    await store.create(service("old"));
    expect((await getSvc(store, "old")).spec.clusterIP).toBeUndefined();
    expect(outcomes(await applyObjects(store, [service("old")]))).toEqual(["Service/default/old configured"]);
    expect(inRange((await getSvc(store, "old")).spec.clusterIP, cidr("10.96.0.0/12"))).toBe(true);
  });

  it("through storeClient, with the service CIDR it was given", async () => {
    const store = newStore();
    await storeClient(store, { serviceCidr: cidr("172.30.0.0/16") }).apply([service("x")]);
    expect(inRange((await getSvc(store, "x")).spec.clusterIP, cidr("172.30.0.0/16"))).toBe(true);
  });
});

describe("deleteObjects", () => {
  it("deletes what exists and says which did not, in the order given", async () => {
    const store = newStore();
    await applyObjects(store, [pod("a"), svc("s")]);
    const rs = await deleteObjects(store, [{ kind: "Pod", name: "a" }, { kind: "Pod", namespace: "default", name: "nope" }, { kind: "Service", namespace: "default", name: "s" }]);
    expect(rs.map((r) => `${r.ref.namespace}/${r.ref.name} ${r.outcome}`)).toEqual(["default/a deleted", "default/nope not found", "default/s deleted"]);
    expect(await store.list("Pod")).toEqual([]);
  });

  it("deletes a file's objects last first, so every object is found before its namespace takes it", async () => {
    const store = newStore();
    const file = [ns("blue"), ns("green"), pod("a", "blue"), pod("b", "green"), pod("c"), pod("a", "blue")];
    await applyObjects(store, file.slice(0, 5));
    const refs = refsForDelete(file);
    expect(refs.map((r) => `${r.kind}/${r.namespace ?? ""}/${r.name}`)).toEqual(["Pod/blue/a", "Pod/default/c", "Pod/green/b", "Namespace//green", "Namespace//blue"]);
    expect((await deleteObjects(store, refs)).every((r) => r.outcome === "deleted")).toBe(true);
    expect(await snapshot(store)).toBe("[]");
  });

  it("takes a namespace's objects along with it", async () => {
    const store = newStore();
    await applyObjects(store, [ns("blue"), pod("a", "blue"), pod("b", "blue"), pod("c")]);
    expect((await deleteObjects(store, [{ kind: "Namespace", name: "blue" }]))[0].outcome).toBe("deleted");
    expect((await store.list("Pod")).map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual(["default/c"]);
  });

  it("fails a delete the store cannot do, and goes on", async () => {
    const store = newStore();
    await applyObjects(store, [pod("a"), pod("b")]);
    const broken = new Proxy(store, {
      get: (t, prop, r) => (prop === "delete" ? async (ref: { name: string }) => { if (ref.name === "a") throw new KvError("disk full"); return t.delete(ref as never); } : Reflect.get(t, prop, r)),
    });
    const rs = await deleteObjects(broken, [{ kind: "Pod", name: "a" }, { kind: "Pod", name: "b" }]);
    expect(rs.map((r) => `${r.outcome}${r.error ? ` ${r.error}` : ""}`)).toEqual(["failed disk full", "deleted"]);
  });
});

describe("storeClient", () => {
  it("applies, lists, gets and deletes through the store", async () => {
    const c = storeClient(newStore());
    await c.apply([ns("blue"), pod("a", "blue"), pod("b")]);
    expect((await c.list("Pod")).map((p) => p.metadata.name)).toEqual(["a", "b"]);
    expect((await c.list("Pod", "blue")).map((p) => p.metadata.name)).toEqual(["a"]);
    expect((await c.get({ kind: "Pod", namespace: "blue", name: "a" }))?.metadata.name).toBe("a");
    expect(await c.get({ kind: "Pod", namespace: "default", name: "a" })).toBeNull();
    expect((await c.delete([{ kind: "Pod", namespace: "default", name: "b" }]))[0].outcome).toBe("deleted");
  });
});

describe("applyObjects against a naive model", () => {
  it("gives kubectl's outcome for every object of many random inputs, and refuses exactly the inputs it must", async () => {
    const rand = prng(10);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    for (let t = 0; t < trials(60); t++) {
      const store = newStore();
      /** The model: each object's user-written state, as JSON, by kind/namespace/name. */
      const model = new Map<string, string>([["Namespace//default", "x"]]);
      for (let round = 0; round < 6; round++) {
        const input: KubeObject[] = [];
        for (let i = Math.floor(rand() * 5); i > 0; i--) {
          input.push(rand() < 0.3 ? ns(pick(["blue", "green"]), pick([undefined, { a: "1" }])) : pod(pick(["p", "q"]), pick(["default", "blue", "green"]), { labels: pick([{ v: "1" }, { v: "2" }]) }));
        }
        // The model's answer: refused if any namespace is missing when its object comes; else per object.
        const expected: string[] = [];
        const namespaces = new Set([...model.keys()].filter((k) => k.startsWith("Namespace//")).map((k) => k.slice(11)));
        namespaces.add("default");
        let refuse = false;
        const after = new Map(model);
        for (const o of input) {
          const key = `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
          if (o.kind === "Pod" && !namespaces.has(o.metadata.namespace!)) refuse = true;
          if (o.kind === "Namespace") namespaces.add(o.metadata.name);
          const want = JSON.stringify(o.metadata.labels ?? null);
          expected.push(`${key} ${!after.has(key) ? "created" : after.get(key) === want ? "unchanged" : "configured"}`);
          after.set(key, want);
        }
        const before = await snapshot(store);
        if (refuse) {
          await refused(applyObjects(store, input));
          expect(await snapshot(store)).toBe(before);
          continue;
        }
        expect(outcomes(await applyObjects(store, input))).toEqual(expected);
        for (const [k, v] of after) model.set(k, v);
        if (!model.has("Namespace//blue") && !model.has("Namespace//green")) continue;
        // Now and then, delete a namespace: its pods go from the model too.
        if (rand() < 0.3) {
          const gone = pick(["blue", "green"]);
          await deleteObjects(store, [{ kind: "Namespace", name: gone }]);
          for (const k of [...model.keys()]) if (k === `Namespace//${gone}` || k.startsWith(`Pod/${gone}/`)) model.delete(k);
        }
      }
    }
  });
});

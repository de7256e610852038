/**
 * services.ts: a Service's endpoints (by selector, by EndpointSlice, named ports, readiness,
 * namespaces, pods coming and going), its affinity timeout, the API server's ClusterIP and
 * NodePort allocation (randomized: never a taken or reserved value; the upper band first; a full
 * range refused) with every message it words; and validate-net.ts's sessionAffinityConfig.
 */
import { describe, expect, it } from "vitest";
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { formatIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import type { EndpointSlice, Pod, Service, ServicePort } from "../../src/cluster/objects.ts";
import {
  affinitySeconds, allocateClusterIp, AllocationError, allocateNodePort, assignServiceAddresses, podAddress, serviceEndpoints,
} from "../../src/cluster/services.ts";
import { ManifestError, validateObject } from "../../src/cluster/validate.ts";
import { prng, trials } from "../support/random.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0x5e7c1c);

const ip = (s: string): number => parseIpv4Address(s)!;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ep = (addr: string, port: number) => ({ ip: ip(addr), port });

type ContainerPorts = { name?: string; containerPort: number; protocol?: "TCP" | "UDP" }[];

function pod(name: string, o: { ns?: string; labels?: Record<string, string>; ip?: string; phase?: "Pending" | "Running" | "Failed"; ports?: ContainerPorts } = {}): Pod {
  const status = { phase: o.phase ?? "Running", ...(o.ip !== undefined ? { podIP: o.ip } : {}) };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: o.ns ?? "default", labels: o.labels ?? { app: "web" } },
    spec: { nodeName: "node1", containers: [{ name: "c", ports: (o.ports ?? []).map((p) => ({ protocol: "TCP" as const, ...p })) }] },
    status,
  } as Pod;
}

function service(name: string, spec: Partial<Service["spec"]> & Record<string, unknown> = {}, ns = "default"): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns },
    spec: { type: "ClusterIP", sessionAffinity: "None", selector: { app: "web" }, ports: [{ protocol: "TCP", port: 80, targetPort: 8080 }], ...spec },
  } as Service;
}

function slice(name: string, service: string, endpoints: EndpointSlice["endpoints"], ports: EndpointSlice["ports"], ns = "default"): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: ns, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    endpoints,
    ports,
  };
}

describe("endpoints of a Service with a selector", () => {
  it("are the Running pods of its namespace whose labels match, with an address, sorted", () => {
    const pods = [
      pod("b", { ip: "10.244.2.7" }),
      pod("a", { ip: "10.244.1.3", labels: { app: "web", tier: "front" } }),
      pod("other-app", { ip: "10.244.1.4", labels: { app: "db" } }),
      pod("no-labels", { ip: "10.244.1.5", labels: {} }),
      pod("other-ns", { ns: "prod", ip: "10.244.1.6" }),
      pod("pending", { phase: "Pending" }),
      pod("pending-with-ip", { phase: "Pending", ip: "10.244.1.8" }),
      pod("failed", { phase: "Failed", ip: "10.244.1.9" }),
      pod("running-no-ip"),
      pod("bad-ip", { ip: "10.244.1.300" }),
    ];
    expect(serviceEndpoints(service("web"), pods, [])).toEqual([[ep("10.244.1.3", 8080), ep("10.244.2.7", 8080)]]);
    expect(serviceEndpoints(service("web", { selector: { app: "web", tier: "front" } }), pods, [])).toEqual([[ep("10.244.1.3", 8080)]]);
    expect(serviceEndpoints(service("web", {}, "prod"), pods, [])).toEqual([[ep("10.244.1.6", 8080)]]);
    expect(serviceEndpoints(service("web", { selector: { app: "none" } }), pods, [])).toEqual([[]]);
  });

  it("ignore EndpointSlices, even ones naming the Service", () => {
    const slices = [slice("web-x", "web", [{ addresses: ["10.244.9.9"] }], [{ name: "", protocol: "TCP", port: 8080 }])];
    expect(serviceEndpoints(service("web"), [pod("a", { ip: "10.244.1.3" })], slices)).toEqual([[ep("10.244.1.3", 8080)]]);
  });

  it("resolve a named targetPort in each pod: same name and protocol, or the pod is no endpoint of that port", () => {
    const svc = service("web", {
      ports: [
        { name: "http", protocol: "TCP", port: 80, targetPort: "web" },
        { name: "dns", protocol: "UDP", port: 53, targetPort: "dns" },
        { name: "admin", protocol: "TCP", port: 9000, targetPort: 9000 },
      ],
    });
    const pods = [
      pod("a", { ip: "10.244.1.2", ports: [{ name: "web", containerPort: 8080 }, { name: "dns", containerPort: 5353, protocol: "UDP" }] }),
      pod("b", { ip: "10.244.1.3", ports: [{ name: "web", containerPort: 9090 }] }),
      // dns over TCP only: not the UDP port's endpoint.
      pod("c", { ip: "10.244.1.4", ports: [{ name: "dns", containerPort: 53, protocol: "TCP" }] }),
      pod("d", { ip: "10.244.1.5" }),
    ];
    expect(serviceEndpoints(svc, pods, [])).toEqual([
      [ep("10.244.1.2", 8080), ep("10.244.1.3", 9090)],
      [ep("10.244.1.2", 5353)],
      [ep("10.244.1.2", 9000), ep("10.244.1.3", 9000), ep("10.244.1.4", 9000), ep("10.244.1.5", 9000)],
    ]);
  });

  it("follow pods as they come, change and go", () => {
    const svc = service("web");
    const pods: Pod[] = [];
    const now = () => serviceEndpoints(svc, pods, []);
    expect(now()).toEqual([[]]);
    pods.push(pod("a", { phase: "Pending" }));
    expect(now()).toEqual([[]]);
    pods[0] = pod("a", { ip: "10.244.1.2" });
    expect(now()).toEqual([[ep("10.244.1.2", 8080)]]);
    pods.push(pod("b", { ip: "10.244.2.2" }));
    expect(now()).toEqual([[ep("10.244.1.2", 8080), ep("10.244.2.2", 8080)]]);
    pods[1] = pod("b", { ip: "10.244.2.2", labels: { app: "web-old" } });
    expect(now()).toEqual([[ep("10.244.1.2", 8080)]]);
    pods[0] = pod("a", { phase: "Failed", ip: "10.244.1.2" });
    expect(now()).toEqual([[]]);
    pods.splice(0, 1);
    pods[0] = pod("b", { ip: "10.244.2.3" });
    expect(now()).toEqual([[ep("10.244.2.3", 8080)]]);
  });
});

describe("endpoints of a Service without a selector", () => {
  const svc = (selector?: Record<string, string>) =>
    service("ext", {
      selector,
      ports: [
        { name: "http", protocol: "TCP", port: 80, targetPort: 80 },
        { name: "dns", protocol: "UDP", port: 53, targetPort: 53 },
      ],
    });
  const ports = [{ name: "http", protocol: "TCP" as const, port: 8080 }, { name: "dns", protocol: "UDP" as const, port: 5353 }];

  it("come from its EndpointSlices: ready not false, the first address, ports by name and protocol", () => {
    const slices = [
      slice("ext-1", "ext", [
        { addresses: ["10.0.0.2"] },
        { addresses: ["10.0.0.1", "10.0.0.99"], conditions: { ready: true } },
        { addresses: ["10.0.0.3"], conditions: { ready: false, serving: true } },
        { addresses: ["10.0.0.4"], conditions: { serving: false } },
      ], ports),
      // Another slice of the same Service: one endpoint more, one the same (counted once).
      slice("ext-2", "ext", [{ addresses: ["10.0.0.1"] }, { addresses: ["10.0.0.5"] }], ports),
      // Its port "dns" is TCP: no port of the Service.
      slice("ext-3", "ext", [{ addresses: ["10.0.0.6"] }], [{ name: "dns", protocol: "TCP", port: 53 }]),
      // A port without a number ("all ports") serves none.
      slice("ext-4", "ext", [{ addresses: ["10.0.0.7"] }], [{ name: "http", protocol: "TCP" }]),
      // No ports at all.
      slice("ext-5", "ext", [{ addresses: ["10.0.0.8"] }], undefined),
      slice("other-svc", "other", [{ addresses: ["10.0.0.9"] }], ports),
      slice("other-ns", "ext", [{ addresses: ["10.0.0.10"] }], ports, "prod"),
      { ...slice("unlabelled", "ext", [{ addresses: ["10.0.0.11"] }], ports), metadata: { name: "unlabelled", namespace: "default" } },
    ];
    const pods = [pod("a", { ip: "10.244.1.2" })];
    const want = [
      [ep("10.0.0.1", 8080), ep("10.0.0.2", 8080), ep("10.0.0.4", 8080), ep("10.0.0.5", 8080)],
      [ep("10.0.0.1", 5353), ep("10.0.0.2", 5353), ep("10.0.0.4", 5353), ep("10.0.0.5", 5353)],
    ];
    expect(serviceEndpoints(svc(), pods, slices)).toEqual(want);
    // An empty selector is no selector (the API server stores it as none).
    expect(serviceEndpoints(svc({}), pods, slices)).toEqual(want);
  });

  it("match an unnamed port to a slice port named \"\"", () => {
    const one = service("one", { selector: undefined, ports: [{ protocol: "UDP", port: 53, targetPort: 53 }] });
    const slices = [slice("one-1", "one", [{ addresses: ["10.0.0.1"] }], [{ name: "", protocol: "UDP", port: 5353 }, { name: "x", protocol: "UDP", port: 1 }])];
    expect(serviceEndpoints(one, [], slices)).toEqual([[ep("10.0.0.1", 5353)]]);
  });
});

describe("podAddress and affinitySeconds", () => {
  it("podAddress: Running with a valid podIP only", () => {
    expect(podAddress(pod("a", { ip: "10.244.1.2" }))).toBe(ip("10.244.1.2"));
    expect(podAddress(pod("a", { ip: "10.244.1.02" }))).toBeUndefined();
    expect(podAddress(pod("a", { phase: "Pending", ip: "10.244.1.2" }))).toBeUndefined();
    expect(podAddress({ ...pod("a"), status: undefined })).toBeUndefined();
  });

  it("affinitySeconds: none without ClientIP; the given timeout, else 10800", () => {
    expect(affinitySeconds(service("s"))).toBeUndefined();
    expect(affinitySeconds(service("s", { sessionAffinity: "ClientIP" }))).toBe(10800);
    expect(affinitySeconds(service("s", { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }))).toBe(60);
    expect(affinitySeconds(service("s", { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: {} } }))).toBe(10800);
  });
});

/** Every address of `c` but those in `free` (by offset from the network address). */
function takenAllBut(c: Cidr, free: number[]): Set<number> {
  const taken = new Set<number>();
  for (let i = 0; i < 2 ** (32 - c.prefix); i++) if (!free.includes(i)) taken.add(c.network + i);
  return taken;
}

describe("allocateClusterIp", () => {
  it("never gives a taken address, the network or the broadcast address (randomized)", () => {
    const rand = prng(SEED);
    for (let t = 0; t < trials(400); t++) {
      const prefix = 24 + Math.floor(rand() * 7); // /24 .. /30
      const c: Cidr = { network: (ip("10.96.0.0") + Math.floor(rand() * 64) * 256) >>> 0, prefix };
      const size = 2 ** (32 - prefix);
      const taken = new Set<number>();
      const share = rand();
      for (let i = 1; i < size - 1; i++) if (rand() < share) taken.add(c.network + i);
      const free = size - 2 - taken.size;
      if (free === 0) {
        expect(() => allocateClusterIp(c, taken, rand)).toThrow("range is full");
        continue;
      }
      const got = allocateClusterIp(c, taken, rand);
      expect(taken.has(got)).toBe(false);
      expect(got).toBeGreaterThan(c.network);
      expect(got).toBeLessThan(c.network + size - 1);
      // The upper band first: the lower 16 addresses (of a range over 16) only when it is full.
      const band = size > 16 ? 16 : 0;
      const upperFree = [...Array(size - 2 - band).keys()].some((k) => !taken.has(c.network + 1 + band + k));
      if (upperFree) expect(got).toBeGreaterThanOrEqual(c.network + 1 + band);
    }
  });

  it("reaches every free address of a small range, and only those", () => {
    const c = cidr("10.96.0.0/28");
    const taken = new Set([ip("10.96.0.5"), ip("10.96.0.9")]);
    const seen = new Set<string>();
    const rand = prng(SEED + 1);
    for (let t = 0; t < 500; t++) seen.add(formatIpv4(allocateClusterIp(c, taken, rand)));
    const want = [1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14].map((i) => `10.96.0.${i}`);
    expect([...seen].sort()).toEqual(want.sort());
  });

  it("keeps the lower 256 addresses of 10.96.0.0/12 for given ones, and uses them when the rest is full", () => {
    const c = cidr("10.96.0.0/12");
    const rand = prng(SEED + 2);
    for (let t = 0; t < 200; t++) expect(allocateClusterIp(c, new Set(), rand)).toBeGreaterThanOrEqual(ip("10.96.1.1"));
    expect(allocateClusterIp(c, new Set(), () => 0)).toBe(ip("10.96.1.1"));
    expect(allocateClusterIp(c, new Set(), () => 0.9999999999)).toBe(ip("10.111.255.254"));
    const small = cidr("10.96.0.0/24");
    expect(allocateClusterIp(small, takenAllBut(small, [3, 200]), rand)).toBe(ip("10.96.0.200"));
    expect(allocateClusterIp(small, takenAllBut(small, [3]), rand)).toBe(ip("10.96.0.3"));
  });

  it("survives a random source that returns 1 or NaN", () => {
    const c = cidr("10.96.0.0/29");
    expect(allocateClusterIp(c, new Set(), () => 1)).toBe(ip("10.96.0.1"));
    expect(allocateClusterIp(c, new Set(), () => NaN)).toBe(ip("10.96.0.1"));
  });

  it("says so when the range is full", () => {
    const c = cidr("10.96.0.0/29");
    const msg = "failed to allocate a serviceIP: range is full (every address of 10.96.0.0/29 is taken)";
    expect(() => allocateClusterIp(c, takenAllBut(c, [0, 7]))).toThrow(msg);
    expect(() => allocateClusterIp(cidr("10.96.0.0/31"), new Set())).toThrow("failed to allocate a serviceIP: range is full (every address of 10.96.0.0/31 is taken)");
    expect(() => allocateClusterIp(cidr("10.96.0.4/32"), new Set())).toThrow("range is full");
  });
});

describe("allocateNodePort", () => {
  it("never gives a taken port, stays in 30000-32767 and prefers 30086 and up (randomized)", () => {
    const rand = prng(SEED + 3);
    for (let t = 0; t < trials(200); t++) {
      const taken = new Set<number>();
      const share = rand() < 0.2 ? 0.999 : rand();
      for (let p = 30000; p <= 32767; p++) if (rand() < share) taken.add(p);
      if (taken.size === 2768) continue;
      const got = allocateNodePort(taken, rand);
      expect(taken.has(got)).toBe(false);
      expect(got).toBeGreaterThanOrEqual(30000);
      expect(got).toBeLessThanOrEqual(32767);
      let upperFree = false;
      for (let p = 30086; p <= 32767; p++) if (!taken.has(p)) upperFree = true;
      if (upperFree) expect(got).toBeGreaterThanOrEqual(30086);
    }
  });

  it("uses the lower band when the upper is full, and says so when every port is taken", () => {
    const taken = new Set<number>();
    for (let p = 30000; p <= 32767; p++) if (p !== 30010) taken.add(p);
    expect(allocateNodePort(taken)).toBe(30010);
    taken.add(30010);
    expect(() => allocateNodePort(taken)).toThrow("failed to allocate a nodePort: range is full (every port of 30000-32767 is taken)");
  });
});

describe("assignServiceAddresses", () => {
  const range = cidr("10.96.0.0/12");
  const nodePortService = (name: string, ports: Partial<ServicePort>[], extra: Partial<Service["spec"]> = {}) =>
    service(name, { type: "NodePort", ports: ports.map((p, i) => ({ name: `p${i}`, protocol: "TCP", port: 80 + i, targetPort: 80 + i, ...p })), ...extra });

  /** The message `f` throws (an AllocationError). */
  function refusal(f: () => unknown): string {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(AllocationError);
      expect((e as AllocationError).message).toBe((e as AllocationError).problems.join("\n"));
      return (e as Error).message;
    }
    throw new Error("accepted");
  }

  it("fills clusterIP and clusterIPs from the range, never one another Service has, and leaves the input alone", () => {
    const rand = prng(SEED + 4);
    const small = cidr("10.96.0.0/29");
    const others = [1, 2, 3, 5, 6].map((i) => service(`s${i}`, { clusterIP: `10.96.0.${i}`, clusterIPs: [`10.96.0.${i}`] }, i % 2 ? "default" : "prod"));
    const input = service("web");
    const out = assignServiceAddresses(input, others, small, rand);
    expect(out.spec.clusterIP).toBe("10.96.0.4");
    expect(out.spec.clusterIPs).toEqual(["10.96.0.4"]);
    expect(input.spec.clusterIP).toBeUndefined();
    expect({ ...out, spec: { ...out.spec, clusterIP: undefined, clusterIPs: undefined } }).toEqual({ ...input, spec: { ...input.spec, clusterIP: undefined, clusterIPs: undefined } });
    expect(() => assignServiceAddresses(input, [...others, service("s4", { clusterIP: "10.96.0.4" })], small, rand)).toThrow(
      "failed to allocate a serviceIP: range is full (every address of 10.96.0.0/29 is taken)",
    );
  });

  it("keeps a given clusterIP that is free, and gives a headless Service nothing", () => {
    const out = assignServiceAddresses(service("dns", { clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"] }), [service("x", { clusterIP: "10.96.0.11" })], range);
    expect(out.spec.clusterIP).toBe("10.96.0.10");
    expect(out.spec.clusterIPs).toEqual(["10.96.0.10"]);
    const headless = service("h", { clusterIP: "None", clusterIPs: ["None"], ports: [] });
    expect(assignServiceAddresses(headless, [], range)).toEqual(headless);
  });

  it("skips the Service itself among the others, so an update keeps what it has", () => {
    const stored = assignServiceAddresses(nodePortService("web", [{}, {}]), [], range, prng(SEED + 5));
    const again = assignServiceAddresses(stored, [stored, service("web", {}, "prod")], range, prng(SEED + 6));
    expect(again).toEqual(stored);
    // Another Service of the same name in another namespace is another Service.
    const prodCopy = { ...stored, metadata: { ...stored.metadata, namespace: "prod" } };
    expect(refusal(() => assignServiceAddresses(stored, [prodCopy], range))).toBe(
      [
        `spec.clusterIP: Invalid value: "${stored.spec.clusterIP}": provided IP is already allocated`,
        `spec.ports[0].nodePort: Invalid value: ${stored.spec.ports[0].nodePort}: provided port is already allocated`,
        `spec.ports[1].nodePort: Invalid value: ${stored.spec.ports[1].nodePort}: provided port is already allocated`,
      ].join("\n"),
    );
  });

  it("refuses a clusterIP another Service has, or one outside the range, as the API server words it", () => {
    const others = [service("kube-dns", { clusterIP: "10.96.0.10" }, "kube-system"), service("headless", { clusterIP: "None" })];
    const cases: [string, string][] = [
      ["10.96.0.10", 'spec.clusterIP: Invalid value: "10.96.0.10": provided IP is already allocated'],
      ["10.0.0.10", 'spec.clusterIP: Invalid value: "10.0.0.10": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ["10.96.0.0", 'spec.clusterIP: Invalid value: "10.96.0.0": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ["10.111.255.255", 'spec.clusterIP: Invalid value: "10.111.255.255": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ["10.112.0.1", 'spec.clusterIP: Invalid value: "10.112.0.1": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ["10.96.0.300", `spec.clusterIP: Invalid value: "10.96.0.300": must be empty, 'None', or a valid IP address`],
    ];
    for (const [given, msg] of cases) expect(refusal(() => assignServiceAddresses(service("web", { clusterIP: given }), others, range))).toBe(msg);
    expect(assignServiceAddresses(service("web", { clusterIP: "10.111.255.254" }), others, range).spec.clusterIP).toBe("10.111.255.254");
    expect(assignServiceAddresses(service("web", { clusterIP: "10.96.0.1" }), others, range).spec.clusterIP).toBe("10.96.0.1");
  });

  it("fills each missing nodePort of a NodePort Service, distinct and free, after the given ones", () => {
    const rand = prng(SEED + 7);
    for (let t = 0; t < trials(100); t++) {
      const others = [nodePortService("a", [{ nodePort: 30000 + Math.floor(rand() * 2768) }, {}])].map((s) => assignServiceAddresses(s, [], range, rand));
      const given = 30000 + Math.floor(rand() * 2768);
      if (others[0].spec.ports.some((p) => p.nodePort === given)) continue;
      const out = assignServiceAddresses(nodePortService("b", [{}, { nodePort: given }, {}]), others, range, rand);
      const ports = out.spec.ports.map((p) => p.nodePort!);
      expect(ports[1]).toBe(given);
      expect(new Set([...ports, ...others[0].spec.ports.map((p) => p.nodePort)]).size).toBe(5);
      for (const p of ports) expect(p >= 30000 && p <= 32767).toBe(true);
    }
    // A ClusterIP Service gets no node ports.
    expect(assignServiceAddresses(service("c"), [], range).spec.ports[0].nodePort).toBeUndefined();
  });

  it("refuses a nodePort another Service (or another port) has, or one outside 30000-32767, listing every fault", () => {
    const other = nodePortService("a", [{ nodePort: 30080 }], { clusterIP: "10.96.0.20" });
    expect(refusal(() => assignServiceAddresses(nodePortService("b", [{ nodePort: 30080 }]), [other], range))).toBe(
      "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
    );
    expect(refusal(() => assignServiceAddresses(nodePortService("b", [{ nodePort: 30081 }, { nodePort: 30081 }]), [other], range))).toBe(
      "spec.ports[1].nodePort: Invalid value: 30081: provided port is already allocated",
    );
    expect(refusal(() => assignServiceAddresses(nodePortService("b", [{}, { nodePort: 8080 }], { clusterIP: "10.96.0.20" }), [other], range))).toBe(
      [
        'spec.clusterIP: Invalid value: "10.96.0.20": provided IP is already allocated',
        "spec.ports[1].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
      ].join("\n"),
    );
  });
});

describe("validation of sessionAffinityConfig", () => {
  const raw = (spec: Record<string, unknown>) => ({ apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }], ...spec } });
  const refused = (spec: Record<string, unknown>): string[] => {
    try {
      validateObject(raw(spec), "t");
    } catch (e) {
      expect(e).toBeInstanceOf(ManifestError);
      return (e as ManifestError).problems;
    }
    throw new Error("accepted");
  };
  const specOf = (spec: Record<string, unknown>) => validateObject(raw(spec), "t").spec as Record<string, unknown>;

  it("fills the timeout of ClientIP affinity when left out, and keeps one given", () => {
    const filled = { clientIP: { timeoutSeconds: 10800 } };
    expect(specOf({ sessionAffinity: "ClientIP" }).sessionAffinityConfig).toEqual(filled);
    expect(specOf({ sessionAffinity: "ClientIP", sessionAffinityConfig: {} }).sessionAffinityConfig).toEqual(filled);
    expect(specOf({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: {} } }).sessionAffinityConfig).toEqual(filled);
    expect(specOf({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 86400 } } }).sessionAffinityConfig).toEqual({ clientIP: { timeoutSeconds: 86400 } });
    expect(specOf({}).sessionAffinityConfig).toBeUndefined();
  });

  it("refuses a timeout out of 1-86400, and a config without ClientIP affinity", () => {
    expect(refused({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } })).toEqual([
      "t: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400, not 0",
    ]);
    expect(refused({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } })).toEqual([
      "t: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400, not 86401",
    ]);
    expect(refused({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSecond: 5 } } })).toEqual([
      't: spec.sessionAffinityConfig.clientIP.timeoutSecond: unknown field (did you mean "timeoutSeconds"?)',
    ]);
    expect(refused({ sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } })).toEqual([
      "t: spec.sessionAffinityConfig: must not be set when session affinity is None (set sessionAffinity: ClientIP)",
    ]);
  });
});

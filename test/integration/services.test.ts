// Services on a real 3-node lab, as kube-proxy gives them: a Service over pods on node1 and
// node2 (web1, web2: app=web), reached from a pod on node3 (client) through its ClusterIP.
// Connections spread over both endpoints and the server sees the client pod's own address;
// megabytes go both ways intact; sessionAffinity ClientIP keeps a client on one endpoint; a
// named targetPort reaches the port the pods name; a pod reaches itself through its own
// Service (hairpin, the source translated); a process in a node's own namespace reaches the
// ClusterIP; a NodePort on any node's address reaches the Service from the outside namespace;
// a Service with no endpoint refuses at once; egress policy sees the endpoint, not the
// ClusterIP; an endpoint removed stops receiving, and its UDP flows go to the other. Servers and probers: netpol-support.ts. The Services name their
// ClusterIPs (10.96.12.x), so the test needs nothing allocated.
// TAPNET_LAB_PREFIX (+ "-svc") names the lab instead of the usual test prefix (to keep clear of other labs).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OUTSIDE_NODE_ADDRESS } from "../../src/lab/plan.ts";
import { uniquePrefix } from "./helpers.ts";
import {
  allStarted, ECHO_PORT, labJournal, manifests, namespaceManifest, podManifest, Prober, Proc, Running, SERVER, tapnetOk, waitForPods,
  type Attempt, type AttemptResult, type PodInfo, type Protocol,
} from "./netpol-support.ts";

const prefix = process.env.TAPNET_LAB_PREFIX ? `${process.env.TAPNET_LAB_PREFIX}-svc` : uniquePrefix("svc");
const NS = "svc";
const WEB = `${NS}/web1`;
const WEB2 = `${NS}/web2`;
const CLIENT = `${NS}/client`;

// ClusterIPs named in the manifests, inside the default service CIDR 10.96.0.0/12.
const IP = { web: "10.96.12.10", sticky: "10.96.12.11", empty: "10.96.12.12", solo: "10.96.12.13", nodePort: "10.96.12.14" };
const NODE_PORT = 30812;
const ECHO_NODE_PORT = 30813;
/** The Service's port for the servers' echo port (another number: the port is translated too). */
const ECHO_SERVICE_PORT = 9000;

const service = (name: string, spec: Record<string, unknown>) => ({ apiVersion: "v1", kind: "Service", metadata: { namespace: NS, name }, spec });
const OBJECTS = [
  namespaceManifest(NS, { ns: NS }),
  podManifest(NS, "web1", "node1", { app: "web", name: "web1" }),
  podManifest(NS, "web2", "node2", { app: "web", name: "web2" }),
  podManifest(NS, "client", "node3", { app: "client" }),
  service("web", {
    clusterIP: IP.web, selector: { app: "web" },
    ports: [
      { name: "http", port: 80, targetPort: 80 },
      { name: "udp", port: 80, protocol: "UDP", targetPort: 80 },
      { name: "named", port: 8081, targetPort: "serve-81-tcp" },
      { name: "echo", port: ECHO_SERVICE_PORT, targetPort: ECHO_PORT },
    ],
  }),
  service("sticky", { clusterIP: IP.sticky, selector: { app: "web" }, sessionAffinity: "ClientIP", ports: [{ port: 80 }] }),
  service("empty", { clusterIP: IP.empty, selector: { app: "nothing" }, ports: [{ name: "tcp", port: 80 }, { name: "udp", port: 80, protocol: "UDP" }] }),
  service("solo", { clusterIP: IP.solo, selector: { name: "web1" }, ports: [{ port: 80 }] }),
  service("web-np", {
    type: "NodePort", clusterIP: IP.nodePort, selector: { app: "web" },
    ports: [{ name: "http", port: 80, nodePort: NODE_PORT }, { name: "echo", port: ECHO_SERVICE_PORT, targetPort: ECHO_PORT, nodePort: ECHO_NODE_PORT }],
  }),
];

const many = (n: number, ip: string, port: number, protocol: Protocol = "TCP"): Attempt[] => Array.from({ length: n }, () => ({ ip, port, protocol }));
const count = (rs: AttemptResult[]): Record<string, number> => {
  const c: Record<string, number> = {};
  for (const r of rs) {
    const k = r.status === "ok" ? r.reply!.pod : r.status;
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
};

describe("Services on a 3-node lab", () => {
  const running = new Running();
  const probers: Record<"client" | "web1" | "node3" | "outside", Prober> = {} as never;
  let pods = new Map<string, PodInfo>();

  /** Makes `attempts` from `from` until every one is answered (the Service is up everywhere), for up to 10 s. */
  async function settled(from: Prober, attempts: Attempt[], timeoutMs = 10_000): Promise<AttemptResult[]> {
    const t0 = Date.now();
    for (;;) {
      const rs = await from.attempts(attempts);
      if (rs.every((r) => r.status === "ok") || Date.now() - t0 > timeoutMs) return rs;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  beforeAll(async () => {
    await tapnetOk(prefix, ["lab", "up", "--nodes", "3", "--pods", "0"], 150_000);
    await manifests(prefix, "apply", OBJECTS);
    pods = await waitForPods(prefix, [WEB, WEB2, CLIENT]);
    const j = labJournal(prefix);
    await allStarted([
      ...[WEB, WEB2].map(async (p) => running.add(await Proc.start(pods.get(p)!.netns, SERVER, [p], `the server of ${p}`))),
      (async () => (probers.client = running.add(await Prober.start(pods.get(CLIENT)!.netns, CLIENT))))(),
      (async () => (probers.web1 = running.add(await Prober.start(pods.get(WEB)!.netns, WEB))))(),
      (async () => (probers.node3 = running.add(await Prober.start(j.nodes[2].netns, "node3"))))(),
      (async () => (probers.outside = running.add(await Prober.start(j.outside!.netns, "outside"))))(),
    ]);
  }, 180_000);

  afterAll(async () => {
    await running.stop(prefix);
  }, 60_000);

  it("keeps the ClusterIPs the manifests name", async () => {
    const items = JSON.parse(await tapnetOk(prefix, ["get", "svc", "-n", NS, "-o", "json"])).items as { metadata: { name: string }; spec: { clusterIP: string } }[];
    expect(Object.fromEntries(items.map((s) => [s.metadata.name, s.spec.clusterIP]))).toEqual({ web: IP.web, sticky: IP.sticky, empty: IP.empty, solo: IP.solo, "web-np": IP.nodePort });
  });

  it("spreads a pod's connections over the endpoints on both other nodes; the server sees the client pod's own address", async () => {
    const tcp = await settled(probers.client, many(40, IP.web, 80));
    const c = count(tcp);
    expect(Object.keys(c).sort(), JSON.stringify(c)).toEqual([WEB, WEB2]);
    // Evenly: 40 fair coins give fewer than 8 of a side once in 20,000 runs.
    expect(Math.min(c[WEB], c[WEB2]), JSON.stringify(c)).toBeGreaterThanOrEqual(8);
    expect(new Set(tcp.map((r) => r.reply!.peer))).toEqual(new Set([pods.get(CLIENT)!.ip]));

    const udp = await settled(probers.client, many(20, IP.web, 80, "UDP"));
    expect(Object.keys(count(udp)).sort(), JSON.stringify(count(udp))).toEqual([WEB, WEB2]);
    expect(new Set(udp.map((r) => r.reply!.peer))).toEqual(new Set([pods.get(CLIENT)!.ip]));
  });

  it("carries megabytes both ways through the ClusterIP, intact", async () => {
    await settled(probers.client, many(4, IP.web, 80));
    const rs = await probers.client.attempts(Array.from({ length: 6 }, () => ({ ip: IP.web, port: ECHO_SERVICE_PORT, protocol: "TCP" as const, bytes: 4_000_000 })), { timeoutMs: 60_000 });
    expect(rs.map((r) => r.status)).toEqual(rs.map(() => "ok"));
    expect(new Set(rs.map((r) => r.reply!.peer))).toEqual(new Set([pods.get(CLIENT)!.ip]));
  });

  it("reaches the port a named targetPort names on each pod", async () => {
    const rs = await settled(probers.client, many(20, IP.web, 8081));
    expect(Object.keys(count(rs)).sort(), JSON.stringify(count(rs))).toEqual([WEB, WEB2]);
    expect(new Set(rs.map((r) => r.reply!.port))).toEqual(new Set([81]));
  });

  it("keeps a client on one endpoint with sessionAffinity ClientIP", async () => {
    await settled(probers.client, many(1, IP.sticky, 80));
    const rs = await probers.client.attempts(many(20, IP.sticky, 80), { serial: true });
    const c = count(rs);
    expect(Object.keys(c), JSON.stringify(c)).toHaveLength(1);
    expect([WEB, WEB2]).toContain(Object.keys(c)[0]);
  });

  it("lets a pod reach itself through its own Service (hairpin), its source translated to its node's gateway", async () => {
    const rs = await settled(probers.web1, many(5, IP.solo, 80));
    expect(count(rs)).toEqual({ [WEB]: 5 });
    expect(new Set(rs.map((r) => r.reply!.peer))).toEqual(new Set([labJournal(prefix).nodes[0].gateway]));
    // and through the Service of both, whichever endpoint it lands on
    const both = await settled(probers.web1, many(20, IP.web, 80));
    expect(Object.keys(count(both)).sort(), JSON.stringify(count(both))).toEqual([WEB, WEB2]);
  });

  it("lets a process in a node's own namespace reach a ClusterIP", async () => {
    const rs = await settled(probers.node3, many(20, IP.web, 80));
    expect(Object.keys(count(rs)).sort(), JSON.stringify(count(rs))).toEqual([WEB, WEB2]);
  });

  it("reaches a NodePort Service from the outside on every node's address, the source translated for an endpoint on another node", async () => {
    const j = labJournal(prefix);
    // node1's address on the outside's link, and every node's on the underlay (the outside routes them through node1)
    const entries = [{ ip: OUTSIDE_NODE_ADDRESS, node: "node1" }, ...j.nodes.map((n) => ({ ip: n.address, node: n.name }))];
    const rs = await settled(probers.outside, entries.flatMap((e) => many(20, e.ip, NODE_PORT)));
    expect(count(rs)[WEB] + count(rs)[WEB2], JSON.stringify(count(rs))).toBe(rs.length);
    entries.forEach((e, k) => {
      const mine = rs.slice(k * 20, k * 20 + 20);
      expect(Object.keys(count(mine)).sort(), `through ${e.ip}: ${JSON.stringify(count(mine))}`).toEqual([WEB, WEB2]);
      for (const r of mine) {
        const endpointNode = pods.get(r.reply!.pod)!.node;
        if (endpointNode !== e.node) expect(r.reply!.peer, `through ${e.ip} (${e.node}) to ${r.reply!.pod} on ${endpointNode}`).not.toBe(j.outside!.address);
      }
    });
    // and megabytes both ways, intact
    const bulk = await probers.outside.attempts(many(2, j.nodes[0].address, ECHO_NODE_PORT).map((a) => ({ ...a, bytes: 2_000_000 })), { timeoutMs: 60_000 });
    expect(bulk.map((r) => r.status)).toEqual(["ok", "ok"]);
  });

  it("refuses at once a Service with no endpoint: a reset for TCP, a port unreachable for UDP", async () => {
    const rs = await probers.client.attempts([...many(3, IP.empty, 80), ...many(3, IP.empty, 80, "UDP")]);
    for (const r of rs) {
      expect(r.status).toBe("refused");
      expect(r.ms).toBeLessThan(200);
    }
  });

  it("applies egress policy to the endpoint a ClusterIP is translated to, not to the ClusterIP", async () => {
    const onlyWeb1 = [{
      apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: NS, name: "client-to-web1" },
      spec: { podSelector: { matchLabels: { app: "client" } }, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: { matchLabels: { name: "web1" } } }] }] },
    }];
    await manifests(prefix, "apply", onlyWeb1);
    try {
      // Connections the Service sends to web2 are denied at the client's node: they time out.
      const t0 = Date.now();
      let c: Record<string, number> = {};
      while (Date.now() - t0 < 6_000) {
        c = count(await probers.client.attempts(many(20, IP.web, 80)));
        if (c.timeout && c[WEB] && c.timeout + c[WEB] === 20) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(Object.keys(c).sort(), JSON.stringify(c)).toEqual([WEB, "timeout"]);
    } finally {
      await manifests(prefix, "delete", onlyWeb1);
    }
  });

  it("sends nothing more to an endpoint whose pod is deleted, and moves its UDP flows elsewhere", async () => {
    // UDP flows, each from a source port of its own, some of them to web2.
    const sports = Array.from({ length: 16 }, (_, i) => 41_000 + i);
    const flows = await settled(probers.client, sports.map((sport) => ({ ip: IP.web, port: 80, protocol: "UDP" as const, sport })));
    const toWeb2 = sports.filter((_, i) => flows[i].reply?.pod === WEB2);
    expect(toWeb2.length, JSON.stringify(count(flows))).toBeGreaterThan(0);

    await tapnetOk(prefix, ["delete", "pod", "web2", "-n", NS]);
    // The endpoint leaves every node's view a moment after the delete returns.
    const t0 = Date.now();
    let rs: AttemptResult[] = [];
    while (Date.now() - t0 < 10_000) {
      rs = await probers.client.attempts(many(20, IP.web, 80));
      if (rs.every((r) => r.status === "ok" && r.reply!.pod === WEB)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(count(rs)).toEqual({ [WEB]: 20 });
    const after = await probers.client.attempts([...many(20, IP.web, 80), ...many(10, IP.web, 80, "UDP")]);
    expect(count(after)).toEqual({ [WEB]: 30 });
    // The UDP flows that went to web2 were dropped with it: the same flows now reach web1.
    const again = await probers.client.attempts(toWeb2.map((sport) => ({ ip: IP.web, port: 80, protocol: "UDP" as const, sport })));
    expect(count(again)).toEqual({ [WEB]: toWeb2.length });
  });
});

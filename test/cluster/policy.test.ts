/**
 * The NetworkPolicy engine: against the truth tables of netpol-cases.ts (every pair of pods, each
 * probe, with the manifests through the real validation so the API server's defaults apply);
 * explain's answers, word for word; the flows always allowed (a pod to itself, a pod and its
 * node); named ports resolved at the destination; ICMP against rules with ports; views holding
 * what validation refuses; and ipBlock with except against a naive bit-by-bit model.
 */
import { describe, expect, it } from "vitest";
import { parseManifests } from "../../src/cluster/manifest.ts";
import { PROTO, type NetworkView, type ViewPod } from "../../src/cluster/network-view.ts";
import type { KubeObject, NetworkPolicy, Namespace, Pod } from "../../src/cluster/objects.ts";
import { PolicyEngine, Verdict } from "../../src/cluster/policy.ts";
import { formatIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import { prng, trials } from "../support/random.ts";
import { CASES, formatTable, NAMESPACES, NODE_OF, parseTable, POD_PORTS, PODS, type NetpolCase } from "./netpol-cases.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0x9e7901);
const ip = (s: string): number => parseIpv4Address(s)!;

// ---- Building a view from manifests, as the agent does from the store ----

interface PodSpec {
  ns: string;
  name: string;
  labels: Record<string, string>;
  node: string;
  ip: string;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
}

/** The nodes: node<n> has InternalIP 192.168.50.<n> and gateway 10.244.<n>.1. */
const NODES = [1, 2, 3].map((n) => ({ name: `node${n}`, addresses: [ip(`192.168.50.${n}`), ip(`10.244.${n}.1`)] }));

function toViewPod(p: Pod): ViewPod {
  const ports = p.spec.containers.flatMap((c) => c.ports ?? []).filter((cp) => cp.name !== undefined);
  return {
    ip: ip(p.status!.podIP!),
    namespace: p.metadata.namespace!,
    name: p.metadata.name,
    labels: p.metadata.labels ?? {},
    node: p.spec.nodeName!,
    ports: ports.map((cp) => ({ name: cp.name!, protocol: PROTO[cp.protocol], port: cp.containerPort })),
  };
}

/** Namespaces, pods and policies as manifests, through parseManifests (validation and defaults), to a view. */
function viewOf(namespaces: Record<string, Record<string, string>>, pods: PodSpec[], policies: unknown[]): NetworkView {
  const items = [
    ...Object.entries(namespaces).map(([name, labels]) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } })),
    ...pods.map((p) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: p.name, namespace: p.ns, labels: p.labels },
      spec: { nodeName: p.node, containers: [{ name: "agnhost", ports: p.ports ?? [] }] },
      status: { phase: "Running", podIP: p.ip },
    })),
    ...policies,
  ];
  const objects = parseManifests(JSON.stringify({ apiVersion: "v1", kind: "List", items }), "test");
  const of = <T extends KubeObject>(kind: string): T[] => objects.filter((o) => o.kind === kind) as T[];
  const key = (o: KubeObject): string => `${o.metadata.namespace}/${o.metadata.name}`;
  return {
    serviceCidr: { network: ip("10.96.0.0"), prefix: 12 },
    namespaces: of<Namespace>("Namespace").map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} })),
    pods: of<Pod>("Pod").map(toViewPod),
    nodes: NODES,
    policies: of<NetworkPolicy>("NetworkPolicy").sort((a, b) => key(a).localeCompare(key(b))),
    services: [],
  };
}

/** The e2e layout: x/a on node1 is 10.244.1.10, y/a 10.244.1.11, x/b on node2 10.244.2.10, ... */
function ipOf(pod: string): string {
  const [ns, name] = pod.split("/");
  return `10.244.${NODE_OF[name].slice(4)}.${10 + NAMESPACES.indexOf(ns)}`;
}

function caseView(c: NetpolCase): NetworkView {
  const namespaces = Object.fromEntries(NAMESPACES.map((ns) => [ns, c.namespaceLabels?.[ns] ?? { ns }]));
  const pods = PODS.map((p) => {
    const [ns, name] = p.split("/");
    return { ns, name, labels: c.podLabels?.[p] ?? { pod: name }, node: NODE_OF[name], ip: ipOf(p), ports: POD_PORTS.map((cp) => ({ ...cp })) };
  });
  return viewOf(namespaces, pods, c.policies(ipOf));
}

/** A connection works when the client's egress and the server's ingress allow it. */
function connects(e: PolicyEngine, src: number, dst: number, proto: number, port: number): boolean {
  return e.egress(src, dst, proto, port) !== Verdict.Denied && e.ingress(src, dst, proto, port) !== Verdict.Denied;
}

function caseByName(name: string): NetpolCase {
  const c = CASES.find((x) => x.name === name);
  if (!c) throw new Error(`no case "${name}"`);
  return c;
}

// ---- The truth tables ----

describe("the truth tables", () => {
  it("are at least 40 cases with distinct names, each table well formed", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    for (const c of CASES) for (const p of c.probes) expect(formatTable(parseTable(p.expected))).toBe(p.expected.replace(/^\n+|\n+$/g, ""));
  });

  it("cover every field of the API", () => {
    const text = JSON.stringify(CASES.map((c) => c.policies(ipOf)));
    for (const field of ["podSelector", "namespaceSelector", "ipBlock", "except", "endPort", '"UDP"', '"SCTP"', '"In"', '"NotIn"', '"Exists"', '"DoesNotExist"', "serve-81-tcp", '"Egress"', "policyTypes", "kubernetes.io/metadata.name"]) {
      expect(text, field).toContain(field);
    }
  });

  it.each(CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const view = caseView(c);
    const engine = new PolicyEngine(view);
    expect(engine.problems).toEqual([]);
    for (const probe of c.probes) {
      const expected = parseTable(probe.expected);
      const proto = PROTO[probe.protocol];
      const got = PODS.map((from) => PODS.map((to) => connects(engine, ip(ipOf(from)), ip(ipOf(to)), proto, probe.port)));
      const wrong: string[] = [];
      PODS.forEach((from, i) =>
        PODS.forEach((to, j) => {
          if (got[i][j] === expected[i][j]) return;
          const x = engine.explain(ip(ipOf(from)), ip(ipOf(to)), proto, probe.port);
          wrong.push(`${from} -> ${to}: expected ${expected[i][j] ? "allowed" : "denied"}; egress: ${x.egress.reason} ingress: ${x.ingress.reason}`);
        }),
      );
      const where = `${c.name}, ${probe.port}/${probe.protocol}`;
      if (wrong.length > 0) {
        throw new Error(`${where}\nexpected:\n${formatTable(expected)}\ngot:\n${formatTable(got)}\n${wrong.join("\n")}`);
      }
    }
  });

  it("parseTable refuses a table with a missing row, a bad cell or a denied diagonal", () => {
    const good = CASES[0].probes[0].expected;
    expect(() => parseTable(good.replace(/^z\/c.*$/m, ""))).toThrow("a table needs 9 rows, one per pod (x/a x/b x/c y/a y/b y/c z/a z/b z/c), not 8");
    expect(() => parseTable(good.replace(/^(y\/a\s+)X/m, "$1?"))).toThrow('row y/a must have nine cells of "." or "X", not "? X X . . . . . ."');
    expect(() => parseTable(good.replace(/^(x\/a\s+)\./m, "$1X"))).toThrow('row x/a: a pod always reaches itself, so its own cell must be "."');
    expect(() => parseTable(good.replace(/^y\/b/m, "y/c"))).toThrow("row 5 must be y/b, not y/c");
    expect(parseTable(good)[3]).toEqual([false, false, false, true, true, true, true, true, true]);
  });
});

// ---- explain ----

describe("explain", () => {
  const engineFor = (name: string): PolicyEngine => new PolicyEngine(caseView(caseByName(name)));
  const at = (pod: string): number => ip(ipOf(pod));

  it("names the rule that allowed each side, and a side no policy selects", () => {
    const e = engineFor("ingress and egress in one policy");
    expect(e.explain(at("x/b"), at("x/a"), PROTO.TCP, 80)).toEqual({
      allowed: true,
      egress: { pod: "x/b", isolated: false, policies: [], allowed: true, reason: "No NetworkPolicy selects x/b for egress, so its egress is not limited." },
      ingress: {
        pod: "x/a",
        isolated: true,
        policies: ["x/a-from-b-to-80"],
        allowed: true,
        allowedBy: { policy: "x/a-from-b-to-80", rule: 0 },
        reason: "Ingress rule 0 of x/a-from-b-to-80 allows traffic from x/b on 80/TCP.",
      },
    });
  });

  it("says which rule matches the peer but not the port", () => {
    const e = engineFor("ingress and egress in one policy");
    const x = e.explain(at("x/a"), at("y/a"), PROTO.TCP, 81);
    expect(x.allowed).toBe(false);
    expect(x.egress).toEqual({
      pod: "x/a",
      isolated: true,
      policies: ["x/a-from-b-to-80"],
      allowed: false,
      reason: "x/a is isolated for egress by x/a-from-b-to-80, and no egress rule of it allows traffic to y/a on 81/TCP (egress rule 0 of x/a-from-b-to-80 matches that peer, but not 81/TCP).",
    });
    expect(x.ingress.reason).toBe("No NetworkPolicy selects y/a for ingress, so its ingress is not limited.");
  });

  it("lists every isolating policy, and says when they have no rules of that type", () => {
    const e = engineFor("SCTP is not TCP");
    const x = e.explain(at("y/a"), at("x/a"), PROTO.TCP, 81);
    expect(x.ingress.policies).toEqual(["x/a-on-81-sctp", "x/deny-ingress"]);
    expect(x.ingress.reason).toBe("x/a is isolated for ingress by x/a-on-81-sctp, x/deny-ingress, and no ingress rule of theirs allows traffic from y/a on 81/TCP (ingress rule 0 of x/a-on-81-sctp matches that peer, but not 81/TCP).");
    expect(e.explain(at("y/a"), at("x/b"), PROTO.TCP, 81).ingress.reason).toBe("x/b is isolated for ingress by x/deny-ingress, which has no ingress rules, so all its ingress is denied.");
    expect(e.explain(at("y/a"), at("x/b"), 1, 0).ingress.reason).toBe("x/b is isolated for ingress by x/deny-ingress, which has no ingress rules, so all its ingress is denied.");
  });

  it("explains an end that is not a pod, and names peers that are not pods by address", () => {
    const e = engineFor("an ipBlock of one pod");
    const x = e.explain(ip("203.0.113.9"), at("y/b"), PROTO.UDP, 53);
    expect(x.egress).toEqual({ isolated: false, policies: [], allowed: true, reason: "203.0.113.9 is not a pod, so no NetworkPolicy limits its egress." });
    const out = e.explain(at("x/a"), ip("203.0.113.9"), 47, 0);
    expect(out.egress.reason).toBe("x/a is isolated for egress by x/a-to-y-b, and no egress rule of it allows traffic to 203.0.113.9 on IP protocol 47.");
    expect(out.ingress).toEqual({ isolated: false, policies: [], allowed: true, reason: "203.0.113.9 is not a pod, so no NetworkPolicy limits its ingress." });
  });

  it("agrees with egress() and ingress() on every pair of every case", () => {
    for (const c of CASES) {
      const e = new PolicyEngine(caseView(c));
      for (const probe of c.probes) {
        for (const from of PODS) {
          for (const to of PODS) {
            const [s, d, proto] = [at(from), at(to), PROTO[probe.protocol]];
            const x = e.explain(s, d, proto, probe.port);
            const ev = e.egress(s, d, proto, probe.port);
            const eBy = e.decidedBy >= 0 ? { policy: e.policyName(e.decidedBy), rule: e.decidedRule } : undefined;
            const iv = e.ingress(s, d, proto, probe.port);
            const iBy = e.decidedBy >= 0 ? { policy: e.policyName(e.decidedBy), rule: e.decidedRule } : undefined;
            expect([x.egress.allowed, x.ingress.allowed, x.allowed]).toEqual([ev !== Verdict.Denied, iv !== Verdict.Denied, connects(e, s, d, proto, probe.port)]);
            expect([x.egress.allowedBy, x.ingress.allowedBy]).toEqual([eBy, iBy]);
            expect([x.egress.policies, x.ingress.policies]).toEqual([e.isolatedBy(s, "egress"), e.isolatedBy(d, "ingress")]);
          }
        }
      }
    }
  });
});

// ---- Verdicts, decidedBy, isolatedBy, podAt ----

describe("verdicts", () => {
  it("say NotIsolated, AllowedByRule (with the policy and rule) or Denied", () => {
    const view = caseView(caseByName("two policies' peers are unioned"));
    const e = new PolicyEngine(view);
    const at = (p: string): number => ip(ipOf(p));
    expect(e.ingress(at("z/b"), at("x/a"), PROTO.TCP, 80)).toBe(Verdict.AllowedByRule);
    expect(view.policies[e.decidedBy].metadata.name).toBe("a-from-z");
    expect([e.policyName(e.decidedBy), e.decidedRule]).toEqual(["x/a-from-z", 0]);
    expect(e.ingress(at("y/b"), at("x/a"), PROTO.TCP, 80)).toBe(Verdict.Denied);
    expect([e.decidedBy, e.decidedRule]).toEqual([-1, -1]);
    expect(e.ingress(at("x/a"), at("x/b"), PROTO.TCP, 80)).toBe(Verdict.NotIsolated);
    expect(e.decidedBy).toBe(-1);
    expect(e.egress(at("x/a"), at("x/b"), PROTO.TCP, 80)).toBe(Verdict.NotIsolated);
    expect(e.isolatedBy(at("x/a"), "ingress")).toEqual(["x/a-from-b", "x/a-from-z"]);
    expect(e.isolatedBy(at("x/a"), "egress")).toEqual([]);
    expect(e.isolatedBy(ip("10.1.2.3"), "ingress")).toEqual([]);
    expect(e.podAt(at("y/c"))).toMatchObject({ namespace: "y", name: "c", node: "node3" });
    expect(e.podAt(ip("10.1.2.3"))).toBeUndefined();
  });

  it("name the rule of a policy with several rules that allowed it", () => {
    const view = caseView({
      name: "rules",
      policies: () => [
        { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "p", namespace: "x" }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }, { from: [{ podSelector: { matchLabels: { pod: "b" } } }] }] } },
      ],
      probes: [],
    });
    const e = new PolicyEngine(view);
    expect(e.ingress(ip(ipOf("x/b")), ip(ipOf("x/a")), PROTO.UDP, 81)).toBe(Verdict.AllowedByRule);
    expect(e.decidedRule).toBe(1);
    expect(e.ingress(ip(ipOf("x/b")), ip(ipOf("x/a")), PROTO.TCP, 80)).toBe(Verdict.AllowedByRule);
    expect(e.decidedRule).toBe(0);
  });
});

// ---- Always allowed ----

describe("always allowed", () => {
  const e = new PolicyEngine(caseView(caseByName("default-deny-all")));
  const xa = ip(ipOf("x/a")); // on node1

  it("a pod to itself, through both sides, on any protocol", () => {
    for (const proto of [PROTO.TCP, PROTO.UDP, 1]) {
      expect(e.egress(xa, xa, proto, 80)).toBe(Verdict.NotIsolated);
      expect(e.ingress(xa, xa, proto, 80)).toBe(Verdict.NotIsolated);
    }
    expect(e.explain(xa, xa, PROTO.TCP, 80).egress.reason).toBe("x/a is talking to itself, which is always allowed.");
  });

  it("a pod and its own node's addresses, both ways; another node's are not", () => {
    for (const node of [ip("192.168.50.1"), ip("10.244.1.1")]) {
      expect(e.egress(xa, node, PROTO.TCP, 10250)).toBe(Verdict.NotIsolated);
      expect(e.ingress(node, xa, PROTO.TCP, 80)).toBe(Verdict.NotIsolated);
      expect(e.ingress(node, xa, 1, 0)).toBe(Verdict.NotIsolated);
    }
    for (const other of [ip("192.168.50.2"), ip("10.244.2.1")]) {
      expect(e.egress(xa, other, PROTO.TCP, 10250)).toBe(Verdict.Denied);
      expect(e.ingress(other, xa, PROTO.TCP, 80)).toBe(Verdict.Denied);
    }
    expect(e.explain(ip("192.168.50.1"), xa, PROTO.TCP, 80)).toMatchObject({
      allowed: true,
      ingress: { pod: "x/a", isolated: true, policies: ["x/deny-all"], allowed: true, reason: "192.168.50.1 is an address of x/a's own node node1, and traffic between a pod and its node is always allowed." },
    });
  });
});

// ---- Ports ----

const xaOnly = (policies: unknown[], pods: PodSpec[]): PolicyEngine =>
  new PolicyEngine(viewOf({ x: { ns: "x" }, y: { ns: "y" } }, pods, policies));
const policy = (ns: string, name: string, spec: Record<string, unknown>): unknown => ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: ns }, spec });

describe("named ports", () => {
  const pods: PodSpec[] = [
    { ns: "x", name: "client", labels: { app: "client" }, node: "node1", ip: "10.244.1.20", ports: [{ name: "web", containerPort: 9090 }] },
    { ns: "x", name: "q", labels: { app: "q" }, node: "node2", ip: "10.244.2.20", ports: [{ name: "web", containerPort: 8080 }, { name: "dns", containerPort: 53, protocol: "UDP" }] },
    { ns: "y", name: "r", labels: { app: "r" }, node: "node3", ip: "10.244.3.20", ports: [{ name: "web", containerPort: 9090 }, { name: "dns", containerPort: 5353, protocol: "TCP" }] },
  ];
  const [client, q, r] = pods.map((p) => ip(p.ip));

  it("an egress named port is resolved against each destination pod", () => {
    const e = xaOnly([policy("x", "web-out", { podSelector: { matchLabels: { app: "client" } }, policyTypes: ["Egress"], egress: [{ ports: [{ port: "web" }] }] })], pods);
    expect(e.egress(client, q, PROTO.TCP, 8080)).toBe(Verdict.AllowedByRule);
    expect(e.egress(client, q, PROTO.TCP, 9090)).toBe(Verdict.Denied);
    expect(e.egress(client, r, PROTO.TCP, 9090)).toBe(Verdict.AllowedByRule);
    expect(e.egress(client, r, PROTO.TCP, 8080)).toBe(Verdict.Denied);
    expect(e.egress(client, r, PROTO.UDP, 9090)).toBe(Verdict.Denied);
  });

  it("a named port never matches an address that is not a pod; a numbered one does", () => {
    const e = xaOnly([policy("x", "out", { podSelector: { matchLabels: { app: "client" } }, policyTypes: ["Egress"], egress: [{ ports: [{ port: "web" }, { port: 443 }] }] })], pods);
    expect(e.egress(client, ip("203.0.113.7"), PROTO.TCP, 8080)).toBe(Verdict.Denied);
    expect(e.egress(client, ip("203.0.113.7"), PROTO.TCP, 9090)).toBe(Verdict.Denied);
    expect(e.egress(client, ip("203.0.113.7"), PROTO.TCP, 443)).toBe(Verdict.AllowedByRule);
  });

  it("an ingress named port is resolved against the isolated pod, not the client", () => {
    const e = xaOnly([policy("x", "web-in", { podSelector: { matchLabels: { app: "q" } }, ingress: [{ ports: [{ port: "web" }] }] })], pods);
    expect(e.ingress(client, q, PROTO.TCP, 8080)).toBe(Verdict.AllowedByRule);
    expect(e.ingress(client, q, PROTO.TCP, 9090)).toBe(Verdict.Denied);
    expect(e.ingress(r, q, PROTO.TCP, 8080)).toBe(Verdict.AllowedByRule);
  });

  it("a named port matches by name and protocol", () => {
    const e = xaOnly([policy("y", "dns-in", { podSelector: {}, ingress: [{ ports: [{ port: "dns", protocol: "UDP" }] }] }), policy("x", "dns-in", { podSelector: {}, ingress: [{ ports: [{ port: "dns", protocol: "UDP" }] }] })], pods);
    expect(e.ingress(client, q, PROTO.UDP, 53)).toBe(Verdict.AllowedByRule);
    expect(e.ingress(client, q, PROTO.TCP, 53)).toBe(Verdict.Denied);
    expect(e.ingress(client, r, PROTO.UDP, 5353)).toBe(Verdict.Denied); // r's "dns" is TCP
    expect(e.ingress(client, r, PROTO.TCP, 5353)).toBe(Verdict.Denied);
  });
});

describe("protocols without ports", () => {
  const pods: PodSpec[] = [
    { ns: "x", name: "a", labels: { pod: "a" }, node: "node1", ip: "10.244.1.30" },
    { ns: "y", name: "b", labels: { pod: "b" }, node: "node2", ip: "10.244.2.30" },
  ];
  const [a, b] = pods.map((p) => ip(p.ip));
  const ICMP = 1;

  it("a rule with ports never matches ICMP, not even one naming only a protocol", () => {
    for (const ports of [[{ port: 80 }], [{ protocol: "TCP" }], [{ protocol: "UDP", port: 1, endPort: 65535 }]]) {
      const e = xaOnly([policy("x", "p", { podSelector: {}, ingress: [{ ports }] })], pods);
      expect(e.ingress(b, a, ICMP, 0)).toBe(Verdict.Denied);
      expect(e.ingress(b, a, ICMP, 8)).toBe(Verdict.Denied);
    }
  });

  it("a rule without ports matches ICMP and any other protocol", () => {
    const e = xaOnly([policy("x", "p", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }] }] })], pods);
    expect(e.ingress(b, a, ICMP, 0)).toBe(Verdict.AllowedByRule);
    expect(e.ingress(b, a, 47, 0)).toBe(Verdict.AllowedByRule);
    expect(e.explain(b, a, ICMP, 0).ingress.reason).toBe("Ingress rule 0 of x/p allows traffic from y/b on ICMP.");
  });
});

// ---- What validation refuses, in a view built without it ----

describe("a view with objects validation refuses", () => {
  const pods: ViewPod[] = [
    { ip: ip("10.244.1.40"), namespace: "x", name: "a", labels: { pod: "a" }, node: "node1", ports: [] },
    { ip: ip("10.244.2.40"), namespace: "x", name: "b", labels: { pod: "b" }, node: "node2", ports: [] },
    { ip: ip("10.244.2.40"), namespace: "y", name: "twin", labels: { pod: "b" }, node: "node2", ports: [] },
  ];
  const raw = (spec: unknown): NetworkPolicy => ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "bad", namespace: "x" }, spec }) as NetworkPolicy;
  const view = (p: NetworkPolicy): NetworkView => ({ serviceCidr: { network: ip("10.96.0.0"), prefix: 12 }, namespaces: [], pods, nodes: NODES, policies: [p], services: [] });

  it("makes the faulty peer or port match nothing, says why, and does not crash", () => {
    const e = new PolicyEngine(
      view(
        raw({
          podSelector: { matchLabels: { pod: "a" } },
          ingress: [
            { from: [{ ipBlock: { cidr: "10.244.2.40/16" } }, { ipBlock: { cidr: "10.0.0.0/8", except: ["nonsense"] } }, {}, { ipBlock: { cidr: "0.0.0.0/0" }, podSelector: {} }] },
            { ports: [{ protocol: "ICMP" }, { port: "web", endPort: 90 }] },
          ],
        }),
      ),
    );
    expect(e.problems).toEqual([
      "pods x/b and y/twin have the same address 10.244.2.40: y/twin is left out",
      'policy x/bad: spec.ingress[0].from[0]: ipBlock.cidr: "10.244.2.40/16" has host bits set (did you mean 10.244.0.0/16?): it matches nothing',
      'policy x/bad: spec.ingress[0].from[1]: ipBlock.except[0]: "nonsense" is not an IPv4 CIDR like 10.244.0.0/16: it matches nothing',
      "policy x/bad: spec.ingress[0].from[2]: no podSelector, namespaceSelector or ipBlock: it matches nothing",
      "policy x/bad: spec.ingress[0].from[3]: an ipBlock cannot be given with selectors: it matches nothing",
      'policy x/bad: spec.ingress[1].ports[0]: protocol "ICMP" is not TCP, UDP or SCTP: it matches nothing',
      "policy x/bad: spec.ingress[1].ports[1]: endPort needs a numbered port: it matches nothing",
    ]);
    const [a, b] = [pods[0].ip, pods[1].ip];
    for (const [proto, port] of [[PROTO.TCP, 80], [PROTO.UDP, 90], [1, 0]]) expect(e.ingress(b, a, proto, port)).toBe(Verdict.Denied);
    expect(e.podAt(b)?.name).toBe("b");
  });

  it("fills policyTypes as the API server does when it is missing", () => {
    const e = new PolicyEngine(view(raw({ podSelector: {}, egress: [{ ports: [{ port: 53, protocol: "UDP" }] }] })));
    expect(e.isolatedBy(pods[0].ip, "egress")).toEqual(["x/bad"]);
    expect(e.isolatedBy(pods[0].ip, "ingress")).toEqual(["x/bad"]);
    expect(e.egress(pods[0].ip, ip("10.96.0.10"), PROTO.UDP, 53)).toBe(Verdict.AllowedByRule);
  });
});

// ---- ipBlock and except against a naive model ----

describe("ipBlock with except", () => {
  const bits = (a: number): string => (a >>> 0).toString(2).padStart(32, "0");
  /** The naive model: the address's first `prefix` bits are the block's. */
  const inBlock = (addr: number, block: string): boolean => {
    const [net, prefix] = block.split("/");
    return bits(addr).slice(0, Number(prefix)) === bits(ip(net)).slice(0, Number(prefix));
  };
  const blockAround = (addr: number, prefix: number): string => {
    const net = prefix === 0 ? 0 : (addr >>> (32 - prefix)) * 2 ** (32 - prefix);
    return `${formatIpv4(net)}/${prefix}`;
  };

  it("matches exactly the addresses in cidr and in no except, both directions", () => {
    const rand = prng(SEED);
    const int = (n: number): number => Math.floor(rand() * n);
    const addr = (): number => int(2 ** 32);
    const pods: PodSpec[] = [{ ns: "x", name: "a", labels: { pod: "a" }, node: "node1", ip: "10.244.1.50" }];
    const a = ip("10.244.1.50");
    for (let t = 0; t < trials(300); t++) {
      const outer = int(33);
      const cidr = blockAround(addr(), outer);
      const except = outer === 32 ? [] : Array.from({ length: int(4) }, () => blockAround(ip(cidr.split("/")[0]) + int(2 ** (32 - outer)), outer + 1 + int(32 - outer)));
      const peer = { ipBlock: { cidr, ...(except.length > 0 ? { except } : {}) } };
      const e = xaOnly([policy("x", "out", { podSelector: {}, policyTypes: ["Ingress", "Egress"], ingress: [{ from: [peer] }], egress: [{ to: [peer] }] })], pods);
      const probes = [
        ...Array.from({ length: 20 }, addr),
        ...Array.from({ length: 20 }, () => ip(cidr.split("/")[0]) + int(2 ** (32 - outer))),
        ...except.flatMap((x) => {
          const [net, p] = x.split("/");
          const size = 2 ** (32 - Number(p));
          return [ip(net), ip(net) + size - 1, ip(net) - 1, ip(net) + size].map((v) => v >>> 0);
        }),
      ].filter((v) => !NODES[0].addresses.includes(v) && v !== a);
      for (const v of probes) {
        const want = inBlock(v, cidr) && !except.some((x) => inBlock(v, x));
        const verdict = want ? Verdict.AllowedByRule : Verdict.Denied;
        const at = `${formatIpv4(v)} against ${cidr} except [${except.join(", ")}] (seed ${SEED}, trial ${t})`;
        expect(e.egress(a, v, PROTO.TCP, 443), at).toBe(verdict);
        expect(e.ingress(v, a, PROTO.UDP, 53), at).toBe(verdict);
      }
    }
  });
});

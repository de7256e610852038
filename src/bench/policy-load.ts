/**
 * The policy load of a `+policy` bench setup (setups.ts): the manifests of 100 Services and 100
 * NetworkPolicies over the bench lab's pods, and the labels those pods get, written the way a
 * user would write them for `tapnet apply -f`, so that the switches evaluate real rules on every
 * flow the bench measures, and that flow is allowed.
 *
 * The lab's pods (namespace default, made by `lab up`) are labelled by role:
 *   client  node1-pod1         app=bench-client, tier=client
 *   server  node2-pod1, node1-pod2   app=bench-server, tier=server (container ports named
 *                              iperf 5201/TCP, iperf-udp 5201/UDP, sockperf 11111/UDP)
 *   idle    every other pod    app=bench-idle, tier=idle: isolated by default-deny policies
 * and each pod gets bench.tapnet.dev/pod=<its name>; the namespace default gets purpose=bench.
 *
 * Policy i (bench-pol-000 ...) is one of ten kinds, i mod 10:
 *   0 servers' ingress: a rule from app=load-<i> on another port, then one from the client on
 *     the named ports
 *   1 servers' ingress (podSelector In): from namespaceSelector AND podSelector, port ranges
 *     (port with endPort) around the bench's ports
 *   2 servers' ingress: from an ipBlock of the cluster CIDR with a /24 holding no pod excepted
 *     (the top one first, then the next down), every port
 *   3 client's egress: to app=load-<i> on port 53, then to the servers on the named ports
 *   4 client's egress: to every pod of every namespace (namespaceSelector {}), numbered ports
 *   5 client's egress: to the servers' addresses (ipBlock /32s), numbered ports
 *   6 ingress and egress of client and servers: from and to every pod but idle ones
 *   7 servers' ingress: from anyone, numbered ports
 *   8 default deny, both ways, for the idle pods and app=load-<i> (selects no bench traffic)
 *   9 client's egress: to anyone, numbered ports
 * so the client is isolated for egress and the servers for ingress (and both the other way by
 * kind 6), and the union of the rules allows exactly what the bench sends (and ICMP, through
 * kinds 2 and 6, which the setup's check uses) and keeps the idle pods out.
 *
 * Service i (bench-svc-000 ...), ClusterIP the service CIDR's address 100*256 + i + 1
 * (10.96.100.1 ...), one of four kinds, i mod 4: both servers on named target ports (iperf
 * 5201/TCP and sockperf 11111/UDP); both servers on port 80 (every 20th a NodePort, 30000 + i);
 * the cross-node server alone on 8080/TCP and 53/UDP (every other one with ClientIP affinity);
 * app=load-<i>, which no pod has (no endpoints).
 *
 * Everything is derived from the pods and the counts: the same lab gives the same manifest,
 * byte for byte. policyLoad() returns it and its objects as parseManifests reads and checks them.
 */
import { stringify } from "yaml";
import { cidrContains, formatCidr, nthSubnet, subnetCount, type Cidr } from "../wire/cidr.ts";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { parseManifests } from "../cluster/manifest.ts";
import type { KubeObject, LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, Service } from "../cluster/objects.ts";
import { BenchError } from "./figures.ts";

/** The ports the bench's servers listen on (runner.ts uses them too): what the policies allow. */
export const BENCH_PORTS = { iperf: 5201, sockperf: 11111 } as const;

/** How many of each the setup applies. */
export const POLICY_LOAD = { services: 100, policies: 100 } as const;

/** The lab's pods are in this namespace (`lab up` records them there). */
export const LOAD_NAMESPACE = "default";

export interface LoadPod {
  name: string;
  /** The node it is on (spec.nodeName). */
  node: string;
  ip: string;
}

export interface LoadPods {
  client: LoadPod;
  /** The pods the client measures against: across nodes, then on its node. */
  servers: LoadPod[];
  /** The lab's other pods: isolated, reached by nothing. */
  idle: LoadPod[];
}

export interface LoadOptions {
  /** The lab's cluster CIDR (ipBlock peers) and service CIDR (ClusterIPs). */
  clusterCidr: Cidr;
  serviceCidr: Cidr;
  services?: number;
  policies?: number;
}

export interface PolicyLoad {
  /** Multi-document YAML, as `tapnet apply -f` takes it. */
  manifest: string;
  /** Its objects, checked and defaulted by parseManifests: the namespace, the pods, the Services, the policies. */
  objects: KubeObject[];
}

export const ROLE_LABELS = {
  client: { app: "bench-client", tier: "client" },
  server: { app: "bench-server", tier: "server" },
  idle: { app: "bench-idle", tier: "idle" },
} as const;

const POD_LABEL = "bench.tapnet.dev/pod";
const NS_LABELS = { purpose: "bench" };
const pad = (i: number) => String(i).padStart(3, "0");
const loadApp = (i: number) => `load-${pad(i)}`;
const sel = (matchLabels: Record<string, string>): LabelSelector => ({ matchLabels });
const clientSel = sel({ app: ROLE_LABELS.client.app });
const serverSel = sel({ app: ROLE_LABELS.server.app });

const { iperf, sockperf } = BENCH_PORTS;
const NAMED: NetworkPolicyPort[] = [{ protocol: "TCP", port: "iperf" }, { protocol: "UDP", port: "iperf-udp" }, { protocol: "UDP", port: "sockperf" }];
const NUMBERED: NetworkPolicyPort[] = [{ protocol: "TCP", port: iperf }, { protocol: "UDP", port: iperf }, { protocol: "UDP", port: sockperf }];
const around = (p: number) => ({ port: Math.max(1, p - 100), endPort: Math.min(65535, p + 100) });
const RANGES: NetworkPolicyPort[] = [{ protocol: "TCP", ...around(iperf) }, { protocol: "UDP", ...around(iperf) }, { protocol: "UDP", ...around(sockperf) }];
const NOT_IDLE: LabelSelector = { matchExpressions: [{ key: "tier", operator: "NotIn", values: [ROLE_LABELS.idle.tier] }] };

function podObject(p: LoadPod, labels: Record<string, string>): KubeObject {
  return {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: p.name, namespace: LOAD_NAMESPACE, labels: { ...labels, [POD_LABEL]: p.name } },
    spec: {
      nodeName: p.node,
      containers: [{
        name: "pause",
        ports: [
          { name: "iperf", containerPort: iperf, protocol: "TCP" },
          { name: "iperf-udp", containerPort: iperf, protocol: "UDP" },
          { name: "sockperf", containerPort: sockperf, protocol: "UDP" },
        ],
      }],
    },
  };
}

/** The /24s of the cluster CIDR, from its top, that hold no pod of the lab: what ipBlocks may except. */
function freeSubnets(cidr: Cidr, pods: LoadPod[], want: number): string[] {
  const addrs = pods.map((p) => {
    const a = parseIpv4Address(p.ip);
    if (a === undefined) throw new BenchError(`pod ${p.name}: "${p.ip}" is not an IPv4 address`);
    return a;
  });
  const out: string[] = [];
  for (let k = subnetCount(cidr, 24) - 1; k >= 0 && out.length < want; k--) {
    const s = nthSubnet(cidr, 24, k)!;
    if (!addrs.some((a) => cidrContains(s, a))) out.push(formatCidr(s));
  }
  if (!out.length) throw new BenchError(`the cluster CIDR ${formatCidr(cidr)} has no /24 without a pod: the policy load's ipBlocks need one to except`);
  return out;
}

const inSel = (key: string, ...values: string[]): LabelSelector => ({ matchExpressions: [{ key, operator: "In", values }] });

function policy(i: number, pods: LoadPods, clusterCidr: string, except: string): NetworkPolicy {
  const app = loadApp(i);
  const { client, server, idle } = ROLE_LABELS;
  const spec = ((): NetworkPolicy["spec"] => {
    switch (i % 10) {
      case 0: return {
        podSelector: serverSel, policyTypes: ["Ingress"],
        ingress: [
          { from: [{ podSelector: sel({ app }) }], ports: [{ protocol: "TCP", port: 9000 + i }] },
          { from: [{ podSelector: clientSel }], ports: NAMED },
        ],
      };
      case 1: return {
        podSelector: inSel("app", server.app, app), policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: sel(NS_LABELS), podSelector: inSel("tier", client.tier) }], ports: RANGES }],
      };
      case 2: return {
        podSelector: sel({ tier: server.tier }), policyTypes: ["Ingress"],
        ingress: [{ from: [{ ipBlock: { cidr: clusterCidr, except: [except] } }] }],
      };
      case 3: return {
        podSelector: clientSel, policyTypes: ["Egress"],
        egress: [
          { to: [{ podSelector: sel({ app }) }], ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] },
          { to: [{ podSelector: serverSel }], ports: NAMED },
        ],
      };
      case 4: return {
        podSelector: inSel("tier", client.tier, app), policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: {} }], ports: NUMBERED }],
      };
      case 5: return {
        podSelector: clientSel, policyTypes: ["Egress"],
        egress: [{
          to: pods.servers.map((s): NetworkPolicyPeer => ({ ipBlock: { cidr: `${s.ip}/32` } })),
          ports: [{ protocol: "TCP", port: iperf, endPort: iperf }, ...NUMBERED.slice(1)],
        }],
      };
      case 6: return {
        podSelector: inSel("app", client.app, server.app), policyTypes: ["Ingress", "Egress"],
        ingress: [{ from: [{ namespaceSelector: sel(NS_LABELS), podSelector: NOT_IDLE }] }],
        egress: [{ to: [{ podSelector: { matchExpressions: [...NOT_IDLE.matchExpressions!, { key: "app", operator: "Exists" }] } }] }],
      };
      case 7: return {
        podSelector: { matchLabels: { tier: server.tier }, matchExpressions: [{ key: "app", operator: "Exists" }] }, policyTypes: ["Ingress"],
        ingress: [{ ports: NUMBERED }],
      };
      case 8: return { podSelector: inSel("app", idle.app, app), policyTypes: ["Ingress", "Egress"] };
      default: return { podSelector: sel({ tier: client.tier }), policyTypes: ["Egress"], egress: [{ ports: NUMBERED }] };
    }
  })();
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `bench-pol-${pad(i)}`, namespace: LOAD_NAMESPACE }, spec };
}

function service(i: number, pods: LoadPods, serviceCidr: Cidr): Service {
  const clusterIP = formatIpv4(serviceCidr.network + 100 * 256 + i + 1);
  const base = { type: "ClusterIP" as const, clusterIP, sessionAffinity: "None" as const };
  const spec = ((): Service["spec"] => {
    switch (i % 4) {
      case 0: return { ...base, selector: { app: ROLE_LABELS.server.app }, ports: [
        { name: "iperf", protocol: "TCP", port: iperf, targetPort: "iperf" },
        { name: "sockperf", protocol: "UDP", port: sockperf, targetPort: "sockperf" }] };
      case 1: return { ...base, ...(i % 20 === 1 ? { type: "NodePort" as const } : {}), selector: { ...ROLE_LABELS.server },
        ports: [{ protocol: "TCP", port: 80, targetPort: iperf, ...(i % 20 === 1 ? { nodePort: 30000 + i } : {}) }] };
      case 2: return { ...base, ...(i % 8 === 2 ? { sessionAffinity: "ClientIP" as const } : {}), selector: { [POD_LABEL]: pods.servers[0].name }, ports: [
        { name: "http", protocol: "TCP", port: 8080, targetPort: iperf },
        { name: "dns", protocol: "UDP", port: 53, targetPort: sockperf }] };
      default: return { ...base, selector: { app: loadApp(i) }, ports: [{ protocol: "TCP", port: 80, targetPort: 8080 }] };
    }
  })();
  return { apiVersion: "v1", kind: "Service", metadata: { name: `bench-svc-${pad(i)}`, namespace: LOAD_NAMESPACE }, spec };
}

function count(v: number | undefined, dflt: number, what: string): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < 0 || n > 1000) throw new BenchError(`the policy load's ${what} must be 0 to 1000, not ${n}`);
  return n;
}

/** The manifest and its objects: see the top of this file. */
export function policyLoad(pods: LoadPods, opts: LoadOptions): PolicyLoad {
  const services = count(opts.services, POLICY_LOAD.services, "services");
  const policies = count(opts.policies, POLICY_LOAD.policies, "policies");
  if (!pods.servers.length) throw new BenchError("the policy load needs at least one server pod");
  if (opts.serviceCidr.prefix > 16) throw new BenchError(`the service CIDR ${formatCidr(opts.serviceCidr)} is too small for the policy load's ClusterIPs (at least a /16)`);
  const all = [pods.client, ...pods.servers, ...pods.idle];
  const excepts = freeSubnets(opts.clusterCidr, all, 50);
  const cluster = formatCidr(opts.clusterCidr);
  const objects: KubeObject[] = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: LOAD_NAMESPACE, labels: { ...NS_LABELS } } },
    podObject(pods.client, ROLE_LABELS.client),
    ...pods.servers.map((p) => podObject(p, ROLE_LABELS.server)),
    ...pods.idle.map((p) => podObject(p, ROLE_LABELS.idle)),
    ...Array.from({ length: services }, (_, i) => service(i, pods, opts.serviceCidr)),
    ...Array.from({ length: policies }, (_, i) => policy(i, pods, cluster, excepts[Math.floor(i / 10) % excepts.length])),
  ];
  const head = `# tapnet bench's policy load: ${services} Services and ${policies} NetworkPolicies over the lab's pods\n` +
    `# (client ${pods.client.name}; servers ${pods.servers.map((p) => p.name).join(", ")}; idle ${pods.idle.map((p) => p.name).join(", ") || "none"})\n`;
  const manifest = head + objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
  return { manifest, objects: parseManifests(manifest, "the policy load") };
}

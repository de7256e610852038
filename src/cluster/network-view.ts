/**
 * The network view: what the switch's datapath needs of the cluster's objects to be kube-proxy
 * and a policy agent (issue #12), as plain data that crosses to the datapath thread by
 * structured clone. Addresses are IPv4 as unsigned 32-bit numbers, protocols by IP number.
 *
 * The node agent watches the store's Namespaces, Pods, Services, EndpointSlices,
 * NetworkPolicies and Nodes and builds a view from them (buildNetworkView) whenever they
 * change; `tapnet policy explain` builds the same view from the same objects.
 *
 * buildNetworkView keeps what has an address and leaves the rest out, never failing on it:
 *   - pods Running with a valid status.podIP (a pod being set up has none yet);
 *   - nodes with their InternalIPs and their gateway address (network + 1 of spec.podCIDR);
 *   - Services with an IPv4 clusterIP (not headless ones, nor one not yet allocated), each
 *     port with its endpoints as services.ts finds them;
 *   - every namespace and policy.
 * Every list is sorted (by name, or by namespace and name), so equal objects give equal views.
 */
import { parseCidr, type Cidr } from "../wire/cidr.ts";
import { parseIpv4Address } from "../wire/ipv4.ts";
import type { EndpointSlice, Namespace, NetworkPolicy, Node, Pod, Protocol, Service } from "./objects.ts";
import { affinitySeconds, podAddress, serviceEndpoints } from "./services.ts";

/** IP protocol numbers the view uses. */
export const PROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface ViewNamespace {
  name: string;
  labels: Record<string, string>;
}

/** A pod with an address: Running, with status.podIP. */
export interface ViewPod {
  ip: number;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** spec.nodeName. */
  node: string;
  /** Its containers' named ports (for named targetPorts and policy ports). */
  ports: { name: string; protocol: number; port: number }[];
}

export interface ViewNode {
  name: string;
  /** Its InternalIP, and its gateway address (the first address of its pod CIDR, tapnet0's). */
  addresses: number[];
}

export interface ViewEndpoint {
  ip: number;
  port: number;
}

export interface ViewServicePort {
  /** The port's name in the Service ("" when it has one port without a name). */
  name: string;
  protocol: number;
  port: number;
  /** Set on a NodePort Service. */
  nodePort?: number;
  /** Ready endpoints, each with the port its pod serves this one on (a named targetPort resolved per pod). */
  endpoints: ViewEndpoint[];
}

export interface ViewService {
  namespace: string;
  name: string;
  clusterIp: number;
  /** sessionAffinity ClientIP: how long a client stays with its endpoint, in seconds (10800 by default). */
  affinitySeconds?: number;
  ports: ViewServicePort[];
}

export interface NetworkView {
  /** The service CIDR ClusterIPs come from: traffic to it that matches no Service port is refused. */
  serviceCidr: { network: number; prefix: number };
  namespaces: ViewNamespace[];
  pods: ViewPod[];
  nodes: ViewNode[];
  /** As validated and defaulted (policyTypes filled), sorted by namespace and name. */
  policies: NetworkPolicy[];
  /** Services with a ClusterIP (headless ones are left out), sorted by namespace and name. */
  services: ViewService[];
}

/** The objects a view is built from: the store's lists of each kind. */
export interface ClusterObjects {
  namespaces: Namespace[];
  pods: Pod[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  policies: NetworkPolicy[];
  nodes: Node[];
}

const protocolNumber = (p: Protocol | undefined): number => PROTO[p ?? "TCP"];
const namespaceOf = (o: { metadata: { namespace?: string } }): string => o.metadata.namespace ?? "default";
/** `items` sorted by namespace and name (each key made once). */
function sortedByName<T extends { metadata: { namespace?: string; name: string } }>(items: T[]): T[] {
  return items
    .map((o) => [`${namespaceOf(o)}\0${o.metadata.name}`, o] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, o]) => o);
}

/** Groups `items` by namespace. */
function byNamespace<T extends { metadata: { namespace?: string } }>(items: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of items) {
    const ns = namespaceOf(x);
    const list = m.get(ns);
    if (list) list.push(x);
    else m.set(ns, [x]);
  }
  return m;
}

function viewPod(pod: Pod, ip: number): ViewPod {
  const ports: ViewPod["ports"] = [];
  for (const c of pod.spec.containers ?? []) {
    for (const p of c.ports ?? []) if (p.name) ports.push({ name: p.name, protocol: protocolNumber(p.protocol), port: p.containerPort });
  }
  return { ip, namespace: namespaceOf(pod), name: pod.metadata.name, labels: { ...(pod.metadata.labels ?? {}) }, node: pod.spec.nodeName ?? "", ports };
}

function viewNode(node: Node): ViewNode {
  const addresses: number[] = [];
  for (const a of node.status?.addresses ?? []) {
    const ip = a.type === "InternalIP" ? parseIpv4Address(a.address) : undefined;
    if (ip !== undefined) addresses.push(ip);
  }
  const cidr = node.spec?.podCIDR !== undefined ? parseCidr(node.spec.podCIDR) : undefined;
  if (typeof cidr === "object" && cidr.prefix < 31) addresses.push(cidr.network + 1);
  return { name: node.metadata.name, addresses };
}

function viewService(service: Service, clusterIp: number, pods: Pod[], slices: EndpointSlice[]): ViewService {
  const endpoints = serviceEndpoints(service, pods, slices);
  const ports = (service.spec.ports ?? []).map((p, i): ViewServicePort => ({
    name: p.name ?? "",
    protocol: protocolNumber(p.protocol),
    port: p.port,
    ...(service.spec.type === "NodePort" && p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
    endpoints: endpoints[i],
  }));
  const affinity = affinitySeconds(service);
  return {
    namespace: namespaceOf(service),
    name: service.metadata.name,
    clusterIp,
    ...(affinity !== undefined ? { affinitySeconds: affinity } : {}),
    ports,
  };
}

/** The view of `objects` (see the top of this file), with ClusterIPs from `serviceCidr`. */
export function buildNetworkView(objects: ClusterObjects, serviceCidr: Cidr): NetworkView {
  const pods: ViewPod[] = [];
  for (const pod of sortedByName(objects.pods)) {
    const ip = podAddress(pod);
    if (ip !== undefined) pods.push(viewPod(pod, ip));
  }
  const podsByNs = byNamespace(objects.pods);
  const slicesByNs = byNamespace(objects.endpointSlices);
  const services: ViewService[] = [];
  for (const s of sortedByName(objects.services)) {
    const ip = parseIpv4Address(s.spec.clusterIP ?? "");
    if (ip === undefined) continue;
    const ns = namespaceOf(s);
    services.push(viewService(s, ip, podsByNs.get(ns) ?? [], slicesByNs.get(ns) ?? []));
  }
  return {
    serviceCidr: { network: serviceCidr.network, prefix: serviceCidr.prefix },
    namespaces: sortedByName(objects.namespaces).map((n) => ({ name: n.metadata.name, labels: { ...(n.metadata.labels ?? {}) } })),
    pods,
    nodes: sortedByName(objects.nodes).map(viewNode),
    policies: sortedByName(objects.policies),
    services,
  };
}

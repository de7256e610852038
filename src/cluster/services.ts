/**
 * Services as Kubernetes' control plane and kube-proxy see them, off the hot path:
 *
 * Endpoints (what the EndpointSlice controller writes and kube-proxy reads), per Service port:
 *   - A Service with a selector: the pods of its namespace whose labels match it, Running with
 *     an address. A numeric targetPort is used as it is; a named one is looked up in each pod's
 *     containers (same name, same protocol), and a pod without it is no endpoint of that port.
 *     An empty selector counts as none, as the API server stores it (kubectl shows <none>).
 *   - A Service without a selector: its EndpointSlices (label kubernetes.io/service-name, same
 *     namespace). An endpoint counts unless conditions.ready is false; its first address is
 *     used (as kube-proxy does); a slice port serves the Service port of the same name and
 *     protocol, and a slice port without a number is skipped (kube-proxy has no "all ports").
 *   Endpoints come out sorted by address and port, each once.
 *
 * Addresses (what the API server allocates on create):
 *   - ClusterIPs from the service CIDR, never its network or broadcast address. As the API
 *     server has done since 1.24, a random address is taken from the upper part of the range
 *     first: the lower part (min(max(16, size/16), 256) addresses) is kept for Services that
 *     name their own clusterIP, like the cluster DNS at 10.96.0.10, and used only once the
 *     upper part is full.
 *   - NodePorts from 30000-32767, the same way (lower part min(max(16, 2768/32), 128) = 86 ports).
 *   - A clusterIP or nodePort the manifest gives is checked: inside the range, not taken by
 *     another Service. Errors are worded as the API server words them.
 */
import { cidrSize, formatCidr, type Cidr } from "../wire/cidr.ts";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import type { EndpointSlice, Pod, Protocol, Service, ServicePort } from "./objects.ts";
import { matchesLabels } from "./selectors.ts";
import type { ViewEndpoint } from "./network-view.ts";

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
/** sessionAffinity ClientIP's timeout when none is given (3 hours), and the most it may be (1 day). */
export const DEFAULT_AFFINITY_SECONDS = 10800;
export const MAX_AFFINITY_SECONDS = 86400;
/** The API server's default --service-node-port-range. */
export const NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;

// ---- Endpoints ----

/** A pod's address when it can be an endpoint (or be in the view): Running, with a valid status.podIP. */
export function podAddress(pod: Pod): number | undefined {
  if (pod.status?.phase !== "Running" || typeof pod.status.podIP !== "string") return undefined;
  return parseIpv4Address(pod.status.podIP);
}

const namespaceOf = (o: { metadata: { namespace?: string } }): string => o.metadata.namespace ?? "default";
const protocolOf = (p: { protocol?: Protocol }): Protocol => p.protocol ?? "TCP";

/** The port `pod` serves service port `sp` on, or undefined when it has no such named port. */
function targetPortOf(pod: Pod, sp: ServicePort): number | undefined {
  if (typeof sp.targetPort === "number") return sp.targetPort;
  if (sp.targetPort === undefined) return sp.port;
  for (const c of pod.spec.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name === sp.targetPort && protocolOf(p) === protocolOf(sp)) return p.containerPort;
    }
  }
  return undefined;
}

function sorted(endpoints: ViewEndpoint[]): ViewEndpoint[] {
  const seen = new Set<string>();
  return endpoints
    .filter((e) => {
      const key = `${e.ip}:${e.port}`;
      return seen.has(key) ? false : (seen.add(key), true);
    })
    .sort((a, b) => a.ip - b.ip || a.port - b.port);
}

/** Does the Service pick its pods by selector (else its EndpointSlices say where it goes)? */
export function hasSelector(service: Service): boolean {
  return service.spec.selector !== undefined && Object.keys(service.spec.selector).length > 0;
}

/**
 * The ready endpoints of each of the Service's ports, in the order of spec.ports. `pods` and
 * `slices` may hold objects of any namespace and Service: those not the Service's are ignored.
 */
export function serviceEndpoints(service: Service, pods: Pod[], slices: EndpointSlice[]): ViewEndpoint[][] {
  const ns = namespaceOf(service);
  const ports = service.spec.ports ?? [];
  if (hasSelector(service)) {
    const selector = service.spec.selector!;
    const members = pods.filter((p) => namespaceOf(p) === ns && matchesLabels(selector, p.metadata.labels));
    return ports.map((sp) => {
      const out: ViewEndpoint[] = [];
      for (const pod of members) {
        const ip = podAddress(pod);
        const port = ip === undefined ? undefined : targetPortOf(pod, sp);
        if (ip !== undefined && port !== undefined) out.push({ ip, port });
      }
      return sorted(out);
    });
  }
  const own = slices.filter((s) => namespaceOf(s) === ns && s.metadata.labels?.[SERVICE_NAME_LABEL] === service.metadata.name);
  return ports.map((sp) => {
    const out: ViewEndpoint[] = [];
    for (const slice of own) {
      const port = (slice.ports ?? []).find((p) => (p.name ?? "") === (sp.name ?? "") && protocolOf(p) === protocolOf(sp))?.port;
      if (port === undefined) continue;
      for (const e of slice.endpoints ?? []) {
        const ip = e.conditions?.ready === false ? undefined : parseIpv4Address(e.addresses?.[0] ?? "");
        if (ip !== undefined) out.push({ ip, port });
      }
    }
    return sorted(out);
  });
}

/** The spec field objects.ts does not name yet: spec.sessionAffinityConfig. */
type AffinitySpec = { sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } } };

/** How long a client stays with its endpoint (sessionAffinity ClientIP), in seconds; undefined without affinity. */
export function affinitySeconds(service: Service): number | undefined {
  if (service.spec.sessionAffinity !== "ClientIP") return undefined;
  const t = (service.spec as AffinitySpec).sessionAffinityConfig?.clientIP?.timeoutSeconds;
  return typeof t === "number" && Number.isInteger(t) && t > 0 && t <= MAX_AFFINITY_SECONDS ? t : DEFAULT_AFFINITY_SECONDS;
}

// ---- Allocation ----

/** An object the API server would refuse: one line per fault, "<path>: Invalid value: ...". */
export class AllocationError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.name = "AllocationError";
    this.problems = problems;
  }
}

/** A whole number in [0, n) from `random` (which gives [0, 1)); 0 for anything odd it returns. */
function below(n: number, random: () => number): number {
  const i = Math.floor(random() * n);
  return i >= 0 && i < n ? i : 0;
}

/** The size of the part kept for given values, as the API server's calculateRangeOffset. */
function staticBand(size: number, min: number, max: number, step: number): number {
  if (size <= min) return 0;
  return Math.min(max, Math.max(min, Math.floor(size / step)));
}

/**
 * A free index in [0, count): from a random start in the upper part [offset, count), going up
 * and round; then likewise in the lower part [0, offset). Undefined when every index is taken.
 */
function pickFree(count: number, offset: number, taken: (i: number) => boolean, random: () => number): number | undefined {
  for (const [from, size] of [[offset, count - offset], [0, offset]]) {
    if (size <= 0) continue;
    const start = below(size, random);
    for (let k = 0; k < size; k++) {
      const i = from + ((start + k) % size);
      if (!taken(i)) return i;
    }
  }
  return undefined;
}

/** The addresses of `cidr` a ClusterIP may have: all but the network and broadcast addresses. */
function usable(cidr: Cidr): { first: number; count: number } {
  return { first: cidr.network + 1, count: Math.max(0, cidrSize(cidr) - 2) };
}

/** A free ClusterIP of `serviceCidr`, at random (see the top of this file). Throws when every address is taken. */
export function allocateClusterIp(serviceCidr: Cidr, taken: Set<number>, random: () => number = Math.random): number {
  const { first, count } = usable(serviceCidr);
  const i = pickFree(count, staticBand(cidrSize(serviceCidr), 16, 256, 16), (k) => taken.has(first + k), random);
  if (i === undefined) throw new Error(`failed to allocate a serviceIP: range is full (every address of ${formatCidr(serviceCidr)} is taken)`);
  return first + i;
}

/** A free node port of 30000-32767, at random (see the top of this file). Throws when every port is taken. */
export function allocateNodePort(taken: Set<number>, random: () => number = Math.random): number {
  const { min, max } = NODE_PORT_RANGE;
  const size = max - min + 1;
  const i = pickFree(size, staticBand(size, 16, 128, 32), (k) => taken.has(min + k), random);
  if (i === undefined) throw new Error(`failed to allocate a nodePort: range is full (every port of ${min}-${max} is taken)`);
  return min + i;
}

const sameService = (a: Service, b: Service): boolean => namespaceOf(a) === namespaceOf(b) && a.metadata.name === b.metadata.name;

/**
 * `service` as the API server stores it on create: a copy with spec.clusterIP and clusterIPs
 * allocated from `serviceCidr` when not given, and on a NodePort Service each port's nodePort
 * allocated when not given. `others` are the cluster's other Services (of every namespace; the
 * Service itself, by namespace and name, is skipped, so that an update may call it again: what
 * is already set stays). A headless Service gets nothing. Throws AllocationError listing every
 * given value the API server would refuse.
 */
export function assignServiceAddresses(service: Service, others: Service[], serviceCidr: Cidr, random: () => number = Math.random): Service {
  const out = structuredClone(service);
  const spec = out.spec;
  if (spec.clusterIP === "None") return out;
  const rest = others.filter((o) => !sameService(o, service));
  const problems: string[] = [];

  const takenIps = new Set<number>();
  for (const o of rest) {
    const ip = parseIpv4Address(o.spec.clusterIP ?? "");
    if (ip !== undefined) takenIps.add(ip);
  }
  const given = spec.clusterIP || spec.clusterIPs?.[0] || undefined;
  if (given === undefined) {
    const ip = formatIpv4(allocateClusterIp(serviceCidr, takenIps, random));
    spec.clusterIP = ip;
    spec.clusterIPs = [ip];
  } else {
    const ip = parseIpv4Address(given);
    const { first, count } = usable(serviceCidr);
    const bad = `spec.clusterIP: Invalid value: "${given}": `;
    if (ip === undefined) problems.push(`${bad}must be empty, 'None', or a valid IP address`);
    else if (ip < first || ip >= first + count) problems.push(`${bad}provided IP is not in the valid range. The range of valid IPs is ${formatCidr(serviceCidr)}`);
    else if (takenIps.has(ip)) problems.push(`${bad}provided IP is already allocated`);
    spec.clusterIP = given;
    spec.clusterIPs = [given];
  }

  if (spec.type === "NodePort") {
    const takenPorts = new Set<number>();
    for (const o of rest) for (const p of o.spec.ports ?? []) if (p.nodePort !== undefined) takenPorts.add(p.nodePort);
    // The given ports first, so that one allocated for an earlier port never takes a later port's.
    (spec.ports ?? []).forEach((p, i) => {
      if (p.nodePort === undefined) return;
      const bad = `spec.ports[${i}].nodePort: Invalid value: ${p.nodePort}: `;
      const { min, max } = NODE_PORT_RANGE;
      if (p.nodePort < min || p.nodePort > max) problems.push(`${bad}provided port is not in the valid range. The range of valid ports is ${min}-${max}`);
      else if (takenPorts.has(p.nodePort)) problems.push(`${bad}provided port is already allocated`);
      takenPorts.add(p.nodePort);
    });
    if (problems.length === 0) {
      for (const p of spec.ports ?? []) {
        if (p.nodePort !== undefined) continue;
        p.nodePort = allocateNodePort(takenPorts, random);
        takenPorts.add(p.nodePort);
      }
    }
  }
  if (problems.length > 0) throw new AllocationError(problems);
  return out;
}

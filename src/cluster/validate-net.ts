/**
 * The field tables of Service, EndpointSlice and NetworkPolicy, and of label selectors, as the
 * API server checks and defaults them, for validate.ts:
 *   - Service: type ClusterIP, sessionAffinity None, port protocol TCP, targetPort = port; a
 *     clusterIP is an IPv4 address, "None" (headless) or left out; more than one port needs names;
 *     sessionAffinityConfig only with ClientIP, its timeout 1-86400 s, 10800 when left out.
 *   - EndpointSlice: addressType IPv4 only; ports get protocol TCP and name "".
 *   - NetworkPolicy: podSelector {} (every pod) when left out; policyTypes Ingress, plus Egress
 *     when spec.egress has rules (as the API server does: an empty egress list adds nothing);
 *     port protocol TCP; a peer is an ipBlock or selectors, never both; `except` strictly
 *     inside `cidr`.
 */
import { cidrInside, formatCidr } from "../wire/cidr.ts";
import { protocol } from "./validate-pod.ts";
import {
  bool, cidr, cidrOf, dnsLabel, dnsSubdomain, int, ipv4, isMapping, labels, labelValue, list, object, oneOf, portOrName,
  qualifiedName, show, str, unique, type Faults, type Schema,
} from "./validate-schema.ts";

const TCP = (): string => "TCP";

// ---- Label selectors ----

const requirement = object(
  {
    key: { schema: str(qualifiedName), required: true },
    operator: { schema: oneOf(["In", "NotIn", "Exists", "DoesNotExist"]), required: true },
    values: list(str(labelValue)),
  },
  (out, path, f, raw) => {
    const op = out.operator;
    const n = Array.isArray(raw.values) ? raw.values.length : 0;
    if ((op === "In" || op === "NotIn") && n === 0) f.add(`${path}.values`, `must have at least one value for operator ${op}`);
    if ((op === "Exists" || op === "DoesNotExist") && n > 0) f.add(`${path}.values`, `must be empty for operator ${op}`);
  },
);

export const selector = object({ matchLabels: labels, matchExpressions: list(requirement) });

// ---- Service ----

/** An IPv4 address or "None"; "" is the same as leaving it out (the API server then allocates one). */
const clusterIP: Schema = (v, path, f) => {
  if (v === "" || v === "None") return v === "" ? undefined : v;
  return str((s) => (ipv4(s) ? `"${s}" is not an IPv4 address or "None"` : undefined))(v, path, f);
};

const servicePort = object({
  name: str(dnsLabel),
  protocol: { schema: protocol, default: TCP },
  port: { schema: int(1, 65535), required: true },
  targetPort: { schema: portOrName(), default: (raw) => raw.port },
  nodePort: int(30000, 32767),
});

export const serviceSpec = object(
  {
    type: { schema: oneOf(["ClusterIP", "NodePort"], "tapnet has no LoadBalancer or ExternalName Services"), default: () => "ClusterIP" },
    selector: labels,
    clusterIP,
    clusterIPs: list(clusterIP, { max: 1 }),
    ipFamilies: list(oneOf(["IPv4"], "tapnet is IPv4 only"), { max: 1 }),
    ipFamilyPolicy: oneOf(["SingleStack"], "tapnet is IPv4 only"),
    internalTrafficPolicy: oneOf(["Cluster", "Local"]),
    ports: { schema: list(servicePort), default: () => [] },
    sessionAffinity: { schema: oneOf(["None", "ClientIP"]), default: () => "None" },
    sessionAffinityConfig: object({ clientIP: object({ timeoutSeconds: int(1, 86400) }) }),
  },
  checkService,
);

function checkService(out: Record<string, unknown>, path: string, f: Faults, raw: Record<string, unknown>): void {
  const ports = Array.isArray(out.ports) ? (out.ports as Record<string, unknown>[]) : [];
  const headless = out.clusterIP === "None";
  if (Array.isArray(out.clusterIPs) && out.clusterIPs.length > 0) {
    if (out.clusterIP === undefined && (raw.clusterIP == null || raw.clusterIP === "")) out.clusterIP = out.clusterIPs[0];
    else if (out.clusterIPs[0] !== out.clusterIP) f.add(`${path}.clusterIPs[0]`, `must be the same as spec.clusterIP (${show(out.clusterIP)}), not ${show(out.clusterIPs[0])}`);
  } else if (out.clusterIP !== undefined && raw.clusterIPs == null) out.clusterIPs = [out.clusterIP];
  if (Array.isArray(raw.ports) && raw.ports.length === 0 && !headless) f.add(`${path}.ports`, "must have at least one port (only a headless Service, clusterIP None, may have none)");
  else if (raw.ports == null && !headless) f.add(`${path}.ports`, "required field missing");
  if (ports.length > 1) {
    (raw.ports as unknown[]).forEach((p, i) => {
      if (isMapping(p) && p.name == null) f.add(`${path}.ports[${i}].name`, "required when a Service has more than one port");
    });
  }
  unique(ports, `${path}.ports`, "name", f, "port name");
  const seen = new Map<string, number>();
  ports.forEach((p, i) => {
    const key = `${p.port}/${p.protocol}`;
    const first = seen.get(key);
    if (first !== undefined) f.add(`${path}.ports[${i}]`, `port ${key} is already used by ${path}.ports[${first}]`);
    else seen.set(key, i);
    if (p.nodePort !== undefined && out.type !== "NodePort") f.add(`${path}.ports[${i}].nodePort`, `only a NodePort Service has node ports (spec.type is ${out.type})`);
  });
  if (headless && out.type === "NodePort") f.add(`${path}.clusterIP`, `a NodePort Service cannot be headless (clusterIP None)`);
  checkAffinity(out, path, f, raw);
  unique(ports, `${path}.ports`, "nodePort", f, "node port");
}

/**
 * sessionAffinityConfig goes only with sessionAffinity ClientIP; with ClientIP its timeout is
 * filled when left out (10800 s, 3 hours), as the API server does.
 */
function checkAffinity(out: Record<string, unknown>, path: string, f: Faults, raw: Record<string, unknown>): void {
  if (raw.sessionAffinityConfig != null && out.sessionAffinity === "None") {
    f.add(`${path}.sessionAffinityConfig`, "must not be set when session affinity is None (set sessionAffinity: ClientIP)");
  } else if (out.sessionAffinity === "ClientIP") {
    // (A bad timeout is a fault already: the object is refused, whatever is filled here.)
    const config = out.sessionAffinityConfig as { clientIP?: { timeoutSeconds?: number } } | undefined;
    if (config?.clientIP?.timeoutSeconds === undefined) out.sessionAffinityConfig = { clientIP: { timeoutSeconds: 10800 } };
  }
}

// ---- EndpointSlice (its fields are at the top level, beside metadata) ----

const endpoint = object({
  addresses: { schema: list(str(ipv4), { min: 1, max: 100 }), required: true },
  conditions: object({ ready: bool(), serving: bool(), terminating: bool() }),
  hostname: str(dnsLabel),
  nodeName: str(dnsSubdomain),
  zone: str(),
  targetRef: object({
    kind: { schema: oneOf(["Pod"]), required: true },
    namespace: str(dnsLabel),
    name: { schema: str(dnsSubdomain), required: true },
    uid: str(),
  }),
});

const endpointPort = object({
  name: { schema: str((s) => (s === "" ? undefined : dnsLabel(s))), default: () => "" },
  protocol: { schema: protocol, default: TCP },
  port: int(1, 65535),
  appProtocol: str(),
});

export const endpointSliceFields = {
  addressType: { schema: oneOf(["IPv4"], "tapnet is IPv4 only"), required: true },
  endpoints: { schema: list(endpoint, { max: 1000 }), required: true },
  ports: list(endpointPort, { max: 100 }),
};

export function checkEndpointSlice(out: Record<string, unknown>, _path: string, f: Faults): void {
  unique(out.ports, "ports", "name", f, "port name");
}

// ---- NetworkPolicy ----

const ipBlock = object(
  {
    cidr: { schema: str(cidr), required: true },
    except: list(str(cidr)),
  },
  (out, path, f) => {
    if (typeof out.cidr !== "string" || !Array.isArray(out.except)) return;
    const outer = cidrOf(out.cidr);
    (out.except as string[]).forEach((e, i) => {
      const inner = cidrOf(e);
      if (!cidrInside(inner, outer) || inner.prefix <= outer.prefix) f.add(`${path}.except[${i}]`, `${formatCidr(inner)} must be strictly inside cidr ${formatCidr(outer)}`);
    });
  },
);

const peer = object(
  { podSelector: selector, namespaceSelector: selector, ipBlock },
  (_out, path, f, raw) => {
    const selectors = raw.podSelector != null || raw.namespaceSelector != null;
    if (raw.ipBlock != null && selectors) f.add(`${path}.ipBlock`, "cannot be given with podSelector or namespaceSelector in the same peer");
    else if (raw.ipBlock == null && !selectors) f.add(path, "must have a podSelector, a namespaceSelector or an ipBlock");
  },
);

const policyPort = object(
  {
    protocol: { schema: protocol, default: TCP },
    port: portOrName(),
    endPort: int(1, 65535),
  },
  (out, path, f, raw) => {
    if (raw.endPort == null) return;
    if (typeof raw.port !== "number") f.add(`${path}.endPort`, "needs a numbered port (a port range cannot start at a named port)");
    else if (typeof out.endPort === "number" && out.endPort < raw.port) f.add(`${path}.endPort`, `must be at least port (${raw.port}), not ${out.endPort}`);
  },
);

/** What the API server fills when policyTypes is left out or empty. */
function policyTypes(raw: Record<string, unknown>): string[] {
  return Array.isArray(raw.egress) && raw.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

export const networkPolicySpec = object(
  {
    podSelector: { schema: selector, default: () => ({}) },
    policyTypes: { schema: list(oneOf(["Ingress", "Egress"]), { max: 2 }), default: policyTypes },
    ingress: list(object({ from: list(peer), ports: list(policyPort) })),
    egress: list(object({ to: list(peer), ports: list(policyPort) })),
  },
  (out, path, f, raw) => {
    const types = out.policyTypes;
    if (Array.isArray(types) && types.length === 0) out.policyTypes = policyTypes(raw);
    if (Array.isArray(types) && types.length === 2 && types[0] === types[1]) f.add(`${path}.policyTypes[1]`, `"${types[1]}" is listed twice`);
  },
);

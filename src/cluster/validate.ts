/**
 * One Kubernetes object, checked and completed the way `kubectl apply --validate=strict` and the
 * API server would: the apiVersion must be the kind's; unknown kinds and unknown fields are
 * refused with the field's path; names, ports, protocols, labels, selectors, addresses and
 * CIDRs are checked by Kubernetes' rules; defaults are filled (namespace "default", Service
 * type ClusterIP, protocols TCP, targetPort = port, NetworkPolicy policyTypes, ...). Every fault
 * in the object is reported, one line each: `<where>: <path>: <what is wrong>`.
 *
 * metadata: name (required: generateName is refused, tapnet needs names), namespace (namespaced
 * kinds; refused on Namespace and Node), labels, annotations. The fields the server owns (uid,
 * resourceVersion, creationTimestamp, generation, managedFields, selfLink) are accepted, so that
 * `kubectl get -o yaml` output applies, and dropped: the store sets its own. Other metadata
 * (ownerReferences, finalizers, ...) is refused.
 *
 * status: a Pod's and a Node's status is tapnet's to write, so it is checked and kept. On the
 * other kinds tapnet writes none, so a status (as `kubectl get -o yaml` prints it) is accepted
 * and dropped, as the API server ignores status written through the main resource.
 *
 * The field tables are in validate-pod.ts and validate-net.ts, the walker in validate-schema.ts.
 */
import { kindInfo } from "./kinds.ts";
import { KINDS, type Kind, type KubeObject } from "./objects.ts";
import { nodeSpec, nodeStatus, podSpec, podStatus } from "./validate-pod.ts";
import { checkEndpointSlice, endpointSliceFields, networkPolicySpec, serviceSpec } from "./validate-net.ts";
import {
  anything, dns1035Label, dnsLabel, dnsSubdomain, Faults, isMapping, labels, map, object, opaque, qualifiedName, refused, show, str,
  type After, type Fields, type Schema,
} from "./validate-schema.ts";

/** A manifest or object refused: one line per fault, each naming where and the field's path. */
export class ManifestError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.name = "ManifestError";
    this.problems = problems;
  }
}

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const NAME_RULES: Record<Kind, (s: string) => string | undefined> = {
  Namespace: dnsLabel,
  Node: dnsSubdomain,
  Pod: dnsSubdomain,
  Service: dns1035Label,
  EndpointSlice: dnsSubdomain,
  NetworkPolicy: dnsSubdomain,
};

const SERVER_OWNED = ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"];

function metadata(kind: Kind): Schema {
  const namespaced = kindInfo(kind).namespaced;
  const namespace: Schema = namespaced
    ? (v, path, f) => (v === "" ? "default" : str(dnsLabel)(v, path, f))
    : (v, path, f) => (v === "" ? undefined : f.add(path, `a ${kind} is not namespaced: remove metadata.namespace`));
  const fields: Fields = {
    name: { schema: str(NAME_RULES[kind]), required: true },
    generateName: refused("tapnet needs every object named: set metadata.name (generateName is not supported)"),
    namespace: namespaced ? { schema: namespace, default: () => "default" } : namespace,
    labels,
    annotations: map(qualifiedName, str()),
  };
  for (const k of SERVER_OWNED) fields[k] = { schema: anything, drop: true };
  return object(fields, (out, path, f) => {
    const a = out.annotations as Record<string, string> | undefined;
    const bytes = (s: string): number => new TextEncoder().encode(s).length;
    const size = a ? Object.entries(a).reduce((n, [k, v]) => n + bytes(k) + bytes(v), 0) : 0;
    if (size > MAX_ANNOTATIONS_BYTES) f.add(`${path}.annotations`, `total ${size} bytes; the limit is ${MAX_ANNOTATIONS_BYTES}`);
  });
}

const dropStatus = { schema: opaque("mapping"), drop: true };

/** The top-level fields of each kind, besides apiVersion and kind; and a check across them. */
function body(kind: Kind): { fields: Fields; after?: After } {
  const meta = { schema: metadata(kind), required: true };
  switch (kind) {
    case "Namespace":
      // A Namespace's spec holds only finalizers, which the API server owns: accepted, dropped.
      return { fields: { metadata: meta, spec: { schema: object({ finalizers: opaque("list") }), drop: true }, status: dropStatus } };
    case "Node":
      return { fields: { metadata: meta, spec: { schema: nodeSpec, default: () => ({}) }, status: nodeStatus } };
    case "Pod":
      return { fields: { metadata: meta, spec: { schema: podSpec, required: true }, status: podStatus } };
    case "Service":
      return { fields: { metadata: meta, spec: { schema: serviceSpec, required: true }, status: dropStatus } };
    case "EndpointSlice":
      return { fields: { metadata: meta, ...endpointSliceFields }, after: checkEndpointSlice };
    case "NetworkPolicy":
      return { fields: { metadata: meta, spec: { schema: networkPolicySpec, required: true }, status: dropStatus } };
  }
}

const SCHEMAS = new Map<Kind, Schema>(
  KINDS.map((kind) => {
    const { apiVersion } = kindInfo(kind);
    const { fields, after } = body(kind);
    const version: Schema = (v, path, f) => (v === apiVersion ? v : f.add(path, `must be "${apiVersion}" for a ${kind}, not ${show(v)}`));
    return [kind, object({ apiVersion: { schema: version, required: true }, kind: { schema: anything, required: true }, ...fields }, after)];
  }),
);

/** The kind `raw` names, or undefined when it names none (say so in `f`). */
function kindOf(raw: Record<string, unknown>, f: Faults): Kind | undefined {
  const kind = raw.kind;
  if (kind === undefined || kind === null) return void f.add("kind", `required field missing (one of ${KINDS.join(", ")})`);
  if (typeof kind === "string" && (KINDS as readonly string[]).includes(kind)) return kind as Kind;
  const near = typeof kind === "string" ? KINDS.find((k) => k.toLowerCase() === kind.toLowerCase()) : undefined;
  const hint = near ? `did you mean "${near}"?` : `tapnet knows ${KINDS.join(", ")}`;
  return void f.add("kind", `unknown kind ${show(kind)} (${hint})`);
}

/**
 * Checks one object and returns it with the API server's defaults filled. `where` begins every
 * message: "pods.yaml: document 2 (Pod web)". Throws ManifestError listing every fault.
 */
export function validateObject(raw: unknown, where: string): KubeObject {
  const f = new Faults();
  let out: unknown;
  if (!isMapping(raw)) f.add("", `must be a mapping with apiVersion, kind and metadata, not ${Array.isArray(raw) ? "a list" : show(raw)}`);
  else {
    const kind = kindOf(raw, f);
    if (kind) out = SCHEMAS.get(kind)!(raw, "", f);
  }
  if (f.list.length > 0) throw new ManifestError(f.list.map((p) => `${where}: ${p}`));
  return out as KubeObject;
}

/**
 * `kubectl apply` and `kubectl delete` over an ObjectStore: what `tapnet apply|delete` do,
 * directly on a store or inside a switch (the agent's "objects.apply"/"objects.delete").
 *
 * Apply checks the whole input first, then writes object by object, in order:
 *  - A namespaced object's namespace must exist in the store ("default" always does) or be
 *    created by a Namespace earlier in the same input; fields the server owns may not change
 *    (a pod's spec.nodeName, a service's spec.clusterIP). If any object fails these checks the
 *    whole input is refused with an ApplyError and nothing is written.
 *  - An object not in the store is created ("created"). One that is gets the manifest's desired
 *    state: every top-level field but metadata and status (spec; an EndpointSlice's endpoints),
 *    its labels and annotations, while the store's identity (uid, resourceVersion,
 *    creationTimestamp), its status, the annotations tapnet writes (tapnet.dev/...) and the
 *    spec fields the server fills (nodeName, clusterIP) are kept when the manifest leaves
 *    them out. If that changes nothing the object is "unchanged" and not written, else it is
 *    updated ("configured"), conditional on the revision read; a conflict re-reads and merges
 *    again, a few times.
 *  - A Service gets its addresses as the API server gives them (services.ts): on create a
 *    ClusterIP from the service CIDR (default 10.96.0.0/12) and, on a NodePort Service, a node
 *    port for each port that names none; a configure keeps them (a node port by the port and
 *    protocol it belongs to) and allocates what a change makes missing (type NodePort, a new
 *    port). A given address taken by another Service or out of range fails that object.
 *  - A write that fails (the store is unreachable, say) fails that object only; the others go on,
 *    as kubectl goes on. Objects in a namespace whose creation failed fail too.
 * Delete takes refs in the order to delete them; deleting a Namespace takes its objects along
 * (the store does that). refsForDelete gives a file's refs last first, pods before namespaces.
 *
 * Results are plain JSON, so that they cross the switch's control socket unchanged.
 */
import { parseCidr, type Cidr } from "../wire/cidr.ts";
import { kindInfo } from "./kinds.ts";
import { kubectlName } from "./print.ts";
import { ANNOTATIONS, refOf, type Kind, type KubeObject, type ObjectMeta, type ObjectRef, type Service, type ServicePort } from "./objects.ts";
import { AllocationError, assignServiceAddresses } from "./services.ts";
import { AlreadyExistsError, ConflictError, NotFoundError, type ObjectStore } from "./store.ts";

export type ApplyOutcome = "created" | "configured" | "unchanged" | "failed";
export type DeleteOutcome = "deleted" | "not found" | "failed";

export interface ApplyResult {
  ref: ObjectRef;
  /** The apiVersion the object was applied with (kubectl names it by resource and group). */
  apiVersion: string;
  outcome: ApplyOutcome;
  /** Why, when it failed. */
  error?: string;
}

export interface DeleteResult {
  ref: ObjectRef;
  outcome: DeleteOutcome;
  error?: string;
}

/** The whole input was refused; nothing was written. */
export class ApplyError extends Error {}

/** What `tapnet apply|delete|get` act on: a store directly, or the store of a switch over its socket. */
export interface ClusterClient {
  apply(objects: KubeObject[]): Promise<ApplyResult[]>;
  delete(refs: ObjectRef[]): Promise<DeleteResult[]>;
  /** Every object of `kind`, in `namespace` (undefined: all namespaces), sorted by namespace and name. */
  list(kind: Kind, namespace?: string): Promise<KubeObject[]>;
  get(ref: ObjectRef): Promise<KubeObject | null>;
}

export interface ApplyOptions {
  /** Where Services' ClusterIPs come from (default 10.96.0.0/12, the API server's). */
  serviceCidr?: Cidr;
}

/** Kubernetes' default --service-cluster-ip-range. */
export const DEFAULT_SERVICE_CIDR = parseCidr("10.96.0.0/12") as Cidr;

/** A ClusterClient straight on a store. */
export function storeClient(store: ObjectStore, opts: ApplyOptions = {}): ClusterClient {
  return {
    apply: (objects) => applyObjects(store, objects, opts),
    delete: (refs) => deleteObjects(store, refs),
    list: (kind, namespace) => store.list(kind, namespace),
    get: async (ref) => (await store.get(ref)) ?? null,
  };
}

/** How many times an update that lost a race is read, merged and tried again. */
const ATTEMPTS = 5;

/** The annotations tapnet itself writes: kept on a stored object when a manifest leaves them out. */
const SERVER_ANNOTATION_PREFIX = ANNOTATIONS.netns.slice(0, ANNOTATIONS.netns.indexOf("/") + 1);

/** The ref with the namespace a namespaced kind is in ("default" when unset), none for the others. */
export function normalRef(ref: ObjectRef): ObjectRef {
  if (!kindInfo(ref.kind).namespaced) return { kind: ref.kind, name: ref.name };
  return { kind: ref.kind, namespace: ref.namespace ?? "default", name: ref.name };
}

function withRef(o: KubeObject): KubeObject {
  const ref = normalRef(refOf(o));
  const meta: ObjectMeta = { ...o.metadata, name: ref.name };
  delete meta.namespace;
  if (ref.namespace !== undefined) meta.namespace = ref.namespace;
  // Identity is the store's: a manifest saved from `get -o yaml` does not carry it back.
  delete meta.uid;
  delete meta.resourceVersion;
  delete meta.creationTimestamp;
  return { ...o, metadata: meta };
}

const refKey = (r: ObjectRef) => `${r.kind}/${r.namespace ?? ""}/${r.name}`;

export async function applyObjects(store: ObjectStore, objects: KubeObject[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
  const serviceCidr = opts.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const input = objects.map(withRef);
  await checkInput(store, input);
  const results: ApplyResult[] = [];
  const failedNamespaces = new Set<string>();
  for (const o of input) {
    const ref = refOf(o);
    const result: ApplyResult = { ref, apiVersion: o.apiVersion, outcome: "failed" };
    if (ref.namespace !== undefined && failedNamespaces.has(ref.namespace)) {
      result.error = `namespaces "${ref.namespace}" not found`;
    } else {
      try {
        result.outcome = await applyOne(store, o, serviceCidr);
      } catch (e) {
        result.error = (e as Error).message;
        if (o.kind === "Namespace") failedNamespaces.add(o.metadata.name);
      }
    }
    results.push(result);
  }
  return results;
}

/** Refuses the whole input if any object cannot be applied: see the top of this file. */
async function checkInput(store: ObjectStore, input: KubeObject[]): Promise<void> {
  const namespaces = new Map<string, boolean>([["default", true]]);
  const problems: string[] = [];
  for (const o of input) {
    const ref = refOf(o);
    const where = `${kubectlName(o.kind, o.apiVersion)}/${ref.name}${ref.namespace ? ` -n ${ref.namespace}` : ""}`;
    if (ref.namespace !== undefined) {
      let known = namespaces.get(ref.namespace);
      if (known === undefined) {
        known = (await store.get({ kind: "Namespace", name: ref.namespace })) !== undefined;
        namespaces.set(ref.namespace, known);
      }
      if (!known) problems.push(`${where}: namespaces "${ref.namespace}" not found`);
    }
    if (o.kind === "Namespace") namespaces.set(o.metadata.name, true);
    const stored = await store.get(ref);
    const why = stored ? immutableChange(stored, o) : undefined;
    if (why) problems.push(`${where}: ${why}`);
  }
  if (problems.length) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more: ${problems.slice(1).join("; ")})` : "";
    throw new ApplyError(`${problems[0]}${more}; nothing was applied`);
  }
}

interface ServerSpec {
  nodeName?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  type?: string;
  ports?: ServicePort[];
}

const serverSpec = (o: KubeObject): ServerSpec => (typeof o.spec === "object" && o.spec !== null ? (o.spec as ServerSpec) : {});

/** Why `applied` may not replace `stored` (as the API server refuses it), or undefined. */
function immutableChange(stored: KubeObject, applied: KubeObject): string | undefined {
  const was = serverSpec(stored);
  const now = serverSpec(applied);
  if (applied.kind === "Pod" && was.nodeName && now.nodeName && was.nodeName !== now.nodeName) {
    return `spec.nodeName: Forbidden: the pod is on node "${was.nodeName}" and cannot move to "${now.nodeName}" (delete it and apply it again)`;
  }
  if (applied.kind === "Service" && was.clusterIP && now.clusterIP && was.clusterIP !== now.clusterIP) {
    return `spec.clusterIP: Invalid value: "${now.clusterIP}": field is immutable (it is "${was.clusterIP}")`;
  }
  return undefined;
}

/** The stored object with the manifest's desired state: see the top of this file. */
export function mergeApplied(stored: KubeObject, applied: KubeObject): KubeObject {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(applied)) if (k !== "metadata" && k !== "status" && v !== undefined) out[k] = v;
  const sm = stored.metadata;
  const meta: ObjectMeta = { name: sm.name };
  if (sm.namespace !== undefined) meta.namespace = sm.namespace;
  if (applied.metadata.labels !== undefined) meta.labels = applied.metadata.labels;
  const kept = Object.entries(sm.annotations ?? {}).filter(([k]) => k.startsWith(SERVER_ANNOTATION_PREFIX));
  const annotations = { ...Object.fromEntries(kept), ...(applied.metadata.annotations ?? {}) };
  if (applied.metadata.annotations !== undefined || kept.length) meta.annotations = annotations;
  if (sm.uid !== undefined) meta.uid = sm.uid;
  if (sm.resourceVersion !== undefined) meta.resourceVersion = sm.resourceVersion;
  if (sm.creationTimestamp !== undefined) meta.creationTimestamp = sm.creationTimestamp;
  out.metadata = meta;
  const was = serverSpec(stored);
  if (typeof out.spec === "object" && out.spec !== null) {
    const spec = { ...(out.spec as Record<string, unknown>) };
    if (stored.kind === "Pod" && was.nodeName && spec.nodeName === undefined) spec.nodeName = was.nodeName;
    if (stored.kind === "Service") keepServiceAddresses(was, spec as ServerSpec);
    out.spec = spec;
  }
  if (stored.status !== undefined) out.status = stored.status;
  return out as unknown as KubeObject;
}

/**
 * What the API server keeps of a Service's allocated addresses when an update leaves them out:
 * its ClusterIP, and each node port while the Service stays NodePort, found by port and protocol.
 */
function keepServiceAddresses(was: ServerSpec, spec: ServerSpec): void {
  if (was.clusterIP && spec.clusterIP === undefined) spec.clusterIP = was.clusterIP;
  if (was.clusterIPs && spec.clusterIPs === undefined && spec.clusterIP === was.clusterIP) spec.clusterIPs = was.clusterIPs;
  if (was.type !== "NodePort" || spec.type !== "NodePort" || !Array.isArray(spec.ports)) return;
  spec.ports = spec.ports.map((p) => {
    if (p.nodePort !== undefined) return p;
    const old = was.ports?.find((q) => q.port === p.port && (q.protocol ?? "TCP") === (p.protocol ?? "TCP"));
    return old?.nodePort !== undefined ? { ...p, nodePort: old.nodePort } : p;
  });
}

/** Does an update of a Service need the allocator: an address missing, or a node port it did not hold? */
function needsAllocation(stored: Service, merged: Service): boolean {
  const spec = merged.spec;
  if (spec.clusterIP === "None") return false;
  if (!spec.clusterIP) return true;
  const held = new Set((stored.spec.ports ?? []).map((p) => p.nodePort));
  return spec.type === "NodePort" && (spec.ports ?? []).some((p) => p.nodePort === undefined || !held.has(p.nodePort));
}

/** `service` with the addresses the API server gives it; an address it would refuse fails the object. */
async function withAddresses(store: ObjectStore, service: Service, serviceCidr: Cidr): Promise<Service> {
  const others = (await store.list("Service")) as Service[];
  try {
    return assignServiceAddresses(service, others, serviceCidr);
  } catch (e) {
    const problems = e instanceof AllocationError ? e.problems : [(e as Error).message];
    throw new ApplyError(`The Service "${service.metadata.name}" is invalid: ${problems.join("; ")}`);
  }
}

/** JSON with sorted keys: equal for equal objects whatever order their keys were written in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x !== "object" || x === null || Array.isArray(x)) return x;
    return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

async function applyOne(store: ObjectStore, o: KubeObject, serviceCidr: Cidr): Promise<ApplyOutcome> {
  const ref = refOf(o);
  let lastConflict: Error | undefined;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const stored = await store.get(ref);
    try {
      if (!stored) {
        await store.create(o.kind === "Service" ? await withAddresses(store, o as Service, serviceCidr) : o);
        return "created";
      }
      const why = immutableChange(stored, o);
      if (why) throw new ApplyError(why);
      let merged = mergeApplied(stored, o);
      if (merged.kind === "Service" && needsAllocation(stored as Service, merged as Service)) merged = await withAddresses(store, merged as Service, serviceCidr);
      if (canonical(merged) === canonical(stored)) return "unchanged";
      await store.update(merged);
      return "configured";
    } catch (e) {
      // Someone else wrote or deleted it between our read and our write: read again.
      if (e instanceof ConflictError || e instanceof AlreadyExistsError || e instanceof NotFoundError) {
        lastConflict = e;
        continue;
      }
      throw e;
    }
  }
  throw new ApplyError(`gave up after ${ATTEMPTS} attempts: the object kept changing under us (${lastConflict?.message})`);
}

/** Deletes each ref in the order given. */
export async function deleteObjects(store: ObjectStore, refs: ObjectRef[]): Promise<DeleteResult[]> {
  const results: DeleteResult[] = [];
  for (const r of refs) {
    const ref = normalRef(r);
    try {
      results.push({ ref, outcome: (await store.delete(ref)) ? "deleted" : "not found" });
    } catch (e) {
      results.push({ ref, outcome: "failed", error: (e as Error).message });
    }
  }
  return results;
}

/**
 * The refs to delete for the objects of a file (`delete -f`): last first, so that what lives
 * in a namespace goes before the namespace, each object once.
 */
export function refsForDelete(objects: KubeObject[]): ObjectRef[] {
  const seen = new Set<string>();
  const refs: ObjectRef[] = [];
  for (const o of [...objects].reverse()) {
    const ref = normalRef(refOf(o));
    if (seen.has(refKey(ref))) continue;
    seen.add(refKey(ref));
    refs.push(ref);
  }
  return refs;
}

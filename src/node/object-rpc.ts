/**
 * The control socket's object methods: `tapnet apply/delete/get` against a node reach the
 * store its switch was started with through these (rpc.ts carries them). Objects are checked
 * again here, as the API server checks what kubectl sends: the socket takes JSON from anyone
 * who can open it.
 *   objects.apply  {objects}      → ApplyResult[] (Services' ClusterIPs from the cluster config's serviceCidr)
 *   objects.delete {refs}         → DeleteResult[]
 *   objects.list   {kind, namespace?} → objects (Nodes' Ready from the live leases, with etcd)
 *   objects.get    {ref}          → object or null
 */
import { applyObjects, deleteObjects } from "../cluster/apply.ts";
import { KINDS, type KubeObject, type Kind, type Node, type ObjectRef } from "../cluster/objects.ts";
import { validateObject } from "../cluster/validate.ts";
import type { StoreSync } from "./store-sync.ts";
import { RpcError } from "./rpc.ts";

function kindOf(v: unknown): Kind {
  if (typeof v !== "string" || !(KINDS as readonly string[]).includes(v)) throw new RpcError(`unknown kind ${JSON.stringify(v)} (known: ${KINDS.join(", ")})`);
  return v as Kind;
}

function parseRef(v: unknown, i: number): ObjectRef {
  const r = v as Record<string, unknown> | null;
  if (typeof r !== "object" || r === null || typeof r.name !== "string" || !r.name) throw new RpcError(`refs[${i}]: needs kind and name`);
  return { kind: kindOf(r.kind), name: r.name, ...(typeof r.namespace === "string" ? { namespace: r.namespace } : {}) };
}

/** Shows each Node Ready as its lease says (etcd): a node that stopped renewing is NotReady. */
function withLiveness(objects: KubeObject[], live: Set<string> | undefined): KubeObject[] {
  if (!live) return objects;
  return objects.map((o) => {
    const n = o as Node;
    const ready = live.has(n.metadata.name);
    const conditions = (n.status?.conditions ?? []).filter((c) => c.type !== "Ready");
    conditions.unshift({ type: "Ready", status: ready ? "True" : "False", reason: ready ? "LeaseHeld" : "LeaseExpired" });
    return { ...n, status: { ...n.status, conditions } };
  });
}

export function objectHandlers(sync: StoreSync | undefined): Record<string, (p: Record<string, unknown>) => Promise<unknown>> {
  const need = (): StoreSync => {
    if (!sync) throw new RpcError("this switch runs without a cluster store (start it with --store)");
    return sync;
  };
  return {
    "objects.apply": async (p) => {
      const s = need();
      if (!Array.isArray(p.objects)) throw new RpcError("objects.apply needs objects: a list");
      const objects = p.objects.map((o, i) => validateObject(o, `objects[${i}]`));
      return applyObjects(s.store, objects, { serviceCidr: s.config.serviceCidr });
    },
    "objects.delete": async (p) => {
      const s = need();
      if (!Array.isArray(p.refs)) throw new RpcError("objects.delete needs refs: a list");
      return deleteObjects(s.store, p.refs.map(parseRef));
    },
    "objects.list": async (p) => {
      const s = need();
      const kind = kindOf(p.kind);
      const list = await s.store.list(kind, typeof p.namespace === "string" ? p.namespace : undefined);
      return kind === "Node" ? withLiveness(list, s.liveNodes()) : list;
    },
    "objects.get": async (p) => {
      const s = need();
      const ref = parseRef(p.ref, 0);
      const o = await s.store.get(ref);
      if (!o) return null;
      return ref.kind === "Node" ? withLiveness([o], s.liveNodes())[0] : o;
    },
  };
}

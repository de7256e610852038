/**
 * Which cluster `tapnet apply|delete|get` act on, and the client that reaches it:
 *  - `--store URL` (and `--cluster NAME`): that store directly (a directory, or etcd);
 *  - `--control PATH` or `--node NAME`: the store of that switch, over its control socket;
 *  - else the lab that is up (`--prefix`, default tapnet): the first of its switches that answers;
 *  - else the only switch running on this machine (its socket in /run/tapnet).
 * Through a switch, the switch does the work (rpc methods objects.apply, objects.delete,
 * objects.list, objects.get); errors from a store or a switch become one-line ClusterErrors.
 */
import { storeClient, type ClusterClient } from "../../cluster/apply.ts";
import { KvError } from "../../cluster/kv.ts";
import type { KubeObject, ObjectRef } from "../../cluster/objects.ts";
import { openKv } from "../../cluster/open.ts";
import { ObjectStore, StoreError } from "../../cluster/store.ts";
import { checkPrefix, labDir, LabError, readLabState } from "../../lab/plan.ts";
import { CONTROL_DIR, rpcCall, RpcError } from "../../node/rpc.ts";
import { UsageError, type OptionSpec, type Parsed } from "../args.ts";
import { controlPath } from "./pod.ts";

/** A store or a switch failed to do what was asked; the message says which and why. */
export class ClusterError extends Error {}

export const clusterOptions: Record<string, OptionSpec> = {
  store: { type: "string", value: "URL", help: "act on this store directly: a directory (file:/DIR or /DIR) or etcd (etcd://HOST:PORT[,HOST:PORT])" },
  cluster: { type: "string", value: "NAME", help: "with --store: the cluster's name in it, its keys under /tapnet/NAME/ (default: default)" },
  control: { type: "string", value: "PATH", help: "act through the switch listening on this control socket" },
  node: { type: "string", value: "NAME", help: "act through the switch of node NAME (its socket /run/tapnet/NAME.sock)" },
  prefix: { type: "string", value: "NAME", help: "act through a switch of the lab NAME (default: the lab tapnet, if it is up)" },
};

export interface Connection {
  client: ClusterClient;
  /** "store file /run/tapnet/lab/store", "switch /run/tapnet/tapnet/node1.sock": for messages. */
  description: string;
  close(): Promise<void>;
}

/** The connection the options ask for. Replaceable in tests (vi.spyOn). */
export const clusterConnector = {
  connect: connectCluster,
  /** Does a switch answer on `path`? */
  async answers(path: string): Promise<boolean> {
    try {
      await rpcCall(path, "ping", {}, 2_000);
      return true;
    } catch {
      return false;
    }
  },
};

async function connectCluster(p: Parsed, controlDir = CONTROL_DIR): Promise<Connection> {
  const given = (n: string) => p.values[n] !== undefined;
  const ways = ["store", "control", "node", "prefix"].filter(given);
  if (ways.length > 1) throw new UsageError(`--${ways[0]} and --${ways[1]} each pick the cluster: give one of them`);
  if (given("cluster") && !given("store")) throw new UsageError("--cluster NAME goes with --store URL (a switch acts on its own cluster)");
  if (given("store")) {
    let kv;
    try {
      kv = openKv(String(p.values.store));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const cluster = String(p.values.cluster ?? "default");
    let store: ObjectStore;
    try {
      store = new ObjectStore(kv, cluster);
    } catch (e) {
      await kv.close();
      throw new UsageError(`--cluster: ${(e as Error).message}`);
    }
    const description = `${kv.description} (cluster ${cluster})`;
    return { client: guarded(storeClient(store), description, kv.description), description, close: () => kv.close() };
  }
  if (given("control") || given("node")) return switchConnection(controlPath(p, controlDir));
  const prefix = String(p.values.prefix ?? "tapnet");
  checkPrefix(prefix);
  const lab = readLabState(prefix);
  if (lab) {
    const sockets = lab.nodes.filter((n) => !lab.kernelNodes?.includes(n.name) && n.control).map((n) => n.control);
    for (const path of sockets) if (await clusterConnector.answers(path)) return switchConnection(path);
    throw new LabError(`the lab ${prefix} is up but none of its switches answers (${sockets.join(", ") || "it has none"}): see tapnet lab status${prefix === "tapnet" ? "" : ` --prefix ${prefix}`}`);
  }
  if (given("prefix")) throw new LabError(`no lab ${prefix} is up (no journal ${labDir(prefix)}/lab.json); start it with tapnet lab up --prefix ${prefix}`);
  try {
    return switchConnection(controlPath({ values: {}, positionals: [] }, controlDir));
  } catch (e) {
    if (!(e instanceof RpcError)) throw e;
    throw new ClusterError(`no lab is up and no switch runs here (no control socket in ${controlDir}): give --store URL, --control PATH or --node NAME, or start a lab with tapnet lab up`);
  }
}

/** Store errors as ClusterErrors naming the store; anything else (a bug) as it is. */
function guarded(c: ClusterClient, description: string, kvDescription: string): ClusterClient {
  const wrap = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    try {
      return await f(...a);
    } catch (e) {
      if (e instanceof KvError || e instanceof StoreError) {
        const msg = (e as Error).message;
        throw new ClusterError(msg.startsWith(kvDescription) ? msg : `${description}: ${msg}`);
      }
      throw e;
    }
  };
  return { apply: wrap(c.apply), delete: wrap(c.delete), list: wrap(c.list), get: wrap(c.get) };
}

function switchConnection(path: string): Connection {
  const call = async <T>(method: string, params: Record<string, unknown>): Promise<T> => {
    try {
      return await rpcCall<T>(path, method, params);
    } catch (e) {
      if (e instanceof RpcError && /^unknown method/.test(e.message)) {
        throw new ClusterError(`the switch at ${path} keeps no cluster objects (it was started without a store?): ${e.message}`);
      }
      throw e;
    }
  };
  const client: ClusterClient = {
    apply: (objects) => call("objects.apply", { objects }),
    delete: (refs) => call("objects.delete", { refs }),
    list: (kind, namespace) => call<KubeObject[]>("objects.list", namespace === undefined ? { kind } : { kind, namespace }),
    get: (ref: ObjectRef) => call<KubeObject | null>("objects.get", { ref }),
  };
  return { client, description: `the switch at ${path}`, close: async () => {} };
}

/**
 * Which cluster `tapnet apply|delete|get` act on, and the client that reaches it:
 *  - `--store URL` (and `--cluster NAME`): that store directly (a directory, or etcd);
 *  - `--control PATH` or `--node NAME`: the store of that switch, over its control socket;
 *  - else the lab that is up (`--prefix`, default tapnet): the first of its switches that answers;
 *  - else the only switch running on this machine (its socket in /run/tapnet).
 * Through a switch, the switch does the work (rpc methods objects.apply, objects.delete,
 * objects.list, objects.get); errors from a store or a switch become one-line ClusterErrors.
 *
 * switchTargets picks switches the same way for the commands that ask each switch about itself
 * (`tapnet conntrack list`, `tapnet policy log`), except that a lab with no --node gives every
 * switch of the lab, and --node may name a node of the lab (--prefix, or the lab tapnet).
 */
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { storeClient, type ClusterClient } from "../../cluster/apply.ts";
import { KvError } from "../../cluster/kv.ts";
import type { KubeObject, ObjectRef } from "../../cluster/objects.ts";
import { openKv } from "../../cluster/open.ts";
import { ObjectStore, StoreError } from "../../cluster/store.ts";
import { labDir, LabError, readLabState } from "../../lab/plan.ts";
import { CONTROL_DIR, controlSockets, rpcCall, RpcError } from "../../node/rpc.ts";
import { parseCidr, type Cidr } from "../../wire/cidr.ts";
import { UsageError, type OptionSpec, type Parsed } from "../args.ts";
import { controlPath, controlSocketOption, nodeOption } from "./pod.ts";
import { labPrefix } from "./lab.ts";

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
  if (given("service-cidr") && !given("store")) throw new UsageError("--service-cidr goes with --store URL (a switch gives ClusterIPs from its own cluster config's serviceCidr)");
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
    const serviceCidr = serviceCidrOption(p);
    return { client: guarded(storeClient(store, serviceCidr ? { serviceCidr } : {}), description, kv.description), description, close: () => kv.close() };
  }
  if (given("control") || given("node")) return switchConnection(controlPath(p, controlDir));
  const prefix = labPrefix(p);
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

/** `--service-cidr CIDR` (apply --store), checked as the cluster config checks serviceCidr. */
function serviceCidrOption(p: Parsed): Cidr | undefined {
  if (p.values["service-cidr"] === undefined) return undefined;
  const c = parseCidr(String(p.values["service-cidr"]));
  if (typeof c === "string") throw new UsageError(`--service-cidr: ${c}`);
  if (c.prefix < 12 || c.prefix > 30) throw new UsageError(`--service-cidr: /${c.prefix} is out of range: from /12 (the largest) to /30`);
  return c;
}

/** A switch to ask: its node's name (for headings and messages) and its control socket. */
export interface SwitchTarget {
  node: string;
  path: string;
}

export const switchOptions: Record<string, OptionSpec> = {
  node: { type: "string", value: "NAME", help: "the switch of node NAME: the lab's node of that name, else /run/tapnet/NAME.sock" },
  control: { type: "string", value: "PATH", help: "the switch listening on this control socket" },
  prefix: { type: "string", value: "NAME", help: "the lab NAME: every switch of it, or its node --node (default: the lab tapnet, if it is up)" },
};

/** The name a socket path suggests for its node: /run/tapnet/vm1.sock → vm1. */
const nodeOfPath = (path: string): string => basename(path).replace(/\.sock$/, "");

/**
 * The switches a command asks (see the top of this file): --control PATH; --node NAME (a node
 * of the lab, --prefix or tapnet, else /run/tapnet/NAME.sock); else every switch of the lab that
 * is up; else the only switch running here.
 */
export function switchTargets(p: Parsed, controlDir = CONTROL_DIR): SwitchTarget[] {
  const given = (n: string) => p.values[n] !== undefined;
  if (given("control") && (given("node") || given("prefix"))) throw new UsageError(`--control and --${given("node") ? "node" : "prefix"} each pick the switch: give one of them`);
  if (given("control")) {
    const path = controlSocketOption(String(p.values.control));
    return [{ node: nodeOfPath(path), path }];
  }
  const prefix = labPrefix(p);
  const lab = readLabState(prefix);
  if (!lab && given("prefix")) throw new LabError(`no lab ${prefix} is up (no journal ${labDir(prefix)}/lab.json); start it with tapnet lab up --prefix ${prefix}`);
  const labSwitches = lab ? lab.nodes.filter((n) => !lab.kernelNodes?.includes(n.name) && n.control) : [];
  if (given("node")) {
    const name = nodeOption(String(p.values.node));
    const own = `${controlDir}/${name}.sock`;
    if (!lab || (!given("prefix") && existsSync(own))) return [{ node: name, path: own }];
    const inLab = labSwitches.find((n) => n.name === name);
    if (inLab) return [{ node: name, path: inLab.control }];
    if (lab.kernelNodes?.includes(name)) throw new LabError(`node ${name} of the lab ${prefix} is a plain Linux node: it runs no switch`);
    throw new LabError(`the lab ${prefix} has no node ${name} (its switches: ${labSwitches.map((n) => n.name).join(", ") || "none"})${given("prefix") ? "" : `, and no switch listens on ${own}`}`);
  }
  if (lab) {
    if (labSwitches.length === 0) throw new LabError(`the lab ${prefix} has no switches (its nodes are plain Linux nodes)`);
    return labSwitches.map((n) => ({ node: n.name, path: n.control }));
  }
  const socks = controlSockets(controlDir);
  if (socks.length === 1) return [{ node: nodeOfPath(socks[0]), path: `${controlDir}/${socks[0]}` }];
  if (socks.length === 0) throw new ClusterError(`no lab is up and no switch runs here (no control socket in ${controlDir}): give --control PATH or --node NAME, or start a lab with tapnet lab up`);
  throw new UsageError(`several switches run here (${socks.join(", ")}): say which with --node NAME or --control PATH`);
}

/**
 * Calls `method` on a switch; a switch without it (an older tapnet) gets a message saying so.
 * `what` names the feature: "connection tracking".
 */
export async function callSwitch<T>(t: SwitchTarget, method: string, params: Record<string, unknown>, what: string): Promise<T> {
  try {
    return await rpcCall<T>(t.path, method, params);
  } catch (e) {
    if (e instanceof RpcError && /^unknown method/.test(e.message)) throw new ClusterError(`the switch at ${t.path} has no ${what} (${method}): is it an older tapnet?`);
    throw e;
  }
}

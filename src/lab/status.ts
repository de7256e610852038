/**
 * `lab status`: a lab's journal, and what each of its switches says over its control socket
 * (its pod CIDR, learned MACs, ports, counters), or why it cannot. A node's pod CIDR and
 * gateway are what its switch says when it answers (with the etcd store, what it leased),
 * else the journal's.
 */
import { rpcCall } from "../node/rpc.ts";
import type { BackendType } from "../node/config.ts";
import { checkPrefix, readLabState, type LabMode, type LabNode, type LabPod, type LabStoreType } from "./plan.ts";

export interface LabStatus {
  prefix: string;
  backend: BackendType;
  mode: LabMode;
  runtime: string;
  /** socket: the switch's control socket (what a CNI conflist's `socket` names); absent for a kernel node. */
  nodes: (Omit<LabNode, "control" | "log"> & { socket?: string })[];
  pods: LabPod[];
  /** What each node's switch says, or why it cannot; a kernel node has none, a stopped node's is stopped. */
  switches: Record<string, SwitchStatus | { error: string } | { kernel: true } | { stopped: true }>;
  /** Absent for labs made before stores. */
  store?: { type: LabStoreType; url: string };
  kernelNodes: string[];
  outside?: { netns: string; address: string };
}

export interface SwitchStatus {
  node?: { podCidr?: string; gateway?: string };
  /** The nodes the switch forwards to, itself among them (with etcd, what it learned there). */
  nodes?: { name: string; address: string; podCidr: string }[];
  fdb: { mac: string; port: number; device?: string; pod?: string; age: number }[];
  ports: { port: number; ifname: string; role: string; pod?: string; counters: Record<string, number> }[];
  counters: Record<string, number>;
  tunnel?: Record<string, number>;
}

export async function labStatus(prefix: string): Promise<LabStatus | undefined> {
  checkPrefix(prefix);
  const state = readLabState(prefix);
  if (!state) return undefined;
  const switches: LabStatus["switches"] = {};
  await Promise.all(state.nodes.map(async (n) => {
    if (state.kernelNodes?.includes(n.name)) {
      switches[n.name] = { kernel: true };
      return;
    }
    if (n.pid === 0) {
      switches[n.name] = { stopped: true };
      return;
    }
    try {
      switches[n.name] = await rpcCall<SwitchStatus>(n.control, "status", {}, 5_000);
    } catch (e) {
      switches[n.name] = { error: (e as Error).message };
    }
  }));
  return {
    prefix: state.prefix, backend: state.backend, mode: state.mode ?? "tapnet", runtime: state.runtime,
    nodes: state.nodes.map(({ name, netns, address, podCidr, gateway, pid, control }) => {
      const said = (switches[name] as SwitchStatus).node;
      const socket = state.kernelNodes?.includes(name) ? {} : { socket: control };
      return { name, netns, address, podCidr: said?.podCidr ?? podCidr, gateway: said?.gateway ?? gateway, pid, ...socket };
    }),
    pods: state.pods,
    switches,
    kernelNodes: state.kernelNodes ?? [],
    ...(state.outside ? { outside: state.outside } : {}),
    ...(state.store ? { store: { type: state.store.type, url: state.store.url } } : {}),
  };
}

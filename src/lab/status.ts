/**
 * `lab status`: a lab's journal, and what each of its switches says over its control socket
 * (its pod CIDR, learned MACs, ports, counters), or why it cannot. A node's pod CIDR and
 * gateway are what its switch says when it answers (with the etcd store, what it leased),
 * else the journal's. A node's pid is its running switch's, as its supervisor says
 * (supervisor.ts: after a restart, the new switch's), and `supervisors` has each supervisor's
 * status: its pid, the switch's and the standby's (and whether it is ready: loaded and waiting),
 * and how many times the switch was restarted.
 */
import { rpcCall } from "../node/rpc.ts";
import type { BackendType } from "../node/config.ts";
import { checkPrefix, readLabState, supervisorFile, type LabMode, type LabNode, type LabPod, type LabStoreType } from "./plan.ts";
import { isOurSupervisor, liveSwitchPid } from "./nodes.ts";
import { readyStandby } from "../node/node-lock.ts";
import { readSupervisorStatus, type SupervisorStatus } from "./supervisor.ts";

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
  /** Each switch node's supervisor, or why there is none to read (not running: a stopped node, or one whose supervisor was killed). */
  supervisors: Record<string, (SupervisorStatus & { standbyReady: boolean }) | { error: string }>;
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
  const supervisors: LabStatus["supervisors"] = {};
  for (const n of state.nodes) {
    if (state.kernelNodes?.includes(n.name)) continue;
    const s = isOurSupervisor(n.supervisor, n.control) ? readSupervisorStatus(supervisorFile(state.prefix, n.name)) : undefined;
    // A standby still loading would take over seconds later than a ready one.
    supervisors[n.name] = s ? { ...s, standbyReady: s.standby > 0 && readyStandby(n.control) === s.standby }
      : { error: n.supervisor ? `its supervisor (pid ${n.supervisor}) is not running: tapnet lab up starts it again` : "not running" };
  }
  return {
    prefix: state.prefix, backend: state.backend, mode: state.mode ?? "tapnet", runtime: state.runtime,
    nodes: state.nodes.map((n) => {
      const { name, netns, address, podCidr, gateway, control } = n;
      const said = (switches[name] as SwitchStatus).node;
      const socket = state.kernelNodes?.includes(name) ? {} : { socket: control };
      return { name, netns, address, podCidr: said?.podCidr ?? podCidr, gateway: said?.gateway ?? gateway, pid: liveSwitchPid(state, n), ...socket };
    }),
    pods: state.pods,
    switches,
    kernelNodes: state.kernelNodes ?? [],
    ...(state.outside ? { outside: state.outside } : {}),
    ...(state.store ? { store: { type: state.store.type, url: state.store.url } } : {}),
    supervisors,
  };
}

/**
 * What the live page draws (`tapnet web`): the cluster as its switches say it is now. Each
 * sample asks every switch for its `status` over its control socket (node/node-status.ts:
 * the node, its pods, ports, FDB, counters and tunnel counters) and puts the answers into one
 * plain object, a node each, for the page to draw. The tunnel's rates are the change of its
 * byte and frame counters since the previous sample, per second; a switch that restarted (its
 * counters went back) has no rate until the next sample. A switch that does not answer is a
 * node with `error` set, drawn as such: the page never waits for it.
 *
 * The switches are found again at every sample (the lab's journal, or the options given), so a
 * node that joins a lab appears.
 */
import type { PodRecord } from "../../node/pod-record.ts";
import { rpcCall } from "../../node/rpc.ts";
import type { SwitchTarget } from "../commands/cluster-client.ts";

/** What a switch's `status` answer holds that the page uses (node-status.ts has it all). */
interface StatusAnswer {
  node: { name: string; address: string; podCidr: string; gateway: string; gatewayMac: string; backend: string; backendPort?: number; vni?: number; pid: number; runtime: string };
  pods: { name: string; namespace: string; netns: string; ip: string; mac: string; ifname: string; port: number }[];
  nodes: { name: string; address: string; podCidr: string }[];
  ports: { port: number; ifname: string; role: string; pod?: string; counters: Record<string, number> }[];
  fdb: { mac: string; port: number; age: number; pinned?: boolean; device?: string; pod?: string }[];
  counters: Record<string, number>;
  tunnel?: Record<string, number>;
}

/** A pod as the page shows it: its record, less what only its agent needs. */
export type PagePod = Pick<PodRecord, "name" | "namespace" | "netns" | "ip" | "mac" | "ifname" | "port">;

export interface PageDrop {
  /** The pod, "tapnet0" or "tunnel". */
  where: string;
  reason: string;
  count: number;
}

export interface PageTunnel {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Per second since the previous sample; null at the first sample or after a restart. */
  rxBps: number | null;
  txBps: number | null;
  rxPps: number | null;
  txPps: number | null;
}

export interface PageNode {
  name: string;
  /** The switch's control socket. */
  socket: string;
  /** Why the switch did not answer; the fields below are then absent. */
  error?: string;
  address?: string;
  podCidr?: string;
  gateway?: string;
  gatewayMac?: string;
  backend?: string;
  /** The tunnel's UDP port, and VXLAN's VNI (from switches that say them). */
  backendPort?: number;
  vni?: number;
  pid?: number;
  runtime?: string;
  pods?: PagePod[];
  fdb?: { mac: string; port: number; age: number; pinned: boolean; device: string; pod?: string }[];
  tunnel?: PageTunnel;
  drops?: PageDrop[];
  /** The switch's own counters worth a learner's eye: routed, delivered, flooded, ICMP sent… */
  counters?: Record<string, number>;
  /** The nodes this switch forwards to, itself among them. */
  peers?: string[];
}

export interface PageState {
  /** Wall-clock ms of the sample. */
  at: number;
  nodes: PageNode[];
  /** Why no switch could be found at all (the lab went down). */
  error?: string;
}

/** The switch counters the page shows, in this order, with what each means. */
export const SHOWN_COUNTERS = ["routed", "delivered", "unknown_unicast", "broadcast", "icmp_sent", "arp_replies", "flows_active", "translated"];

const STATUS_TIMEOUT_MS = 3_000;

/** Every drop_<reason> counter of a switch's ports and its tunnel that is not zero. */
export function dropsOf(st: Pick<StatusAnswer, "ports" | "tunnel">): PageDrop[] {
  const out: PageDrop[] = [];
  const take = (where: string, c: Record<string, number> | undefined) => {
    for (const [k, v] of Object.entries(c ?? {})) if (k.startsWith("drop_") && v > 0) out.push({ where, reason: k.slice(5), count: v });
  };
  for (const p of st.ports) take(p.pod ?? p.ifname, p.counters);
  take("tunnel", st.tunnel);
  return out;
}

/** A tunnel's counters, with rates against the previous sample `prev` taken `dtMs` before. */
export function tunnelRates(now: Record<string, number> | undefined, prev: PageTunnel | undefined, dtMs: number): PageTunnel {
  const n = (k: string) => now?.[k] ?? 0;
  const t = { rxFrames: n("rx_frames"), rxBytes: n("rx_bytes"), txFrames: n("tx_frames"), txBytes: n("tx_bytes") };
  const rate = (k: keyof typeof t): number | null => {
    if (!prev || dtMs <= 0 || t[k] < prev[k]) return null;
    return Math.round(((t[k] - prev[k]) * 1000) / dtMs);
  };
  return { ...t, rxBps: rate("rxBytes"), txBps: rate("txBytes"), rxPps: rate("rxFrames"), txPps: rate("txFrames") };
}

/** One node as the page draws it, from its switch's status answer. */
export function pageNode(t: SwitchTarget, st: StatusAnswer, prev: PageNode | undefined, dtMs: number): PageNode {
  return {
    name: st.node.name, socket: t.path, address: st.node.address, podCidr: st.node.podCidr, gateway: st.node.gateway,
    gatewayMac: st.node.gatewayMac, backend: st.node.backend, pid: st.node.pid, runtime: st.node.runtime,
    ...(st.node.backendPort !== undefined ? { backendPort: st.node.backendPort } : {}), ...(st.node.vni !== undefined ? { vni: st.node.vni } : {}),
    pods: st.pods.map(({ name, namespace, netns, ip, mac, ifname, port }) => ({ name, namespace, netns, ip, mac, ifname, port }))
      .sort((a, b) => a.port - b.port),
    fdb: st.fdb.map((e) => ({ mac: e.mac, port: e.port, age: e.age, pinned: e.pinned === true, device: e.device ?? `port ${e.port}`, ...(e.pod ? { pod: e.pod } : {}) }))
      .sort((a, b) => a.port - b.port || a.mac.localeCompare(b.mac)),
    tunnel: tunnelRates(st.tunnel, prev?.tunnel, dtMs),
    drops: dropsOf(st),
    counters: Object.fromEntries(SHOWN_COUNTERS.map((k) => [k, st.counters[k] ?? 0])),
    peers: st.nodes.map((x) => x.name),
  };
}

/** Samples the cluster; keeps the previous sample for the rates. */
export class ClusterSampler {
  private last?: PageState;

  /** `targets` finds the switches again at each sample; it may throw (no lab any more). */
  constructor(private readonly targets: () => SwitchTarget[]) {}

  async sample(): Promise<PageState> {
    const at = Date.now();
    let targets: SwitchTarget[];
    try {
      targets = this.targets();
    } catch (e) {
      this.last = { at, nodes: [], error: (e as Error).message };
      return this.last;
    }
    const prev = this.last;
    const nodes = await Promise.all(targets.map(async (t): Promise<PageNode> => {
      try {
        const st = await rpcCall<StatusAnswer>(t.path, "status", {}, STATUS_TIMEOUT_MS);
        return pageNode(t, st, prev?.nodes.find((n) => n.name === st.node.name), prev ? at - prev.at : 0);
      } catch (e) {
        return { name: t.node, socket: t.path, error: (e as Error).message };
      }
    }));
    this.last = { at, nodes };
    return this.last;
  }
}

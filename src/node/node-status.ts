/**
 * What a node's switch answers to `status` on its control socket (`tapnet lab status` and
 * `tapnet pod list` show it): the node, its pods, the nodes it forwards to, the store, the
 * switch's ports, FDB and counters, and its tunnel's; and its memory: the process's resident
 * set and the JavaScript heaps of its two threads (what a soak needs to tell a leak in
 * JavaScript from one in native memory).
 */
import { memoryUsage } from "node:process";
import { formatIpv4 } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { formatCidr } from "../wire/cidr.ts";
import { runtimeName } from "../io/runtime.ts";
import type { Switch } from "../switch/switch.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import type { StoreSync } from "./store-sync.ts";

/** The agent, as far as its status reads it. */
export interface StatusSource {
  readonly sw: Switch;
  readonly node: NodeConfig;
  readonly gateway: number;
  readonly config: ClusterConfig;
  readonly sync?: StoreSync;
  readonly opts: { store?: { cluster: string } };
  listPods(): unknown[];
}

export async function nodeStatus(a: StatusSource) {
  const fdb = await a.sw.fdb();
  const ports = a.sw.ports();
  const byPort = new Map(ports.map((p) => [p.port, p]));
  return {
    node: {
      name: a.node.name, address: formatIpv4(a.node.address), podCidr: formatCidr(a.node.podCidr),
      gateway: formatIpv4(a.gateway), gatewayMac: macForIpv4(a.gateway), podMtu: a.config.podMtu,
      backend: a.config.backend.type, backendPort: a.config.backend.port, ...(a.config.backend.type === "vxlan" ? { vni: a.config.backend.vni } : {}),
      pid: process.pid, runtime: runtimeName,
    },
    pods: a.listPods(),
    nodes: a.config.nodes.map((n) => ({ name: n.name, address: formatIpv4(n.address), podCidr: formatCidr(n.podCidr) })),
    store: a.sync ? { description: a.sync.kv.description, cluster: a.opts.store!.cluster } : undefined,
    ports,
    fdb: fdb.map((e) => {
      const p = byPort.get(e.port);
      return { ...e, device: p ? (p.netns ? `${p.ifname}@${p.netns}` : p.ifname) : undefined, pod: p?.pod };
    }),
    counters: a.sw.counters.switchSnapshot(),
    tunnel: a.sw.tunnelCounters(),
    memory: { rss: memoryUsage.rss(), ...(await a.sw.heaps()) },
  };
}

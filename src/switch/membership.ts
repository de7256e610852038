/**
 * Live membership: the node list of a running routing switch changes (a node joins, one
 * leaves, the list is reordered) without a restart. The control thread sends the new list
 * (Switch.setNodes); the datapath worker applies it between rounds, when every stage has
 * flushed what it gathered: tunnel out sends the backend's runs at the end of each round,
 * merge ends its run, tunnel in delivers its frames. The worker then makes what depends on the
 * node list anew (off the hot path: allocation is fine here, and it is rare):
 *   - the view of the cluster (state.ts's Cluster: subnet map, VTEP MACs), keeping the
 *     neighbour table and the gateway port, which are this node's own;
 *   - the tunnel socket's peers (each node's sockaddr, by node index), keeping the socket;
 *   - the backend and the stages (datapath.ts's buildStages).
 * The counters, the FDB, the ports and the poll set stay as they are. Node indexes are peer ids
 * everywhere, and everything that holds one is made anew, so a reordered list routes right.
 *
 * What is checked first (`checkNodes`), each fault a message naming the field: this node's pod
 * CIDR and address cannot change while it runs (its pods are numbered from the one, its socket
 * is bound to the other); pod CIDRs lie in the cluster CIDR and do not overlap; addresses and
 * VTEP MACs are unique. A refused list changes nothing.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { parseMac } from "../wire/mac.ts";
import type { RouterConfig } from "./state.ts";

type Node = RouterConfig["nodes"][number];

const isU32 = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const cidr = (n: Node) => `${formatIpv4(n.network)}/${n.prefix}`;
const lastOf = (network: number, prefix: number) => network + 2 ** (32 - prefix) - 1;

/** Why `nodes` (with this node at `self`) cannot replace `cfg`'s node list; undefined if it can. */
export function checkNodes(cfg: RouterConfig, nodes: readonly Node[], self: number): string | undefined {
  if (!Array.isArray(nodes) || nodes.length === 0) return "nodes: must be a list of at least one node (this one)";
  if (!Number.isInteger(self) || self < 0 || self >= nodes.length) return `self: ${self} is not an index of the ${nodes.length} nodes`;
  for (const [i, n] of nodes.entries()) {
    const bad = checkNode(cfg, n, `nodes[${i}]`);
    if (bad) return bad;
  }
  const mine = cfg.nodes[cfg.self];
  const me = nodes[self];
  if (me.network !== mine.network || me.prefix !== mine.prefix) {
    return `nodes[${self}] (this node, ${me.name}): its pod CIDR is ${cidr(mine)} while the switch runs, not ${cidr(me)}`;
  }
  if (me.address !== mine.address) {
    return `nodes[${self}] (this node, ${me.name}): its address is ${formatIpv4(mine.address)} while the switch runs (the tunnel is bound to it), not ${formatIpv4(me.address)}`;
  }
  const seen = { address: new Map<number, number>(), vtepMac: new Map<string, number>() };
  for (const [i, n] of nodes.entries()) {
    const mac = n.vtepMac.toLowerCase();
    const a = seen.address.get(n.address);
    if (a !== undefined) return `nodes[${i}].address: ${formatIpv4(n.address)} is also nodes[${a}].address`;
    const m = seen.vtepMac.get(mac);
    if (m !== undefined) return `nodes[${i}].vtepMac: ${n.vtepMac} is also nodes[${m}].vtepMac`;
    seen.address.set(n.address, i);
    seen.vtepMac.set(mac, i);
  }
  const byNet = nodes.map((n, i) => ({ n, i })).sort((a, b) => a.n.network - b.n.network);
  for (let k = 1; k < byNet.length; k++) {
    const prev = byNet[k - 1];
    const cur = byNet[k];
    if (cur.n.network <= lastOf(prev.n.network, prev.n.prefix)) {
      const [first, second] = prev.i < cur.i ? [prev, cur] : [cur, prev];
      return `nodes[${second.i}].network: ${cidr(second.n)} overlaps nodes[${first.i}]'s ${cidr(first.n)}`;
    }
  }
  return undefined;
}

function checkNode(cfg: RouterConfig, n: Node, where: string): string | undefined {
  if (typeof n !== "object" || n === null) return `${where}: must be a node (name, address, network, prefix, vtepMac)`;
  if (typeof n.name !== "string" || n.name === "") return `${where}.name: must be a name`;
  if (!isU32(n.address)) return `${where}.address: ${JSON.stringify(n.address)} is not an IPv4 address (a 32-bit number)`;
  if (!Number.isInteger(n.prefix) || n.prefix < 1 || n.prefix > 32) return `${where}.prefix: ${JSON.stringify(n.prefix)} must be 1 to 32`;
  if (!isU32(n.network) || n.network % 2 ** (32 - n.prefix) !== 0) return `${where}.network: ${JSON.stringify(n.network)} is not the network address of a /${n.prefix}`;
  if (n.network < cfg.clusterNetwork || lastOf(n.network, n.prefix) > lastOf(cfg.clusterNetwork, cfg.clusterPrefix)) {
    return `${where}.network: ${cidr(n)} is outside the cluster's ${formatIpv4(cfg.clusterNetwork)}/${cfg.clusterPrefix}`;
  }
  if (typeof n.vtepMac !== "string" || !parseMac(n.vtepMac)) return `${where}.vtepMac: ${JSON.stringify(n.vtepMac)} is not a MAC address`;
  return undefined;
}

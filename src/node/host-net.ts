/**
 * The node's own kernel, set up as flannel's vxlan backend would, for a switch with other nodes
 * to reach, and as kube-proxy would for Services (agent.ts starts and stops it):
 *   - for each remote pod CIDR, a route via that CIDR's network address, onlink on the gateway
 *     port (tapnet0), and a permanent neighbour entry giving that address the remote node's
 *     VTEP MAC: the node's own traffic to remote pods goes to the switch, addressed so the
 *     router takes it;
 *   - the service CIDR routed the same way, its via address's neighbour entry the gateway
 *     port's own MAC: the node's processes send ClusterIP traffic to the switch, which
 *     translates it to an endpoint;
 *   - IP forwarding on, and a masquerade rule (nftables, else iptables) for traffic from the
 *     cluster to anywhere but the cluster and its nodes: what leaves the cluster leaves with
 *     the node's address, and nothing within it is translated;
 *   - NodePorts (nftables only), in the same table: per port, a DNAT rule in the prerouting and
 *     output hooks, `fib daddr type local tcp dport 30080 dnat to CLUSTERIP:PORT`. The port on
 *     any of the node's addresses, from outside or from the node itself, reaches the Service:
 *     the kernel routes the ClusterIP to the switch, which picks the endpoint. A pod reaching
 *     its node's NodePort is masqueraded by the rule above, so its replies come back this way.
 * The node list may change while the switch runs (a node joins or leaves): `update` adds the
 * routes and neighbours of new nodes, removes those of nodes gone, and rewrites the masquerade
 * rule when the set of node addresses changed (nftables: the table replaced in one transaction;
 * iptables: the chain rebuilt). The NodePorts change with the Services (`setNodePorts`): the
 * table is rewritten, masquerade rule and all, when they changed. setUp is forwarding, then
 * `update` with the config's nodes. tearDown undoes the forwarding, the masquerade and the
 * NodePorts (the routes and neighbours go with the gateway port). Also here: the check of the
 * underlay device `tapnet switch --underlay-dev` names.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { formatCidr, type Cidr } from "../wire/cidr.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { ConfigError, type ClusterConfig, type NodeConfig } from "./config.ts";
import { ip, ipBatch, run, which } from "./exec.ts";
import { gatewayOf } from "./ipam.ts";
import type { Logger } from "./log.ts";

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const NFT_TABLE = "tapnet";
const IPT_CHAIN = "TAPNET-MASQ";

/** What the node's kernel holds for one remote node: the route to its pod CIDR and the neighbour entry of its via address. */
interface RemoteRoute {
  cidr: string;
  via: string;
  vtepMac: string;
}

function remoteRoutes(nodes: readonly NodeConfig[], selfName: string): Map<string, RemoteRoute> {
  const m = new Map<string, RemoteRoute>();
  for (const n of nodes) {
    if (n.name === selfName) continue;
    const cidr = formatCidr(n.podCidr);
    m.set(cidr, { cidr, via: formatIpv4(n.podCidr.network), vtepMac: n.vtepMac.toLowerCase() });
  }
  return m;
}

/**
 * The `ip -batch` lines that take the kernel from the remote routes of `before` to those of
 * `after` (nodes other than `selfName`), on device `dev`: `del` for pod CIDRs no node has any
 * more, `add` (replace: idempotent) for new ones and ones whose VTEP MAC changed.
 */
export function routeChanges(before: readonly NodeConfig[], after: readonly NodeConfig[], selfName: string, dev: string): { del: string[]; add: string[] } {
  const was = remoteRoutes(before, selfName);
  const now = remoteRoutes(after, selfName);
  const del: string[] = [];
  const add: string[] = [];
  for (const r of was.values()) {
    if (now.has(r.cidr)) continue;
    del.push(`route del ${r.cidr} via ${r.via} dev ${dev}`);
    del.push(`neigh del ${r.via} dev ${dev}`);
  }
  for (const r of now.values()) {
    const old = was.get(r.cidr);
    if (old && old.vtepMac === r.vtepMac) continue;
    add.push(`neigh replace ${r.via} lladdr ${r.vtepMac} dev ${dev} nud permanent`);
    add.push(`route replace ${r.cidr} via ${r.via} dev ${dev} onlink`);
  }
  return { del, add };
}

/**
 * The `ip -batch` lines that route the service CIDR to the switch: via its network address,
 * onlink on `dev`, whose neighbour entry is `gatewayMac` (the gateway port's own MAC).
 */
export function serviceRoute(serviceCidr: Cidr, gatewayMac: string, dev: string): string[] {
  const via = formatIpv4(serviceCidr.network);
  return [`neigh replace ${via} lladdr ${gatewayMac.toLowerCase()} dev ${dev} nud permanent`, `route replace ${formatCidr(serviceCidr)} via ${via} dev ${dev} onlink`];
}

/** A Service's NodePort: `nodePort` on the node's addresses reaches `clusterIp`:`port`. */
export interface NodePort {
  protocol: "tcp" | "udp";
  nodePort: number;
  clusterIp: string;
  port: number;
}

const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;

/**
 * The NodePorts in the order their rules are written (by protocol, then port), one per
 * protocol and port (the first given wins, as the first of two rules would); apart, those that
 * cannot be written (a bad port or address), for a warning.
 */
export function sortNodePorts(ports: readonly NodePort[]): { ok: NodePort[]; bad: NodePort[] } {
  const seen = new Set<string>();
  const ok: NodePort[] = [];
  const bad: NodePort[] = [];
  for (const p of ports) {
    const addr = parseIpv4Address(String(p.clusterIp));
    if ((p.protocol !== "tcp" && p.protocol !== "udp") || !isPort(p.nodePort) || !isPort(p.port) || addr === undefined) {
      bad.push(p);
      continue;
    }
    const key = `${p.protocol}/${p.nodePort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    ok.push({ protocol: p.protocol, nodePort: p.nodePort, clusterIp: formatIpv4(addr), port: p.port });
  }
  ok.sort((a, b) => (a.protocol === b.protocol ? a.nodePort - b.nodePort : a.protocol < b.protocol ? -1 : 1));
  return { ok, bad };
}

/** The node addresses the masquerade rule leaves alone, sorted: its one input besides the cluster CIDR. */
export function nodeAddresses(nodes: readonly NodeConfig[]): string[] {
  return [...nodes].sort((a, b) => a.address - b.address).map((n) => formatIpv4(n.address));
}

/**
 * The `nft -f` script that makes the table anew in one transaction (declared, deleted, made):
 * there is never a moment without the rules, nor with two of one. `nodePorts` as sortNodePorts
 * gives them; with none, there are no prerouting and output chains (both at dstnat's -100). The output chain leaves
 * loopback addresses alone: a packet from 127.0.0.1 cannot leave through tapnet0, so
 * 127.0.0.1:NODEPORT is refused at once rather than lost.
 */
export function nftScript(cluster: string, addresses: string[], nodePorts: readonly NodePort[] = []): string {
  const dnat = (p: NodePort) => `fib daddr type local ${p.protocol} dport ${p.nodePort} dnat to ${p.clusterIp}:${p.port}`;
  const chains = nodePorts.length === 0 ? [] : [
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    ...nodePorts.map((p) => `    ${dnat(p)}`),
    "  }",
    "  chain output {",
    "    type nat hook output priority -100; policy accept;", // dstnat: nft 1.0.6 takes the name on prerouting only
    ...nodePorts.map((p) => `    ip daddr != 127.0.0.0/8 ${dnat(p)}`),
    "  }",
  ];
  return [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    ip saddr ${cluster} ip daddr != ${cluster} ip daddr != { ${addresses.join(", ")} } masquerade`,
    "  }",
    ...chains,
    "}",
  ].join("\n") + "\n";
}

/** The rules of the iptables chain, in order (each the arguments after `-A CHAIN`). */
export function iptablesRules(cluster: string, addresses: string[]): string[][] {
  return [["-d", cluster, "-j", "RETURN"], ...addresses.map((a) => ["-d", a, "-j", "RETURN"]), ["-j", "MASQUERADE"]];
}

export class HostNet {
  private forwardingWas?: string;
  private masq?: "nft" | "iptables";
  /** The node list the kernel holds routes for, as of the last `update`. */
  private current: NodeConfig[] = [];
  /** The node addresses of the masquerade rule as written last; undefined while there is none. */
  private masqAddresses?: string[];
  /** Is the service CIDR's route in? It goes with the gateway port, so it is added once per setUp. */
  private servicesRouted = false;
  /** The NodePorts wanted (sortNodePorts'), and as last written to the table (JSON), if they are. */
  private nodePorts: NodePort[] = [];
  private nodePortsWritten?: string;
  private warnedNodePorts = false;

  /** `gatewayIfname`: the switch's gateway port in the node's namespace, already up. */
  constructor(private readonly config: ClusterConfig, private readonly self: NodeConfig, private readonly gatewayIfname: string, private readonly log: Logger) {}

  /** What masquerades traffic leaving the cluster, once set up: nft, iptables, or nothing. */
  get masquerade(): "nft" | "iptables" | undefined {
    return this.masq;
  }

  /** The node list the kernel is set up for (the config's, then each `update`'s). */
  get nodes(): readonly NodeConfig[] {
    return this.current;
  }

  /** Forwarding, then routes to the other nodes' pod CIDRs and the service CIDR, and masquerade: see the top of this file. */
  async setUp(): Promise<void> {
    try {
      const was = readFileSync(IP_FORWARD, "utf8").trim();
      if (was !== "1") {
        writeFileSync(IP_FORWARD, "1");
        this.forwardingWas = was;
      }
    } catch (e) {
      this.log.warn("cannot turn on IP forwarding: pods cannot reach beyond the cluster", { error: (e as Error).message });
    }
    await this.update(this.config.nodes);
  }

  /**
   * Makes the kernel's routes, neighbours and masquerade rule those of `nodes` (this node among
   * them or not: its own pod CIDR is on the gateway port and needs no route). Routes of nodes
   * gone go first (a failure there, the route gone already, is only logged); then those of new
   * nodes, with the service CIDR's the first time; the masquerade rule is rewritten only if the
   * node addresses changed.
   */
  async update(nodes: readonly NodeConfig[]): Promise<void> {
    const { del, add } = routeChanges(this.current, nodes, this.self.name, this.gatewayIfname);
    if (del.length) {
      await run("ip", ["-force", "-batch", "-"], { input: del.join("\n") + "\n" })
        .catch((e) => this.log.warn("could not remove every route of a node gone", { error: (e as Error).message }));
    }
    if (!this.servicesRouted) add.unshift(...serviceRoute(this.config.serviceCidr, macForIpv4(gatewayOf(this.self.podCidr)), this.gatewayIfname));
    if (add.length) await ipBatch(add);
    this.servicesRouted = true;
    this.current = [...nodes];
    const addresses = nodeAddresses(nodes);
    if (addresses.join(",") === this.masqAddresses?.join(",")) return;
    await this.writeMasquerade(addresses);
    this.masqAddresses = addresses;
  }

  /**
   * Makes the table's NodePort rules those of `ports`: the table is rewritten, masquerade rule
   * and all, only when they changed (a failed write is tried again at the next call). Before
   * the first `update` they are kept for it to write. Without nft: a warning, once.
   */
  async setNodePorts(ports: readonly NodePort[]): Promise<void> {
    const { ok, bad } = sortNodePorts(ports);
    if (bad.length) this.log.warn("NodePorts left out: a bad port or address", { nodePorts: bad.map((p) => `${p.protocol}/${p.nodePort} -> ${p.clusterIp}:${p.port}`) });
    this.nodePorts = ok;
    if (this.masqAddresses === undefined) return;
    if (this.masq !== "nft") return this.warnNodePorts();
    const key = JSON.stringify(ok);
    if (key === this.nodePortsWritten) return;
    await run("nft", ["-f", "-"], { input: nftScript(formatCidr(this.config.clusterCidr), this.masqAddresses, ok) });
    this.nodePortsWritten = key;
  }

  private warnNodePorts(): void {
    if (this.warnedNodePorts || this.nodePorts.length === 0) return;
    this.warnedNodePorts = true;
    this.log.warn("NodePorts need nft, which is not installed: this node does not open the Services' node ports", { nodePorts: this.nodePorts.length });
  }

  private async writeMasquerade(addresses: string[]): Promise<void> {
    const cluster = formatCidr(this.config.clusterCidr);
    if (this.masq === "nft" || (this.masq === undefined && which("nft"))) {
      await run("nft", ["-f", "-"], { input: nftScript(cluster, addresses, this.nodePorts) });
      this.masq = "nft";
      this.nodePortsWritten = JSON.stringify(this.nodePorts);
      return;
    }
    this.warnNodePorts();
    if (this.masq === "iptables" || which("iptables")) {
      const ipt = (...a: string[]) => run("iptables", ["-w", "-t", "nat", ...a]);
      if (this.masq === "iptables") await ipt("-F", IPT_CHAIN);
      else {
        await this.removeIptables();
        await ipt("-N", IPT_CHAIN);
      }
      for (const rule of iptablesRules(cluster, addresses)) await ipt("-A", IPT_CHAIN, ...rule);
      if (this.masq !== "iptables") await ipt("-A", "POSTROUTING", "-s", cluster, "-j", IPT_CHAIN);
      this.masq = "iptables";
    } else {
      this.log.warn("neither nft nor iptables is installed: traffic leaving the cluster is not masqueraded");
    }
  }

  private async removeIptables(): Promise<void> {
    const ipt = (...a: string[]) => run("iptables", ["-w", "-t", "nat", ...a]).catch(() => "");
    const cluster = formatCidr(this.config.clusterCidr);
    await ipt("-D", "POSTROUTING", "-s", cluster, "-j", IPT_CHAIN);
    await ipt("-F", IPT_CHAIN);
    await ipt("-X", IPT_CHAIN);
  }

  /** Undoes setUp, NodePorts too (the routes and neighbours go with the gateway port). Safe before setUp. */
  async tearDown(): Promise<void> {
    if (this.masq === "nft") await run("nft", ["delete", "table", "ip", NFT_TABLE]).catch(() => {});
    if (this.masq === "iptables") await this.removeIptables();
    this.masq = undefined;
    this.masqAddresses = undefined;
    this.nodePortsWritten = undefined;
    this.servicesRouted = false;
    this.current = [];
    if (this.forwardingWas !== undefined) {
      try { writeFileSync(IP_FORWARD, this.forwardingWas); } catch { /* the namespace may be gone */ }
      this.forwardingWas = undefined;
    }
  }
}

/** Does `dev` hold the node's address, and carry packets as large as the config says? */
export async function checkUnderlay(dev: string, config: ClusterConfig, nodeName: string, log: Logger): Promise<void> {
  const node = config.nodes.find((n) => n.name === nodeName);
  if (!node) return; // the agent says which nodes there are
  let out: string;
  try {
    out = await ip("-o", "-4", "addr", "show", "dev", dev);
  } catch {
    throw new ConfigError(`--underlay-dev ${dev}: no such interface`);
  }
  const want = formatIpv4(node.address);
  if (!out.includes(` ${want}/`)) throw new ConfigError(`--underlay-dev ${dev} does not hold ${want}, node ${nodeName}'s address in the config`);
  const link = await ip("-o", "link", "show", "dev", dev);
  const mtu = Number(/ mtu (\d+)/.exec(link)?.[1] ?? 0);
  if (mtu && mtu < config.mtu) log.warn("the underlay's MTU is smaller than the config's mtu: large packets will be lost", { dev, mtu, configMtu: config.mtu });
}

/**
 * The node's own kernel, set up as flannel's vxlan backend would, for a switch with other nodes
 * to reach (agent.ts starts and stops it):
 *   - for each remote pod CIDR, a route via that CIDR's network address, onlink on the gateway
 *     port (tapnet0), and a permanent neighbour entry giving that address the remote node's
 *     VTEP MAC: the node's own traffic to remote pods goes to the switch, addressed so the
 *     router takes it;
 *   - IP forwarding on, and a masquerade rule (nftables, else iptables) for traffic from the
 *     cluster to anywhere but the cluster and its nodes: what leaves the cluster leaves with
 *     the node's address, and nothing within it is translated.
 * The node list may change while the switch runs (a node joins or leaves): `update` adds the
 * routes and neighbours of new nodes, removes those of nodes gone, and rewrites the masquerade
 * rule when the set of node addresses changed (nftables: the table replaced in one transaction;
 * iptables: the chain rebuilt). setUp is forwarding, then `update` with the config's nodes.
 * tearDown undoes the forwarding and the masquerade (the routes and neighbours go with the
 * gateway port). Also here: the check of the underlay device `tapnet switch --underlay-dev` names.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatCidr } from "../wire/cidr.ts";
import { ConfigError, type ClusterConfig, type NodeConfig } from "./config.ts";
import { ip, ipBatch, run, which } from "./exec.ts";
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

/** The node addresses the masquerade rule leaves alone, sorted: its one input besides the cluster CIDR. */
export function nodeAddresses(nodes: readonly NodeConfig[]): string[] {
  return [...nodes].sort((a, b) => a.address - b.address).map((n) => formatIpv4(n.address));
}

/**
 * The `nft -f` script that makes the table anew in one transaction (declared, deleted, made):
 * there is never a moment without the rule, nor with two.
 */
export function nftScript(cluster: string, addresses: string[]): string {
  return [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    ip saddr ${cluster} ip daddr != ${cluster} ip daddr != { ${addresses.join(", ")} } masquerade`,
    "  }",
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
  private masqAddresses?: string;

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

  /** Forwarding, then routes to the other nodes' pod CIDRs and masquerade: see the top of this file. */
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
   * nodes; the masquerade rule is rewritten only if the node addresses changed.
   */
  async update(nodes: readonly NodeConfig[]): Promise<void> {
    const { del, add } = routeChanges(this.current, nodes, this.self.name, this.gatewayIfname);
    if (del.length) {
      await run("ip", ["-force", "-batch", "-"], { input: del.join("\n") + "\n" })
        .catch((e) => this.log.warn("could not remove every route of a node gone", { error: (e as Error).message }));
    }
    if (add.length) await ipBatch(add);
    this.current = [...nodes];
    const addresses = nodeAddresses(nodes);
    if (addresses.join(",") === this.masqAddresses) return;
    await this.writeMasquerade(addresses);
    this.masqAddresses = addresses.join(",");
  }

  private async writeMasquerade(addresses: string[]): Promise<void> {
    const cluster = formatCidr(this.config.clusterCidr);
    if (this.masq === "nft" || (this.masq === undefined && which("nft"))) {
      await run("nft", ["-f", "-"], { input: nftScript(cluster, addresses) });
      this.masq = "nft";
    } else if (this.masq === "iptables" || which("iptables")) {
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

  /** Undoes setUp (the routes and neighbours go with the gateway port). Safe before setUp. */
  async tearDown(): Promise<void> {
    if (this.masq === "nft") await run("nft", ["delete", "table", "ip", NFT_TABLE]).catch(() => {});
    if (this.masq === "iptables") await this.removeIptables();
    this.masq = undefined;
    this.masqAddresses = undefined;
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

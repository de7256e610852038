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
 * tearDown undoes the forwarding and the masquerade (the routes and neighbours go with the
 * gateway port). Also here: the check of the underlay device `tapnet switch --underlay-dev` names.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatCidr } from "./cidr.ts";
import { ConfigError, type ClusterConfig, type NodeConfig } from "./config.ts";
import { ip, ipBatch, run, which } from "./exec.ts";
import type { Logger } from "./log.ts";

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const NFT_TABLE = "tapnet";
const IPT_CHAIN = "TAPNET-MASQ";

export class HostNet {
  private forwardingWas?: string;
  private masq?: "nft" | "iptables";

  /** `gatewayIfname`: the switch's gateway port in the node's namespace, already up. */
  constructor(private readonly config: ClusterConfig, private readonly self: NodeConfig, private readonly gatewayIfname: string, private readonly log: Logger) {}

  /** What masquerades traffic leaving the cluster, once set up: nft, iptables, or nothing. */
  get masquerade(): "nft" | "iptables" | undefined {
    return this.masq;
  }

  /** Routes to the other nodes' pod CIDRs, forwarding and masquerade: see the top of this file. */
  async setUp(): Promise<void> {
    const c = this.config;
    const lines: string[] = [];
    for (const n of c.nodes) {
      if (n === this.self) continue;
      const via = formatIpv4(n.podCidr.network);
      lines.push(`neigh replace ${via} lladdr ${n.vtepMac} dev ${this.gatewayIfname} nud permanent`);
      lines.push(`route replace ${formatCidr(n.podCidr)} via ${via} dev ${this.gatewayIfname} onlink`);
    }
    await ipBatch(lines);
    try {
      const was = readFileSync(IP_FORWARD, "utf8").trim();
      if (was !== "1") {
        writeFileSync(IP_FORWARD, "1");
        this.forwardingWas = was;
      }
    } catch (e) {
      this.log.warn("cannot turn on IP forwarding: pods cannot reach beyond the cluster", { error: (e as Error).message });
    }
    const cluster = formatCidr(c.clusterCidr);
    const nodes = c.nodes.map((n) => formatIpv4(n.address));
    if (which("nft")) {
      await run("nft", ["delete", "table", "ip", NFT_TABLE]).catch(() => {});
      await run("nft", ["-f", "-"], { input: [
        `table ip ${NFT_TABLE} {`,
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        `    ip saddr ${cluster} ip daddr != ${cluster} ip daddr != { ${nodes.join(", ")} } masquerade`,
        "  }",
        "}",
      ].join("\n") + "\n" });
      this.masq = "nft";
    } else if (which("iptables")) {
      await this.removeIptables();
      const ipt = (...a: string[]) => run("iptables", ["-w", "-t", "nat", ...a]);
      await ipt("-N", IPT_CHAIN);
      await ipt("-A", IPT_CHAIN, "-d", cluster, "-j", "RETURN");
      for (const a of nodes) await ipt("-A", IPT_CHAIN, "-d", a, "-j", "RETURN");
      await ipt("-A", IPT_CHAIN, "-j", "MASQUERADE");
      await ipt("-A", "POSTROUTING", "-s", cluster, "-j", IPT_CHAIN);
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

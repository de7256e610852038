/**
 * A plain Linux node, set up as flannel's vxlan backend sets one up, with no tapnet on it:
 * the reference a tapnet node must interoperate with, and the baseline `tapnet bench` compares
 * against. Everything here is the kernel's own:
 *
 *   cni0        a bridge holding the node's gateway address (the pod CIDR's first address);
 *               each pod's eth0 is one end of a veth pair whose other end is on cni0. Its MAC
 *               is set, to the one tapnet gives a gateway (0a:58:<address>): a bridge without
 *               one takes its ports' lowest and changes it as pods come and go, and the pods'
 *               ARP entries for the gateway go stale.
 *   flannel.1   a vxlan device: VNI, dstport 8472, nolearning, its MAC the node's VTEP MAC,
 *               holding the pod CIDR's network address as a /32
 *   for each remote node:
 *     route     <its pod CIDR> via <its pod CIDR's network address> dev flannel.1 onlink
 *     neigh     <that network address> lladdr <its VTEP MAC> dev flannel.1 nud permanent
 *     fdb       <its VTEP MAC> dev flannel.1 dst <its underlay address>
 *
 * and IP forwarding with the same masquerade rule as a tapnet node's.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { formatCidr } from "../wire/cidr.ts";
import type { ClusterConfig, NodeConfig } from "../node/config.ts";
import { inNetns, ip, ipBatch, run } from "../node/exec.ts";
import { gatewayOf } from "../node/ipam.ts";

export const KERNEL_BRIDGE = "cni0";
export const KERNEL_VXLAN = "flannel.1";

/** Commands (for `ip -batch`) that make `node` a kernel VXLAN node of `config`. */
export function kernelNodeCommands(config: ClusterConfig, node: NodeConfig, underlayDev: string): string[] {
  const gw = formatIpv4(gatewayOf(node.podCidr));
  const lines = [
    `link add ${KERNEL_BRIDGE} address ${macForIpv4(gatewayOf(node.podCidr))} type bridge`, // its own MAC: see the top
    `link set ${KERNEL_BRIDGE} mtu ${config.podMtu} up`,
    `addr add ${gw}/${node.podCidr.prefix} dev ${KERNEL_BRIDGE}`,
    `link add ${KERNEL_VXLAN} type vxlan id ${config.backend.vni} local ${formatIpv4(node.address)} dev ${underlayDev} dstport ${config.backend.port} nolearning`,
    `link set ${KERNEL_VXLAN} address ${node.vtepMac} mtu ${config.podMtu}`,
    `addr add ${formatIpv4(node.podCidr.network)}/32 dev ${KERNEL_VXLAN}`,
    `link set ${KERNEL_VXLAN} up`,
  ];
  for (const n of config.nodes) {
    if (n === node) continue;
    const via = formatIpv4(n.podCidr.network);
    lines.push(`neigh replace ${via} lladdr ${n.vtepMac} dev ${KERNEL_VXLAN} nud permanent`);
    lines.push(`route replace ${formatCidr(n.podCidr)} via ${via} dev ${KERNEL_VXLAN} onlink`);
  }
  return lines;
}

/** Sets up `node` in network namespace `netns`, whose underlay interface is `underlayDev`. */
export async function setUpKernelNode(config: ClusterConfig, node: NodeConfig, netns: string, underlayDev: string): Promise<void> {
  await ipBatch(kernelNodeCommands(config, node, underlayDev), netns);
  for (const n of config.nodes) {
    if (n !== node) await run("bridge", ["-n", netns, "fdb", "append", n.vtepMac, "dev", KERNEL_VXLAN, "dst", formatIpv4(n.address)]);
  }
  await forwardAndMasquerade(config, netns);
}

/** IP forwarding on, and the masquerade rule a tapnet node installs: pods to outside the cluster and its nodes. */
export async function forwardAndMasquerade(config: ClusterConfig, netns: string): Promise<void> {
  await inNetns(netns, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
  const cluster = formatCidr(config.clusterCidr);
  const nodes = config.nodes.map((n) => formatIpv4(n.address)).join(", ");
  await run("ip", ["netns", "exec", netns, "nft", "-f", "-"], { input:
    `table ip tapnet {\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n` +
    `  ip saddr ${cluster} ip daddr != ${cluster} ip daddr != { ${nodes} } masquerade\n }\n}\n` });
}

/** Attaches a pod to a kernel node: a veth pair, eth0 in the pod and the other end on cni0. */
export async function addKernelPod(config: ClusterConfig, node: NodeConfig, nodeNetns: string, podNetns: string, hostIf: string, addr: number): Promise<string> {
  await ip("-n", nodeNetns, "link", "add", hostIf, "mtu", String(config.podMtu), "type", "veth", "peer", "name", "eth0", "netns", podNetns);
  await ipBatch([`link set ${hostIf} master ${KERNEL_BRIDGE}`, `link set ${hostIf} up`], nodeNetns);
  await ipBatch([
    `addr add ${formatIpv4(addr)}/${node.podCidr.prefix} dev eth0`,
    "link set lo up",
    "link set eth0 up",
    `route replace default via ${formatIpv4(gatewayOf(node.podCidr))} dev eth0`,
  ], podNetns);
  const out = await ip("-n", podNetns, "-o", "link", "show", "eth0");
  return /link\/ether ([0-9a-f:]{17})/.exec(out)?.[1] ?? "?";
}

/**
 * A plain Linux node set up as flannel's host-gw backend sets one up: no encapsulation at all.
 * Pods' packets cross the underlay as they are, which works only where every node is on one
 * L2 segment (the lab's br0). It is the ceiling `tapnet bench` measures the overlays against:
 * what the kernel does when it has nothing to wrap.
 *
 *   cni0        a bridge holding the node's gateway address (the pod CIDR's first address), MTU
 *               the underlay's (nothing is added to a pod's packet); each pod's eth0 is one end
 *               of a veth pair whose other end is on cni0 (kernel-node.ts's addKernelPod)
 *   for each remote node:
 *     route     <its pod CIDR> via <its underlay address> dev <the underlay interface>
 *
 * and IP forwarding with the same masquerade rule as a tapnet node's.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { formatCidr } from "../wire/cidr.ts";
import type { ClusterConfig, NodeConfig } from "../node/config.ts";
import { ipBatch } from "../node/exec.ts";
import { gatewayOf } from "../node/ipam.ts";
import { forwardAndMasquerade, KERNEL_BRIDGE } from "./kernel-node.ts";

/** Commands (for `ip -batch`) that make `node` a host-gw node of `config`. */
export function hostGwNodeCommands(config: ClusterConfig, node: NodeConfig, underlayDev: string): string[] {
  const lines = [
    `link add ${KERNEL_BRIDGE} address ${macForIpv4(gatewayOf(node.podCidr))} type bridge`, // its own MAC: see kernel-node.ts
    `link set ${KERNEL_BRIDGE} mtu ${config.mtu} up`,
    `addr add ${formatIpv4(gatewayOf(node.podCidr))}/${node.podCidr.prefix} dev ${KERNEL_BRIDGE}`,
  ];
  for (const n of config.nodes) {
    if (n !== node) lines.push(`route replace ${formatCidr(n.podCidr)} via ${formatIpv4(n.address)} dev ${underlayDev}`);
  }
  return lines;
}

/** Sets up `node` in network namespace `netns`, whose underlay interface is `underlayDev`. */
export async function setUpHostGwNode(config: ClusterConfig, node: NodeConfig, netns: string, underlayDev: string): Promise<void> {
  await ipBatch(hostGwNodeCommands(config, node, underlayDev), netns);
  await forwardAndMasquerade(config, netns);
}

/**
 * The node's gateway port, tapnet0: a TAP of the switch in the node's own namespace, holding the
 * first address of the node's pod CIDR with the MAC derived from it, so the node reaches its
 * pods and they reach it without NAT. Like the pods' TAPs it is persistent: a switch that dies
 * leaves it, with its address and the routes over it (host-net.ts), and the next switch
 * attaches to it again; the address is set with `replace` for that reason. Opening it fails
 * with EBUSY while another switch holds it: two switches never share a namespace.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import type { PortInfo, Switch } from "../switch/switch.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import { ip, ipBatch } from "./exec.ts";
import type { Logger } from "./log.ts";
import { podGsoMaxSize } from "./pod-attach.ts";

export const GATEWAY_IFNAME = "tapnet0";

export class GatewayError extends Error {}

export async function attachGateway(sw: Switch, config: ClusterConfig, node: NodeConfig, gateway: number, log: Logger): Promise<void> {
  let port: PortInfo;
  try {
    port = sw.addTap(GATEWAY_IFNAME, "gateway");
  } catch (e) {
    throw new GatewayError(`cannot create ${GATEWAY_IFNAME}: ${(e as Error).message} (is another switch running in this namespace?)`);
  }
  const gw = formatIpv4(gateway);
  await ipBatch([
    `link set ${GATEWAY_IFNAME} address ${macForIpv4(gateway)} mtu ${config.podMtu}`,
    `addr replace ${gw}/${node.podCidr.prefix} dev ${GATEWAY_IFNAME}`,
    `link set ${GATEWAY_IFNAME} up`,
  ]);
  log.info("gateway attached", { ifname: GATEWAY_IFNAME, port: port.port, address: gw });
}

/**
 * On the tapnet backend, keeps tapnet0's TSO super-frames small enough to leave in one
 * UDP_SEGMENT send (tunnel/tapnet.ts; pods' interfaces get the same in pod-attach.ts). Best
 * effort: a kernel or ip without gso_max_size just sends each frame in two.
 */
export async function capGatewaySuperFrames(sw: Switch, config: ClusterConfig, log: Logger): Promise<void> {
  const gso = podGsoMaxSize(config, sw);
  if (gso === undefined) return;
  await ip("link", "set", GATEWAY_IFNAME, "gso_max_size", String(gso))
    .catch((e) => log.warn("cannot cap TSO super-frames", { ifname: GATEWAY_IFNAME, error: (e as Error).message }));
}

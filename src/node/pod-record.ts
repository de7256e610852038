/**
 * What the node agent (agent.ts) knows of a pod it attached, and the checks a pod request
 * passes before anything is made: names as Kubernetes allows them, a network namespace name
 * `ip netns` takes, an interface name Linux takes. Also the router's view of the cluster from
 * one node, which the agent gives the switch.
 */
import { macForIpv4 } from "../wire/mac.ts";
import { checkIfName } from "../io/tap.ts";
import type { RouterConfig } from "../switch/state.ts";
import type { ClusterConfig } from "./config.ts";
import { gatewayOf } from "./ipam.ts";

export const POD_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
export const NAMESPACE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NETNS_NAME_RE = /^[A-Za-z0-9_.-]{1,255}$/;

export interface PodRecord {
  name: string;
  /** The Kubernetes namespace of the pod ("default" unless told). */
  namespace: string;
  netns: string;
  ip: string;
  mac: string;
  ifname: string;
  port: number;
  /** Did this agent create the namespace (and so delete it with the pod)? */
  ownsNetns: boolean;
  /** Is it the store's pod (tapnet apply), rather than one `tapnet pod add` attached? */
  fromStore: boolean;
}

export interface PodRequest {
  name: string;
  namespace?: string;
  netns?: string;
  ip?: string;
  ifname?: string;
}

export class PodRequestError extends Error {}

/** How the agent names a pod (its map, the switch's port label, its logs): kubectl's habit, the namespace only when not default. */
export const podKey = (namespace: string, name: string) => (namespace === "default" ? name : `${namespace}/${name}`);

/** A network namespace name `ip netns` takes (a name under /run/netns, not a path). */
export function netnsNameProblem(netns: unknown): string | undefined {
  return typeof netns === "string" && NETNS_NAME_RE.test(netns) && netns !== "." && netns !== ".." ? undefined : `network namespace name ${JSON.stringify(netns)} is not valid`;
}

/** A pod request's name, namespace, network namespace and interface name, checked; the defaults filled in. */
export function checkPodRequest(req: PodRequest): { name: string; namespace: string; netns: string; ifname: string } {
  // The control socket takes JSON from anyone who can open it: every field a string, or absent.
  for (const k of ["namespace", "netns", "ip", "ifname"] as const) {
    const v: unknown = req[k];
    if (v !== undefined && typeof v !== "string") throw new PodRequestError(`${k} must be a string, not ${JSON.stringify(v)}`);
  }
  const name = req.name;
  if (typeof name !== "string" || !POD_NAME_RE.test(name)) throw new PodRequestError(`pod name ${JSON.stringify(name)} must be lower-case letters, digits, '-' and '.', 1-253 long`);
  const namespace = req.namespace ?? "default";
  if (typeof namespace !== "string" || !NAMESPACE_RE.test(namespace)) throw new PodRequestError(`namespace ${JSON.stringify(namespace)} must be lower-case letters, digits and '-', 1-63 long`);
  const netns = req.netns ?? name;
  const badNetns = netnsNameProblem(netns);
  if (badNetns) throw new PodRequestError(badNetns);
  const ifname = req.ifname ?? "eth0";
  const badIf = checkIfName(ifname);
  if (badIf) throw new PodRequestError(badIf);
  return { name, namespace, netns, ifname };
}

/** The router's view of the cluster from node `self`. */
export function routerConfig(config: ClusterConfig, self: number): RouterConfig {
  const gw = gatewayOf(config.nodes[self].podCidr);
  return {
    gatewayIp: gw,
    gatewayMac: macForIpv4(gw),
    clusterNetwork: config.clusterCidr.network,
    clusterPrefix: config.clusterCidr.prefix,
    tunnelMtu: config.podMtu,
    datagramSize: config.mtu - 28,
    self,
    nodes: config.nodes.map((n) => ({ name: n.name, address: n.address, network: n.podCidr.network, prefix: n.podCidr.prefix, vtepMac: n.vtepMac })),
    backend: { type: config.backend.type, vni: config.backend.vni, ...(config.backend.secret !== undefined ? { secret: config.backend.secret } : {}) },
  };
}

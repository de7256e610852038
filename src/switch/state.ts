/**
 * What the stages share: the counters, the FDB, the live ports, and, on a switch that routes
 * between nodes, its view of the cluster (the subnet map, the neighbour table, the gateway).
 * Plain data and small tables; the stages read and update them per frame. The view of the
 * cluster is made anew when the node list changes (membership.ts), between rounds: the
 * neighbour table and the gateway port, which belong to this node, go over to the new one.
 */
import { macHi, macLo, parseMac } from "../wire/mac.ts";
import { Counters } from "./counters.ts";
import { Fdb, type FdbOptions } from "./fdb.ts";
import { Neighbors } from "./neighbors.ts";
import { SubnetMap } from "./routes.ts";
import type { Tracker } from "./conntrack/tracker.ts";

/** The routing switch's view of the cluster: plain data, passed to the datapath worker as it is. */
export interface RouterConfig {
  gatewayIp: number;
  gatewayMac: string;
  clusterNetwork: number;
  clusterPrefix: number;
  /** Largest IPv4 packet the tunnel carries: the pods' MTU. */
  tunnelMtu: number;
  /** Largest UDP payload on the underlay (its MTU - 28): the largest datagram sent. */
  datagramSize: number;
  /** This node's index in `nodes`. */
  self: number;
  nodes: { name: string; address: number; network: number; prefix: number; vtepMac: string }[];
  /** The backend, by its name in tunnel/index.ts's registry. */
  /** `secret`: the cluster's, for a backend that seals its datagrams (tunnel/seal.ts). */
  backend: { type: string; vni: number; secret?: string };
}

/** The ports frames may be written to: attached and not gone. */
export class LivePorts {
  /** live[p] is 1 while port p is attached. */
  readonly live: Uint8Array;
  /** The live ports, in the order they came; `count` of them. */
  readonly list: Int32Array;
  count = 0;

  constructor(maxPorts: number) {
    this.live = new Uint8Array(maxPorts);
    this.list = new Int32Array(maxPorts);
  }

  add(port: number): void {
    if (this.live[port]) return;
    this.live[port] = 1;
    this.list[this.count++] = port;
  }

  remove(port: number): void {
    if (!this.live[port]) return;
    this.live[port] = 0;
    let j = 0;
    for (let i = 0; i < this.count; i++) if (this.list[i] !== port) this.list[j++] = this.list[i];
    this.count = j;
  }

  has(port: number): boolean {
    return port >= 0 && port < this.live.length && this.live[port] === 1;
  }
}

/** The cluster as the routing stages see it: derived once from a RouterConfig. */
export class Cluster {
  readonly map: SubnetMap;
  readonly neighbors: Neighbors;
  readonly gwHi: number;
  readonly gwLo: number;
  readonly clusterLast: number;
  /** Each node's VTEP MAC, by node index. */
  readonly vtepHi: Uint16Array;
  readonly vtepLo: Uint32Array;
  /** The port of tapnet0, the node's own interface; -1 until it is attached. */
  gatewayPort = -1;

  /** `neighbors`: the table of the node's own pod CIDR, kept from an earlier view of the cluster. */
  constructor(readonly cfg: RouterConfig, neighbors?: Neighbors) {
    this.map = new SubnetMap(cfg.nodes);
    const self = cfg.nodes[cfg.self];
    this.neighbors = neighbors ?? new Neighbors(self.network, self.prefix);
    const gw = parseMac(cfg.gatewayMac)!;
    this.gwHi = macHi(gw, 0);
    this.gwLo = macLo(gw, 0);
    const vteps = cfg.nodes.map((n) => parseMac(n.vtepMac)!);
    this.vtepHi = Uint16Array.from(vteps, (m) => macHi(m, 0));
    this.vtepLo = Uint32Array.from(vteps, (m) => macLo(m, 0));
    this.clusterLast = cfg.clusterNetwork + 2 ** (32 - cfg.clusterPrefix) - 1;
  }

  /**
   * The same cluster with another node list, this node at index `self` in it (its pod CIDR the
   * same: see membership.ts's checkNodes): the neighbour table and the gateway port go over.
   */
  withNodes(nodes: RouterConfig["nodes"], self: number): Cluster {
    const next = new Cluster({ ...this.cfg, nodes, self }, this.neighbors);
    next.gatewayPort = this.gatewayPort;
    return next;
  }

  /** Is `ip` inside the cluster CIDR? */
  inCluster(ip: number): boolean {
    return ip >= this.cfg.clusterNetwork && ip <= this.clusterLast;
  }

  /** Is hi:lo another node's VTEP MAC? */
  isRemoteVtep(hi: number, lo: number): boolean {
    for (let i = 0; i < this.vtepHi.length; i++) if (this.vtepLo[i] === lo && this.vtepHi[i] === hi && i !== this.cfg.self) return true;
    return false;
  }
}

export class SwitchState {
  readonly ports: LivePorts;
  /** The tunnel's row in the counters: after the last TAP port. */
  readonly tunnelRow: number;
  /** Connection tracking, Services and policy, on a switch that routes between nodes (the datapath makes it). */
  tracker?: Tracker;

  /** `cluster`: replaced when the node list changes, between rounds (the stages are rebuilt then). */
  constructor(readonly counters: Counters, readonly fdb: Fdb, public cluster?: Cluster) {
    this.ports = new LivePorts(counters.maxPorts);
    this.tunnelRow = counters.maxPorts - 1;
  }

  static make(maxPorts: number, fdb: FdbOptions, router?: RouterConfig, shared?: SharedArrayBuffer): SwitchState {
    return new SwitchState(new Counters(maxPorts, shared), new Fdb(fdb), router ? new Cluster(router) : undefined);
  }
}

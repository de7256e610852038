/**
 * The node agent: what `tapnet switch` runs on each node. It starts the switch, gives the node
 * its gateway port (tapnet0, holding the first address of the node's pod CIDR, so the node
 * reaches its pods and they reach it without NAT), attaches and detaches pods, and answers on
 * the control socket.
 *
 * Attaching a pod, the role a CNI plugin plays for a pause container:
 *   1. open a TAP under a temporary name in the node's namespace (the switch keeps the fd);
 *   2. move it into the pod's namespace: the fd stays attached across the move;
 *   3. there, rename it eth0, give it its MAC, address and MTU, bring it and lo up, and route
 *      the default via the gateway (pod-attach.ts, which the CNI plugin's attachments share).
 * If any step fails, the steps before it are undone. Closing the fd removes the device.
 *
 * With other nodes in the config, or nodes that join through etcd, the agent also opens the
 * tunnel (the switch's stages do the rest, see switch/datapath.ts); and it sets up the node's
 * kernel as flannel's vxlan backend would (routes to the other nodes' pod CIDRs, forwarding,
 * masquerade: host-net.ts). All of it is removed when the switch stops.
 *
 * With a store (store-sync.ts), the agent also leases its pod CIDR (etcd), follows the nodes
 * joining and leaving (setPeers), attaches the Pods the store puts on this node, records those
 * `tapnet pod add` attaches, and answers `tapnet apply/delete/get` (object-rpc.ts); the switch
 * gets the Services and NetworkPolicies, the kernel the NodePorts, as they change (view-sync.ts).
 */
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { checkIfName } from "../io/tap.ts";
import { runtimeName } from "../io/runtime.ts";
import { Switch, type PortInfo, type SwitchOptions } from "../switch/switch.ts";
import { formatCidr } from "../wire/cidr.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import { ip, ipBatch, netnsExists } from "./exec.ts";
import type { RouterConfig } from "../switch/state.ts";
import { HostNet } from "./host-net.ts";
import { gatewayOf, PodIpam } from "./ipam.ts";
import type { Logger } from "./log.ts";
import { RpcServer } from "./rpc.ts";
import type { Pod } from "../cluster/objects.ts";
import { objectHandlers } from "./object-rpc.ts";
import { flowHandlers } from "./flow-rpc.ts";
import { attachTap, podGsoMaxSize } from "./pod-attach.ts";
import { StoreSync, type PodHost, type StoreOptions } from "./store-sync.ts";
import { CniHost } from "./cni-host.ts";
import { ViewSync } from "./view-sync.ts";

export const GATEWAY_IFNAME = "tapnet0";
const POD_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const NAMESPACE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface AgentOptions {
  config: ClusterConfig;
  nodeName: string;
  controlPath: string;
  log: Logger;
  switchOptions?: Partial<SwitchOptions>;
  /** The cluster store; without one, pods live only on this switch (tests). */
  store?: StoreOptions;
}

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

export class AgentError extends Error {}

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
    backend: { type: config.backend.type, vni: config.backend.vni },
  };
}

/** How the agent names a pod (its map, the switch's port label, its logs): kubectl's habit, the namespace only when not default. */
const podKey = (namespace: string, name: string) => (namespace === "default" ? name : `${namespace}/${name}`);

export class NodeAgent implements PodHost {
  /** By podKey. */
  private readonly pods = new Map<string, PodRecord>();
  private readonly ipam: PodIpam;
  private rpc?: RpcServer;
  private tapSerial = 0;
  private stopping = false;
  private readonly hostNet: HostNet;
  private views?: ViewSync;
  readonly node: NodeConfig;
  readonly gateway: number;
  /** The CNI plugin's attachments (cni.* methods, cni-host.ts). */
  readonly cni: CniHost;

  /** The cluster as this node sees it now: with etcd, its nodes change as nodes come and go. */
  config: ClusterConfig;

  private constructor(readonly opts: AgentOptions, readonly sw: Switch, private readonly log: Logger, config: ClusterConfig, readonly sync?: StoreSync) {
    this.config = config;
    const node = config.nodes.find((n) => n.name === opts.nodeName);
    if (!node) throw new AgentError(`node "${opts.nodeName}" is not in the config (it has: ${config.nodes.map((n) => n.name).join(", ")})`);
    this.node = node;
    this.ipam = new PodIpam(node.podCidr);
    this.gateway = gatewayOf(node.podCidr);
    this.hostNet = new HostNet(config, node, GATEWAY_IFNAME, log);
    this.cni = new CniHost({ sw, ipam: this.ipam, log, node, gateway: this.gateway, sync, config: () => this.config, stopping: () => this.stopping, agentHasPod: (ns, n) => this.hasPod(ns, n) });
    sw.onPortDown((p, reason) => void this.onPortDown(p, reason));
  }

  get nodeName(): string {
    return this.node.name;
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    const sync = opts.store ? await StoreSync.open(opts.config, opts.nodeName, opts.store, opts.log) : undefined;
    const config = sync?.config ?? opts.config;
    if (!config.nodes.some((n) => n.name === opts.nodeName)) {
      throw new AgentError(`node "${opts.nodeName}" is not in the config (it has: ${config.nodes.map((n) => n.name).join(", ")})`);
    }
    const self = config.nodes.findIndex((n) => n.name === opts.nodeName);
    // Nodes that join through etcd may come at any time: such a switch routes from the start.
    // A one-node cluster routes too, for its Services and policies (conntrack), on an idle
    // tunnel socket: any address, a port of the kernel's choosing.
    const alone = config.nodes.length === 1 && !sync?.dynamic;
    const routing = { config: routerConfig(config, self), address: alone ? 0 : config.nodes[self].address, port: alone ? 0 : config.backend.port };
    let sw: Switch;
    try {
      sw = await Switch.start({ onPolicyDenied: (e) => opts.log.info("policy denied", { ...e }), ...opts.switchOptions, routing });
    } catch (e) {
      await sync?.stop();
      throw e;
    }
    const agent = new NodeAgent(opts, sw, opts.log, config, sync);
    try {
      await agent.attachGateway();
      await agent.setUpNode();
      await agent.cni.restore(); // before the socket opens: no ADD gets an address a restored pod holds
      agent.rpc = await RpcServer.listen(opts.controlPath, agent.handlers());
      await sync?.start(agent);
      agent.views = sync && new ViewSync({ store: sync.store, serviceCidr: config.serviceCidr, log: opts.log, apply: (v) => sw.setView(v), nodePorts: (p) => agent.hostNet.setNodePorts(p) });
      await agent.views?.start();
    } catch (e) {
      await agent.stop();
      throw e;
    }
    opts.log.info("switch ready", {
      node: agent.node.name, podCidr: formatCidr(agent.node.podCidr), gateway: formatIpv4(agent.gateway),
      backend: alone ? "none (one node)" : `${config.backend.type} on ${formatIpv4(agent.node.address)}:${config.backend.port}`,
      store: sync ? `${sync.kv.description} (cluster ${opts.store!.cluster})` : "none",
      masquerade: agent.hostNet.masquerade ?? "none", control: opts.controlPath, runtime: runtimeName, pid: process.pid,
    });
    return agent;
  }

  private async attachGateway(): Promise<void> {
    let port: PortInfo;
    try {
      port = this.sw.addTap(GATEWAY_IFNAME, "gateway");
    } catch (e) {
      throw new AgentError(`cannot create ${GATEWAY_IFNAME}: ${(e as Error).message} (is another switch running in this namespace?)`);
    }
    const gw = formatIpv4(this.gateway);
    await ipBatch([
      `link set ${GATEWAY_IFNAME} address ${macForIpv4(this.gateway)} mtu ${this.config.podMtu}`,
      `addr add ${gw}/${this.node.podCidr.prefix} dev ${GATEWAY_IFNAME}`,
      `link set ${GATEWAY_IFNAME} up`,
    ]);
    this.log.info("gateway attached", { ifname: GATEWAY_IFNAME, port: port.port, address: gw });
  }

  /**
   * On the tapnet backend, keeps tapnet0's TSO super-frames small enough to leave in one
   * UDP_SEGMENT send (tunnel/tapnet.ts; pods' interfaces get the same in pod-attach.ts). Best
   * effort: a kernel or ip without gso_max_size just sends each frame in two.
   */
  private async capSuperFrames(ifname: string): Promise<void> {
    const gso = podGsoMaxSize(this.config, this.sw);
    if (gso === undefined) return;
    await ip("link", "set", ifname, "gso_max_size", String(gso))
      .catch((e) => this.log.warn("cannot cap TSO super-frames", { ifname, error: (e as Error).message }));
  }


  /** The node's kernel: its gateway port's super-frames capped, then routes, forwarding and masquerade (host-net.ts). */
  private async setUpNode(): Promise<void> {
    await this.capSuperFrames(GATEWAY_IFNAME);
    await this.hostNet.setUp();
  }

  /** Undoes setUpNode (the routes and neighbours go with tapnet0). */
  private async tearDownNode(): Promise<void> {
    await this.hostNet.tearDown();
  }

  private handlers() {
    return {
      ping: () => ({ node: this.node.name, pid: process.pid }),
      "pod.add": (p: Record<string, unknown>) => this.addPodCommand(p as unknown as PodRequest),
      "pod.del": (p: Record<string, unknown>) => this.delPodCommand(String(p.name ?? ""), String(p.namespace ?? "default")),
      "pod.list": () => this.listPods(),
      status: () => this.status(),
      ...objectHandlers(this.sync),
      ...flowHandlers(this.sw),
      ...this.cni.handlers(),
    };
  }

  /** `tapnet pod add`: attaches the pod, then records it in the store. */
  private async addPodCommand(req: PodRequest): Promise<PodRecord> {
    const ns = req.namespace ?? "default";
    const refused = await this.sync?.podRefusal(ns, req.name);
    if (refused) throw new AgentError(refused);
    const rec = await this.addPod(req);
    await this.sync?.recordPodAdd(ns, rec.name, rec.ip, rec.netns, rec.ifname)
      .catch((e) => this.log.warn("pod attached but not recorded in the store", { pod: `${ns}/${rec.name}`, error: (e as Error).message }));
    return rec;
  }

  private async delPodCommand(name: string, namespace: string): Promise<{ removed: boolean }> {
    if (this.cni.hasPod(namespace, name)) throw new AgentError(`pod ${podKey(namespace, name)} is a container runtime's (CNI): it goes when its container does`);
    const r = await this.delPod(name, namespace);
    await this.sync?.forgetPod(namespace, name).catch((e) => this.log.warn("pod detached but still in the store", { pod: `${namespace}/${name}`, error: (e as Error).message }));
    return r;
  }

  hasPod(namespace: string, name: string): boolean {
    return this.pods.has(podKey(namespace, name)) || this.cni.hasPod(namespace, name);
  }

  /** A Pod the store put on this node: its namespace is made, its address the one it had if free. */
  async attachFromStore(pod: Pod, netns: string): Promise<{ ip: string }> {
    const had = pod.status?.podIP;
    const req: PodRequest = { name: pod.metadata.name, namespace: pod.metadata.namespace ?? "default", netns };
    let rec: PodRecord;
    try {
      rec = await this.addPod(had ? { ...req, ip: had } : req, true);
    } catch (e) {
      if (!had) throw e;
      rec = await this.addPod(req, true); // its old address is taken or outside this node's CIDR now
    }
    return { ip: rec.ip };
  }

  async detachFromStore(namespace: string, name: string): Promise<void> {
    await this.delPod(name, namespace);
  }

  /** The nodes of the cluster changed (etcd): the switch's subnet map and the kernel's routes follow. */
  async setPeers(nodes: NodeConfig[]): Promise<void> {
    if (this.stopping) return;
    const self = nodes.findIndex((n) => n.name === this.node.name);
    if (self < 0) throw new AgentError("the new node list does not have this node");
    this.config = { ...this.config, nodes };
    await this.sw.setNodes(routerConfig(this.config, self).nodes, self);
    await this.hostNet.update(nodes);
  }

  /** `fromStore`: the pod is the store's (tapnet apply): its namespace is this switch's to make and delete. */
  async addPod(req: PodRequest, fromStore = false): Promise<PodRecord> {
    if (this.stopping) throw new AgentError("the switch is stopping");
    const name = req.name;
    if (typeof name !== "string" || !POD_NAME_RE.test(name)) throw new AgentError(`pod name ${JSON.stringify(name)} must be lower-case letters, digits, '-' and '.', 1-253 long`);
    const namespace = req.namespace ?? "default";
    if (typeof namespace !== "string" || !NAMESPACE_RE.test(namespace)) throw new AgentError(`namespace ${JSON.stringify(namespace)} must be lower-case letters, digits and '-', 1-63 long`);
    const key = podKey(namespace, name);
    if (this.hasPod(namespace, name)) throw new AgentError(`pod ${name} is already attached${namespace === "default" ? "" : ` in namespace ${namespace}`}`);
    const netns = req.netns ?? name;
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(netns) || netns === "." || netns === "..") throw new AgentError(`network namespace name ${JSON.stringify(netns)} is not valid`);
    const ifname = req.ifname ?? "eth0";
    const badIf = checkIfName(ifname);
    if (badIf) throw new AgentError(badIf);
    for (const p of this.pods.values()) if (p.netns === netns) throw new AgentError(`namespace ${netns} already holds pod ${p.name}`);

    // A namespace the store's pod is made in is this switch's, even if a killed switch left it.
    const ownsNetns = fromStore || !netnsExists(netns);
    const addr = this.ipam.allocate(req.ip);
    const undo: (() => Promise<unknown>)[] = [async () => this.ipam.release(addr)];
    try {
      if (ownsNetns && !netnsExists(netns)) {
        await ip("netns", "add", netns);
        undo.push(() => ip("netns", "del", netns));
      } else if (await ip("-n", netns, "link", "show", ifname).then(() => true, () => false)) {
        throw new AgentError(`namespace ${netns} already has an interface ${ifname}`);
      }
      const mac = macForIpv4(addr);
      const ipStr = formatIpv4(addr);
      const gso = podGsoMaxSize(this.config, this.sw);
      const port = await attachTap(this.sw, {
        tmp: `tnp${process.pid % 100000}x${this.tapSerial++}`, label: key, netns: `/run/netns/${netns}`, shownAs: netns, ifname,
        ip: ipStr, mac, prefix: this.node.podCidr.prefix, gateway: formatIpv4(this.gateway), mtu: this.config.podMtu,
        ...(gso !== undefined ? { gsoMaxSize: gso } : {}),
      }, this.log);
      undo.push(() => this.sw.removePort(port));
      const rec: PodRecord = { name, namespace, netns, ip: ipStr, mac, ifname, port, ownsNetns, fromStore };
      this.pods.set(key, rec);
      this.log.info("pod attached", { pod: key, netns, ip: ipStr, mac, port, ownsNetns });
      return rec;
    } catch (e) {
      for (const step of undo.reverse()) await step().catch(() => {});
      throw e;
    }
  }

  /** Detaches a pod; deletes its namespace if this agent created it. Idempotent. */
  async delPod(name: string, namespace = "default"): Promise<{ removed: boolean }> {
    const key = podKey(namespace, name);
    const rec = this.pods.get(key);
    if (!rec) return { removed: false };
    this.pods.delete(key);
    await this.sw.removePort(rec.port);
    this.ipam.release(parseIpv4Address(rec.ip)!);
    if (rec.ownsNetns) await ip("netns", "del", rec.netns).catch((e) => this.log.warn("could not delete namespace", { netns: rec.netns, error: String(e) }));
    this.log.info("pod detached", { pod: key });
    return { removed: true };
  }

  private async onPortDown(p: PortInfo, reason: string): Promise<void> {
    this.log.warn("port went down", { port: p.port, ifname: p.ifname, pod: p.pod, reason });
    if (this.cni.portDown(p, reason)) return;
    const rec = p.pod ? this.pods.get(p.pod) : undefined;
    if (!rec) return;
    if (!rec.fromStore) {
      await this.delPodCommand(rec.name, rec.namespace).catch(() => {});
      return;
    }
    await this.delPod(rec.name, rec.namespace).catch(() => {});
    await this.sync?.writePodStatus(rec.namespace, rec.name, { phase: "Failed", message: `its interface went away: ${reason}` }, {}).catch(() => {});
  }

  listPods(): PodRecord[] {
    return [...this.pods.values(), ...this.cni.list().map((a) => ({ ...a, port: a.port ?? -1, ownsNetns: false, fromStore: false }))];
  }

  async status() {
    const fdb = await this.sw.fdb();
    const ports = this.sw.ports();
    const byPort = new Map(ports.map((p) => [p.port, p]));
    return {
      node: {
        name: this.node.name, address: formatIpv4(this.node.address), podCidr: formatCidr(this.node.podCidr),
        gateway: formatIpv4(this.gateway), gatewayMac: macForIpv4(this.gateway), podMtu: this.config.podMtu,
        backend: this.config.backend.type, pid: process.pid, runtime: runtimeName,
      },
      pods: this.listPods(),
      nodes: this.config.nodes.map((n) => ({ name: n.name, address: formatIpv4(n.address), podCidr: formatCidr(n.podCidr) })),
      store: this.sync ? { description: this.sync.kv.description, cluster: this.opts.store!.cluster } : undefined,
      ports,
      fdb: fdb.map((e) => {
        const p = byPort.get(e.port);
        return { ...e, device: p ? (p.netns ? `${p.ifname}@${p.netns}` : p.ifname) : undefined, pod: p?.pod };
      }),
      counters: this.sw.counters.switchSnapshot(),
      tunnel: this.sw.tunnelCounters(),
    };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.views?.stop();
    await this.rpc?.close();
    // An imperative pod goes with its switch; one from `tapnet apply` stays in the store, to come back with it.
    const imperative = [...this.pods.values()].filter((r) => !r.fromStore);
    await Promise.race([
      Promise.all(imperative.map((r) => this.sync?.forgetPod(r.namespace, r.name).catch(() => {}))),
      new Promise((resolve) => setTimeout(resolve, 2_000).unref?.()),
    ]);
    await this.sync?.stop();
    for (const rec of [...this.pods.values()]) await this.delPod(rec.name, rec.namespace).catch(() => {});
    await this.tearDownNode();
    await this.sw.stop();
    this.log.info("switch stopped", { node: this.node.name });
  }
}

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
 * If any step fails, the steps before it are undone. Removing the port removes the device.
 *
 * Pods outlive their switch: TAPs are persistent (io/tap.ts), and each pod is in the pod file
 * (pod-state.ts) before its TAP is made. A switch that dies (`kill -9`, a crash) leaves each pod
 * its eth0, address and routes; the node's next switch (one at a time: node-lock.ts) takes them
 * over first thing after its datapath starts (adopt.ts; the CNI pods in cni-host.ts). Only `pod
 * del`, a CNI DEL or the Pod's deletion removes a pod's TAP; and a clean stop (SIGTERM), which
 * detaches every pod as it always did (what `lab down` and `lab node stop` rely on). A hand-over
 * (SIGUSR2: tapnet.service's restart) leaves everything to the next switch, as a crash does.
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
import { loadLibc } from "../io/libc.ts";
import { runtimeName } from "../io/runtime.ts";
import { openSys, type Sys } from "../io/sys.ts";
import { Switch, type PortInfo, type SwitchOptions } from "../switch/switch.ts";
import { formatCidr } from "../wire/cidr.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import { ip, netnsExists } from "./exec.ts";
import { HostNet } from "./host-net.ts";
import { gatewayOf, PodIpam } from "./ipam.ts";
import type { Logger } from "./log.ts";
import { RpcServer } from "./rpc.ts";
import type { Pod } from "../cluster/objects.ts";
import { objectHandlers } from "./object-rpc.ts";
import { flowHandlers } from "./flow-rpc.ts";
import { traceHandlers } from "./trace-rpc.ts";
import { attachTap, podGsoMaxSize } from "./pod-attach.ts";
import { refuseClusterNetns } from "./pod-netns.ts";
import { StoreSync, type PodHost, type StoreOptions } from "./store-sync.ts";
import { CniHost } from "./cni-host.ts";
import { ViewSync } from "./view-sync.ts";
import { nodeStatus } from "./node-status.ts";
import { attachGateway, capGatewaySuperFrames, GATEWAY_IFNAME, GatewayError } from "./gateway-port.ts";
import { checkPodRequest, podKey, routerConfig, type PodRecord, type PodRequest } from "./pod-record.ts";
import { readPodFile, removePodFile, savedPod, writePodFile, type SavedPod } from "./pod-state.ts";
import { adoptSaved, adoptTap, cleanUp, removeStrayTaps } from "./adopt.ts";
import { NodeLock, nodeFiles, NodeLockError, STANDBY_ENV } from "./node-lock.ts";

export { routerConfig, type PodRecord, type PodRequest } from "./pod-record.ts";

export { GATEWAY_IFNAME } from "./gateway-port.ts";

export interface AgentOptions {
  config: ClusterConfig;
  nodeName: string;
  controlPath: string;
  log: Logger;
  switchOptions?: Partial<SwitchOptions>;
  /** The cluster store; without one, pods live only on this switch (tests). */
  store?: StoreOptions;
  /** Wait for the node's running switch to exit, then start (a supervisor's spare); default: TAPNET_STANDBY=1 in the environment. */
  standby?: boolean;
}

export class AgentError extends Error {}

export class NodeAgent implements PodHost {
  /** By podKey. */
  private readonly pods = new Map<string, PodRecord>();
  /** Pods whose TAP is being made, in the pod file as pending (by podKey). */
  private readonly attaching = new Map<string, SavedPod>();
  private readonly podFile: string;
  private lock?: NodeLock;
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

  private constructor(readonly opts: AgentOptions, readonly sw: Switch, private readonly log: Logger, config: ClusterConfig, private readonly sys: Sys, readonly sync?: StoreSync) {
    this.config = config;
    this.podFile = nodeFiles(opts.controlPath).pods;
    const node = config.nodes.find((n) => n.name === opts.nodeName);
    if (!node) throw new AgentError(`node "${opts.nodeName}" is not in the config (it has: ${config.nodes.map((n) => n.name).join(", ")})`);
    this.node = node;
    this.ipam = new PodIpam(node.podCidr);
    this.gateway = gatewayOf(node.podCidr);
    this.hostNet = new HostNet(config, node, GATEWAY_IFNAME, log);
    this.cni = new CniHost({
      sw, ipam: this.ipam, log, node, gateway: this.gateway, sync, config: () => this.config, stopping: () => this.stopping, agentHasPod: (ns, n) => this.hasPod(ns, n),
      adopt: (t) => adoptTap(sys, sw, t),
    });
    sw.onPortDown((p, reason) => void this.onPortDown(p, reason));
  }

  get nodeName(): string {
    return this.node.name;
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    const standby = opts.standby ?? process.env[STANDBY_ENV] === "1";
    // A standby's datapath worker loads while it waits: the switch it becomes starts without that wait.
    const { worker, loaded } = standby ? Switch.preboot() : { worker: undefined, loaded: undefined };
    const lock = await NodeLock.acquire(opts.controlPath, { wait: standby, log: opts.log, ...(loaded ? { loaded } : {}) })
      .catch(async (e) => { await worker?.terminate(); throw e instanceof NodeLockError ? new AgentError(e.message) : e; });
    try {
      const agent = await NodeAgent.startLocked(worker ? { ...opts, switchOptions: { ...opts.switchOptions, worker } } : opts);
      agent.lock = lock;
      return agent;
    } catch (e) {
      lock.release();
      await worker?.terminate();
      throw e;
    }
  }

  private static async startLocked(opts: AgentOptions): Promise<NodeAgent> {
    const sys = await openSys(await loadLibc());
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
    const agent = new NodeAgent(opts, sw, opts.log, config, sys, sync);
    try {
      const dropped = agent.adoptPods(); // first: the dead switch's pods forward again as soon as can be
      await attachGateway(sw, config, agent.node, agent.gateway, opts.log).catch((e) => { throw e instanceof GatewayError ? new AgentError(e.message) : e; });
      await removeStrayTaps(opts.log);
      await cleanUp(dropped, opts.log);
      await capGatewaySuperFrames(sw, config, opts.log);
      await agent.hostNet.setUp(); // routes, forwarding, masquerade (host-net.ts)
      await agent.cni.restore(); // before the socket opens: no ADD gets an address a restored pod holds
      agent.rpc = await RpcServer.listen(opts.controlPath, agent.handlers());
      await sync?.start(agent);
      await agent.dropAdoptedGoneFromStore();
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

  /** Takes over the pods of the pod file (adopt.ts); returns those dropped, whose leftovers `cleanUp` removes. */
  private adoptPods(): SavedPod[] {
    const { pods, problems } = readPodFile(this.podFile);
    for (const p of problems) this.log.warn("pod file entry ignored", { problem: p });
    const { adopted, dropped } = adoptSaved({ sw: this.sw, sys: this.sys, ipam: this.ipam, log: this.log }, pods);
    for (const r of adopted) this.pods.set(podKey(r.namespace, r.name), r);
    this.savePods();
    return dropped;
  }

  /** A store's pod taken over but deleted from the store while no switch ran: detached now. */
  private async dropAdoptedGoneFromStore(): Promise<void> {
    if (!this.sync) return;
    for (const r of [...this.pods.values()].filter((p) => p.fromStore)) {
      const pod = await this.sync.store.get({ kind: "Pod", namespace: r.namespace, name: r.name }) as Pod | undefined;
      if (!pod || pod.spec?.nodeName !== this.node.name) await this.delPod(r.name, r.namespace);
    }
  }

  /** Writes the pod file: the pods attached, and those being attached (pending). */
  private savePods(): void {
    try {
      writePodFile(this.podFile, [...[...this.pods.values()].map((r) => savedPod(r)), ...this.attaching.values()]);
    } catch (e) {
      this.log.warn("cannot write the pod file: a switch started after this one will not take these pods over", { file: this.podFile, error: (e as Error).message });
    }
  }

  private handlers() {
    return {
      ping: () => ({ node: this.node.name, pid: process.pid }),
      "pod.add": (p: Record<string, unknown>) => this.addPodCommand(p as unknown as PodRequest),
      "pod.del": (p: Record<string, unknown>) => {
        if (typeof p.name !== "string" || (p.namespace !== undefined && typeof p.namespace !== "string")) throw new AgentError("pod.del needs name, a string (and namespace, a string, if given)");
        return this.delPodCommand(p.name, (p.namespace as string | undefined) ?? "default");
      },
      "pod.list": () => this.listPods(),
      status: () => this.status(),
      ...objectHandlers(this.sync),
      ...flowHandlers(this.sw),
      ...traceHandlers(this.sw, this.node.name),
      ...this.cni.handlers(),
    };
  }

  /** `tapnet pod add`: attaches the pod, then records it in the store. */
  private async addPodCommand(req: PodRequest): Promise<PodRecord> {
    checkPodRequest(req); // the socket takes JSON from anyone: fields checked before anything is asked
    const ns = req.namespace ?? "default";
    const refused = await this.sync?.podRefusal(ns, req.name);
    if (refused) throw new AgentError(refused);
    // Another pod's or node's namespace (pod-netns.ts); a duplicate of our own is addPod's to refuse, by name.
    if (!this.hasPod(ns, req.name)) await refuseClusterNetns(req.netns ?? req.name, this.config.clusterCidr);
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
    const { name, namespace, netns, ifname } = checkPodRequest(req);
    const key = podKey(namespace, name);
    if (this.hasPod(namespace, name) || this.attaching.has(key)) throw new AgentError(`pod ${name} is already attached${namespace === "default" ? "" : ` in namespace ${namespace}`}`);
    for (const p of [...this.pods.values(), ...this.attaching.values()]) if (p.netns === netns) throw new AgentError(`namespace ${netns} already holds pod ${p.name}`);

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
      const tmp = `tnp${process.pid % 100000}x${this.tapSerial++}`;
      // In the pod file before the TAP exists: a switch killed meanwhile leaves its successor a note of what to remove.
      this.attaching.set(key, { name, namespace, netns, ip: ipStr, mac, ifname, ownsNetns, fromStore, pending: tmp });
      this.savePods();
      undo.push(async () => { this.attaching.delete(key); this.savePods(); });
      const port = await attachTap(this.sw, {
        tmp, label: key, netns: `/run/netns/${netns}`, shownAs: netns, ifname,
        ip: ipStr, mac, prefix: this.node.podCidr.prefix, gateway: formatIpv4(this.gateway), mtu: this.config.podMtu,
        ...(gso !== undefined ? { gsoMaxSize: gso } : {}),
      }, this.log);
      undo.push(() => this.sw.removePort(port));
      const rec: PodRecord = { name, namespace, netns, ip: ipStr, mac, ifname, port, ownsNetns, fromStore };
      this.attaching.delete(key);
      this.pods.set(key, rec);
      this.savePods();
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
    this.savePods();
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

  status() {
    return nodeStatus(this);
  }

  /**
   * A stop before a restart (`tapnet switch` on SIGUSR2): the control socket and the store let
   * go (the lease kept), nothing else undone. The pods keep their interfaces and the pod file,
   * tapnet0 its routes, the node its rules, as a crash leaves them; the next switch takes them
   * over. The caller then exits without stopping the switch (closing its TAPs would delete them).
   */
  async handOver(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.views?.stop();
    await this.rpc?.close();
    await this.sync?.stop();
    this.savePods();
    this.log.info("switch handed over: its pods, tapnet0 and rules stay for the next switch", { node: this.node.name, pods: this.pods.size });
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
    await this.hostNet.tearDown(); // the routes and neighbours go with tapnet0
    await this.sw.stop();
    if (this.pods.size === 0 && this.attaching.size === 0) removePodFile(this.podFile);
    this.lock?.release();
    this.log.info("switch stopped", { node: this.node.name });
  }
}

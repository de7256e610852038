/**
 * A node's side of the cluster store (src/cluster/): what the agent learns from it and writes
 * to it. In order:
 *   1. before the switch starts, which pod CIDR is this node's: with the file store, the one the
 *      config gives (its node list is the cluster's, static); with etcd, a lease on the lowest
 *      free subnet of clusterCidr, the one the node had before asked for first (its Node
 *      object's spec.podCIDR), renewed while it runs (cluster/subnet-lease.ts);
 *   2. the node's Node object: its address, spec.podCIDR, Ready;
 *   3. with etcd, the members: every live lease is a node; each change goes to the agent, which
 *      gives the switch and the kernel the new peer list (no restart);
 *   4. the Pods whose spec.nodeName is this node: attached when they appear, detached when they
 *      go, their status (podIP, hostIP, phase) and network namespace written back.
 * A lost store is retried by the Kv underneath; the switch goes on forwarding with what it has.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatCidr, parseCidr } from "../wire/cidr.ts";
import type { Kv } from "../cluster/kv.ts";
import { openKv } from "../cluster/open.ts";
import { AlreadyExistsError, ConflictError, NotFoundError, ObjectStore } from "../cluster/store.ts";
import { ANNOTATIONS, type KubeObject, type Node, type Pod } from "../cluster/objects.ts";
import { SubnetLeaser, watchMembers, type Member } from "../cluster/subnet-lease.ts";
import { vtepMacFor, type ClusterConfig, type NodeConfig } from "./config.ts";
import type { Logger } from "./log.ts";

export interface StoreOptions {
  /** file:/dir, /dir, or etcd://host:port[,host:port] (cluster/open.ts). */
  url: string;
  /** The cluster's name: its keys are under /tapnet/<cluster>/. */
  cluster: string;
  /** etcd: the subnet lease's TTL in seconds. */
  leaseTtl: number;
  /** Namespaces of pods made from the store are named <netnsPrefix><namespace>-<name>. */
  netnsPrefix: string;
  /** The node's underlay address, when the config's nodes do not list it (etcd). */
  address?: number;
}

/** What the agent does for the store: attach and detach its pods, take a new peer list. */
export interface PodHost {
  readonly nodeName: string;
  hasPod(namespace: string, name: string): boolean;
  attachFromStore(pod: Pod, netns: string): Promise<{ ip: string }>;
  detachFromStore(namespace: string, name: string): Promise<void>;
  setPeers(nodes: NodeConfig[]): Promise<void>;
}

export class StoreSyncError extends Error {}

const STOP_WRITE_MS = 2_000;

export class StoreSync {
  private leaser?: SubnetLeaser;
  private watches: { close(): void }[] = [];
  private queue: Promise<void> = Promise.resolve();
  private members: Member[] = [];
  private host?: PodHost;
  private stopped = false;

  private constructor(readonly kv: Kv, readonly store: ObjectStore, readonly opts: StoreOptions, readonly dynamic: boolean, private readonly log: Logger, public config: ClusterConfig, readonly self: NodeConfig) {}

  /**
   * Opens the store and settles this node's place in the cluster (step 1): returns the sync,
   * whose `config` is the cluster as this node starts with it (nodes: with etcd, the members).
   */
  static async open(fileConfig: ClusterConfig, nodeName: string, opts: StoreOptions, log: Logger): Promise<StoreSync> {
    const kv = openKv(opts.url);
    const store = new ObjectStore(kv, opts.cluster);
    const dynamic = kv.description.startsWith("etcd");
    const listed = fileConfig.nodes.find((n) => n.name === nodeName);
    try {
      if (!dynamic) {
        if (!listed) throw new StoreSyncError(`node "${nodeName}" is not in the config (it has: ${fileConfig.nodes.map((n) => n.name).join(", ") || "no nodes"}); with the file store the config lists every node (or use --store etcd://…)`);
        return new StoreSync(kv, store, opts, false, log, fileConfig, listed);
      }
      const address = opts.address ?? listed?.address;
      if (address === undefined) throw new StoreSyncError(`node "${nodeName}" is not in the config: give its underlay address with --address`);
      const vtepMac = listed?.vtepMac ?? vtepMacFor(address);
      const before = await store.get({ kind: "Node", name: nodeName }) as Node | undefined;
      const had = before?.spec?.podCIDR ? parseCidr(before.spec.podCIDR) : undefined;
      const preferred = typeof had === "object" ? had : undefined;
      const sync = new StoreSync(kv, store, opts, true, log, fileConfig, { name: nodeName, address, vtepMac, podCidr: preferred ?? fileConfig.clusterCidr });
      sync.leaser = new SubnetLeaser({
        kv, cluster: opts.cluster, clusterCidr: fileConfig.clusterCidr, subnetPrefix: fileConfig.nodeSubnetPrefix,
        ttlSeconds: opts.leaseTtl, node: nodeName, address, vtepMac, ...(preferred ? { preferred } : {}),
        log: (level: string, msg: string, fields?: Record<string, unknown>) => log[level === "error" ? "error" : level === "warn" ? "warn" : "info"](msg, fields ?? {}),
        onLost: (why: string) => { log.error("this node's subnet lease is lost: stopping", { reason: why }); process.kill(process.pid, "SIGTERM"); },
      });
      const podCidr = await sync.leaser.acquire();
      sync.leaser.start();
      (sync as { self: NodeConfig }).self = { ...sync.self, podCidr };
      const first = await new Promise<Member[]>((resolve, reject) => {
        let got = false;
        const w = watchMembers(kv, opts.cluster, (m) => {
          sync.members = m;
          if (!got) { got = true; resolve(m); return; }
          sync.enqueue(() => sync.peersChanged());
        }, { onStatus: (state: string, detail: string) => log[state === "lost" ? "warn" : "info"](`store connection ${state}`, { store: kv.description, detail }) });
        sync.watches.push(w);
        w.ready.catch(reject);
      });
      sync.members = first;
      sync.config = { ...fileConfig, nodes: sync.nodesFromMembers() };
      log.info("subnet leased", { node: nodeName, podCidr: formatCidr(podCidr), ttl: opts.leaseTtl, store: kv.description, members: first.length });
      return sync;
    } catch (e) {
      await kv.close().catch(() => {});
      throw e;
    }
  }

  /** The peer list from the members, this node always in it. */
  private nodesFromMembers(): NodeConfig[] {
    const nodes: NodeConfig[] = this.members
      .filter((m) => m.node !== this.self.name)
      .map((m) => ({ name: m.node, address: m.address, podCidr: m.subnet, vtepMac: m.vtepMac ?? vtepMacFor(m.address) }));
    nodes.push(this.self);
    return nodes.sort((a, b) => a.podCidr.network - b.podCidr.network);
  }

  private async peersChanged(): Promise<void> {
    if (!this.host || this.stopped) return;
    const nodes = this.nodesFromMembers();
    const before = new Set(this.config.nodes.map((n) => `${n.name} ${n.address} ${formatCidr(n.podCidr)}`));
    const after = new Set(nodes.map((n) => `${n.name} ${n.address} ${formatCidr(n.podCidr)}`));
    if (before.size === after.size && [...after].every((k) => before.has(k))) return;
    this.config = { ...this.config, nodes };
    this.log.info("peers changed", { nodes: nodes.map((n) => `${n.name}=${formatCidr(n.podCidr)}`).join(" ") });
    await this.host.setPeers(nodes);
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue.then(step).catch((e) => this.log.warn("store change not applied", { error: (e as Error).message }));
  }

  /** Steps 2-4: the Node object, then the members' changes and the pods, until stop. */
  async start(host: PodHost): Promise<void> {
    this.host = host;
    await this.writeNode(true);
    // Every cluster has the namespace "default", as the API server makes it.
    await this.store.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } }).catch((e) => {
      if (!(e instanceof AlreadyExistsError)) throw e;
    });
    if (this.dynamic) this.enqueue(() => this.peersChanged());
    const w = this.store.watch(["Pod"], (ev: { type: string; object: KubeObject }) => {
      const pod = ev.object as Pod;
      this.enqueue(() => this.podEvent(ev.type, pod));
    }, { onStatus: (state: string, detail: string) => this.log[state === "lost" ? "warn" : "info"](`store connection ${state}`, { store: this.kv.description, detail }) });
    this.watches.push(w);
    await w.ready;
  }

  /** The Pods of this node: attach the new ones, detach the deleted ones. */
  private async podEvent(type: string, pod: Pod): Promise<void> {
    if (!this.host || this.stopped) return;
    // A CNI pod is the container runtime's: the agent's CNI host adds, restores and forgets it (cni-host.ts).
    if (pod.metadata.annotations?.[ANNOTATIONS.source] === "cni") return;
    const ns = pod.metadata.namespace ?? "default";
    const name = pod.metadata.name;
    const mine = pod.spec?.nodeName === this.host.nodeName;
    const have = this.host.hasPod(ns, name);
    if (type === "DELETED" || !mine) {
      if (have) await this.host.detachFromStore(ns, name);
      return;
    }
    if (have) return;
    if (pod.metadata.annotations?.[ANNOTATIONS.source] === "pod-add") {
      // `tapnet pod add` records its pods after attaching them; one not attached here is left
      // from a switch that was killed: its TAP went with it.
      await this.store.delete({ kind: "Pod", namespace: ns, name }).catch(() => {});
      return;
    }
    const netns = `${this.opts.netnsPrefix}${ns}-${name}`;
    try {
      const { ip } = await this.host.attachFromStore(pod, netns);
      await this.writePodStatus(ns, name, { phase: "Running", podIP: ip, podIPs: [{ ip }], hostIP: formatIpv4(this.self.address) }, { [ANNOTATIONS.netns]: netns, [ANNOTATIONS.ifname]: "eth0" });
    } catch (e) {
      this.log.warn("pod not attached", { pod: `${ns}/${name}`, error: (e as Error).message });
      await this.writePodStatus(ns, name, { phase: "Failed", message: (e as Error).message }, {}).catch(() => {});
    }
  }

  /** Writes a pod's status and annotations, retrying when someone else wrote it meanwhile. */
  async writePodStatus(namespace: string, name: string, status: Pod["status"], annotations: Record<string, string>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.store.get({ kind: "Pod", namespace, name }) as Pod | undefined;
      if (!cur) return;
      cur.status = status;
      cur.metadata.annotations = { ...cur.metadata.annotations, ...annotations };
      try {
        await this.store.update(cur);
        return;
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= 4) throw e;
      }
    }
  }

  /** Records a pod `tapnet pod add` attached (or removes it): it shows in `tapnet get pods`. */
  async recordPodAdd(namespace: string, name: string, ip: string, netns: string, ifname: string): Promise<void> {
    const pod: Pod = {
      apiVersion: "v1", kind: "Pod",
      metadata: { name, namespace, annotations: { [ANNOTATIONS.source]: "pod-add", [ANNOTATIONS.netns]: netns, [ANNOTATIONS.ifname]: ifname } },
      spec: { nodeName: this.self.name, containers: [{ name: "pause" }] },
      status: { phase: "Running", podIP: ip, podIPs: [{ ip }], hostIP: formatIpv4(this.self.address) },
    };
    await this.store.put(pod);
  }

  async forgetPod(namespace: string, name: string): Promise<void> {
    await this.store.delete({ kind: "Pod", namespace, name }).catch((e) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
  }

  /** Why `tapnet pod add` may not record pod namespace/name, if it may not. */
  async podRefusal(namespace: string, name: string): Promise<string | undefined> {
    if (namespace !== "default" && !(await this.store.get({ kind: "Namespace", name: namespace }))) {
      return `namespaces "${namespace}" not found (create it first: tapnet apply -f a Namespace manifest)`;
    }
    const elsewhere = await this.podElsewhere(namespace, name);
    return elsewhere ? `pod ${namespace}/${name} already exists on node ${elsewhere}` : undefined;
  }

  /** Is pod namespace/name in the store, on another node? Its node's name if so. */
  async podElsewhere(namespace: string, name: string): Promise<string | undefined> {
    const p = await this.store.get({ kind: "Pod", namespace, name }) as Pod | undefined;
    const node = p?.spec?.nodeName;
    return p && node !== this.self.name ? node ?? "(no node)" : undefined;
  }

  /** The live nodes' names (etcd), to show Ready in `get nodes`; undefined with the file store. */
  liveNodes(): Set<string> | undefined {
    return this.dynamic ? new Set(this.members.map((m) => m.node)) : undefined;
  }

  private async writeNode(ready: boolean): Promise<void> {
    const self = this.self;
    const cur = await this.store.get({ kind: "Node", name: self.name }) as Node | undefined;
    const node: Node = {
      apiVersion: "v1", kind: "Node",
      metadata: { ...(cur?.metadata ?? {}), name: self.name, annotations: { ...cur?.metadata.annotations, [ANNOTATIONS.vtepMac]: self.vtepMac } },
      spec: { podCIDR: formatCidr(self.podCidr), podCIDRs: [formatCidr(self.podCidr)] },
      status: {
        addresses: [{ type: "InternalIP", address: formatIpv4(self.address) }],
        conditions: [{ type: "Ready", status: ready ? "True" : "False", reason: ready ? "SwitchRunning" : "SwitchStopped", lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") }],
      },
    };
    await this.store.put(node);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.watches) w.close();
    await this.queue;
    await Promise.race([this.writeNode(false).catch(() => {}), new Promise((r) => setTimeout(r, STOP_WRITE_MS).unref?.())]);
    // The lease is not revoked: a switch restarted within the TTL keeps its subnet, and one that
    // stays away longer leaves the others' maps when it expires (as flannel's leases do).
    this.leaser?.stop({ release: false });
    await this.kv.close().catch(() => {});
  }
}


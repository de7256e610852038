/**
 * The switch's side of the CNI plugin (src/cni/): the control socket's methods cni.add, cni.del,
 * cni.check, cni.gc and cni.status. The plugin is run by a container runtime with the pod's
 * network namespace as a path (CNI_NETNS: /run/netns/x, /var/run/netns/…, /proc/PID/ns/net),
 * not as a name in /run/netns; an attachment is known by its container id and interface name.
 *
 * A namespace given by a path is reached as pod-attach.ts says (no mount, nothing left behind).
 *
 * ADD, step by step (each undone if a later one fails, so a failed ADD leaves nothing):
 *   1. the namespace: a network namespace, not the switch's own, without CNI_IFNAME in it
 *      ("IFNAME_TAKEN:"); its inode is noted (a /proc/PID/ns/net path may later name another);
 *   2. the lowest free address of the node's pod CIDR ("EXHAUSTED:" when none is left): taken
 *      synchronously, so concurrent ADDs never get the same one;
 *   3. the Pod recorded in the store (spec.nodeName this node; annotations tapnet.dev/source
 *      "cni", container-id, netns, netns-inode, ifname): the address is reserved there before
 *      the container can use it, so a restart never hands it to another. The runtime is the
 *      authority on what runs: a pod it starts is recorded even when its Namespace object does
 *      not exist yet (that object is created, as a kubelet's pod always has one), and under
 *      `<name>-<container id's 12 first>` when another pod already has its name;
 *   4. the TAP (pod-attach.ts): named CNI_IFNAME, MAC 0a:58 + the address, the backend's pod
 *      MTU, lo up, the default route via the gateway.
 *
 * A restart of the switch: `restore` (before the control socket opens) reserves every address
 * the store's CNI Pods of this node hold, and takes over the TAPs of those whose namespace is
 * still the one they were added in (persistent, they outlived the switch: adopt.ts), or attaches
 * them anew (same ifname, address and MAC); the others are forgotten (the store's Pod deleted,
 * the address freed). A TAP that goes down while the
 * switch runs is forgotten the same way if its namespace is gone; otherwise (someone deleted
 * the interface) the address stays reserved and CHECK reports it, and an ADD attaches it again.
 */
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { cidrContains, formatCidr } from "../wire/cidr.ts";
import { checkIfName } from "../io/tap.ts";
import type { PortInfo, Switch } from "../switch/switch.ts";
import { ANNOTATIONS, type Pod } from "../cluster/objects.ts";
import { AlreadyExistsError, NotFoundError } from "../cluster/store.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import { attachTap, checkNetnsPath, netnsInode, podGsoMaxSize } from "./pod-attach.ts";
import { tryAdopt, type AdoptTarget } from "./adopt.ts";
import { IpamError, type PodIpam } from "./ipam.ts";
import type { Logger } from "./log.ts";
import type { StoreSync } from "./store-sync.ts";

/** Annotations of a CNI pod beyond ANNOTATIONS' (source is "cni"). */
export const CNI_ANNOTATIONS = { containerId: "tapnet.dev/container-id", netnsInode: "tapnet.dev/netns-inode" } as const;

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const POD_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const NAMESPACE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class CniError extends Error {}

/** What the agent gives the CNI host. */
export interface CniHostContext {
  sw: Switch; ipam: PodIpam; log: Logger; node: NodeConfig; gateway: number; sync?: StoreSync;
  /** The cluster now (its pod MTU, backend). */
  config(): ClusterConfig;
  stopping(): boolean;
  /** Does the agent hold a pod of that name (tapnet pod add, apply)? Used without a store. */
  agentHasPod(namespace: string, name: string): boolean;
  /** Takes over a TAP a dead switch left (adopt.ts's adoptTap); throws if there is none to take. */
  adopt?(t: AdoptTarget): number;
}

export interface AddRequest { containerId: string; netns: string; ifname: string; podName?: string; podNamespace?: string }

/** One attachment: a container's interface on this switch. */
export interface CniAttachment {
  containerId: string; ifname: string;
  /** The path the runtime gave, and the inode of the namespace it named then. */
  netns: string;
  inode: number;
  /** The store's Pod. */
  name: string; namespace: string;
  ip: string; mac: string;
  /** The switch's port; undefined while its interface is gone (the address stays reserved). */
  port?: number;
}

export interface AddResult { ifname: string; mac: string; sandbox: string; ip: string; prefix: number; gateway: string; mtu: number }

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Checks cni.add's parameters; a clear message for each fault. */
export function parseAddRequest(p: Record<string, unknown>): AddRequest {
  const containerId = str(p.containerId) ?? "";
  if (!CONTAINER_ID_RE.test(containerId)) throw new CniError(`containerId ${JSON.stringify(p.containerId)} must start with a letter or digit, then letters, digits, '_', '.' or '-'`);
  const ifname = str(p.ifname) ?? "";
  const badIf = checkIfName(ifname);
  if (badIf) throw new CniError(badIf);
  const netns = str(p.netns) ?? "";
  if (!netns.startsWith("/")) throw new CniError(`netns ${JSON.stringify(p.netns)} must be the absolute path of a network namespace`);
  if (p.podName !== undefined && typeof p.podName !== "string") throw new CniError("podName must be a string");
  const podName = str(p.podName) || undefined;
  const podNamespace = p.podNamespace === undefined || p.podNamespace === "" ? undefined : str(p.podNamespace);
  if (podNamespace !== undefined && !NAMESPACE_RE.test(podNamespace)) throw new CniError(`podNamespace ${JSON.stringify(p.podNamespace)} must be lower-case letters, digits and '-', 1-63 long`);
  return { containerId, netns, ifname, ...(podName ? { podName } : {}), ...(podNamespace ? { podNamespace } : {}) };
}

/** A string as a Kubernetes object name: lower case, other characters '-', trimmed. */
export function kubeName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9.-]/g, "-").slice(0, 253).replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
}

/** The names the store's Pod may take, in order: the pod's, then it with the container id's 12 first. */
export function podNameCandidates(podName: string | undefined, containerId: string): string[] {
  const cid = kubeName(containerId.slice(0, 12)) || "cni";
  const base = podName === undefined ? "" : kubeName(podName);
  const names = base && POD_NAME_RE.test(base) ? [base, `${base.slice(0, 240)}-${cid}`, cid] : [cid];
  return [...new Set(names)];
}

/** The store's Pod for an attachment on node `node` (hostIP its address). */
export function podObject(a: CniAttachment, node: string, hostIP: string): Pod {
  return {
    apiVersion: "v1", kind: "Pod",
    metadata: {
      name: a.name, namespace: a.namespace,
      annotations: {
        [ANNOTATIONS.source]: "cni", [CNI_ANNOTATIONS.containerId]: a.containerId, [ANNOTATIONS.netns]: a.netns,
        [CNI_ANNOTATIONS.netnsInode]: String(a.inode), [ANNOTATIONS.ifname]: a.ifname,
      },
    },
    spec: { nodeName: node, containers: [{ name: "pause" }] },
    status: { phase: "Running", podIP: a.ip, podIPs: [{ ip: a.ip }], hostIP },
  };
}

const key = (containerId: string, ifname: string) => `${containerId}/${ifname}`;

export class CniHost {
  /** By containerId/ifname. */
  private readonly attachments = new Map<string, CniAttachment>();
  /** Per attachment, the operation running on it: ADD, DEL and GC of one attachment take turns. */
  private readonly busy = new Map<string, Promise<unknown>>();
  /** Containers whose ADD is under way (their store Pod may exist before their attachment). */
  private readonly adding = new Set<string>();
  private serial = 0;

  constructor(private readonly ctx: CniHostContext) {}

  handlers(): Record<string, (p: Record<string, unknown>) => Promise<unknown> | unknown> {
    return {
      "cni.add": (p) => this.add(parseAddRequest(p)),
      "cni.del": (p) => this.del(str(p.containerId) ?? "", str(p.ifname) ?? ""),
      "cni.check": (p) => this.check(str(p.containerId) ?? "", str(p.ifname) ?? "", str(p.netns) || undefined),
      "cni.gc": (p) => this.gc(p.valid),
      "cni.status": () => ({ ready: true, node: this.ctx.node.name, podCidr: formatCidr(this.ctx.node.podCidr) }),
    };
  }

  list(): CniAttachment[] {
    return [...this.attachments.values()];
  }

  hasPod(namespace: string, name: string): boolean {
    for (const a of this.attachments.values()) if (a.namespace === namespace && a.name === name) return true;
    return false;
  }

  /** Runs `fn` once the operations already running on attachment `k` are done. */
  private turn<T>(k: string, fn: () => Promise<T>): Promise<T> {
    const before = this.busy.get(k) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(fn);
    const settled = mine.catch(() => {});
    this.busy.set(k, settled);
    void settled.then(() => { if (this.busy.get(k) === settled) this.busy.delete(k); });
    return mine;
  }

  private result(a: CniAttachment): AddResult {
    return {
      ifname: a.ifname, mac: a.mac, sandbox: a.netns, ip: a.ip, prefix: this.ctx.node.podCidr.prefix,
      gateway: formatIpv4(this.ctx.gateway), mtu: this.ctx.config().podMtu,
    };
  }

  add(req: AddRequest): Promise<AddResult> {
    return this.turn(key(req.containerId, req.ifname), () => this.addNow(req));
  }

  private async addNow(req: AddRequest): Promise<AddResult> {
    if (this.ctx.stopping()) throw new CniError("the switch is stopping");
    const had = this.attachments.get(key(req.containerId, req.ifname));
    const inode = await checkNetnsPath(req.netns, had ? undefined : req.ifname);
    if (had) {
      if (had.inode === inode) {
        if (had.port === undefined) await this.attach(had); // its interface went away: again
        return this.result(had);
      }
      if (netnsInode(had.netns) === had.inode) throw new CniError(`container ${req.containerId} already has ${req.ifname} in ${had.netns}`);
      await this.forget(had, "its namespace is gone");
      await checkNetnsPath(req.netns, req.ifname);
    }
    const other = [...this.attachments.values()].find((a) => a.containerId === req.containerId);
    if (other) throw new CniError(`container ${req.containerId} already has ${other.ifname} on this network: tapnet gives a container one interface`);
    let addr: number;
    try {
      addr = this.ctx.ipam.allocate();
    } catch (e) {
      if (e instanceof IpamError) throw new CniError(`EXHAUSTED: ${e.message}`);
      throw e;
    }
    const a: CniAttachment = {
      containerId: req.containerId, ifname: req.ifname, netns: req.netns, inode, name: "", namespace: req.podNamespace ?? "default",
      ip: formatIpv4(addr), mac: macForIpv4(addr),
    };
    this.adding.add(req.containerId);
    try {
      a.name = await this.record(a, podNameCandidates(req.podName, req.containerId));
      try {
        await this.attach(a);
      } catch (e) {
        await this.unrecord(a).catch((u) => this.ctx.log.warn("could not remove a failed ADD's pod from the store", { pod: `${a.namespace}/${a.name}`, error: (u as Error).message }));
        throw e;
      }
    } catch (e) {
      this.ctx.ipam.release(addr);
      throw e;
    } finally {
      this.adding.delete(req.containerId);
    }
    this.attachments.set(key(a.containerId, a.ifname), a);
    this.ctx.log.info("cni attached", { container: a.containerId, ifname: a.ifname, netns: a.netns, pod: `${a.namespace}/${a.name}`, ip: a.ip, port: a.port });
    return this.result(a);
  }

  /** The TAP: opened here, moved into the namespace, set up there (pod-attach.ts); its port on `a`. */
  private async attach(a: CniAttachment): Promise<void> {
    const c = this.ctx.config();
    const gso = podGsoMaxSize(c, this.ctx.sw);
    a.port = await attachTap(this.ctx.sw, {
      tmp: `tnc${process.pid % 100000}x${this.serial++ % 1000000}`, label: a.namespace === "default" ? a.name : `${a.namespace}/${a.name}`,
      netns: a.netns, ifname: a.ifname, ip: a.ip, mac: a.mac, prefix: this.ctx.node.podCidr.prefix, gateway: formatIpv4(this.ctx.gateway), mtu: c.podMtu,
      // On the tapnet backend, super-frames fit one UDP_SEGMENT send.
      ...(gso !== undefined ? { gsoMaxSize: gso } : {}),
    }, this.ctx.log);
  }

  /** Writes the store's Pod under the first free name of `names`; returns the name. Without a store, the first the agent does not hold. */
  private async record(a: CniAttachment, names: string[]): Promise<string> {
    const sync = this.ctx.sync;
    if (!sync) {
      const free = names.find((n) => !this.ctx.agentHasPod(a.namespace, n));
      if (!free) throw new CniError(`pods ${names.join(", ")} already exist in namespace ${a.namespace}`);
      return free;
    }
    if (a.namespace !== "default") {
      await sync.store.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: a.namespace } }).catch((e) => {
        if (!(e instanceof AlreadyExistsError)) throw e;
      });
    }
    const hostIP = formatIpv4(this.ctx.node.address);
    for (const name of names) {
      const pod = podObject({ ...a, name }, this.ctx.node.name, hostIP);
      try {
        await sync.store.create(pod);
        return name;
      } catch (e) {
        if (!(e instanceof AlreadyExistsError)) throw e;
      }
      const cur = await sync.store.get({ kind: "Pod", namespace: a.namespace, name }) as Pod | undefined;
      if (!cur || this.isStale(cur, a.containerId)) {
        await sync.store.put(pod);
        return name;
      }
    }
    throw new CniError(`pods ${names.join(", ")} already exist in namespace ${a.namespace}`);
  }

  /** A store Pod this container may take over: its own, or a CNI pod of this node whose container this switch no longer has. */
  private isStale(pod: Pod, containerId: string): boolean {
    const ann = pod.metadata.annotations ?? {};
    if (ann[ANNOTATIONS.source] !== "cni" || pod.spec?.nodeName !== this.ctx.node.name) return false;
    const cid = ann[CNI_ANNOTATIONS.containerId];
    if (cid === containerId) return true;
    return !this.adding.has(cid ?? "") && ![...this.attachments.values()].some((x) => x.containerId === cid);
  }

  /** Deletes the store's Pod of `a`, if it still is a's. */
  private async unrecord(a: CniAttachment): Promise<void> {
    const store = this.ctx.sync?.store;
    if (!store || !a.name) return;
    const cur = await store.get({ kind: "Pod", namespace: a.namespace, name: a.name }) as Pod | undefined;
    if (cur?.metadata.annotations?.[CNI_ANNOTATIONS.containerId] !== a.containerId) return;
    await store.delete({ kind: "Pod", namespace: a.namespace, name: a.name }).catch((e) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
  }

  /** Detaches `a`, frees its address and deletes its store Pod. */
  private async forget(a: CniAttachment, why: string): Promise<void> {
    this.attachments.delete(key(a.containerId, a.ifname));
    if (a.port !== undefined) await this.ctx.sw.removePort(a.port);
    a.port = undefined;
    this.ctx.ipam.release(parseIpv4Address(a.ip)!);
    this.ctx.log.info("cni detached", { container: a.containerId, ifname: a.ifname, pod: `${a.namespace}/${a.name}`, ip: a.ip, why });
    await this.unrecord(a);
  }

  /** DEL: never an error for an attachment the switch does not have. */
  del(containerId: string, ifname: string): Promise<{ removed: boolean }> {
    if (!containerId || !ifname) throw new CniError("cni.del needs containerId and ifname");
    return this.turn(key(containerId, ifname), async () => {
      const a = this.attachments.get(key(containerId, ifname));
      if (!a) return { removed: false };
      await this.forget(a, "cni.del");
      return { removed: true };
    });
  }

  async check(containerId: string, ifname: string, netns?: string): Promise<Omit<AddResult, "sandbox">> {
    const a = this.attachments.get(key(containerId, ifname));
    if (!a) throw new CniError(`the switch has no attachment for container ${containerId} and interface ${ifname}`);
    if (netns !== undefined && netns !== a.netns && netnsInode(netns) !== a.inode) throw new CniError(`NETNS: container ${containerId} is attached in ${a.netns}, not ${netns}`);
    if (a.port === undefined) throw new CniError(`the interface ${ifname} of container ${containerId} is gone from ${a.netns}`);
    const { sandbox: _, ...r } = this.result(a);
    return r;
  }

  /** GC: detaches every attachment not in `valid`. */
  async gc(valid: unknown): Promise<{ removed: { containerId: string; ifname: string }[] }> {
    if (!Array.isArray(valid) || valid.some((v) => typeof v !== "object" || v === null || typeof v.containerId !== "string" || typeof v.ifname !== "string")) {
      throw new CniError("valid must be a list of {containerId, ifname}");
    }
    const keep = new Set(valid.map((v: { containerId: string; ifname: string }) => key(v.containerId, v.ifname)));
    const removed: { containerId: string; ifname: string }[] = [];
    for (const a of [...this.attachments.values()]) {
      if (keep.has(key(a.containerId, a.ifname))) continue;
      if ((await this.del(a.containerId, a.ifname)).removed) removed.push({ containerId: a.containerId, ifname: a.ifname });
    }
    return { removed };
  }

  /** A port went down: true if it was a CNI attachment's (then handled here). */
  portDown(p: PortInfo, reason: string): boolean {
    const a = [...this.attachments.values()].find((x) => x.port === p.port);
    if (!a) return false;
    void this.turn(key(a.containerId, a.ifname), async () => {
      if (a.port !== p.port) return;
      if (netnsInode(a.netns) !== a.inode) {
        await this.forget(a, `its namespace is gone (${reason})`);
        return;
      }
      a.port = undefined;
      await this.ctx.sw.removePort(p.port);
      this.ctx.log.warn("cni interface gone; its address stays reserved", { container: a.containerId, ifname: a.ifname, netns: a.netns, reason });
    }).catch((e) => this.ctx.log.warn("cni port down not handled", { error: (e as Error).message }));
    return true;
  }

  /** After a restart: reserves the addresses of this node's CNI Pods in the store, re-attaches the live ones, forgets the rest. */
  async restore(): Promise<void> {
    const sync = this.ctx.sync;
    if (!sync) return;
    const pods = (await sync.store.list("Pod") as Pod[]).filter((p) => p.metadata.annotations?.[ANNOTATIONS.source] === "cni" && p.spec?.nodeName === this.ctx.node.name);
    const found: CniAttachment[] = [];
    for (const p of pods) {
      const ann = p.metadata.annotations!;
      const a: CniAttachment = {
        containerId: ann[CNI_ANNOTATIONS.containerId] ?? "", ifname: ann[ANNOTATIONS.ifname] ?? "", netns: ann[ANNOTATIONS.netns] ?? "",
        inode: Number(ann[CNI_ANNOTATIONS.netnsInode]), name: p.metadata.name, namespace: p.metadata.namespace ?? "default", ip: p.status?.podIP ?? "", mac: "",
      };
      const addr = parseIpv4Address(a.ip);
      a.mac = addr === undefined ? "" : macForIpv4(addr);
      let why = "";
      if (addr === undefined || !cidrContains(this.ctx.node.podCidr, addr)) why = `its address ${a.ip} is not in this node's pod CIDR`;
      else if (this.attachments.has(key(a.containerId, a.ifname)) || !CONTAINER_ID_RE.test(a.containerId)) why = "its record is a duplicate or broken";
      else if (netnsInode(a.netns) !== a.inode) why = `its namespace ${a.netns} is gone`;
      else {
        try {
          this.ctx.ipam.allocate(a.ip);
        } catch (e) {
          why = (e as Error).message;
        }
      }
      if (why) {
        this.ctx.log.info("cni pod forgotten", { pod: `${a.namespace}/${a.name}`, container: a.containerId, why });
        await sync.store.delete({ kind: "Pod", namespace: a.namespace, name: a.name }).catch(() => {});
        continue;
      }
      this.attachments.set(key(a.containerId, a.ifname), a);
      found.push(a);
    }
    for (const a of found) {
      try {
        a.port = tryAdopt(this.ctx.adopt, { netns: a.netns, shownAs: a.netns, ifname: a.ifname, label: a.namespace === "default" ? a.name : `${a.namespace}/${a.name}`, ip: a.ip, mac: a.mac });
        if (a.port === undefined) await this.attach(a);
        this.ctx.log.info(a.port === undefined ? "cni re-attached" : "cni taken over", { container: a.containerId, ifname: a.ifname, netns: a.netns, pod: `${a.namespace}/${a.name}`, ip: a.ip });
      } catch (e) {
        await this.forget(a, `cannot attach it again: ${(e as Error).message}`).catch(() => {});
      }
    }
  }
}

/**
 * The node agent's network view (cluster/network-view.ts): what the switch needs of the
 * cluster's Services and NetworkPolicies, kept current from the store.
 *
 * One store watch over the kinds a view is built from (Namespace, Pod, Service, EndpointSlice,
 * NetworkPolicy, Node) keeps their objects in maps. After the first listing the view is built
 * and applied at once; after that, changes are gathered for a while (50 ms) and one view is
 * built for all of them, so a burst of writes (`tapnet apply` of a hundred objects, a node's
 * pods coming up) is one rebuild, not a hundred. Changes that come while a view is being
 * applied are gathered the same way and make the next one.
 *
 * Each view goes to `apply` (the switch: Switch.setView) and its NodePorts to `nodePorts` (the
 * node's kernel: HostNet.setNodePorts). A failure of either is logged and the next change tries
 * again: the switch goes on with the view it has.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import type { Cidr } from "../wire/cidr.ts";
import type { EndpointSlice, Kind, KubeObject, Namespace, NetworkPolicy, Node, Pod, Service } from "../cluster/objects.ts";
import { buildNetworkView, PROTO, type ClusterObjects, type NetworkView } from "../cluster/network-view.ts";
import type { ObjectStore, ObjectWatch, WatchEvent } from "../cluster/store.ts";
import type { NodePort } from "./host-net.ts";
import type { Logger } from "./log.ts";

/** How long changes are gathered before a view is built, in milliseconds. */
export const COALESCE_MS = 50;

const WATCHED: Kind[] = ["Namespace", "Pod", "Service", "EndpointSlice", "NetworkPolicy", "Node"];

export interface ViewSyncOptions {
  store: ObjectStore;
  serviceCidr: Cidr;
  log: Logger;
  /** Takes each view (the switch's setView). */
  apply: (view: NetworkView) => Promise<void>;
  /** Takes each view's NodePorts (HostNet.setNodePorts). */
  nodePorts?: (ports: NodePort[]) => Promise<void>;
  /** How long changes are gathered, in milliseconds (COALESCE_MS). */
  coalesceMs?: number;
}

/**
 * The NodePorts of a view, as the node's kernel opens them: each TCP and UDP port of a NodePort
 * Service, to its ClusterIP and port. (SCTP ones are left out: the switch translates TCP and UDP.)
 */
export function nodePortsOf(view: NetworkView): NodePort[] {
  const out: NodePort[] = [];
  for (const s of view.services) {
    for (const p of s.ports) {
      const protocol = p.protocol === PROTO.TCP ? "tcp" : p.protocol === PROTO.UDP ? "udp" : undefined;
      if (p.nodePort === undefined || !protocol) continue;
      out.push({ protocol, nodePort: p.nodePort, clusterIp: formatIpv4(s.clusterIp), port: p.port });
    }
  }
  return out;
}

export class ViewSync {
  /** Kind → "namespace/name" → the object as last seen. */
  private readonly objects = new Map<Kind, Map<string, KubeObject>>(WATCHED.map((k) => [k, new Map()]));
  private watch?: ObjectWatch;
  private listed = false;
  private stopped = false;
  /** A change not yet in a built view. */
  private dirty = false;
  private timer?: ReturnType<typeof setTimeout>;
  /** The build-and-apply loop, while it runs. */
  private loop?: Promise<void>;
  private builtCount = 0;
  private readonly coalesceMs: number;

  constructor(private readonly opts: ViewSyncOptions) {
    this.coalesceMs = opts.coalesceMs ?? COALESCE_MS;
  }

  /** How many views have been built. */
  get built(): number {
    return this.builtCount;
  }

  /** Watches the store; resolves once the first view is built and applied (rejects if the store cannot be listed). */
  async start(): Promise<void> {
    const { store, log } = this.opts;
    this.watch = store.watch(WATCHED, (ev) => this.onEvent(ev), {
      onStatus: (state, detail) => log[state === "lost" ? "warn" : "info"](`store connection ${state} (network view)`, { detail }),
    });
    await this.watch.ready;
    if (this.stopped) return;
    this.listed = true;
    this.dirty = true;
    await new Promise<void>((applied) => {
      this.loop = this.run(applied);
    });
  }

  private onEvent(ev: WatchEvent): void {
    const o = ev.object;
    const byName = this.objects.get(o.kind);
    if (!byName) return;
    const key = `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    if (ev.type === "DELETED") byName.delete(key);
    else byName.set(key, o);
    if (this.listed) this.schedule();
  }

  /** A change: a rebuild in coalesceMs, unless one is waiting or running (it takes the change). */
  private schedule(): void {
    this.dirty = true;
    if (this.loop || this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.loop = this.run();
    }, this.coalesceMs);
  }

  /**
   * Builds and applies views while there are changes, gathering those that come during an
   * apply; `applied` is called after the first.
   */
  private async run(applied?: () => void): Promise<void> {
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.rebuild();
        applied?.();
        applied = undefined;
        if (this.dirty && !this.stopped) await new Promise((r) => setTimeout(r, this.coalesceMs));
      }
    } finally {
      this.loop = undefined;
      applied?.();
    }
  }

  private list<T extends KubeObject>(kind: Kind): T[] {
    return [...this.objects.get(kind)!.values()] as T[];
  }

  private async rebuild(): Promise<void> {
    const { log } = this.opts;
    const objects: ClusterObjects = {
      namespaces: this.list<Namespace>("Namespace"), pods: this.list<Pod>("Pod"), services: this.list<Service>("Service"),
      endpointSlices: this.list<EndpointSlice>("EndpointSlice"), policies: this.list<NetworkPolicy>("NetworkPolicy"), nodes: this.list<Node>("Node"),
    };
    let view: NetworkView;
    try {
      view = buildNetworkView(objects, this.opts.serviceCidr);
    } catch (e) {
      log.warn("network view not built: the switch keeps the one it has", { error: (e as Error).message });
      return;
    }
    const first = this.builtCount++ === 0;
    const ports = nodePortsOf(view);
    const [applied, opened] = await Promise.all([
      Promise.resolve().then(() => this.opts.apply(view)).then(() => true, (e) => {
        log.warn("network view not applied: the switch keeps the one it has", { error: (e as Error).message });
        return false;
      }),
      Promise.resolve().then(() => this.opts.nodePorts?.(ports)).then(() => true, (e) => {
        log.warn("NodePorts not set", { error: (e as Error).message });
        return false;
      }),
    ]);
    if (applied && opened) {
      log[first ? "info" : "debug"]("network view applied", {
        services: view.services.length, policies: view.policies.length, pods: view.pods.length, nodePorts: ports.length,
      });
    }
  }

  /** Stops watching; waits for a view being applied. No view is built after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watch?.close();
    await this.loop;
  }
}

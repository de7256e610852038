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
 *      the default via the gateway.
 * If any step fails, the steps before it are undone. Closing the fd removes the device.
 *
 * With other nodes in the config, the agent also opens the tunnel (the switch's router does the
 * rest, see switch/router.ts); and it sets up the node's kernel as flannel's vxlan backend would
 * (routes to the other nodes' pod CIDRs, forwarding, masquerade: host-net.ts). All of it is
 * removed when the switch stops.
 */
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { macForIpv4 } from "../wire/mac.ts";
import { checkIfName } from "../io/tap.ts";
import { runtimeName } from "../io/runtime.ts";
import { Switch, type PortInfo, type SwitchOptions } from "../switch/switch.ts";
import { formatCidr } from "./cidr.ts";
import type { ClusterConfig, NodeConfig } from "./config.ts";
import { ip, ipBatch, netnsExists } from "./exec.ts";
import type { RouterConfig } from "../switch/state.ts";
import { backend } from "../tunnel/index.ts";
import { HostNet } from "./host-net.ts";
import { gatewayOf, PodIpam } from "./ipam.ts";
import type { Logger } from "./log.ts";
import { RpcServer } from "./rpc.ts";

export const GATEWAY_IFNAME = "tapnet0";
const POD_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

export interface AgentOptions {
  config: ClusterConfig;
  nodeName: string;
  controlPath: string;
  log: Logger;
  switchOptions?: Partial<SwitchOptions>;
}

export interface PodRecord {
  name: string;
  netns: string;
  ip: string;
  mac: string;
  ifname: string;
  port: number;
  /** Did this agent create the namespace (and so delete it with the pod)? */
  ownsNetns: boolean;
}

export interface PodRequest {
  name: string;
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

export class NodeAgent {
  private readonly pods = new Map<string, PodRecord>();
  private readonly ipam: PodIpam;
  private rpc?: RpcServer;
  private tapSerial = 0;
  private stopping = false;
  private readonly hostNet: HostNet;
  readonly node: NodeConfig;
  readonly gateway: number;

  private constructor(readonly opts: AgentOptions, readonly sw: Switch, private readonly log: Logger) {
    const node = opts.config.nodes.find((n) => n.name === opts.nodeName);
    if (!node) throw new AgentError(`node "${opts.nodeName}" is not in the config (it has: ${opts.config.nodes.map((n) => n.name).join(", ")})`);
    this.node = node;
    this.ipam = new PodIpam(node.podCidr);
    this.gateway = gatewayOf(node.podCidr);
    this.hostNet = new HostNet(opts.config, node, GATEWAY_IFNAME, log);
    sw.onPortDown((p, reason) => void this.onPortDown(p, reason));
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    if (!opts.config.nodes.some((n) => n.name === opts.nodeName)) {
      throw new AgentError(`node "${opts.nodeName}" is not in the config (it has: ${opts.config.nodes.map((n) => n.name).join(", ")})`);
    }
    const config = opts.config;
    const self = config.nodes.findIndex((n) => n.name === opts.nodeName);
    const routing = config.nodes.length > 1
      ? { config: routerConfig(config, self), address: config.nodes[self].address, port: config.backend.port }
      : undefined;
    const sw = await Switch.start({ ...opts.switchOptions, routing });
    const agent = new NodeAgent(opts, sw, opts.log);
    try {
      await agent.attachGateway();
      await agent.setUpNode();
      agent.rpc = await RpcServer.listen(opts.controlPath, agent.handlers());
    } catch (e) {
      await agent.tearDownNode();
      await sw.stop();
      throw e;
    }
    opts.log.info("switch ready", {
      node: agent.node.name, podCidr: formatCidr(agent.node.podCidr), gateway: formatIpv4(agent.gateway),
      backend: routing ? `${config.backend.type} on ${formatIpv4(agent.node.address)}:${config.backend.port}` : "none (one node)",
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
      `link set ${GATEWAY_IFNAME} address ${macForIpv4(this.gateway)} mtu ${this.opts.config.podMtu}`,
      `addr add ${gw}/${this.node.podCidr.prefix} dev ${GATEWAY_IFNAME}`,
      `link set ${GATEWAY_IFNAME} up`,
    ]);
    this.log.info("gateway attached", { ifname: GATEWAY_IFNAME, port: port.port, address: gw });
  }

  /**
   * On the tapnet backend, keeps an interface's TSO super-frames small enough to leave in one
   * UDP_SEGMENT send (tunnel/tapnet.ts). Best effort: a kernel or ip without gso_max_size just
   * sends each frame in two.
   */
  private async capSuperFrames(ifname: string, netns?: string): Promise<void> {
    const c = this.opts.config;
    const cap = backend(c.backend.type).superFrameCap;
    if (!cap || c.nodes.length < 2) return;
    const size = String(cap(c.mtu - 28));
    await ip(...(netns ? ["-n", netns] : []), "link", "set", ifname, "gso_max_size", size)
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
      "pod.add": (p: Record<string, unknown>) => this.addPod(p as unknown as PodRequest),
      "pod.del": (p: Record<string, unknown>) => this.delPod(String(p.name ?? "")),
      "pod.list": () => this.listPods(),
      status: () => this.status(),
    };
  }

  async addPod(req: PodRequest): Promise<PodRecord> {
    if (this.stopping) throw new AgentError("the switch is stopping");
    const name = req.name;
    if (typeof name !== "string" || !POD_NAME_RE.test(name)) throw new AgentError(`pod name ${JSON.stringify(name)} must be lower-case letters, digits, '-' and '.', 1-63 long`);
    if (this.pods.has(name)) throw new AgentError(`pod ${name} is already attached`);
    const netns = req.netns ?? name;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(netns)) throw new AgentError(`namespace name ${JSON.stringify(netns)} is not valid`);
    const ifname = req.ifname ?? "eth0";
    const badIf = checkIfName(ifname);
    if (badIf) throw new AgentError(badIf);
    for (const p of this.pods.values()) if (p.netns === netns) throw new AgentError(`namespace ${netns} already holds pod ${p.name}`);

    const ownsNetns = !netnsExists(netns);
    const addr = this.ipam.allocate(req.ip);
    const undo: (() => Promise<unknown>)[] = [async () => this.ipam.release(addr)];
    try {
      if (ownsNetns) {
        await ip("netns", "add", netns);
        undo.push(() => ip("netns", "del", netns));
      } else if (await ip("-n", netns, "link", "show", ifname).then(() => true, () => false)) {
        throw new AgentError(`namespace ${netns} already has an interface ${ifname}`);
      }
      const tmp = `tnp${process.pid % 100000}x${this.tapSerial++}`;
      const port = this.sw.addTap(tmp, "pod", name);
      undo.push(() => this.sw.removePort(port.port));
      const mac = macForIpv4(addr);
      const ipStr = formatIpv4(addr);
      await ip("link", "set", tmp, "netns", netns);
      await ipBatch([
        `link set ${tmp} name ${ifname}`,
        `link set ${ifname} address ${mac} mtu ${this.opts.config.podMtu}`,
        `addr add ${ipStr}/${this.node.podCidr.prefix} dev ${ifname}`,
        "link set lo up",
        `link set ${ifname} up`,
        `route replace default via ${formatIpv4(this.gateway)} dev ${ifname}`,
      ], netns);
      await this.capSuperFrames(ifname, netns);
      this.sw.relocated(port.port, ifname, netns);
      this.sw.neighbor(addr, mac);
      const rec: PodRecord = { name, netns, ip: ipStr, mac, ifname, port: port.port, ownsNetns };
      this.pods.set(name, rec);
      this.log.info("pod attached", { pod: name, netns, ip: ipStr, mac, port: port.port });
      return rec;
    } catch (e) {
      for (const step of undo.reverse()) await step().catch(() => {});
      throw e;
    }
  }

  /** Detaches a pod; deletes its namespace if this agent created it. Idempotent. */
  async delPod(name: string): Promise<{ removed: boolean }> {
    const rec = this.pods.get(name);
    if (!rec) return { removed: false };
    this.pods.delete(name);
    await this.sw.removePort(rec.port);
    this.ipam.release(parseIpv4Address(rec.ip)!);
    if (rec.ownsNetns) await ip("netns", "del", rec.netns).catch((e) => this.log.warn("could not delete namespace", { netns: rec.netns, error: String(e) }));
    this.log.info("pod detached", { pod: name });
    return { removed: true };
  }

  private async onPortDown(p: PortInfo, reason: string): Promise<void> {
    this.log.warn("port went down", { port: p.port, ifname: p.ifname, pod: p.pod, reason });
    if (p.pod) await this.delPod(p.pod).catch(() => {});
  }

  listPods(): PodRecord[] {
    return [...this.pods.values()];
  }

  async status() {
    const fdb = await this.sw.fdb();
    const ports = this.sw.ports();
    const byPort = new Map(ports.map((p) => [p.port, p]));
    return {
      node: {
        name: this.node.name, address: formatIpv4(this.node.address), podCidr: formatCidr(this.node.podCidr),
        gateway: formatIpv4(this.gateway), gatewayMac: macForIpv4(this.gateway), podMtu: this.opts.config.podMtu,
        backend: this.opts.config.backend.type, pid: process.pid, runtime: runtimeName,
      },
      pods: this.listPods(),
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
    await this.rpc?.close();
    for (const name of [...this.pods.keys()]) await this.delPod(name).catch(() => {});
    await this.tearDownNode();
    await this.sw.stop();
    this.log.info("switch stopped", { node: this.node.name });
  }
}

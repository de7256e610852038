/**
 * The switch as the control thread sees it: it opens the TAP devices, numbers them as ports,
 * starts the datapath worker (datapath.ts) and tells it which fds to serve. Counters are read
 * straight from shared memory; the FDB is asked for through the worker's command port.
 * A port's fd is closed only after the worker has let go of it. A pod's port is added with
 * the pod's identity (its MAC and address) where the caller knows it: the datapath pins them
 * and lets the pod send only as itself (stages/port-security.ts).
 */
import { MessageChannel, type MessagePort, type Worker } from "node:worker_threads";
import { EFD_CLOEXEC, EFD_NONBLOCK, loadLibc, type Libc } from "../io/libc.ts";
import type { ThreadStat } from "../io/thread-stat.ts";
import { entryUrl, prebootWorker, startWorker } from "../io/runtime.ts";
import { closeTap, openTap, type Tap } from "../io/tap.ts";
import { openUdp, type UdpSocket } from "../io/udp.ts";
import { formatMac, parseMac } from "../wire/mac.ts";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { Counters } from "./counters.ts";
import { Ctrl, CTRL_WORDS, heapFigures, type Command, type DatapathInput, type HeapFigures, type Reply } from "./commands.ts";
import { FDB_DEFAULTS, type FdbEntry, type FdbOptions } from "./fdb.ts";
import type { RouterConfig } from "./state.ts";
import type { NetworkView } from "../cluster/network-view.ts";
import type { ConntrackOptions } from "./conntrack/flow-table.ts";
import type { DeniedEvent, FlowInfo } from "./conntrack/flow-info.ts";
import type { TraceFilter, TraceRecord } from "./trace/tracer.ts";

export interface SwitchOptions {
  maxPorts: number;
  fdb: FdbOptions;
  /** TAP offloads (checksum, TSO): TCP super-frames cross the switch whole. */
  offloads: boolean;
  /** Frames read per round across all ports. */
  batch: number;
  /** The CPU the datapath worker is pinned to; absent, it is not pinned. */
  cpu?: number;
  /** Routing between nodes: the router's config, and the address and port the tunnel binds. */
  routing?: { config: RouterConfig; address: number; port: number };
  /** Connection tracking's table size and timeouts (routing switches track flows); the defaults of flow-table.ts if absent. */
  conntrack?: ConntrackOptions;
  /** Called with each new flow a NetworkPolicy denies, while `setPolicyLog(true)`. */
  onPolicyDenied?: (e: DeniedEvent) => void;
  /** A datapath worker started ahead by `Switch.preboot()` (a standby's): the switch then starts without waiting for it to load. */
  worker?: Worker;
}

export const SWITCH_DEFAULTS: SwitchOptions = { maxPorts: 512, fdb: FDB_DEFAULTS, offloads: true, batch: 64 };

/** Large enough for a 64 KB TSO super-frame with its Ethernet and virtio_net headers. */
const SLOT_SIZE = 65536 + 256;
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 2_000;
/** What a wake-up adds to the eventfd's counter: 1, as 8 bytes in host order (x86-64, little-endian). */
const WAKE_ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

export interface PortInfo {
  port: number;
  /** The device's name where it lives now (a pod's TAP is renamed eth0 inside the pod). */
  ifname: string;
  /** The namespace it was moved to; absent while it is in the switch's own. */
  netns?: string;
  role: "gateway" | "pod";
  pod?: string;
  /** The pod's own MAC and address, for a port added with them: the only ones it may send from. */
  mac?: string;
  ip?: string;
}

/** Who a pod port's pod is: its MAC and IPv4 address, as the switch gave them to it. */
export interface PortIdentity {
  mac: string;
  ip: string;
}

export class SwitchError extends Error {}

const DATAPATH_WORKER = entryUrl("src/switch/datapath-worker.ts");

export class Switch {
  readonly counters: Counters;
  private readonly ctrl: Int32Array;
  private readonly taps = new Map<number, Tap>();
  private readonly info = new Map<number, PortInfo>();
  private readonly pending = new Map<number, (r: Reply) => void>();
  private nextId = 1;
  private stopped = false;
  private portDownHandler: (port: PortInfo, reason: string) => void = () => {};
  private logging = false;

  private constructor(
    private readonly libc: Libc,
    private readonly worker: Worker,
    private readonly cmdPort: MessagePort,
    ctrl: SharedArrayBuffer,
    counters: SharedArrayBuffer,
    readonly options: SwitchOptions,
    private readonly wakeFd: number,
    readonly tunnel?: UdpSocket,
  ) {
    this.ctrl = new Int32Array(ctrl);
    this.counters = new Counters(options.maxPorts, counters);
    cmdPort.on("message", (r: Reply) => this.onReply(r));
  }

  /** A datapath worker started ahead (`loaded` once its imports are): give it to `start` as `worker`. */
  static preboot(): { worker: Worker; loaded: Promise<void> } {
    return prebootWorker(DATAPATH_WORKER);
  }

  static async start(opts: Partial<SwitchOptions> = {}): Promise<Switch> {
    const options = { ...SWITCH_DEFAULTS, ...opts, fdb: { ...FDB_DEFAULTS, ...opts.fdb } };
    const libc = await loadLibc();
    const ctrl = new SharedArrayBuffer(CTRL_WORDS * 4);
    const counters = new Counters(options.maxPorts);
    const r = options.routing;
    const tunnel = r ? openUdp(libc, r.address, r.port) : undefined;
    const wakeFd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd < 0) {
      if (tunnel) libc.close(tunnel.fd);
      throw new SwitchError(`eventfd failed: errno ${libc.errno()}`);
    }
    const { port1, port2 } = new MessageChannel();
    const input: DatapathInput = {
      ctrl, counters: counters.buffer, maxPorts: options.maxPorts, port: port2, fdb: options.fdb,
      batch: options.batch, slotSize: SLOT_SIZE, wakeFd,
      ...(r && tunnel ? { router: r.config, tunnel: { fd: tunnel.fd, port: r.port } } : {}),
      ...(options.cpu !== undefined ? { cpu: options.cpu } : {}),
      ...(options.conntrack ? { conntrack: options.conntrack } : {}),
      offloads: options.offloads,
    };
    const worker = startWorker(DATAPATH_WORKER, input, [port2], options.worker);
    const sw = new Switch(libc, worker, port1, ctrl, counters.buffer, options, wakeFd, tunnel);
    try {
      await sw.waitReady();
    } catch (e) {
      if (tunnel) libc.close(tunnel.fd);
      libc.close(wakeFd);
      throw e;
    }
    return sw;
  }

  private waitReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const fail = (e: unknown) => { clearInterval(timer); reject(e instanceof Error ? e : new SwitchError(String(e))); };
      this.worker.once("error", fail);
      this.worker.once("exit", (code) => fail(new SwitchError(`datapath worker exited (${code}) before it was ready`)));
      this.fatal = fail;
      const timer = setInterval(() => {
        if (Atomics.load(this.ctrl, Ctrl.Ready) === 1) { clearInterval(timer); resolve(); }
        else if (Date.now() - t0 > READY_TIMEOUT_MS) fail(new SwitchError("datapath worker did not start"));
      }, 10);
    });
  }

  private fatal: (e: unknown) => void = () => {};

  private onReply(r: Reply): void {
    if (r.op === "down") {
      const info = this.info.get(r.port);
      if (info) this.portDownHandler(info, r.reason);
      return;
    }
    if (r.op === "denied") {
      this.options.onPolicyDenied?.(r.event);
      return;
    }
    if (r.op === "fatal") {
      this.fatal(new SwitchError(`datapath failed: ${r.message}`));
      return;
    }
    const done = this.pending.get(r.id);
    if (done) { this.pending.delete(r.id); done(r); }
  }

  private send(cmd: Command): void {
    this.cmdPort.postMessage(cmd);
    Atomics.add(this.ctrl, Ctrl.CmdSeq, 1);
    this.wake();
  }

  /** Wakes the datapath from poll() (the eventfd is in its poll set): a command waits no timeout. */
  private wake(): void {
    this.libc.write(this.wakeFd, WAKE_ONE, 8);
  }

  private request(make: (id: number) => Command): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new SwitchError("datapath did not answer")); }, 5_000);
      this.pending.set(id, (r) => { clearTimeout(timer); resolve(r); });
      this.send(make(id));
    });
  }

  onPortDown(handler: (port: PortInfo, reason: string) => void): void {
    this.portDownHandler = handler;
  }

  /**
   * Opens TAP `ifname` in this process's network namespace and attaches it as a port. With
   * `identity` (a pod's port), the pod's MAC and address are pinned and the only ones the port
   * may send from; without, the port's MACs are learned as on any bridge.
   */
  addTap(ifname: string, role: PortInfo["role"], pod?: string, identity?: PortIdentity): PortInfo {
    if (this.stopped) throw new SwitchError("switch is stopped");
    const id = identity && this.checkIdentity(identity);
    let port = 0;
    while (this.taps.has(port)) port++;
    // The last row of the counters is the tunnel's.
    if (port >= this.options.maxPorts - 1) throw new SwitchError(`all ${this.options.maxPorts - 1} ports are in use`);
    const tap = openTap(this.libc, ifname, { offloads: this.options.offloads });
    this.taps.set(port, tap);
    const info: PortInfo = { port, ifname, role, ...(pod ? { pod } : {}), ...(id ? { mac: id.mac, ip: formatIpv4(id.ip) } : {}) };
    this.info.set(port, info);
    this.counters.clearPort(port);
    this.send({ op: "add", port, fd: tap.fd, role, ...(id ? { identity: id } : {}) });
    return info;
  }

  /** `identity` as the datapath takes it; a SwitchError naming the field if it is no pod's, or another port's. */
  private checkIdentity(identity: PortIdentity): { mac: string; ip: number } {
    const m = typeof identity.mac === "string" ? parseMac(identity.mac) : undefined;
    if (!m || (m[0] & 1) !== 0 || m.every((b) => b === 0)) throw new SwitchError(`port identity: mac ${JSON.stringify(identity.mac)} is not a unicast MAC address`);
    const ip = typeof identity.ip === "string" ? parseIpv4Address(identity.ip) : undefined;
    if (ip === undefined || ip === 0 || ip === 0xffffffff) throw new SwitchError(`port identity: ip ${JSON.stringify(identity.ip)} is not a host's IPv4 address`);
    const mac = formatMac(m);
    for (const p of this.info.values()) {
      const which = p.mac === mac ? `mac ${mac}` : p.ip !== undefined && parseIpv4Address(p.ip) === ip ? `ip ${identity.ip}` : undefined;
      if (which) throw new SwitchError(`port identity: ${which} is already port ${p.port}'s${p.pod ? ` (pod ${p.pod})` : ""}`);
    }
    return { mac, ip };
  }

  /** Records where a port's device went (moved to another namespace, renamed). */
  relocated(port: number, ifname: string, netns: string): void {
    const info = this.info.get(port);
    if (info) Object.assign(info, { ifname, netns });
  }

  async removePort(port: number): Promise<void> {
    const tap = this.taps.get(port);
    if (!tap) return;
    await this.request((id) => ({ op: "remove", port, id }));
    this.taps.delete(port);
    this.info.delete(port);
    closeTap(this.libc, tap);
  }

  /** Tells the router the MAC of a pod's address. */
  neighbor(ip: number, mac: string): void {
    this.send({ op: "neigh", ip, mac });
  }

  /**
   * Makes `nodes` the cluster's node list, this node at index `self` in it: peers join, leave
   * or are renumbered live, between two rounds of the datapath, nothing in flight lost
   * (membership.ts). Resolves once the datapath has applied it; rejects, changing nothing, on
   * a switch that does not route between nodes or with a list the datapath refuses (this
   * node's pod CIDR or address changed, overlapping pod CIDRs, ...: the message says which).
   */
  async setNodes(nodes: RouterConfig["nodes"], self: number): Promise<void> {
    if (this.stopped) throw new SwitchError("switch is stopped");
    if (!this.tunnel) throw new SwitchError("this switch does not route between nodes: start it with `routing` to change its nodes");
    const r = await this.request((id) => ({ op: "nodes", id, nodes, self }));
    if (r.op === "nodes" && r.error) throw new SwitchError(`node list refused: ${r.error}`);
  }

  /**
   * Makes `view` the cluster's Services and NetworkPolicies as the datapath enforces them: it
   * is compiled and every tracked flow decided again between two rounds (conntrack/tracker.ts).
   * Resolves once applied; rejects on a switch that does not route between nodes.
   */
  async setView(view: NetworkView): Promise<void> {
    if (this.stopped) throw new SwitchError("switch is stopped");
    const r = await this.request((id) => ({ op: "view", id, view }));
    if (r.op === "view" && r.error) throw new SwitchError(r.error);
  }

  /** The tracked flows, as `tapnet conntrack list` shows them (none on a switch that does not route). */
  async flows(): Promise<FlowInfo[]> {
    const r = await this.request((id) => ({ op: "flows", id }));
    return r.op === "flows" ? r.flows : [];
  }

  /** Arms trace filters (trace/tracer.ts), replacing those armed; an empty list disarms. Rejects with the filter's fault. */
  async trace(filters: TraceFilter[]): Promise<void> {
    const r = await this.request((id) => ({ op: "trace", id, filters }));
    if (r.op === "trace" && r.error) throw new SwitchError(r.error);
  }

  /** The trace records made since the last call, oldest first, and how many were overwritten unread. */
  async traceRecords(): Promise<{ records: TraceRecord[]; lost: number }> {
    const r = await this.request((id) => ({ op: "traceRead", id }));
    return r.op === "traceRead" ? { records: r.records, lost: r.lost } : { records: [], lost: 0 };
  }

  /**
   * The JavaScript heaps of this (the control) thread and of the datapath thread, and the
   * datapath thread's scheduling: CPU, run-queue wait, sleeps (its wakeups) and preemptions.
   */
  async heaps(): Promise<{ control: HeapFigures; datapath: HeapFigures; datapathThread?: ThreadStat }> {
    const r = await this.request((id) => ({ op: "memory", id }));
    const none = { used: 0, total: 0, external: 0, young: 0 };
    if (r.op !== "memory") return { control: heapFigures(), datapath: none };
    return { control: heapFigures(), datapath: r.heap, ...(r.thread ? { datapathThread: r.thread } : {}) };
  }

  /** Turns the logging of denied flows (through options.onPolicyDenied) on or off. */
  setPolicyLog(on: boolean): void {
    this.logging = on;
    this.send({ op: "policyLog", on });
  }

  get policyLog(): boolean {
    return this.logging;
  }

  /** The tunnel's counters (datagrams in and out, drops), if the switch routes between nodes. */
  tunnelCounters(): Record<string, number> | undefined {
    return this.tunnel ? this.counters.portSnapshot(this.options.maxPorts - 1) : undefined;
  }

  async fdb(): Promise<FdbEntry[]> {
    const r = await this.request((id) => ({ op: "fdb", id }));
    return r.op === "fdb" ? r.entries : [];
  }

  ports(): (PortInfo & { counters: Record<string, number> })[] {
    return [...this.info.values()].map((p) => ({ ...p, counters: this.counters.portSnapshot(p.port) }));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.ctrl, Ctrl.Stop, 1);
    this.wake();
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS).unref());
    if ((await Promise.race([exited, timeout])) === "timeout") await this.worker.terminate();
    for (const tap of this.taps.values()) closeTap(this.libc, tap);
    if (this.tunnel) this.libc.close(this.tunnel.fd);
    this.libc.close(this.wakeFd);
    this.taps.clear();
    this.info.clear();
    this.cmdPort.close();
  }
}

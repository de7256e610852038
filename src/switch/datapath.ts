/**
 * The datapath: one worker thread that moves frames between the switch's TAP ports and, on a
 * switch that routes between nodes, the tunnel. It reads a batch (up to `batch` frames from
 * every ready TAP port and datagrams from the tunnel socket, into reused slots), then runs the
 * stages over it, each over the whole batch, in this order:
 *
 *   from the ports                            from the tunnel (tunnel in's own vector of frames)
 *   1. tunnel in      reads -> frames ---->   a. merge      TCP segments of a flow -> super-frame
 *   2. validate       count, vnet header      b. deliver    checks; to the pod or tapnet0
 *   3. port security  a pod sends as itself   c. conntrack  replies translated, ingress policy
 *   4. conntrack      flows, Services, policy d. gateway    ARP requests for unknown pods
 *   5. route          leaving the node?       e. port out   write to TAPs
 *   6. gateway        ARP replies, ICMP
 *   7. bridge         learn, look up, flood
 *   8. tunnel out     to the backend, segmented if it must be
 *   9. port out       write to TAPs
 *
 * Each stage is a file of stages/ with its own header; frames.ts says how a stage says where
 * a frame goes, pipeline.ts how a stage is added. A switch with no cluster (one node) runs only
 * validate, port security, bridge and port out. A pod port added with its identity (its MAC
 * and address, the "add" command's) has them pinned (stages/port-security.ts). Both
 * conntracks share one flow table and the cluster's current Services and policies
 * (conntrack/tracker.ts), given by the control thread as a NetworkView (the "view" command)
 * and kept across node-list changes. A trace command arms the tracer (trace/tracer.ts), which
 * records matching frames after every stage of both pipelines. The tunnel backend (tunnel/: tapnet, udp, vxlan, by name
 * from the registry) is the one thing that differs between clusters, behind tunnel/contract.ts.
 *
 * The control thread (switch.ts) talks to this one (commands.ts) through a SharedArrayBuffer (a
 * stop flag and a command sequence number) and a MessagePort it drains only when the sequence moves,
 * because this thread spends its life in poll(), leaving it only for a turn of its event loop
 * ten times a second (run's `forS`, for V8's own tasks). An eventfd in the poll set, which the
 * control thread writes to after each command, wakes it at once (poll-set.ts WAKE). Commands
 * are applied between rounds, those that came while it waited in poll() before the frames that
 * woke it; a new node list (membership.ts) rebuilds the stages then.
 */
import { receiveMessageOnPort } from "node:worker_threads";
import { EAGAIN, EINTR, type Libc } from "../io/libc.ts";
import { parseMac, macHi, macLo } from "../wire/mac.ts";
import type { GatherSink, TunnelBackend } from "../tunnel/contract.ts";
import { backend as findBackend } from "../tunnel/index.ts";
import { openSslAead } from "../io/aead.ts";
import { Counters, DROP_BASE, PORT_COUNTERS, PortCounter, SwitchCounter } from "./counters.ts";
import { SwitchDrop } from "./drops.ts";
import { Fdb } from "./fdb.ts";
import { Ctrl, memoryReply, type Command, type DatapathInput, type Reply } from "./commands.ts";
import { Frames, TUNNEL } from "./frames.ts";
import { TapWriter, TunnelSocket } from "./io.ts";
import { Pipeline } from "./pipeline.ts";
import { checkNodes } from "./membership.ts";
import { POLLERR, POLLHUP, POLLNVAL, PollSet, WAKE } from "./poll-set.ts";
import { Cluster, SwitchState, type RouterConfig } from "./state.ts";
import { DEFAULT_MAX_FLOWS, DEFAULT_TIMEOUTS } from "./conntrack/flow-table.ts";
import { Tracker } from "./conntrack/tracker.ts";
import { Bridge } from "./stages/bridge.ts";
import { Conntrack } from "./stages/conntrack.ts";
import { Deliver } from "./stages/deliver.ts";
import { Gateway } from "./stages/gateway.ts";
import { Merge } from "./stages/merge.ts";
import { PortOut, type PortWriter } from "./stages/port-out.ts";
import { PortIdentities, PortSecurity } from "./stages/port-security.ts";
import { Route } from "./stages/route.ts";
import { TunnelIn } from "./stages/tunnel-in.ts";
import { TunnelOut } from "./stages/tunnel-out.ts";
import { Validate } from "./stages/validate.ts";
import { Tracer } from "./trace/tracer.ts";

/** The stages, built for one switch: the pipeline over each batch, and tunnel in's. */
export interface Stages {
  ports: Pipeline;
  receive?: Pipeline;
  backend?: TunnelBackend;
}

/**
 * Builds the stages in the order above. With a cluster, `tunnel` says where the backend sends
 * and whether the socket segments; `merge` turns on merging received segments (the TAPs take
 * super-frames), for a backend that wants it. `identities`: the ports' (none, if not given).
 */
export function buildStages(state: SwitchState, writer: PortWriter, tunnel?: { out: GatherSink; segmenting: boolean; merge: boolean },
  identities = new PortIdentities(state.counters.maxPorts)): Stages {
  const portOut = new PortOut(state, writer);
  const bridge = new Bridge(state.fdb, state.counters);
  const validate = new Validate(state);
  const security = new PortSecurity(state, identities);
  if (!state.cluster || !tunnel) return { ports: new Pipeline("ports", [validate, security, bridge, portOut]) };
  const backend = makeBackend(state, tunnel.out, tunnel.segmenting);
  const gateway = new Gateway(state);
  const tunnelIn = new TunnelIn(state, backend);
  const tracked = (side: "ports" | "receive") => (state.tracker ? [new Conntrack(state, state.tracker, side)] : []);
  const ports = new Pipeline("ports", [tunnelIn, validate, security, ...tracked("ports"), new Route(state, backend.wholeFrames), gateway, bridge, new TunnelOut(state, backend), portOut]);
  const receive = new Pipeline("receive", [
    ...(tunnel.merge && backend.mergeReceived ? [new Merge(state)] : []), new Deliver(state), ...tracked("receive"), gateway, portOut,
  ]);
  tunnelIn.receive = receive;
  return { ports, receive, backend };
}

/** The cluster's backend, made from the registry, its sends counted on the tunnel's row. */
function makeBackend(state: SwitchState, out: GatherSink, segmenting: boolean): TunnelBackend {
  const cl = state.cluster!;
  const v = state.counters.v;
  const t = state.tunnelRow * PORT_COUNTERS;
  const info = findBackend(cl.cfg.backend.type);
  const secret = info.seals ? cl.cfg.backend.secret : undefined;
  return info.create({
    datagramSize: cl.cfg.datagramSize, self: cl.cfg.self, nodes: cl.cfg.nodes.length,
    vtepHi: cl.vtepHi, vtepLo: cl.vtepLo, vni: cl.cfg.backend.vni, out, segmenting,
    ...(secret !== undefined ? { seal: { secret, addresses: cl.cfg.nodes.map((n) => n.address), aead: openSslAead() } } : {}),
    events: {
      sent: (datagrams, bytes) => { v[t + PortCounter.TxFrames] += datagrams; v[t + PortCounter.TxBytes] += bytes; },
      failed: (frames) => { v[t + DROP_BASE + SwitchDrop.TxError] += frames; },
    },
  });
}


const POLL_TIMEOUT_MS = 100;
const AGEING_SWEEP_S = 10;
const CONNTRACK_SWEEP_S = 0.1;
/** At most this many frames from one port per round, so a busy port cannot starve the rest. */
const PER_PORT_BUDGET = 16;

export class Datapath {
  private readonly fds: Int32Array;
  private readonly poll: PollSet;
  /** The pods' MACs and addresses, by port: kept across node-list changes. */
  private readonly identities: PortIdentities;
  /** The batch: one slot per entry, read into; see frames.ts. */
  private readonly batch: Frames;
  private readonly slots: Uint8Array[];
  readonly state: SwitchState;
  /** Made anew when the node list changes (membership.ts). */
  stages: Stages;
  private readonly ctrl: Int32Array;
  private seenSeq = 0;
  private lastSweep = 0;
  private lastFlowSweep = 0;
  /** Where the wake-up eventfd's counter is read to (8 bytes, reused). */
  private readonly wakeBuf = new Uint8Array(8);
  private readonly tunnel?: TunnelSocket;
  private readonly writer: TapWriter;
  /** Made by the first trace command (trace/tracer.ts). */
  private tracer?: Tracer;

  constructor(private readonly libc: Libc, private readonly input: DatapathInput) {
    const max = input.maxPorts;
    this.fds = new Int32Array(max).fill(-1);
    this.poll = new PollSet(max);
    this.identities = new PortIdentities(max);
    this.batch = new Frames(input.batch);
    const mem = new Uint8Array(input.batch * input.slotSize);
    this.slots = Array.from({ length: input.batch }, (_, i) => mem.subarray(i * input.slotSize, (i + 1) * input.slotSize));
    const router = input.tunnel ? input.router : undefined;
    this.state = new SwitchState(new Counters(max, input.counters), new Fdb(input.fdb, max), router ? new Cluster(router) : undefined);
    if (this.state.cluster) {
      const tracker = new Tracker(this.state, input.conntrack ?? { max: DEFAULT_MAX_FLOWS, timeouts: DEFAULT_TIMEOUTS });
      tracker.emit = (event) => input.port.postMessage({ op: "denied", event } satisfies Reply);
      this.state.tracker = tracker;
    }
    this.ctrl = new Int32Array(input.ctrl);
    this.writer = new TapWriter(libc, this.fds);
    const t = input.tunnel;
    if (this.state.cluster && t) {
      const cfg = this.state.cluster.cfg;
      this.tunnel = new TunnelSocket(libc, t.fd, cfg.nodes.map((n) => n.address), t.port, cfg.datagramSize);
      this.stages = this.routingStages(this.tunnel);
    } else {
      this.stages = buildStages(this.state, this.writer, undefined, this.identities);
    }
    this.rebuildPollSet(); // the tunnel is read from the start, before any port is added
  }

  /** The stages of a routing switch, over the tunnel's socket and the current node list. */
  private routingStages(tunnel: TunnelSocket): Stages {
    const stages = buildStages(this.state, this.writer, { out: tunnel.out, segmenting: tunnel.segmenting, merge: tunnel.gro && !!this.input.offloads }, this.identities);
    tunnel.readInto(this.slots, stages.backend!.recvOff);
    return stages;
  }

  /**
   * Makes the node list `nodes`, this node at `self`, the cluster's: between rounds, so nothing
   * is in flight in the stages (see membership.ts). Returns why not, if it is refused.
   */
  private setNodes(nodes: RouterConfig["nodes"], self: number): string | undefined {
    const cl = this.state.cluster;
    const tunnel = this.tunnel;
    if (!cl || !tunnel) return "this switch does not route between nodes: it was started without a router config and tunnel";
    const bad = checkNodes(cl.cfg, nodes, self);
    if (bad) return bad;
    this.stages.backend?.flush(); // flushed at the end of every round already: a no-op, and a guarantee
    const out = tunnel.out;
    const before = this.stages.backend;
    try {
      this.state.cluster = cl.withNodes(nodes, self);
      tunnel.setPeers(nodes.map((n) => n.address));
      this.stages = this.routingStages(tunnel);
      this.attachTracer();
      // A node is its address: each that stays keeps what its backend state held for it.
      if (before) this.stages.backend?.adopt?.(before, Int32Array.from(cl.cfg.nodes, (o) => nodes.findIndex((n) => n.address === o.address)));
      return undefined;
    } catch (e) {
      // Not a list checkNodes lets through; if one is, the switch goes on as it was.
      this.state.cluster = cl;
      tunnel.out = out;
      return `the node list could not be applied: ${(e as Error).message}`;
    }
  }

  /** Hands the tracer, if there is one, to the current pipelines (ports is 0, receive 1). */
  private attachTracer(): void {
    this.stages.ports.trace(this.tracer, 0, false);
    this.stages.receive?.trace(this.tracer, 1, true);
  }

  /** A trace record's pipeline and stage (`where` = pipeline * 256 + stage). */
  private stageAt(where: number): { pipeline: string; stage: string } {
    const p = where >> 8 === 0 ? this.stages.ports : this.stages.receive;
    return { pipeline: p?.name ?? "receive", stage: p?.stageName(where & 0xff) ?? `stage ${where & 0xff}` };
  }

  private rebuildPollSet(): void {
    this.poll.rebuild(this.tunnel?.fd, this.fds, this.state.ports, this.input.wakeFd);
  }

  private handle(cmd: Command): void {
    const port = this.input.port;
    const cl = this.state.cluster;
    switch (cmd.op) {
      case "add":
        this.fds[cmd.port] = cmd.fd;
        this.state.ports.add(cmd.port);
        if (cmd.role === "gateway" && cl) cl.gatewayPort = cmd.port;
        // A refusal (the control thread checked the identity first): no room for a pin.
        if (!this.identities.attach(cmd.port, cmd.role, cmd.identity, this.state, now())) this.state.counters.v[this.state.counters.switchBase + SwitchCounter.FdbFull]++;
        break;
      case "neigh": {
        const m = parseMac(cmd.mac);
        if (m && cl) cl.neighbors.learn(cmd.ip, macHi(m, 0), macLo(m, 0));
        break;
      }
      case "remove":
        this.detach(cmd.port);
        this.fds[cmd.port] = -1;
        if (cl && cl.gatewayPort === cmd.port) cl.gatewayPort = -1;
        port.postMessage({ op: "removed", id: cmd.id } satisfies Reply);
        break;
      case "fdb":
        port.postMessage({ op: "fdb", id: cmd.id, entries: this.state.fdb.entries(now()) } satisfies Reply);
        break;
      case "nodes": {
        const error = this.setNodes(cmd.nodes, cmd.self);
        port.postMessage({ op: "nodes", id: cmd.id, ...(error ? { error } : {}) } satisfies Reply);
        break;
      }
      case "view": {
        const tr = this.state.tracker;
        let error: string | undefined = tr ? undefined : "this switch does not route between nodes: it tracks no flows";
        try {
          tr?.setView(cmd.view);
        } catch (e) {
          error = `the view could not be applied: ${(e as Error).message}`;
        }
        port.postMessage({ op: "view", id: cmd.id, ...(error ? { error } : {}) } satisfies Reply);
        break;
      }
      case "flows":
        port.postMessage({ op: "flows", id: cmd.id, flows: this.state.tracker?.flows(now()) ?? [] } satisfies Reply);
        break;
      case "policyLog":
        if (this.state.tracker) this.state.tracker.policyLog = cmd.on;
        break;
      case "trace": {
        let error: string | undefined;
        try {
          this.tracer ??= new Tracer({ state: this.state, ...(this.input.tunnel ? { tunnelPort: this.input.tunnel.port } : {}) });
          this.tracer.set(cmd.filters);
          this.attachTracer();
        } catch (e) {
          error = (e as Error).message;
        }
        port.postMessage({ op: "trace", id: cmd.id, ...(error ? { error } : {}) } satisfies Reply);
        break;
      }
      case "memory":
        port.postMessage(memoryReply(cmd.id));
        break;
      case "traceRead":
        port.postMessage({ op: "traceRead", id: cmd.id, ...(this.tracer?.drain((w) => this.stageAt(w)) ?? { records: [], lost: 0 }) } satisfies Reply);
        break;
    }
    this.rebuildPollSet();
  }

  /** Takes `port` out of the live ports and forgets its identity and the MACs on it. */
  private detach(port: number): void {
    this.state.ports.remove(port);
    this.identities.release(port, this.state);
    this.state.fdb.flushPort(port);
  }

  private drainCommands(): void {
    const seq = Atomics.load(this.ctrl, Ctrl.CmdSeq);
    if (seq === this.seenSeq) return;
    this.seenSeq = seq;
    for (let m = receiveMessageOnPort(this.input.port); m; m = receiveMessageOnPort(this.input.port)) {
      this.handle(m.message as Command);
    }
  }

  private portDown(port: number, reason: string): void {
    this.detach(port);
    this.rebuildPollSet();
    this.input.port.postMessage({ op: "down", port, reason } satisfies Reply);
  }

  /** Reads from every ready port into the batch. */
  private readReady(): void {
    const { libc, batch, poll } = this;
    for (let k = 0; k < poll.count && !batch.full; k++) {
      const revents = poll.revents(k);
      if (revents === 0) continue;
      const port = poll.port(k);
      if (port === WAKE) {
        // Only to wake it: the commands are drained at the top of the round. Reading resets it.
        libc.read(this.input.wakeFd!, this.wakeBuf, 8);
        continue;
      }
      if (port === TUNNEL) {
        this.tunnel!.read(batch, this.slots, PER_PORT_BUDGET);
        continue;
      }
      if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
        this.portDown(port, revents & POLLNVAL ? "fd closed" : "device gone");
        return; // the poll set changed under us; the next round starts afresh
      }
      const fd = this.fds[port];
      for (let n = 0; n < PER_PORT_BUDGET && !batch.full; n++) {
        const slot = this.slots[batch.count];
        const got = libc.read(fd, slot, slot.length);
        if (got < 0) {
          const e = libc.errno();
          if (e === EAGAIN || e === EINTR) break;
          this.portDown(port, `read failed: errno ${e}`);
          return;
        }
        if (got === 0) break;
        batch.push(slot, 0, got, port);
      }
    }
  }

  /**
   * Runs rounds until the stop flag is set (returns false) or, given `forS`, until that many
   * seconds have passed (returns true: call it again). The worker turns its event loop between
   * two calls (datapath-worker.ts): V8 runs the tasks it posts to a thread there, among them the
   * memory reducer, which gives the heap's unused pages back. A thread that only ever polls never
   * runs them, and its committed heap creeps up though what lives in it does not (#13's soak).
   */
  run(forS = Infinity): boolean {
    const { libc, ctrl, batch } = this;
    const until = now() + forS;
    Atomics.store(ctrl, Ctrl.Ready, 1);
    while (Atomics.load(ctrl, Ctrl.Stop) === 0) {
      this.drainCommands();
      const n = this.poll.count === 0 ? (sleepMs(POLL_TIMEOUT_MS), 0) : libc.poll(this.poll.buf, this.poll.count, POLL_TIMEOUT_MS);
      // Commands that came while it waited go before the frames that woke it (a new pod's
      // pinned address before the first packet for it): a new round, and a new poll.
      if (Atomics.load(ctrl, Ctrl.CmdSeq) !== this.seenSeq) continue;
      const t = now();
      if (t >= until) return true;
      if (t - this.lastSweep >= AGEING_SWEEP_S) {
        this.lastSweep = t;
        this.state.fdb.age(t);
        const c = this.state.counters;
        c.v[c.switchBase + SwitchCounter.FdbAged] = this.state.fdb.agedOut;
      }
      if (this.state.tracker && t - this.lastFlowSweep >= CONNTRACK_SWEEP_S) {
        this.lastFlowSweep = t;
        this.state.tracker.sweep(t);
      }
      if (n <= 0) continue;
      this.readReady();
      if (batch.count) {
        this.stages.ports.run(batch, t);
        batch.clear();
      }
    }
    return false;
  }
}

/** Monotonic seconds, the FDB's clock. */
function now(): number {
  return performance.now() / 1000;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

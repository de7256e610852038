/**
 * The datapath: one worker thread that moves frames between the switch's TAP ports.
 *
 * The journey of a frame from pod A to pod B on this node:
 *   1. A's kernel sends it out of A's eth0, a TAP whose fd this switch holds. poll() wakes
 *      this thread, and read() copies the frame, behind its virtio_net_hdr, into a free slot
 *      of the batch (`readReady`), up to BATCH frames from all ready ports together.
 *   2. The bridge learns the source MAC's port and looks the destination up in the FDB
 *      (bridge.ts): one port, or flood to all others, or drop with a counted reason.
 *   3. The forwarder write()s it to B's TAP fd (forwarder.ts), and B's kernel receives it on
 *      B's eth0. Slots are reused for the next round; nothing is allocated per frame.
 *
 * A frame for another node takes a turn at step 2: the router (router.ts) routes it,
 * encapsulates it and sends it on the tunnel's UDP socket, which this thread polls too (a TCP
 * super-frame goes whole with the tapnet backend, or cut into segments with udp and vxlan;
 * either way the pieces are gathered into one sendmsg the kernel cuts into datagrams). A read
 * from that socket (one datagram, or a run of them with UDP_GRO) is decapsulated by the router
 * and written to its pod's TAP.
 *
 * The control thread (switch.ts) talks to this one through a SharedArrayBuffer (a stop flag
 * and a command sequence number) and a MessagePort it drains only when the sequence moves,
 * because this thread spends its life in poll() and never returns to an event loop.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { EAGAIN, EINTR, type Libc } from "../io/libc.ts";
import { TAPNET_MAX_SEGMENTS, type FrameTail } from "../tunnel/tapnet.ts";
import { Iovecs } from "../io/iovec.ts";
import { enableUdpGro, enableUdpGso, GatherSender, GroReceiver, SOCKADDR_IN_LEN, sockaddrAddress, sockaddrIn } from "../io/udp.ts";
import { parseMac, macHi, macLo } from "../wire/mac.ts";
import { Bridge } from "./bridge.ts";
import { Counters, SwitchCounter } from "./counters.ts";
import { Fdb, type FdbEntry, type FdbOptions } from "./fdb.ts";
import { FrameBatch, Forwarder, TUNNEL, type PortWriter } from "./forwarder.ts";
import { Router, type RouterConfig } from "./router.ts";

export const Ctrl = { Stop: 0, CmdSeq: 1, Ready: 2 } as const;
export const CTRL_WORDS = 4;

export type Command =
  | { op: "add"; port: number; fd: number; role: "gateway" | "pod" }
  /** Tells the router a pod's MAC before it has said anything. */
  | { op: "neigh"; ip: number; mac: string }
  | { op: "remove"; port: number; id: number }
  | { op: "fdb"; id: number };

export type Reply =
  | { op: "removed"; id: number }
  | { op: "fdb"; id: number; entries: FdbEntry[] }
  /** The port's device went away under us (its namespace was deleted, say). */
  | { op: "down"; port: number; reason: string }
  | { op: "fatal"; message: string };

export interface DatapathInput {
  ctrl: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  maxPorts: number;
  port: MessagePort;
  fdb: FdbOptions;
  l2Off: number;
  batch: number;
  slotSize: number;
  /** Present when the switch routes between nodes. */
  router?: RouterConfig;
  /** The tunnel's UDP socket, and the port datagrams go to on the other nodes. */
  tunnel?: { fd: number; port: number };
  /** The CPU this thread is pinned to; absent, it runs wherever the scheduler puts it. */
  cpu?: number;
  /** The TAPs take TSO super-frames (switch option `offloads`): received segments may be merged. */
  offloads?: boolean;
}

const POLLIN = 0x001;
const POLLERR = 0x008;
const POLLHUP = 0x010;
const POLLNVAL = 0x020;
const POLL_TIMEOUT_MS = 100;
const AGEING_SWEEP_S = 10;
/** At most this many frames from one port per round, so a busy port cannot starve the rest. */
const PER_PORT_BUDGET = 16;

/** Writes frames to the TAPs: one write, or one writev of a head and its tail (FrameTail). */
class TapWriter implements PortWriter {
  private readonly iov: Iovecs;
  constructor(private readonly libc: Libc, readonly fds: Int32Array) {
    this.iov = new Iovecs(libc, TAPNET_MAX_SEGMENTS + 2);
  }
  write(port: number, buf: Uint8Array, len: number, tail?: FrameTail | null): boolean {
    if (!tail) return this.libc.write(this.fds[port], buf, len) === len;
    const iov = this.iov;
    iov.reset();
    iov.add(buf, 0, Math.min(len, tail.headLen));
    for (let k = 0; k < tail.count && iov.total < len; k++) iov.add(tail.buf, tail.offs[k], Math.min(tail.lens[k], len - iov.total));
    return this.libc.writev(this.fds[port], iov.mem, iov.count) === len;
  }
}

export class Datapath {
  private readonly fds: Int32Array;
  private readonly pollfds: Uint8Array;
  private readonly pollView: DataView;
  private readonly pollPorts: Int32Array;
  private nPoll = 0;
  private readonly batch: FrameBatch;
  readonly forwarder: Forwarder;
  readonly fdb: Fdb;
  private readonly ctrl: Int32Array;
  private seenSeq = 0;
  private lastSweep = 0;
  readonly router?: Router;
  private readonly tunnelFd: number = -1;
  private readonly tunnelViews: Uint8Array[] = [];
  private readonly peerAddr = new Uint8Array(SOCKADDR_IN_LEN);
  private readonly peerAddrLen = new Uint8Array(4);
  /** With UDP_GRO: reads with recvmsg, to learn how the kernel coalesced datagrams. */
  private gro?: GroReceiver;
  private groAddrs: number[] = [];

  constructor(private readonly libc: Libc, private readonly input: DatapathInput) {
    const max = input.maxPorts;
    this.fds = new Int32Array(max).fill(-1);
    this.pollfds = new Uint8Array((max + 1) * 8);
    this.pollView = new DataView(this.pollfds.buffer);
    this.pollPorts = new Int32Array(max + 1);
    this.batch = new FrameBatch(input.batch, input.slotSize);
    this.fdb = new Fdb(input.fdb);
    const counters = new Counters(max, input.counters);
    this.forwarder = new Forwarder(new Bridge(this.fdb, counters), new TapWriter(libc, this.fds), input.l2Off);
    this.ctrl = new Int32Array(input.ctrl);
    if (input.router && input.tunnel) {
      const fd = input.tunnel.fd;
      const peers = input.router.nodes.map((n) => sockaddrIn(n.address, input.tunnel!.port));
      // Each sendto passes a view of its datagram: one small allocation per datagram, which
      // sendmmsg over preset iovecs would remove.
      const toPeer = (buf: Uint8Array, off: number, len: number, peer: number) =>
        libc.sendto(fd, buf.subarray(off, off + len), len, 0, peers[peer], SOCKADDR_IN_LEN) === len;
      // With UDP_SEGMENT, one sendmsg carries up to 64 datagrams the kernel cuts apart: the
      // tapnet backend's chunks of whole frames, or the udp and vxlan backends' segments of a
      // super-frame (headers and payloads gathered where they lie). With UDP_GRO, one read
      // returns a run of them. Where the kernel has neither, a datagram per call still works.
      // The socket's own segment size is the largest datagram, so a plain sendto is never cut.
      const tapnetBackend = input.router.backend.type === "tapnet";
      const gso = enableUdpGso(libc, fd, input.router.datagramSize);
      const gather = tapnetBackend || gso ? new GatherSender(libc, fd, peers, 2 * TAPNET_MAX_SEGMENTS, gso) : undefined;
      this.router = new Router(input.router, counters, this.forwarder.routerIo(toPeer, gather));
      this.router.gatherSegments = !tapnetBackend && gso;
      this.forwarder.router = this.router;
      this.tunnelFd = fd;
      this.tunnelViews = this.batch.slots.map((s) => s.subarray(this.router!.recvOff));
      if (this.router.tapnet) this.router.tapnet.gso = gso;
      if (enableUdpGro(libc, fd)) {
        this.gro = new GroReceiver(libc);
        this.groAddrs = this.tunnelViews.map((v) => libc.addressOf(v));
        if (input.offloads) this.router.coalesceReceived();
      }
    }
    this.rebuildPollSet(); // the tunnel is read from the start, before any port is added
  }

  private rebuildPollSet(): void {
    this.nPoll = 0;
    const add = (fd: number, port: number) => {
      const o = this.nPoll * 8;
      this.pollView.setInt32(o, fd, true);
      this.pollView.setInt16(o + 4, POLLIN, true);
      this.pollView.setInt16(o + 6, 0, true);
      this.pollPorts[this.nPoll++] = port;
    };
    if (this.tunnelFd >= 0) add(this.tunnelFd, TUNNEL);
    for (let p = 0; p < this.fds.length; p++) {
      if (this.fds[p] >= 0 && this.forwarder.isLive(p)) add(this.fds[p], p);
    }
  }

  private handle(cmd: Command): void {
    const port = this.input.port;
    switch (cmd.op) {
      case "add":
        this.fds[cmd.port] = cmd.fd;
        this.forwarder.addPort(cmd.port);
        if (cmd.role === "gateway" && this.router) this.router.gatewayPort = cmd.port;
        break;
      case "neigh": {
        const m = parseMac(cmd.mac);
        if (m && this.router) this.router.neighbors.learn(cmd.ip, macHi(m, 0), macLo(m, 0));
        break;
      }
      case "remove":
        this.forwarder.removePort(cmd.port);
        this.fds[cmd.port] = -1;
        if (this.router && this.router.gatewayPort === cmd.port) this.router.gatewayPort = -1;
        port.postMessage({ op: "removed", id: cmd.id } satisfies Reply);
        break;
      case "fdb":
        port.postMessage({ op: "fdb", id: cmd.id, entries: this.fdb.entries(now()) } satisfies Reply);
        break;
    }
    this.rebuildPollSet();
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
    this.forwarder.removePort(port);
    this.rebuildPollSet();
    this.input.port.postMessage({ op: "down", port, reason } satisfies Reply);
  }

  /** Reads from every ready port into the batch. */
  private readReady(): void {
    const { libc, batch, pollView } = this;
    for (let k = 0; k < this.nPoll && batch.count < batch.capacity; k++) {
      const revents = pollView.getInt16(k * 8 + 6, true);
      if (revents === 0) continue;
      const port = this.pollPorts[k];
      if (port === TUNNEL) {
        this.readTunnel();
        continue;
      }
      if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
        this.portDown(port, revents & POLLNVAL ? "fd closed" : "device gone");
        return; // the poll set changed under us; the next round starts afresh
      }
      const fd = this.fds[port];
      for (let n = 0; n < PER_PORT_BUDGET && batch.count < batch.capacity; n++) {
        const slot = batch.slots[batch.count];
        const got = libc.read(fd, slot, slot.length);
        if (got < 0) {
          const e = libc.errno();
          if (e === EAGAIN || e === EINTR) break;
          this.portDown(port, `read failed: errno ${e}`);
          return;
        }
        if (got === 0) break;
        batch.lens[batch.count] = got;
        batch.ports[batch.count] = port;
        batch.count++;
      }
    }
  }

  /** Reads datagrams into the batch, each at the backend's receive offset in its slot. */
  private readTunnel(): void {
    const { libc, batch } = this;
    for (let n = 0; n < PER_PORT_BUDGET && batch.count < batch.capacity; n++) {
      const view = this.tunnelViews[batch.count];
      const gro = this.gro;
      let got: number;
      if (gro) {
        got = gro.read(this.tunnelFd, this.groAddrs[batch.count], view.length);
        if (got < 0) break;
        batch.peers[batch.count] = sockaddrAddress(gro.from);
        batch.segments[batch.count] = gro.segmentSize;
      } else {
        this.peerAddrLen[0] = SOCKADDR_IN_LEN; // socklen_t, little-endian: in, the room; out, the length
        got = libc.recvfrom(this.tunnelFd, view, view.length, 0, this.peerAddr, this.peerAddrLen);
        if (got < 0) break; // EAGAIN: drained; anything else is the next round's to see
        batch.peers[batch.count] = sockaddrAddress(this.peerAddr);
        batch.segments[batch.count] = 0;
      }
      batch.lens[batch.count] = got;
      batch.ports[batch.count] = TUNNEL;
      batch.count++;
    }
  }

  run(): void {
    const { libc, ctrl, batch } = this;
    Atomics.store(ctrl, Ctrl.Ready, 1);
    while (Atomics.load(ctrl, Ctrl.Stop) === 0) {
      this.drainCommands();
      const n = this.nPoll === 0 ? (sleepMs(POLL_TIMEOUT_MS), 0) : libc.poll(this.pollfds, this.nPoll, POLL_TIMEOUT_MS);
      const t = now();
      if (t - this.lastSweep >= AGEING_SWEEP_S) {
        this.lastSweep = t;
        this.fdb.age(t);
        const c = this.forwarder.bridge.counters;
        c.v[c.switchBase + SwitchCounter.FdbAged] = this.fdb.agedOut;
      }
      if (n <= 0) continue;
      this.readReady();
      if (batch.count) this.forwarder.forward(batch, t);
    }
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

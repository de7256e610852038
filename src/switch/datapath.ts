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
 * The control thread (switch.ts) talks to this one through a SharedArrayBuffer (a stop flag
 * and a command sequence number) and a MessagePort it drains only when the sequence moves,
 * because this thread spends its life in poll() and never returns to an event loop.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { EAGAIN, EINTR, loadLibc, type Libc } from "../io/libc.ts";
import { Bridge } from "./bridge.ts";
import { Counters, SwitchCounter } from "./counters.ts";
import { Fdb, type FdbEntry, type FdbOptions } from "./fdb.ts";
import { FrameBatch, Forwarder, type PortWriter } from "./forwarder.ts";

export const Ctrl = { Stop: 0, CmdSeq: 1, Ready: 2 } as const;
export const CTRL_WORDS = 4;

export type Command =
  | { op: "add"; port: number; fd: number }
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
}

const POLLIN = 0x001;
const POLLERR = 0x008;
const POLLHUP = 0x010;
const POLLNVAL = 0x020;
const POLL_TIMEOUT_MS = 100;
const AGEING_SWEEP_S = 10;
/** At most this many frames from one port per round, so a busy port cannot starve the rest. */
const PER_PORT_BUDGET = 16;

class TapWriter implements PortWriter {
  constructor(private readonly libc: Libc, readonly fds: Int32Array) {}
  write(port: number, buf: Uint8Array, len: number): boolean {
    return this.libc.write(this.fds[port], buf, len) === len;
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

  constructor(private readonly libc: Libc, private readonly input: DatapathInput) {
    const max = input.maxPorts;
    this.fds = new Int32Array(max).fill(-1);
    this.pollfds = new Uint8Array(max * 8);
    this.pollView = new DataView(this.pollfds.buffer);
    this.pollPorts = new Int32Array(max);
    this.batch = new FrameBatch(input.batch, input.slotSize);
    this.fdb = new Fdb(input.fdb);
    const counters = new Counters(max, input.counters);
    this.forwarder = new Forwarder(new Bridge(this.fdb, counters), new TapWriter(libc, this.fds), input.l2Off);
    this.ctrl = new Int32Array(input.ctrl);
  }

  private rebuildPollSet(): void {
    this.nPoll = 0;
    for (let p = 0; p < this.fds.length; p++) {
      if (this.fds[p] < 0 || !this.forwarder.isLive(p)) continue;
      const o = this.nPoll * 8;
      this.pollView.setInt32(o, this.fds[p], true);
      this.pollView.setInt16(o + 4, POLLIN, true);
      this.pollView.setInt16(o + 6, 0, true);
      this.pollPorts[this.nPoll++] = p;
    }
  }

  private handle(cmd: Command): void {
    const port = this.input.port;
    switch (cmd.op) {
      case "add":
        this.fds[cmd.port] = cmd.fd;
        this.forwarder.addPort(cmd.port);
        break;
      case "remove":
        this.forwarder.removePort(cmd.port);
        this.fds[cmd.port] = -1;
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

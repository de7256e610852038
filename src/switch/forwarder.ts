/**
 * Moves one batch of received frames to their output ports. The frames sit in the batch's
 * reused slots; the bridge decides each one's output, and the forwarder writes it there (or
 * to every other live port when flooded), counting frames and bytes in and out and every drop.
 *
 * Frames keep whatever device header they arrived with (`l2Off` bytes of virtio_net_hdr before
 * the Ethernet header): every port of this switch is a TAP with the same header, so a TCP
 * super-frame crosses it whole and untouched.
 *
 * With a router (router.ts), each frame from a TAP is offered to it first: it takes what
 * leaves the node, and the forwarder delivers what it hands back. Datagrams from the tunnel
 * (port TUNNEL) go to the router alone.
 */
import { Drop } from "../wire/drop.ts";
import { Bridge, DROP, FLOOD } from "./bridge.ts";
import { PORT_COUNTERS, PortCounter } from "./counters.ts";
import type { FrameTail } from "../tunnel/tapnet.ts";
import type { Router, RouterIo } from "./router.ts";

/** The in-port of a batch entry that came from the tunnel socket. */
export const TUNNEL = -1;

/**
 * Where frames leave. `write` returns false when the port could not take the frame. With a
 * `tail`, the frame's first tail.headLen bytes are in `buf` and the rest in the tail's pieces.
 */
export interface PortWriter {
  write(port: number, buf: Uint8Array, len: number, tail?: FrameTail | null): boolean;
}

/**
 * Frames read in one round: slot i holds `lens[i]` bytes that came in on `ports[i]`. A
 * datagram from the tunnel (port TUNNEL) sits at the backend's receive offset in its slot, and
 * `peers[i]` is the underlay address it came from.
 */
export class FrameBatch {
  readonly slots: Uint8Array[];
  readonly lens: Int32Array;
  readonly ports: Int32Array;
  readonly peers: Float64Array;
  /** For a GRO read from the tunnel: the size of its datagrams (all but the last); 0 for one. */
  readonly segments: Int32Array;
  count = 0;

  constructor(readonly capacity: number, readonly slotSize: number) {
    const mem = new Uint8Array(capacity * slotSize);
    this.slots = Array.from({ length: capacity }, (_, i) => mem.subarray(i * slotSize, (i + 1) * slotSize));
    this.lens = new Int32Array(capacity);
    this.ports = new Int32Array(capacity);
    this.peers = new Float64Array(capacity);
    this.segments = new Int32Array(capacity);
  }
}

export class Forwarder {
  /** Live ports, for flooding; `live[i]` is true while port i is attached. */
  private readonly live: Uint8Array;
  private readonly liveList: Int32Array;
  private liveCount = 0;
  private now = 0;
  router?: Router;

  constructor(readonly bridge: Bridge, readonly writer: PortWriter, readonly l2Off: number) {
    this.live = new Uint8Array(bridge.counters.maxPorts);
    this.liveList = new Int32Array(bridge.counters.maxPorts);
  }

  /** The router's way out to the TAP ports; `toPeer` and `gather` are the tunnel's to provide. */
  routerIo(toPeer: RouterIo["toPeer"], gather?: RouterIo["gather"]): RouterIo {
    return {
      toPort: (port, buf, len, tail) => this.live[port] === 1 && this.transmit(port, buf, len, port, tail),
      toMac: (buf, len, hi, lo, except, tail) => {
        const out = this.bridge.fdb.lookup(hi, lo, this.now);
        if (out >= 0 && this.live[out]) this.transmit(out, buf, len, out, tail);
        else for (let k = 0; k < this.liveCount; k++) if (this.liveList[k] !== except) this.transmit(this.liveList[k], buf, len, this.liveList[k], tail);
      },
      toPeer,
      gather,
    };
  }

  addPort(port: number): void {
    if (this.live[port]) return;
    this.live[port] = 1;
    this.liveList[this.liveCount++] = port;
  }

  removePort(port: number): void {
    if (!this.live[port]) return;
    this.live[port] = 0;
    let j = 0;
    for (let i = 0; i < this.liveCount; i++) if (this.liveList[i] !== port) this.liveList[j++] = this.liveList[i];
    this.liveCount = j;
    this.bridge.fdb.flushPort(port);
  }

  isLive(port: number): boolean {
    return this.live[port] === 1;
  }

  forward(batch: FrameBatch, now: number): void {
    const v = this.bridge.counters.v;
    const router = this.router;
    this.now = now;
    for (let i = 0; i < batch.count; i++) {
      const buf = batch.slots[i];
      const len = batch.lens[i];
      const inPort = batch.ports[i];
      if (inPort === TUNNEL) {
        router?.fromTunnel(buf, len, batch.peers[i], now, batch.segments[i]);
        continue;
      }
      const base = inPort * PORT_COUNTERS;
      v[base + PortCounter.RxFrames]++;
      if (len < this.l2Off) {
        this.bridge.counters.drop(inPort, Drop.VnetHdrTruncated);
        continue;
      }
      v[base + PortCounter.RxBytes] += len - this.l2Off;
      if (router && router.fromPort(inPort, buf, len)) continue;
      const out = this.bridge.decide(inPort, buf, this.l2Off, len - this.l2Off, now);
      if (out === DROP) continue;
      if (out === FLOOD) {
        v[base + PortCounter.RxFlooded]++;
        for (let k = 0; k < this.liveCount; k++) {
          const p = this.liveList[k];
          if (p !== inPort) this.transmit(p, buf, len, inPort);
        }
      } else if (this.live[out]) {
        this.transmit(out, buf, len, inPort);
      } else {
        this.bridge.counters.drop(inPort, Drop.NoPort);
      }
    }
    router?.flush();
    batch.count = 0;
  }

  /** Writes to `port`, counting it there, or counting the failure on `inPort`. */
  private transmit(port: number, buf: Uint8Array, len: number, inPort: number, tail: FrameTail | null = null): boolean {
    if (this.writer.write(port, buf, len, tail)) {
      const v = this.bridge.counters.v;
      v[port * PORT_COUNTERS + PortCounter.TxFrames]++;
      v[port * PORT_COUNTERS + PortCounter.TxBytes] += len - this.l2Off;
      return true;
    }
    this.bridge.counters.drop(inPort, Drop.TxError);
    return false;
  }
}

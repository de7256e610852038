/**
 * The vector of frames the stages work on, one batch at a time. Entry i is a TAP frame
 * (virtio_net_hdr, Ethernet, IPv4...) of `lens[i]` bytes at bufs[i][offs[i]..], or, when
 * tails[i].count > 0, its first tails[i].headLen bytes there and the rest in the tail's pieces.
 * It came in on `ports[i]` (TUNNEL: from node `nodes[i]`), and `outs[i]` says where it goes.
 * (A read from the tunnel socket, before tunnel in takes it apart, is an entry too: port
 * TUNNEL, its sender's underlay address in aux[i], its GRO segment size in strides[i].)
 *
 *
 *   a port number   written to that TAP port
 *   PENDING         no stage has decided yet
 *   FLOOD           written to every live port but ports[i]
 *   TO_NODE         handed to the tunnel for node nodes[i]
 *   REPLY           the gateway answers it (aux[i]: the ICMP error to send back)
 *   ASK             the gateway asks, by ARP, who has the address in aux[i]
 *   DONE            taken: dropped (and counted), merged into another, or sent
 *
 * Nothing here is allocated per frame: the arrays, each entry's tail and the heads that
 * backends and stages may build a frame in are made once with the vector.
 */
import { HEAD_ROOM, type FrameTail } from "../tunnel/contract.ts";

export const PENDING = -1;
export const FLOOD = -2;
export const TO_NODE = -3;
export const REPLY = -4;
export const ASK = -5;
export const DONE = -6;

/** The in-port of a frame that came from the tunnel. */
export const TUNNEL = -1;

/** A tail's room: a 64 KB frame in up to 64 datagrams, its head and one more piece. */
const TAIL_PIECES = 66;

export function newTail(pieces = TAIL_PIECES): FrameTail {
  return { buf: new Uint8Array(0), headLen: 0, offs: new Int32Array(pieces), lens: new Int32Array(pieces), count: 0 };
}

export class Frames {
  readonly bufs: Uint8Array[];
  readonly offs: Int32Array;
  readonly lens: Int32Array;
  readonly tails: FrameTail[];
  readonly ports: Int32Array;
  readonly nodes: Int32Array;
  readonly outs: Int32Array;
  readonly aux: Float64Array;
  /** For frames from the tunnel: which read they came in, so a stage can tell runs apart. */
  readonly reads: Int32Array;
  /** For a read from the tunnel socket, not yet taken apart: its GRO segment size (0: one datagram). */
  readonly strides: Int32Array;
  /** HEAD_ROOM bytes per entry, for a frame that is built rather than read (heads[i] for entry i). */
  readonly heads: Uint8Array[];
  /** The trace filter (1-based) that marked entry i, 0 if none (trace/tracer.ts); `marked` counts them. */
  readonly marks: Uint8Array;
  /** The tracer's number for marked entry i (the same through every stage); meaningful only where marks[i] is set. */
  readonly traceNo: Int32Array;
  /**
   * The drop reason (switch/drops.ts) a stage counted when it dropped or refused entry i, so a
   * trace can name it. Set where the drop is counted; meaningful only for a marked entry (the
   * tracer clears it when it marks one).
   */
  readonly why: Uint16Array;
  marked = 0;
  count = 0;

  constructor(readonly capacity: number) {
    const heads = new Uint8Array(capacity * HEAD_ROOM);
    this.bufs = Array.from({ length: capacity }, () => heads);
    this.offs = new Int32Array(capacity);
    this.lens = new Int32Array(capacity);
    this.tails = Array.from({ length: capacity }, () => newTail());
    this.ports = new Int32Array(capacity);
    this.nodes = new Int32Array(capacity);
    this.outs = new Int32Array(capacity);
    this.aux = new Float64Array(capacity);
    this.reads = new Int32Array(capacity);
    this.strides = new Int32Array(capacity);
    this.marks = new Uint8Array(capacity);
    this.traceNo = new Int32Array(capacity);
    this.why = new Uint16Array(capacity);
    this.heads = Array.from({ length: capacity }, (_, i) => heads.subarray(i * HEAD_ROOM, (i + 1) * HEAD_ROOM));
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Adds a contiguous frame from `port`, undecided; returns its index. */
  push(buf: Uint8Array, off: number, len: number, port: number, node = -1): number {
    const i = this.count++;
    this.bufs[i] = buf;
    this.offs[i] = off;
    this.lens[i] = len;
    this.tails[i].count = 0;
    this.ports[i] = port;
    this.nodes[i] = node;
    this.outs[i] = PENDING;
    this.reads[i] = 0;
    this.marks[i] = 0;
    return i;
  }

  /** Bytes of entry i that lie contiguously at bufs[i][offs[i]..]. */
  headLen(i: number): number {
    const t = this.tails[i];
    return t.count > 0 ? t.headLen : this.lens[i];
  }

  clear(): void {
    if (this.marked !== 0) {
      this.marks.fill(0, 0, this.count);
      this.marked = 0;
    }
    this.count = 0;
  }
}

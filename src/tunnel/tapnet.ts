/**
 * The `tapnet` backend: whole offloaded frames between tapnet nodes (format in wire/tapnet.ts).
 *
 * Sending: the frame (virtio_net_hdr + Ethernet, up to 64 KB) is cut into chunks, each behind
 * its header, every one but the last exactly `datagramSize` long. Nothing is copied: headers and
 * chunks are gathered as pieces (GatherSink), and with UDP_SEGMENT one sendmsg sends up to 64 of
 * them, which the kernel cuts into datagrams. Small frames (a datagram each: ACKs, UDP) to the
 * same peer are gathered across the batch the same way, so a batch of them costs one send.
 * Without UDP_SEGMENT, one send per datagram. Receiving: with UDP_GRO, one read returns a
 * run of equal-sized datagrams, split again here at the same stride; each chunk is copied into
 * the sender's reassembly buffer, and a frame whose chunks all came, in order, is handed on.
 * Datagrams of one sender arrive in order on one path; a gap drops the frame (counted), and TCP
 * sends it again.
 */
import { Drop, type DropReason } from "../wire/drop.ts";
import { checkTapnetHeader, TAPNET_FRAME_ID, TAPNET_FRAME_LEN, TAPNET_HEADER_LEN, TAPNET_MAX_FRAME, TAPNET_OFFSET, writeTapnetHeader } from "../wire/tapnet.ts";
import { get16, get32 } from "../wire/bytes.ts";

/** The most UDP payload one send may carry, segmented or not. */
export const MAX_UDP_PAYLOAD = 65507;
/** The most datagrams one UDP_SEGMENT send may make (UDP_MAX_SEGMENTS: 64 in Linux 4.18, 128 later). */
export const TAPNET_MAX_SEGMENTS = 64;
const MAX_SEGMENTS = TAPNET_MAX_SEGMENTS;

/** How many datagrams of `datagramSize` bytes one send carries. */
function datagramsPerSend(datagramSize: number): number {
  return Math.min(MAX_SEGMENTS, Math.floor(MAX_UDP_PAYLOAD / datagramSize));
}

/**
 * The largest TSO super-frame (the gso_max_size to give a pod's interface) whose datagrams
 * fit one UDP_SEGMENT send: a 64 KB frame needs 45 datagrams of 1472 bytes, one more than a
 * send can carry, so capping the frames a little halves the sends per frame.
 */
export function tapnetGsoMaxSize(datagramSize: number): number {
  const chunk = datagramSize - TAPNET_HEADER_LEN;
  const frame = datagramsPerSend(datagramSize) * chunk - 10 - 14; // less the virtio_net_hdr and the Ethernet header
  return Math.max(1000, Math.floor(frame / 1000) * 1000);
}

/**
 * Where the tapnet backend sends: pieces of datagrams are gathered (a header here, a chunk of
 * a frame there, nothing copied), then sent to one peer in one go, cut into datagrams of
 * `segment` bytes (the last may be shorter). io/udp.ts's GatherSender does it with one sendmsg
 * over an iovec per piece and UDP_SEGMENT; tests collect the bytes.
 */
export interface GatherSink {
  /** Appends buf[off..off+len) to what is being gathered. */
  add(buf: Uint8Array, off: number, len: number): void;
  /** Sends what was gathered to node `peer`; false if the send failed. Starts a new gather. */
  send(peer: number, segment: number): boolean;
}

/** What the backend reports as it sends, for the router's counters. */
export interface TapnetSendEvents {
  sent(datagrams: number, bytes: number): void;
  /** Frames lost to a failed send. */
  failed(frames: number): void;
}

/** Bytes of a frame received in place that are copied to the head: every header the router reads or writes. */
const HEAD_BYTES = 256;

/**
 * The rest of a frame whose first `headLen` bytes are elsewhere (the backend's head): `count`
 * pieces of `buf`, at `offs[k]`, `lens[k]` bytes each, in order. A writer sends the head and
 * then these (writev), clipping the whole to the frame's length; nothing is copied.
 */
export interface FrameTail {
  buf: Uint8Array;
  headLen: number;
  offs: Int32Array;
  lens: Int32Array;
  count: number;
}

export class TapnetBackend {
  readonly type = "tapnet" as const;
  readonly recvOff = 0;
  readonly chunkSize: number;
  /** Set when the socket segments for us (UDP_SEGMENT). */
  gso = false;
  /** Headers of the datagrams gathered and not yet sent (never more than one send's worth). */
  private readonly headers = new Uint8Array(MAX_SEGMENTS * TAPNET_HEADER_LEN);
  private readonly perSend: number;
  private frameId = 0;
  // The run of single-datagram frames gathered for one peer: sent when it can grow no more,
  // or at the end of the batch (flush). Every datagram of a UDP_SEGMENT send but the last has
  // the run's size, so a shorter frame closes the run and a longer one starts another.
  private runPeer = -1;
  private runSize = 0;
  private runCount = 0;
  private runBytes = 0;
  private runClosed = false;
  private readonly rx: Uint8Array[];
  /** The first bytes of a frame received in place, and where the rest of it lies. */
  readonly head = new Uint8Array(TAPNET_MAX_FRAME);
  readonly tail: FrameTail = { buf: new Uint8Array(0), headLen: 0, offs: new Int32Array(MAX_SEGMENTS + 1), lens: new Int32Array(MAX_SEGMENTS + 1), count: 0 };
  private readonly rxId: Int32Array;
  private readonly rxLen: Int32Array;
  /** Bytes of the frame in progress received so far; -1 when none is. */
  private readonly rxGot: Int32Array;

  constructor(readonly datagramSize: number, peers: number, private readonly out?: GatherSink, private readonly events?: TapnetSendEvents) {
    if (datagramSize <= TAPNET_HEADER_LEN + 64) throw new RangeError("tunnel datagrams too small for the tapnet backend");
    this.chunkSize = datagramSize - TAPNET_HEADER_LEN;
    this.perSend = datagramsPerSend(datagramSize);
    this.rx = Array.from({ length: peers }, () => new Uint8Array(0));
    this.rxId = new Int32Array(peers);
    this.rxLen = new Int32Array(peers);
    this.rxGot = new Int32Array(peers).fill(-1);
  }

  /**
   * Sends frame buf[0..len) to node `peer`. A frame of one datagram may wait in the run being
   * gathered until `flush()`: `buf` must stay as it is until then. Returns the frame's
   * datagrams, or -1 if it cannot be sent (too large); a failed send is reported through the
   * events, with the frames it lost.
   */
  send(buf: Uint8Array, len: number, peer: number): number {
    if (len > TAPNET_MAX_FRAME || len <= 0) return -1;
    const C = this.chunkSize;
    const n = Math.ceil(len / C);
    const id = (this.frameId = (this.frameId + 1) & 0xffff);
    if (n === 1) {
      const d = TAPNET_HEADER_LEN + len;
      const fits = this.runPeer === peer && !this.runClosed && d <= this.runSize &&
        this.runCount < MAX_SEGMENTS && this.runBytes + d <= MAX_UDP_PAYLOAD;
      if (!fits) {
        this.flush();
        this.runPeer = peer;
        this.runSize = d;
      }
      this.gather(id, len, 0, buf, len);
      this.runBytes += d;
      if (d < this.runSize) this.runClosed = true;
      if (!this.gso) this.flush();
      return 1;
    }
    this.flush();
    const step = this.gso ? this.perSend : 1;
    for (let i = 0; i < n; i += step) {
      this.runPeer = peer;
      this.runSize = this.datagramSize;
      const last = Math.min(n, i + step);
      for (let k = i; k < last; k++) {
        const off = k * C;
        const clen = Math.min(C, len - off);
        this.gather(id, len, off, buf, clen);
        this.runBytes += TAPNET_HEADER_LEN + clen;
      }
      // Later runs of a frame whose first run failed would only be dropped by the receiver.
      if (!this.flush(1)) return n;
    }
    return n;
  }

  /** Adds the datagram for frame bytes [off, off+clen) to the run, its header in `headers`. */
  private gather(id: number, len: number, off: number, buf: Uint8Array, clen: number): void {
    const h = this.runCount * TAPNET_HEADER_LEN;
    writeTapnetHeader(this.headers, h, id, len, off);
    this.out!.add(this.headers, h, TAPNET_HEADER_LEN);
    this.out!.add(buf, off, clen);
    this.runCount++;
  }

  /**
   * Sends the run gathered so far; `frames` is how many frames a failure loses (by default,
   * one per datagram: a run of single-datagram frames). Returns false if the send failed.
   */
  flush(frames = this.runCount): boolean {
    if (this.runCount === 0) return true;
    const ok = this.out!.send(this.runPeer, this.runSize);
    if (ok) this.events?.sent(this.runCount, this.runBytes);
    else this.events?.failed(frames);
    this.runPeer = -1;
    this.runCount = 0;
    this.runBytes = 0;
    this.runClosed = false;
    return ok;
  }

  /**
   * Takes `len` bytes read from the socket at buf[off..] from node `peer`: one datagram, or with
   * GRO a run of datagrams of `stride` bytes each (the last maybe shorter), as the kernel said.
   * Calls `frame(buffer, length)` for each frame completed and `drop(reason)` for each datagram
   * refused; returns how many datagrams there were.
   *
   * A frame whose datagrams all came in this read (the usual case: GRO ends a run at a frame's
   * short last datagram) is not copied: its first bytes are, into `head` (up to HEAD_BYTES,
   * room for every header the router reads), and `tail` lists where the rest lies in `buf`.
   * `frame` gets `head`; whoever writes the frame out writes `tail` after it (see FrameTail),
   * or calls `linearize()` first if it must read the whole frame. Any other frame is put
   * together in a reassembly buffer of its sender's, and `tail` is empty.
   */
  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, frame: (b: Uint8Array, len: number) => void, drop: (r: DropReason) => void): number {
    if (len === 0) {
      drop(Drop.TapnetTruncated);
      return 1;
    }
    const D = stride;
    let count = 0;
    for (let p = 0; p < len; p += D) {
      count++;
      const at = off + p;
      const dlen = Math.min(D, len - p);
      const r = checkTapnetHeader(buf, at, dlen);
      if (r !== Drop.None) {
        drop(r);
        continue;
      }
      const id = get16(buf, at + TAPNET_FRAME_ID);
      const flen = get32(buf, at + TAPNET_FRAME_LEN);
      const offset = get32(buf, at + TAPNET_OFFSET);
      const clen = dlen - TAPNET_HEADER_LEN;
      if (offset === 0) {
        if (this.rxGot[peer] >= 0) drop(Drop.TapnetIncomplete); // the frame before never finished
        this.rxGot[peer] = -1;
        const n = this.wholeFrame(buf, at, off + len, D, id, flen);
        if (n > 0) {
          this.frameInPlace(buf, at, off + len, D, n);
          frame(this.head, flen);
          this.tail.count = 0;
          count += n - 1;
          p += (n - 1) * D;
          continue;
        }
        this.rxId[peer] = id;
        this.rxLen[peer] = flen;
        this.rxGot[peer] = 0;
        if (this.rx[peer].length === 0) this.rx[peer] = new Uint8Array(TAPNET_MAX_FRAME);
      } else if (this.rxGot[peer] !== offset || this.rxId[peer] !== id || this.rxLen[peer] !== flen) {
        this.rxGot[peer] = -1; // a gap: this datagram, and the frame it belonged to, are lost
        drop(Drop.TapnetIncomplete);
        continue;
      }
      const target = this.rx[peer];
      target.set(buf.subarray(at + TAPNET_HEADER_LEN, at + dlen), offset);
      this.rxGot[peer] = offset + clen;
      if (offset + clen === flen) {
        this.rxGot[peer] = -1;
        frame(target, flen);
      }
    }
    return count;
  }

  /**
   * How many datagrams, from the one at `at` (offset 0 of frame `id`), hold the whole frame,
   * all present before `end`, each fitting the frame where the last left off; 0 if not all do.
   */
  private wholeFrame(buf: Uint8Array, at: number, end: number, D: number, id: number, flen: number): number {
    let got = 0;
    for (let n = 1, q = at; q < end && n <= MAX_SEGMENTS; n++, q += D) {
      const dlen = Math.min(D, end - q);
      if (n > 1 && (checkTapnetHeader(buf, q, dlen) !== Drop.None || get16(buf, q + TAPNET_FRAME_ID) !== id ||
        get32(buf, q + TAPNET_FRAME_LEN) !== flen || get32(buf, q + TAPNET_OFFSET) !== got)) return 0;
      got += dlen - TAPNET_HEADER_LEN;
      if (got === flen) return n;
    }
    return 0;
  }

  /** Copies the first bytes of the frame in `n` datagrams at `at` to `head`; `tail` lists the rest. */
  private frameInPlace(buf: Uint8Array, at: number, end: number, D: number, n: number): void {
    const head = this.head;
    const tail = this.tail;
    const first = at + TAPNET_HEADER_LEN;
    const firstLen = Math.min(D, end - at) - TAPNET_HEADER_LEN;
    const h = Math.min(HEAD_BYTES, firstLen);
    for (let i = 0; i < h; i++) head[i] = buf[first + i]; // a loop: at most HEAD_BYTES, and no view made
    tail.buf = buf;
    tail.headLen = h;
    tail.count = 0;
    if (firstLen > h) {
      tail.offs[0] = first + h;
      tail.lens[0] = firstLen - h;
      tail.count = 1;
    }
    for (let k = 1, q = at + D; k < n; k++, q += D) {
      tail.offs[tail.count] = q + TAPNET_HEADER_LEN;
      tail.lens[tail.count] = Math.min(D, end - q) - TAPNET_HEADER_LEN;
      tail.count++;
    }
  }

  /** Copies the tail of the frame being delivered after its head, for a reader of the whole frame. */
  linearize(): void {
    const t = this.tail;
    let o = t.headLen;
    for (let k = 0; k < t.count; k++) {
      this.head.set(t.buf.subarray(t.offs[k], t.offs[k] + t.lens[k]), o);
      o += t.lens[k];
    }
    t.headLen = o;
    t.count = 0;
  }
}

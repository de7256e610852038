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
 *
 * Sealed (the cluster has a secret: ctx.seal): each datagram is sealed as it is gathered
 * (seal.ts, format in wire/sealed.ts), its header and chunk encrypted into the Sealer's buffer
 * with the tag after them, and that one piece gathered instead; chunks are 32 bytes shorter. A
 * read is opened whole, in place, before anything in it is looked at: a datagram that does not
 * open is dropped (counted, its reason the Sealer's) and the rest is taken as above, each
 * datagram's version-1 header SEALED_HEADER_LEN bytes in, its tag skipped.
 */
import { Drop } from "../wire/drop.ts";
import { TunnelDrop } from "./drops.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { checkTapnetHeader, TAPNET_FRAME_ID, TAPNET_FRAME_LEN, TAPNET_HEADER_LEN, TAPNET_MAX_FRAME, TAPNET_OFFSET, writeTapnetHeader } from "../wire/tapnet.ts";
import { copyBytes, get16, get32 } from "../wire/bytes.ts";
import type { BackendInfo } from "./index.ts";
import { HEAD_ROOM, MAX_SEGMENTS_PER_SEND, MAX_UDP_PAYLOAD, type BackendContext, type FrameSink, type TunnelBackend } from "./contract.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import { DatagramRun } from "./run.ts";
import { Sealer } from "./seal.ts";
import { SEALED_HEADER_LEN, SEALED_OVERHEAD, SEALED_TAG_LEN } from "../wire/sealed.ts";

const MAX_SEGMENTS = MAX_SEGMENTS_PER_SEND;

/** How many datagrams of `datagramSize` bytes one send carries. */
function datagramsPerSend(datagramSize: number): number {
  return Math.min(MAX_SEGMENTS, Math.floor(MAX_UDP_PAYLOAD / datagramSize));
}

/**
 * The largest TSO super-frame (the gso_max_size to give a pod's interface) whose datagrams
 * fit one UDP_SEGMENT send, sealed or not: a 64 KB frame needs 46 sealed datagrams of 1472
 * bytes, two more than a send can carry, so capping the frames a little halves the sends per frame.
 */
export function tapnetGsoMaxSize(datagramSize: number): number {
  const chunk = datagramSize - TAPNET_HEADER_LEN - SEALED_OVERHEAD;
  const frame = datagramsPerSend(datagramSize) * chunk - ETH_OFF - ETH_HEADER_LEN;
  return Math.max(1000, Math.floor(frame / 1000) * 1000);
}

export class TapnetBackend implements TunnelBackend {
  readonly name = "tapnet";
  readonly recvOff = 0;
  readonly wholeFrames = true;
  readonly mergeReceived = false;
  readonly chunkSize: number;
  readonly datagramSize: number;
  /** Headers of the datagrams gathered and not yet sent (never more than one send's worth). */
  private readonly headers = new Uint8Array(MAX_SEGMENTS * TAPNET_HEADER_LEN);
  private readonly perSend: number;
  private readonly run: DatagramRun;
  private frameId = 0;
  private readonly rx: Uint8Array[];
  private readonly rxId: Int32Array;
  private readonly rxLen: Int32Array;
  /** Bytes of the frame in progress received so far; -1 when none is. */
  private readonly rxGot: Int32Array;
  /** A frame put together in rx[peer] was handed on and may not be delivered yet. */
  private readonly rxLent: Uint8Array;
  /** Sealing, when the cluster has a secret; then each datagram's header starts `pre` bytes in and `post` bytes of tag end it. */
  readonly sealer?: Sealer;
  private readonly pre: number;
  private readonly post: number;
  /** Bytes of a datagram besides its chunk. */
  private readonly overhead: number;
  /** Which datagrams of the read being taken opened (sealed only); grows to the most a read has held. */
  private opened = new Uint8Array(64);
  private readonly events: BackendContext["events"];

  constructor(ctx: BackendContext) {
    const datagramSize = ctx.datagramSize;
    this.sealer = ctx.seal ? new Sealer(ctx.seal, ctx.self, ctx.nodes) : undefined;
    this.pre = this.sealer ? SEALED_HEADER_LEN : 0;
    this.post = this.sealer ? SEALED_TAG_LEN : 0;
    this.overhead = TAPNET_HEADER_LEN + this.pre + this.post;
    if (datagramSize <= this.overhead + 64) throw new RangeError("tunnel datagrams too small for the tapnet backend");
    this.datagramSize = datagramSize;
    this.events = ctx.events;
    this.chunkSize = datagramSize - this.overhead;
    this.perSend = datagramsPerSend(datagramSize);
    this.run = new DatagramRun(ctx.out, ctx.segmenting, ctx.events);
    const peers = ctx.nodes;
    this.rx = Array.from({ length: peers }, () => new Uint8Array(0));
    this.rxId = new Int32Array(peers);
    this.rxLen = new Int32Array(peers);
    this.rxGot = new Int32Array(peers).fill(-1);
    this.rxLent = new Uint8Array(peers);
  }

  /**
   * Sends the frame buf[off..off+len) to node `peer`. A frame of one datagram may wait in the run being
   * gathered until `flush()`: `buf` must stay as it is until then. Returns the frame's
   * datagrams, or -1 if it cannot be sent (too large); a failed send is reported through the
   * events, with the frames it lost.
   */
  send(buf: Uint8Array, off: number, len: number, peer: number): number {
    if (len > TAPNET_MAX_FRAME || len <= 0) return -1;
    const C = this.chunkSize;
    const n = Math.ceil(len / C);
    const id = (this.frameId = (this.frameId + 1) & 0xffff);
    const run = this.run;
    this.sealer?.prepare(peer, n);
    if (n === 1) {
      run.open(peer, this.overhead + len);
      this.gather(peer, id, len, 0, buf, off, len);
      return 1;
    }
    run.flush();
    const step = run.segmenting ? this.perSend : 1;
    for (let i = 0; i < n; i += step) {
      const last = Math.min(n, i + step);
      for (let k = i; k < last; k++) {
        const at = k * C;
        const clen = Math.min(C, len - at);
        run.open(peer, this.overhead + clen);
        // Without UDP_SEGMENT each datagram goes now: the rest of a frame whose datagram failed
        // would only be dropped by the receiver, and the frame is lost once.
        if (!this.gather(peer, id, len, at, buf, off + at, clen)) return n;
      }
      // Later runs of a frame whose first run failed would only be dropped by the receiver.
      if (!run.flush(1)) return n;
    }
    return n;
  }

  /**
   * Adds the datagram for the frame's bytes [at, at+clen), which lie at buf[from..], to the run,
   * its header in `headers` (sealed: the two sealed into the Sealer's buffer, one piece); false
   * if it was sent at once and that failed, or could not be sealed.
   */
  private gather(peer: number, id: number, len: number, at: number, buf: Uint8Array, from: number, clen: number): boolean {
    const run = this.run;
    const h = run.count * TAPNET_HEADER_LEN;
    writeTapnetHeader(this.headers, h, id, len, at);
    const s = this.sealer;
    if (s) {
      if (run.count === 0) s.pos = 0; // nothing gathered lies in its buffer any more
      const o = s.seal(peer, this.headers, h, TAPNET_HEADER_LEN, buf, from, clen);
      if (o < 0) {
        this.events.failed(1); // the cipher failed: never seen, but not a datagram to send
        return false;
      }
      run.out.add(s.out, o, this.overhead + clen);
    } else {
      run.out.add(this.headers, h, TAPNET_HEADER_LEN);
      run.out.add(buf, from, clen);
    }
    return run.close(this.overhead + clen);
  }

  sendSegment(): void {
    throw new Error("the tapnet backend takes whole frames");
  }

  flush(): void {
    this.run.flush();
  }

  /**
   * Takes `len` bytes read from the socket at buf[off..] from node `peer`: one datagram, or with
   * GRO a run of datagrams of `stride` bytes each (the last maybe shorter), as the kernel said.
   * Hands each frame completed to `sink`, and a drop for each datagram refused; returns how
   * many datagrams there were.
   *
   * A frame whose datagrams all came in this read (the usual case: GRO ends a run at a frame's
   * short last datagram) is not copied: its first bytes are, into a head the sink lends (up to
   * HEAD_ROOM, room for every header the switch reads), and the tail lists where the rest lies
   * in `buf`. Any other frame is put together in a reassembly buffer of its sender's, whole.
   */
  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number {
    if (len === 0) {
      sink.drop(Drop.TapnetTruncated);
      return 1;
    }
    const D = stride > 0 ? stride : len;
    const count = Math.ceil(len / D);
    const sealed = this.sealer !== undefined;
    if (sealed) this.openAll(buf, off, len, D, count, peer, sink);
    const pre = this.pre;
    const cut = pre + this.post;
    for (let k = 0; k < count; k++) {
      if (sealed && this.opened[k] === 0) continue; // dropped when it was opened
      const at = off + k * D + pre;
      const dlen = Math.min(D, len - k * D) - cut;
      const r = checkTapnetHeader(buf, at, dlen);
      if (r !== Drop.None) {
        sink.drop(r);
        continue;
      }
      const id = get16(buf, at + TAPNET_FRAME_ID);
      const flen = get32(buf, at + TAPNET_FRAME_LEN);
      const offset = get32(buf, at + TAPNET_OFFSET);
      const clen = dlen - TAPNET_HEADER_LEN;
      if (offset === 0) {
        if (this.rxGot[peer] >= 0) sink.drop(TunnelDrop.TapnetIncomplete); // the frame before never finished
        this.rxGot[peer] = -1;
        // Whole in this read, and its first chunk holds the head's worth (a peer's tiny
        // datagrams would leave headers in later chunks): handed on where it lies.
        const n = this.wholeFrame(buf, off, len, D, count, k, id, flen);
        if (n > 0 && (n === 1 || clen >= HEAD_ROOM)) {
          if (this.isIpv4(buf, at + TAPNET_HEADER_LEN, clen, sink)) this.frameInPlace(buf, off, len, D, k, n, flen, sink);
          k += n - 1;
          continue;
        }
        if (this.rxLent[peer]) {
          sink.commit(); // the frame put together before this one is in rx[peer]
          this.rxLent[peer] = 0;
        }
        this.rxId[peer] = id;
        this.rxLen[peer] = flen;
        this.rxGot[peer] = 0;
        if (this.rx[peer].length === 0) this.rx[peer] = new Uint8Array(TAPNET_MAX_FRAME);
      } else if (this.rxGot[peer] !== offset || this.rxId[peer] !== id || this.rxLen[peer] !== flen) {
        this.rxGot[peer] = -1; // a gap: this datagram, and the frame it belonged to, are lost
        sink.drop(TunnelDrop.TapnetIncomplete);
        continue;
      }
      const target = this.rx[peer];
      copyBytes(target, offset, buf, at + TAPNET_HEADER_LEN, clen);
      this.rxGot[peer] = offset + clen;
      if (offset + clen === flen) {
        this.rxGot[peer] = -1;
        if (this.isIpv4(target, 0, flen, sink)) {
          this.rxLent[peer] = 1;
          sink.frame(target, 0, flen);
        }
      }
    }
    return count;
  }

  /** Opens each of the read's `count` datagrams in place; `opened[k]` says which did, the rest are dropped. */
  private openAll(buf: Uint8Array, off: number, len: number, D: number, count: number, peer: number, sink: FrameSink): void {
    if (this.opened.length < count) this.opened = new Uint8Array(count); // once, for the largest read
    const s = this.sealer!;
    for (let k = 0; k < count; k++) {
      const r = s.open(buf, off + k * D, Math.min(D, len - k * D), peer);
      this.opened[k] = r === Drop.None ? 1 : 0;
      if (r !== Drop.None) sink.drop(r);
    }
  }

  /**
   * After a change of the node list: each peer that stays keeps its frame in progress (and its
   * reassembly buffer), and frame ids go on from where they were.
   */
  adopt(previous: TunnelBackend, peerOf: Int32Array): void {
    if (!(previous instanceof TapnetBackend)) return;
    this.frameId = previous.frameId;
    if (this.sealer && previous.sealer) this.sealer.adopt(previous.sealer, peerOf);
    for (let old = 0; old < peerOf.length && old < previous.rx.length; old++) {
      const now = peerOf[old];
      if (now < 0 || now >= this.rx.length) continue;
      this.rx[now] = previous.rx[old];
      this.rxId[now] = previous.rxId[old];
      this.rxLen[now] = previous.rxLen[old];
      this.rxGot[now] = previous.rxGot[old];
      // A frame handed on was delivered when its receive returned: nothing is lent across rounds.
      this.rxLent[now] = 0;
    }
  }

  /** Is the frame whose first `len` bytes are at buf[f..] an IPv4 one? Drops it if not. */
  private isIpv4(buf: Uint8Array, f: number, len: number, sink: FrameSink): boolean {
    if (len >= ETH_OFF + ETH_HEADER_LEN && buf[f + ETH_OFF + ETH_TYPE] === ETHERTYPE_IPV4 >> 8 && buf[f + ETH_OFF + ETH_TYPE + 1] === (ETHERTYPE_IPV4 & 0xff)) return true;
    sink.drop(TunnelDrop.TunnelNotIpv4);
    return false;
  }

  /**
   * How many datagrams, from the k-th (offset 0 of frame `id`), hold the whole frame, all in
   * this read (opened, if sealed), each fitting the frame where the last left off; 0 if not all do.
   */
  private wholeFrame(buf: Uint8Array, off: number, len: number, D: number, count: number, k0: number, id: number, flen: number): number {
    const sealed = this.sealer !== undefined;
    const cut = this.pre + this.post;
    let got = 0;
    for (let n = 1, k = k0; k < count && n <= MAX_SEGMENTS; n++, k++) {
      if (sealed && this.opened[k] === 0) return 0;
      const q = off + k * D + this.pre;
      const dlen = Math.min(D, len - k * D) - cut;
      if (n > 1 && (checkTapnetHeader(buf, q, dlen) !== Drop.None || get16(buf, q + TAPNET_FRAME_ID) !== id ||
        get32(buf, q + TAPNET_FRAME_LEN) !== flen || get32(buf, q + TAPNET_OFFSET) !== got)) return 0;
      got += dlen - TAPNET_HEADER_LEN;
      if (got === flen) return n;
    }
    return 0;
  }

  /** Hands on the frame in the `n` datagrams from the k0-th: its first bytes copied to a lent head, the rest where it lies. */
  private frameInPlace(buf: Uint8Array, off: number, len: number, D: number, k0: number, n: number, flen: number, sink: FrameSink): void {
    const skip = this.pre + TAPNET_HEADER_LEN;
    const cut = this.pre + this.post + TAPNET_HEADER_LEN;
    const first = off + k0 * D + skip;
    const firstLen = Math.min(D, len - k0 * D) - cut;
    if (n === 1) {
      sink.frame(buf, first, flen); // one datagram: the frame is contiguous where it lies
      return;
    }
    const { head, tail } = sink.lend();
    const h = Math.min(HEAD_ROOM, firstLen);
    for (let i = 0; i < h; i++) head[i] = buf[first + i]; // a loop: at most HEAD_ROOM, and no view made
    tail.buf = buf;
    tail.headLen = h;
    tail.count = 0;
    if (firstLen > h) {
      tail.offs[0] = first + h;
      tail.lens[0] = firstLen - h;
      tail.count = 1;
    }
    for (let k = k0 + 1; k < k0 + n; k++) {
      tail.offs[tail.count] = off + k * D + skip;
      tail.lens[tail.count] = Math.min(D, len - k * D) - cut;
      tail.count++;
    }
    sink.frame(head, 0, flen, tail);
  }
}

export const tapnetBackend: BackendInfo = {
  name: "tapnet",
  port: 8287,
  // Whole offloaded frames, in chunks behind a 12-byte header (wire/tapnet.ts): any frame fits,
  // so pods keep the underlay's MTU. Tapnet nodes only.
  overhead: 0,
  vni: false,
  about: "whole offloaded frames between tapnet nodes (tapnet's own format, version 1; sealed, version 2, with backend.secret)",
  seals: true,
  superFrameCap: tapnetGsoMaxSize,
  create: (ctx) => new TapnetBackend(ctx),
};

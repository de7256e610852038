/**
 * The `tapnet` backend: whole offloaded frames between tapnet nodes (format in wire/tapnet.ts).
 *
 * Sending: the frame (virtio_net_hdr + Ethernet, up to 64 KB) is laid out in one buffer as
 * chunks, each behind its header, every one but the last exactly `datagramSize` long; with
 * UDP_SEGMENT on the socket one sendto sends up to 64 KB of them, and the kernel cuts it into
 * datagrams. Without it, one sendto per datagram. Receiving: with UDP_GRO, one read returns a
 * run of equal-sized datagrams, split again here at the same stride; each chunk is copied into
 * the sender's reassembly buffer, and a frame whose chunks all came, in order, is handed on.
 * Datagrams of one sender arrive in order on one path; a gap drops the frame (counted), and TCP
 * sends it again.
 */
import { Drop, type DropReason } from "../wire/drop.ts";
import { checkTapnetHeader, TAPNET_FRAME_ID, TAPNET_FRAME_LEN, TAPNET_HEADER_LEN, TAPNET_MAX_FRAME, TAPNET_OFFSET, writeTapnetHeader } from "../wire/tapnet.ts";
import { get16, get32 } from "../wire/bytes.ts";

/** The most UDP payload one send may carry, segmented or not. */
const MAX_UDP_PAYLOAD = 65507;
/** The most datagrams one UDP_SEGMENT send may make (UDP_MAX_SEGMENTS: 64 in Linux 4.18, 128 later). */
const MAX_SEGMENTS = 64;

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

export class TapnetBackend {
  readonly type = "tapnet" as const;
  readonly recvOff = 0;
  readonly chunkSize: number;
  /** Set when the socket segments for us (UDP_SEGMENT). */
  gso = false;
  private readonly sendBuf: Uint8Array;
  private readonly perSend: number;
  private frameId = 0;
  private readonly rx: Uint8Array[];
  private readonly rxId: Int32Array;
  private readonly rxLen: Int32Array;
  /** Bytes of the frame in progress received so far; -1 when none is. */
  private readonly rxGot: Int32Array;

  constructor(readonly datagramSize: number, peers: number) {
    if (datagramSize <= TAPNET_HEADER_LEN + 64) throw new RangeError("tunnel datagrams too small for the tapnet backend");
    this.chunkSize = datagramSize - TAPNET_HEADER_LEN;
    const datagrams = Math.ceil(TAPNET_MAX_FRAME / this.chunkSize);
    this.sendBuf = new Uint8Array(datagrams * datagramSize);
    this.perSend = datagramsPerSend(datagramSize);
    this.rx = Array.from({ length: peers }, () => new Uint8Array(0));
    this.rxId = new Int32Array(peers);
    this.rxLen = new Int32Array(peers);
    this.rxGot = new Int32Array(peers).fill(-1);
  }

  /**
   * Sends frame buf[0..len) through `send(buffer, offset, length)`; returns the datagrams sent,
   * or -1 if a send failed.
   */
  send(buf: Uint8Array, len: number, send: (b: Uint8Array, off: number, len: number) => boolean): number {
    if (len > TAPNET_MAX_FRAME) return -1;
    const D = this.datagramSize;
    const C = this.chunkSize;
    const out = this.sendBuf;
    const id = (this.frameId = (this.frameId + 1) & 0xffff);
    const n = Math.ceil(len / C);
    for (let i = 0; i < n; i++) {
      const off = i * C;
      const clen = Math.min(C, len - off);
      writeTapnetHeader(out, i * D, id, len, off);
      out.set(buf.subarray(off, off + clen), i * D + TAPNET_HEADER_LEN);
    }
    const end = (n - 1) * D + TAPNET_HEADER_LEN + (len - (n - 1) * C);
    const step = this.gso ? this.perSend : 1;
    for (let i = 0; i < n; i += step) {
      const from = i * D;
      const to = Math.min(end, (i + step) * D);
      if (!send(out, from, to - from)) return -1;
    }
    return n;
  }

  /**
   * Takes `len` bytes read from the socket at buf[off..] from node `peer`: one datagram, or with
   * GRO a run of datagrams of `stride` bytes each (the last maybe shorter), as the kernel said.
   * Calls `frame(buffer, length)` for each frame completed and `drop(reason)` for each datagram
   * refused; returns how many datagrams there were.
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
}

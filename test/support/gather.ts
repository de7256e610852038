// A GatherSink for tests: what the kernel would make of each send, as datagrams.
import type { FrameTail, GatherSink } from "../../src/tunnel/contract.ts";

export interface SentDatagram {
  peer: number;
  bytes: Uint8Array;
  /** Which send call carried it (0, 1, ...). */
  send: number;
}

export class CollectingSink implements GatherSink {
  readonly datagrams: SentDatagram[] = [];
  /** Each send's total bytes and segment size, in order. */
  readonly sends: { peer: number; bytes: number; segment: number }[] = [];
  // Views, not copies, as the real sender's iovecs are: bytes changed before send() go out changed.
  private pieces: Uint8Array[] = [];
  /** When set, sends fail (as a full socket buffer would). */
  failing = false;

  add(buf: Uint8Array, off: number, len: number): void {
    this.pieces.push(buf.subarray(off, off + len));
  }

  send(peer: number, segment: number): boolean {
    const total = this.pieces.reduce((n, p) => n + p.length, 0);
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of this.pieces) { all.set(p, o); o += p.length; }
    this.pieces = [];
    if (this.failing) return false;
    const n = this.sends.length;
    this.sends.push({ peer, bytes: total, segment });
    for (let p = 0; p < total; p += segment) this.datagrams.push({ peer, bytes: all.slice(p, Math.min(total, p + segment)), send: n });
    return true;
  }
}

/** The bytes of a frame as a writer sends them: buf[0..len), or its head and then its tail's pieces. */
export function frameBytes(buf: Uint8Array, len: number, tail?: FrameTail | null): Uint8Array {
  if (!tail || tail.count === 0) return buf.slice(0, len);
  const out = new Uint8Array(len);
  let o = Math.min(len, tail.headLen);
  out.set(buf.subarray(0, o));
  for (let k = 0; k < tail.count && o < len; k++) {
    const n = Math.min(tail.lens[k], len - o);
    out.set(tail.buf.subarray(tail.offs[k], tail.offs[k] + n), o);
    o += n;
  }
  if (o !== len) throw new Error(`the frame's pieces hold ${o} bytes, not ${len}`);
  return out;
}

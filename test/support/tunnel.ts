// What the backend tests share: a BackendContext whose datagrams go to a CollectingSink and
// whose events are counted, and a FrameSink that keeps what a backend's `receive` hands it,
// checking as it delivers that no frame's bytes changed between hand-over and delivery.
import { newTail } from "../../src/switch/frames.ts";
import { HEAD_ROOM, type BackendContext, type FrameSink, type FrameTail, type TunnelEvents } from "../../src/tunnel/contract.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { type DropReason } from "../../src/wire/drop.ts";
import { CollectingSink, frameBytes } from "./gather.ts";

/** What the backend reported through its events: datagrams and bytes sent, frames lost. */
export interface EventCounts {
  sent: number;
  bytes: number;
  failed: number;
}

export interface TestContext {
  ctx: BackendContext;
  out: CollectingSink;
  events: EventCounts;
}

/**
 * A context for a backend of node `self` of `vtepHi.length` nodes (3 unless said), datagrams of
 * 1,472 bytes, VNI 1, no UDP_SEGMENT unless `segmenting`.
 */
export function testContext(o: Partial<Omit<BackendContext, "out" | "events">> = {}): TestContext {
  const out = new CollectingSink();
  const events: EventCounts = { sent: 0, bytes: 0, failed: 0 };
  const counting: TunnelEvents = {
    sent: (datagrams, bytes) => { events.sent += datagrams; events.bytes += bytes; },
    failed: (frames) => { events.failed += frames; },
  };
  const vtepHi = o.vtepHi ?? Uint16Array.of(0x0e00, 0x0e00, 0x0e00);
  const vtepLo = o.vtepLo ?? Uint32Array.of(0xc0a8380b, 0xc0a8380c, 0xc0a8380d);
  const ctx: BackendContext = {
    datagramSize: 1472, self: 0, nodes: vtepHi.length, vni: 1, segmenting: false, ...o, vtepHi, vtepLo, out, events: counting,
  };
  return { ctx, out, events };
}

/** A frame a backend handed over. */
export interface HandedFrame {
  /** Its bytes, as a writer sends them (head, then the tail's pieces), copied when it was handed over. */
  bytes: Uint8Array;
  buf: Uint8Array;
  off: number;
  len: number;
  /** Its first bytes are in a head this sink lent (not where the datagram lies). */
  lent: boolean;
  /** The tail it came with: where the rest lies, as [offset, length] pieces; null for a contiguous frame. */
  tail: { buf: Uint8Array; headLen: number; pieces: [number, number][] } | null;
}

/**
 * A FrameSink that lends a fresh head for each frame and keeps what it is handed: `frames` (in
 * order), `drops` (by counter name) and `log` (every call, in order). `commit` delivers the frames
 * handed over since the last one, and throws if any frame's bytes changed in the meantime: a
 * backend reused memory a frame lay in before saying so. Call `commit()` after `receive` returns,
 * as the switch does.
 */
export class FrameCollector implements FrameSink {
  readonly frames: HandedFrame[] = [];
  readonly drops: string[] = [];
  readonly log: string[] = [];
  commits = 0;
  private pending: HandedFrame[] = [];
  private lent: { head: Uint8Array; tail: FrameTail } | null = null;

  lend(): { head: Uint8Array; tail: FrameTail } {
    this.log.push("lend");
    this.lent = { head: new Uint8Array(HEAD_ROOM).fill(0xcc), tail: newTail() };
    this.lent.tail.count = 0;
    return this.lent;
  }

  frame(buf: Uint8Array, off: number, len: number, tail?: FrameTail): void {
    this.log.push("frame");
    const lent = this.lent !== null && buf === this.lent.head;
    if (tail && (!this.lent || tail !== this.lent.tail)) throw new Error("a tail that was not lent with the last head");
    const t = tail && tail.count > 0 ? tail : null;
    const f: HandedFrame = {
      bytes: frameBytes(buf.subarray(off), len, t), buf, off, len, lent,
      tail: t ? { buf: t.buf, headLen: t.headLen, pieces: Array.from({ length: t.count }, (_, k) => [t.offs[k], t.lens[k]]) } : null,
    };
    this.lent = null;
    this.frames.push(f);
    this.pending.push(f);
  }

  drop(reason: DropReason): void {
    this.log.push(`drop ${DROP_NAMES[reason]}`);
    this.drops.push(DROP_NAMES[reason]);
  }

  commit(): void {
    this.log.push("commit");
    this.commits++;
    for (const f of this.pending) {
      const now = frameBytes(f.buf.subarray(f.off), f.len, f.tail ? this.tailOf(f) : null);
      if (!Buffer.from(now).equals(f.bytes)) throw new Error(`frame ${this.frames.indexOf(f)} changed before it was delivered`);
    }
    this.pending = [];
  }

  /** The frames' bytes, in order. */
  get bytes(): Uint8Array[] {
    return this.frames.map((f) => f.bytes);
  }

  private tailOf(f: HandedFrame): FrameTail {
    const t = f.tail!;
    return { buf: t.buf, headLen: t.headLen, offs: Int32Array.from(t.pieces, (p) => p[0]), lens: Int32Array.from(t.pieces, (p) => p[1]), count: t.pieces.length };
  }
}

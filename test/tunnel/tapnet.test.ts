// The tapnet backend: whole frames cut into datagrams and put together again.
import { describe, expect, it } from "vitest";
import { TapnetBackend, tapnetGsoMaxSize } from "../../src/tunnel/tapnet.ts";
import { get32 } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/wire/drop.ts";
import { checkTapnetHeader } from "../../src/wire/tapnet.ts";
import { CollectingSink, frameBytes } from "../support/gather.ts";
import { prng } from "../support/random.ts";

const D = 1472;

function frameOf(len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (i * 31 + seed) & 0xff;
  return f;
}

function sender(gso = false) {
  const sink = new CollectingSink();
  const events = { sent: 0, bytes: 0, failed: 0 };
  const b = new TapnetBackend(D, 3, sink, {
    sent: (n, bytes) => { events.sent += n; events.bytes += bytes; },
    failed: (n) => { events.failed += n; },
  });
  b.gso = gso;
  return { b, sink, events };
}

/** Sends frame `f` to peer 1 and flushes; returns the datagrams made. */
function sendAll(tx: { b: TapnetBackend; sink: CollectingSink }, f: Uint8Array): Uint8Array[] {
  const before = tx.sink.datagrams.length;
  expect(tx.b.send(f, f.length, 1)).toBe(Math.ceil(f.length / (D - 12)));
  tx.b.flush();
  return tx.sink.datagrams.slice(before).map((d) => d.bytes);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  return all;
}

/** All of frame `f`'s datagrams (sent with GSO) as one GRO read would return them. */
function oneRead(f: Uint8Array): Uint8Array {
  const tx = sender(true);
  sendAll(tx, f);
  return concat(tx.sink.datagrams.map((d) => d.bytes));
}

function receiver() {
  const b = new TapnetBackend(D, 3);
  const frames: Uint8Array[] = [];
  const drops: string[] = [];
  let inPlace = 0;
  const onFrame = (f: Uint8Array, len: number) => {
    if (b.tail.count) inPlace++;
    frames.push(frameBytes(f, len, b.tail));
  };
  const feed = (buf: Uint8Array, peer = 1, stride = Math.min(buf.length, D) || 1) => b.receive(buf, 0, buf.length, stride, peer, onFrame, (r) => drops.push(DROP_NAMES[r]));
  return { b, frames, drops, feed, inPlace: () => inPlace };
}

describe("tapnet backend", () => {
  it("without GSO, sends one datagram per call, each the datagram size but the last", () => {
    const f = frameOf(65000, 1);
    const tx = sender();
    const calls = sendAll(tx, f);
    expect(calls.length).toBe(Math.ceil(65000 / 1460));
    expect(tx.sink.sends.length).toBe(calls.length);
    expect(calls.slice(0, -1).every((c) => c.length === D)).toBe(true);
    expect(calls.at(-1)!.length).toBe(12 + (65000 - (calls.length - 1) * 1460));
    expect(calls.map((c) => get32(c, 8))).toEqual(calls.map((_, i) => i * 1460));
    expect(tx.events).toEqual({ sent: calls.length, bytes: calls.reduce((n, c) => n + c.length, 0), failed: 0 });
  });

  it("with GSO, sends runs of whole datagrams of at most 65507 bytes", () => {
    const tx = sender(true);
    sendAll(tx, frameOf(65000, 2));
    expect(tx.sink.sends.map((c) => c.bytes)).toEqual([44 * D, 12 + 65000 - 44 * 1460]);
    expect(tx.sink.sends.every((c) => c.segment === D && c.bytes <= 65507)).toBe(true);
  });

  it("gathers small frames to one peer into one send, as long as every datagram but the last has the run's size", () => {
    const tx = sender(true);
    const f = [frameOf(100, 1), frameOf(100, 2), frameOf(100, 3), frameOf(60, 4), frameOf(100, 5), frameOf(100, 6), frameOf(100, 7)];
    const peers = [1, 1, 1, 1, 1, 2, 1];
    // waiting frames must not be copied: the sink reads them at send time, so keep them
    f.forEach((x, i) => expect(tx.b.send(x, x.length, peers[i])).toBe(1));
    expect(tx.sink.sends.length).toBe(3); // the 60-byte frame closed the first run; peer 2 ended the second
    tx.b.flush();
    expect(tx.sink.sends).toEqual([
      { peer: 1, bytes: 3 * 112 + 72, segment: 112 },
      { peer: 1, bytes: 112, segment: 112 },
      { peer: 2, bytes: 112, segment: 112 },
      { peer: 1, bytes: 112, segment: 112 },
    ]);
    const r = receiver();
    for (const d of tx.sink.datagrams) r.feed(d.bytes, d.peer);
    expect(r.frames).toEqual(f);
    expect(tx.events).toEqual({ sent: 7, bytes: 7 * 12 + 6 * 100 + 60, failed: 0 });
  });

  it("ends a run of small frames at 64 datagrams, and before a large frame to keep the order", () => {
    const tx = sender(true);
    const small = Array.from({ length: 70 }, (_, i) => frameOf(200, i));
    for (const x of small) tx.b.send(x, x.length, 1);
    const big = frameOf(5000, 99);
    tx.b.send(big, big.length, 1);
    tx.b.flush();
    expect(tx.sink.sends.map((s) => s.bytes)).toEqual([64 * 212, 6 * 212, 3 * D + 12 + 5000 - 3 * 1460]);
    const r = receiver();
    for (const d of tx.sink.datagrams) r.feed(d.bytes, d.peer);
    expect(r.frames).toEqual([...small, big]);
  });

  it("counts the frames a failed send loses", () => {
    const tx = sender(true);
    tx.sink.failing = true;
    for (let i = 0; i < 5; i++) tx.b.send(frameOf(300, i), 300, 1);
    tx.b.send(frameOf(9000, 9), 9000, 1); // flushes the 5, then fails as one frame
    tx.b.flush();
    expect(tx.events).toEqual({ sent: 0, bytes: 0, failed: 6 });
    expect(tx.b.send(frameOf(70000, 1), 70000, 1)).toBe(-1);
  });

  it("puts a frame together from single datagrams and from GRO runs alike", () => {
    const f = frameOf(40000, 3);
    const single = sendAll(sender(), f);
    const a = receiver();
    for (const d of single) a.feed(d);
    expect(a.frames).toEqual([f]);
    const tx = sender(true);
    sendAll(tx, f);
    const runs = tx.sink.sends.map((_, n) => concat(tx.sink.datagrams.filter((d) => d.send === n).map((d) => d.bytes)));
    const b = receiver();
    // GRO may return any split into whole datagrams: here 5 and the rest
    const all = new Uint8Array(runs.reduce((n, r) => n + r.length, 0));
    let o = 0;
    for (const r of runs) { all.set(r, o); o += r.length; }
    b.feed(all.subarray(0, 5 * D));
    b.feed(all.subarray(5 * D));
    expect(b.frames).toEqual([f]);
    expect(b.drops).toEqual([]);
  });

  it("takes a frame that came whole in one read in place: headers copied to the head, the rest left where it lies", () => {
    const f = frameOf(64000, 8);
    const read = oneRead(f);
    const r = receiver();
    let tailBuf: Uint8Array | undefined;
    r.b.receive(read, 0, read.length, D, 1, (h, len) => {
      tailBuf = r.b.tail.buf;
      expect(h).toBe(r.b.head);
      expect(r.b.tail.headLen).toBe(256);
      expect(frameBytes(h, len, r.b.tail)).toEqual(f);
    }, () => expect.unreachable());
    expect(tailBuf).toBe(read);
    // small frames, several to a read (a run of one UDP_SEGMENT send): each in place
    const small = [frameOf(100, 1), frameOf(100, 2), frameOf(70, 3)];
    const tx2 = sender(true);
    small.forEach((x) => tx2.b.send(x, x.length, 1));
    tx2.b.flush();
    const read2 = concat(tx2.sink.datagrams.map((d) => d.bytes));
    const r2 = receiver();
    expect(r2.feed(read2, 1, 112)).toBe(3);
    expect(r2.frames).toEqual(small);
    expect(r2.inPlace()).toBe(0); // under 256 bytes: all head, no tail
  });

  it("linearize() puts the tail after the head, for a reader of the whole frame", () => {
    const f = frameOf(3000, 9);
    const read = oneRead(f);
    const r = receiver();
    r.b.receive(read, 0, read.length, D, 1, (h, len) => {
      r.b.linearize();
      expect(r.b.tail.count).toBe(0);
      expect(h.slice(0, len)).toEqual(f);
    }, () => expect.unreachable());
  });

  it("delivers, against a naive model, exactly the frames whose datagrams all came, however the reads split them", () => {
    const rnd = prng(4242);
    const same = (a: Uint8Array[], b: Uint8Array[]) => a.length === b.length && a.every((x, i) => Buffer.from(x).equals(b[i]));
    for (let trial = 0; trial < 16; trial++) {
      const tx = sender(true);
      const frames = Array.from({ length: 30 }, (_, i) => frameOf(1 + Math.floor(rnd() ** 3 * 64000), i + trial));
      for (const x of frames) {
        tx.b.send(x, x.length, 1);
        if (rnd() < 0.3) tx.b.flush();
      }
      tx.b.flush();
      // the model: a frame's datagrams go out consecutively; it arrives iff all of them do
      const owner = frames.flatMap((x, i) => Array<number>(Math.ceil(x.length / 1460)).fill(i));
      expect(owner.length).toBe(tx.sink.datagrams.length);
      const lossy = trial % 2 === 1;
      const kept = tx.sink.datagrams.map((d, i) => ({ bytes: d.bytes, frame: owner[i] })).filter(() => !lossy || rnd() > 0.05);
      const arrived = new Array<number>(frames.length).fill(0);
      for (const d of kept) arrived[d.frame]++;
      const expected = frames.filter((x, i) => arrived[i] === Math.ceil(x.length / 1460));
      // reads as GRO makes them: equal-sized datagrams, a shorter one ends the read; cut short at random
      const r = receiver();
      for (let i = 0; i < kept.length;) {
        const stride = kept[i].bytes.length;
        let j = i + 1;
        while (j < kept.length && j - i < 64 && kept[j - 1].bytes.length === stride && kept[j].bytes.length <= stride && rnd() > 0.1) j++;
        expect(r.feed(concat(kept.slice(i, j).map((d) => d.bytes)), 1, stride)).toBe(j - i);
        i = j;
      }
      expect(same(r.frames, expected)).toBe(true);
      if (!lossy) expect(r.drops).toEqual([]);
      else expect(r.drops.length).toBeGreaterThan(0);
    }
  });

  it("drops a frame with a missing chunk, counts it, and takes the next one", () => {
    const tx = sender();
    const f1 = frameOf(5000, 4);
    const f2 = frameOf(3000, 5);
    const d1 = sendAll(tx, f1);
    const d2 = sendAll(tx, f2);
    const r = receiver();
    r.feed(d1[0]);
    r.feed(d1[2]); // d1[1] lost
    r.feed(d1[3]);
    for (const d of d2) r.feed(d);
    expect(r.frames).toEqual([f2]);
    expect(r.drops).toEqual(["tapnet_incomplete", "tapnet_incomplete"]);
  });

  it("keeps each sender's frame apart", () => {
    const tx1 = sender();
    const tx2 = sender();
    const f1 = frameOf(4000, 6);
    const f2 = frameOf(4500, 7);
    const a = sendAll(tx1, f1);
    const b = sendAll(tx2, f2);
    const r = receiver();
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i]) r.feed(a[i], 1);
      if (b[i]) r.feed(b[i], 2);
    }
    expect(r.frames).toEqual([f1, f2]);
  });

  it("never throws on random datagrams, and refuses each one it cannot use", () => {
    const r = receiver();
    let seed = 99;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let datagrams = 0;
    let split = 0;
    let badHeaders = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from({ length: 1 + Math.floor(rnd() * 3000) }, () => rnd() * 256);
      if (rnd() < 0.5) b[0] = 1;
      // What the receiver must see, worked out independently: datagrams at the feed's stride,
      // and those whose header no frame could hold.
      const stride = Math.min(b.length, D);
      for (let p = 0; p < b.length; p += stride) {
        split++;
        if (checkTapnetHeader(b, p, Math.min(stride, b.length - p)) !== 0) badHeaders++;
      }
      datagrams += r.feed(b);
    }
    expect(datagrams).toBe(split);
    // every refused header is a drop (and gaps in frames add more): none is passed over silently
    expect(r.drops.filter((d) => d !== "tapnet_incomplete").length).toBe(badHeaders);
    expect(badHeaders).toBeGreaterThan(1000);
  });
});

describe("tapnetGsoMaxSize", () => {
  it("caps super-frames so that their datagrams fit one send: 44 of 1472 bytes, or 64 of small ones", () => {
    // 44 chunks of 1460 bytes, less the virtio_net_hdr and Ethernet header, in whole thousands
    expect(tapnetGsoMaxSize(1472)).toBe(64000);
    expect(Math.ceil((64000 + 24) / 1460)).toBeLessThanOrEqual(44);
    // 548-byte datagrams: at most 64 per send (UDP_MAX_SEGMENTS on older kernels)
    expect(tapnetGsoMaxSize(548)).toBe(Math.floor((64 * 536 - 24) / 1000) * 1000);
  });
});

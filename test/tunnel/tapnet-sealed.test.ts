// The tapnet backend sealed (the cluster has a secret): frames still cross whole, one send per
// super-frame, and a read is opened before anything in it is taken, so that a datagram that is
// forged, altered, replayed or in the clear is dropped and only its own frame with it.
import { describe, expect, it } from "vitest";
import { openSslAead } from "../../src/io/aead.ts";
import { TapnetBackend, tapnetGsoMaxSize } from "../../src/tunnel/tapnet.ts";
import { SEALED_OVERHEAD, sealedCounterLo } from "../../src/wire/sealed.ts";
import { prng, trials } from "../support/random.ts";
import { FrameCollector, testContext } from "../support/tunnel.ts";

const D = 1472;
const C = D - 12 - SEALED_OVERHEAD; // 1428 bytes of frame a datagram
const ADDRESSES = [0xc0a8380b, 0xc0a8380c, 0xc0a8380d];
const SECRET = "a lab's secret: 32 random bytes in base64 go here";

function frameOf(len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (i * 31 + seed) & 0xff;
  if (len >= 24) f.set([0x08, 0x00], 22);
  return f;
}

/** Node `self`'s sealing backend (of 3 nodes), sending into a collecting sink. */
function node(self: number, o: { segmenting?: boolean; secret?: string | null } = {}) {
  const seal = o.secret === null ? undefined : { secret: o.secret ?? SECRET, addresses: ADDRESSES, aead: openSslAead() };
  const t = testContext({ self, segmenting: o.segmenting ?? true, datagramSize: D, ...(seal ? { seal } : {}) });
  return { b: new TapnetBackend(t.ctx), out: t.out, events: t.events };
}

/** Every datagram node 0 sends to node 1 for `frames`, in order. */
function datagramsOf(tx: ReturnType<typeof node>, frames: Uint8Array[]): Uint8Array[] {
  const before = tx.out.datagrams.length;
  for (const f of frames) expect(tx.b.send(f, 0, f.length, 1)).toBeGreaterThan(0);
  tx.b.flush();
  return tx.out.datagrams.slice(before).map((d) => d.bytes);
}

/** Node 1 taking `reads` (each one datagram, or a GRO run of `stride`) from node 0. */
function take(rx: TapnetBackend, reads: { bytes: Uint8Array; stride: number }[]) {
  const sink = new FrameCollector();
  for (const r of reads) {
    const slot = new Uint8Array(r.bytes.length + 64);
    slot.set(r.bytes, 32);
    rx.receive(slot, 32, r.bytes.length, r.stride, 0, sink);
    sink.commit();
  }
  return { frames: sink.bytes.map((f) => Buffer.from(f).toString("base64")), drops: sink.drops };
}

const b64 = (fs: Uint8Array[]) => fs.map((f) => Buffer.from(f).toString("base64"));

/** `ds` as GRO would read them: runs of equal-sized datagrams, each run ended by a shorter one (or cut at random). */
function groReads(ds: Uint8Array[], rnd: () => number): { bytes: Uint8Array; stride: number }[] {
  const reads: { bytes: Uint8Array; stride: number }[] = [];
  let i = 0;
  while (i < ds.length) {
    const size = ds[i].length;
    let j = i + 1;
    while (j < ds.length && j - i < 64 && ds[j - 1].length === size && ds[j].length <= size && rnd() < 0.95) j++;
    const run = ds.slice(i, j);
    const bytes = new Uint8Array(run.reduce((n, d) => n + d.length, 0));
    let o = 0;
    for (const d of run) { bytes.set(d, o); o += d.length; }
    reads.push({ bytes, stride: size });
    i = j;
  }
  return reads;
}

describe("tapnet backend, sealed", () => {
  it("cuts frames into chunks 44 bytes short of the datagram, and sends a capped super-frame in one send", () => {
    const tx = node(0);
    expect(tx.b.chunkSize).toBe(C);
    const max = tapnetGsoMaxSize(D);
    const f = frameOf(10 + 14 + max, 1);
    const ds = datagramsOf(tx, [f]);
    expect(ds.length).toBe(Math.ceil(f.length / C));
    expect(tx.out.sends.length).toBe(1);
    expect(ds.slice(0, -1).every((d) => d.length === D)).toBe(true);
    expect(ds.map((d) => d[0])).toEqual(ds.map(() => 2));
    expect(ds.map((d) => sealedCounterLo(d, 0))).toEqual(ds.map((_, i) => i));
    expect(datagramsOf(tx, [frameOf(10 + 14 + max + 1000, 2)]).length).toBeGreaterThan(44); // over the cap: two sends
    expect(tx.out.sends.length).toBe(3);
  });

  it("hides the frame: no 16 bytes of it appear in any datagram", () => {
    const f = frameOf(5000, 9);
    const wire = Buffer.concat(datagramsOf(node(0), [f]));
    for (let i = 0; i + 16 <= f.length; i += 97) expect(wire.includes(Buffer.from(f.subarray(i, i + 16))), `bytes ${i}`).toBe(false);
  });

  it("delivers what was sent, frames of every size, as single datagrams or GRO runs cut anywhere", () => {
    const rnd = prng(2718);
    for (let t = 0; t < trials(40, 10); t++) {
      const tx = node(0, { segmenting: rnd() < 0.7 });
      const rx = new TapnetBackend(testContext({ self: 1, datagramSize: D, seal: { secret: SECRET, addresses: ADDRESSES, aead: openSslAead() } }).ctx);
      const frames = Array.from({ length: 1 + Math.floor(rnd() * 12) }, (_, i) => frameOf(rnd() < 0.5 ? 24 + Math.floor(rnd() * 1500) : 1 + Math.floor(rnd() * 62_000), t * 100 + i));
      const ds = datagramsOf(tx, frames);
      const reads = rnd() < 0.3 ? ds.map((d) => ({ bytes: d, stride: d.length })) : groReads(ds, rnd);
      const got = take(rx, reads);
      expect(got.drops, `trial ${t}`).toEqual(frames.filter((f) => f.length < 24).map(() => "tunnel_not_ipv4"));
      expect(got.frames, `trial ${t}`).toEqual(b64(frames.filter((f) => f.length >= 24)));
    }
  });

  it("drops a datagram altered in a GRO run, and its frame; the other frames of the read go on", () => {
    const tx = node(0);
    const frames = [frameOf(3000, 1), frameOf(3000, 2), frameOf(3000, 3)];
    const ds = datagramsOf(tx, frames); // 3 datagrams a frame: 1428, 1428, 144 bytes of frame
    expect(ds.length).toBe(9);
    ds[4][100] ^= 0x40; // the second frame's second datagram
    const rx = node(1).b;
    const got = take(rx, ds.map((d) => ({ bytes: d, stride: d.length })));
    expect(got.drops).toEqual(["seal_auth_failed", "tapnet_incomplete"]);
    expect(got.frames).toEqual(b64([frames[0], frames[2]]));
  });

  it("drops a read replayed whole, every datagram of it, and delivers nothing twice", () => {
    const ds = datagramsOf(node(0), [frameOf(20_000, 4), frameOf(100, 5)]);
    const reads = groReads(ds, () => 0);
    const rx = node(1).b;
    expect(take(rx, reads).frames.length).toBe(2);
    const again = take(rx, reads);
    expect(again.frames).toEqual([]);
    expect(again.drops).toEqual(ds.map(() => "seal_replayed"));
  });

  it("does not speak to a node without the secret, nor to one with another: each datagram is dropped, counted", () => {
    const f = [frameOf(3000, 1)];
    const plain = datagramsOf(node(0, { secret: null }), f);
    expect(take(node(1).b, plain.map((d) => ({ bytes: d, stride: d.length }))).drops).toEqual(plain.map(() => "tapnet_unsealed"));
    const sealed = datagramsOf(node(0), f);
    expect(take(node(1, { secret: null }).b, sealed.map((d) => ({ bytes: d, stride: d.length }))).drops).toEqual(sealed.map(() => "tapnet_bad_version"));
    const other = datagramsOf(node(0, { secret: "another cluster's secret, just as long" }), f);
    expect(take(node(1).b, other.map((d) => ({ bytes: d, stride: d.length }))).drops).toEqual(other.map(() => "seal_auth_failed"));
    // A node's datagrams fed back to it as its peer's (a reflection), and a third node's claiming to be node 0's.
    const tx = node(0);
    const mine = datagramsOf(tx, f);
    const rx0 = new FrameCollector();
    for (const d of mine) tx.b.receive(d.slice(), 0, d.length, d.length, 1, rx0);
    expect(rx0.drops).toEqual(mine.map(() => "seal_auth_failed"));
    const third = node(2);
    third.b.send(f[0], 0, f[0].length, 1);
    third.b.flush();
    expect(take(node(1).b, third.out.datagrams.map((d) => ({ bytes: d.bytes, stride: d.bytes.length }))).drops).toEqual(third.out.datagrams.map(() => "seal_auth_failed"));
  });

  it("keeps its keys and counters across a change of the node list (adopt)", () => {
    const tx = node(0);
    const rx = node(1);
    const first = datagramsOf(tx, [frameOf(100, 1)]);
    expect(take(rx.b, [{ bytes: first[0], stride: 0 }]).frames.length).toBe(1);
    // Same nodes, same indices: a new backend for the new list takes over the old one's state.
    const tx2 = node(0);
    tx2.b.adopt(tx.b, Int32Array.of(0, 1, 2));
    const rx2 = node(1);
    rx2.b.adopt(rx.b, Int32Array.of(0, 1, 2));
    const next = datagramsOf(tx2, [frameOf(100, 2)]);
    expect(sealedCounterLo(next[0], 0)).toBe(1);
    expect(take(rx2.b, [{ bytes: first[0], stride: 0 }]).drops).toEqual(["seal_replayed"]);
    expect(take(rx2.b, [{ bytes: next[0], stride: 0 }]).frames.length).toBe(1);
  });
});

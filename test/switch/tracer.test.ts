// switch/trace/tracer.ts: which frames a filter marks (one way, both ways, ICMP echo by its
// identifier, wildcards, a count that runs out), what a pipeline records of them after each
// stage, that an unarmed tracer records nothing, the ring's overflow, and bad filters refused.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DONE, Frames, TUNNEL } from "../../src/switch/frames.ts";
import { Pipeline, type Stage } from "../../src/switch/pipeline.ts";
import { checkFilter, HEAD_BYTES, MAX_FILTERS, RING_SIZE, Tracer, type TraceFilter } from "../../src/switch/trace/tracer.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { emitIcmp } from "../../src/wire/icmp.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { ip, ipFrame } from "./router-support.ts";

const A = "10.244.1.2";
const B = "10.244.2.3";
const C = "10.244.1.9";

function filter(p: Partial<TraceFilter>): TraceFilter {
  return { id: 1, proto: 0, a: 0, b: 0, aPort: 0, bPort: 0, bothWays: false, count: 10, ...p };
}

/** An ICMP echo (request 8 or reply 0) with identifier `ident`, as a TAP gives it. */
function echo(src: string, dst: string, type: 0 | 8, ident: number): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 8 + 8);
  emitEthernet({ dst: "0a:58:0a:f4:01:01", src: "0a:58:0a:f4:01:02", vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1, src, dst, payloadLen: 16 }, b, ETH_OFF + 14);
  emitIcmp({ type, code: 0, rest: ((ident << 16) | 1) >>> 0, data: new Uint8Array(8) }, b, ETH_OFF + 34);
  return b;
}

/** A UDP frame src:1234 -> dst:5678 (router-support's ipFrame). */
const udp = (src: string, dst: string) => ipFrame({ src, dst });
/** The same with its ports swapped: a reply. */
function udpReply(src: string, dst: string): Uint8Array {
  const b = udp(src, dst);
  const o = ETH_OFF + 34;
  [b[o], b[o + 1], b[o + 2], b[o + 3]] = [b[o + 2], b[o + 3], b[o], b[o + 1]];
  return b;
}

function batchOf(frames: Uint8Array[], port = 1): Frames {
  const f = new Frames(16);
  for (const b of frames) f.push(b, 0, b.length, port);
  return f;
}

/** Which entries the tracer marks in a batch of `frames`, as their indexes. */
function marked(t: Tracer, frames: Uint8Array[]): number[] {
  const f = batchOf(frames);
  t.mark(f, false);
  return [...f.marks.subarray(0, f.count)].flatMap((m, i) => (m ? [i] : []));
}

describe("Tracer: marking", () => {
  it("marks one way by addresses, protocol and ports, 0 matching any", () => {
    const t = new Tracer();
    t.set([filter({ proto: 17, a: ip(A), b: ip(B), aPort: 1234, bPort: 5678 })]);
    expect(marked(t, [udp(A, B), udpReply(B, A), udp(A, C), udp(C, B), echo(A, B, 8, 1)])).toEqual([0]);
    t.set([filter({ a: ip(A) })]);
    expect(marked(t, [udp(A, B), udpReply(B, A), udp(A, C), udp(C, B), echo(A, B, 8, 1)])).toEqual([0, 2, 4]);
    t.set([filter({ proto: 17, bPort: 9999 })]);
    expect(marked(t, [udp(A, B)])).toEqual([]);
  });

  it("both ways: the reply too, addresses and ports swapped", () => {
    const t = new Tracer();
    t.set([filter({ proto: 17, a: ip(A), b: ip(B), aPort: 1234, bPort: 5678, bothWays: true })]);
    expect(marked(t, [udp(A, B), udpReply(B, A), udp(B, A), udp(A, C)])).toEqual([0, 1]);
  });

  it("ICMP echo by its identifier, request and reply", () => {
    const t = new Tracer();
    t.set([filter({ proto: 1, a: ip(A), b: ip(B), aPort: 4242, bothWays: true })]);
    expect(marked(t, [echo(A, B, 8, 4242), echo(B, A, 0, 4242), echo(A, B, 8, 4243), echo(B, A, 0, 1)])).toEqual([0, 1]);
  });

  it("marks at most `count` frames, then is spent; other filters go on", () => {
    const t = new Tracer();
    t.set([filter({ id: 7, a: ip(A), count: 2 }), filter({ id: 8, a: ip(C), count: 5 })]);
    expect(t.armed).toBe(2);
    expect(marked(t, [udp(A, B), udp(C, B), udp(A, B), udp(A, B)])).toEqual([0, 1, 2]);
    expect(t.armed).toBe(1);
    expect(marked(t, [udp(A, B), udp(C, B)])).toEqual([1]);
    t.set([]);
    expect(t.armed).toBe(0);
    expect(marked(t, [udp(C, B)])).toEqual([]);
  });

  it("re-armed beside another trace's filter, a filter keeps what it had left and its group its numbering (#14's traces at once)", () => {
    const t = new Tracer();
    const numbers = (frames: Uint8Array[]) => { const f = batchOf(frames); t.mark(f, false); return [...f.traceNo.subarray(0, f.count)]; };
    t.set([filter({ id: 1, a: ip(A), count: 3, group: 1 })]);
    expect(numbers([udp(A, B), udp(A, B)])).toEqual([1, 2]);
    // A second trace arms: the first's filter goes on with 1 frame left, its numbers run on.
    t.set([filter({ id: 1, a: ip(A), count: 3, group: 1 }), filter({ id: 2, a: ip(C), count: 5, group: 2 }), filter({ id: 3, b: ip(C), count: 5, group: 2 })]);
    expect(t.armed).toBe(3);
    expect(numbers([udp(C, B), udp(A, B), udp(B, C), udp(A, B)])).toEqual([1, 3, 2, 0]);
    expect(t.armed).toBe(2);
    // The first trace ends: the second's numbering goes on; a new id starts with its whole count.
    t.set([filter({ id: 2, a: ip(C), count: 5, group: 2 }), filter({ id: 3, b: ip(C), count: 5, group: 2 }), filter({ id: 4, a: ip(A), count: 1, group: 3 })]);
    expect(numbers([udp(C, B), udp(A, B), udp(A, B)])).toEqual([3, 1, 0]);
    expect(checkFilter(filter({ group: -1 }))).toBe("group must be a whole number from 0 to 2147483647, not -1");
  });

  it("leaves the ports pipeline's datagrams from the tunnel alone, and marks the receive pipeline's frames", () => {
    const t = new Tracer();
    t.set([filter({ a: ip(A) })]);
    const f = batchOf([udp(A, B)], TUNNEL);
    t.mark(f, false);
    expect(f.marked).toBe(0);
    t.mark(f, true);
    expect(f.marked).toBe(1);
  });

  it("refuses bad filters, naming the field, and more than MAX_FILTERS", () => {
    expect(checkFilter(filter({}))).toBeUndefined();
    expect(checkFilter(filter({ count: 0 }))).toBe("count must be 1 to 1000, not 0");
    expect(checkFilter(filter({ proto: 256 }))).toBe("proto must be 0 to 255, not 256");
    expect(checkFilter(filter({ aPort: 70000 }))).toBe("ports must be 0 to 65535");
    expect(checkFilter(filter({ a: -1 }))).toBe("addresses must be unsigned 32-bit numbers");
    const t = new Tracer();
    expect(() => t.set([filter({ id: 3, count: 1.5 })])).toThrow("trace filter 3: count must be 1 to 1000, not 1.5");
    expect(() => t.set(Array.from({ length: MAX_FILTERS + 1 }, (_, id) => filter({ id })))).toThrow(`at most ${MAX_FILTERS} trace filters`);
    expect(t.armed).toBe(0);
  });
});

/** A stage that sends every entry to `out`. */
const sendTo = (name: string, out: number): Stage => ({ name, run: (f) => { for (let i = 0; i < f.count; i++) f.outs[i] = out; } });
const names = (p: Pipeline) => (where: number) => ({ pipeline: p.name, stage: p.stageName(where & 0xff) });

describe("Tracer: recording through a pipeline", () => {
  it("records each marked frame after every stage, as the stage left it; unmarked frames and unarmed tracers record nothing", () => {
    const p = new Pipeline("ports", [sendTo("route", 3), sendTo("bridge", DONE)]);
    const t = new Tracer();
    p.trace(t, 0, false);
    const frames = [udp(C, B), udp(A, B)];
    p.run(batchOf(frames), 1);
    expect(t.drain(names(p)).records).toEqual([]); // nothing armed
    t.set([filter({ id: 5, a: ip(A) })]);
    const before = Date.now() * 1000;
    p.run(batchOf(frames), 2);
    const { records, lost } = t.drain(names(p));
    expect(lost).toBe(0);
    expect(records.map(({ t: _, mono: _m, boot: _b, head: __, ...r }) => r)).toEqual([
      { filter: 5, frame: 1, pipeline: "ports", stage: "route", port: 1, node: -1, out: 3, len: frames[1].length },
      { filter: 5, frame: 1, pipeline: "ports", stage: "bridge", port: 1, node: -1, out: DONE, len: frames[1].length },
    ]);
    expect(records[0].head).toBe(Buffer.from(frames[1].subarray(0, Math.min(HEAD_BYTES, frames[1].length))).toString("hex"));
    expect(records[0].t).toBeGreaterThanOrEqual(before - 1000);
    expect(records[0].t).toBeLessThanOrEqual(Date.now() * 1000 + 1000);
    // And on the machine's one monotonic clock, which every process of it reads alike.
    const monoNow = Number(process.hrtime.bigint() / 1000n);
    expect(records[0].mono).toBeLessThanOrEqual(monoNow);
    expect(records[0].mono).toBeGreaterThan(monoNow - 5_000_000);
    // The same intervals on both clocks, but for rounding each to the µs.
    expect(Math.abs(records[1].mono! - records[0].mono! - (records[1].t - records[0].t))).toBeLessThanOrEqual(1);
    expect(records[0].boot).toBe(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    expect(t.drain(names(p)).records).toEqual([]); // read once
  });

  it("a receive pipeline run in the middle of a ports pipeline's stage keeps each frame's number (each batch holds its own)", () => {
    const rx = new Pipeline("receive", [sendTo("deliver", 2)]);
    const rxBatch = () => { const f = batchOf([udp(B, A)], TUNNEL); return f; };
    // The ports pipeline's first stage reads the tunnel, as the tunnel stage does: the receive
    // pipeline marks and records its frame at the same batch entry (0) as the ports frame.
    const ports = new Pipeline("ports", [{ name: "tunnel-in", run: () => { rx.run(rxBatch(), 1); } }, sendTo("route", 3)]);
    const t = new Tracer();
    t.set([filter({ id: 1, a: ip(A), b: ip(B), bothWays: true })]);
    ports.trace(t, 0, false);
    rx.trace(t, 1, true);
    ports.run(batchOf([udp(A, B)]), 1);
    const byName = (where: number) => (where >> 8 === 1 ? names(rx)(where) : names(ports)(where));
    const seen = t.drain(byName).records.map((r) => `${r.frame} ${r.pipeline}/${r.stage}`);
    expect(seen).toEqual(["2 receive/deliver", "1 ports/tunnel-in", "1 ports/route"]);
  });

  it("a tracer not attached, or detached, costs the batch nothing and marks nothing", () => {
    const p = new Pipeline("ports", [sendTo("route", 3)]);
    const t = new Tracer();
    t.set([filter({ a: ip(A) })]);
    const f = batchOf([udp(A, B)]);
    p.run(f, 0);
    expect(f.marked).toBe(0);
    p.trace(t, 0, false);
    p.trace(undefined, 0, false);
    p.run(f, 0);
    expect(f.marked).toBe(0);
    expect(t.armed).toBe(1);
  });

  it("a batch cleared drops its marks; the ring keeps the last RING_SIZE records and counts the rest lost", () => {
    const stages = ["s0", "s1", "s2", "s3"].map((n) => sendTo(n, 2));
    const p = new Pipeline("receive", stages);
    const t = new Tracer();
    p.trace(t, 1, true);
    t.set([filter({ a: ip(A), count: 1000 })]);
    const f = batchOf([udp(A, B)], TUNNEL);
    p.run(f, 0);
    expect(f.marked).toBe(1);
    f.clear();
    f.push(udp(C, B), 0, 60, TUNNEL);
    expect(f.marks[0]).toBe(0);
    expect(f.marked).toBe(0);
    // 520 frames of 4 records each: 2080, of which the ring (2048) keeps the last.
    for (let n = 0; n < 519; n++) p.run(batchOf([udp(A, B)], TUNNEL), 0);
    const { records, lost } = t.drain(names(p));
    expect(RING_SIZE).toBe(2048);
    expect(lost).toBe(32);
    expect(records).toHaveLength(RING_SIZE);
    expect(records[0]).toMatchObject({ frame: 9, pipeline: "receive", stage: "s0", port: TUNNEL, out: 2 });
    expect(records.at(-1)).toMatchObject({ frame: 520, stage: "s3" });
  });
});

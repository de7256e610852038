// switch/frames.ts: the vector of frames the stages work on.
import { describe, expect, it } from "vitest";
import { ASK, DONE, FLOOD, Frames, newTail, PENDING, REPLY, TO_NODE, TUNNEL } from "../../src/switch/frames.ts";
import { HEAD_ROOM } from "../../src/tunnel/contract.ts";

describe("Frames", () => {
  it("starts empty, and is full once it holds as many frames as it was made for", () => {
    const f = new Frames(3);
    expect([f.capacity, f.count, f.full]).toEqual([3, 0, false]);
    const buf = new Uint8Array(10);
    expect(f.push(buf, 0, 10, 1)).toBe(0);
    expect(f.push(buf, 0, 10, 1)).toBe(1);
    expect(f.full).toBe(false);
    expect(f.push(buf, 0, 10, 1)).toBe(2);
    expect([f.count, f.full]).toEqual([3, true]);
  });

  it("push keeps where the frame lies and where it came from, undecided, contiguous, in no read", () => {
    const f = new Frames(4);
    const a = new Uint8Array(100);
    const b = new Uint8Array(200);
    f.push(a, 0, 100, 3);
    const i = f.push(b, 24, 150, TUNNEL, 2);
    expect([f.bufs[0], f.offs[0], f.lens[0], f.ports[0], f.nodes[0], f.outs[0], f.reads[0]]).toEqual([a, 0, 100, 3, -1, PENDING, 0]);
    expect([f.bufs[i], f.offs[i], f.lens[i], f.ports[i], f.nodes[i], f.outs[i], f.reads[i]]).toEqual([b, 24, 150, TUNNEL, 2, PENDING, 0]);
    expect(f.tails[i].count).toBe(0);
  });

  it("push resets what an entry's last frame left: its verdict, its tail, its node and its read", () => {
    const f = new Frames(2);
    const buf = new Uint8Array(64);
    f.push(buf, 0, 64, 1, 5);
    f.outs[0] = 4;
    f.tails[0].count = 3;
    f.tails[0].headLen = 40;
    f.reads[0] = 9;
    f.clear();
    f.push(buf, 2, 60, 2);
    expect([f.outs[0], f.tails[0].count, f.nodes[0], f.reads[0], f.headLen(0)]).toEqual([PENDING, 0, -1, 0, 60]);
  });

  it("clear empties it for the next batch", () => {
    const f = new Frames(2);
    f.push(new Uint8Array(1), 0, 1, 0);
    f.push(new Uint8Array(1), 0, 1, 0);
    f.clear();
    expect([f.count, f.full]).toEqual([0, false]);
    expect(f.push(new Uint8Array(1), 0, 1, 0)).toBe(0);
  });

  it("headLen: the frame's length when it is contiguous, its head's when it has a tail", () => {
    const f = new Frames(1);
    f.push(new Uint8Array(2000), 0, 1500, TUNNEL);
    expect(f.headLen(0)).toBe(1500);
    f.tails[0].headLen = 256;
    f.tails[0].count = 2;
    expect(f.headLen(0)).toBe(256);
    expect(f.lens[0]).toBe(1500);
  });

  it("has a head of HEAD_ROOM bytes per entry, each its own, and a tail per entry", () => {
    const f = new Frames(3);
    expect(f.heads.map((h) => h.length)).toEqual([HEAD_ROOM, HEAD_ROOM, HEAD_ROOM]);
    f.heads[1].fill(7);
    expect([f.heads[0].every((x) => x === 0), f.heads[2].every((x) => x === 0)]).toEqual([true, true]);
    expect(new Set(f.tails).size).toBe(3);
    expect(f.tails.every((t) => t.offs.length === 66 && t.lens.length === 66 && t.count === 0)).toBe(true);
  });

  it("has a buffer in every entry from the start (the array never grows on push: no allocation per frame)", () => {
    const f = new Frames(3);
    expect(f.bufs).toHaveLength(3);
    expect(f.bufs.every((b) => b instanceof Uint8Array)).toBe(true);
    const before = f.bufs;
    f.push(new Uint8Array(4), 0, 4, 1);
    expect([f.bufs === before, f.bufs.length]).toEqual([true, 3]);
  });

  it("newTail: an empty tail with room for the pieces asked for", () => {
    const t = newTail(5);
    expect([t.buf.length, t.headLen, t.offs.length, t.lens.length, t.count]).toEqual([0, 0, 5, 5, 0]);
    expect(newTail().offs.length).toBe(66); // a 64 KB frame in 64 datagrams, its head and one more piece
  });

  it("the verdicts are distinct and negative, so that any port number (0 and up) is a verdict of its own", () => {
    const verdicts = [PENDING, FLOOD, TO_NODE, REPLY, ASK, DONE];
    expect(new Set(verdicts).size).toBe(6);
    expect(verdicts.every((v) => v < 0)).toBe(true);
    expect(TUNNEL).toBeLessThan(0);
  });
});

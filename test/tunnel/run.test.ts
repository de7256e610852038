// DatagramRun (tunnel/run.ts): how every backend gathers datagrams into one send per run.
import { describe, expect, it } from "vitest";
import { MAX_SEGMENTS_PER_SEND, MAX_UDP_PAYLOAD } from "../../src/tunnel/contract.ts";
import { DatagramRun } from "../../src/tunnel/run.ts";
import { testContext } from "../support/tunnel.ts";

/** A run over a collecting sink; `put(peer, bytes)` gathers one datagram of `bytes` bytes of `fill`. */
function setup(segmenting = true) {
  const { ctx, out, events } = testContext();
  const run = new DatagramRun(out, segmenting, ctx.events);
  let fill = 0;
  const put = (peer: number, bytes: number) => {
    run.open(peer, bytes);
    // two pieces per datagram, as a backend adds a header and then a chunk
    const d = new Uint8Array(bytes).fill(++fill & 0xff);
    out.add(d, 0, 1);
    out.add(d, 1, bytes - 1);
    run.close(bytes);
  };
  const sends = () => out.sends.map((s) => [s.peer, s.bytes, s.segment]);
  return { run, out, events, put, sends };
}

describe("DatagramRun with UDP_SEGMENT", () => {
  it("gathers datagrams of one size to one peer into one send, cut at that size, sent at flush", () => {
    const { run, put, sends, events, out } = setup();
    for (let i = 0; i < 5; i++) put(1, 100);
    expect(run.count).toBe(5);
    expect(sends()).toEqual([]);
    expect(run.flush()).toBe(true);
    expect(sends()).toEqual([[1, 500, 100]]);
    expect(out.datagrams.map((d) => d.bytes[0])).toEqual([1, 2, 3, 4, 5]);
    expect(events).toEqual({ sent: 5, bytes: 500, failed: 0 });
    expect(run.count).toBe(0);
  });

  it("a shorter datagram joins the run and closes it: the next one starts another", () => {
    const { run, put, sends } = setup();
    put(1, 100);
    put(1, 60);
    put(1, 60);
    run.flush();
    expect(sends()).toEqual([[1, 160, 100], [1, 60, 60]]);
  });

  it("a longer datagram starts another run, sending the one before", () => {
    const { run, put, sends } = setup();
    put(1, 100);
    put(1, 100);
    put(1, 101);
    expect(sends()).toEqual([[1, 200, 100]]);
    put(1, 101);
    run.flush();
    expect(sends()).toEqual([[1, 200, 100], [1, 202, 101]]);
  });

  it("a datagram to another peer starts another run; coming back to the first peer starts a third", () => {
    const { run, put, sends, events } = setup();
    put(1, 100);
    put(2, 100);
    put(1, 100);
    run.flush();
    expect(sends()).toEqual([[1, 100, 100], [2, 100, 100], [1, 100, 100]]);
    expect(events).toEqual({ sent: 3, bytes: 300, failed: 0 });
  });

  it(`holds at most ${MAX_SEGMENTS_PER_SEND} datagrams: the next one starts another run`, () => {
    expect(MAX_SEGMENTS_PER_SEND).toBe(64);
    const { run, put, sends } = setup();
    for (let i = 0; i < 130; i++) put(1, 10);
    run.flush();
    expect(sends()).toEqual([[1, 640, 10], [1, 640, 10], [1, 20, 10]]);
  });

  it(`holds at most ${MAX_UDP_PAYLOAD} bytes: a datagram that would pass it starts another run, one that reaches it exactly joins`, () => {
    expect(MAX_UDP_PAYLOAD).toBe(65507);
    const exact = setup();
    for (let i = 0; i < 44; i++) exact.put(1, 1472);
    exact.put(1, 65507 - 44 * 1472);
    exact.put(1, 1);
    exact.run.flush();
    expect(exact.sends()).toEqual([[1, 65507, 1472], [1, 1, 1]]);
    const over = setup();
    for (let i = 0; i < 44; i++) over.put(1, 1472);
    over.put(1, 65507 - 44 * 1472 + 1);
    over.run.flush();
    expect(over.sends()).toEqual([[1, 44 * 1472, 1472], [1, 65507 - 44 * 1472 + 1, 65507 - 44 * 1472 + 1]]);
  });

  it("open on a run that cannot take the datagram sends the run first, before the datagram's pieces are added", () => {
    const { run, out, put } = setup();
    put(1, 100);
    run.open(2, 100);
    expect(out.sends).toEqual([{ peer: 1, bytes: 100, segment: 100 }]);
    expect(run.count).toBe(0);
  });

  it("a flush with nothing gathered sends nothing and reports nothing", () => {
    const { run, out, events, put } = setup();
    expect(run.flush()).toBe(true);
    put(1, 50);
    run.flush();
    expect(run.flush()).toBe(true);
    expect(out.sends.length).toBe(1);
    expect(events).toEqual({ sent: 1, bytes: 50, failed: 0 });
  });

  it("after a flush, a run starts afresh with the size of its first datagram", () => {
    const { run, put, sends } = setup();
    put(1, 100);
    run.flush();
    put(1, 60);
    put(1, 60);
    put(1, 100);
    run.flush();
    expect(sends()).toEqual([[1, 100, 100], [1, 120, 60], [1, 100, 100]]);
  });

  it("after a short datagram closed a run, a flush opens the next one to any size", () => {
    const { run, put, sends } = setup();
    put(1, 100);
    put(1, 50);
    run.flush();
    put(1, 100);
    put(1, 100);
    run.flush();
    expect(sends()).toEqual([[1, 150, 100], [1, 200, 100]]);
  });
});

describe("DatagramRun failures", () => {
  it("a failed send reports one lost frame per datagram, and false", () => {
    const { run, out, put, events } = setup();
    out.failing = true;
    for (let i = 0; i < 3; i++) put(1, 100);
    expect(run.flush()).toBe(false);
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 3 });
  });

  it("flush(frames) says how many frames the failure lost (a frame cut into the run's datagrams)", () => {
    const { run, out, put, events } = setup();
    out.failing = true;
    for (let i = 0; i < 3; i++) put(1, 100);
    expect(run.flush(1)).toBe(false);
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 1 });
  });

  it("a failed run is gone: the next run starts afresh and is sent", () => {
    const { run, out, put, events, sends } = setup();
    out.failing = true;
    put(1, 100);
    put(1, 50);
    run.flush();
    out.failing = false;
    put(1, 100);
    put(1, 100);
    expect(run.flush()).toBe(true);
    expect(sends()).toEqual([[1, 200, 100]]);
    expect(events).toEqual({ sent: 2, bytes: 200, failed: 2 });
  });
});

describe("DatagramRun without UDP_SEGMENT", () => {
  it("sends each datagram as soon as it is complete, in a send of its own", () => {
    const { run, put, sends, events } = setup(false);
    put(1, 100);
    expect(sends()).toEqual([[1, 100, 100]]);
    put(1, 100);
    put(1, 60);
    put(2, 100);
    expect(sends()).toEqual([[1, 100, 100], [1, 100, 100], [1, 60, 60], [2, 100, 100]]);
    expect(run.count).toBe(0);
    expect(run.flush()).toBe(true);
    expect(sends().length).toBe(4);
    expect(events).toEqual({ sent: 4, bytes: 360, failed: 0 });
  });

  it("a failed send loses that one datagram's frame, and close says it failed", () => {
    const { run, out, put, events } = setup(false);
    out.failing = true;
    put(1, 100);
    put(1, 100);
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 2 });
    run.open(1, 10);
    out.add(new Uint8Array(10), 0, 10);
    expect(run.close(10)).toBe(false);
    out.failing = false;
    run.open(1, 10);
    out.add(new Uint8Array(10), 0, 10);
    expect(run.close(10)).toBe(true);
    expect(events).toEqual({ sent: 1, bytes: 10, failed: 3 });
  });

  it("with UDP_SEGMENT, close sends nothing and says true: a failure is flush's to report", () => {
    const { run, out, events } = setup(true);
    out.failing = true;
    run.open(1, 10);
    out.add(new Uint8Array(10), 0, 10);
    expect(run.close(10)).toBe(true);
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 0 });
    expect(run.flush()).toBe(false);
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 1 });
  });
});

describe("DatagramRun.datagram: one datagram of two pieces", () => {
  it("gathers the first piece, then the second, as one datagram of their joint length; a second piece of 0 bytes adds nothing", () => {
    const { run, out } = setup(true);
    const a = Uint8Array.of(1, 2, 3, 4), b = Uint8Array.of(9, 8, 7);
    expect(run.datagram(2, a, 1, 2, b, 0, 3)).toBe(true); // 5 bytes: the run's size
    expect(run.datagram(2, a, 0, 4, b, 0, 0)).toBe(true); // 4 bytes: shorter, it closes the run
    expect(run.datagram(2, a, 0, 4, b, 1, 1)).toBe(true); // so this one starts the next
    run.flush();
    expect(out.sends).toEqual([{ peer: 2, bytes: 9, segment: 5 }, { peer: 2, bytes: 5, segment: 5 }]);
    expect(out.datagrams.map((d) => Array.from(d.bytes))).toEqual([[2, 3, 9, 8, 7], [1, 2, 3, 4], [1, 2, 3, 4, 8]]);
  });

  it("without UDP_SEGMENT sends it at once, and says whether that worked", () => {
    const { run, out } = setup(false);
    const a = Uint8Array.of(1, 2), b = Uint8Array.of(3);
    expect(run.datagram(1, a, 0, 2, b, 0, 1)).toBe(true);
    out.failing = true;
    expect(run.datagram(1, a, 0, 2, b, 0, 1)).toBe(false);
    expect(out.datagrams.map((d) => Array.from(d.bytes))).toEqual([[1, 2, 3]]);
  });
});

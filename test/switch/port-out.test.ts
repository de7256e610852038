// port out (switch/stages/port-out.ts): the last stage, writing frames to TAP ports and counting
// them; and the live ports it writes to (switch/state.ts).
import { describe, expect, it } from "vitest";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { ASK, DONE, FLOOD, Frames, PENDING, REPLY, TO_NODE, TUNNEL } from "../../src/switch/frames.ts";
import { PortOut } from "../../src/switch/stages/port-out.ts";
import { LivePorts, SwitchState } from "../../src/switch/state.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { RecordingWriter } from "../support/writer.ts";

const MAX_PORTS = 8;
const TUNNEL_ROW = MAX_PORTS - 1;

function setup(live = [0, 1, 2, 3]) {
  const state = SwitchState.make(MAX_PORTS, FDB_DEFAULTS);
  for (const p of live) state.ports.add(p);
  const writer = new RecordingWriter();
  const out = new PortOut(state, writer);
  const f = new Frames(16);
  const counters = state.counters;
  const row = (p: number) => counters.portSnapshot(p);
  /** Adds a frame of `len` bytes (tagged at its byte 30) from `inPort`, going to `to`. */
  const add = (inPort: number, to: number, len = ETH_OFF + 60, tag = f.count) => {
    const b = new Uint8Array(len + 8).fill(0xab);
    b[30] = tag;
    const i = f.push(b, 4, len, inPort);
    f.outs[i] = to;
    return i;
  };
  return { state, writer, out, f, counters, row, add, run: () => out.run(f) };
}

describe("port out", () => {
  it("writes a frame to the port it goes to, as it lies (buffer, offset, length), and counts it out there without the virtio_net_hdr", () => {
    const { writer, f, add, run, row } = setup();
    const i = add(0, 2, ETH_OFF + 100);
    run();
    expect(writer.written.map((w) => [w.port, w.buf === f.bufs[i], w.off, w.len, w.tail])).toEqual([[2, true, 4, 110, null]]);
    expect(writer.written[0].bytes).toEqual(f.bufs[i].subarray(4, 114));
    expect(row(2)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 1, tx_bytes: 100, rx_flooded: 0 });
    expect(row(0)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 0, tx_bytes: 0, rx_flooded: 0 });
  });

  it("floods a frame to every live port but the one it came in on, counting it out on each", () => {
    const { writer, add, run, row } = setup([0, 1, 2, 5]);
    add(2, FLOOD);
    run();
    expect(writer.ports()).toEqual([0, 1, 5]);
    expect([0, 1, 2, 3, 5].map((p) => row(p).tx_frames)).toEqual([1, 1, 0, 0, 1]);
    expect(row(5).tx_bytes).toBe(60);
  });

  it("floods a frame from the tunnel to every live port", () => {
    const { writer, add, run } = setup([0, 1, 2]);
    add(TUNNEL, FLOOD);
    run();
    expect(writer.ports()).toEqual([0, 1, 2]);
  });

  it("writes the frames of a batch in order, a flood to the live ports in the order they came", () => {
    const { writer, add, run, state } = setup([3, 1]);
    state.ports.add(0);
    add(0, 3, ETH_OFF + 60, 7);
    add(TUNNEL, FLOOD, ETH_OFF + 60, 8);
    add(3, 1, ETH_OFF + 60, 9);
    run();
    expect(writer.written.map((w) => [w.bytes[26], w.port])).toEqual([[7, 3], [8, 3], [8, 1], [8, 0], [9, 1]]);
  });

  it("writes nothing for a frame no stage decided, one taken, or one for the tunnel or the gateway", () => {
    const { writer, add, run, counters } = setup();
    for (const v of [PENDING, DONE, TO_NODE, REPLY, ASK]) add(0, v);
    run();
    expect(writer.written).toEqual([]);
    expect(counters.v.every((x) => x === 0)).toBe(true);
  });

  it("passes a frame's tail to the writer, a flood's to every port; bytes out count the whole frame", () => {
    const { writer, f, add, run, row } = setup([0, 1, 2]);
    const i = add(TUNNEL, 1, 3000);
    const t = f.tails[i];
    t.buf = Uint8Array.from({ length: 4000 }, (_, k) => k & 0xff);
    t.headLen = 54;
    t.offs[0] = 100;
    t.lens[0] = 3000 - 54;
    t.count = 1;
    const j = add(TUNNEL, FLOOD, 3000);
    Object.assign(f.tails[j], { buf: t.buf, headLen: 54, count: 1 });
    f.tails[j].offs[0] = 200;
    f.tails[j].lens[0] = 2946;
    run();
    expect(writer.written.map((w) => [w.port, w.tail === null ? null : w.tail === f.tails[i] ? "i" : w.tail === f.tails[j] ? "j" : "?"])).toEqual([[1, "i"], [0, "j"], [1, "j"], [2, "j"]]);
    expect(writer.written[0].bytes).toEqual(Uint8Array.from([...f.bufs[i].subarray(4, 58), ...t.buf.subarray(100, 3046)]));
    expect(row(1)).toMatchObject({ tx_frames: 2, tx_bytes: 2 * (3000 - ETH_OFF) });
  });

  it("a frame with a tail of no pieces is written without one", () => {
    const { writer, f, add, run } = setup();
    const i = add(0, 1);
    f.tails[i].headLen = 20;
    run();
    expect(writer.written[0].tail).toBeNull();
    expect(writer.written[0].len).toBe(ETH_OFF + 60);
  });

  it("a write the port refuses is a tx_error on the in-port's row, and no tx on the refusing port", () => {
    const { writer, add, run, row } = setup();
    writer.failing.add(2);
    add(0, FLOOD);
    run();
    expect(writer.ports()).toEqual([1, 3]);
    expect(row(0)).toMatchObject({ drop_tx_error: 1, tx_frames: 0 });
    expect(row(2)).toMatchObject({ tx_frames: 0, tx_bytes: 0 });
    expect(row(2).drop_tx_error).toBeUndefined();
    expect(row(1)).toMatchObject({ tx_frames: 1 });
  });

  it("a write refused for a frame from the tunnel is a tx_error on the tunnel's row", () => {
    const { writer, add, run, row } = setup();
    writer.failing.add(1);
    add(TUNNEL, 1);
    add(TUNNEL, FLOOD);
    run();
    expect(row(TUNNEL_ROW)).toMatchObject({ drop_tx_error: 2 });
    expect(writer.ports()).toEqual([0, 2, 3]);
    for (const p of [0, 1, 2, 3]) expect(row(p).drop_tx_error, `port ${p}`).toBeUndefined();
  });

  it("a frame for a port that is not live (removed while the frame was in flight, or never added) is dropped as no_port", () => {
    const { writer, add, run, row, state } = setup();
    state.ports.remove(2);
    add(0, 2);
    add(1, 6);
    add(TUNNEL, 2);
    add(1, 100);
    run();
    expect(writer.written).toEqual([]);
    expect([row(0).drop_no_port, row(1).drop_no_port, row(TUNNEL_ROW).drop_no_port]).toEqual([1, 2, 1]);
    expect(row(2).drop_no_port).toBeUndefined();
  });

  it("a removed port gets no floods; added again, it does", () => {
    const { writer, f, add, run, state } = setup([0, 1, 2]);
    state.ports.remove(2);
    add(0, FLOOD);
    run();
    expect(writer.ports()).toEqual([1]);
    state.ports.add(2);
    writer.clear();
    run();
    expect(writer.ports()).toEqual([1, 2]);
    expect(f.count).toBe(1); // port out leaves the batch as it is
  });
});

describe("LivePorts", () => {
  it("says which ports are live; a port out of range is not", () => {
    const p = new LivePorts(4);
    p.add(0);
    p.add(2);
    expect([-1, 0, 1, 2, 3, 4, 99].map((x) => p.has(x))).toEqual([false, true, false, true, false, false, false]);
  });

  it("lists the live ports in the order they came; adding one twice lists it once", () => {
    const p = new LivePorts(8);
    for (const x of [5, 1, 5, 3, 1]) p.add(x);
    expect(Array.from(p.list.subarray(0, p.count))).toEqual([5, 1, 3]);
  });

  it("removing a port keeps the others in order; removing one that is not live, or twice, changes nothing", () => {
    const p = new LivePorts(8);
    for (const x of [5, 1, 3, 7]) p.add(x);
    p.remove(1);
    p.remove(1);
    p.remove(2);
    expect(Array.from(p.list.subarray(0, p.count))).toEqual([5, 3, 7]);
    expect(p.has(1)).toBe(false);
    p.add(1);
    expect(Array.from(p.list.subarray(0, p.count))).toEqual([5, 3, 7, 1]);
  });
});

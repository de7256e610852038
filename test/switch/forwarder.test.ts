import { describe, expect, it } from "vitest";
import { Bridge } from "../../src/switch/bridge.ts";
import { Counters, SwitchCounter } from "../../src/switch/counters.ts";
import { Fdb } from "../../src/switch/fdb.ts";
import { FrameBatch, Forwarder, TUNNEL, type PortWriter } from "../../src/switch/forwarder.ts";
import type { Router } from "../../src/switch/router.ts";
import type { FrameTail } from "../../src/tunnel/tapnet.ts";
import { get32, put32 } from "../../src/wire/bytes.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { formatMacHiLo } from "../../src/wire/mac.ts";
import { prng, trials } from "../support/random.ts";

/** As on the real switch: every frame sits behind a 10-byte virtio_net_hdr (here all zeros). */
const L2_OFF = 10;
const MAX_PORTS = 8;

const A = "02:00:0a:63:00:01";
const B = "02:00:0a:63:00:02";
const C = "02:00:0a:63:00:03";
const D = "02:00:0a:63:00:04";
const BROADCAST = "ff:ff:ff:ff:ff:ff";

/** An in-memory PortWriter: records a copy of each frame written (and its tail); ports in `failing` refuse. */
class FakeWriter implements PortWriter {
  readonly written: { port: number; bytes: Uint8Array; tail: FrameTail | null }[] = [];
  readonly failing = new Set<number>();

  write(port: number, buf: Uint8Array, len: number, tail?: FrameTail | null): boolean {
    if (this.failing.has(port)) return false;
    this.written.push({ port, bytes: buf.slice(0, len), tail: tail ?? null });
    return true;
  }

  ports(): number[] {
    return this.written.map((w) => w.port).sort((x, y) => x - y);
  }

  clear(): void {
    this.written.length = 0;
  }
}

/** Virtio header, Ethernet header, and `payloadLen` bytes of payload starting with `tag`. */
function frame(dst: string, src: string, tag = 0, payloadLen = 46): Uint8Array {
  const b = new Uint8Array(L2_OFF + 14 + payloadLen);
  emitEthernet({ dst, src, vlans: [], etherType: 0x0800 }, b, L2_OFF);
  put32(b, L2_OFF + 14, tag);
  return b;
}

function setup(livePorts: number[] = [0, 1, 2, 3]) {
  const fdb = new Fdb({ maxEntries: 256 });
  const counters = new Counters(MAX_PORTS);
  const writer = new FakeWriter();
  const fwd = new Forwarder(new Bridge(fdb, counters), writer, L2_OFF);
  for (const p of livePorts) fwd.addPort(p);
  const batch = new FrameBatch(32, 2048);
  /** Forwards the given frames as one batch, at time `now`. */
  const sendAt = (now: number, ...frames: [port: number, bytes: Uint8Array][]) => {
    for (const [port, bytes] of frames) {
      batch.slots[batch.count].set(bytes);
      batch.lens[batch.count] = bytes.length;
      batch.ports[batch.count] = port;
      batch.count++;
    }
    fwd.forward(batch, now);
  };
  const send = (...frames: [port: number, bytes: Uint8Array][]) => sendAt(0, ...frames);
  return { fdb, counters, writer, fwd, batch, send, sendAt };
}

/** A stand-in for the router: records what it is offered; takes the frames of ports in `takes`. */
class FakeRouter {
  readonly calls: string[] = [];
  readonly takes = new Set<number>();

  fromTunnel(buf: Uint8Array, len: number, from: number, now: number, segmentSize: number): void {
    this.calls.push(`fromTunnel tag ${get32(buf, 0)} len ${len} from ${from} at ${now} segments ${segmentSize}`);
  }

  fromPort(inPort: number, buf: Uint8Array, len: number): boolean {
    this.calls.push(`fromPort ${inPort} tag ${get32(buf, L2_OFF + 14)} len ${len}`);
    return this.takes.has(inPort);
  }

  flush(): void {
    this.calls.push("flush");
  }
}

function withRouter(livePorts?: number[]) {
  const s = setup(livePorts);
  const router = new FakeRouter();
  s.fwd.router = router as unknown as Router;
  return { ...s, router };
}

const TAIL: FrameTail = { buf: new Uint8Array(8), headLen: 4, offs: Int32Array.of(0), lens: Int32Array.of(8), count: 1 };

describe("Forwarder", () => {
  it("unknown unicast floods to every other live port, not to the in port nor to ports not attached", () => {
    const { send, writer, counters } = setup([0, 1, 2, 3]);
    send([0, frame(B, A)]);
    expect(writer.ports()).toEqual([1, 2, 3]);
    expect(counters.sw(SwitchCounter.UnknownUnicast)).toBe(1);
    expect(counters.portSnapshot(0).rx_flooded).toBe(1);
  });

  it("broadcast and multicast flood to every other live port", () => {
    const { send, writer, counters } = setup([0, 1, 2, 5]);
    send([2, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([0, 1, 5]);
    writer.clear();
    send([5, frame("01:00:5e:00:00:fb", B)]);
    expect(writer.ports()).toEqual([0, 1, 2]);
    expect(counters.sw(SwitchCounter.Broadcast)).toBe(1);
    expect(counters.sw(SwitchCounter.Multicast)).toBe(1);
  });

  it("unicast to a learned MAC goes to that one port only", () => {
    const { send, writer } = setup();
    send([0, frame(BROADCAST, A)], [2, frame(BROADCAST, B)]);
    writer.clear();
    send([2, frame(A, B)]);
    expect(writer.ports()).toEqual([0]);
    writer.clear();
    send([0, frame(B, A)]);
    expect(writer.ports()).toEqual([2]);
  });

  it("what is written is the whole slot: virtio header, frame and payload, unchanged", () => {
    const { send, writer } = setup();
    const f = frame(B, A, 0xdeadbeef, 100);
    f.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0); // a non-zero header must cross untouched too
    send([1, f]);
    expect(writer.written).toHaveLength(3);
    for (const w of writer.written) expect(w.bytes).toEqual(f);
  });

  it("a frame to a MAC learned on the same port is dropped and counted as same_port", () => {
    const { send, writer, counters } = setup();
    send([1, frame(BROADCAST, C)]);
    writer.clear();
    send([1, frame(C, A)]);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 2, rx_bytes: 120, tx_frames: 0, tx_bytes: 0, rx_flooded: 1, drop_same_port: 1 });
  });

  it("a frame from a group source MAC is dropped as eth_bad_source", () => {
    const { send, writer, counters, fdb } = setup();
    send([3, frame(A, "01:00:5e:00:00:01")]);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(3)).toMatchObject({ drop_eth_bad_source: 1 });
    expect(fdb.size).toBe(0);
  });

  it("a runt frame (header present, Ethernet header cut) is dropped as eth_runt", () => {
    const { send, writer, counters } = setup();
    send([2, frame(B, A).slice(0, L2_OFF + 13)], [2, frame(B, A).slice(0, L2_OFF)]);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(2)).toMatchObject({ drop_eth_runt: 2, rx_frames: 2, rx_bytes: 13 });
  });

  it("a frame shorter than the virtio header is dropped as vnet_hdr_truncated", () => {
    const { send, writer, counters } = setup();
    send([2, new Uint8Array(4)]);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(2)).toMatchObject({ drop_vnet_hdr_truncated: 1, rx_frames: 1 });
  });

  // Once a bug: rx_bytes was added to before the length check, and went down by 6 here.
  it("a frame shorter than the virtio header adds nothing to rx_bytes", () => {
    const { send, counters } = setup();
    send([2, new Uint8Array(4)]);
    expect(counters.portSnapshot(2).rx_bytes).toBe(0);
  });

  it("a station heard on another port has moved: counted as fdb_moved, and frames follow it", () => {
    const { send, writer, counters } = setup();
    send([0, frame(BROADCAST, A)], [3, frame(BROADCAST, A)]);
    expect(counters.sw(SwitchCounter.FdbMoved)).toBe(1);
    writer.clear();
    send([1, frame(A, B)]);
    expect(writer.ports()).toEqual([3]);
  });

  it("removing a port flushes the MACs learned on it; frames to them flood to the remaining ports", () => {
    const { send, writer, fwd, fdb } = setup();
    send([2, frame(BROADCAST, A)], [2, frame(BROADCAST, C)], [1, frame(BROADCAST, B)]);
    fwd.removePort(2);
    expect(fwd.isLive(2)).toBe(false);
    expect(fdb.entries(0)).toEqual([{ mac: B, port: 1, age: 0 }]);
    writer.clear();
    send([1, frame(A, B)]);
    expect(writer.ports()).toEqual([0, 3]);
  });

  it("says which ports are live", () => {
    const { fwd } = setup([0, 2]);
    expect([0, 1, 2, 3].map((p) => fwd.isLive(p))).toEqual([true, false, true, false]);
  });

  it("removing a port that is not attached changes nothing: MACs heard from it stay in the FDB", () => {
    const { send, writer, fwd, fdb } = setup([0, 1]);
    send([6, frame(BROADCAST, C)]); // arrives on 6, which was never added
    fwd.removePort(6);
    expect(fdb.entries(0)).toEqual([{ mac: C, port: 6, age: 0 }]);
    writer.clear();
    send([0, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([1]);
  });

  it("a port added again after removal receives floods again; adding twice does not duplicate it", () => {
    const { send, writer, fwd } = setup([0, 1]);
    fwd.addPort(2);
    fwd.addPort(2);
    send([0, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([1, 2]);
    fwd.removePort(2);
    fwd.removePort(2);
    writer.clear();
    send([0, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([1]);
    fwd.addPort(2);
    writer.clear();
    send([0, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([1, 2]);
  });

  it("unicast to a MAC learned on a port that is not attached is dropped as no_port", () => {
    const { send, writer, counters } = setup([0, 1]);
    send([6, frame(BROADCAST, C)]); // arrives on 6, which was never added
    writer.clear();
    send([0, frame(C, A)]);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(0)).toMatchObject({ drop_no_port: 1 });
  });

  it("a writer refusing a frame counts tx_error on the in port, and no tx on the refusing port", () => {
    const { send, writer, counters } = setup();
    writer.failing.add(2);
    send([0, frame(BROADCAST, A)]);
    expect(writer.ports()).toEqual([1, 3]);
    expect(counters.portSnapshot(0)).toMatchObject({ drop_tx_error: 1 });
    expect(counters.portSnapshot(2)).toMatchObject({ tx_frames: 0, tx_bytes: 0 });
    expect(counters.portSnapshot(1)).toMatchObject({ tx_frames: 1 });
    send([1, frame(A, B)]); // unicast to A on 0, which takes it
    expect(counters.portSnapshot(1).drop_tx_error).toBeUndefined();
    expect(counters.portSnapshot(0)).toMatchObject({ tx_frames: 1, drop_tx_error: 1 });
  });

  it("rx and tx frame and byte counters are exact and leave out the virtio header", () => {
    const { send, counters } = setup();
    send(
      [0, frame(BROADCAST, A, 1, 46)], // 60 bytes of frame: out on 1, 2, 3
      [1, frame(A, B, 2, 100)], //         114 bytes: out on 0
      [0, frame(B, A, 3, 1486)], //        1500 bytes: out on 1
      [2, frame(D, C, 4, 46)], //          60 bytes, unknown unicast: out on 0, 1, 3
    );
    expect(counters.portSnapshot(0)).toEqual({ rx_frames: 2, rx_bytes: 1560, tx_frames: 2, tx_bytes: 174, rx_flooded: 1 });
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 1, rx_bytes: 114, tx_frames: 3, tx_bytes: 60 + 1500 + 60, rx_flooded: 0 });
    expect(counters.portSnapshot(2)).toEqual({ rx_frames: 1, rx_bytes: 60, tx_frames: 1, tx_bytes: 60, rx_flooded: 1 });
    expect(counters.portSnapshot(3)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 2, tx_bytes: 120, rx_flooded: 0 });
  });

  it("frames of one batch are forwarded in order, and the batch is empty afterwards", () => {
    const { send, writer, batch } = setup();
    // B is learned by the first frame, so the third (to B) is unicast, not flooded.
    send([1, frame(BROADCAST, B, 1)], [0, frame(BROADCAST, A, 2)], [0, frame(B, A, 3)]);
    expect(writer.written.map((w) => [get32(w.bytes, L2_OFF + 14), w.port])).toEqual([
      [1, 0], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3], [3, 1],
    ]);
    expect(batch.count).toBe(0);
  });
});

describe("Forwarder with a router", () => {
  it("a datagram from the tunnel goes to the router alone, with its peer, time and segment size, and no port counts it", () => {
    const { fwd, batch, router, writer, counters, fdb } = withRouter();
    const d = new Uint8Array(300);
    put32(d, 0, 0xabcd);
    batch.slots[0].set(d);
    batch.lens[0] = 300;
    batch.ports[0] = TUNNEL;
    batch.peers[0] = 0xc0a8380c;
    batch.segments[0] = 1400;
    batch.count = 1;
    fwd.forward(batch, 42);
    expect(router.calls).toEqual([`fromTunnel tag ${0xabcd} len 300 from ${0xc0a8380c} at 42 segments 1400`, "flush"]);
    expect(writer.written).toEqual([]);
    expect(counters.v.every((x) => x === 0)).toBe(true);
    expect(fdb.size).toBe(0);
    expect(batch.count).toBe(0);
  });

  it("without a router, a datagram from the tunnel is dropped unseen: nothing written, learned or counted", () => {
    const { fwd, batch, writer, counters, fdb } = setup();
    batch.slots[0].set(frame(BROADCAST, A));
    batch.lens[0] = L2_OFF + 60;
    batch.ports[0] = TUNNEL;
    batch.count = 1;
    fwd.forward(batch, 0);
    expect(writer.written).toEqual([]);
    expect(counters.v.every((x) => x === 0)).toBe(true);
    expect(fdb.size).toBe(0);
  });

  it("each TAP frame is offered to the router first: what it takes is not bridged, what it declines is; then it is flushed", () => {
    const { send, router, writer, counters, fdb } = withRouter();
    router.takes.add(1);
    send([1, frame(BROADCAST, A, 7)], [2, frame(BROADCAST, B, 8)], [3, new Uint8Array(4)]);
    // The runt shorter than the virtio header is not offered.
    expect(router.calls).toEqual([`fromPort 1 tag 7 len ${L2_OFF + 60}`, `fromPort 2 tag 8 len ${L2_OFF + 60}`, "flush"]);
    expect(writer.written.map((w) => [get32(w.bytes, L2_OFF + 14), w.port])).toEqual([[8, 0], [8, 1], [8, 3]]);
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 1, rx_bytes: 60, tx_frames: 1, tx_bytes: 60, rx_flooded: 0 });
    expect(fdb.entries(0)).toEqual([{ mac: B, port: 2, age: 0 }]);
  });

  it("an empty batch still flushes the router", () => {
    const { fwd, batch, router } = withRouter();
    fwd.forward(batch, 0);
    expect(router.calls).toEqual(["flush"]);
  });
});

describe("Forwarder.routerIo: the router's way out to the TAP ports", () => {
  const toPeer = () => true;

  it("passes the tunnel's toPeer and gather through", () => {
    const { fwd } = setup();
    const gather = {} as never;
    const io = fwd.routerIo(toPeer, gather);
    expect(io.toPeer).toBe(toPeer);
    expect(io.gather).toBe(gather);
  });

  it("toPort writes to a live port with the tail and counts it there; a port not attached gets nothing and false", () => {
    const { fwd, writer, counters } = setup([0, 1]);
    const io = fwd.routerIo(toPeer);
    const f = frame(A, B, 5, 86);
    expect(io.toPort(1, f, f.length, TAIL)).toBe(true);
    expect(writer.written).toEqual([{ port: 1, bytes: f, tail: TAIL }]);
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 1, tx_bytes: 100, rx_flooded: 0 });
    writer.clear();
    expect(io.toPort(2, f, f.length)).toBe(false);
    expect(writer.written).toEqual([]);
    expect(counters.portSnapshot(2)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 0, tx_bytes: 0, rx_flooded: 0 });
  });

  it("toPort to a port that refuses the frame says false and counts tx_error on that port", () => {
    const { fwd, writer, counters } = setup([0, 1]);
    writer.failing.add(1);
    const f = frame(A, B);
    expect(fwd.routerIo(toPeer).toPort(1, f, f.length)).toBe(false);
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 0, rx_bytes: 0, tx_frames: 0, tx_bytes: 0, rx_flooded: 0, drop_tx_error: 1 });
  });

  it("toMac sends to the port the FDB has the MAC on, port 0 included, with the tail", () => {
    const { fwd, send, writer } = setup();
    send([0, frame(BROADCAST, A)], [2, frame(BROADCAST, B)]);
    writer.clear();
    const io = fwd.routerIo(toPeer);
    const f = frame(A, C, 9);
    io.toMac(f, f.length, 0x0200, 0x0a630001, 3, TAIL);
    expect(writer.written).toEqual([{ port: 0, bytes: f, tail: TAIL }]);
    writer.clear();
    io.toMac(f, f.length, 0x0200, 0x0a630002, 3);
    expect(writer.ports()).toEqual([2]);
  });

  it("toMac floods an unknown MAC to every live port but the one excepted, counting tx on each", () => {
    const { fwd, writer, counters } = setup([0, 1, 2, 3]);
    const f = frame(D, C);
    fwd.routerIo(toPeer).toMac(f, f.length, 0x0200, 0x0a630004, 2, TAIL);
    expect(writer.ports()).toEqual([0, 1, 3]);
    expect(writer.written.every((w) => w.tail === TAIL)).toBe(true);
    expect([0, 1, 2, 3].map((p) => counters.portSnapshot(p).tx_frames)).toEqual([1, 1, 0, 1]);
  });

  it("toMac floods a MAC the FDB has on a port not attached", () => {
    const { fwd, send, writer } = setup([0, 1]);
    send([6, frame(BROADCAST, C)]); // C heard on 6, which was never added
    writer.clear();
    const f = frame(C, A);
    fwd.routerIo(toPeer).toMac(f, f.length, 0x0200, 0x0a630003, -1);
    expect(writer.ports()).toEqual([0, 1]);
  });

  it("toMac looks the MAC up at the time of the last batch: an aged-out station is flooded to", () => {
    const { fwd, sendAt, writer } = setup([0, 1, 2]);
    sendAt(0, [0, frame(BROADCAST, A)]);
    const io = fwd.routerIo(toPeer);
    const f = frame(A, B);
    sendAt(300);
    writer.clear();
    io.toMac(f, f.length, 0x0200, 0x0a630001, -1);
    expect(writer.ports()).toEqual([0]);
    sendAt(300.5);
    writer.clear();
    io.toMac(f, f.length, 0x0200, 0x0a630001, -1);
    expect(writer.ports()).toEqual([0, 1, 2]);
  });
});

describe("Forwarder against a naive learning bridge, random traffic", () => {
  const PORTS = 6;
  const STATIONS = 14;
  const ROUNDS = trials(1500, 150);

  for (const seed of [1, 2, 3, 42]) {
    it(`every frame reaches exactly the expected ports (seed ${seed})`, () => {
      const rnd = prng(seed);
      const { send, writer, fwd, counters } = setup([...Array(PORTS).keys()]);
      const live = new Set<number>([...Array(PORTS).keys()]);
      const stations = [...Array(STATIONS).keys()].map((i) => formatMacHiLo(0x0200, 0x0a630100 + i));
      const unknown = [...Array(4).keys()].map((i) => formatMacHiLo(0x0200, 0x0a63ff00 + i)); // never send
      const group = [BROADCAST, "01:00:5e:00:00:fb", "33:33:00:00:00:01"];
      const at = stations.map(() => Math.floor(rnd() * PORTS)); // where each station is plugged in
      const model = new Map<string, number>(); // the naive FDB: MAC → port
      const expected = new Map<number, number[]>();
      let tag = 0;
      const kinds = { flood: 0, unicast: 0, filtered: 0 };
      const txFrames = new Array<number>(MAX_PORTS).fill(0);

      for (let round = 0; round < ROUNDS; round++) {
        // Now and then a port goes away (its stations move elsewhere) or comes back.
        if (rnd() < 0.02) {
          const p = Math.floor(rnd() * PORTS);
          if (live.has(p) && live.size > 2) {
            live.delete(p);
            fwd.removePort(p);
            for (const [mac, port] of model) if (port === p) model.delete(mac);
          } else if (!live.has(p)) {
            live.add(p);
            fwd.addPort(p);
          }
        }
        const livePorts = [...live];
        const frames: [number, Uint8Array][] = [];
        const n = 1 + Math.floor(rnd() * 16);
        for (let k = 0; k < n; k++) {
          const s = Math.floor(rnd() * STATIONS);
          if (!live.has(at[s]) || rnd() < 0.03) at[s] = livePorts[Math.floor(rnd() * livePorts.length)];
          const r = rnd();
          const dst = r < 0.7 ? stations[Math.floor(rnd() * STATIONS)]
            : r < 0.85 ? group[Math.floor(rnd() * group.length)]
            : unknown[Math.floor(rnd() * unknown.length)];
          const inPort = at[s];
          tag++;
          // The model, frame by frame in batch order: learn the source, then decide.
          model.set(stations[s], inPort);
          const known = model.get(dst);
          let out: number[];
          if (group.includes(dst) || known === undefined) { out = livePorts.filter((p) => p !== inPort); kinds.flood++; }
          else if (known === inPort) { out = []; kinds.filtered++; }
          else { out = [known]; kinds.unicast++; }
          expected.set(tag, out.sort((x, y) => x - y));
          for (const p of out) txFrames[p]++;
          frames.push([inPort, frame(dst, stations[s], tag, 4 + Math.floor(rnd() * 200))]);
        }
        writer.clear();
        send(...frames);
        const got = new Map<number, number[]>();
        for (const w of writer.written) {
          const t = get32(w.bytes, L2_OFF + 14);
          got.set(t, [...(got.get(t) ?? []), w.port]);
        }
        for (let t = tag - n + 1; t <= tag; t++) {
          expect((got.get(t) ?? []).sort((x, y) => x - y), `seed ${seed}, round ${round}, frame ${t}`).toEqual(expected.get(t));
        }
      }
      for (let p = 0; p < MAX_PORTS; p++) expect(counters.portSnapshot(p).tx_frames, `seed ${seed}, port ${p}`).toBe(txFrames[p]);
      // The traffic exercised every kind of decision.
      expect(kinds.flood).toBeGreaterThan(ROUNDS / 3);
      expect(kinds.unicast).toBeGreaterThan(ROUNDS / 3);
      expect(kinds.filtered).toBeGreaterThan(ROUNDS / 30);
    });
  }
});

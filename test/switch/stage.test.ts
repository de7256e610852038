// A stage added from outside: a test-only stage that counts the frames matching one predicate
// and drops (DONE) those matching another, placed by name into a switch's pipelines with
// nothing else changed. Frames it drops reach no port, no tunnel and no later stage (the
// bridge learns nothing from them, deliver counts nothing); the others go on as before.
import { describe, expect, it } from "vitest";
import { buildStages } from "../../src/switch/datapath.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, TUNNEL } from "../../src/switch/frames.ts";
import type { Stage } from "../../src/switch/pipeline.ts";
import type { PortWriter } from "../../src/switch/stages/port-out.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { SwitchCounter } from "../../src/switch/counters.ts";
import type { FrameTail } from "../../src/tunnel/contract.ts";
import { get16 } from "../../src/wire/bytes.ts";
import { macHi, macLo, parseMac } from "../../src/wire/mac.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { CollectingSink, frameBytes } from "../support/gather.ts";
import { ADDR, config, encap, GATEWAY_PORT, GW_MAC, ip, ipFrame, POD_A, POD_B } from "./router-support.ts";

/** The UDP destination port of entry i, or -1 if it is not a UDP/IPv4 frame (its headers in its head). */
function udpPort(f: Frames, i: number): number {
  const b = f.bufs[i];
  const eth = f.offs[i] + ETH_OFF;
  if (f.headLen(i) < ETH_OFF + 14 + 28 || get16(b, eth + 12) !== 0x0800 || b[eth + 14 + 9] !== 17) return -1;
  return get16(b, eth + 14 + (b[eth + 14] & 0x0f) * 4 + 2);
}

/** The stage under test: knows nothing of the others, only the Frames vector and its verdicts. */
class Filter implements Stage {
  counted = 0;
  dropped = 0;
  constructor(readonly name: string, private readonly count: (f: Frames, i: number) => boolean, private readonly drop: (f: Frames, i: number) => boolean) {}

  run(f: Frames): void {
    for (let i = 0; i < f.count; i++) {
      if (f.outs[i] === DONE) continue;
      if (this.count(f, i)) this.counted++;
      if (this.drop(f, i)) {
        f.outs[i] = DONE;
        this.dropped++;
      }
    }
  }
}

/** Counts UDP frames; drops those to port 53. */
const dnsFilter = (name: string) => new Filter(name, (f, i) => udpPort(f, i) >= 0, (f, i) => udpPort(f, i) === 53);

/** The ports' side of the switch: every frame written, as a TAP would get it. */
class Ports implements PortWriter {
  written: { port: number; bytes: Uint8Array }[] = [];
  write(port: number, buf: Uint8Array, off: number, len: number, tail: FrameTail | null): boolean {
    this.written.push({ port, bytes: frameBytes(buf.subarray(off), len, tail) });
    return true;
  }
}

const udpTo = (eth: { dst: string; src: string }, src: string, dst: string, dstPort: number) => {
  const f = ipFrame({ eth, src, dst, payloadLen: 20 + dstPort % 7 });
  f[ETH_OFF + 34 + 2] = dstPort >> 8;
  f[ETH_OFF + 34 + 3] = dstPort & 0xff;
  f[ETH_OFF + 34 + 6] = f[ETH_OFF + 34 + 7] = 0; // no UDP checksum: the port was changed
  return f;
};
const dstPortOf = (frame: Uint8Array) => get16(frame, ETH_OFF + 34 + 2);
const mac = (s: string) => parseMac(s)!;

describe("a stage added to a switch's pipelines, the others unchanged", () => {
  it("one node: before the bridge, what it drops is neither bridged nor learned; the rest is", () => {
    const state = SwitchState.make(8, FDB_DEFAULTS);
    for (const p of [1, 2, 3]) state.ports.add(p);
    const ports = new Ports();
    const stages = buildStages(state, ports);
    expect(stages.receive).toBeUndefined();
    expect(stages.ports.names()).toEqual(["validate", "port-security", "bridge", "port-out"]);
    const filter = dnsFilter("dns-filter");
    stages.ports.insertBefore("bridge", filter);
    expect(stages.ports.names()).toEqual(["validate", "port-security", "dns-filter", "bridge", "port-out"]);
    expect(() => stages.ports.insertBefore("policy", filter)).toThrow('the ports pipeline has no stage "policy" (it has: validate, port-security, dns-filter, bridge, port-out)');

    const C = "0a:58:0a:f4:01:09"; // a third pod's MAC, only ever in a frame that is dropped
    const D = "0a:58:0a:f4:01:0a"; // a fourth's, on the same port
    const frames = [
      { port: 2, frame: udpTo({ dst: POD_A.mac, src: POD_B.mac }, POD_B.ip, POD_A.ip, 80) }, // B -> A, flooded: A unknown yet
      { port: 1, frame: udpTo({ dst: POD_B.mac, src: POD_A.mac }, POD_A.ip, POD_B.ip, 53) }, // dropped
      { port: 1, frame: udpTo({ dst: POD_B.mac, src: POD_A.mac }, POD_A.ip, POD_B.ip, 80) }, // to B's port (learned above)
      { port: 3, frame: udpTo({ dst: POD_B.mac, src: C }, "10.244.1.9", POD_B.ip, 53) }, // dropped
      { port: 3, frame: ipFrame({ eth: { dst: POD_B.mac, src: D, etherType: 0x86dd }, src: "10.244.1.9", dst: POD_B.ip }) }, // not UDP/IPv4: not counted
    ];
    const batch = new Frames(8);
    for (const { port, frame } of frames) batch.push(frame, 0, frame.length, port);
    stages.ports.run(batch, 0);

    expect(filter.counted).toBe(4);
    expect(filter.dropped).toBe(2);
    expect(ports.written.map((w) => [w.port, dstPortOf(w.bytes)])).toEqual([[1, 80], [3, 80], [2, 80], [2, dstPortOf(frames[4].frame)]]);
    expect(ports.written.map((w) => w.bytes.length)).toEqual([frames[0].frame.length, frames[0].frame.length, frames[2].frame.length, frames[4].frame.length]);
    // the bridge never saw the dropped frames: it learned B, A and D, never C
    const where = (m: string) => state.fdb.lookup(macHi(mac(m), 0), macLo(mac(m), 0), 0);
    expect([POD_B.mac, POD_A.mac, D, C].map(where)).toEqual([2, 1, 3, -1]);
    expect(state.counters.sw(SwitchCounter.FdbLearned)).toBe(3);
    // counted in on their ports all the same (validate runs first), sent out nowhere
    expect(state.counters.portSnapshot(1)).toMatchObject({ rx_frames: 2, tx_frames: 1 });
    expect(state.counters.portSnapshot(3)).toMatchObject({ rx_frames: 2, tx_frames: 1 });
  });

  it("routing node: before the bridge it sees routed frames too, and keeps them from the tunnel; before deliver, frames from the tunnel", () => {
    const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
    for (let p = 0; p < 7; p++) state.ports.add(p);
    state.cluster!.gatewayPort = GATEWAY_PORT;
    state.cluster!.neighbors.learn(ip(POD_B.ip), macHi(mac(POD_B.mac), 0), macLo(mac(POD_B.mac), 0));
    const ports = new Ports();
    const tunnel = new CollectingSink();
    const stages = buildStages(state, ports, { out: tunnel, segmenting: false, merge: false });
    const out = dnsFilter("egress");
    const rx = dnsFilter("ingress");
    stages.ports.insertBefore("bridge", out);
    stages.receive!.insertBefore("deliver", rx);
    expect(stages.ports.names()).toEqual(["tunnel-in", "validate", "port-security", "route", "gateway", "egress", "bridge", "tunnel-out", "port-out"]);
    expect(stages.receive!.names()).toEqual(["ingress", "deliver", "gateway", "port-out"]);

    // From pod A: two to node 2 (routed), two to pod B on this node (bridged); one of each to port 53.
    const toGw = { dst: GW_MAC, src: POD_A.mac };
    const sent = [
      udpTo(toGw, POD_A.ip, "10.244.2.5", 53), udpTo(toGw, POD_A.ip, "10.244.2.5", 5353),
      udpTo({ dst: POD_B.mac, src: POD_A.mac }, POD_A.ip, POD_B.ip, 53), udpTo({ dst: POD_B.mac, src: POD_A.mac }, POD_A.ip, POD_B.ip, 80),
    ];
    const batch = new Frames(16);
    for (const f of sent) batch.push(f, 0, f.length, POD_A.port);
    // And from node 2 through the tunnel, for pod B: to port 53, and to 80.
    const slots = [53, 80].map((p) => {
      const d = encap("udp", udpTo(toGw, "10.244.2.5", POD_B.ip, p).subarray(ETH_OFF + 14));
      const slot = new Uint8Array(64 + d.length);
      slot.set(d, stages.backend!.recvOff);
      return { slot, len: d.length };
    });
    for (const { slot, len } of slots) {
      const i = batch.push(slot, stages.backend!.recvOff, len, TUNNEL);
      batch.aux[i] = ip(ADDR[1]);
      batch.strides[i] = 0;
    }
    stages.ports.run(batch, 0);

    expect(tunnel.datagrams.map((d) => [d.peer, get16(d.bytes, 20 + 2)])).toEqual([[1, 5353]]);
    expect(state.counters.sw(SwitchCounter.Routed)).toBe(1);
    // the bridged one to port 80 is flooded (B's port is not learned), the one from the tunnel goes the same way
    expect(ports.written.filter((w) => dstPortOf(w.bytes) === 53)).toEqual([]);
    expect(new Set(ports.written.map((w) => dstPortOf(w.bytes)))).toEqual(new Set([80]));
    const fromNode2 = ports.written.filter((w) => w.bytes[ETH_OFF + 14 + 14] === 2); // source 10.244.2.5
    expect(fromNode2.map((w) => w.port)).toEqual([0, 1, 2, 3, 4, 5, 6]); // B's port unknown: to every port
    expect(ports.written.filter((w) => w.bytes[ETH_OFF + 14 + 14] === 1).map((w) => w.port)).toEqual([0, 2, 3, 4, 5, 6]); // from A, to B flooded
    expect(state.counters.sw(SwitchCounter.Delivered)).toBe(1);
    expect(out.counted).toBe(4);
    expect(out.dropped).toBe(2);
    expect(rx.counted).toBe(2);
    expect(rx.dropped).toBe(1);
    // what the stages before it did still stands: the tunnel counted both datagrams in
    expect(state.counters.portSnapshot(state.tunnelRow)).toMatchObject({ rx_frames: 2, tx_frames: 1 });
  });
});

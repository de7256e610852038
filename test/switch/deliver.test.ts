// deliver (switch/stages/deliver.ts) driven on its own over a Frames vector: which entries it
// takes (frames from the tunnel, undecided), the port it picks from the FDB and the live ports,
// and the verdict it leaves on a frame it drops. The gateway port is 7 here, so that port 0 is
// a pod's like any other.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, FLOOD, Frames, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import { Deliver } from "../../src/switch/stages/deliver.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { macHi, macLo, parseMac } from "../../src/wire/mac.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { config, ip, ipFrame, POD_A, POD_B, VTEP } from "./router-support.ts";

const GATEWAY_PORT = 7;
/** Node 2, the sender of every tunnel frame here. */
const FROM_NODE = 1;

function make() {
  const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
  for (let p = 0; p < 7; p++) state.ports.add(p);
  const cl = state.cluster!;
  cl.gatewayPort = GATEWAY_PORT;
  const deliver = new Deliver(state);
  const f = new Frames(8);
  /** `pod` is known (neighbour table) and its MAC learned on `port` (FDB). */
  const knows = (pod: { ip: string; mac: string }, port: number) => {
    const m = parseMac(pod.mac)!;
    cl.neighbors.learn(ip(pod.ip), macHi(m, 0), macLo(m, 0));
    state.fdb.learn(macHi(m, 0), macLo(m, 0), port, 0);
  };
  const tunnelDrops = () => Object.keys(state.counters.portSnapshot(state.tunnelRow)).filter((k) => k.startsWith("drop_"));
  const fromTunnel = (dst: string, src = "10.244.2.5") => f.push(ipFrame({ eth: { dst: VTEP[0], src: VTEP[1] }, src, dst }), 0, ipFrame({ src, dst }).length, TUNNEL, FROM_NODE);
  return { state, deliver, f, knows, tunnelDrops, fromTunnel, delivered: () => state.counters.sw(SwitchCounter.Delivered) };
}

describe("deliver", () => {
  it("sends a frame for a pod learned on port 0 to port 0, and counts no drop", () => {
    const { deliver, f, knows, tunnelDrops, fromTunnel, delivered } = make();
    knows(POD_A, 0);
    const i = fromTunnel(POD_A.ip);
    deliver.run(f, 0);
    expect(f.outs[i]).toBe(0);
    expect(delivered()).toBe(1);
    expect(tunnelDrops()).toEqual([]);
  });

  it("floods a frame for a pod whose learned port is no longer live", () => {
    const { state, deliver, f, knows, fromTunnel } = make();
    knows(POD_A, 5);
    state.ports.remove(5);
    const i = fromTunnel(POD_A.ip);
    deliver.run(f, 0);
    expect(f.outs[i]).toBe(FLOOD);
  });

  it("leaves frames from the pods' ports alone", () => {
    const { deliver, f, knows, delivered } = make();
    knows(POD_A, 0);
    const i = f.push(ipFrame({ src: POD_B.ip, dst: POD_A.ip }), 0, ipFrame({ src: POD_B.ip, dst: POD_A.ip }).length, 2);
    deliver.run(f, 0);
    expect(f.outs[i]).toBe(PENDING);
    expect(delivered()).toBe(0);
  });

  it("marks a frame it drops DONE, for the stages after it", () => {
    const { deliver, f, knows, tunnelDrops, fromTunnel } = make();
    knows(POD_A, 0);
    const i = fromTunnel(POD_A.ip);
    f.bufs[i][ETH_OFF + 14 + 10] ^= 0xff; // the IPv4 header checksum
    deliver.run(f, 0);
    expect(f.outs[i]).toBe(DONE);
    expect(tunnelDrops()).toEqual(["drop_ipv4_bad_checksum"]);
  });

  it("handles the vector's first `count` entries only", () => {
    const { deliver, f, knows, fromTunnel, delivered } = make();
    knows(POD_A, 0);
    knows(POD_B, 2);
    fromTunnel(POD_A.ip);
    const j = fromTunnel(POD_B.ip);
    f.count = 1;
    deliver.run(f, 0);
    expect(f.outs[j]).toBe(PENDING);
    expect(delivered()).toBe(1);
  });
});

describe("deliver: a node speaks only for its pod CIDR and its own address (#13, finding 3)", () => {
  it.each([
    ["one of its pods", "10.244.2.5"],
    ["its pod CIDR's first address", "10.244.2.0"],
    ["its pod CIDR's last address", "10.244.2.255"],
    ["its own underlay address", "192.168.56.12"],
  ])("accepts an inner source that is %s", (_what, src) => {
    const { deliver, f, knows, tunnelDrops, fromTunnel } = make();
    knows(POD_A, 0);
    const i = fromTunnel(POD_A.ip, src);
    deliver.run(f, 0);
    expect([f.outs[i], tunnelDrops()]).toEqual([0, []]);
  });

  it.each([
    ["an address beyond the cluster", "8.8.8.8"],
    ["the outside namespace's address", "203.0.113.2"],
    ["this node's own underlay address", "192.168.56.11"],
    ["a third node's underlay address", "192.168.56.13"],
    ["a pod of this node", "10.244.1.9"],
    ["a pod of a third node", "10.244.3.5"],
    ["the cluster CIDR's first address", "10.244.0.0"],
    ["an address just past the cluster CIDR", "10.245.0.0"],
  ])("drops, counted as tunnel_spoofed, an inner source that is %s", (_what, src) => {
    const { deliver, f, knows, tunnelDrops, fromTunnel, delivered } = make();
    knows(POD_A, 0);
    const i = fromTunnel(POD_A.ip, src);
    deliver.run(f, 0);
    expect([f.outs[i], tunnelDrops(), delivered()]).toEqual([DONE, ["drop_tunnel_spoofed"], 0]);
  });
});

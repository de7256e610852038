// route (switch/stages/route.ts) driven on its own over a Frames vector: which entries it takes
// (frames from the pods' ports, undecided), and the super-frames it lets through to a backend
// that cuts them (TCP and UDP over IPv4 only) or to one that carries them whole (any).
import { describe, expect, it } from "vitest";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, PENDING, TO_NODE, TUNNEL } from "../../src/switch/frames.ts";
import { Route } from "../../src/switch/stages/route.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { ETH_OFF, GSO_TCPV6, GSO_UDP } from "../../src/wire/virtio.ts";
import { ADDR, config, GATEWAY_PORT, GW, GW_MAC, ipFrame, POD_A, VTEP } from "./router-support.ts";

const REMOTE_POD = "10.244.2.5";
const TTL_AT = ETH_OFF + 14 + 8;

function make(wholeFrames = false) {
  const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
  for (let p = 0; p < 7; p++) state.ports.add(p);
  state.cluster!.gatewayPort = GATEWAY_PORT;
  const route = new Route(state, wholeFrames);
  const f = new Frames(8);
  /** A frame from pod A to the gateway MAC, for a pod of node 2 (the route stage's to take), from `port`. */
  const toRemote = (port: number, gsoType = 0) => {
    const b = ipFrame({ src: POD_A.ip, dst: REMOTE_POD });
    b[1] = gsoType;
    return f.push(b, 0, b.length, port);
  };
  const drops = (port: number) => Object.keys(state.counters.portSnapshot(port)).filter((k) => k.startsWith("drop_"));
  return { state, route, f, toRemote, drops };
}

describe("route", () => {
  it("routes a frame from a pod's port to the node that owns its destination, its TTL decremented", () => {
    const { route, f, toRemote } = make();
    const i = toRemote(1);
    route.run(f, 0);
    expect([f.outs[i], f.nodes[i], f.bufs[i][TTL_AT]]).toEqual([TO_NODE, 1, 63]);
  });

  it("leaves a frame from the tunnel alone, even one that looks routable", () => {
    const { route, f, toRemote } = make();
    const i = toRemote(TUNNEL);
    route.run(f, 0);
    expect([f.outs[i], f.bufs[i][TTL_AT]]).toEqual([PENDING, 64]);
  });

  it("leaves a frame an earlier stage decided alone", () => {
    const { route, f, toRemote } = make();
    const i = toRemote(1);
    f.outs[i] = DONE;
    route.run(f, 0);
    expect([f.outs[i], f.bufs[i][TTL_AT]]).toEqual([DONE, 64]);
  });

  it("handles the vector's first `count` entries only", () => {
    const { route, f, toRemote } = make();
    toRemote(1);
    const j = toRemote(2);
    f.count = 1;
    route.run(f, 0);
    expect([f.outs[j], f.bufs[j][TTL_AT]]).toEqual([PENDING, 64]);
  });

  for (const [name, gso] of [["UDP (UFO)", GSO_UDP], ["TCPv6", GSO_TCPV6]] as const) {
    it(`drops a ${name} super-frame, which it could not cut, for a backend that cuts super-frames`, () => {
      const { route, f, toRemote, drops } = make(false);
      const i = toRemote(1, gso);
      route.run(f, 0);
      expect(f.outs[i]).toBe(DONE);
      expect(drops(1)).toEqual(["drop_gso_unsupported"]);
    });

    it(`routes a ${name} super-frame as it is for a backend that carries super-frames whole`, () => {
      const { route, f, toRemote, drops } = make(true);
      const i = toRemote(1, gso);
      route.run(f, 0);
      expect(f.outs[i]).toBe(TO_NODE);
      expect(drops(1)).toEqual([]);
    });
  }
});

describe("route: the sender's side of the tunnel's inner-source rule (#13, finding 3)", () => {
  /** A frame for node 2's pod from `src`: from the gateway port (tapnet0) to node 2's VTEP MAC, or from a pod's port to the gateway MAC. */
  const from = (port: number, src: string) => {
    const m = make();
    const b = ipFrame({ eth: port === GATEWAY_PORT ? { dst: VTEP[1], src: GW_MAC } : {}, src, dst: REMOTE_POD });
    const i = m.f.push(b, 0, b.length, port);
    m.route.run(m.f, 0);
    return { out: m.f.outs[i], drops: m.drops(port), ttl: b[TTL_AT] };
  };

  it.each([
    ["the node's gateway address", GATEWAY_PORT, GW],
    ["the node's own underlay address", GATEWAY_PORT, ADDR[0]],
    ["the first address of the node's pod CIDR", GATEWAY_PORT, "10.244.1.0"],
    ["the last address of the node's pod CIDR", GATEWAY_PORT, "10.244.1.255"],
    ["a pod of the node", 1, POD_A.ip],
  ])("sends from %s", (_what, port, src) => {
    expect(from(port, src)).toEqual({ out: TO_NODE, drops: [], ttl: 63 });
  });

  it.each([
    ["beyond the cluster (the node's kernel forwarding the outside's packet)", GATEWAY_PORT, "203.0.113.2"],
    ["another node's underlay address", GATEWAY_PORT, ADDR[1]],
    ["the node's pod CIDR's neighbour", GATEWAY_PORT, "10.244.0.255"],
    ["another node's pod (from a port without an identity)", 3, "10.244.2.7"],
    ["the destination's own node's pod", 3, "10.244.2.9"],
  ])("drops, counted as foreign_source, what comes from %s", (_what, port, src) => {
    expect(from(port, src)).toEqual({ out: DONE, drops: ["drop_foreign_source"], ttl: 64 });
  });
});

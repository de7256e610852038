// Port security (#13, finding 2): the port-security stage on its own, rule by rule, then the
// routing switch's stages together reproducing the findings: a gratuitous ARP from pod
// A claiming B's address, frames with B's source MAC, A sending as B to another node, and a
// flood of random source MACs; and on a port without an identity, the FDB's per-port quota.
import { describe, expect, it } from "vitest";
import { buildStages } from "../../src/switch/datapath.ts";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import { PortIdentities, PortSecurity } from "../../src/switch/stages/port-security.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { ARP_REPLY, ARP_REQUEST, emitArp } from "../../src/wire/arp.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { formatMacHiLo, macHi, macLo, parseMac } from "../../src/wire/mac.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { prng } from "../support/random.ts";
import { config, datagram, GATEWAY_PORT, GW, GW_MAC, ip, ipFrame, POD_A, POD_B, setup } from "./router-support.ts";

const hiOf = (m: string) => macHi(parseMac(m)!, 0);
const loOf = (m: string) => macLo(parseMac(m)!, 0);
const STRANGER = "02:00:00:00:00:99";

/** An ARP frame as a TAP hands it over. */
function arpFrame(a: { op?: number; sha: string; spa: string; tpa: string; ethSrc?: string; len?: number; htype?: number }): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 28);
  emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: a.ethSrc ?? a.sha, vlans: [], etherType: 0x0806 }, b, ETH_OFF);
  emitArp({ operation: a.op ?? ARP_REQUEST, senderMac: a.sha, senderIp: a.spa, targetMac: "00:00:00:00:00:00", targetIp: a.tpa }, b, ETH_OFF + 14);
  if (a.htype !== undefined) b[ETH_OFF + 14 + 1] = a.htype;
  return a.len === undefined ? b : b.subarray(0, a.len);
}

/** A frame of another EtherType (IPv6's 0x86dd here), from `src`. */
function otherFrame(src: string, etherType = 0x86dd): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 46);
  emitEthernet({ dst: "33:33:00:00:00:01", src, vlans: [], etherType }, b, ETH_OFF);
  return b;
}

/** The stage over a one-node switch of 8 ports (or a routing one), pod A on port 1 with its identity. */
function make(routing = false) {
  const state = SwitchState.make(8, FDB_DEFAULTS, routing ? config("udp") : undefined);
  const ids = new PortIdentities(8);
  expect(ids.bind(POD_A.port, POD_A.mac, ip(POD_A.ip), state, 0)).toBeUndefined();
  const stage = new PortSecurity(state, ids);
  /** What the stage makes of `frame` from `port`: PENDING (passed) or the drop counted. */
  const verdict = (port: number, frame: Uint8Array): string => {
    const f = new Frames(2);
    f.push(frame, 0, frame.length, port);
    const before = state.counters.portSnapshot(port);
    stage.run(f);
    const after = state.counters.portSnapshot(port);
    const grew = Object.keys(after).filter((k) => k.startsWith("drop_") && after[k] !== (before[k] ?? 0));
    if (f.outs[0] === PENDING) return grew.length ? `passed, yet counted ${grew}` : "pass";
    return f.outs[0] === DONE ? grew.join(",") : `out ${f.outs[0]}`;
  };
  return { state, ids, stage, verdict };
}

describe("port security: a pod port with an identity sends only as its pod", () => {
  const { verdict } = make();
  const A = POD_A;

  it.each([
    ["IPv4 from its own MAC and address", ipFrame({ eth: { src: A.mac }, src: A.ip, dst: "10.244.2.5" }), "pass"],
    ["IPv4 from another MAC", ipFrame({ eth: { src: POD_B.mac }, src: A.ip, dst: "10.244.2.5" }), "drop_spoofed_source_mac"],
    ["IPv4 from another address (B's)", ipFrame({ eth: { src: A.mac }, src: POD_B.ip, dst: "10.244.2.5" }), "drop_spoofed_source_ip"],
    ["IPv4 from an address beyond the cluster", ipFrame({ eth: { src: A.mac }, src: "8.8.8.8", dst: "10.244.2.5" }), "drop_spoofed_source_ip"],
    ["IPv4 from 0.0.0.0 (DHCP is not tapnet's)", ipFrame({ eth: { src: A.mac }, src: "0.0.0.0", dst: "255.255.255.255" }), "drop_spoofed_source_ip"],
    ["IPv4 too short to hold its source", ipFrame({ eth: { src: A.mac }, src: A.ip, dst: GW }).subarray(0, ETH_OFF + 14 + 15), "drop_ipv4_truncated"],
    ["ARP request for the gateway", arpFrame({ sha: A.mac, spa: A.ip, tpa: GW }), "pass"],
    ["ARP reply", arpFrame({ op: ARP_REPLY, sha: A.mac, spa: A.ip, tpa: POD_B.ip }), "pass"],
    ["ARP probe (RFC 5227: sender 0.0.0.0, a request)", arpFrame({ sha: A.mac, spa: "0.0.0.0", tpa: A.ip }), "pass"],
    ["ARP reply from 0.0.0.0", arpFrame({ op: ARP_REPLY, sha: A.mac, spa: "0.0.0.0", tpa: POD_B.ip }), "drop_spoofed_source_ip"],
    ["gratuitous ARP claiming B's address", arpFrame({ sha: A.mac, spa: POD_B.ip, tpa: POD_B.ip }), "drop_spoofed_source_ip"],
    ["gratuitous ARP reply claiming B's address", arpFrame({ op: ARP_REPLY, sha: A.mac, spa: POD_B.ip, tpa: POD_B.ip }), "drop_spoofed_source_ip"],
    ["ARP whose sender MAC is B's, from A's Ethernet source", arpFrame({ ethSrc: A.mac, sha: POD_B.mac, spa: A.ip, tpa: GW }), "drop_spoofed_source_mac"],
    ["ARP from B's MAC altogether", arpFrame({ sha: POD_B.mac, spa: POD_B.ip, tpa: GW }), "drop_spoofed_source_mac"],
    ["ARP too short to check", arpFrame({ sha: A.mac, spa: A.ip, tpa: GW, len: ETH_OFF + 14 + 27 }), "drop_arp_truncated"],
    ["ARP of another hardware type", arpFrame({ sha: A.mac, spa: A.ip, tpa: GW, htype: 6 }), "drop_arp_unsupported"],
    ["IPv6 from its own MAC", otherFrame(A.mac), "pass"],
    ["IPv6 from another MAC", otherFrame(STRANGER), "drop_spoofed_source_mac"],
    ["a runt: the bridge's to count", ipFrame({ src: A.ip, dst: GW }).subarray(0, ETH_OFF + 13), "pass"],
  ])("%s: %s", (_what, frame, want) => {
    expect(verdict(A.port, frame)).toBe(want);
  });

  it("a MAC equal to its own in one half only is another MAC", () => {
    const m = parseMac(A.mac)!;
    m[5] ^= 1;
    expect(verdict(A.port, otherFrame(formatMacHiLo(macHi(m, 0), macLo(m, 0))))).toBe("drop_spoofed_source_mac");
    m[5] ^= 1;
    m[0] ^= 2;
    expect(verdict(A.port, otherFrame(formatMacHiLo(macHi(m, 0), macLo(m, 0))))).toBe("drop_spoofed_source_mac");
  });
});

describe("port security: a port without an identity", () => {
  it("sends from any MAC and address, except a MAC pinned to another port", () => {
    const { verdict, state } = make();
    expect(verdict(3, ipFrame({ eth: { src: STRANGER }, src: "10.244.1.77", dst: GW }))).toBe("pass");
    expect(verdict(3, arpFrame({ sha: STRANGER, spa: POD_A.ip, tpa: POD_A.ip }))).toBe("pass"); // its address is not its to keep out: the pin is
    expect(verdict(3, otherFrame(POD_A.mac))).toBe("drop_spoofed_source_mac");
    expect(verdict(3, ipFrame({ eth: { src: POD_A.mac }, src: POD_A.ip, dst: GW }))).toBe("drop_spoofed_source_mac");
    state.fdb.pin(hiOf(GW_MAC), loOf(GW_MAC), 0, 0); // tapnet0's MAC, pinned to the gateway port
    expect(verdict(0, otherFrame(GW_MAC))).toBe("pass");
    expect(verdict(3, otherFrame(GW_MAC))).toBe("drop_spoofed_source_mac");
  });

  it("on a switch with no pin at all, nothing is checked", () => {
    const state = SwitchState.make(8, FDB_DEFAULTS);
    const stage = new PortSecurity(state, new PortIdentities(8));
    const f = new Frames(2);
    const b = otherFrame(POD_A.mac);
    f.push(b, 0, b.length, 2);
    stage.run(f);
    expect(f.outs[0]).toBe(PENDING);
  });

  it("leaves frames from the tunnel and frames already decided alone", () => {
    const { stage } = make();
    const f = new Frames(4);
    const spoof = ipFrame({ eth: { src: STRANGER }, src: POD_B.ip, dst: GW });
    f.push(spoof, 0, spoof.length, TUNNEL);
    f.push(spoof, 0, spoof.length, POD_A.port);
    f.outs[1] = 5;
    stage.run(f);
    expect([f.outs[0], f.outs[1]]).toEqual([PENDING, 5]);
  });
});

describe("PortIdentities", () => {
  it("bind pins the MAC in the FDB and, routing, the address in the neighbour table; release takes both out", () => {
    const { state, ids } = make(true);
    const nb = state.cluster!.neighbors;
    expect(state.fdb.pinnedPort(hiOf(POD_A.mac), loOf(POD_A.mac))).toBe(POD_A.port);
    expect([nb.isPinned(ip(POD_A.ip)), nb.hi(ip(POD_A.ip)), nb.lo(ip(POD_A.ip))]).toEqual([true, hiOf(POD_A.mac), loOf(POD_A.mac)]);
    ids.release(POD_A.port, state);
    expect(ids.has(POD_A.port)).toBe(false);
    expect(state.fdb.pinnedPort(hiOf(POD_A.mac), loOf(POD_A.mac))).toBe(-1);
    expect([nb.isPinned(ip(POD_A.ip)), nb.known(ip(POD_A.ip))]).toEqual([false, false]);
    ids.release(POD_A.port, state); // twice: nothing
  });

  it("binding a port again replaces its old pins", () => {
    const { state, ids } = make(true);
    expect(ids.bind(POD_A.port, POD_B.mac, ip(POD_B.ip), state, 0)).toBeUndefined();
    expect(state.fdb.pinnedPort(hiOf(POD_A.mac), loOf(POD_A.mac))).toBe(-1);
    expect(state.fdb.pinnedPort(hiOf(POD_B.mac), loOf(POD_B.mac))).toBe(POD_A.port);
    expect(state.cluster!.neighbors.isPinned(ip(POD_A.ip))).toBe(false);
    expect(state.fdb.pinnedCount).toBe(1);
  });

  it("refuses a MAC that is not unicast, or an address no host has, naming it", () => {
    const { state, ids } = make();
    expect(ids.bind(2, "01:00:5e:00:00:01", ip(POD_B.ip), state, 0)).toBe('mac "01:00:5e:00:00:01" is not a unicast MAC address');
    expect(ids.bind(2, "nonsense", ip(POD_B.ip), state, 0)).toBe('mac "nonsense" is not a unicast MAC address');
    expect(ids.bind(2, POD_B.mac, 0, state, 0)).toBe("ip 0 is not a host's IPv4 address");
    expect(ids.has(2)).toBe(false);
  });

  it("attach pins tapnet0's MAC on the gateway port of a routing switch, and a pod's identity", () => {
    const { state, ids } = make(true);
    expect(ids.attach(0, "gateway", undefined, state, 0)).toBe(true);
    expect(state.fdb.pinnedPort(hiOf(GW_MAC), loOf(GW_MAC))).toBe(0);
    expect(ids.attach(2, "pod", { mac: POD_B.mac, ip: ip(POD_B.ip) }, state, 0)).toBe(true);
    expect(ids.has(2)).toBe(true);
    expect(ids.attach(3, "pod", { mac: "ff:ff:ff:ff:ff:ff", ip: 5 }, state, 0)).toBe(false);
    const plain = make(false);
    plain.ids.attach(0, "gateway", undefined, plain.state, 0);
    expect(plain.state.fdb.pinnedPort(hiOf(GW_MAC), loOf(GW_MAC))).toBe(-1);
  });
});

/** A routing switch's stages with pods A (port 1) and B (port 2) bound, as the agent adds them. */
function cluster() {
  const r = setup("udp");
  const { router } = r;
  for (const p of [POD_A, POD_B]) expect(router.identities.bind(p.port, p.mac, ip(p.ip), router.state, 0)).toBeUndefined();
  /** A ping from node 2's pod 10.244.2.5 to B, through the tunnel: where it went. */
  const towardsB = (now: number) => {
    const before = { ports: r.io.toPorts.length, flooded: r.io.toMacs.length };
    const d = datagram(router, "udp", { src: "10.244.2.5", dst: POD_B.ip });
    router.fromTunnel(d.slot, d.len, ip("192.168.56.12"), now);
    return { ports: r.io.toPorts.slice(before.ports).map((w) => w.port), flooded: r.io.toMacs.length - before.flooded };
  };
  return { ...r, towardsB };
}

describe("the issue's finding 2, on a routing switch's stages", () => {
  it("a gratuitous ARP from A claiming B's address: dropped; node 2's traffic for B still reaches B", () => {
    const { router, io, drops, towardsB } = cluster();
    const garp = arpFrame({ sha: POD_A.mac, spa: POD_B.ip, tpa: POD_B.ip });
    router.fromPort(POD_A.port, garp, garp.length);
    expect(drops(POD_A.port)).toEqual({ drop_spoofed_source_ip: 1 });
    expect(io.toMacs).toEqual([]); // not flooded to the other pods either
    expect(towardsB(1)).toEqual({ ports: [POD_B.port], flooded: 0 });
    const nb = router.neighbors;
    expect([nb.hi(ip(POD_B.ip)), nb.lo(ip(POD_B.ip))]).toEqual([hiOf(POD_B.mac), loOf(POD_B.mac)]);
  });

  it("A sending as B (B's address, A's MAC) to another node: dropped, nothing enters the tunnel", () => {
    const { router, io, drops } = cluster();
    const f = ipFrame({ eth: { src: POD_A.mac }, src: POD_B.ip, dst: "10.244.2.5" });
    router.fromPort(POD_A.port, f, f.length);
    expect(drops(POD_A.port)).toEqual({ drop_spoofed_source_ip: 1 });
    expect(io.toPeers).toEqual([]);
  });

  it("frames from A with B's source MAC: dropped; B's FDB entry stays on B's port", () => {
    const { router, drops, towardsB, counters } = cluster();
    for (let k = 0; k < 50; k++) {
      const f = ipFrame({ eth: { src: POD_B.mac, dst: GW_MAC }, src: POD_A.ip, dst: GW });
      router.fromPort(POD_A.port, f, f.length, k);
    }
    expect(drops(POD_A.port)).toEqual({ drop_spoofed_source_mac: 50 });
    expect(router.state.fdb.lookup(hiOf(POD_B.mac), loOf(POD_B.mac), 50)).toBe(POD_B.port);
    expect(counters.sw(SwitchCounter.FdbMoved)).toBe(0);
    expect(towardsB(51)).toEqual({ ports: [POD_B.port], flooded: 0 });
  });

  it("8192 random source MACs from A: all dropped, the FDB untouched; a pod added afterwards is reached without flooding", () => {
    const { router, drops, counters, io } = cluster();
    const rnd = prng(8192);
    for (let k = 0; k < 8192; k++) {
      const src = formatMacHiLo(Math.floor(rnd() * 0x10000) & 0xfeff, Math.floor(rnd() * 2 ** 32));
      const f = otherFrame(src, 0x88b5);
      router.fromPort(POD_A.port, f, f.length, k / 1000);
    }
    expect(drops(POD_A.port)).toEqual({ drop_spoofed_source_mac: 8192 });
    expect(router.state.fdb.size).toBe(2);
    const C = { port: 3, ip: "10.244.1.4", mac: "0a:58:0a:f4:01:04" };
    router.identities.bind(C.port, C.mac, ip(C.ip), router.state, 9);
    const before = { flooded: io.toMacs.length, unknown: counters.sw(SwitchCounter.UnknownUnicast) };
    const f = ipFrame({ eth: { src: POD_B.mac, dst: C.mac }, src: POD_B.ip, dst: C.ip });
    router.fromPort(POD_B.port, f, f.length, 9);
    const d = datagram(router, "udp", { src: "10.244.2.5", dst: C.ip });
    router.fromTunnel(d.slot, d.len, ip("192.168.56.12"), 9);
    expect(io.toPorts.slice(-2).map((w) => w.port)).toEqual([C.port, C.port]);
    expect([io.toMacs.length - before.flooded, counters.sw(SwitchCounter.UnknownUnicast) - before.unknown]).toEqual([0, 0]);
  });

  it("a port without an identity still learns, as before: its gratuitous ARP may claim an address no pod has pinned", () => {
    const { router, drops } = cluster();
    const garp = arpFrame({ sha: STRANGER, spa: "10.244.1.50", tpa: "10.244.1.50" });
    router.fromPort(4, garp, garp.length);
    expect(drops(4)).toEqual({});
    expect(router.neighbors.known(ip("10.244.1.50"))).toBe(true);
    const steal = arpFrame({ sha: STRANGER, spa: POD_B.ip, tpa: POD_B.ip }); // but not a pinned one
    router.fromPort(4, steal, steal.length);
    expect(router.neighbors.lo(ip(POD_B.ip))).toBe(loOf(POD_B.mac));
  });
});

describe("the per-port quota, on a one-node switch's stages", () => {
  it("8192 random MACs from a port without an identity fill its quota only: a new port's MAC is learned and not flooded to", () => {
    const state = SwitchState.make(8, FDB_DEFAULTS);
    for (let p = 0; p < 8; p++) state.ports.add(p);
    const written: number[] = [];
    const stages = buildStages(state, { write: (port: number) => { written.push(port); return true; } });
    const batch = new Frames(64);
    const rnd = prng(4242);
    for (let k = 0; k < 8192; k++) {
      const b = otherFrame(formatMacHiLo(Math.floor(rnd() * 0x10000) & 0xfeff, Math.floor(rnd() * 2 ** 32)), 0x88b5);
      b.set(parseMac(GW_MAC)!, ETH_OFF); // to one station, so nothing is flooded but the first
      batch.push(b, 0, b.length, 1);
      if (batch.full || k === 8191) { stages.ports.run(batch, k / 1000); batch.clear(); }
    }
    expect(state.fdb.learned(1)).toBe(FDB_DEFAULTS.portQuota);
    expect(state.counters.sw(SwitchCounter.FdbFull)).toBe(8192 - FDB_DEFAULTS.portQuota!);
    const C = otherFrame("02:00:00:00:00:0c", 0x88b5);
    batch.push(C, 0, C.length, 5);
    const toC = otherFrame("02:00:00:00:00:0d", 0x88b5);
    toC.set(parseMac("02:00:00:00:00:0c")!, ETH_OFF);
    batch.push(toC, 0, toC.length, 6);
    const unknown = state.counters.sw(SwitchCounter.UnknownUnicast);
    written.length = 0;
    stages.ports.run(batch, 9);
    expect(state.fdb.lookup(hiOf("02:00:00:00:00:0c"), loOf("02:00:00:00:00:0c"), 9)).toBe(5);
    expect(state.counters.sw(SwitchCounter.UnknownUnicast) - unknown).toBe(0); // the frame to C went to C's port alone
    expect(written.filter((p) => p === 5)).toEqual([5]);
    expect(written.filter((p) => p === 1)).toEqual([1]); // the flooding port gets C's multicast, not C's unicast
  });
});

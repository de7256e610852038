// gateway (switch/stages/gateway.ts) driven on its own over a Frames vector: which entries it
// reads as ARP from a pod, whose MAC it learns, and when it has room to write an ICMP error in
// place. The gateway port is 7 here, so that port 0 is a pod's like any other.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, PENDING, REPLY, TUNNEL } from "../../src/switch/frames.ts";
import { Gateway } from "../../src/switch/stages/gateway.ts";
import { icmpReply } from "../../src/switch/stages/route.ts";
import { SwitchState, type RouterConfig } from "../../src/switch/state.ts";
import { ARP_REQUEST, emitArp } from "../../src/wire/arp.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED } from "../../src/wire/icmp.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { macHi, macLo, parseMac } from "../../src/wire/mac.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { config, GW, ip, ipFrame, POD_A } from "./router-support.ts";

const GATEWAY_PORT = 7;
const OTHER_MAC = "02:00:00:00:00:99";
const ETHERTYPE_ARP = 0x0806;

function make(cfg: RouterConfig = config("udp")) {
  const state = SwitchState.make(8, FDB_DEFAULTS, cfg);
  for (let p = 0; p < 8; p++) state.ports.add(p);
  state.cluster!.gatewayPort = GATEWAY_PORT;
  const gw = new Gateway(state);
  const f = new Frames(8);
  const sw = (c: number) => state.counters.sw(c);
  return { state, gw, f, sw, nb: state.cluster!.neighbors };
}

/** An ARP frame as a TAP hands it over: Ethernet from `ethSrc` of type `etherType`, an ARP body. */
function arpFrame(a: { op?: number; sha?: string; spa: string; tpa: string; ethSrc?: string; etherType?: number }): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 28);
  emitEthernet({ dst: "ff:ff:ff:ff:ff:ff", src: a.ethSrc ?? a.sha ?? POD_A.mac, vlans: [], etherType: a.etherType ?? ETHERTYPE_ARP }, b, ETH_OFF);
  emitArp({ operation: a.op ?? ARP_REQUEST, senderMac: a.sha ?? POD_A.mac, senderIp: a.spa, targetMac: "00:00:00:00:00:00", targetIp: a.tpa }, b, ETH_OFF + 14);
  return b;
}

const mac = (s: string) => parseMac(s)!;

describe("gateway: ARP from the pods", () => {
  it("answers an ARP request for the gateway from port 0, a pod's port like any other", () => {
    const { gw, f, sw } = make();
    const i = f.push(arpFrame({ spa: POD_A.ip, tpa: GW }), 0, ETH_OFF + 42, 0);
    gw.run(f, 0);
    expect(f.outs[i]).toBe(0);
    expect(sw(SwitchCounter.ArpReplies)).toBe(1);
  });

  it("reads nothing from the tunnel as a pod's ARP: no answer, nothing learned", () => {
    const { gw, f, sw, nb } = make();
    const i = f.push(arpFrame({ spa: POD_A.ip, tpa: GW }), 0, ETH_OFF + 42, TUNNEL);
    gw.run(f, 0);
    expect(f.outs[i]).toBe(PENDING);
    expect(sw(SwitchCounter.ArpReplies)).toBe(0);
    expect(nb.known(ip(POD_A.ip))).toBe(false);
  });

  it("does not read a frame of another EtherType as ARP, whatever its body", () => {
    const { gw, f, sw, nb } = make();
    const i = f.push(arpFrame({ spa: POD_A.ip, tpa: GW, etherType: 0x0800 }), 0, ETH_OFF + 42, 1);
    gw.run(f, 0);
    expect(f.outs[i]).toBe(PENDING);
    expect(sw(SwitchCounter.ArpReplies)).toBe(0);
    expect(nb.known(ip(POD_A.ip))).toBe(false);
  });

  it("learns the sender's MAC from the ARP body, not from the Ethernet source", () => {
    const { gw, f, nb } = make();
    f.push(arpFrame({ spa: POD_A.ip, tpa: "10.244.1.9", sha: POD_A.mac, ethSrc: OTHER_MAC }), 0, ETH_OFF + 42, 1);
    gw.run(f, 0);
    const a = ip(POD_A.ip);
    expect(nb.known(a)).toBe(true);
    expect([nb.hi(a), nb.lo(a)]).toEqual([macHi(mac(POD_A.mac), 0), macLo(mac(POD_A.mac), 0)]);
  });

  it("learns nothing from an ARP probe (sender 0.0.0.0), even where 0.0.0.0 is in the pod CIDR", () => {
    const base = config("udp");
    const cfg: RouterConfig = { ...base, gatewayIp: ip("0.0.0.1"), nodes: base.nodes.map((n, k) => (k === 0 ? { ...n, network: 0 } : n)) };
    const { gw, f, nb } = make(cfg);
    expect(nb.contains(0)).toBe(true);
    const i = f.push(arpFrame({ spa: "0.0.0.0", tpa: "0.0.0.7" }), 0, ETH_OFF + 42, 1);
    gw.run(f, 0);
    expect(nb.known(0)).toBe(false);
    expect(f.outs[i]).toBe(PENDING);
  });

  it("handles the vector's first `count` entries only", () => {
    const { gw, f, sw, nb } = make();
    f.push(arpFrame({ spa: POD_A.ip, tpa: GW }), 0, ETH_OFF + 42, 1);
    const j = f.push(arpFrame({ spa: "10.244.1.3", tpa: GW }), 0, ETH_OFF + 42, 2);
    f.count = 1;
    gw.run(f, 0);
    expect(f.outs[j]).toBe(PENDING);
    expect(sw(SwitchCounter.ArpReplies)).toBe(1);
    expect(nb.known(ip("10.244.1.3"))).toBe(false);
  });
});

const TTL_EXCEEDED = icmpReply(ICMP_TIME_EXCEEDED, 0, 0);
/** An ICMP error about a 28-byte packet: 14 + 20 + 8 + (20 + 8) bytes of Ethernet. */
const ERROR_ETH_LEN = 70;

/** Entry for a frame from port 1 that route refused (REPLY), at `off` of a slot with `room` bytes from its Ethernet header on. */
function refused(f: Frames, frame: Uint8Array, len: number, off: number, room: number): number {
  const slot = new Uint8Array(off + ETH_OFF + room);
  slot.set(frame.subarray(0, Math.min(frame.length, slot.length - off)), off);
  const i = f.push(slot, off, len, 1);
  f.outs[i] = REPLY;
  f.aux[i] = TTL_EXCEEDED;
  return i;
}

describe("gateway: ICMP errors in place", () => {
  const short = () => ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 0 }); // 42 bytes of Ethernet

  it("writes the error where the slot has just the room for it, and not where it is a byte short", () => {
    const { gw, f, sw } = make();
    const fits = refused(f, short(), ETH_OFF + 42, 100, ERROR_ETH_LEN);
    const tight = refused(f, short(), ETH_OFF + 42, 100, ERROR_ETH_LEN - 1);
    gw.run(f, 0);
    expect([f.outs[fits], f.lens[fits]]).toEqual([1, ETH_OFF + ERROR_ETH_LEN]);
    expect(f.outs[tight]).toBe(DONE);
    expect(sw(SwitchCounter.IcmpSent)).toBe(1);
  });

  it("sends no error about a packet cut short of its total length", () => {
    const { gw, f, sw } = make();
    const frame = ipFrame({ src: POD_A.ip, dst: "10.244.2.5", payloadLen: 64 });
    const i = refused(f, frame, frame.length - 4, 0, 200);
    gw.run(f, 0);
    expect(f.outs[i]).toBe(DONE);
    expect(sw(SwitchCounter.IcmpSent)).toBe(0);
  });

  it("sends no error about an ICMP packet with no ICMP header, whatever byte follows it", () => {
    const { gw, f, sw } = make();
    const b = new Uint8Array(ETH_OFF + 14 + 20 + 8).fill(ICMP_ECHO_REQUEST);
    b.fill(0, 0, ETH_OFF);
    emitEthernet({ dst: "0a:58:0a:f4:01:01", src: POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
    emitIpv4({ tos: 0, id: 1, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 1, protocol: 1, src: POD_A.ip, dst: "10.244.2.5", payloadLen: 0 }, b, ETH_OFF + 14);
    const i = refused(f, b, ETH_OFF + 34, 0, 200);
    gw.run(f, 0);
    expect(f.outs[i]).toBe(DONE);
    expect(sw(SwitchCounter.IcmpSent)).toBe(0);
  });
});

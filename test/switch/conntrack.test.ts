// The conntrack stage in the routing pipelines, over in-memory ports and tunnel (udp backend):
// Service DNAT and its replies, hairpin SNAT, refusals, policy verdicts cached in flows and
// decided again on a new view, UDP flows flushed, ICMP errors translated with their flow; the
// quota of flows per owner (a port, a peer node), so that one pod cannot fill the table.
import { describe, expect, it } from "vitest";
import type { NetworkView, ViewPod } from "../../src/cluster/network-view.ts";
import type { NetworkPolicy } from "../../src/cluster/objects.ts";
import { DEFAULT_TIMEOUTS } from "../../src/switch/conntrack/flow-table.ts";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { get16, get32, put16 } from "../../src/wire/bytes.ts";
import { fold, internetChecksum, pseudoHeaderSum, sumWords } from "../../src/wire/checksum.ts";
import { emitEthernet, parseEthernet } from "../../src/wire/ethernet.ts";
import { emitIcmp, parseIcmp } from "../../src/wire/icmp.ts";
import { emitIpv4, formatIpv4, parseIpv4, type Ipv4Repr } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { emitVirtioNetHdr, ETH_OFF, GSO_TCPV4, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { ADDR, encap, GATEWAY_PORT, GW, GW_MAC, ip, ipHeaderValid, POD_A, POD_B, setup } from "./router-support.ts";

const VIP = "10.96.0.10";
const REMOTE = "10.244.2.5";
const OTHER_REMOTE = "10.244.3.7";
const CT = { conntrack: { max: 64, timeouts: DEFAULT_TIMEOUTS } };

function pod(ipStr: string, name: string, node: string, labels: Record<string, string> = {}): ViewPod {
  return { ip: ip(ipStr), namespace: "default", name, labels, node, ports: [] };
}

function view(endpoints: string[], opts: { affinity?: number; policies?: NetworkPolicy[]; proto?: number } = {}): NetworkView {
  return {
    serviceCidr: { network: ip("10.96.0.0"), prefix: 12 },
    namespaces: [{ name: "default", labels: {} }],
    pods: [pod(POD_A.ip, "a", "node1", { app: "a" }), pod(POD_B.ip, "b", "node1", { app: "b" }), pod(REMOTE, "r", "node2", { app: "r" }), pod(OTHER_REMOTE, "o", "node3", { app: "o" })],
    nodes: [1, 2, 3].map((n) => ({ name: `node${n}`, addresses: [ip(`192.168.56.${10 + n}`), ip(`10.244.${n}.1`)] })),
    policies: opts.policies ?? [],
    services: [{
      namespace: "default", name: "web", clusterIp: ip(VIP), ...(opts.affinity ? { affinitySeconds: opts.affinity } : {}),
      ports: [{ name: "", protocol: opts.proto ?? 6, port: 80, endpoints: endpoints.map((e) => ({ ip: ip(e), port: 8080 })) }],
    }],
  };
}

function denyIngress(app: string): NetworkPolicy {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `deny-${app}`, namespace: "default" }, spec: { podSelector: { matchLabels: { app } }, policyTypes: ["Ingress"] } };
}
function denyEgress(app: string): NetworkPolicy {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `deny-out-${app}`, namespace: "default" }, spec: { podSelector: { matchLabels: { app } }, policyTypes: ["Egress"] } };
}

interface Seg { src: string; dst: string; sport: number; dport: number; flags?: number; srcMac?: string; dstMac?: string; payload?: number }

/** A TCP segment as a TAP hands it over, checksum complete. */
function tcp(s: Seg): Uint8Array {
  const payload = s.payload ?? 10;
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20 + payload);
  emitEthernet({ dst: s.dstMac ?? GW_MAC, src: s.srcMac ?? POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: s.src, dst: s.dst, payloadLen: 20 + payload }, b, ETH_OFF + 14);
  emitTcp({ srcPort: s.sport, dstPort: s.dport, seq: 1, ack: 0, flags: s.flags ?? 0x02, window: 100, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  for (let i = 0; i < payload; i++) b[ETH_OFF + 54 + i] = i * 7;
  put16(b, ETH_OFF + 50, ~fold(sumWords(b, ETH_OFF + 34, 20 + payload, pseudoHeaderSum(ip(s.src), ip(s.dst), 6, 20 + payload))) & 0xffff);
  return b;
}

function udp(s: Seg): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 8 + 4);
  emitEthernet({ dst: s.dstMac ?? GW_MAC, src: s.srcMac ?? POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 1, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 17, src: s.src, dst: s.dst, payloadLen: 12 }, b, ETH_OFF + 14);
  emitUdp({ srcPort: s.sport, dstPort: s.dport, payload: Uint8Array.of(1, 2, 3, 4) }, b, ETH_OFF + 34, { src: ip(s.src), dst: ip(s.dst) });
  return b;
}

/** The IPv4 packet at `off` of `b`: its tuple, and whether its IPv4 and L4 checksums hold. */
function look(b: Uint8Array, off: number) {
  const p = parseIpv4(b.subarray(off)) as Ipv4Repr;
  const hl = (b[off] & 0x0f) * 4;
  const l4 = off + hl;
  const len = get16(b, off + 2) - hl;
  const l4ok = p.protocol === 1 ? internetChecksum(b, l4, len) === 0 : fold(sumWords(b, l4, len, pseudoHeaderSum(ip(p.src), ip(p.dst), p.protocol, len))) === 0xffff;
  return { src: p.src, dst: p.dst, sport: get16(b, l4), dport: get16(b, l4 + 2), ttl: p.ttl, ok: ipHeaderValid(b, off) && l4ok };
}

/** A frame from a TAP port, at time 1, in a slot with room to spare (as the datapath's are: an ICMP error is written in place). */
function send(router: ReturnType<typeof setup>["router"], port: number, frame: Uint8Array): void {
  const slot = new Uint8Array(2048);
  slot.set(frame);
  router.fromPort(port, slot, frame.length, 1);
}

/** The router's FDB and neighbour table know pods A and B, as they do once the pods have spoken. */
function known(router: ReturnType<typeof setup>["router"]): void {
  router.neighbors.learn(ip(POD_A.ip), 0x0a58, 0x0af40102);
  router.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
  router.state.fdb.learn(0x0a58, 0x0af40102, POD_A.port, 1);
  router.state.fdb.learn(0x0a58, 0x0af40103, POD_B.port, 1);
}

/** A packet node 2 (or node `node`) sends through the udp tunnel, at time `now`. */
function fromRemote(router: ReturnType<typeof setup>["router"], frame: Uint8Array, node = 2, now = 1) {
  const d = encap("udp", frame.subarray(ETH_OFF + 14));
  const slot = new Uint8Array(2048);
  slot.set(d, router.recvOff);
  router.fromTunnel(slot, d.length, ip(ADDR[node - 1]), now);
}

describe("Services: a pod's packet to a ClusterIP", () => {
  it("is sent to an endpoint on another node with its destination translated; the reply comes back from the ClusterIP", () => {
    const { router, io, counters } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([REMOTE]));
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: VIP, sport: 40000, dport: 80 }));
    expect(io.toPeers).toHaveLength(1);
    expect(io.toPeers[0].peer).toBe(1);
    expect(look(io.toPeers[0].bytes, 0)).toEqual({ src: POD_A.ip, dst: REMOTE, sport: 40000, dport: 8080, ttl: 63, ok: true });
    known(router);
    fromRemote(router, tcp({ src: REMOTE, dst: POD_A.ip, sport: 8080, dport: 40000, flags: 0x12 }));
    expect(io.toPorts.map((p) => p.port)).toEqual([POD_A.port]);
    expect(look(io.toPorts[0].bytes, ETH_OFF + 14)).toMatchObject({ src: VIP, dst: POD_A.ip, sport: 80, dport: 40000, ok: true });
    expect(counters.sw(SwitchCounter.Translated)).toBe(2);
    const flows = router.state.tracker!.flows(1);
    expect(flows).toEqual([expect.objectContaining({
      protocol: "tcp", state: "established", service: "default/web:80", verdict: "allowed",
      original: { src: POD_A.ip, dst: VIP, sport: 40000, dport: 80 }, reply: { src: REMOTE, dst: POD_A.ip, sport: 8080, dport: 40000 },
    })]);
  });

  it("reaches an endpoint on this node through the router, and its reply, bridged, leaves from the ClusterIP", () => {
    const { router, io } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([POD_B.ip]));
    known(router);
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: VIP, sport: 40001, dport: 80 }));
    expect(io.toPeers).toEqual([]);
    const out = io.toPorts.length ? io.toPorts[0].bytes : io.toMacs[0].bytes;
    expect(parseEthernet(out.subarray(ETH_OFF))).toMatchObject({ dst: POD_B.mac, src: GW_MAC });
    expect(look(out, ETH_OFF + 14)).toMatchObject({ src: POD_A.ip, dst: POD_B.ip, dport: 8080, ok: true });
    io.toPorts = [];
    io.toMacs = [];
    send(router, POD_B.port, tcp({ src: POD_B.ip, dst: POD_A.ip, sport: 8080, dport: 40001, flags: 0x12, srcMac: POD_B.mac, dstMac: POD_A.mac }));
    const back = io.toPorts.length ? io.toPorts[0].bytes : io.toMacs[0].bytes;
    expect(look(back, ETH_OFF + 14)).toMatchObject({ src: VIP, dst: POD_A.ip, sport: 80, dport: 40001, ok: true });
  });

  it("to itself (hairpin) has its source translated to the gateway address, both ways", () => {
    const { router, io } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([POD_A.ip]));
    known(router);
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: VIP, sport: 40002, dport: 80 }));
    expect(io.toPorts.map((p) => p.port)).toEqual([POD_A.port]);
    expect(look(io.toPorts[0].bytes, ETH_OFF + 14)).toMatchObject({ src: GW, dst: POD_A.ip, sport: 40002, dport: 8080, ok: true });
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: GW, sport: 8080, dport: 40002, flags: 0x12 }));
    expect(io.toPorts).toHaveLength(2);
    expect(look(io.toPorts[1].bytes, ETH_OFF + 14)).toMatchObject({ src: VIP, dst: POD_A.ip, sport: 80, dport: 40002, ok: true });
  });

  it("with no endpoint, or to a port no Service has, is refused at once with port unreachable from the ClusterIP", () => {
    const { router, io, drops } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([]));
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: VIP, sport: 40003, dport: 80 }));
    send(router, POD_A.port, udp({ src: POD_A.ip, dst: VIP, sport: 5000, dport: 53 }));
    expect(io.toPeers).toEqual([]);
    expect(io.toPorts.map((p) => p.port)).toEqual([POD_A.port, POD_A.port]);
    for (const p of io.toPorts) {
      const ipOff = ETH_OFF + 14;
      expect(parseIpv4(p.bytes.subarray(ipOff))).toMatchObject({ src: VIP, dst: POD_A.ip, protocol: 1 });
      expect(parseIcmp(p.bytes.subarray(ipOff + 20))).toMatchObject({ type: 3, code: 3 });
    }
    expect(drops(POD_A.port)).toEqual({ drop_service_no_endpoints: 1, drop_service_no_port: 1 });
  });

  it("spreads new flows over every endpoint, and keeps a client on one with ClientIP affinity", () => {
    for (const affinity of [0, 10800]) {
      const { router, io } = setup("udp", 1472, CT);
      router.state.tracker!.setView(view([REMOTE, OTHER_REMOTE], { affinity }));
      for (let n = 0; n < 40; n++) send(router, POD_A.port, tcp({ src: POD_A.ip, dst: VIP, sport: 41000 + n, dport: 80 }));
      const seen = new Set(io.toPeers.map((p) => look(p.bytes, 0).dst));
      expect(seen.size, `affinity ${affinity}`).toBe(affinity ? 1 : 2);
    }
  });
});

describe("NetworkPolicy in flows", () => {
  it("a denied new flow is dropped and counted, stays denied for its retries, and passes once a new view allows it", () => {
    const { router, io, drops } = setup("udp", 1472, CT);
    const tr = router.state.tracker!;
    tr.setView(view([], { policies: [denyEgress("a")] }));
    const syn = () => send(router, POD_A.port, tcp({ src: POD_A.ip, dst: REMOTE, sport: 42000, dport: 80 }));
    syn();
    syn();
    expect(io.toPeers).toEqual([]);
    expect(drops(POD_A.port)).toEqual({ drop_policy_denied_egress: 2 });
    expect(tr.flows(1).map((f) => f.verdict)).toEqual(["denied"]);
    tr.setView(view([]));
    syn();
    expect(io.toPeers).toHaveLength(1);
  });

  it("is decided for ingress where the destination pod is: a flow from another node to an isolated pod is dropped", () => {
    const { router, io, drops, tunnel } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([], { policies: [denyIngress("a")] }));
    known(router);
    fromRemote(router, tcp({ src: REMOTE, dst: POD_A.ip, sport: 50000, dport: 80 }));
    expect(io.toPorts).toEqual([]);
    expect(drops(tunnel)).toEqual({ drop_policy_denied_ingress: 1 });
    // The egress side is not this node's to decide: a pod of node 2 reaching node 3 is no flow of ours to deny.
  });

  it("an established flow a new view no longer allows is cut: its next packets are dropped, counted as flows_cut", () => {
    const { router, io, counters } = setup("udp", 1472, CT);
    const tr = router.state.tracker!;
    tr.setView(view([]));
    known(router);
    const again = () => send(router, POD_A.port, tcp({ src: POD_A.ip, dst: POD_B.ip, sport: 42001, dport: 80, dstMac: POD_B.mac, flags: 0x10 }));
    again();
    const before = io.toPorts.length + io.toMacs.length;
    expect(before).toBe(1);
    tr.setView(view([], { policies: [denyIngress("b")] }));
    expect(counters.sw(SwitchCounter.FlowsCut)).toBe(1);
    again();
    expect(io.toPorts.length + io.toMacs.length).toBe(1);
  });

  it("traffic between a pod and its own node is allowed whatever isolates the pod", () => {
    const { router, io } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([], { policies: [denyIngress("a"), denyEgress("a")] }));
    send(router, GATEWAY_PORT, tcp({ src: GW, dst: POD_A.ip, sport: 43000, dport: 80, srcMac: GW_MAC, dstMac: POD_A.mac }));
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: GW, sport: 80, dport: 43000, flags: 0x12 }));
    expect(io.toPorts.length + io.toMacs.length).toBe(2);
  });
});

describe("what a new view does to flows, and ICMP errors", () => {
  it("removes a UDP flow to an endpoint its Service no longer has; the next packet picks a live one", () => {
    const { router, io, counters } = setup("udp", 1472, CT);
    const tr = router.state.tracker!;
    tr.setView(view([REMOTE], { proto: 17 }));
    const again = () => send(router, POD_A.port, udp({ src: POD_A.ip, dst: VIP, sport: 5353, dport: 80 }));
    again();
    tr.setView(view([OTHER_REMOTE], { proto: 17 }));
    expect(counters.sw(SwitchCounter.FlowsFlushed)).toBe(1);
    again();
    expect(io.toPeers.map((p) => [p.peer, look(p.bytes, 0).dst])).toEqual([[1, REMOTE], [2, OTHER_REMOTE]]);
  });

  it("an endpoint's port unreachable about a translated packet reaches the client as from the ClusterIP, quoting what it sent", () => {
    const { router, io } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([REMOTE], { proto: 17 }));
    known(router);
    send(router, POD_A.port, udp({ src: POD_A.ip, dst: VIP, sport: 5354, dport: 80 }));
    const sent = io.toPeers[0].bytes; // the packet as the endpoint got it
    const quote = sent.subarray(0, 28);
    const err = new Uint8Array(ETH_OFF + 14 + 20 + 8 + 28);
    emitEthernet({ dst: GW_MAC, src: "0e:00:00:00:00:01", vlans: [], etherType: 0x0800 }, err, ETH_OFF);
    emitIpv4({ tos: 0, id: 9, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1, src: REMOTE, dst: POD_A.ip, payloadLen: 36 }, err, ETH_OFF + 14);
    emitIcmp({ type: 3, code: 3, rest: 0, data: quote }, err, ETH_OFF + 34);
    fromRemote(router, err);
    expect(io.toPorts).toHaveLength(1);
    const got = io.toPorts[0].bytes;
    const outer = look(got, ETH_OFF + 14);
    expect([outer.src, outer.dst, outer.ok]).toEqual([VIP, POD_A.ip, true]);
    const q = ETH_OFF + 14 + 20 + 8;
    expect([formatIpv4(get32(got, q + 12)), formatIpv4(get32(got, q + 16))]).toEqual([POD_A.ip, VIP]);
    expect([get16(got, q + 20), get16(got, q + 22)]).toEqual([5354, 80]);
    expect(ipHeaderValid(got, q)).toBe(true);
  });

  it("a TSO super-frame with a partial checksum keeps it partial and right for the new addresses", () => {
    const { router, io } = setup("udp", 1472, { ...CT, segmenting: false });
    router.state.tracker!.setView(view([REMOTE]));
    const b = new Uint8Array(ETH_OFF + 14 + 20 + 20 + 3000);
    emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
    emitIpv4({ tos: 0, id: 3, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: POD_A.ip, dst: VIP, payloadLen: 3020 }, b, ETH_OFF + 14);
    emitTcp({ srcPort: 40005, dstPort: 80, seq: 1, ack: 1, flags: 0x18, window: 100, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
    put16(b, ETH_OFF + 50, fold(pseudoHeaderSum(ip(POD_A.ip), ip(VIP), 6, 3020)));
    emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: 1400, csumStart: 34, csumOffset: 16 }, b, 0);
    router.fromPort(POD_A.port, b, b.length, 1);
    // Cut into segments for the udp backend, each with a full checksum for the endpoint's address.
    expect(io.toPeers.length).toBeGreaterThan(1);
    for (const p of io.toPeers) expect(look(p.bytes, 0)).toMatchObject({ src: POD_A.ip, dst: REMOTE, dport: 8080, ok: true });
  });

  it("a full table drops new flows, counted, and never grows", () => {
    const { router, drops } = setup("udp", 1472, { conntrack: { max: 4, timeouts: DEFAULT_TIMEOUTS, maxPerOwner: 4 } });
    router.state.tracker!.setView(view([]));
    for (let n = 0; n < 6; n++) send(router, POD_A.port, tcp({ src: POD_A.ip, dst: REMOTE, sport: 44000 + n, dport: 80 }));
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_full: 2 });
    expect(router.state.tracker!.table.count).toBe(4);
  });
});

describe("the quota of flows per owner: one pod cannot fill the table", () => {
  /** `n` SYNs from `from` (a port's pod) to REMOTE, each to another port, as a port scan or a flood of random flows. */
  function flood(router: ReturnType<typeof setup>["router"], port: number, from: string, n: number, first = 1000): void {
    for (let k = 0; k < n; k++) send(router, port, tcp({ src: from, dst: REMOTE, sport: 40000, dport: first + k, srcMac: port === POD_B.port ? POD_B.mac : POD_A.mac }));
  }

  it("a port opening flows as fast as it can gets a quarter of the table; another port still gets new flows", () => {
    const { router, io, drops, counters } = setup("udp", 1472, CT); // 64 flows: 16 each
    router.state.tracker!.setView(view([]));
    flood(router, POD_A.port, POD_A.ip, 64);
    expect(io.toPeers).toHaveLength(16);
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_quota: 48 });
    flood(router, POD_B.port, POD_B.ip, 10);
    expect(io.toPeers).toHaveLength(26);
    expect(drops(POD_B.port)).toEqual({});
    expect(router.state.tracker!.table.count).toBe(26);
    expect(counters.sw(SwitchCounter.FlowsCreated)).toBe(26);
    // A flow of A's own goes on: the quota refuses only new flows.
    send(router, POD_A.port, tcp({ src: POD_A.ip, dst: REMOTE, sport: 40000, dport: 1000, flags: 0x10 }));
    expect(io.toPeers).toHaveLength(27);
  });

  it("is --conntrack-max-per-pod when given, and a full table is still conntrack_full for an owner under its quota", () => {
    const { router, io, drops } = setup("udp", 1472, { conntrack: { max: 8, timeouts: DEFAULT_TIMEOUTS, maxPerOwner: 5 } });
    router.state.tracker!.setView(view([]));
    flood(router, POD_A.port, POD_A.ip, 7);
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_quota: 2 });
    flood(router, POD_B.port, POD_B.ip, 4);
    expect(drops(POD_B.port)).toEqual({ drop_conntrack_full: 1 });
    expect(io.toPeers).toHaveLength(8);
  });

  it("flows that expire or are flushed are given back: the port opens new ones again", () => {
    const { router, io, drops } = setup("udp", 1472, CT);
    const tr = router.state.tracker!;
    tr.setView(view([]));
    flood(router, POD_A.port, POD_A.ip, 17);
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_quota: 1 });
    tr.sweep(1 + DEFAULT_TIMEOUTS.tcpNew); // every flow expired
    expect(tr.table.count).toBe(0);
    expect(tr.table.heldBy(POD_A.port)).toBe(0);
    flood(router, POD_A.port, POD_A.ip, 16, 2000);
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_quota: 1 });
    expect(io.toPeers).toHaveLength(32);
    // UDP flows to a Service's endpoint the next view no longer has are flushed, and given back too.
    tr.sweep(1 + DEFAULT_TIMEOUTS.tcpNew);
    tr.setView(view([REMOTE], { proto: 17 }));
    for (let k = 0; k < 16; k++) send(router, POD_A.port, udp({ src: POD_A.ip, dst: VIP, sport: 30000 + k, dport: 80 }));
    expect(tr.table.heldBy(POD_A.port)).toBe(16);
    tr.setView(view([OTHER_REMOTE], { proto: 17 }));
    expect(tr.table.heldBy(POD_A.port)).toBe(0);
    send(router, POD_A.port, udp({ src: POD_A.ip, dst: VIP, sport: 30000, dport: 80 }));
    expect(drops(POD_A.port)).toEqual({ drop_conntrack_quota: 1 });
    expect(look(io.toPeers[io.toPeers.length - 1].bytes, 0)).toMatchObject({ src: POD_A.ip, dst: OTHER_REMOTE, dport: 8080 });
  });

  it("flows from the tunnel are owned by the peer node of their inner source: one node's pods at the quota leave room for another's", () => {
    const { router, io, drops, tunnel } = setup("udp", 1472, CT);
    router.state.tracker!.setView(view([]));
    known(router);
    for (let k = 0; k < 64; k++) fromRemote(router, tcp({ src: REMOTE, dst: POD_A.ip, sport: 50000, dport: 1000 + k }));
    expect(io.toPorts).toHaveLength(16);
    expect(drops(tunnel)).toEqual({ drop_conntrack_quota: 48 });
    for (let k = 0; k < 4; k++) fromRemote(router, tcp({ src: OTHER_REMOTE, dst: POD_A.ip, sport: 50000, dport: 1000 + k }), 3);
    expect(io.toPorts).toHaveLength(20);
    // Node 2's own address is in no pod CIDR: its flows are the shared owner's, not its pods'.
    fromRemote(router, tcp({ src: ADDR[1], dst: POD_A.ip, sport: 50000, dport: 1000 }));
    expect(io.toPorts).toHaveLength(21);
    // And the ports' quotas are their own: pod A still opens flows to node 2.
    flood(router, POD_A.port, POD_A.ip, 3);
    expect(io.toPeers).toHaveLength(3);
    expect(drops(tunnel)).toEqual({ drop_conntrack_quota: 48 });
  });
});

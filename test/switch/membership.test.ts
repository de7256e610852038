// Live membership: the datapath of node1 (over an in-memory libc) is told a new node list
// between rounds (the "nodes" command), for every backend. A node joining gets the frames for
// its pod CIDR (a counted cluster_unreachable drop before) and its datagrams are taken (a
// counted tunnel_unknown_peer drop before); a node leaving the other way round; a list where
// node indexes move (a node put before this one) still routes and checks senders right. The
// traffic to the node that stays flows across every change, in order, none lost. A list the
// datapath cannot take is refused with a message naming the field, and changes nothing. And a
// routing switch that starts as the only node of its cluster works as one.
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { Counters } from "../../src/switch/counters.ts";
import { Datapath } from "../../src/switch/datapath.ts";
import { Ctrl, CTRL_WORDS, type Command, type Reply } from "../../src/switch/commands.ts";
import type { RouterConfig } from "../../src/switch/state.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { formatMac } from "../../src/wire/mac.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { UDP_SEGMENT } from "../../src/io/udp.ts";
import { FakeLibc } from "../support/fake-libc.ts";
import { CollectingSink } from "../support/gather.ts";
import { ADDR, ALL_BACKENDS, type AnyBackend, config, GW_MAC, ip, ipFrame, makeBackend, nodeConfig, POD_A, POD_B, VTEP } from "./router-support.ts";

const MAX_PORTS = 8;
const TUNNEL_ROW = MAX_PORTS - 1;
const UDP_FD = 3;
const TUNNEL_PORT = 8472;
const FD = [10, 11, 12];
/** node1, node2, node3 of the test cluster: 10.244.1.0/24 at ADDR[0], and so on. */
const [N1, N2, N3] = config("udp").nodes;

const opened: { close(): void }[] = [];
afterEach(() => {
  for (const p of opened.splice(0)) p.close();
});

/** A packet's bytes found in `all` in the order given, each after the one before; the index of the first missing, or -1. */
function missingInOrder(all: Uint8Array, packets: Uint8Array[]): number {
  const hay = Buffer.from(all);
  let at = 0;
  for (const [k, p] of packets.entries()) {
    const i = hay.indexOf(Buffer.from(p), at);
    if (i < 0) return k;
    at = i + p.length;
  }
  return -1;
}

const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/** The IPv4 packet pod A sends to `dst` (its k-th, by its length), as it leaves node1: TTL 63. */
const leaving = (dst: string, k: number) => ipFrame({ src: POD_A.ip, dst, ttl: 63, payloadLen: 20 + k }).subarray(ETH_OFF + 14);

/**
 * Node1 (self in `nodes`), backend `type`: port 0 its gateway (tapnet0), 1 pod A, 2 pod B, whose
 * MAC the neighbour table and the FDB know. The "nodes" command and a record of the replies.
 */
function node1(type: AnyBackend, nodes: RouterConfig["nodes"], self: number, o: { noGso?: boolean; routing?: boolean } = {}) {
  const libc = new FakeLibc(UDP_FD);
  if (o.noGso) libc.udp.refused.add(UDP_SEGMENT);
  const { port1, port2 } = new MessageChannel();
  opened.push(port1, port2);
  const ctrlMem = new SharedArrayBuffer(CTRL_WORDS * 4);
  const ctrl = new Int32Array(ctrlMem);
  const counters = new Counters(MAX_PORTS);
  const router: RouterConfig = { ...nodeConfig(type, 0), nodes, self };
  const routing = o.routing ?? true;
  const dp = new Datapath(libc, {
    ctrl: ctrlMem, counters: counters.buffer, maxPorts: MAX_PORTS, port: port2, fdb: { maxEntries: 64, ageingSeconds: 300 },
    batch: 64, slotSize: 4096, offloads: false, ...(routing ? { router, tunnel: { fd: UDP_FD, port: TUNNEL_PORT } } : {}),
  });
  const command = (cmd: Command) => {
    port1.postMessage(cmd);
    Atomics.add(ctrl, Ctrl.CmdSeq, 1);
  };
  const replies: Reply[] = [];
  const rounds = (n = 1) => {
    let left = n;
    libc.onPoll = () => { if (--left === 0) Atomics.store(ctrl, Ctrl.Stop, 1); };
    Atomics.store(ctrl, Ctrl.Stop, 0);
    dp.run();
    for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) replies.push(m.message as Reply);
  };
  const tap = (p: number) => libc.tap(FD[p]);
  for (let p = 0; p < 3; p++) {
    tap(p);
    command({ op: "add", port: p, fd: FD[p], role: p === 0 ? "gateway" : "pod" });
  }
  command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
  tap(2).reads.push(l2Frame("ff:ff:ff:ff:ff:ff", POD_B.mac)); // the FDB learns pod B on port 2
  tap(0).reads.push(l2Frame("ff:ff:ff:ff:ff:ff", GW_MAC)); // and tapnet0 on port 0
  rounds();
  for (let p = 0; p < 3; p++) tap(p).written.length = 0;
  let nextId = 1;
  /** Sends the node list; the reply comes with the next round. */
  const setNodes = (list: RouterConfig["nodes"], me: number) => {
    const id = nextId++;
    command({ op: "nodes", id, nodes: list, self: me });
    return id;
  };
  const sentTo = (addr: string) => concat(libc.udp.sent.filter((s) => s.address === ip(addr)).map((s) => s.bytes));
  /** Pod A sends to `dst`, its k-th packet. */
  const send = (dst: string, k: number) => tap(1).reads.push(ipFrame({ src: POD_A.ip, dst, payloadLen: 20 + k }));
  /**
   * A datagram comes from node `from` (an index of [N1, N2, N3], its underlay address ADDR[from]):
   * what that node's backend sends to node1 for a packet from `src` to pod B, of `k` + 20 bytes of payload.
   */
  const receive = (from: number, src: string, k: number) => {
    const sink = new CollectingSink();
    const b = makeBackend(nodeConfig(type, from), sink);
    const f = ipFrame({ eth: { dst: `0a:58:0a:f4:0${from + 1}:01`, src: "0a:58:0a:f4:09:09" }, src, dst: POD_B.ip, ttl: 63, payloadLen: 20 + k });
    b.send(f, 0, f.length, 0);
    b.flush();
    for (const d of sink.datagrams) libc.udp.incoming.push({ bytes: d.bytes, address: ip(ADDR[from]), port: TUNNEL_PORT });
  };
  /** The UDP payloads pod B got, by their length (20 + k). */
  const podB = () => tap(2).written.map((w) => w.length - (ETH_OFF + 14 + 20 + 8) - 20);
  const drops = (row: number) => Object.fromEntries(Object.entries(counters.portSnapshot(row)).filter(([k]) => k.startsWith("drop_")));
  return { libc, dp, counters, rounds, tap, setNodes, replies, sentTo, send, receive, podB, drops };
}

function l2Frame(dst: string, src: string): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 46);
  emitEthernet({ dst, src, vlans: [], etherType: 0x88b5 }, b, ETH_OFF);
  return b;
}

describe.each(ALL_BACKENDS)("a node list changed live, %s backend", (type) => {
  for (const noGso of [false, true]) {
    it(`a third node joins${noGso ? " (a datagram a send)" : ""}: its pod CIDR and its datagrams are taken from then on; node2's traffic flows across, none lost`, () => {
      const n = node1(type, [N1, N2], 0, { noGso });
      n.send("10.244.2.5", 0);
      n.send("10.244.3.7", 0);
      n.receive(2, "10.244.3.7", 0);
      n.receive(1, "10.244.2.5", 1);
      n.rounds();
      expect(n.sentTo(ADDR[2]).length).toBe(0);
      expect(n.drops(1)).toEqual({ drop_cluster_unreachable: 1 });
      expect(n.tap(1).written.length).toBe(1); // the ICMP unreachable back to pod A
      expect(n.drops(TUNNEL_ROW)).toEqual({ drop_tunnel_unknown_peer: 1 });
      expect(n.podB()).toEqual([1]);

      // 40 packets to node2, more than a round reads from one port: the change comes between rounds.
      for (let k = 1; k <= 40; k++) n.send("10.244.2.5", k);
      n.rounds();
      expect(n.tap(1).reads.length).toBe(24);
      const id = n.setNodes([N1, N2, N3], 0);
      n.receive(1, "10.244.2.6", 2);
      n.rounds(3);
      expect(n.replies).toEqual([{ op: "nodes", id }]);
      expect(n.tap(1).reads.length).toBe(0);
      const toNode2 = Array.from({ length: 41 }, (_, k) => leaving("10.244.2.5", k));
      expect(missingInOrder(n.sentTo(ADDR[1]), toNode2)).toBe(-1);
      expect(n.podB()).toEqual([1, 2]);

      n.send("10.244.3.7", 3);
      n.send("10.244.2.5", 41);
      n.receive(2, "10.244.3.7", 3);
      // The node's own traffic, along the routes host-net.ts installs: from tapnet0 to node3's VTEP MAC.
      n.tap(0).reads.push(ipFrame({ eth: { dst: VTEP[2], src: GW_MAC }, src: "10.244.1.1", dst: "10.244.3.8", payloadLen: 99 }));
      n.rounds();
      const own = ipFrame({ eth: { dst: VTEP[2], src: GW_MAC }, src: "10.244.1.1", dst: "10.244.3.8", payloadLen: 99, ttl: 63 }).subarray(ETH_OFF + 14);
      expect(missingInOrder(n.sentTo(ADDR[2]), [own, leaving("10.244.3.7", 3)])).toBe(-1);
      expect(missingInOrder(n.sentTo(ADDR[1]), [...toNode2, leaving("10.244.2.5", 41)])).toBe(-1);
      expect(n.podB()).toEqual([1, 2, 3]);
      // Nothing dropped across the change: only what was dropped before it.
      expect(n.drops(1)).toEqual({ drop_cluster_unreachable: 1 });
      expect(n.drops(TUNNEL_ROW)).toEqual({ drop_tunnel_unknown_peer: 1 });
      // Every datagram sent is counted, none failed.
      const datagrams = n.libc.udp.sent.reduce((s, d) => s + (d.segment ? Math.ceil(d.bytes.length / d.segment) : 1), 0);
      expect(n.counters.portSnapshot(TUNNEL_ROW).tx_frames).toBe(datagrams);
    });
  }

  it("a node leaves: frames for its pod CIDR are a counted cluster_unreachable drop, its datagrams a counted tunnel_unknown_peer drop; the others' flow on", () => {
    const n = node1(type, [N1, N2, N3], 0);
    n.send("10.244.2.5", 0);
    n.send("10.244.3.7", 0);
    n.receive(1, "10.244.2.5", 1);
    n.receive(2, "10.244.3.7", 2);
    n.rounds();
    expect(n.podB()).toEqual([1, 2]);
    const id = n.setNodes([N1, N3], 0); // node3 is index 1 now
    n.send("10.244.2.5", 1);
    n.send("10.244.3.7", 1);
    n.receive(1, "10.244.2.5", 3);
    n.receive(2, "10.244.3.7", 4);
    n.rounds();
    expect(n.replies).toEqual([{ op: "nodes", id }]);
    expect(missingInOrder(n.sentTo(ADDR[1]), [leaving("10.244.2.5", 0)])).toBe(-1);
    expect(missingInOrder(n.sentTo(ADDR[1]), [leaving("10.244.2.5", 1)])).toBe(0);
    expect(missingInOrder(n.sentTo(ADDR[2]), [leaving("10.244.3.7", 0), leaving("10.244.3.7", 1)])).toBe(-1);
    expect(n.drops(1)).toEqual({ drop_cluster_unreachable: 1 });
    expect(n.drops(TUNNEL_ROW)).toEqual({ drop_tunnel_unknown_peer: 1 });
    expect(n.podB()).toEqual([1, 2, 4]);
  });

  it("node indexes move (a node put before this one, the order reversed): frames go to the right address, senders are checked against the right pod CIDR", () => {
    const n = node1(type, [N1, N2], 0);
    n.send("10.244.2.5", 0);
    n.rounds();
    const id = n.setNodes([N3, N2, N1], 2);
    n.send("10.244.2.5", 1);
    n.send("10.244.3.7", 2);
    n.receive(1, "10.244.2.5", 1);
    n.receive(2, "10.244.3.7", 2);
    n.receive(2, "10.244.2.9", 3); // node3 sending for node2's pod CIDR
    n.rounds();
    expect(n.replies).toEqual([{ op: "nodes", id }]);
    expect(missingInOrder(n.sentTo(ADDR[1]), [leaving("10.244.2.5", 0), leaving("10.244.2.5", 1)])).toBe(-1);
    expect(missingInOrder(n.sentTo(ADDR[2]), [leaving("10.244.3.7", 2)])).toBe(-1);
    expect(n.podB()).toEqual([1, 2]);
    expect(n.drops(TUNNEL_ROW)).toEqual({ drop_tunnel_spoofed: 1 });
    expect(n.drops(1)).toEqual({});
    if (type === "vxlan") {
      // The inner Ethernet header: to the receiver's VTEP MAC, from this node's, at its new index.
      for (const [addr, vtep] of [[ADDR[1], VTEP[1]], [ADDR[2], VTEP[2]]]) {
        const d = n.libc.udp.sent.find((s) => s.address === ip(addr))!.bytes;
        expect([formatMac(d, 8), formatMac(d, 14)]).toEqual([vtep, VTEP[0]]);
      }
    }
  });
});

describe("a tapnet frame half received when the node list changes", () => {
  it("is finished after the change: the sender keeps its reassembly (adopt), its index moved", () => {
    const n = node1("tapnet", [N1, N2], 0);
    const sink = new CollectingSink();
    const b = makeBackend(nodeConfig("tapnet", 1), sink);
    const f = ipFrame({ eth: { dst: "0a:58:0a:f4:02:01", src: "0a:58:0a:f4:09:09" }, src: "10.244.2.5", dst: POD_B.ip, ttl: 63, payloadLen: 3000 });
    b.send(f, 0, f.length, 0);
    b.flush();
    const datagrams = sink.datagrams.map((d) => d.bytes);
    expect(datagrams.length).toBe(3);
    n.libc.udp.incoming.push({ bytes: datagrams[0], address: ip(ADDR[1]), port: TUNNEL_PORT });
    n.rounds();
    expect(n.podB()).toEqual([]);
    const id = n.setNodes([N2, N3, N1], 2); // node2 is index 0 now, node1 (self) index 2
    for (const d of datagrams.slice(1)) n.libc.udp.incoming.push({ bytes: d, address: ip(ADDR[1]), port: TUNNEL_PORT });
    n.rounds(2);
    expect(n.replies).toEqual([{ op: "nodes", id }]);
    expect(n.podB()).toEqual([3000 - 20]); // podB gives payload lengths less 20
    expect(n.drops(TUNNEL_ROW)).toEqual({});
  });
});

describe("a node list the datapath refuses", () => {
  const bad: [string, RouterConfig["nodes"], number, string][] = [
    ["this node's pod CIDR changed", [{ ...N1, network: ip("10.244.9.0") }, N2], 0, "nodes[0] (this node, node1): its pod CIDR is 10.244.1.0/24 while the switch runs, not 10.244.9.0/24"],
    ["this node's address changed", [{ ...N1, address: ip("192.168.56.99") }, N2], 0, "nodes[0] (this node, node1): its address is 192.168.56.11 while the switch runs (the tunnel is bound to it), not 192.168.56.99"],
    ["self is another node", [N1, N2], 1, "nodes[1] (this node, node2): its pod CIDR is 10.244.1.0/24 while the switch runs, not 10.244.2.0/24"],
    ["self out of range", [N1, N2], 2, "self: 2 is not an index of the 2 nodes"],
    ["no node", [], 0, "nodes: must be a list of at least one node (this one)"],
    ["two nodes at one address", [N1, N2, { ...N3, address: N2.address }], 0, "nodes[2].address: 192.168.56.12 is also nodes[1].address"],
    ["two nodes with one VTEP MAC", [N1, N2, { ...N3, vtepMac: N2.vtepMac.toUpperCase() }], 0, "nodes[2].vtepMac: 0E:00:C0:A8:38:0C is also nodes[1].vtepMac"],
    ["overlapping pod CIDRs", [N1, { ...N3, network: ip("10.244.2.0"), prefix: 23 }, N2], 0, "nodes[2].network: 10.244.2.0/24 overlaps nodes[1]'s 10.244.2.0/23"],
    ["a pod CIDR outside the cluster", [N1, { ...N2, network: ip("10.9.0.0") }], 0, "nodes[1].network: 10.9.0.0/24 is outside the cluster's 10.244.0.0/16"],
    ["host bits in a pod CIDR", [N1, { ...N2, network: ip("10.244.2.1") }], 0, "nodes[1].network: 183763457 is not the network address of a /24"],
    ["a bad VTEP MAC", [N1, { ...N2, vtepMac: "zz" }], 0, 'nodes[1].vtepMac: "zz" is not a MAC address'],
    ["an address that is no IPv4 address", [N1, { ...N2, address: -1 }], 0, "nodes[1].address: -1 is not an IPv4 address (a 32-bit number)"],
  ];
  for (const [what, nodes, self, message] of bad) {
    it(`${what}: refused with the field named, nothing changed`, () => {
      const n = node1("udp", [N1, N2], 0);
      const id = n.setNodes(nodes, self);
      n.send("10.244.2.5", 0);
      n.rounds();
      expect(n.replies).toEqual([{ op: "nodes", id, error: message }]);
      expect(missingInOrder(n.sentTo(ADDR[1]), [leaving("10.244.2.5", 0)])).toBe(-1);
    });
  }

  it("a switch that does not route between nodes refuses any", () => {
    const n = node1("udp", [N1, N2], 0, { routing: false });
    const id = n.setNodes([N1, N2], 0);
    n.rounds();
    expect(n.replies).toEqual([{ op: "nodes", id, error: "this switch does not route between nodes: it was started without a router config and tunnel" }]);
  });
});

describe.each(ALL_BACKENDS)("a routing switch alone in its cluster, %s backend", (type) => {
  it("bridges its pods, hands the rest of the world to tapnet0, answers for no-one's cluster addresses, drops every datagram as from no node; then a node joins", () => {
    const n = node1(type, [N1], 0);
    expect(n.libc.polls.at(-1)!.fds).toEqual([UDP_FD, ...FD]);
    const l2 = l2Frame(POD_B.mac, POD_A.mac);
    n.tap(1).reads.push(l2);
    n.send("10.244.1.1", 0); // the gateway: the node itself
    n.send("8.8.8.8", 1); // beyond the node
    n.send("10.244.2.5", 2); // in the cluster, no node's
    n.receive(1, "10.244.2.5", 0);
    n.rounds();
    expect(n.tap(2).written).toEqual([l2]);
    expect(n.tap(0).written.map((w) => w.length)).toEqual([ETH_OFF + 14 + 28 + 20, ETH_OFF + 14 + 28 + 21]);
    expect(n.tap(1).written.length).toBe(1); // ICMP destination unreachable
    expect(n.drops(1)).toEqual({ drop_cluster_unreachable: 1 });
    expect(n.drops(TUNNEL_ROW)).toEqual({ drop_tunnel_unknown_peer: 1 });
    expect(n.libc.udp.sent).toEqual([]);
    n.tap(2).written.length = 0;

    const id = n.setNodes([N1, N2], 0);
    n.send("10.244.2.5", 3);
    n.receive(1, "10.244.2.5", 4);
    n.rounds();
    expect(n.replies).toEqual([{ op: "nodes", id }]);
    expect(missingInOrder(n.sentTo(ADDR[1]), [leaving("10.244.2.5", 3)])).toBe(-1);
    expect(n.podB()).toEqual([4]);
  });
});

// The datapath loop over an in-memory libc: what it polls, reads, writes and sends, how it
// answers the control thread, and when it takes a port down.
import { Worker } from "node:worker_threads";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { EAGAIN, EINTR } from "../../src/io/libc.ts";
import { SOL_UDP, UDP_GRO, UDP_SEGMENT } from "../../src/io/udp.ts";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { Datapath } from "../../src/switch/datapath.ts";
import { Ctrl } from "../../src/switch/commands.ts";
import { TapnetBackend } from "../../src/tunnel/tapnet.ts";
import { fold, pseudoHeaderSum, sumWords } from "../../src/wire/checksum.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitVirtioNetHdr, ETH_OFF, GSO_TCPV4, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { EIO, ENOBUFS, POLLERR, POLLHUP, POLLIN, POLLNVAL } from "../support/fake-libc.ts";
import type { CollectingSink } from "../support/gather.ts";
import { testContext } from "../support/tunnel.ts";
import { ADDR, config, GW, GW_MAC, ip, ipFrame, POD_A, POD_B, tapnetConfig, tsoFrame, VTEP } from "./router-support.ts";
import { closeOpened, FD, MAX_PORTS, setup, TUNNEL_PORT, TUNNEL_ROW, UDP_FD } from "./datapath-support.ts";

const A = "02:00:00:00:00:0a";
const B = "02:00:00:00:00:0b";
const C = "02:00:00:00:00:0c";
const BROADCAST = "ff:ff:ff:ff:ff:ff";

/** A frame as a TAP gives it: a zeroed virtio_net_hdr, Ethernet (a local ethertype), and a tagged payload. */
function frame(dst: string, src: string, tag = 0): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 46);
  emitEthernet({ dst, src, vlans: [], etherType: 0x88b5 }, b, ETH_OFF);
  b[ETH_OFF + 14] = tag;
  return b;
}

afterEach(() => {
  closeOpened();
  vi.useRealTimers();
});

/** What node 1's tapnet backend sends node 0 for frame `f` (with UDP_SEGMENT), in a collecting sink. */
function tapnetSent(f: Uint8Array): CollectingSink {
  const { ctx, out } = testContext({ self: 1, segmenting: true });
  const tx = new TapnetBackend(ctx);
  tx.send(f, 0, f.length, 0);
  tx.flush();
  return out;
}

/**
 * A 3,000-byte TCP super-frame from node 1's pod 10.244.2.5 to the gateway, `extra` bytes of
 * padding after its packet, sent by a tapnet backend with UDP_SEGMENT into a collecting sink.
 */
function tapnetSuperFrame(extra: number): { f: Uint8Array; sink: CollectingSink } {
  const f = new Uint8Array(ETH_OFF + 14 + 20 + 20 + 3000 + extra);
  emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: 1000, csumStart: 34, csumOffset: 16 }, f, 0);
  emitEthernet({ dst: VTEP[0], src: VTEP[1], vlans: [], etherType: 0x0800 }, f, ETH_OFF);
  emitIpv4({ tos: 0, id: 3, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 63, protocol: 6, src: "10.244.2.5", dst: GW, payloadLen: 3020 }, f, ETH_OFF + 14);
  emitTcp({ srcPort: 5201, dstPort: 40000, seq: 1, ack: 1, flags: 0x10, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, f, ETH_OFF + 34);
  for (let i = ETH_OFF + 54; i < f.length; i++) f[i] = i & 0xff;
  return { f, sink: tapnetSent(f) };
}

describe("Datapath: bridging between TAP ports", () => {
  it("floods a broadcast to every other port, then sends the reply to the learned MAC to that port alone", () => {
    const { ports, tap, rounds, counters } = setup();
    ports(3);
    const hello = frame(BROADCAST, A, 1);
    tap(0).reads.push(hello);
    rounds();
    expect(tap(0).written).toEqual([]);
    expect(tap(1).written).toEqual([hello]);
    expect(tap(2).written).toEqual([hello]);
    const reply = frame(A, B, 2);
    tap(1).reads.push(reply);
    rounds();
    expect(tap(0).written).toEqual([reply]);
    expect(tap(0).calls).toEqual(["write"]);
    expect(tap(2).written).toEqual([hello]);
    expect(counters.sw(SwitchCounter.FdbLearned)).toBe(2);
    expect(tap(2).readCalls).toBe(0); // never ready, never read
    expect(counters.portSnapshot(0)).toEqual({ rx_frames: 1, rx_bytes: 60, tx_frames: 1, tx_bytes: 60, rx_flooded: 1 });
    expect(counters.portSnapshot(1)).toEqual({ rx_frames: 1, rx_bytes: 60, tx_frames: 1, tx_bytes: 60, rx_flooded: 0 });
  });

  it("forwards every frame of a round in the order read: all of one port's, then the next port's", () => {
    const { ports, tap, rounds } = setup();
    ports(3);
    const f = [frame(C, A, 1), frame(C, A, 2), frame(C, B, 3)];
    tap(0).reads.push(f[0], f[1]);
    tap(1).reads.push(f[2]);
    rounds();
    expect(tap(2).written).toEqual(f);
    expect(tap(0).written).toEqual([f[2]]);
    expect(tap(1).written).toEqual([f[0], f[1]]);
  });

  it("polls each live port's fd for POLLIN, with a 100 ms timeout; the tunnel socket comes first", () => {
    const plain = setup();
    plain.ports(2);
    plain.rounds();
    expect(plain.libc.polls).toEqual([{ fds: [10, 11], events: [POLLIN, POLLIN], timeout: 100 }]);
    const routed = setup({ router: config("udp") });
    routed.ports(2);
    routed.rounds();
    expect(routed.libc.polls).toEqual([{ fds: [UDP_FD, 10, 11], events: [POLLIN, POLLIN, POLLIN], timeout: 100 }]);
  });

  it("a TAP on fd 0 is polled and read like any other", () => {
    const { command, libc, rounds } = setup();
    libc.tap(0);
    libc.tap(11);
    command({ op: "add", port: 0, fd: 0, role: "pod" });
    command({ op: "add", port: 1, fd: 11, role: "pod" });
    const f = frame(BROADCAST, A);
    libc.tap(0).reads.push(f);
    rounds();
    expect(libc.polls[0].fds).toEqual([0, 11]);
    expect(libc.tap(11).written).toEqual([f]);
  });

  it("without routing, a port added as the gateway is bridged like any other, and neigh is ignored", () => {
    const { ports, tap, rounds, command } = setup();
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    const f = frame(BROADCAST, A);
    tap(0).reads.push(f);
    rounds();
    expect(tap(1).written).toEqual([f]);
  });

  it("counts a frame a port would not take (write failed, or short) as a tx_error on the port it came from", () => {
    const { ports, tap, rounds, drops, counters } = setup();
    ports(3);
    tap(1).writeErrno = ENOBUFS;
    tap(2).shortWrites = true;
    tap(0).reads.push(frame(BROADCAST, A));
    rounds();
    expect(drops(0)).toEqual({ drop_tx_error: 2 });
    expect(counters.portSnapshot(1).tx_frames).toBe(0);
    expect(counters.portSnapshot(2).tx_frames).toBe(0);
  });

  it("reads at most 16 frames from a port per round, so a busy port cannot starve the next", () => {
    const { ports, tap, rounds } = setup();
    ports(3);
    for (let i = 0; i < 40; i++) tap(0).reads.push(frame(C, A, i));
    const quiet = frame(C, B, 99);
    tap(1).reads.push(quiet);
    rounds();
    expect(tap(0).readCalls).toBe(16);
    expect(tap(0).reads.length).toBe(24);
    expect(tap(0).written).toEqual([quiet]);
    expect(tap(2).written.length).toBe(17);
    rounds();
    expect(tap(0).readCalls).toBe(32);
    rounds();
    expect(tap(0).readCalls).toBe(41); // the last 8, then EAGAIN
    expect(tap(2).written.length).toBe(41);
  });

  it("reads no more than the batch holds in a round, across ports; the rest waits for the next", () => {
    const { ports, tap, rounds } = setup({ batch: 4 });
    ports(3);
    for (let i = 0; i < 3; i++) tap(0).reads.push(frame(C, A, i));
    for (let i = 0; i < 3; i++) tap(1).reads.push(frame(C, B, 10 + i));
    rounds();
    expect(tap(0).readCalls).toBe(4); // three frames, then EAGAIN
    expect(tap(1).readCalls).toBe(1); // the batch is full after one
    expect(tap(2).written.map((f) => f[ETH_OFF + 14])).toEqual([0, 1, 2, 10]);
    rounds();
    expect(tap(1).readCalls).toBe(4);
    expect(tap(2).written.map((f) => f[ETH_OFF + 14])).toEqual([0, 1, 2, 10, 11, 12]);
  });

  it("ends a port's reads for the round at EAGAIN, EINTR or a read of 0 bytes, and keeps the port", () => {
    const { ports, tap, rounds, replies } = setup();
    ports(2);
    const f = [frame(B, A, 1), frame(B, A, 2), frame(B, A, 3), frame(B, A, 4)];
    // A read of 0 bytes first, before any call has failed (errno is still 0).
    tap(0).reads.push("eof", f[0], { errno: EINTR }, f[1], { errno: EAGAIN }, f[2], f[3]);
    rounds();
    expect(tap(1).written).toEqual([]);
    rounds();
    expect(tap(1).written).toEqual([f[0]]);
    rounds();
    expect(tap(1).written).toEqual([f[0], f[1]]);
    rounds();
    expect(tap(1).written).toEqual(f);
    expect(replies()).toEqual([]);
  });

  it("a full batch leaves the rest of the ports, a hang-up too, for the next round", () => {
    const { ports, tap, rounds, replies } = setup({ batch: 2 });
    ports(3);
    tap(0).reads.push(frame(C, A, 1), frame(C, A, 2));
    tap(1).revents = POLLHUP;
    rounds();
    expect(replies()).toEqual([]);
    expect(tap(2).written.length).toBe(2);
    rounds();
    expect(replies()).toEqual([{ op: "down", port: 1, reason: "device gone" }]);
  });

  it("looks only at the entries of the current poll set, not at those a larger one left behind", () => {
    const { ports, tap, rounds, command } = setup();
    ports(3);
    tap(2).reads.push(frame(A, C, 1));
    rounds(); // port 2's entry (the third) had POLLIN
    expect(tap(2).readCalls).toBe(2);
    command({ op: "remove", port: 0, id: 1 });
    tap(1).reads.push(frame(A, B, 2));
    rounds(); // now the set is ports 1 and 2; only port 1 is ready
    expect(tap(1).readCalls).toBe(2);
    expect(tap(2).readCalls).toBe(2);
  });

  it("polls a full switch: the tunnel and every port, and reads the last one", () => {
    const { ports, tap, rounds, libc } = setup({ router: config("udp") });
    ports(MAX_PORTS - 1);
    const f = frame(BROADCAST, A);
    tap(6).reads.push(f);
    rounds();
    expect(libc.polls[0].fds).toEqual([UDP_FD, 10, 11, 12, 13, 14, 15, 16]);
    for (let p = 0; p < 6; p++) expect(tap(p).written).toEqual([f]);
  });

  it("with routing, the tunnel is polled and read before any port is added", () => {
    const { rounds, libc, udp, counters } = setup({ router: config("udp"), noGro: true });
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip("192.168.56.99"), port: TUNNEL_PORT });
    rounds();
    expect(libc.polls[0].fds).toEqual([UDP_FD]);
    expect(counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ rx_frames: 1, drop_tunnel_unknown_peer: 1 });
  });

  it("a tunnel socket on fd 0 is polled and read like any other", () => {
    const { ports, tap, rounds, libc, udp, command } = setup({ router: config("udp"), udpFd: 0, noGro: true });
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(libc.polls[0].fds).toEqual([0, 10, 11]);
    expect(tap(1).written).toEqual([deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac)]);
  });

  it("with a router config but no tunnel socket, the datapath only bridges", () => {
    const { ports, tap, rounds, libc } = setup({ router: config("udp"), udpFd: false });
    ports(2, true);
    tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.5", eth: { dst: B } }));
    rounds();
    expect(libc.polls[0].fds).toEqual([10, 11]);
    expect(libc.udp.options).toEqual([]);
    expect(tap(0).written.length).toBe(1);
  });

  it("does not read after a failed poll (EINTR)", () => {
    const { ports, tap, rounds, libc } = setup();
    ports(2);
    tap(0).reads.push(frame(B, A, 1));
    rounds(); // revents of port 0 set, the frame read
    tap(0).reads.push(frame(B, A, 2));
    libc.pollFailures = 1;
    rounds();
    expect(tap(0).readCalls).toBe(2);
    expect(tap(1).written.length).toBe(1);
  });
});

describe("Datapath: ports that go away", () => {
  for (const [what, revents, reason] of [
    ["POLLHUP", POLLHUP, "device gone"], ["POLLERR", POLLERR, "device gone"], ["POLLNVAL", POLLNVAL, "fd closed"],
    ["POLLHUP with POLLIN", POLLHUP | POLLIN, "device gone"],
  ] as const) {
    it(`a port whose poll says ${what} is reported down ("${reason}"), polled no more, and not flooded to`, () => {
      const { ports, tap, rounds, replies, libc, command } = setup();
      ports(3);
      tap(1).reads.push(frame(BROADCAST, B, 1));
      rounds(); // B learned on port 1
      tap(1).revents = revents;
      tap(1).reads.push(frame(BROADCAST, B, 2));
      rounds();
      expect(replies()).toEqual([{ op: "down", port: 1, reason }]);
      expect(tap(1).readCalls).toBe(2); // none after the hang-up
      expect(libc.polls[2 - 1].fds).toEqual([10, 11, 12]);
      tap(0).reads.push(frame(BROADCAST, A, 3));
      rounds();
      expect(libc.polls[2].fds).toEqual([10, 12]);
      expect(tap(1).written).toEqual([]);
      expect(tap(2).written.map((f) => f[ETH_OFF + 14])).toEqual([1, 3]);
      command({ op: "fdb", id: 5 });
      rounds();
      expect(replies()).toEqual([{ op: "fdb", id: 5, entries: [{ mac: A, port: 0, age: expect.any(Number) }] }]);
    });
  }

  it("a port down ends the round's reads: the other ports are read in the next", () => {
    const { ports, tap, rounds, replies } = setup();
    ports(3);
    tap(0).revents = POLLHUP;
    tap(1).reads.push(frame(C, B, 1));
    rounds();
    expect(replies()).toEqual([{ op: "down", port: 0, reason: "device gone" }]);
    expect(tap(1).readCalls).toBe(0);
    rounds();
    expect(tap(2).written.map((f) => f[ETH_OFF + 14])).toEqual([1]);
  });

  it("a read failing with another errno takes the port down with that errno", () => {
    const { ports, tap, rounds, replies, libc } = setup();
    ports(2);
    tap(0).reads.push(frame(B, A, 1), { errno: EIO }, frame(B, A, 2));
    tap(1).reads.push(frame(A, B, 3));
    rounds();
    expect(replies()).toEqual([{ op: "down", port: 0, reason: "read failed: errno 5" }]);
    expect(tap(1).readCalls).toBe(0);
    rounds();
    expect(libc.polls[1].fds).toEqual([11]);
    expect(tap(0).readCalls).toBe(2);
  });
});

describe("Datapath: commands from the control thread", () => {
  it("add puts the port's fd in the poll set; remove takes it out and answers with the request's id", () => {
    const { ports, rounds, libc, command, replies, tap } = setup();
    ports(2);
    rounds();
    command({ op: "add", port: 3, fd: 13, role: "pod" });
    libc.tap(13);
    rounds();
    expect(libc.polls[1].fds).toEqual([10, 11, 13]);
    tap(0).reads.push(frame(BROADCAST, A, 1));
    command({ op: "remove", port: 1, id: 42 });
    rounds();
    expect(replies()).toEqual([{ op: "removed", id: 42 }]);
    expect(libc.polls[2].fds).toEqual([10, 13]);
    expect(tap(1).written).toEqual([]);
    expect(libc.tap(13).written.length).toBe(1);
  });

  it("adding a port twice leaves it once in the poll set", () => {
    const { ports, rounds, libc, command } = setup();
    ports(1);
    command({ op: "add", port: 0, fd: 10, role: "pod" });
    rounds();
    expect(libc.polls[0].fds).toEqual([10]);
  });

  it("fdb answers with the learned entries: MAC, port and age in seconds", () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const { ports, rounds, tap, command, replies } = setup();
    ports(2);
    tap(0).reads.push(frame(BROADCAST, A));
    vi.advanceTimersByTime(2000);
    rounds();
    vi.advanceTimersByTime(5000);
    command({ op: "fdb", id: 7 });
    rounds();
    expect(replies()).toEqual([{ op: "fdb", id: 7, entries: [{ mac: A, port: 0, age: 5 }] }]);
  });

  it("reads commands only when the sequence number has moved, then all that are waiting", () => {
    const { ports, rounds, libc, ctrl, post } = setup();
    ports(1);
    libc.tap(11);
    libc.tap(12);
    rounds();
    post({ op: "add", port: 1, fd: 11, role: "pod" });
    post({ op: "add", port: 2, fd: 12, role: "pod" });
    rounds();
    expect(libc.polls[1].fds).toEqual([10]);
    Atomics.add(ctrl, Ctrl.CmdSeq, 1);
    rounds();
    expect(libc.polls[2].fds).toEqual([10, 11, 12]);
  });

  it("remove of the gateway port: what the tunnel brings for the gateway address is then dropped as no_port", () => {
    const { ports, rounds, udp, command, tap, drops, replies } = setup({ router: config("udp"), noGro: true });
    ports(2, true);
    const toGw = ipFrame({ src: "10.244.2.5", dst: GW }).subarray(ETH_OFF + 14);
    udp.incoming.push({ bytes: toGw, address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(0).written.length).toBe(1);
    command({ op: "remove", port: 0, id: 1 });
    rounds();
    expect(replies()).toEqual([{ op: "removed", id: 1 }]);
    command({ op: "add", port: 0, fd: 10, role: "pod" });
    udp.incoming.push({ bytes: toGw, address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(0).written.length).toBe(1);
    expect(drops(TUNNEL_ROW)).toEqual({ drop_no_port: 1 });
  });

  it("removing a pod's port leaves the gateway port as it was", () => {
    const { ports, rounds, udp, command, tap, drops } = setup({ router: config("udp"), noGro: true });
    ports(2, true);
    command({ op: "remove", port: 1, id: 1 });
    udp.incoming.push({ bytes: ipFrame({ src: "10.244.2.5", dst: GW }).subarray(ETH_OFF + 14), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(0).written.length).toBe(1);
    expect(drops(TUNNEL_ROW)).toEqual({});
  });

  it("a port added as a pod is not the gateway: packets for the gateway address are dropped as no_port", () => {
    const { ports, rounds, udp, tap, drops } = setup({ router: config("udp"), noGro: true });
    ports(2, false);
    udp.incoming.push({ bytes: ipFrame({ src: "10.244.2.5", dst: GW }).subarray(ETH_OFF + 14), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(0).written).toEqual([]);
    expect(drops(TUNNEL_ROW)).toEqual({ drop_no_port: 1 });
  });

  it("neigh tells the router a pod's MAC, so a packet from the tunnel reaches it without asking; a bad MAC is ignored", () => {
    const { ports, rounds, udp, command, tap, drops } = setup({ router: config("udp"), noGro: true });
    ports(2, true);
    const toB = ipFrame({ src: "10.244.2.5", dst: POD_B.ip }).subarray(ETH_OFF + 14);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: "not a mac" });
    udp.incoming.push({ bytes: toB, address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(drops(TUNNEL_ROW)).toEqual({ drop_neigh_unresolved: 1 });
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    udp.incoming.push({ bytes: toB, address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(drops(TUNNEL_ROW)).toEqual({ drop_neigh_unresolved: 1 });
    // Before it knew, the router asked for the MAC (ARP, flooded); then it delivered.
    expect(tap(1).written.map((f) => (f[ETH_OFF + 12] << 8) | f[ETH_OFF + 13])).toEqual([0x0806, 0x0800]);
    expect(tap(1).written[1]).toEqual(deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac));
  });
});

/** What the udp backend's peer sends: the IPv4 packet of `ipFrame(p)`. */
function udpDatagram(src: string, dst: string, payloadLen = 32): Uint8Array {
  return ipFrame({ src, dst, payloadLen }).subarray(ETH_OFF + 14);
}

/** The frame a pod's TAP gets for `udpDatagram(src, dst)`: DATA_VALID, from the gateway MAC, TTL 63. */
function deliveredFrame(src: string, dst: string, dstMac: string, payloadLen = 32): Uint8Array {
  const f = ipFrame({ eth: { dst: dstMac, src: GW_MAC }, src, dst, ttl: 63, payloadLen });
  f[0] = VNET_F_DATA_VALID;
  return f;
}

/** A TCP segment (ACK, valid checksums) from 10.244.2.5 to pod B, as the udp backend carries it. */
function tcpSegment(seq: number, payload: number): Uint8Array {
  const b = new Uint8Array(20 + 20 + payload);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: "10.244.2.5", dst: POD_B.ip, payloadLen: 20 + payload }, b, 0);
  emitTcp({ srcPort: 5201, dstPort: 40000, seq, ack: 1, flags: 0x10, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, 20);
  for (let i = 0; i < payload; i++) b[40 + i] = (seq + i) & 0xff;
  const sum = fold(sumWords(b, 20, 20 + payload, pseudoHeaderSum(ip("10.244.2.5"), ip(POD_B.ip), 6, 20 + payload)));
  b[20 + 16] = (~sum >> 8) & 0xff;
  b[20 + 17] = ~sum & 0xff;
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  return all;
}

describe("Datapath: the tunnel", () => {
  it("turns on UDP_SEGMENT at the datagram size and UDP_GRO on the tunnel socket", () => {
    const { udp } = setup({ router: config("udp") });
    expect(udp.options).toEqual([{ level: SOL_UDP, name: UDP_SEGMENT, value: 1472 }, { level: SOL_UDP, name: UDP_GRO, value: 1 }]);
  });

  it("without UDP_SEGMENT, a routed frame leaves in one sendmsg of one piece, no control message, to the owning node's address and tunnel port", () => {
    const { ports, rounds, tap, udp, counters } = setup({ router: config("udp"), noGso: true });
    ports(2, true);
    tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.5" }));
    rounds();
    expect(udp.sent).toEqual([{ call: "sendmsg", address: ip(ADDR[1]), port: TUNNEL_PORT, bytes: ipFrame({ src: POD_A.ip, dst: "10.244.2.5", ttl: 63 }).subarray(ETH_OFF + 14), segment: 0, pieces: 1 }]);
    expect(counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ tx_frames: 1, tx_bytes: 60 });
    tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.3.7" }));
    rounds();
    expect(udp.sent.map((s) => s.address)).toEqual([ip(ADDR[1]), ip(ADDR[2])]);
  });

  it("a send that fails is counted as a tx_error on the tunnel's row, with or without UDP_SEGMENT", () => {
    for (const noGso of [true, false]) {
      const { ports, rounds, tap, udp, drops, counters } = setup({ router: config("udp"), noGso });
      ports(2, true);
      udp.sendErrno = ENOBUFS;
      tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.5" }), ipFrame({ src: POD_A.ip, dst: "10.244.2.6" }));
      rounds();
      expect(drops(TUNNEL_ROW)).toEqual({ drop_tx_error: 2 });
      expect(drops(1)).toEqual({});
      expect(counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ tx_frames: 0, tx_bytes: 0 });
    }
  });

  it("with UDP_SEGMENT, a TCP super-frame leaves in one sendmsg cut at its first segment's size, the same bytes as one send per segment without", () => {
    const gso = setup({ router: config("udp"), slotSize: 16384 });
    const plain = setup({ router: config("udp"), slotSize: 16384, noGso: true });
    for (const s of [gso, plain]) {
      s.ports(2, true);
      s.tap(1).reads.push(tsoFrame(11500, 1000));
      s.rounds();
    }
    expect(plain.udp.sent.map((s) => [s.call, s.bytes.length, s.segment, s.pieces])).toEqual([...Array(11).fill(["sendmsg", 1040, 0, 2]), ["sendmsg", 540, 0, 2]]);
    expect(gso.udp.sent.length).toBe(1);
    const [sent] = gso.udp.sent;
    expect({ ...sent, bytes: undefined }).toEqual({ call: "sendmsg", address: ip(ADDR[1]), port: TUNNEL_PORT, bytes: undefined, segment: 1040, pieces: 24 });
    expect(sent.bytes).toEqual(concat(plain.udp.sent.map((s) => s.bytes)));
  });

  it("tapnet backend: frames leave by sendmsg, gathered with UDP_SEGMENT when the socket has it, one per datagram without", () => {
    const gso = setup({ router: tapnetConfig(0) });
    const plain = setup({ router: tapnetConfig(0), noGso: true });
    for (const s of [gso, plain]) {
      s.ports(2, true);
      s.tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.5" }), ipFrame({ src: POD_A.ip, dst: "10.244.2.6" }));
      s.rounds();
    }
    expect(gso.udp.sent.map((s) => [s.call, s.address, s.port, s.bytes.length, s.segment, s.pieces])).toEqual([["sendmsg", ip(ADDR[1]), TUNNEL_PORT, 2 * 96, 96, 4]]);
    expect(plain.udp.sent.map((s) => [s.call, s.address, s.port, s.bytes.length, s.segment, s.pieces])).toEqual([
      ["sendmsg", ip(ADDR[1]), TUNNEL_PORT, 96, 0, 2], ["sendmsg", ip(ADDR[1]), TUNNEL_PORT, 96, 0, 2],
    ]);
    expect(gso.udp.sent[0].bytes).toEqual(concat(plain.udp.sent.map((s) => s.bytes)));
  });

  it("udp and vxlan backends: small routed frames to one node leave in one sendmsg with UDP_SEGMENT, one each without", () => {
    for (const type of ["udp", "vxlan"] as const) {
      const gso = setup({ router: config(type) });
      const plain = setup({ router: config(type), noGso: true });
      for (const s of [gso, plain]) {
        s.ports(2, true);
        s.tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.5" }), ipFrame({ src: POD_A.ip, dst: "10.244.2.6" }), ipFrame({ src: POD_A.ip, dst: "10.244.3.6" }));
        s.rounds();
      }
      const d = type === "udp" ? 60 : 82;
      expect(gso.udp.sent.map((s) => [s.call, s.address, s.bytes.length, s.segment, s.pieces]), type).toEqual([
        ["sendmsg", ip(ADDR[1]), 2 * d, d, 2], ["sendmsg", ip(ADDR[2]), d, d, 1],
      ]);
      expect(plain.udp.sent.map((s) => [s.call, s.address, s.bytes.length, s.segment, s.pieces]), type).toEqual([
        ["sendmsg", ip(ADDR[1]), d, 0, 1], ["sendmsg", ip(ADDR[1]), d, 0, 1], ["sendmsg", ip(ADDR[2]), d, 0, 1],
      ]);
      expect(concat(gso.udp.sent.map((s) => s.bytes))).toEqual(concat(plain.udp.sent.map((s) => s.bytes)));
      expect(gso.counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ tx_frames: 3, tx_bytes: 3 * d });
    }
  });

  it("a datagram read with recvfrom reaches the pod's TAP: from the gateway MAC, TTL 63, checksum verified", () => {
    const { ports, rounds, tap, udp, command, counters } = setup({ router: config("udp"), noGro: true });
    ports(3, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    tap(2).reads.push(frame(BROADCAST, POD_B.mac)); // the FDB learns pod B on port 2
    rounds();
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(2).written).toEqual([deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac)]);
    expect(tap(1).written.length).toBe(1); // only the broadcast
    expect(counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ rx_frames: 1, rx_bytes: 60 });
    expect(counters.sw(SwitchCounter.Delivered)).toBe(1);
  });

  it("the sender's address decides: a datagram from no node's address is dropped as tunnel_unknown_peer", () => {
    for (const noGro of [true, false]) {
      const { ports, rounds, tap, udp, command, drops } = setup({ router: config("udp"), noGro });
      ports(2, true);
      command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
      udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip("192.168.56.99"), port: TUNNEL_PORT });
      udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
      rounds();
      expect(drops(TUNNEL_ROW)).toEqual({ drop_tunnel_unknown_peer: 1 });
      expect(tap(1).written).toEqual([deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac)]);
    }
  });

  it("with UDP_GRO, a run of datagrams read in one recvmsg is cut at the kernel's segment size, each delivered", () => {
    const { ports, rounds, tap, udp, command, counters, drops } = setup({ router: config("udp"), offloads: false });
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    const run = [udpDatagram("10.244.2.5", POD_B.ip, 100), udpDatagram("10.244.2.5", POD_B.ip, 100), udpDatagram("10.244.2.5", POD_B.ip, 40)];
    udp.incoming.push({ bytes: concat(run), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 128 });
    rounds();
    expect(tap(1).written).toEqual([
      deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac, 100), deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac, 100),
      deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac, 40),
    ]);
    expect(drops(TUNNEL_ROW)).toEqual({});
    expect(counters.portSnapshot(TUNNEL_ROW)).toMatchObject({ rx_frames: 3, rx_bytes: 128 * 2 + 68 });
  });

  it("a recvmsg without the GRO control message is one datagram", () => {
    const { ports, rounds, tap, udp, command } = setup({ router: config("udp") });
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip, 100), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(tap(1).written).toEqual([deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac, 100)]);
  });

  it("with UDP_GRO and TAP offloads, consecutive TCP segments of a flow are written to the pod as one super-frame", () => {
    for (const offloads of [true, false]) {
      const { ports, rounds, tap, udp, command, counters } = setup({ router: config("udp"), offloads });
      ports(2, true);
      command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
      udp.incoming.push({ bytes: concat([tcpSegment(1000, 500), tcpSegment(1500, 500), tcpSegment(2000, 500)]), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 540 });
      rounds();
      // Unmerged, the first segment is a frame where it was read (write); the others, headers in a head and the payload where it lies (writev).
      expect(tap(1).calls).toEqual(offloads ? ["writev/4"] : ["write", "writev/2", "writev/2"]);
      expect(counters.sw(SwitchCounter.Coalesced)).toBe(offloads ? 3 : 0);
      expect(tap(1).written.reduce((n, f) => n + f.length, 0)).toBe(offloads ? ETH_OFF + 14 + 40 + 1500 : 3 * (ETH_OFF + 14 + 540));
    }
  });

  it("an empty datagram is read like any other (and dropped as not IPv4); reading goes on after it", () => {
    for (const noGro of [true, false]) {
      const { ports, rounds, udp, command, tap, drops, counters } = setup({ router: config("udp"), noGro });
      ports(2, true);
      command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
      udp.incoming.push({ bytes: new Uint8Array(0), address: ip(ADDR[1]), port: TUNNEL_PORT });
      udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
      rounds();
      expect(drops(TUNNEL_ROW)).toEqual({ drop_tunnel_not_ipv4: 1 });
      expect(counters.portSnapshot(TUNNEL_ROW).rx_frames).toBe(2);
      expect(tap(1).written.length).toBe(1);
    }
  });

  it("with UDP_GRO and TAP offloads, a run of 64 segments is written with one writev of 65 pieces", () => {
    const { ports, rounds, tap, udp, command, counters } = setup({ router: config("udp"), offloads: true, slotSize: 16384 });
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    const segs = Array.from({ length: 64 }, (_, i) => tcpSegment(1000 + 100 * i, 100));
    udp.incoming.push({ bytes: concat(segs), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 140 });
    rounds();
    expect(tap(1).calls).toEqual(["writev/65"]);
    expect(tap(1).written[0].length).toBe(ETH_OFF + 14 + 40 + 6400);
    expect(counters.sw(SwitchCounter.Coalesced)).toBe(64);
  });

  it("reads at most 16 datagrams from the tunnel per round", () => {
    const { ports, rounds, udp, command, tap } = setup({ router: config("udp"), noGro: true });
    ports(2, true);
    command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
    for (let i = 0; i < 20; i++) udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(udp.recvCalls).toBe(16);
    expect(tap(1).written.length).toBe(16);
    rounds();
    expect(udp.recvCalls).toBe(21);
    expect(tap(1).written.length).toBe(20);
  });

  it("reads from the tunnel no more than the batch holds, with recvfrom and with recvmsg", () => {
    for (const noGro of [true, false]) {
      const { ports, rounds, udp, command, tap } = setup({ router: config("udp"), noGro, batch: 3 });
      ports(2, true);
      command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
      for (let i = 0; i < 5; i++) udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
      rounds();
      expect(udp.recvCalls).toBe(3);
      expect(tap(1).written.length).toBe(3);
    }
  });

  it("a failed tunnel read ends the tunnel's reads for the round; the TAPs are still read", () => {
    for (const noGro of [true, false]) {
      const { ports, rounds, udp, command, tap } = setup({ router: config("udp"), noGro });
      ports(2, true);
      command({ op: "neigh", ip: ip(POD_B.ip), mac: POD_B.mac });
      const d = { bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT };
      udp.incoming.push(d, { errno: ENOBUFS }, d);
      tap(0).reads.push(frame(BROADCAST, A));
      rounds();
      expect(udp.recvCalls).toBe(2);
      expect(tap(1).written.length).toBe(2); // the datagram and the broadcast
      rounds();
      expect(tap(1).written.length).toBe(3);
    }
  });

  it("tapnet: a frame whose datagrams all came in one GRO read is written with one writev of its head and the pieces", () => {
    const { ports, rounds, udp, tap, counters } = setup({ router: tapnetConfig(0), slotSize: 8192 });
    ports(2, true);
    const { f, sink } = tapnetSuperFrame(0);
    expect(sink.sends.length).toBe(1);
    udp.incoming.push({ bytes: concat(sink.datagrams.map((d) => d.bytes)), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 1472 });
    rounds();
    const expected = f.slice();
    emitEthernet({ dst: GW_MAC, src: VTEP[1], vlans: [], etherType: 0x0800 }, expected, ETH_OFF);
    expect(tap(0).calls).toEqual(["writev/4"]);
    expect(tap(0).written).toEqual([expected]);
    expect(counters.sw(SwitchCounter.Delivered)).toBe(1);
  });

  it("tapnet: a frame longer than its IPv4 packet is written cut at the packet's end, without the pieces past it", () => {
    const { ports, rounds, udp, tap } = setup({ router: tapnetConfig(0), slotSize: 8192 });
    ports(2, true);
    const { f, sink } = tapnetSuperFrame(1500); // 1500 bytes after the packet
    expect(sink.datagrams.length).toBe(4);
    udp.incoming.push({ bytes: concat(sink.datagrams.map((d) => d.bytes)), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 1472 });
    rounds();
    const expected = f.slice(0, ETH_OFF + 14 + 3040);
    emitEthernet({ dst: GW_MAC, src: VTEP[1], vlans: [], etherType: 0x0800 }, expected, ETH_OFF);
    expect(tap(0).calls).toEqual(["writev/4"]);
    expect(tap(0).written).toEqual([expected]);
  });

  it("tapnet: a frame taken short by the gateway TAP is counted as a tx_error on the tunnel", () => {
    const { ports, rounds, udp, tap, drops } = setup({ router: tapnetConfig(0) });
    ports(2, true);
    tap(0).shortWrites = true;
    // a frame of two datagrams (its head, the rest of the first, the second), and one of one datagram, where it was read
    for (const payloadLen of [2000, 32]) {
      const sink = tapnetSent(ipFrame({ src: "10.244.2.5", dst: GW, payloadLen }));
      udp.incoming.push({ bytes: concat(sink.datagrams.map((d) => d.bytes)), address: ip(ADDR[1]), port: TUNNEL_PORT, gro: 1472 });
    }
    rounds();
    expect(tap(0).calls).toEqual(["writev/3", "writev/1"]);
    expect(drops(TUNNEL_ROW)).toEqual({ drop_tx_error: 2 });
  });
});

describe("Datapath: the loop", () => {
  it("marks itself ready and returns at once when the stop flag is already set", () => {
    const { dp, ctrl, libc, ports } = setup();
    ports(1);
    Atomics.store(ctrl, Ctrl.Stop, 1);
    dp.run();
    expect(Atomics.load(ctrl, Ctrl.Ready)).toBe(1);
    expect(libc.polls).toEqual([]);
  });

  it("runs round after round until the stop flag is set, then returns", () => {
    const { rounds, libc, ports } = setup();
    ports(1);
    rounds(5);
    expect(libc.polls.length).toBe(5);
  });

  it("given seconds, returns true once they have passed (the worker turns its event loop then), false once stopped", () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    try {
      const { dp, libc, ctrl, ports } = setup();
      ports(1);
      // A guard stops a loop that would not return by itself after 10 polls.
      libc.onPoll = () => { vi.advanceTimersByTime(40); if (libc.polls.length >= 10) Atomics.store(ctrl, Ctrl.Stop, 1); };
      // Polls at 0, 40 and 80 ms; the third round sees 120 ms, past the 100 ms given.
      expect(dp.run(0.1)).toBe(true);
      expect(libc.polls.length).toBe(3);
      expect(dp.run(0.1)).toBe(true);
      expect(libc.polls.length).toBe(6);
      libc.onPoll = () => Atomics.store(ctrl, Ctrl.Stop, 1);
      expect(dp.run(0.1)).toBe(false);
      expect(libc.polls.length).toBe(7);
    } finally {
      vi.useRealTimers();
    }
  });

  it("polls the control thread's wake-up eventfd with the ports, and a command's wake-up is read, not left to spin", () => {
    const { rounds, libc, ports, wakeFd, command, replies } = setup({ wake: true });
    ports(1);
    // The wake-ups of the port's add: read in the first round.
    rounds(3, [{ op: "flows", id: 7 }]);
    expect(libc.polls.map((p) => p.fds[0])).toEqual([wakeFd, wakeFd, wakeFd]);
    expect(libc.polls[0].fds).toEqual([wakeFd, FD[0]]);
    expect(libc.eventfds.get(wakeFd!)!.count).toBe(0);
    expect(replies()).toEqual([{ op: "flows", id: 7, flows: [] }]);
    command({ op: "flows", id: 8 });
    rounds(2);
    expect(libc.eventfds.get(wakeFd!)!.count).toBe(0);
    expect(replies()).toEqual([{ op: "flows", id: 8, flows: [] }]);
  });

  it("with no port, sleeps instead of polling until the stop flag is set", () => {
    const { dp, libc, ctrl } = setup();
    // Another thread raises the flag, as the control thread does.
    const stopper = new Worker("const { workerData } = require('node:worker_threads'); setTimeout(() => Atomics.store(new Int32Array(workerData), 0, 1), 50);", { eval: true, workerData: ctrl.buffer });
    dp.run();
    void stopper.terminate();
    expect(libc.polls).toEqual([]);
    expect(Atomics.load(ctrl, Ctrl.Stop)).toBe(1);
  });

  describe("FDB ageing", () => {
    beforeEach(() => { vi.useFakeTimers({ toFake: ["performance"] }); });

    it("sweeps the FDB every 10 s: entries not heard from for the ageing time are removed and counted as fdb_aged", () => {
      const { ports, rounds, tap, counters, command, replies } = setup({ ageingSeconds: 5 });
      ports(2);
      tap(0).reads.push(frame(BROADCAST, A));
      rounds(); // A learned at t = 0
      vi.advanceTimersByTime(9999);
      rounds();
      expect(counters.sw(SwitchCounter.FdbAged)).toBe(0);
      vi.advanceTimersByTime(1);
      tap(1).reads.push(frame(BROADCAST, B));
      rounds(); // t = 10: A swept out, then B learned
      expect(counters.sw(SwitchCounter.FdbAged)).toBe(1);
      vi.advanceTimersByTime(9999);
      rounds();
      expect(counters.sw(SwitchCounter.FdbAged)).toBe(1);
      command({ op: "fdb", id: 1 });
      rounds();
      expect(replies()).toEqual([{ op: "fdb", id: 1, entries: [] }]);
      vi.advanceTimersByTime(1);
      rounds(); // t = 20
      expect(counters.sw(SwitchCounter.FdbAged)).toBe(2);
    });

    it("sweeps also in rounds where nothing was ready", () => {
      const { ports, rounds, tap, counters } = setup({ ageingSeconds: 5 });
      ports(2);
      tap(0).reads.push(frame(BROADCAST, A));
      rounds();
      vi.advanceTimersByTime(10_000);
      rounds();
      expect(counters.sw(SwitchCounter.FdbAged)).toBe(1);
    });
  });
});

describe("Datapath: a pod port added with its identity (#13)", () => {
  const ID_B = { mac: POD_B.mac, ip: ip(POD_B.ip) };

  it("pins the pod's MAC (the fdb reply shows it, never aged) and drops what the port sends from another MAC", () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const { rounds, libc, command, replies, tap, drops } = setup({ ageingSeconds: 5 });
    libc.tap(FD[0]);
    libc.tap(FD[1]);
    command({ op: "add", port: 0, fd: FD[0], role: "pod" });
    command({ op: "add", port: 1, fd: FD[1], role: "pod", identity: ID_B });
    tap(1).reads.push(frame(BROADCAST, A, 1), frame(BROADCAST, POD_B.mac, 2));
    rounds();
    expect(drops(1)).toEqual({ drop_spoofed_source_mac: 1 });
    expect(tap(0).written).toEqual([frame(BROADCAST, POD_B.mac, 2)]);
    vi.advanceTimersByTime(60_000);
    command({ op: "fdb", id: 3 });
    rounds();
    expect(replies()).toEqual([{ op: "fdb", id: 3, entries: [{ mac: POD_B.mac, port: 1, age: 0, pinned: true }] }]);
    // Another port sending from B's MAC cannot take it.
    tap(0).reads.push(frame(BROADCAST, POD_B.mac, 3));
    rounds();
    expect(drops(0)).toEqual({ drop_spoofed_source_mac: 1 });
  });

  it("on a routing switch pins the address too, and tapnet0's MAC on the gateway port; remove takes the pins out", () => {
    const { rounds, libc, command, replies, tap, drops, udp } = setup({ router: config("udp"), noGro: true });
    libc.tap(FD[0]);
    libc.tap(FD[1]);
    libc.tap(FD[2]);
    command({ op: "add", port: 0, fd: FD[0], role: "gateway" });
    command({ op: "add", port: 1, fd: FD[1], role: "pod" });
    command({ op: "add", port: 2, fd: FD[2], role: "pod", identity: ID_B });
    // Port 1 claims B's address by a gratuitous ARP: refused by the pin, so node 2's packet for B reaches B at once.
    const garp = new Uint8Array(ETH_OFF + 42);
    garp.set(frame(BROADCAST, A).subarray(0, ETH_OFF + 12));
    garp.set([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, ...A.split(":").map((x) => parseInt(x, 16)), 10, 244, 1, 3, 0, 0, 0, 0, 0, 0, 10, 244, 1, 3], ETH_OFF + 12);
    tap(1).reads.push(garp);
    rounds();
    expect(tap(2).written).toEqual([garp]); // flooded, as ARP is: the pin is what keeps it from taking B's address
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds();
    expect(drops(TUNNEL_ROW)).toEqual({});
    expect(tap(2).written.slice(1)).toEqual([deliveredFrame("10.244.2.5", POD_B.ip, POD_B.mac)]);
    expect(tap(1).written).toEqual([]);
    command({ op: "fdb", id: 1 });
    rounds();
    expect(replies()).toEqual([{ op: "fdb", id: 1, entries: [
      { mac: GW_MAC, port: 0, age: 0, pinned: true }, { mac: A, port: 1, age: expect.any(Number) }, { mac: POD_B.mac, port: 2, age: 0, pinned: true },
    ] }]);
    command({ op: "remove", port: 2, id: 2 });
    udp.incoming.push({ bytes: udpDatagram("10.244.2.5", POD_B.ip), address: ip(ADDR[1]), port: TUNNEL_PORT });
    command({ op: "fdb", id: 3 });
    rounds();
    expect(replies()).toEqual([{ op: "removed", id: 2 }, { op: "fdb", id: 3, entries: [
      { mac: GW_MAC, port: 0, age: 0, pinned: true }, { mac: A, port: 1, age: expect.any(Number) },
    ] }]);
    expect(drops(TUNNEL_ROW)).toEqual({ drop_neigh_unresolved: 1 }); // B's address is no longer known
  });

  it("a port whose device goes away lets go of its identity: its MAC may be learned elsewhere", () => {
    const { rounds, libc, command, replies, tap } = setup();
    libc.tap(FD[0]);
    libc.tap(FD[1]);
    command({ op: "add", port: 0, fd: FD[0], role: "pod", identity: ID_B });
    command({ op: "add", port: 1, fd: FD[1], role: "pod" });
    tap(0).revents = POLLHUP;
    rounds();
    expect(replies()).toEqual([{ op: "down", port: 0, reason: "device gone" }]);
    tap(1).reads.push(frame(BROADCAST, POD_B.mac));
    rounds();
    command({ op: "fdb", id: 4 });
    rounds();
    expect(replies()).toEqual([{ op: "fdb", id: 4, entries: [{ mac: POD_B.mac, port: 1, age: expect.any(Number) }] }]);
  });

  it("an identity it cannot take (a group MAC) is counted as fdb_full and the port works without one", () => {
    const { rounds, libc, command, counters, tap } = setup();
    libc.tap(FD[0]);
    libc.tap(FD[1]);
    command({ op: "add", port: 0, fd: FD[0], role: "pod", identity: { mac: BROADCAST, ip: ip(POD_B.ip) } });
    command({ op: "add", port: 1, fd: FD[1], role: "pod" });
    tap(0).reads.push(frame(BROADCAST, A));
    rounds();
    expect(counters.sw(SwitchCounter.FdbFull)).toBe(1);
    expect(tap(1).written).toEqual([frame(BROADCAST, A)]);
  });
});

// What the router tests share: a three-node cluster config, in-memory ports and tunnel, and
// builders for the frames a TAP hands over and the datagrams the tunnel brings.
import { buildStages, type Stages } from "../../src/switch/datapath.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { FLOOD, Frames, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import type { Neighbors } from "../../src/switch/neighbors.ts";
import type { Stage } from "../../src/switch/pipeline.ts";
import type { PortWriter } from "../../src/switch/stages/port-out.ts";
import { PortIdentities } from "../../src/switch/stages/port-security.ts";
import { Cluster, SwitchState, type RouterConfig } from "../../src/switch/state.ts";
import type { GatherSink, TunnelBackend } from "../../src/tunnel/contract.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { emitEthernet, type EthernetRepr } from "../../src/wire/ethernet.ts";
import { emitIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { emitVirtioNetHdr, GSO_TCPV4, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { emitVxlan } from "../../src/wire/vxlan.ts";
import { put32 } from "../../src/wire/bytes.ts";
import { backend } from "../../src/tunnel/index.ts";
import type { ConntrackOptions } from "../../src/switch/conntrack/flow-table.ts";
import { Tracker } from "../../src/switch/conntrack/tracker.ts";
import { CollectingSink, frameBytes } from "../support/gather.ts";
import { SEQ_HEADER_LEN } from "../support/seq-backend.ts"; // registers the test-only backend

export const ip = (s: string) => parseIpv4Address(s)!;
export const GW = "10.244.1.1";
export const GW_MAC = "0a:58:0a:f4:01:01";
export const POD_A = { ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", port: 1 };
export const POD_B = { ip: "10.244.1.3", mac: "0a:58:0a:f4:01:03", port: 2 };
export const VTEP = ["0e:00:c0:a8:38:0b", "0e:00:c0:a8:38:0c", "0e:00:c0:a8:38:0d"];
export const ADDR = ["192.168.56.11", "192.168.56.12", "192.168.56.13"];
export const MTU = 1472;
export const GATEWAY_PORT = 0;

/** The backends that carry packets (the switch cuts super-frames for them): the router tests run over each. */
export const PACKET_BACKENDS = ["udp", "vxlan", "seq"] as const;
export type PacketBackend = (typeof PACKET_BACKENDS)[number];
/** Every backend, the test-only one included. */
export const ALL_BACKENDS = ["tapnet", ...PACKET_BACKENDS] as const;
export type AnyBackend = (typeof ALL_BACKENDS)[number];
/** Where the inner IPv4 packet starts in a datagram of each packet backend. */
export const INNER_IP: Record<PacketBackend, number> = { udp: 0, vxlan: 22, seq: SEQ_HEADER_LEN };

export function config(type: PacketBackend, mtu = MTU): RouterConfig {
  return {
    gatewayIp: ip(GW), gatewayMac: GW_MAC, clusterNetwork: ip("10.244.0.0"), clusterPrefix: 16, tunnelMtu: mtu, datagramSize: 1472, self: 0,
    nodes: [1, 2, 3].map((i) => ({ name: `node${i}`, address: ip(ADDR[i - 1]), network: ip(`10.244.${i}.0`), prefix: 24, vtepMac: VTEP[i - 1] })),
    backend: { type, vni: 1 },
  };
}

/**
 * Node `self` of the same cluster with backend `type`, its tunnel MTU what a 1500-byte underlay
 * leaves after the backend's overhead (the registry's), unless `mtu` says otherwise.
 */
export function nodeConfig(type: AnyBackend, self: number, mtu = 1500 - backend(type).overhead): RouterConfig {
  return { ...config("udp"), backend: { type, vni: 1 }, tunnelMtu: mtu, self, gatewayIp: ip(`10.244.${self + 1}.1`), gatewayMac: `0a:58:0a:f4:0${self + 1}:01` };
}

/** Node `self` of the same cluster with the tapnet backend (whole frames, a 1500-byte tunnel MTU). */
export function tapnetConfig(self: number): RouterConfig {
  return nodeConfig("tapnet", self, 1500);
}

/**
 * The test's ports and tunnel: what the switch wrote, as the old router's callbacks saw it. A
 * frame for one port is in `toPorts`, a flooded one in `toMacs` (with the port it spares), and
 * the datagrams the backend sent in `toPeers`.
 */
export class FakeIo implements PortWriter {
  toPorts: { port: number; bytes: Uint8Array }[] = [];
  toMacs: { except: number; bytes: Uint8Array }[] = [];
  gather = new CollectingSink();
  /** When set, writes to TAP ports fail (as a full queue would). */
  failPorts = false;
  get failPeers(): boolean {
    return this.gather.failing;
  }
  /** When set, sends to peers fail. */
  set failPeers(v: boolean) {
    this.gather.failing = v;
  }
  get toPeers(): { peer: number; bytes: Uint8Array }[] {
    return this.gather.datagrams.map(({ peer, bytes }) => ({ peer, bytes }));
  }
  write(): boolean {
    return !this.failPorts;
  }
}

/** Records where each frame goes, just before port out writes it. */
class Recorder implements Stage {
  readonly name = "recorder";
  constructor(private readonly io: FakeIo) {}
  run(f: Frames): void {
    for (let i = 0; i < f.count; i++) {
      const out = f.outs[i];
      if (out < 0 && out !== FLOOD) continue;
      const t = f.tails[i];
      const bytes = frameBytes(f.bufs[i].subarray(f.offs[i]), f.lens[i], t.count > 0 ? t : null);
      if (out === FLOOD) this.io.toMacs.push({ except: f.ports[i], bytes });
      else if (!this.io.failPorts) this.io.toPorts.push({ port: out, bytes });
    }
  }
}

/** Notes whether the frame was taken before the bridge (routed, answered, dropped) or left to it. */
class Probe implements Stage {
  readonly name = "probe";
  taken = false;
  run(f: Frames): void {
    this.taken = f.count > 0 && f.outs[0] !== PENDING;
  }
}

/**
 * The routing stages of one switch, in the datapath's order, over in-memory ports (0 to 7,
 * all live) and tunnel: a frame at a time, as the old Router was driven.
 */
export class TestRouter {
  readonly state: SwitchState;
  readonly stages: Stages;
  /** The ports' identities (none unless a test binds one: `identities.bind(port, mac, ip, state, now)`). */
  readonly identities = new PortIdentities(8);
  private readonly batch = new Frames(64);
  private readonly probe = new Probe();

  constructor(cfg: RouterConfig, io: FakeIo, opts: { segmenting?: boolean; merge?: boolean; conntrack?: ConntrackOptions } = {}) {
    this.state = SwitchState.make(8, FDB_DEFAULTS, cfg);
    if (opts.conntrack) this.state.tracker = new Tracker(this.state, opts.conntrack);
    for (let p = 0; p < 7; p++) this.state.ports.add(p);
    this.stages = buildStages(this.state, io, { out: io.gather, segmenting: opts.segmenting ?? false, merge: opts.merge ?? false }, this.identities);
    this.stages.ports.insertBefore("bridge", this.probe);
    this.stages.ports.insertBefore("port-out", new Recorder(io));
    this.stages.receive!.insertBefore("port-out", new Recorder(io));
  }

  get neighbors(): Neighbors {
    return this.state.cluster!.neighbors;
  }
  get tunnelPort(): number {
    return this.state.tunnelRow;
  }
  get recvOff(): number {
    return this.stages.backend!.recvOff;
  }
  get gatewayPort(): number {
    return this.state.cluster!.gatewayPort;
  }
  set gatewayPort(p: number) {
    this.state.cluster!.gatewayPort = p;
  }

  /** A frame from a TAP port: true if a stage before the bridge took it. */
  fromPort(inPort: number, buf: Uint8Array, len: number, now = 0): boolean {
    this.batch.push(buf, 0, len, inPort);
    this.stages.ports.run(this.batch, now);
    this.batch.clear();
    return this.probe.taken;
  }

  /** Frames from TAP ports, all in one batch (a backend may gather them into one send). */
  fromPorts(frames: { port: number; buf: Uint8Array; len?: number }[], now = 0): void {
    for (const { port, buf, len } of frames) this.batch.push(buf, 0, len ?? buf.length, port);
    this.stages.ports.run(this.batch, now);
    this.batch.clear();
  }

  /** A read from the tunnel: `len` bytes at buf[recvOff..] from underlay address `from`. */
  fromTunnel(buf: Uint8Array, len: number, from: number, now: number, stride = 0): void {
    const i = this.batch.push(buf, this.recvOff, len, TUNNEL);
    this.batch.aux[i] = from;
    this.batch.strides[i] = stride;
    this.stages.ports.run(this.batch, now);
    this.batch.clear();
  }
}

export function setup(type: PacketBackend = "udp", mtu = MTU, opts: { segmenting?: boolean; merge?: boolean; conntrack?: ConntrackOptions } = {}) {
  return setupWith(config(type, mtu), opts);
}

/** A TestRouter for `cfg` (any backend), its gateway port set, with its counters at hand. */
export function setupWith(cfg: RouterConfig, opts: { segmenting?: boolean; merge?: boolean; conntrack?: ConntrackOptions } = {}) {
  const io = new FakeIo();
  const router = new TestRouter(cfg, io, opts);
  const counters = router.state.counters;
  router.gatewayPort = GATEWAY_PORT;
  const drops = (port: number) => Object.fromEntries(Object.entries(counters.portSnapshot(port)).filter(([k]) => k.startsWith("drop_")));
  return { router, io, counters, drops, tunnel: router.tunnelPort };
}

export interface Packet {
  eth?: Partial<EthernetRepr>;
  src: string;
  dst: string;
  ttl?: number;
  df?: boolean;
  /** More fragments, and the fragment offset in bytes (a multiple of 8). */
  mf?: boolean;
  fragOffset?: number;
  payloadLen?: number;
  protocol?: number;
}

/** A frame as a TAP hands it over: virtio_net_hdr (zeros unless `vnet`), Ethernet, IPv4, UDP. */
export function ipFrame(p: Packet): Uint8Array {
  const payloadLen = p.payloadLen ?? 32;
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 8 + payloadLen);
  emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800, ...p.eth }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 7, dontFragment: p.df ?? false, moreFragments: p.mf ?? false, fragmentOffset: p.fragOffset ?? 0, ttl: p.ttl ?? 64,
    protocol: p.protocol ?? 17, src: p.src, dst: p.dst, payloadLen: 8 + payloadLen }, b, ETH_OFF + 14);
  const data = Uint8Array.from({ length: payloadLen }, (_, i) => i & 0xff);
  emitUdp({ srcPort: 1234, dstPort: 5678, payload: data }, b, ETH_OFF + 34, { src: ip(p.src), dst: ip(p.dst) });
  return b;
}

export function ipHeaderValid(b: Uint8Array, off: number): boolean {
  return internetChecksum(b, off, (b[off] & 0x0f) * 4) === 0;
}

/**
 * A TCP super-frame from pod A (unless `ends` says who) as its TAP gives it (TSO, partial
 * checksum), `payload` bytes of a pattern.
 */
export function tsoFrame(payload: number, mss: number, seed = 7, ends: { src?: string; dst?: string; srcMac?: string; dstMac?: string } = {}): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20 + payload);
  emitEthernet({ dst: ends.dstMac ?? GW_MAC, src: ends.srcMac ?? POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 100, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: ends.src ?? POD_A.ip, dst: ends.dst ?? "10.244.2.5", payloadLen: 20 + payload }, b, ETH_OFF + 14);
  emitTcp({ srcPort: 40000, dstPort: 5201, seq: 1000, ack: 1, flags: 0x18, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  for (let i = 0; i < payload; i++) b[ETH_OFF + 54 + i] = (i * seed) & 0xff;
  emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: mss, csumStart: 34, csumOffset: 16 }, b, 0);
  return b;
}

/**
 * The backend of the node `cfg` describes, made from the registry as the datapath makes it,
 * sending into `out`; what it reports of its sends goes nowhere.
 */
export function makeBackend(cfg: RouterConfig, out: GatherSink, segmenting = false): TunnelBackend {
  const cl = new Cluster(cfg);
  return backend(cfg.backend.type).create({
    datagramSize: cfg.datagramSize, self: cfg.self, nodes: cfg.nodes.length, vtepHi: cl.vtepHi, vtepLo: cl.vtepLo,
    vni: cfg.backend.vni, out, segmenting, events: { sent: () => {}, failed: () => {} },
  });
}

/**
 * The datagram backend `type` of node 2 (VTEP[1]) sends with the IPv4 packet `ipPkt` in it:
 * udp, the packet; vxlan, a VXLAN header and an inner Ethernet header to `innerDstMac` first;
 * seq, a sequence number (`seq`) first.
 */
export function encap(type: PacketBackend, ipPkt: Uint8Array, innerDstMac = VTEP[0], vni = 1, seq = 0): Uint8Array {
  const inner = INNER_IP[type];
  const d = new Uint8Array(inner + ipPkt.length);
  if (type === "vxlan") {
    emitVxlan({ vni }, d, 0);
    emitEthernet({ dst: innerDstMac, src: VTEP[1], vlans: [], etherType: 0x0800 }, d, 8);
  } else if (type === "seq") {
    put32(d, 0, seq);
  }
  d.set(ipPkt, inner);
  return d;
}

/** A slot holding a datagram from the tunnel, at the backend's receive offset. */
export function datagram(router: TestRouter, type: PacketBackend, p: Packet, innerDstMac = VTEP[0], vni = 1): { slot: Uint8Array; len: number } {
  const d = encap(type, ipFrame(p).subarray(ETH_OFF + 14), innerDstMac, vni);
  const slot = new Uint8Array(2048);
  slot.set(d, router.recvOff);
  return { slot, len: d.length };
}

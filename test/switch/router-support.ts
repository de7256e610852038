// What the router tests share: a three-node cluster config, in-memory ports and tunnel, and
// builders for the frames a TAP hands over and the datagrams the tunnel brings.
import { buildStages, type Stages } from "../../src/switch/datapath.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { FLOOD, Frames, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import type { Neighbors } from "../../src/switch/neighbors.ts";
import type { Stage } from "../../src/switch/pipeline.ts";
import type { PortWriter } from "../../src/switch/stages/port-out.ts";
import { SwitchState, type RouterConfig } from "../../src/switch/state.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { emitEthernet, type EthernetRepr } from "../../src/wire/ethernet.ts";
import { emitIpv4, parseIpv4Address } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { emitVirtioNetHdr, GSO_TCPV4, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { emitVxlan } from "../../src/wire/vxlan.ts";
import { CollectingSink, frameBytes } from "../support/gather.ts";

export const ip = (s: string) => parseIpv4Address(s)!;
export const GW = "10.244.1.1";
export const GW_MAC = "0a:58:0a:f4:01:01";
export const POD_A = { ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", port: 1 };
export const POD_B = { ip: "10.244.1.3", mac: "0a:58:0a:f4:01:03", port: 2 };
export const VTEP = ["0e:00:c0:a8:38:0b", "0e:00:c0:a8:38:0c", "0e:00:c0:a8:38:0d"];
export const ADDR = ["192.168.56.11", "192.168.56.12", "192.168.56.13"];
export const MTU = 1472;
export const GATEWAY_PORT = 0;

export function config(type: "udp" | "vxlan", mtu = MTU): RouterConfig {
  return {
    gatewayIp: ip(GW), gatewayMac: GW_MAC, clusterNetwork: ip("10.244.0.0"), clusterPrefix: 16, tunnelMtu: mtu, datagramSize: 1472, self: 0,
    nodes: [1, 2, 3].map((i) => ({ name: `node${i}`, address: ip(ADDR[i - 1]), network: ip(`10.244.${i}.0`), prefix: 24, vtepMac: VTEP[i - 1] })),
    backend: { type, vni: 1 },
  };
}

/** Node `self` of the same cluster with the tapnet backend (whole frames, a 1500-byte tunnel MTU). */
export function tapnetConfig(self: number): RouterConfig {
  return { ...config("udp"), backend: { type: "tapnet", vni: 1 }, tunnelMtu: 1500, self, gatewayIp: ip(`10.244.${self + 1}.1`), gatewayMac: `0a:58:0a:f4:0${self + 1}:01` };
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
  private readonly batch = new Frames(4);
  private readonly probe = new Probe();

  constructor(cfg: RouterConfig, io: FakeIo, opts: { segmenting?: boolean; merge?: boolean } = {}) {
    this.state = SwitchState.make(8, FDB_DEFAULTS, cfg);
    for (let p = 0; p < 7; p++) this.state.ports.add(p);
    this.stages = buildStages(this.state, io, { out: io.gather, segmenting: opts.segmenting ?? false, merge: opts.merge ?? false });
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

  /** A read from the tunnel: `len` bytes at buf[recvOff..] from underlay address `from`. */
  fromTunnel(buf: Uint8Array, len: number, from: number, now: number, stride = 0): void {
    const i = this.batch.push(buf, this.recvOff, len, TUNNEL);
    this.batch.aux[i] = from;
    this.batch.strides[i] = stride;
    this.stages.ports.run(this.batch, now);
    this.batch.clear();
  }
}

export function setup(type: "udp" | "vxlan" = "udp", mtu = MTU, opts: { segmenting?: boolean; merge?: boolean } = {}) {
  const io = new FakeIo();
  const router = new TestRouter(config(type, mtu), io, opts);
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

/** A TCP super-frame from pod A as its TAP gives it (TSO, partial checksum), `payload` bytes of a pattern. */
export function tsoFrame(payload: number, mss: number, seed = 7): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20 + payload);
  emitEthernet({ dst: GW_MAC, src: POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 100, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: POD_A.ip, dst: "10.244.2.5", payloadLen: 20 + payload }, b, ETH_OFF + 14);
  emitTcp({ srcPort: 40000, dstPort: 5201, seq: 1000, ack: 1, flags: 0x18, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  for (let i = 0; i < payload; i++) b[ETH_OFF + 54 + i] = (i * seed) & 0xff;
  emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: mss, csumStart: 34, csumOffset: 16 }, b, 0);
  return b;
}

/** A slot holding a datagram from the tunnel, at the backend's receive offset. */
export function datagram(router: TestRouter, type: "udp" | "vxlan", p: Packet, innerDstMac = VTEP[0], vni = 1): { slot: Uint8Array; len: number } {
  const f = ipFrame(p);
  const ipPkt = f.subarray(ETH_OFF + 14);
  const slot = new Uint8Array(2048);
  const off = router.recvOff;
  if (type === "udp") {
    slot.set(ipPkt, off);
    return { slot, len: ipPkt.length };
  }
  emitVxlan({ vni }, slot, off);
  emitEthernet({ dst: innerDstMac, src: VTEP[1], vlans: [], etherType: 0x0800 }, slot, off + 8);
  slot.set(ipPkt, off + 22);
  return { slot, len: 22 + ipPkt.length };
}

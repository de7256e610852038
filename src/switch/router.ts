/**
 * The router in the switch: what happens to a pod's packet that leaves the node, and to a
 * packet that arrives from another node. Bridging within the node is the bridge's (bridge.ts);
 * the router sees only what it must:
 *
 *   - ARP asking for the gateway address: answered with the gateway MAC (tapnet0's) by the
 *     switch itself; every ARP from a pod also teaches the neighbour table its MAC.
 *   - An IPv4 frame sent to the gateway MAC (from a pod), or to a remote node's VTEP MAC (from
 *     the node's kernel, through tapnet0, along the routes the agent installs), whose
 *     destination is in another node's pod CIDR: routed. The TTL is decremented (checksum
 *     updated incrementally), a TCP super-frame is cut into segments that fit the tunnel, a
 *     partial checksum is completed, and the packet is encapsulated by the backend and sent to
 *     the owning node's address.
 *   - A destination inside the cluster CIDR that no node owns: ICMP destination unreachable
 *     back to the sender. A packet with DF set larger than the tunnel MTU: ICMP fragmentation
 *     needed, with the tunnel MTU as next-hop MTU. TTL running out: ICMP time exceeded.
 *   - Anything else sent to the gateway MAC (the node itself, the world beyond it) is bridged
 *     to tapnet0, and the node's kernel takes it from there (masquerading what leaves).
 *   - A datagram from the tunnel: accepted only from a node in the subnet map, and never with
 *     an inner source among another node's pods; its packet goes to the pod that owns the
 *     destination (MAC from the neighbour table, port from the FDB), or to tapnet0 when it is
 *     for the gateway address. Everything else is a counted drop.
 *   - The inner TCP/UDP checksum of a delivered packet is verified, and the frame marked
 *     DATA_VALID so the pod's kernel need not. A sender whose packets crossed a veth or a
 *     virtio NIC may have left it partial (the pseudo-header sum, for a NIC to finish): such a
 *     checksum is completed and counted (inner_csum_completed). Any other mismatch is a drop.
 */
import type { BackendType } from "../control/config.ts";
import { ETH_OFF, type PeerMacs, type TunnelBackend } from "../tunnel/backend.ts";
import { MAX_UDP_PAYLOAD, TAPNET_MAX_SEGMENTS, TapnetBackend, type FrameTail, type GatherSink } from "../tunnel/tapnet.ts";
import { UdpBackend } from "../tunnel/udp.ts";
import { putMac, VxlanBackend } from "../tunnel/vxlan.ts";
import { checkVxlanHeader, VXLAN_HEADER_LEN } from "../wire/vxlan.ts";
import { ARP_LEN, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ArpView } from "../wire/arp.ts";
import { get16, get32, put16, put32 } from "../wire/bytes.ts";
import { fold, internetChecksum, pseudoHeaderSum, sumWords } from "../wire/checksum.ts";
import { Drop, type DropReason } from "../wire/drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { completeChecksum, GsoSegmenter, type SegmentPiecesSink } from "../wire/gso.ts";
import {
  ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, ICMP_TIME_EXCEEDED,
  UNREACH_FRAG_NEEDED, UNREACH_NET,
} from "../wire/icmp.ts";
import { IPV4_MIN_HEADER_LEN, Ipv4View, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../wire/ipv4.ts";
import { macHi, macLo, parseMac } from "../wire/mac.ts";
import { GSO_NONE, GSO_TCPV4, GSO_UDP_L4, VNET_F_DATA_VALID, VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_SIZE, vnetGsoType } from "../wire/virtio.ts";
import { Counters, DROP_BASE, PORT_COUNTERS, PortCounter, SwitchCounter } from "./counters.ts";
import { Neighbors } from "./neighbors.ts";
import { SubnetMap } from "./routes.ts";
import { TcpCoalescer } from "./coalesce.ts";

/** The router's view of the cluster: plain data, passed to the datapath worker as it is. */
export interface RouterConfig {
  gatewayIp: number;
  gatewayMac: string;
  clusterNetwork: number;
  clusterPrefix: number;
  /** Largest IPv4 packet the tunnel carries: the pods' MTU. */
  tunnelMtu: number;
  /** Largest UDP payload on the underlay (its MTU - 28): the tapnet backend's datagram size. */
  datagramSize: number;
  /** This node's index in `nodes`. */
  self: number;
  nodes: { name: string; address: number; network: number; prefix: number; vtepMac: string }[];
  backend: { type: BackendType; vni: number };
}

/** What the router needs from the rest of the datapath to send frames. */
export interface RouterIo {
  /**
   * Writes a frame (with its virtio_net_hdr) to a TAP port; false if it could not. With a
   * `tail`, buf holds only the frame's first tail.headLen bytes and the tail the rest.
   */
  toPort(port: number, buf: Uint8Array, len: number, tail?: FrameTail | null): boolean;
  /** Writes a frame to the port where the FDB has `hi:lo`, or floods it to every port but `except`. */
  toMac(buf: Uint8Array, len: number, hi: number, lo: number, except: number, tail?: FrameTail | null): void;
  /** Sends a datagram of `len` bytes at buf[off..] to node `peer`; false if it could not. */
  toPeer(buf: Uint8Array, off: number, len: number, peer: number): boolean;
  /**
   * Pieces gathered, then sent in one go, cut into datagrams by the kernel (UDP_SEGMENT): the
   * tapnet backend's way to the peers, and the udp and vxlan backends' for super-frames.
   */
  gather?: GatherSink;
}

/** Room left before a segment's Ethernet header for the backend's headers. */
const SEGMENT_HEADROOM = 16;
/**
 * Gathered segments (udp, vxlan): each segment's headers at this stride in `segHeaders`: the
 * headroom and Ethernet (+2 tags), IPv4 and TCP headers at their longest, rounded up.
 */
const SEGMENT_STRIDE = 176;
/** A super-frame of more segments than this (a tiny gso_size) is segmented one send per segment. */
const MAX_GATHERED_SEGMENTS = 128;
const ARP_FRAME_LEN = ETH_OFF + ETH_HEADER_LEN + ARP_LEN;
/** RFC 792: an ICMP error quotes the IP header and the first 8 bytes of the datagram. */
const ICMP_QUOTE_DATA = 8;

export function makeBackend(type: "udp" | "vxlan", vni: number, macs: PeerMacs): TunnelBackend {
  return type === "vxlan" ? new VxlanBackend(vni, macs) : new UdpBackend();
}

export class Router {
  readonly map: SubnetMap;
  readonly neighbors: Neighbors;
  /** The backend that wraps single packets (udp, vxlan)... */
  readonly backend?: TunnelBackend;
  /** ...or the one that carries whole frames between tapnet nodes. */
  readonly tapnet?: TapnetBackend;
  /** Where in a slot the datapath reads a datagram. */
  readonly recvOff: number;
  /** The tunnel's row in the counters: after the last TAP port. */
  readonly tunnelPort: number;
  gatewayPort = -1;
  private readonly gwHi: number;
  private readonly gwLo: number;
  private readonly macs: PeerMacs;
  private readonly clusterLast: number;
  private readonly ip = new Ipv4View();
  private readonly arp = new ArpView();
  private readonly scratch = new Uint8Array(ETH_OFF + ETH_HEADER_LEN + 576);
  private readonly segmentOut: Uint8Array;
  private readonly segmenter: GsoSegmenter;
  private segmentPeer = 0;
  private segmentInPort = 0;
  private readonly emitSegment: (out: Uint8Array, off: number, len: number) => void;
  /**
   * Set by the datapath when the tunnel socket segments (UDP_SEGMENT) and `io.gather` is there:
   * the udp and vxlan backends then send a super-frame's segments in one sendmsg per 64 of
   * them (TAPNET_MAX_SEGMENTS, the most one UDP_SEGMENT send makes), each segment's headers
   * from `segHeaders` and its payload where it lies in the slot.
   */
  gatherSegments = false;
  /**
   * Set (`coalesceReceived`) by the datapath when it reads runs of datagrams (UDP_GRO) and the
   * pods' TAPs take super-frames: the udp and vxlan backends then write consecutive TCP
   * segments of a flow to the pod as one super-frame (coalesce.ts).
   */
  private coalescer?: TcpCoalescer;
  private readonly coalescedMacs = new Uint8Array(12);
  private readonly segHeaders = new Uint8Array(MAX_GATHERED_SEGMENTS * SEGMENT_STRIDE);
  private readonly emitPieces: SegmentPiecesSink;
  // The send being gathered: datagrams, bytes, the size of its first datagram (UDP_SEGMENT's).
  private sendCount = 0;
  private sendBytes = 0;
  private sendSize = 0;
  private readonly lastAsked: Float64Array;
  private icmpId = 0;
  // The peer and clock of the tapnet send or receive in progress, for the callbacks below,
  // which are made once so that no closure is made per frame.
  private tapnetPeer = 0;
  private tapnetNow = 0;
  private readonly tapnetFrame: (b: Uint8Array, len: number) => void;
  private readonly tapnetDrop: (r: number) => void;

  constructor(readonly cfg: RouterConfig, readonly counters: Counters, readonly io: RouterIo) {
    this.map = new SubnetMap(cfg.nodes);
    const self = cfg.nodes[cfg.self];
    this.neighbors = new Neighbors(self.network, self.prefix);
    this.lastAsked = new Float64Array(2 ** (32 - self.prefix)).fill(-Infinity);
    const gw = parseMac(cfg.gatewayMac)!;
    this.gwHi = macHi(gw, 0);
    this.gwLo = macLo(gw, 0);
    const vteps = cfg.nodes.map((n) => parseMac(n.vtepMac)!);
    this.macs = {
      vtepHi: Uint16Array.from(vteps, (m) => macHi(m, 0)),
      vtepLo: Uint32Array.from(vteps, (m) => macLo(m, 0)),
      self: cfg.self,
    };
    this.tunnelPort = counters.maxPorts - 1;
    if (cfg.backend.type === "tapnet") {
      if (!io.gather) throw new Error("the tapnet backend needs a gather sink");
      const v = counters.v;
      const t = this.tunnelPort * PORT_COUNTERS;
      this.tapnet = new TapnetBackend(cfg.datagramSize, cfg.nodes.length, io.gather, {
        sent: (datagrams, bytes) => { v[t + PortCounter.TxFrames] += datagrams; v[t + PortCounter.TxBytes] += bytes; },
        failed: (frames) => { v[t + DROP_BASE + Drop.TxError] += frames; },
      });
    } else this.backend = makeBackend(cfg.backend.type, cfg.backend.vni, this.macs);
    this.recvOff = this.backend?.recvOff ?? 0;
    this.tapnetFrame = (b, len) => this.fromTapnetFrame(b, len);
    this.tapnetDrop = (r) => this.counters.drop(this.tunnelPort, r);
    this.clusterLast = cfg.clusterNetwork + 2 ** (32 - cfg.clusterPrefix) - 1;
    // A segment: the headroom, an Ethernet header, and at most one tunnel MTU of IPv4.
    this.segmentOut = new Uint8Array(SEGMENT_HEADROOM + ETH_HEADER_LEN + cfg.tunnelMtu);
    this.segmenter = new GsoSegmenter(ETH_HEADER_LEN + cfg.tunnelMtu);
    this.emitSegment = (out, off, len) => this.sendFrame(out, off, len - ETH_HEADER_LEN, this.segmentPeer, this.segmentInPort);
    this.emitPieces = (out, hdrOff, hdrLen, frame, payOff, payLen) => this.gatherSegment(out, hdrOff, hdrLen, frame, payOff, payLen);
  }

  private isVtepMac(hi: number, lo: number): boolean {
    const { vtepHi, vtepLo } = this.macs;
    for (let i = 0; i < vtepHi.length; i++) if (vtepLo[i] === lo && vtepHi[i] === hi && i !== this.cfg.self) return true;
    return false;
  }

  /**
   * A frame (virtio_net_hdr, then Ethernet at ETH_OFF) that came in on a TAP port. Returns
   * true if the router took it (routed, answered or dropped), false to let the bridge have it.
   */
  fromPort(inPort: number, buf: Uint8Array, len: number): boolean {
    const ethLen = len - ETH_OFF;
    if (ethLen < ETH_HEADER_LEN) return false;
    const type = get16(buf, ETH_OFF + ETH_TYPE);
    if (type === ETHERTYPE_ARP) return this.fromPortArp(inPort, buf, ethLen);
    if (type !== ETHERTYPE_IPV4) return false;
    const dHi = macHi(buf, ETH_OFF + ETH_DST);
    const dLo = macLo(buf, ETH_OFF + ETH_DST);
    const toGateway = dHi === this.gwHi && dLo === this.gwLo;
    const toVtep = !toGateway && inPort === this.gatewayPort && this.isVtepMac(dHi, dLo);
    if (!toGateway && !toVtep) return false;
    const ip = this.ip;
    const r = ip.wrap(buf, ETH_OFF + ETH_HEADER_LEN, ethLen - ETH_HEADER_LEN);
    if (r !== Drop.None) {
      this.counters.drop(inPort, r);
      return true;
    }
    const src = ip.src;
    if (inPort !== this.gatewayPort && src !== this.cfg.gatewayIp) {
      this.neighbors.learn(src, macHi(buf, ETH_OFF + ETH_SRC), macLo(buf, ETH_OFF + ETH_SRC));
    }
    const dst = ip.dst;
    const node = this.map.nodeForIp(dst);
    if (node >= 0 && node !== this.cfg.self) {
      this.route(inPort, buf, len, node);
      return true;
    }
    if (node < 0 && dst >= this.cfg.clusterNetwork && dst <= this.clusterLast) {
      this.icmpError(inPort, buf, ICMP_DEST_UNREACHABLE, UNREACH_NET, 0);
      this.counters.drop(inPort, Drop.ClusterUnreachable);
      return true;
    }
    if (toVtep) {
      this.counters.drop(inPort, Drop.NoRoute);
      return true;
    }
    return false; // for the node or beyond it: bridged to tapnet0
  }

  private fromPortArp(inPort: number, buf: Uint8Array, ethLen: number): boolean {
    const arp = this.arp;
    if (arp.wrap(buf, ETH_OFF + ETH_HEADER_LEN, ethLen - ETH_HEADER_LEN) !== Drop.None) return false;
    const spa = arp.senderIp;
    const shaOff = ETH_OFF + ETH_HEADER_LEN + ARP_SHA;
    if (inPort !== this.gatewayPort && spa !== this.cfg.gatewayIp && spa !== 0) {
      this.neighbors.learn(spa, macHi(buf, shaOff), macLo(buf, shaOff));
    }
    if (arp.operation !== ARP_REQUEST || arp.targetIp !== this.cfg.gatewayIp || inPort === this.gatewayPort) return false;
    // Answer for the gateway: to the asker, from the gateway MAC.
    const s = this.scratch;
    s.fill(0, 0, ETH_OFF);
    for (let i = 0; i < 6; i++) s[ETH_OFF + ETH_DST + i] = buf[shaOff + i];
    putMac(s, ETH_OFF + ETH_SRC, this.gwHi, this.gwLo);
    put16(s, ETH_OFF + ETH_TYPE, ETHERTYPE_ARP);
    const a = ETH_OFF + ETH_HEADER_LEN;
    for (let i = 0; i < 6; i++) s[a + i] = buf[a + i]; // htype, ptype, hlen, plen
    put16(s, a + 6, ARP_REPLY);
    putMac(s, a + ARP_SHA, this.gwHi, this.gwLo);
    put32(s, a + ARP_SPA, this.cfg.gatewayIp);
    for (let i = 0; i < 10; i++) s[a + 18 + i] = buf[shaOff + i]; // target: the asker's MAC and IP
    if (this.io.toPort(inPort, s, ARP_FRAME_LEN)) this.counters.v[this.counters.switchBase + SwitchCounter.ArpReplies]++;
    return true;
  }

  /** Routes the IPv4 frame in `buf` (already checked by `this.ip`) to node `peer`. */
  private route(inPort: number, buf: Uint8Array, len: number, peer: number): void {
    const ip = this.ip;
    if (ip.ttl <= 1) {
      this.icmpError(inPort, buf, ICMP_TIME_EXCEEDED, 0, 0);
      this.counters.drop(inPort, Drop.TtlExpired);
      return;
    }
    const gso = vnetGsoType(buf, 0);
    if (this.tapnet) {
      // The whole frame goes, as the TAP gave it: the far switch's TAP takes it the same way.
      if (gso === GSO_NONE && ip.totalLen > this.cfg.tunnelMtu && ip.dontFragment) {
        this.icmpError(inPort, buf, ICMP_DEST_UNREACHABLE, UNREACH_FRAG_NEEDED, this.cfg.tunnelMtu);
        this.counters.drop(inPort, Drop.FragNeeded);
        return;
      }
      ip.decrementTtl();
      // Sent now, or gathered with the frames after it until flush(): the tunnel's counters
      // move when the datagrams leave; a failed send is a tx_error on the tunnel.
      if (this.tapnet.send(buf, ETH_OFF + ETH_HEADER_LEN + ip.totalLen, peer) < 0) {
        this.counters.drop(inPort, Drop.TxError);
        return;
      }
      this.counters.v[this.counters.switchBase + SwitchCounter.Routed]++;
      return;
    }
    if (gso === GSO_NONE) {
      if (ip.totalLen > this.cfg.tunnelMtu) {
        if (ip.dontFragment) {
          this.icmpError(inPort, buf, ICMP_DEST_UNREACHABLE, UNREACH_FRAG_NEEDED, this.cfg.tunnelMtu);
          this.counters.drop(inPort, Drop.FragNeeded);
        } else {
          this.counters.drop(inPort, Drop.TooBig);
        }
        return;
      }
      ip.decrementTtl();
      if (buf[0] & VNET_F_NEEDS_CSUM) {
        const r = completeChecksum(buf, ETH_OFF, len - ETH_OFF, { csumStart: le16(buf, VNET_CSUM_START), csumOffset: le16(buf, VNET_CSUM_OFFSET) });
        if (r !== Drop.None) {
          this.counters.drop(inPort, r);
          return;
        }
      }
      this.sendFrame(buf, ETH_OFF, ip.totalLen, peer, inPort);
    } else if (gso === GSO_TCPV4 || gso === GSO_UDP_L4) {
      ip.decrementTtl();
      this.segmentPeer = peer;
      this.segmentInPort = inPort;
      const gsoSize = le16(buf, VNET_GSO_SIZE);
      let r: DropReason;
      if (this.gatherSegments && gsoSize > 0 && ip.totalLen <= MAX_GATHERED_SEGMENTS * gsoSize) {
        r = this.segmenter.segmentPieces(buf, ETH_OFF, len - ETH_OFF, gso, gsoSize, this.segHeaders, SEGMENT_HEADROOM, SEGMENT_STRIDE, this.emitPieces);
        this.sendGathered();
      } else {
        r = this.segmenter.segment(buf, ETH_OFF, len - ETH_OFF, gso, gsoSize, this.segmentOut, SEGMENT_HEADROOM, this.emitSegment);
      }
      if (r !== Drop.None) this.counters.drop(inPort, r);
    } else {
      this.counters.drop(inPort, Drop.GsoUnsupported);
    }
  }

  /** Sends what the tapnet backend gathered: the end of a batch, before its slots are reused. */
  flush(): void {
    this.tapnet?.flush();
  }

  /**
   * Adds one segment to the send being gathered (its headers at out[hdrOff..], Ethernet first,
   * its payload at frame[payOff..]): the backend's headers go in front, in the headroom. Sends
   * what was gathered first when this segment would not fit the same send.
   */
  private gatherSegment(out: Uint8Array, hdrOff: number, hdrLen: number, frame: Uint8Array, payOff: number, payLen: number): void {
    const ipLen = hdrLen - ETH_HEADER_LEN + payLen;
    const d = this.backend!.encapsulate(out, hdrOff, ipLen, this.segmentPeer);
    const dlen = hdrOff + hdrLen - d + payLen;
    if (this.sendCount === TAPNET_MAX_SEGMENTS || this.sendBytes + dlen > MAX_UDP_PAYLOAD) this.sendGathered();
    const gather = this.io.gather!;
    gather.add(out, d, hdrOff + hdrLen - d);
    if (payLen > 0) gather.add(frame, payOff, payLen);
    if (this.sendCount === 0) this.sendSize = dlen;
    this.sendCount++;
    this.sendBytes += dlen;
  }

  /** Sends the gathered segments, cut at the first one's size; counts them as `sendFrame` would. */
  private sendGathered(): void {
    const n = this.sendCount;
    if (n === 0) return;
    const ok = this.io.gather!.send(this.segmentPeer, this.sendSize);
    const v = this.counters.v;
    if (ok) {
      const t = this.tunnelPort * PORT_COUNTERS;
      v[t + PortCounter.TxFrames] += n;
      v[t + PortCounter.TxBytes] += this.sendBytes;
      v[this.counters.switchBase + SwitchCounter.Routed] += n;
    } else {
      v[this.segmentInPort * PORT_COUNTERS + DROP_BASE + Drop.TxError] += n;
    }
    this.sendCount = 0;
    this.sendBytes = 0;
  }

  /** Encapsulates the frame at buf[ethOff..] (IPv4 of `ipLen` bytes) and sends it to `peer`. */
  private sendFrame(buf: Uint8Array, ethOff: number, ipLen: number, peer: number, inPort: number): void {
    const off = this.backend!.encapsulate(buf, ethOff, ipLen, peer);
    const dlen = ethOff + ETH_HEADER_LEN + ipLen - off;
    const v = this.counters.v;
    if (this.io.toPeer(buf, off, dlen, peer)) {
      const t = this.tunnelPort * PORT_COUNTERS;
      v[t + PortCounter.TxFrames]++;
      v[t + PortCounter.TxBytes] += dlen;
      v[this.counters.switchBase + SwitchCounter.Routed]++;
    } else {
      this.counters.drop(inPort, Drop.TxError);
    }
  }

  /**
   * A datagram of `len` bytes received at buf[backend.recvOff..] from underlay address `from`.
   * On delivery, the frame written to a TAP starts at buf[0] with a zeroed virtio_net_hdr.
   */
  fromTunnel(buf: Uint8Array, len: number, from: number, now: number, segmentSize = 0): void {
    const t = this.tunnelPort;
    const v = this.counters.v;
    const peer = this.map.nodeForAddress(from);
    if (this.tapnet) {
      this.tapnetPeer = peer;
      this.tapnetNow = now;
      const stride = segmentSize > 0 ? segmentSize : Math.max(len, 1);
      if (peer < 0 || peer === this.cfg.self) {
        const n = Math.max(1, Math.ceil(len / stride)); // every datagram of a GRO run counts
        v[t * PORT_COUNTERS + PortCounter.RxFrames] += n;
        v[t * PORT_COUNTERS + PortCounter.RxBytes] += len;
        v[t * PORT_COUNTERS + DROP_BASE + Drop.TunnelUnknownPeer] += n;
        return;
      }
      v[t * PORT_COUNTERS + PortCounter.RxFrames] += this.tapnet.receive(buf, this.recvOff, len, stride, peer, this.tapnetFrame, this.tapnetDrop);
      v[t * PORT_COUNTERS + PortCounter.RxBytes] += len;
      return;
    }
    if (segmentSize > 0 && len > segmentSize) {
      // A GRO run of datagrams from one sender, each segmentSize long (the last maybe shorter).
      // TCP segments that continue a flow are gathered in place into one super-frame; any
      // other datagram is moved in turn to where a datagram is read (recvOff), over the ones
      // before it, which have been delivered by then (delivery writes to a TAP before it
      // returns; a gathered run is written out first).
      const at = this.recvOff;
      const co = this.coalescer;
      for (let p = 0; p < len; p += segmentSize) {
        const dlen = Math.min(segmentSize, len - p);
        if (co) {
          const ipOff = this.coalescable(buf, at + p, dlen, peer);
          if (ipOff >= 0) {
            if (co.count > 0 && !co.fits(buf, ipOff)) this.flushCoalesced(buf, peer, now);
            if (co.count === 0) co.start(buf, ipOff, at + p, dlen);
            else co.add(buf, ipOff, dlen);
            if (co.closed) this.flushCoalesced(buf, peer, now);
            continue;
          }
          if (co.count > 0) this.flushCoalesced(buf, peer, now);
        }
        if (p > 0) buf.copyWithin(at, at + p, at + p + dlen);
        this.fromTunnelDatagram(buf, dlen, peer, now);
      }
      if (co && co.count > 0) this.flushCoalesced(buf, peer, now);
      return;
    }
    this.fromTunnelDatagram(buf, len, peer, now);
  }

  /** Turns on receive coalescing for the udp and vxlan backends (see `coalescer`). */
  coalesceReceived(): void {
    if (this.backend) this.coalescer = new TcpCoalescer();
  }

  /**
   * Where the IPv4 header of the datagram at buf[pos..] (`len` bytes) lies, if it is a TCP
   * segment the coalescer may take: everything `fromTunnelDatagram` and `deliver` would check
   * passes (tunnel header, inner IPv4 and its checksum, source, a known local pod as
   * destination, TTL, a full TCP checksum that verifies) and it is plain data (ACK, maybe PSH,
   * a payload; no options in IPv4). -1 otherwise: it then goes the usual way, which counts why.
   */
  private coalescable(buf: Uint8Array, pos: number, len: number, peer: number): number {
    if (peer < 0 || peer === this.cfg.self) return -1;
    let ip = pos;
    if (this.backend!.type === "vxlan") {
      const { vtepHi, vtepLo, self } = this.macs;
      const eth = pos + VXLAN_HEADER_LEN;
      if (len < VXLAN_HEADER_LEN + ETH_HEADER_LEN + 40 || checkVxlanHeader(buf, pos, len, this.cfg.backend.vni) !== Drop.None) return -1;
      if (macHi(buf, eth) !== vtepHi[self] || macLo(buf, eth) !== vtepLo[self] || get16(buf, eth + ETH_TYPE) !== ETHERTYPE_IPV4) return -1;
      ip = eth + ETH_HEADER_LEN;
    }
    const ipLen = len - (ip - pos);
    if (ipLen < 41 || buf[ip] !== 0x45 || get16(buf, ip + 2) !== ipLen || buf[ip + 9] !== PROTO_TCP) return -1;
    if ((get16(buf, ip + 6) & 0x3fff) !== 0 || buf[ip + 8] <= 1) return -1; // a fragment; TTL
    if (fold(sumWords(buf, ip, IPV4_MIN_HEADER_LEN)) !== 0xffff) return -1;
    const src = get32(buf, ip + 12);
    const dst = get32(buf, ip + 16);
    if (src >= this.cfg.clusterNetwork && src <= this.clusterLast && !this.map.owns(peer, src)) return -1;
    if (dst === this.cfg.gatewayIp || !this.neighbors.contains(dst) || !this.neighbors.known(dst)) return -1;
    const tcp = ip + IPV4_MIN_HEADER_LEN;
    const tcpLen = ipLen - IPV4_MIN_HEADER_LEN;
    const hl = (buf[tcp + 12] >> 4) * 4;
    const flags = buf[tcp + 13];
    if (hl < 20 || hl >= tcpLen || (flags & 0x10) === 0 || (flags & ~0x18) !== 0) return -1; // ACK and maybe PSH only
    if (fold(sumWords(buf, tcp, tcpLen, pseudoHeaderSum(src, dst, PROTO_TCP, tcpLen))) !== 0xffff) return -1;
    return ip;
  }

  /** Writes out the run the coalescer holds: one segment the usual way, more as one super-frame. */
  private flushCoalesced(buf: Uint8Array, peer: number, now: number): void {
    const co = this.coalescer!;
    if (co.count === 1) {
      co.count = 0;
      const pos = co.firstDatagram;
      const dlen = co.firstDatagramLen;
      if (pos !== this.recvOff) buf.copyWithin(this.recvOff, pos, pos + dlen);
      this.fromTunnelDatagram(buf, dlen, peer, now, true);
      return;
    }
    const v = this.counters.v;
    const t = this.tunnelPort * PORT_COUNTERS;
    const n = co.count;
    v[t + PortCounter.RxFrames] += n;
    v[t + PortCounter.RxBytes] += co.datagramBytes;
    const dst = get32(buf, co.firstIp + 16);
    const hi = this.neighbors.hi(dst);
    const lo = this.neighbors.lo(dst);
    putMac(this.coalescedMacs, 0, hi, lo);
    putMac(this.coalescedMacs, 6, this.gwHi, this.gwLo);
    const len = co.finish(this.coalescedMacs, 0);
    this.io.toMac(co.head, len, hi, lo, -1, co.tail);
    v[this.counters.switchBase + SwitchCounter.Delivered]++;
    v[this.counters.switchBase + SwitchCounter.Coalesced] += n;
  }

  /**
   * One datagram of a udp or vxlan backend, `len` bytes at buf[recvOff..], from node `peer`.
   * `verified`: its inner TCP checksum is known to be right (the coalescer's check), so it is
   * not summed again: the frame goes out marked DATA_VALID, as the check would leave it.
   */
  private fromTunnelDatagram(buf: Uint8Array, len: number, peer: number, now: number, verified = false): void {
    const t = this.tunnelPort;
    const v = this.counters.v;
    v[t * PORT_COUNTERS + PortCounter.RxFrames]++;
    v[t * PORT_COUNTERS + PortCounter.RxBytes] += len;
    if (peer < 0 || peer === this.cfg.self) {
      this.counters.drop(t, Drop.TunnelUnknownPeer);
      return;
    }
    const backend = this.backend!;
    const d = backend.decapsulate(buf, len);
    if (d !== Drop.None) {
      this.counters.drop(t, d);
      return;
    }
    buf.fill(0, 0, ETH_OFF); // virtio_net_hdr: a plain frame
    if (verified) buf[0] = VNET_F_DATA_VALID;
    this.deliver(buf, backend.innerLen(len), peer, now);
  }

  /**
   * A whole frame from the tapnet backend: virtio_net_hdr and Ethernet as the sender's TAP gave
   * it, in `frame`, or (received in place) its headers there and the rest in the backend's tail.
   */
  private fromTapnetFrame(frame: Uint8Array, len: number): void {
    const tapnet = this.tapnet!;
    const headLen = tapnet.tail.count ? tapnet.tail.headLen : len;
    if (headLen < ETH_OFF + ETH_HEADER_LEN || get16(frame, ETH_OFF + ETH_TYPE) !== ETHERTYPE_IPV4) {
      this.counters.drop(this.tunnelPort, Drop.TunnelNotIpv4);
      return;
    }
    const offloaded = (frame[0] & VNET_F_NEEDS_CSUM) !== 0 || vnetGsoType(frame, 0) !== GSO_NONE;
    if (!offloaded) {
      frame.fill(0, 0, ETH_OFF);
      // Its checksum is verified here, over the whole packet.
      if (tapnet.tail.count) tapnet.linearize();
    }
    this.deliver(frame, len - ETH_OFF - ETH_HEADER_LEN, this.tapnetPeer, this.tapnetNow, tapnet.tail.count ? tapnet.tail : null);
  }

  /**
   * Delivers the IPv4 packet of `ipLen` bytes behind the Ethernet header at ETH_OFF in `buf`,
   * which came from node `peer`: to tapnet0 if it is for the gateway address, else to the local
   * pod that has its destination. A frame with a virtio_net_hdr that still asks for checksum or
   * segmentation work (tapnet backend) is passed on as it is; any other has its TCP/UDP checksum
   * verified here. With a `tail`, `buf` holds the frame's headers and the tail the rest.
   */
  private deliver(buf: Uint8Array, ipLen: number, peer: number, now: number, tail: FrameTail | null = null): void {
    const t = this.tunnelPort;
    const v = this.counters.v;
    const ip = this.ip;
    const ipOff = ETH_OFF + ETH_HEADER_LEN;
    const r = ip.wrap(buf, ipOff, ipLen);
    if (r !== Drop.None) {
      this.counters.drop(t, r);
      return;
    }
    if (!ip.checksumValid()) {
      this.counters.drop(t, Drop.Ipv4BadChecksum);
      return;
    }
    // A node may speak for its own pods and for itself (its host addresses answer pods too),
    // never for another node's pods.
    const src = ip.src;
    if (src >= this.cfg.clusterNetwork && src <= this.clusterLast && !this.map.owns(peer, src)) {
      this.counters.drop(t, Drop.TunnelSpoofed);
      return;
    }
    const dst = ip.dst;
    const frameLen = ETH_OFF + ETH_HEADER_LEN + ip.totalLen;
    if (buf[0] === 0 && buf[1] === 0) {
      const c = this.checkInnerChecksum(buf);
      if (c !== Drop.None) {
        this.counters.drop(t, c);
        return;
      }
    }
    if (dst === this.cfg.gatewayIp) {
      if (this.gatewayPort < 0) {
        this.counters.drop(t, Drop.NoPort);
        return;
      }
      putMac(buf, ETH_OFF + ETH_DST, this.gwHi, this.gwLo);
      putMac(buf, ETH_OFF + ETH_SRC, this.macs.vtepHi[peer], this.macs.vtepLo[peer]);
      if (this.io.toPort(this.gatewayPort, buf, frameLen, tail)) v[this.counters.switchBase + SwitchCounter.Delivered]++;
      else this.counters.drop(t, Drop.TxError);
      return;
    }
    if (!this.neighbors.contains(dst)) {
      this.counters.drop(t, Drop.TunnelNotLocal);
      return;
    }
    if (ip.ttl <= 1) {
      this.counters.drop(t, Drop.TtlExpired);
      return;
    }
    if (!this.neighbors.known(dst)) {
      this.askFor(dst, now);
      this.counters.drop(t, Drop.NeighUnresolved);
      return;
    }
    ip.decrementTtl();
    const hi = this.neighbors.hi(dst);
    const lo = this.neighbors.lo(dst);
    putMac(buf, ETH_OFF + ETH_DST, hi, lo);
    putMac(buf, ETH_OFF + ETH_SRC, this.gwHi, this.gwLo);
    this.io.toMac(buf, frameLen, hi, lo, -1, tail);
    v[this.counters.switchBase + SwitchCounter.Delivered]++;
  }

  /**
   * Verifies the TCP/UDP checksum of the packet `this.ip` views, completing a partial one;
   * on success marks the frame's virtio_net_hdr DATA_VALID. Other protocols and fragments
   * are left to the receiving kernel.
   */
  private checkInnerChecksum(buf: Uint8Array): number {
    const ip = this.ip;
    const proto = ip.protocol;
    if ((proto !== PROTO_TCP && proto !== PROTO_UDP) || ip.isFragment) return Drop.None;
    const l4 = ip.payloadOff;
    const len = ip.payloadLen;
    const field = l4 + (proto === PROTO_TCP ? 16 : 6);
    if (len < (proto === PROTO_TCP ? 20 : 8)) return Drop.None; // the receiving kernel's to refuse
    if (proto === PROTO_UDP && get16(buf, field) === 0) return Drop.None; // sent without a checksum
    const pseudo = pseudoHeaderSum(ip.src, ip.dst, proto, len);
    if (fold(sumWords(buf, l4, len, pseudo)) !== 0xffff) {
      // Partial: the field holds the folded pseudo-header sum and nothing of the data.
      if (get16(buf, field) !== fold(pseudo)) return Drop.TunnelBadChecksum;
      put16(buf, field, 0);
      const sum = ~fold(sumWords(buf, l4, len, pseudo)) & 0xffff;
      put16(buf, field, sum === 0 && proto === PROTO_UDP ? 0xffff : sum);
      this.counters.v[this.counters.switchBase + SwitchCounter.InnerCsumCompleted]++;
    }
    buf[0] = VNET_F_DATA_VALID;
    return Drop.None;
  }

  /** Broadcasts an ARP request for `ip` from the gateway, at most once a second per address. */
  private askFor(ip: number, now: number): void {
    const i = ip - this.neighbors.network;
    if (now - this.lastAsked[i] < 1) return;
    this.lastAsked[i] = now;
    const s = this.scratch;
    s.fill(0, 0, ARP_FRAME_LEN);
    s.fill(0xff, ETH_OFF + ETH_DST, ETH_OFF + ETH_DST + 6);
    putMac(s, ETH_OFF + ETH_SRC, this.gwHi, this.gwLo);
    put16(s, ETH_OFF + ETH_TYPE, ETHERTYPE_ARP);
    const a = ETH_OFF + ETH_HEADER_LEN;
    put16(s, a, 1);
    put16(s, a + 2, ETHERTYPE_IPV4);
    s[a + 4] = 6;
    s[a + 5] = 4;
    put16(s, a + 6, ARP_REQUEST);
    putMac(s, a + ARP_SHA, this.gwHi, this.gwLo);
    put32(s, a + ARP_SPA, this.cfg.gatewayIp);
    put32(s, a + 24, ip);
    this.io.toMac(s, ARP_FRAME_LEN, 0xffff, 0xffffffff, this.gatewayPort);
    this.counters.v[this.counters.switchBase + SwitchCounter.ArpRequests]++;
  }

  /**
   * Sends an ICMP error about the IPv4 packet in `buf` (checked by `this.ip`) back out of
   * `inPort`, from the gateway address, quoting its header and first 8 bytes (RFC 792).
   * Never about an ICMP error, nor about a fragment other than the first (RFC 1812 4.3.2.7).
   */
  private icmpError(inPort: number, buf: Uint8Array, type: number, code: number, rest: number): void {
    const ip = this.ip;
    const ipOff = ETH_OFF + ETH_HEADER_LEN;
    if ((ip.flagsFrag & 0x1fff) !== 0) return;
    if (ip.protocol === PROTO_ICMP) {
      const t = ip.payloadLen > 0 ? buf[ip.payloadOff] : -1;
      if (t !== ICMP_ECHO_REQUEST && t !== ICMP_ECHO_REPLY) return;
    }
    const quote = Math.min(ip.totalLen, ip.headerLen + ICMP_QUOTE_DATA);
    const s = this.scratch;
    s.fill(0, 0, ETH_OFF);
    for (let i = 0; i < 6; i++) s[ETH_OFF + ETH_DST + i] = buf[ETH_OFF + ETH_SRC + i];
    putMac(s, ETH_OFF + ETH_SRC, this.gwHi, this.gwLo);
    put16(s, ETH_OFF + ETH_TYPE, ETHERTYPE_IPV4);
    const o = ipOff;
    const total = IPV4_MIN_HEADER_LEN + ICMP_HEADER_LEN + quote;
    s[o] = 0x45;
    s[o + 1] = 0;
    put16(s, o + 2, total);
    put16(s, o + 4, this.icmpId = (this.icmpId + 1) & 0xffff);
    put16(s, o + 6, 0);
    s[o + 8] = 64;
    s[o + 9] = PROTO_ICMP;
    put16(s, o + 10, 0);
    put32(s, o + 12, this.cfg.gatewayIp);
    put32(s, o + 16, ip.src);
    put16(s, o + 10, internetChecksum(s, o, IPV4_MIN_HEADER_LEN));
    const c = o + IPV4_MIN_HEADER_LEN;
    s[c] = type;
    s[c + 1] = code;
    put16(s, c + 2, 0);
    put32(s, c + 4, rest);
    for (let i = 0; i < quote; i++) s[c + ICMP_HEADER_LEN + i] = buf[ipOff + i];
    put16(s, c + 2, internetChecksum(s, c, ICMP_HEADER_LEN + quote));
    if (this.io.toPort(inPort, s, ETH_OFF + ETH_HEADER_LEN + total)) this.counters.v[this.counters.switchBase + SwitchCounter.IcmpSent]++;
  }
}

function le16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}


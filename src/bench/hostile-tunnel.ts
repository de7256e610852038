/**
 * Hostile tunnel datagrams: what the hostile-input script sends at a node's tunnel port from the
 * underlay, one UDP payload at a time, seeded. Each datagram is of one kind, drawn by weight:
 *
 *   random          random bytes of any length up to one Ethernet frame's datagram
 *   tiny            0 to 3 bytes
 *   truncated       shorter than the backend's header and an inner Ethernet or IPv4 header
 *   bad_header      the backend's header wrong: tapnet's version, frame length or chunk offset
 *                   (up to 2^32 - 1), VXLAN's flags, VNI or inner VTEP MAC, udp's IP version
 *   chunk_mess      tapnet: the chunks of big frames out of order, repeated, missing, with the
 *                   frame's length changing half way; udp and vxlan: inner ARP or IPv6, IP
 *                   fragments, broadcast, multicast and unknown destinations, another VTEP MAC
 *   unknown_source  a well-formed frame from an address that is no peer (the node's own, a
 *                   stranger on the underlay)
 *   spoofed_inner   a well-formed frame from a peer whose inner source is not that peer's: the
 *                   receiver's own pods and gateway, node addresses, a pod CIDR no node has, the
 *                   outside (documentation ranges), 0.0.0.0, broadcast, loopback, multicast; or a
 *                   peer pod's own (these are legitimate and delivered)
 *   bad_inner       a well-formed header around a broken inner packet: IPv4 header length, total
 *                   length, checksum, fragments, a TCP or UDP header cut short or a bad L4 checksum;
 *                   on tapnet also a hostile virtio_net_hdr (GSO types, sizes, checksum offsets)
 *   huge            1473 to 65507 bytes (the sender cuts it into IP fragments): random, or a
 *                   well-formed tapnet frame or inner packet that big
 *
 * Outer sources are forged (the sender writes whole Ethernet frames): a peer node's address for
 * every kind but unknown_source, so that the datagram is read past the peer check.
 */
import { put16, put32, putLe16 } from "../wire/bytes.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "../wire/ethernet.ts";
import { writeTapnetHeader } from "../wire/tapnet.ts";
import { writeVxlanHeader } from "../wire/vxlan.ts";
import { BROADCAST, fixIpv4Checksum, ipv4, randomMac, writeEth, writePacket, type Mac, type Rng } from "./hostile-packets.ts";

export const TUNNEL_KINDS = ["random", "tiny", "truncated", "bad_header", "chunk_mess", "unknown_source", "spoofed_inner", "bad_inner", "huge"] as const;
export type TunnelKind = (typeof TUNNEL_KINDS)[number];
/** Relative weights, in TUNNEL_KINDS' order. */
export const TUNNEL_WEIGHTS = [14, 5, 10, 15, 10, 10, 20, 15, 1];
/** The largest datagram that fits one underlay frame (1500 - 20 - 8); larger ones are "huge". */
export const MAX_PLAIN_DATAGRAM = 1472;
export const MAX_DATAGRAM = 65507;

export interface TunnelTarget {
  backend: "tapnet" | "udp" | "vxlan";
  vni: number;
  /** The node under attack: its underlay address, VTEP MAC, gateway address and pod CIDR's first address. */
  address: number;
  vtepMac: Mac;
  gateway: number;
  podBase: number;
  /** Its pods' addresses and MACs. */
  pods: { ip: number; mac: Mac }[];
  /** The other nodes: underlay address, VTEP MAC, pod CIDR's first address. */
  peers: { address: number; vtepMac: Mac; podBase: number }[];
  /** An underlay address that is no node's. */
  stranger: number;
}

const VNET = 10;
const ETH = 14;
const TAPNET_HDR = 12;
/** Inner sources no peer may claim (the receiver's own are added per target). */
const FOREIGN_SOURCES = ["198.51.100.7", "203.0.113.9", "0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.1", "10.244.200.5", "169.254.1.1"].map(ipv4);
const SERVICE_IP = ipv4("10.96.0.10");
/** Destinations no pod is: broadcast, the pod CIDR's broadcast, an address no pod has, multicast. */
const ODD_DESTINATIONS = (podBase: number) => [0xffffffff, podBase + 255, podBase + 77, ipv4("224.0.0.1")];

export class TunnelGenerator {
  /** What the last next() made: its kind (an index of TUNNEL_KINDS), its outer source, its length. */
  kind = 0;
  src = 0;
  len = 0;
  private readonly total: number;
  private frameId = 0;
  /** A tapnet frame being sent in chunks (chunk_mess): its id, length, next offset, chunk size. */
  private seq = { id: 0, frameLen: 0, next: 0, chunk: 0, left: 0 };

  constructor(private readonly rng: Rng, private readonly t: TunnelTarget, private readonly weights: readonly number[] = TUNNEL_WEIGHTS) {
    if (weights.length !== TUNNEL_KINDS.length) throw new RangeError("one weight per kind");
    this.total = weights.reduce((a, w) => a + w, 0);
    if (t.peers.length === 0) throw new RangeError("a target with no peer: nothing to forge");
  }

  /** Writes the next datagram's UDP payload at b[off..] (room for MAX_DATAGRAM) and returns its length. */
  next(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const peer = rng.pick(this.t.peers);
    this.src = peer.address;
    this.kind = rng.weighted(this.weights, this.total);
    let len: number;
    switch (TUNNEL_KINDS[this.kind]) {
      case "random": len = rng.int(MAX_PLAIN_DATAGRAM + 1); rng.fill(b, off, len); break;
      case "tiny": len = rng.int(4); rng.fill(b, off, len); break;
      case "truncated": len = this.truncated(b, off, peer); break;
      case "bad_header": len = this.badHeader(b, off, peer); break;
      case "chunk_mess": len = this.chunkMess(b, off, peer); break;
      case "unknown_source":
        this.src = rng.pick([this.t.address, this.t.stranger, peer.address + 100]);
        len = this.wellFormed(b, off, peer, peer.podBase + rng.range(2, 200), rng.pick(this.t.pods).ip, rng.int(1200));
        break;
      case "spoofed_inner": len = this.spoofed(b, off, peer); break;
      case "bad_inner": len = this.badInner(b, off, peer); break;
      default: len = this.huge(b, off, peer);
    }
    this.len = len;
    return len;
  }

  /** Where the inner packet starts in the datagram, and how the backend's header is written. */
  private innerOffset(): number {
    return this.t.backend === "tapnet" ? TAPNET_HDR + VNET + ETH : this.t.backend === "vxlan" ? 8 + ETH : 0;
  }

  /** The backend's header and the inner Ethernet header (and virtio_net_hdr) for an inner packet of `ipLen`. */
  private encap(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number], ipLen: number, dstMac: Mac, type = ETHERTYPE_IPV4): number {
    const t = this.t;
    if (t.backend === "udp") return ipLen;
    if (t.backend === "vxlan") {
      writeVxlanHeader(b, off, t.vni);
      writeEth(b, off + 8, t.vtepMac, peer.vtepMac, type);
      return 8 + ETH + ipLen;
    }
    const frameLen = VNET + ETH + ipLen;
    writeTapnetHeader(b, off, this.frameId++, frameLen, 0);
    b.fill(0, off + TAPNET_HDR, off + TAPNET_HDR + VNET);
    writeEth(b, off + TAPNET_HDR + VNET, dstMac, peer.vtepMac, type);
    return TAPNET_HDR + frameLen;
  }

  private innerDstMac(dst: number): Mac {
    const pod = this.t.pods.find((p) => p.ip === dst);
    return pod && this.rng.chance(0.8) ? pod.mac : this.rng.chance(0.5) ? BROADCAST : randomMac(this.rng);
  }

  private wellFormed(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number], src: number, dst: number, payload: number, ttl = 64): number {
    const ipLen = writePacket(this.rng, b, off + this.innerOffset(), src, dst, payload, ttl);
    return this.encap(b, off, peer, ipLen, this.innerDstMac(dst));
  }

  private truncated(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    const full = this.wellFormed(b, off, peer, peer.podBase + 2, rng.pick(this.t.pods).ip, 0);
    const min = this.t.backend === "udp" ? 20 : this.innerOffset();
    const len = rng.range(1, Math.min(full - 1, min + 19));
    if (this.t.backend === "tapnet" && len > TAPNET_HDR && rng.chance(0.5)) put32(b, off + 4, len - TAPNET_HDR); // a frame that short
    return len;
  }

  private badHeader(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    const len = this.wellFormed(b, off, peer, peer.podBase + rng.range(2, 200), rng.pick(this.t.pods).ip, rng.int(1200));
    const backend = this.t.backend;
    if (backend === "tapnet") {
      const what = rng.int(4);
      if (what === 0) b[off] = rng.pick([0, 2, 3, 0x81, 0xff, rng.int(256) | 2]);
      else if (what === 1) put32(b, off + 4, rng.pick([0, 65536 + 129, 0xffffffff, rng.u32()]));
      else if (what === 2) put32(b, off + 8, rng.pick([1, len, 0xfffffff0, 0xffffffff, rng.u32()]));
      else { put32(b, off + 4, rng.int(len - TAPNET_HDR)); put32(b, off + 8, 0); } // a frame shorter than its chunk
    } else if (backend === "vxlan") {
      const what = rng.int(3);
      if (what === 0) b[off] = rng.pick([0x00, 0xf7, 0x80, rng.u32() & 0xf7]);
      else if (what === 1) { const v = rng.pick([0, this.t.vni + 1, 0xffffff, rng.int(1 << 24)]); b[off + 4] = v >>> 16; b[off + 5] = v >>> 8; b[off + 6] = v; }
      else { const m = rng.chance(0.5) ? BROADCAST : randomMac(rng); put16(b, off + 8, m.hi); put32(b, off + 10, m.lo); }
    } else {
      const v = rng.pick([0, 1, 6, 15, rng.int(15)]);
      b[off] = ((v === 4 ? 5 : v) << 4) | (b[off] & 0x0f);
    }
    return len;
  }

  private chunkMess(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    if (this.t.backend !== "tapnet") {
      const what = rng.int(4);
      const dst = rng.pick(this.t.pods).ip;
      if (what === 0) { // ARP or IPv6 inside
        const n = rng.range(28, 200);
        rng.fill(b, off + this.innerOffset(), n);
        if (this.t.backend === "udp") { b[off] = 0x60 | (b[off] & 0x0f); return n; }
        return this.encap(b, off, peer, n, BROADCAST, rng.chance(0.5) ? ETHERTYPE_ARP : ETHERTYPE_IPV6);
      }
      const odd = what === 1 || (what === 3 && this.t.backend === "udp");
      const len = this.wellFormed(b, off, peer, peer.podBase + rng.range(2, 200), odd ? rng.pick(ODD_DESTINATIONS(this.t.podBase)) : dst, rng.int(1200));
      const ip = off + this.innerOffset();
      if (what === 2) { put16(b, ip + 6, rng.pick([0x2000, 0x2000 | rng.int(0x2000), rng.int(0x2000) + 1])); fixIpv4Checksum(b, ip); }
      if (what === 3 && this.t.backend === "vxlan") { const m = rng.chance(0.5) ? BROADCAST : randomMac(rng); put16(b, off + 8, m.hi); put32(b, off + 10, m.lo); }
      return len;
    }
    const s = this.seq;
    if (s.left === 0) { // a new frame of several chunks
      s.id = rng.int(65536);
      s.chunk = rng.range(200, MAX_PLAIN_DATAGRAM - TAPNET_HDR);
      s.frameLen = rng.range(s.chunk + 1, 65536 + 128);
      s.next = 0;
      s.left = rng.range(1, 45);
    }
    s.left--;
    const pick = rng.int(6);
    let offset = s.next;
    if (pick === 0) offset = rng.int(s.frameLen); // out of order
    else if (pick === 1 && s.next > 0) offset = s.next - s.chunk; // repeated
    else if (pick === 2) offset = s.next + s.chunk; // one missing
    if (pick === 3) s.frameLen = rng.range(1, 65536 + 128); // its length changes half way
    if (pick === 4) s.id = (s.id + 1) & 0xffff; // another frame begins
    const chunk = Math.max(1, Math.min(s.chunk, s.frameLen - offset));
    s.next = offset + chunk;
    writeTapnetHeader(b, off, s.id, s.frameLen, offset);
    if (offset === 0 && chunk >= VNET + ETH + 20) {
      b.fill(0, off + TAPNET_HDR, off + TAPNET_HDR + VNET);
      writeEth(b, off + TAPNET_HDR + VNET, rng.pick(this.t.pods).mac, peer.vtepMac, ETHERTYPE_IPV4);
      rng.fill(b, off + TAPNET_HDR + VNET + ETH, chunk - VNET - ETH);
    } else rng.fill(b, off + TAPNET_HDR, chunk);
    return TAPNET_HDR + chunk;
  }

  private spoofed(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    const t = this.t;
    const other = rng.pick(t.peers);
    const src = rng.pick([...FOREIGN_SOURCES, rng.pick(t.pods).ip, t.gateway, t.address, other.address, t.podBase + rng.range(2, 250), other === peer ? peer.podBase + 1 : other.podBase + rng.range(2, 250), peer.podBase + rng.range(2, 250)]);
    const dst = rng.pick([rng.pick(t.pods).ip, rng.pick(t.pods).ip, t.gateway, t.podBase + rng.range(2, 250), other.podBase + rng.range(2, 250), 0xffffffff, t.podBase + 255, SERVICE_IP, t.address]);
    return this.wellFormed(b, off, peer, src, dst, rng.int(1200), rng.chance(0.1) ? rng.int(2) : 64);
  }

  private badInner(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    let len = this.wellFormed(b, off, peer, peer.podBase + rng.range(2, 200), rng.pick(this.t.pods).ip, rng.int(1200));
    const ip = off + this.innerOffset();
    const ipLen = len - (ip - off);
    if (this.t.backend === "tapnet" && rng.chance(0.5)) {
      const v = off + TAPNET_HDR; // a hostile virtio_net_hdr
      b[v] = rng.pick([0, 1, 2, 3, rng.int(256)]);
      b[v + 1] = rng.pick([0, 1, 3, 4, 5, 0x81, 0x84, rng.int(256)]);
      putLe16(b, v + 2, rng.pick([0, 14, 54, 0xffff, rng.int(65536)]));
      putLe16(b, v + 4, rng.pick([0, 1, 8, 1448, 0xffff, rng.int(65536)]));
      putLe16(b, v + 6, rng.pick([0, 34, ipLen + ETH, 0xfff0, rng.int(65536)]));
      putLe16(b, v + 8, rng.pick([6, 16, 0xffff, rng.int(65536)]));
      return len;
    }
    const what = rng.int(7);
    if (what === 0) b[ip] = 0x40 | rng.int(5); // IHL < 5
    else if (what === 1) b[ip] = 0x40 | rng.range(6, 15); // options past the packet, or garbage
    else if (what === 2) put16(b, ip + 2, rng.pick([0, 19, ipLen + 1, 0xffff, ipLen + 1 + rng.int(65535 - ipLen)]));
    else if (what === 3) b[ip + 10] ^= 1 + rng.int(255); // header checksum
    else if (what === 4) { // the L4 header cut short (and the frame with it)
      len = ip - off + 20 + rng.int(8);
      put16(b, ip + 2, len - (ip - off));
      if (this.t.backend === "tapnet") put32(b, off + 4, len - TAPNET_HDR);
    }
    else if (what === 5) b[ip + 20 + rng.int(Math.max(1, ipLen - 20))] ^= 0x5a; // L4 checksum now wrong
    else put16(b, ip + 6, 0x2000 | rng.int(0x2000)); // a fragment
    if (what >= 4) fixIpv4Checksum(b, ip);
    return len;
  }

  private huge(b: Uint8Array, off: number, peer: TunnelTarget["peers"][number]): number {
    const rng = this.rng;
    const len = rng.range(MAX_PLAIN_DATAGRAM + 1, MAX_DATAGRAM);
    if (rng.chance(0.3)) { rng.fill(b, off, len); return len; }
    const inner = Math.min(len - this.innerOffset(), 65535) - 20 - 28;
    const got = this.wellFormed(b, off, peer, peer.podBase + rng.range(2, 200), rng.pick(this.t.pods).ip, Math.max(0, inner));
    return Math.min(got, MAX_DATAGRAM);
  }
}

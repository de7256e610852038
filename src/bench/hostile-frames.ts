/**
 * Hostile frames from inside a pod: what the hostile-input script writes on a pod's eth0 with a
 * packet socket, one Ethernet frame at a time, seeded. Each frame is of one kind, drawn by weight:
 *
 *   random       random bytes, 14 bytes to a full frame
 *   tiny         14 to 20 bytes (a packet socket sends no less than an Ethernet header)
 *   random_mac   a well-formed packet from a random source MAC (unicast, a new one each time, to
 *                fill the FDB; or a group address), to a random, broadcast or known destination
 *   spoofed_ip   from the pod's own MAC, an IPv4 source that is not the pod's: its neighbours',
 *                a remote pod's, the gateway's, the node's, 0.0.0.0, the outside, no one's; to
 *                the neighbours, the gateway, remote pods, the outside, a Service; TTL 0 or 1 at times
 *   spoofed_mac  a neighbour pod's own MAC as source (its IP or the pod's), to steal its FDB entry
 *   arp          an ARP storm: gratuitous ARPs claiming the neighbours', the gateway's and remote
 *                pods' addresses (from the pod's MAC or a random one), unsolicited replies,
 *                requests for every address of the pod CIDR, and malformed ARP (cut short, other
 *                hardware or protocol types and lengths, unknown operations)
 *   bad_length   IPv4 header length under 5 or past the frame, total length wrong, bad header
 *                checksum, fragments, TCP and UDP headers cut short, bad L4 checksums, VLAN
 *                tags cut short, IPv6 and 802.3 frames
 *   bad_vnet     with a virtio_net_hdr (the sender's second socket, PACKET_VNET_HDR): hostile
 *                flags, GSO types, header lengths, segment sizes and checksum offsets over a
 *                TCP frame of up to 9 KB; the kernel refuses some (counted by the sender)
 *   huge         a TCP super-frame of up to 64 KB with a GSO header (well-formed, or from a
 *                spoofed source), or a plain frame of the full MTU
 *
 * The two vnet kinds set `vnet`: the frame then starts with the 10-byte virtio_net_hdr.
 */
import { put16, put32, putLe16 } from "../wire/bytes.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from "../wire/ethernet.ts";
import { BROADCAST, fixIpv4Checksum, ipv4, randomMac, writeEth, writeFrame, writePacket, type Mac, type Rng } from "./hostile-packets.ts";

export const FRAME_KINDS = ["random", "tiny", "random_mac", "spoofed_ip", "spoofed_mac", "arp", "bad_length", "bad_vnet", "huge"] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];
export const FRAME_WEIGHTS = [12, 5, 15, 15, 8, 15, 15, 12, 3];
export const VNET_HDR_LEN = 10;
/** The largest frame written: a 64 KB super-frame and its virtio_net_hdr. */
export const MAX_FRAME = 65535 + 14 + VNET_HDR_LEN;

export interface PodTarget {
  /** The attacking pod's own address and MAC. */
  self: { ip: number; mac: Mac };
  gateway: { ip: number; mac: Mac };
  /** The other pods of its node. */
  neighbours: { ip: number; mac: Mac }[];
  /** Pods of other nodes. */
  remote: number[];
  /** The node's underlay address; the pod CIDR's first address; the pods' MTU. */
  nodeAddress: number;
  podBase: number;
  mtu: number;
}

const FOREIGN = ["0.0.0.0", "198.51.100.7", "203.0.113.2", "10.244.200.5", "255.255.255.255", "127.0.0.1"].map(ipv4);
const SERVICE_IP = ipv4("10.96.0.10");
const OUTSIDE = ipv4("203.0.113.2");

export class FrameGenerator {
  kind = 0;
  /** The frame starts with a virtio_net_hdr: send it on the PACKET_VNET_HDR socket. */
  vnet = false;
  len = 0;
  private readonly total: number;

  constructor(private readonly rng: Rng, private readonly t: PodTarget, private readonly weights: readonly number[] = FRAME_WEIGHTS) {
    if (weights.length !== FRAME_KINDS.length) throw new RangeError("one weight per kind");
    if (t.neighbours.length === 0 || t.remote.length === 0) throw new RangeError("a pod target needs a neighbour and a remote pod");
    this.total = weights.reduce((a, w) => a + w, 0);
  }

  /** Writes the next frame at b[off..] (room for MAX_FRAME) and returns its length. */
  next(b: Uint8Array, off: number): number {
    const rng = this.rng;
    this.kind = rng.weighted(this.weights, this.total);
    this.vnet = false;
    let len: number;
    switch (FRAME_KINDS[this.kind]) {
      case "random": len = rng.range(14, this.t.mtu + 14); rng.fill(b, off, len); break;
      case "tiny": // to the gateway half the time, so that the switch reads past the destination
        len = rng.range(14, 20);
        rng.fill(b, off, len);
        if (rng.chance(0.5)) { put16(b, off, this.t.gateway.mac.hi); put32(b, off + 2, this.t.gateway.mac.lo); }
        break;
      case "random_mac": len = this.randomMac(b, off); break;
      case "spoofed_ip": len = this.spoofedIp(b, off); break;
      case "spoofed_mac": len = this.spoofedMac(b, off); break;
      case "arp": len = this.arp(b, off); break;
      case "bad_length": len = this.badLength(b, off); break;
      case "bad_vnet": len = this.badVnet(b, off); break;
      default: len = this.huge(b, off);
    }
    this.len = len;
    return len;
  }

  private payload(): number {
    return this.rng.int(this.t.mtu - 40 + 1);
  }

  private anyDst(): number {
    const t = this.t;
    const rng = this.rng;
    return rng.pick([rng.pick(t.neighbours).ip, t.gateway.ip, rng.pick(t.remote), OUTSIDE, SERVICE_IP, t.podBase + rng.range(2, 254), t.nodeAddress]);
  }

  /** The MAC a packet to `dst` goes to: the neighbour's own, else the gateway's (routed). */
  private macFor(dst: number): Mac {
    const n = this.t.neighbours.find((x) => x.ip === dst);
    return n ? n.mac : this.t.gateway.mac;
  }

  private randomMac(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const src = randomMac(rng, rng.chance(0.2));
    const dst4 = this.anyDst();
    const dst = rng.pick([randomMac(rng), BROADCAST, this.macFor(dst4), this.macFor(dst4)]);
    return writeFrame(rng, b, off, dst, src, rng.chance(0.5) ? this.t.self.ip : rng.u32(), dst4, this.payload());
  }

  private spoofedIp(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const t = this.t;
    let src = rng.pick([...FOREIGN, rng.pick(t.neighbours).ip, rng.pick(t.remote), t.gateway.ip, t.nodeAddress, t.podBase + rng.range(2, 254)]);
    if (src === t.self.ip) src = t.gateway.ip;
    const dst = this.anyDst();
    return writeFrame(rng, b, off, rng.chance(0.1) ? BROADCAST : this.macFor(dst), t.self.mac, src, dst, this.payload(), rng.chance(0.15) ? rng.int(2) : 64);
  }

  private spoofedMac(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const t = this.t;
    const victim = rng.pick(t.neighbours);
    const dst = rng.pick([t.gateway.ip, rng.pick(t.remote), OUTSIDE]);
    return writeFrame(rng, b, off, rng.chance(0.2) ? BROADCAST : t.gateway.mac, victim.mac, rng.chance(0.7) ? victim.ip : t.self.ip, dst, this.payload());
  }

  private arp(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const t = this.t;
    const mac = rng.chance(0.6) ? t.self.mac : randomMac(rng);
    const claimed = rng.pick([rng.pick(t.neighbours).ip, t.gateway.ip, rng.pick(t.remote), t.podBase + rng.range(2, 254), t.self.ip]);
    const what = rng.int(4);
    const reply = what === 1;
    const dst = what === 1 ? t.gateway.mac : BROADCAST;
    writeEth(b, off, dst, mac, ETHERTYPE_ARP);
    const a = off + 14;
    put16(b, a, 1);
    put16(b, a + 2, ETHERTYPE_IPV4);
    b[a + 4] = 6;
    b[a + 5] = 4;
    put16(b, a + 6, reply ? 2 : 1);
    put16(b, a + 8, mac.hi);
    put32(b, a + 10, mac.lo);
    put32(b, a + 14, claimed);
    if (reply) { put16(b, a + 18, t.gateway.mac.hi); put32(b, a + 20, t.gateway.mac.lo); } else b.fill(0, a + 18, a + 24);
    put32(b, a + 24, what === 0 ? claimed : what === 2 ? t.podBase + rng.range(1, 254) : reply ? t.gateway.ip : rng.u32()); // gratuitous, a scan, a reply, anything
    if (what === 3) { // malformed
      const f = rng.int(4);
      if (f === 0) return 14 + rng.int(28);
      if (f === 1) put16(b, a, rng.pick([6, 0, 0xffff]));
      else if (f === 2) { b[a + 4] = rng.pick([0, 8, 255]); b[a + 5] = rng.pick([0, 16, 255]); }
      else put16(b, a + 6, rng.pick([0, 3, 4, 0xffff]));
    }
    return 14 + 28 + (rng.chance(0.5) ? 18 : 0); // with or without the padding to 60
  }

  private badLength(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const t = this.t;
    const dst = this.anyDst();
    let len = writeFrame(rng, b, off, this.macFor(dst), t.self.mac, t.self.ip, dst, this.payload());
    const ip = off + 14;
    const ipLen = len - 14;
    switch (rng.int(9)) {
      case 0: b[ip] = 0x40 | rng.int(5); break;
      case 1: b[ip] = 0x40 | rng.range(6, 15); len = Math.min(len, 14 + rng.range(20, 40)); break;
      case 2: put16(b, ip + 2, rng.pick([0, 19, ipLen + 1, 0xffff, ipLen + 1 + rng.int(65535 - ipLen)])); break;
      case 3: b[ip + 10] ^= 1 + rng.int(255); break;
      case 4: len = 14 + 20 + rng.int(8); put16(b, ip + 2, len - 14); fixIpv4Checksum(b, ip); break;
      case 5: b[ip + 20 + rng.int(Math.max(1, ipLen - 20))] ^= 0xa5; break;
      case 6: put16(b, ip + 6, 0x2000 | rng.int(0x2000)); fixIpv4Checksum(b, ip); break;
      case 7: put16(b, off + 12, rng.pick([ETHERTYPE_VLAN, ETHERTYPE_QINQ])); len = 14 + rng.int(4); break;
      default: put16(b, off + 12, rng.pick([ETHERTYPE_IPV6, rng.int(0x600), 0x88cc])); break;
    }
    return len;
  }

  private badVnet(b: Uint8Array, off: number): number {
    const rng = this.rng;
    this.vnet = true;
    const payload = rng.int(9000);
    const len = VNET_HDR_LEN + 14 + writePacket(rng, b, off + VNET_HDR_LEN + 14, this.t.self.ip, rng.pick(this.t.remote), payload, 64, 2);
    writeEth(b, off + VNET_HDR_LEN, this.t.gateway.mac, this.t.self.mac, ETHERTYPE_IPV4);
    b[off] = rng.pick([0, 1, 2, 3, 4, rng.int(256)]);
    b[off + 1] = rng.pick([0, 1, 3, 4, 5, 0x81, 0x84, rng.int(256)]);
    putLe16(b, off + 2, rng.pick([0, 14, 54, 0xffff, rng.int(65536)]));
    putLe16(b, off + 4, rng.pick([0, 1, 8, 1448, 0xffff, rng.int(65536)]));
    putLe16(b, off + 6, rng.pick([0, 34, len, 0xfff0, rng.int(65536)]));
    putLe16(b, off + 8, rng.pick([6, 16, 0xffff, rng.int(65536)]));
    return len;
  }

  private huge(b: Uint8Array, off: number): number {
    const rng = this.rng;
    const t = this.t;
    if (rng.chance(0.3)) return writeFrame(rng, b, off, this.macFor(t.neighbours[0].ip), t.self.mac, t.self.ip, t.neighbours[0].ip, t.mtu - 40);
    this.vnet = true;
    const src = rng.chance(0.5) ? t.self.ip : rng.pick(t.neighbours).ip;
    const payload = rng.range(t.mtu, 65535 - 40);
    const dst = rng.pick(t.remote);
    const len = VNET_HDR_LEN + 14 + writePacket(rng, b, off + VNET_HDR_LEN + 14, src, dst, payload, 64, 2);
    writeEth(b, off + VNET_HDR_LEN, t.gateway.mac, t.self.mac, ETHERTYPE_IPV4);
    b[off] = 1; // NEEDS_CSUM: the checksum is recomputed per segment
    b[off + 1] = 1; // GSO_TCPV4
    putLe16(b, off + 2, 54);
    putLe16(b, off + 4, t.mtu - 40);
    putLe16(b, off + 6, 34);
    putLe16(b, off + 8, 16);
    return len;
  }
}

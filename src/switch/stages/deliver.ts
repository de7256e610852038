/**
 * deliver: a frame from the tunnel goes to the pod that owns its destination, or to tapnet0 when
 * it is for the gateway address. A node speaks only for its own pod CIDR (its pods, its gateway
 * address, what it translated to that address) and for its own underlay address: any other
 * inner source (another node's pod, an address beyond the cluster, this node's own) is dropped
 * as spoofed (tunnel_spoofed); senders check the same (route.ts). The destination's MAC comes
 * from the neighbour table (an unknown one is asked for by the gateway stage, and the frame
 * dropped), its port from the FDB (flooded to the pods if not known), and the TTL is
 * decremented on the way.
 *
 * A frame that asks nothing of the pod's kernel (no offloads in its virtio_net_hdr) has its
 * TCP/UDP checksum verified here and is marked DATA_VALID, so the pod's kernel need not. A
 * sender whose packets crossed a veth or a virtio NIC may have left it partial (the
 * pseudo-header sum, for a NIC to finish): such a checksum is completed and counted
 * (inner_csum_completed). Any other mismatch is a drop. A frame that asks for checksum or
 * segmentation work (a tapnet super-frame, a merged run) is passed on as it is.
 */
import { get16, put16 } from "../../wire/bytes.ts";
import { fold, pseudoHeaderSum, sumPieces, sumWords } from "../../wire/checksum.ts";
import { Drop } from "../../wire/drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC } from "../../wire/ethernet.ts";
import { Ipv4View, PROTO_TCP, PROTO_UDP } from "../../wire/ipv4.ts";
import { putMac } from "../../wire/mac.ts";
import { TCP_CHECKSUM, TCP_MIN_HEADER_LEN } from "../../wire/tcp.ts";
import { UDP_CHECKSUM, UDP_HEADER_LEN } from "../../wire/udp.ts";
import { GSO_NONE, VNET_F_DATA_VALID, vnetGsoType } from "../../wire/virtio.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchCounter } from "../counters.ts";
import { SwitchDrop } from "../drops.ts";
import { ASK, DONE, FLOOD, PENDING, TUNNEL, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { Cluster, SwitchState } from "../state.ts";

export class Deliver implements Stage {
  readonly name = "deliver";
  private readonly ip = new Ipv4View();
  private readonly cluster: Cluster;

  constructor(private readonly state: SwitchState) {
    this.cluster = state.cluster!;
  }

  run(f: Frames, now: number): void {
    for (let i = 0; i < f.count; i++) {
      if (f.ports[i] !== TUNNEL || f.outs[i] !== PENDING) continue;
      const r = this.one(f, i, now);
      if (r !== Drop.None) {
        this.state.counters.drop(this.state.tunnelRow, r);
        f.why[i] = r;
        if (f.outs[i] === PENDING) f.outs[i] = DONE;
      }
    }
  }

  private one(f: Frames, i: number, now: number): number {
    const buf = f.bufs[i];
    const o = f.offs[i];
    const ipOff = o + ETH_OFF + ETH_HEADER_LEN;
    const ip = this.ip;
    const r = ip.wrap(buf, ipOff, f.lens[i] - ETH_OFF - ETH_HEADER_LEN);
    if (r !== Drop.None) return r;
    if (!ip.checksumValid()) return Drop.Ipv4BadChecksum;
    const cl = this.cluster;
    if (!cl.map.speaksFor(f.nodes[i], ip.src)) return SwitchDrop.TunnelSpoofed;
    f.lens[i] = ETH_OFF + ETH_HEADER_LEN + ip.totalLen; // whatever padding came after the packet stays behind
    if (buf[o] === 0 && vnetGsoType(buf, o) === GSO_NONE) {
      buf.fill(0, o, o + ETH_OFF);
      const c = this.checkInnerChecksum(f, i);
      if (c !== Drop.None) return c;
    }
    const dst = ip.dst;
    const eth = o + ETH_OFF;
    const v = this.state.counters.v;
    const sw = this.state.counters.switchBase;
    if (dst === cl.cfg.gatewayIp) {
      if (cl.gatewayPort < 0) return SwitchDrop.NoPort;
      putMac(buf, eth + ETH_DST, cl.gwHi, cl.gwLo);
      putMac(buf, eth + ETH_SRC, cl.vtepHi[f.nodes[i]], cl.vtepLo[f.nodes[i]]);
      f.outs[i] = cl.gatewayPort;
      v[sw + SwitchCounter.Delivered]++;
      return Drop.None;
    }
    const nb = cl.neighbors;
    if (!nb.contains(dst)) return SwitchDrop.TunnelNotLocal;
    if (ip.ttl <= 1) return SwitchDrop.TtlExpired;
    if (!nb.known(dst)) {
      f.outs[i] = ASK;
      f.aux[i] = dst;
      return SwitchDrop.NeighUnresolved;
    }
    ip.decrementTtl();
    const hi = nb.hi(dst);
    const lo = nb.lo(dst);
    putMac(buf, eth + ETH_DST, hi, lo);
    putMac(buf, eth + ETH_SRC, cl.gwHi, cl.gwLo);
    const port = this.state.fdb.lookup(hi, lo, now);
    f.outs[i] = port >= 0 && this.state.ports.has(port) ? port : FLOOD;
    v[sw + SwitchCounter.Delivered]++;
    return Drop.None;
  }

  /**
   * Verifies the TCP/UDP checksum of entry i's packet (viewed by `this.ip`), completing a
   * partial one; on success marks the frame DATA_VALID. Other protocols and fragments are left
   * to the receiving kernel.
   */
  private checkInnerChecksum(f: Frames, i: number): number {
    const ip = this.ip;
    const proto = ip.protocol;
    if ((proto !== PROTO_TCP && proto !== PROTO_UDP) || ip.isFragment) return Drop.None;
    const buf = f.bufs[i];
    const l4 = ip.payloadOff;
    const len = ip.payloadLen;
    const field = l4 + (proto === PROTO_TCP ? TCP_CHECKSUM : UDP_CHECKSUM);
    if (len < (proto === PROTO_TCP ? TCP_MIN_HEADER_LEN : UDP_HEADER_LEN)) return Drop.None; // the receiving kernel's to refuse
    if (proto === PROTO_UDP && get16(buf, field) === 0) return Drop.None; // sent without a checksum
    const pseudo = pseudoHeaderSum(ip.src, ip.dst, proto, len);
    if (fold(this.sumL4(f, i, l4, len, pseudo)) !== 0xffff) {
      // Partial: the field holds the folded pseudo-header sum and nothing of the data.
      if (get16(buf, field) !== fold(pseudo)) return SwitchDrop.TunnelBadChecksum;
      put16(buf, field, 0);
      const sum = ~fold(this.sumL4(f, i, l4, len, pseudo)) & 0xffff;
      put16(buf, field, sum === 0 && proto === PROTO_UDP ? 0xffff : sum);
      this.state.counters.v[this.state.counters.switchBase + SwitchCounter.InnerCsumCompleted]++;
    }
    buf[f.offs[i]] = VNET_F_DATA_VALID;
    return Drop.None;
  }

  /** The sum over the `len` bytes of L4 from bufs[i][l4..], in the head and then the tail. */
  private sumL4(f: Frames, i: number, l4: number, len: number, initial: number): number {
    const t = f.tails[i];
    const buf = f.bufs[i];
    if (t.count === 0) return sumWords(buf, l4, len, initial);
    return sumPieces(buf, l4, f.offs[i] + t.headLen - l4, t.buf, t.offs, t.lens, t.count, initial, len);
  }
}

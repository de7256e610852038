/**
 * route: what leaves the node. An IPv4 frame from a pod to the gateway MAC (tapnet0's), or from
 * the node's kernel through tapnet0 to another node's VTEP MAC (along the routes the agent
 * installs), whose destination lies in another node's pod CIDR, is routed: its TTL is
 * decremented (checksum updated incrementally) and it goes to the tunnel for that node
 * (TO_NODE). On the way:
 *   - TTL running out: ICMP time exceeded back to the sender (REPLY, for the gateway stage);
 *   - larger than the tunnel MTU with DF set: ICMP fragmentation needed, the MTU as next-hop
 *     MTU; without DF: dropped (tapnet does not fragment). A backend that carries super-frames
 *     whole only has single packets checked; one that does not has its super-frames cut later;
 *   - a cluster address no node owns: ICMP destination unreachable;
 *   - sent to a VTEP MAC for no remote pod CIDR: dropped;
 *   - from a source neither in this node's pod CIDR nor its own address (the node's kernel
 *     forwarding a packet from beyond the cluster, say): dropped (foreign_source), as the
 *     other node would drop it (deliver.ts). What conntrack translated is checked as translated.
 * A packet sent to the gateway MAC for a pod of this node (one conntrack translated to a local
 * Service endpoint, or a hairpin's way back) is routed here too: TTL decremented, addressed to
 * the pod's MAC from the neighbour table (asked for by ARP if unknown, ASK) and sent to its
 * port, even the one it came in on. Anything else sent to the gateway MAC (the node itself,
 * the world beyond it) is left to the bridge, which hands it to tapnet0, and the node's kernel
 * takes it from there. An IPv4 source from a pod port teaches the neighbour table its MAC,
 * unless that address is pinned (a pod attached with its identity: port-security.ts).
 */
import { Drop } from "../../wire/drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC, ETH_TYPE, ETHERTYPE_IPV4 } from "../../wire/ethernet.ts";
import { get16 } from "../../wire/bytes.ts";
import { ICMP_DEST_UNREACHABLE, ICMP_TIME_EXCEEDED, UNREACH_FRAG_NEEDED, UNREACH_NET } from "../../wire/icmp.ts";
import { Ipv4View } from "../../wire/ipv4.ts";
import { macHi, macLo, putMac } from "../../wire/mac.ts";
import { GSO_NONE, GSO_TCPV4, GSO_UDP_L4, vnetGsoType } from "../../wire/virtio.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchDrop } from "../drops.ts";
import { ASK, DONE, FLOOD, PENDING, REPLY, TO_NODE, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { Cluster, SwitchState } from "../state.ts";

/** aux[i] of a REPLY: the ICMP error's type, code and 32-bit rest (the next-hop MTU). */
export function icmpReply(type: number, code: number, rest: number): number {
  return (type * 256 + code) * 2 ** 32 + rest;
}

export class Route implements Stage {
  readonly name = "route";
  private readonly ip = new Ipv4View();
  private readonly cluster: Cluster;

  /** `wholeFrames`: the backend carries super-frames whole (see TunnelBackend). */
  constructor(private readonly state: SwitchState, private readonly wholeFrames: boolean) {
    this.cluster = state.cluster!;
  }

  run(f: Frames, now: number): void {
    for (let i = 0; i < f.count; i++) {
      if (f.ports[i] >= 0 && f.outs[i] === PENDING) this.one(f, i, now);
    }
  }

  private one(f: Frames, i: number, now: number): void {
    const buf = f.bufs[i];
    const o = f.offs[i] + ETH_OFF;
    const ethLen = f.lens[i] - ETH_OFF;
    if (ethLen < ETH_HEADER_LEN || get16(buf, o + ETH_TYPE) !== ETHERTYPE_IPV4) return;
    const cl = this.cluster;
    const inPort = f.ports[i];
    const dHi = macHi(buf, o + ETH_DST);
    const dLo = macLo(buf, o + ETH_DST);
    const toGateway = dHi === cl.gwHi && dLo === cl.gwLo;
    const toVtep = !toGateway && inPort === cl.gatewayPort && cl.isRemoteVtep(dHi, dLo);
    if (!toGateway && !toVtep) return;
    const c = this.state.counters;
    const ip = this.ip;
    const r = ip.wrap(buf, o + ETH_HEADER_LEN, ethLen - ETH_HEADER_LEN);
    if (r !== Drop.None) {
      c.drop(inPort, r);
      f.outs[i] = DONE;
      f.why[i] = r;
      return;
    }
    const src = ip.src;
    if (inPort !== cl.gatewayPort && src !== cl.cfg.gatewayIp) cl.neighbors.learn(src, macHi(buf, o + ETH_SRC), macLo(buf, o + ETH_SRC));
    const dst = ip.dst;
    const node = cl.map.nodeForIp(dst);
    if (node >= 0 && node !== cl.cfg.self) {
      if (cl.map.speaksFor(cl.cfg.self, src)) this.toNode(f, i, node);
      else {
        c.drop(inPort, SwitchDrop.ForeignSource);
        f.outs[i] = DONE;
        f.why[i] = SwitchDrop.ForeignSource;
      }
      return;
    }
    if (toGateway && node === cl.cfg.self && dst !== cl.cfg.gatewayIp && cl.neighbors.contains(dst)) {
      this.toPod(f, i, dst, now);
      return;
    }
    if (node < 0 && cl.inCluster(dst)) {
      this.refuse(f, i, SwitchDrop.ClusterUnreachable, icmpReply(ICMP_DEST_UNREACHABLE, UNREACH_NET, 0));
      return;
    }
    if (toVtep) {
      c.drop(inPort, SwitchDrop.NoRoute);
      f.outs[i] = DONE;
      f.why[i] = SwitchDrop.NoRoute;
    }
    // Otherwise for the node or beyond it: left to the bridge, which hands it to tapnet0.
  }

  /** Routes entry i (viewed by `this.ip`) to `node`, or refuses it. */
  private toNode(f: Frames, i: number, node: number): void {
    const ip = this.ip;
    if (ip.ttl <= 1) {
      this.refuse(f, i, SwitchDrop.TtlExpired, icmpReply(ICMP_TIME_EXCEEDED, 0, 0));
      return;
    }
    const mtu = this.cluster.cfg.tunnelMtu;
    const gso = vnetGsoType(f.bufs[i], f.offs[i]);
    if (gso === GSO_NONE && ip.totalLen > mtu) {
      if (ip.dontFragment) {
        this.refuse(f, i, SwitchDrop.FragNeeded, icmpReply(ICMP_DEST_UNREACHABLE, UNREACH_FRAG_NEEDED, mtu));
        return;
      }
      if (!this.wholeFrames) { // a backend that takes whole frames carries it as it is
        this.state.counters.drop(f.ports[i], SwitchDrop.TooBig);
        f.outs[i] = DONE;
        f.why[i] = SwitchDrop.TooBig;
        return;
      }
    }
    if (gso !== GSO_NONE && !this.wholeFrames && gso !== GSO_TCPV4 && gso !== GSO_UDP_L4) {
      this.state.counters.drop(f.ports[i], Drop.GsoUnsupported);
      f.outs[i] = DONE;
      f.why[i] = Drop.GsoUnsupported;
      return;
    }
    ip.decrementTtl();
    f.outs[i] = TO_NODE;
    f.nodes[i] = node;
  }

  /** Routes entry i (viewed by `this.ip`) to the pod of this node at `dst`. */
  private toPod(f: Frames, i: number, dst: number, now: number): void {
    const ip = this.ip;
    if (ip.ttl <= 1) {
      this.refuse(f, i, SwitchDrop.TtlExpired, icmpReply(ICMP_TIME_EXCEEDED, 0, 0));
      return;
    }
    const cl = this.cluster;
    const nb = cl.neighbors;
    if (!nb.known(dst)) {
      this.state.counters.drop(f.ports[i], SwitchDrop.NeighUnresolved);
      f.outs[i] = ASK;
      f.why[i] = SwitchDrop.NeighUnresolved;
      f.aux[i] = dst;
      return;
    }
    ip.decrementTtl();
    const eth = f.offs[i] + ETH_OFF;
    const hi = nb.hi(dst);
    const lo = nb.lo(dst);
    putMac(f.bufs[i], eth + ETH_DST, hi, lo);
    putMac(f.bufs[i], eth + ETH_SRC, cl.gwHi, cl.gwLo);
    const port = this.state.fdb.lookup(hi, lo, now);
    f.outs[i] = port >= 0 && this.state.ports.has(port) ? port : FLOOD;
  }

  /** Drops entry i, counted, and has the gateway send the ICMP error `aux` back for it. */
  private refuse(f: Frames, i: number, reason: number, aux: number): void {
    this.state.counters.drop(f.ports[i], reason);
    f.outs[i] = REPLY;
    f.why[i] = reason;
    f.aux[i] = aux;
  }
}

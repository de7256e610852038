/**
 * gateway: the switch speaking for the pods' gateway address (tapnet0's), the one stage that
 * makes frames of its own, each written by wire/'s allocation-free writers:
 *   - an ARP request for the gateway address, from a pod, is answered with the gateway MAC, in
 *     place, back out of the port it came in on; every ARP from a pod also teaches the
 *     neighbour table the sender's MAC, unless the address is pinned to a pod's (port
 *     security checked the sender before: port-security.ts); the frame then goes on to the bridge;
 *   - a frame another stage refused with an ICMP error (REPLY: route's TTL exceeded,
 *     fragmentation needed, destination unreachable; conntrack's port unreachable for a Service
 *     without endpoints) is turned, in place, into that error from the gateway address (port
 *     unreachable: from the address the frame was for, as the host that refuses it would send
 *     it), quoting its IPv4 header and first 8 bytes (RFC 792), and sent back
 *     where it came from; never about an ICMP error, nor about a fragment other than the first
 *     (RFC 1812 4.3.2.7);
 *   - a pod address whose MAC is unknown (ASK, from deliver) is asked for by a broadcast ARP
 *     request from the gateway, at most once a second per address, flooded to the pods.
 */
import { ARP_REQUEST, ARP_SHA, ArpView, writeArpReply, writeArpRequest } from "../../wire/arp.ts";
import { Drop } from "../../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_ARP } from "../../wire/ethernet.ts";
import { get16 } from "../../wire/bytes.ts";
import { ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, ICMP_QUOTE_DATA, UNREACH_PORT, writeIcmpError } from "../../wire/icmp.ts";
import { IPV4_MIN_HEADER_LEN, Ipv4View, PROTO_ICMP } from "../../wire/ipv4.ts";
import { macHi, macLo } from "../../wire/mac.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchCounter } from "../counters.ts";
import { ASK, DONE, FLOOD, PENDING, REPLY, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { Cluster, SwitchState } from "../state.ts";

export class Gateway implements Stage {
  readonly name = "gateway";
  private readonly ip = new Ipv4View();
  private readonly arp = new ArpView();
  private readonly cluster: Cluster;
  /** When each address of the node's pod CIDR was last asked for. */
  private readonly lastAsked: Float64Array;
  private icmpId = 0;

  constructor(private readonly state: SwitchState) {
    this.cluster = state.cluster!;
    this.lastAsked = new Float64Array(2 ** (32 - this.cluster.cfg.nodes[this.cluster.cfg.self].prefix)).fill(-Infinity);
  }

  run(f: Frames, now: number): void {
    for (let i = 0; i < f.count; i++) {
      const out = f.outs[i];
      if (out === PENDING) {
        if (f.ports[i] >= 0) this.arpFromPort(f, i);
      } else if (out === REPLY) this.icmpError(f, i);
      else if (out === ASK) this.askFor(f, i, now);
    }
  }

  private arpFromPort(f: Frames, i: number): void {
    const buf = f.bufs[i];
    const o = f.offs[i] + ETH_OFF;
    const ethLen = f.lens[i] - ETH_OFF;
    if (ethLen < ETH_HEADER_LEN || get16(buf, o + ETH_TYPE) !== ETHERTYPE_ARP) return;
    const arp = this.arp;
    if (arp.wrap(buf, o + ETH_HEADER_LEN, ethLen - ETH_HEADER_LEN) !== Drop.None) return; // the bridge's to carry
    const cl = this.cluster;
    const inPort = f.ports[i];
    const fromGateway = inPort === cl.gatewayPort;
    const spa = arp.senderIp;
    if (!fromGateway && spa !== cl.cfg.gatewayIp && spa !== 0) {
      const sha = o + ETH_HEADER_LEN + ARP_SHA;
      cl.neighbors.learn(spa, macHi(buf, sha), macLo(buf, sha));
    }
    if (arp.operation !== ARP_REQUEST || arp.targetIp !== cl.cfg.gatewayIp || fromGateway) return;
    buf.fill(0, f.offs[i], o); // a plain frame: no offloads asked of the pod's kernel
    f.lens[i] = ETH_OFF + writeArpReply(buf, o, buf, o, cl.gwHi, cl.gwLo, cl.cfg.gatewayIp);
    f.outs[i] = inPort;
    this.state.counters.v[this.state.counters.switchBase + SwitchCounter.ArpReplies]++;
  }

  private icmpError(f: Frames, i: number): void {
    f.outs[i] = DONE;
    const buf = f.bufs[i];
    const o = f.offs[i] + ETH_OFF;
    const ip = this.ip;
    if (ip.wrap(buf, o + ETH_HEADER_LEN, f.lens[i] - ETH_OFF - ETH_HEADER_LEN) !== Drop.None) return;
    if ((ip.flagsFrag & 0x1fff) !== 0) return;
    if (ip.protocol === PROTO_ICMP) {
      const t = ip.payloadLen > 0 ? buf[ip.payloadOff] : -1;
      if (t !== ICMP_ECHO_REQUEST && t !== ICMP_ECHO_REPLY) return;
    }
    // The error is longer than a short packet: it is written in place only where the slot has room.
    if (buf.length - o < ETH_HEADER_LEN + IPV4_MIN_HEADER_LEN + ICMP_HEADER_LEN + Math.min(ip.totalLen, ip.headerLen + ICMP_QUOTE_DATA)) return;
    const aux = f.aux[i];
    const rest = aux % 2 ** 32;
    const tc = Math.floor(aux / 2 ** 32);
    const cl = this.cluster;
    this.icmpId = (this.icmpId + 1) & 0xffff;
    const from = tc === ICMP_DEST_UNREACHABLE * 256 + UNREACH_PORT ? ip.dst : cl.cfg.gatewayIp;
    buf.fill(0, f.offs[i], o);
    f.lens[i] = ETH_OFF + writeIcmpError(buf, o, buf, o, tc >>> 8, tc & 0xff, rest, from, cl.gwHi, cl.gwLo, this.icmpId);
    f.outs[i] = f.ports[i];
    this.state.counters.v[this.state.counters.switchBase + SwitchCounter.IcmpSent]++;
  }

  /** Entry i is dropped; in its place goes an ARP request for the address in aux[i], if not asked lately. */
  private askFor(f: Frames, i: number, now: number): void {
    const cl = this.cluster;
    const ip = f.aux[i];
    const k = ip - cl.neighbors.network;
    f.outs[i] = DONE;
    if (now - this.lastAsked[k] < 1) return;
    this.lastAsked[k] = now;
    const head = f.heads[i];
    head.fill(0, 0, ETH_OFF);
    f.bufs[i] = head;
    f.offs[i] = 0;
    f.tails[i].count = 0;
    f.lens[i] = ETH_OFF + writeArpRequest(head, ETH_OFF, cl.gwHi, cl.gwLo, cl.cfg.gatewayIp, ip);
    f.ports[i] = cl.gatewayPort; // flooded to every port but tapnet0
    f.outs[i] = FLOOD;
    this.state.counters.v[this.state.counters.switchBase + SwitchCounter.ArpRequests]++;
  }
}

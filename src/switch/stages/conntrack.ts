/**
 * conntrack: connection tracking, Services and NetworkPolicy, in one stage that runs twice: in
 * the ports pipeline (after validate, before route: frames from pods and the node) and in the
 * receive pipeline (after deliver: frames from other nodes). For each IPv4 packet it finds
 * the packet's flow (conntrack/tracker.ts holds the table and the current view):
 *   - a known flow: dropped if its cached verdict denies it (counted policy_denied_*), else
 *     counted and, if the flow is translated, rewritten to the inverse of its other direction's
 *     tuple (wire/nat.ts: checksums updated incrementally, partial ones and super-frames too);
 *   - an ICMP error about a known flow (the quoted packet's): rewritten with it, outer and quoted
 *     headers both; about no flow: passed, counted untracked; fragments after the first too;
 *   - a new flow, from a port, to the service CIDR: to a Service port with endpoints, DNAT to
 *     one (conntrack/services.ts picks it: random, or by ClientIP affinity), and SNAT to the
 *     node's gateway address when the client is the endpoint itself (hairpin) or comes from
 *     beyond the cluster through a NodePort and the endpoint is on another node (so replies come
 *     back here); no endpoint, or no such port: ICMP port unreachable back at once (REPLY);
 *   - then any new flow: policy decided on the pods' own addresses (egress here if the source
 *     is a pod of this node, ingress if the destination is), cached in the flow; a denied flow
 *     stays in the table, so its retries are dropped at the lookup, and is logged when asked.
 * Nothing is allocated per packet; a full table is a counted drop (conntrack_full), and so is a
 * new flow whose owner holds its quota of the table (conntrack_quota): the port it came from,
 * or for a flow from the tunnel the peer node of its inner source (conntrack/tracker.ts).
 */
import { get16 } from "../../wire/bytes.ts";
import { Drop } from "../../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../../wire/ethernet.ts";
import { FlowKeyView, FlowKind } from "../../wire/flow-key.ts";
import { ICMP_DEST_UNREACHABLE, UNREACH_PORT } from "../../wire/icmp.ts";
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../../wire/ipv4.ts";
import { natRewrite, natRewriteIcmpError } from "../../wire/nat.ts";
import { ETH_OFF, VNET_F_NEEDS_CSUM } from "../../wire/virtio.ts";
import { SwitchCounter } from "../counters.ts";
import { SwitchDrop } from "../drops.ts";
import { DONE, FLOOD, PENDING, REPLY, TUNNEL, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";
import { ORIG } from "../conntrack/flow-table.ts";
import { Allowed, DeniedEgress, invertDport, invertSport, type Tracker } from "../conntrack/tracker.ts";
import { icmpReply } from "./route.ts";

/** The dport of an ICMP packet tracked by its addresses alone (not echo): never an echo type. */
const ICMP_OTHER = 0xffff;
/** Source ports tried for a translated source before giving up, the first the client's own. */
const SNAT_TRIES = 16;
const SNAT_LOW = 32768;
const SNAT_SPAN = 61000 - SNAT_LOW;

export class Conntrack implements Stage {
  readonly name = "conntrack";
  private readonly key = new FlowKeyView();
  /** Where this one runs: frames from the ports, or from the tunnel (after deliver). */
  private readonly fromTunnel: boolean;

  constructor(private readonly state: SwitchState, private readonly tracker: Tracker, side: "ports" | "receive") {
    this.fromTunnel = side === "receive";
  }

  run(f: Frames, now: number): void {
    for (let i = 0; i < f.count; i++) {
      const out = f.outs[i];
      if (this.fromTunnel ? f.ports[i] !== TUNNEL || (out < 0 && out !== FLOOD) : f.ports[i] < 0 || out !== PENDING) continue;
      this.one(f, i, now);
    }
  }

  /** The counters' row a drop of entry i is counted on. */
  private row(f: Frames, i: number): number {
    return this.fromTunnel ? this.state.tunnelRow : f.ports[i];
  }

  private drop(f: Frames, i: number, reason: number): void {
    this.state.counters.drop(this.row(f, i), reason);
    f.outs[i] = DONE;
    f.why[i] = reason;
  }

  private one(f: Frames, i: number, now: number): void {
    const buf = f.bufs[i];
    const o = f.offs[i] + ETH_OFF;
    const ethLen = f.headLen(i) - ETH_OFF;
    if (ethLen < ETH_HEADER_LEN || get16(buf, o + ETH_TYPE) !== ETHERTYPE_IPV4) return;
    const k = this.key;
    const ipOff = o + ETH_HEADER_LEN;
    // A super-frame's head holds its headers; its length is the whole frame's.
    const r = k.parse(buf, ipOff, f.lens[i] - ETH_OFF - ETH_HEADER_LEN, ethLen - ETH_HEADER_LEN);
    if (r !== Drop.None) {
      this.drop(f, i, r);
      return;
    }
    const c = this.state.counters;
    if (k.kind === FlowKind.Fragment) {
      c.v[c.switchBase + SwitchCounter.Untracked]++;
      return;
    }
    if (k.kind === FlowKind.IcmpError) {
      this.related(f, i, ipOff);
      return;
    }
    const proto = k.proto;
    const dport = k.kind === FlowKind.Other && proto === PROTO_ICMP ? ICMP_OTHER : k.dport;
    const t = this.tracker.table;
    const found = t.lookup(proto, k.src, k.dst, k.sport, dport);
    if (found < 0) {
      this.create(f, i, ipOff, dport, now);
      return;
    }
    const flow = found >> 1;
    const v = this.tracker.verdict[flow];
    if (v !== Allowed) {
      this.drop(f, i, v === DeniedEgress ? SwitchDrop.PolicyDeniedEgress : SwitchDrop.PolicyDeniedIngress);
      return;
    }
    t.seen(flow, found & 1, k.tcpFlags, get16(buf, ipOff + 2), now);
    if (this.tracker.natted[flow]) this.translate(f, i, ipOff, flow, found & 1);
  }

  /** A packet of direction d of flow `flow` becomes the inverse of the other direction's tuple. */
  private translate(f: Frames, i: number, ipOff: number, flow: number, d: number): void {
    const t = this.tracker.table;
    const x = flow * 2 + (1 - d);
    const proto = t.proto[flow];
    const partial = (f.bufs[i][f.offs[i]] & VNET_F_NEEDS_CSUM) !== 0;
    natRewrite(f.bufs[i], ipOff, this.key.l4Off, proto, t.dst[x], invertSport(proto, t.sport[x], t.dport[x]), t.src[x], invertDport(proto, t.sport[x], t.dport[x]), partial);
    const c = this.state.counters;
    c.v[c.switchBase + SwitchCounter.Translated]++;
  }

  /** The first packet of a flow: see the top of this file. */
  private create(f: Frames, i: number, ipOff: number, dport: number, now: number): void {
    const k = this.key;
    const tr = this.tracker;
    const cl = this.state.cluster!;
    const proto = k.proto;
    const src = k.src;
    const dst = k.dst;
    const sport = k.sport;
    let rSrc = dst;
    let rDst = src;
    let rSport = invertSport(proto, sport, dport);
    let rDport = invertDport(proto, sport, dport);
    let natted = 0;
    const svc = tr.services;
    if (!this.fromTunnel && svc.inServiceCidr(dst)) {
      const row = proto === PROTO_TCP || proto === PROTO_UDP ? svc.lookup(proto, dst, dport) : -1;
      if (row < 0) {
        this.refuse(f, i, SwitchDrop.ServiceNoPort);
        return;
      }
      const e = svc.pick(row, src, now);
      if (e < 0) {
        this.refuse(f, i, SwitchDrop.ServiceNoEndpoints);
        return;
      }
      rSrc = svc.endpointIp(e);
      rSport = svc.endpointPort(e);
      natted = 1;
      const hairpin = rSrc === src;
      const fromBeyond = f.ports[i] === cl.gatewayPort && !cl.inCluster(src);
      if (hairpin || (fromBeyond && !tr.isLocalPod(rSrc))) {
        rDst = cl.cfg.gatewayIp;
        rDport = this.freePort(proto, rSrc, rDst, rSport, sport);
        if (rDport < 0) {
          this.drop(f, i, SwitchDrop.NatPortsExhausted);
          return;
        }
      }
    }
    const t = tr.table;
    const verdict = tr.decide(src, rDst, rSrc, proto, proto === PROTO_TCP || proto === PROTO_UDP ? rSport : 0);
    const owner = this.fromTunnel ? tr.peerOwner(src) : f.ports[i];
    const flow = t.create(proto, src, dst, sport, dport, rSrc, rDst, rSport, rDport, now, owner);
    if (flow < 0) {
      this.drop(f, i, flow === -1 ? SwitchDrop.ConntrackFull : flow === -3 ? SwitchDrop.ConntrackQuota : SwitchDrop.FlowClash);
      return;
    }
    const c = this.state.counters;
    c.v[c.switchBase + SwitchCounter.FlowsCreated]++;
    c.v[c.switchBase + SwitchCounter.FlowsActive] = t.count;
    tr.verdict[flow] = verdict;
    tr.natted[flow] = natted;
    if (verdict !== Allowed) {
      tr.denied(flow, verdict, now);
      this.drop(f, i, verdict === DeniedEgress ? SwitchDrop.PolicyDeniedEgress : SwitchDrop.PolicyDeniedIngress);
      return;
    }
    t.seen(flow, ORIG, k.tcpFlags, get16(f.bufs[i], ipOff + 2), now);
    if (natted) this.translate(f, i, ipOff, flow, ORIG);
  }

  /** A source port on `addr` for a flow whose reply comes from ep:epPort: the client's own if free. */
  private freePort(proto: number, ep: number, addr: number, epPort: number, want: number): number {
    const t = this.tracker.table;
    let port = want;
    for (let n = 0; n < SNAT_TRIES; n++) {
      if (port !== 0 && t.lookup(proto, ep, addr, epPort, port) < 0) return port;
      port = SNAT_LOW + Math.floor(Math.random() * SNAT_SPAN);
    }
    return -1;
  }

  /** No Service answers: ICMP port unreachable back for TCP and UDP (kube-proxy rejects), else dropped; counted. */
  private refuse(f: Frames, i: number, reason: number): void {
    this.state.counters.drop(this.row(f, i), reason);
    f.why[i] = reason;
    const p = this.key.proto;
    if (p === PROTO_TCP || p === PROTO_UDP) {
      f.outs[i] = REPLY;
      f.aux[i] = icmpReply(ICMP_DEST_UNREACHABLE, UNREACH_PORT, 0);
    } else f.outs[i] = DONE;
  }

  /** An ICMP error: it belongs to the flow of the packet it quotes (that packet's inverse is the error's direction). */
  private related(f: Frames, i: number, ipOff: number): void {
    const k = this.key;
    const tr = this.tracker;
    const t = tr.table;
    const qp = k.qProto;
    const qDport = qp === PROTO_ICMP && k.qDport !== 0 && k.qDport !== 8 ? ICMP_OTHER : k.qDport;
    const found = t.lookup(qp, k.qDst, k.qSrc, invertSport(qp, k.qSport, qDport), invertDport(qp, k.qSport, qDport));
    const c = this.state.counters;
    if (found < 0) {
      c.v[c.switchBase + SwitchCounter.Untracked]++;
      return;
    }
    const flow = found >> 1;
    const d = found & 1;
    const v = tr.verdict[flow];
    if (v !== Allowed) {
      this.drop(f, i, v === DeniedEgress ? SwitchDrop.PolicyDeniedEgress : SwitchDrop.PolicyDeniedIngress);
      return;
    }
    if (!tr.natted[flow]) return;
    const here = flow * 2 + d;
    const x = flow * 2 + (1 - d);
    // The outer header: the addresses of this direction's tuple become those after translation;
    // a router's address (a TTL exceeded on the way) stays.
    const outerSrc = k.src === t.src[here] ? t.dst[x] : k.src;
    const outerDst = k.dst === t.dst[here] ? t.src[x] : k.dst;
    natRewriteIcmpError(f.bufs[i], ipOff, outerSrc, outerDst, t.src[x], t.sport[x], t.dst[x], t.dport[x]);
    c.v[c.switchBase + SwitchCounter.Translated]++;
  }
}

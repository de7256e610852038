/**
 * Connection tracking's state, shared by the conntrack stage's two places in the datapath (the
 * ports pipeline and the receive pipeline) and kept across node-list changes: the flow table,
 * each flow's cached policy verdict and whether it is translated, the compiled Services and the
 * policy engine of the current NetworkView.
 *
 * A flow's two tuples say everything: a packet of one direction is translated to the inverse
 * of the other direction's tuple, so a Service's flow (client → ClusterIP:port, reply endpoint →
 * client) carries its DNAT, and a hairpin's (reply endpoint → gateway address) its SNAT too.
 *
 * Policy is decided once per flow, against the pods' own addresses after the Service's
 * translation: egress when the source is a pod of this node, ingress when the destination is.
 * A new view (setView, between rounds) decides every flow again: one no longer allowed is cut
 * (its next packets dropped), one now allowed goes on; a UDP flow to an endpoint its Service
 * no longer has is removed (kube-proxy flushes those), so the client's next packet picks anew.
 *
 * Each flow has an owner, with a quota of the table (options.ts: a quarter by default): the
 * owners are numbered by port (0 to maxPorts-1: a pod's, or tapnet0 for the node and what comes
 * from beyond the cluster) for flows the ports pipeline makes, and for those that come through
 * the tunnel by the peer node whose pod CIDR holds the inner source (maxPorts + its index, the
 * first PEER_OWNERS nodes), one more owner taking every other source (a node's underlay address).
 * A flow keeps the owner it was made with, so a node list that changes the indexes leaves the
 * counts exact: older flows stay with the old index until they go.
 */
import type { NetworkView } from "../../cluster/network-view.ts";
import { PolicyEngine, Verdict } from "../../cluster/policy.ts";
import { formatIpv4, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../../wire/ipv4.ts";
import { SwitchCounter } from "../counters.ts";
import type { SwitchState } from "../state.ts";
import { defaultQuota, FlowState, FlowTable, ORIG, REPLY, type ConntrackOptions } from "./flow-table.ts";
import type { DeniedEvent, FlowInfo } from "./flow-info.ts";
import { ServiceTable } from "./services.ts";

/** A flow's cached verdict. */
export const Allowed = 0;
export const DeniedEgress = 1;
export const DeniedIngress = 2;

/** Flow slots looked at per sweep: the whole table every few seconds at the idle poll's pace. */
const SWEEP_BUDGET = 1024;
/** Peer nodes with an owner of their own; the rest share the last owner (see the top). */
export const PEER_OWNERS = 4096;
/** Denials written to the log per second at most, when logging is on. */
const LOG_PER_SECOND = 100;

/** The other direction's tuple as this direction sees it: ICMP echo's type flips, ports swap. */
export function invertSport(proto: number, sport: number, dport: number): number {
  return proto === PROTO_ICMP ? sport : dport;
}
export function invertDport(proto: number, sport: number, dport: number): number {
  if (proto === PROTO_ICMP) return dport === 8 ? 0 : dport === 0 ? 8 : dport;
  return sport;
}

export class Tracker {
  readonly table: FlowTable;
  readonly verdict: Uint8Array;
  /** 1 when the flow's packets are translated (its two tuples are not each other's inverse). */
  readonly natted: Uint8Array;
  services: ServiceTable = new ServiceTable(undefined);
  engine?: PolicyEngine;
  policyLog = false;
  /** Where denials go when logging is on (the datapath posts them to the control thread). */
  emit: (e: DeniedEvent) => void = () => {};
  /** The owner of peer node 0; ports are owners 0 to peerBase-1. */
  private readonly peerBase: number;
  private logged = 0;
  private logSecond = 0;

  constructor(private readonly state: SwitchState, readonly options: ConntrackOptions) {
    this.peerBase = state.counters.maxPorts;
    const quota = options.maxPerOwner ?? defaultQuota(options.max);
    this.table = new FlowTable({ max: options.max, timeouts: options.timeouts, owners: this.peerBase + PEER_OWNERS + 1, quota });
    this.verdict = new Uint8Array(this.table.capacity);
    this.natted = new Uint8Array(this.table.capacity);
  }

  /** The owner of a flow from the tunnel with inner source `src`: the node whose pod CIDR holds it (see the top). */
  peerOwner(src: number): number {
    const n = this.state.cluster!.map.nodeForIp(src);
    return this.peerBase + (n >= 0 && n < PEER_OWNERS ? n : PEER_OWNERS);
  }

  /** Is `ip` a pod of this node (in its pod CIDR, not its gateway address)? */
  isLocalPod(ip: number): boolean {
    const cl = this.state.cluster!;
    return ip !== cl.cfg.gatewayIp && cl.neighbors.contains(ip);
  }

  /**
   * The verdict for a flow from `src` (seen by the server as `seenSrc`) to `dst`:`port` (after
   * the Service's translation): egress where src is a pod of this node, ingress where dst is.
   */
  decide(src: number, seenSrc: number, dst: number, proto: number, port: number): number {
    const e = this.engine;
    if (!e || src === dst) return Allowed;
    if (this.isLocalPod(src) && e.egress(src, dst, proto, port) === Verdict.Denied) return DeniedEgress;
    if (this.isLocalPod(dst) && e.ingress(seenSrc, dst, proto, port) === Verdict.Denied) return DeniedIngress;
    return Allowed;
  }

  /** Flow f's verdict from its tuples (the original source, the reply's source: the endpoint). */
  decideFlow(f: number): number {
    const t = this.table;
    const o = f * 2 + ORIG;
    const r = f * 2 + REPLY;
    const proto = t.proto[f];
    const port = proto === PROTO_TCP || proto === PROTO_UDP ? t.sport[r] : 0;
    return this.decide(t.src[o], t.dst[r], t.src[r], proto, port);
  }

  /** Writes a denial to the log (when on), at most LOG_PER_SECOND a second. */
  denied(f: number, verdict: number, now: number): void {
    if (!this.policyLog || !this.engine) return;
    const second = Math.floor(now);
    if (second !== this.logSecond) { this.logSecond = second; this.logged = 0; }
    if (this.logged++ >= LOG_PER_SECOND) return;
    const t = this.table;
    const o = f * 2 + ORIG;
    const r = f * 2 + REPLY;
    const direction = verdict === DeniedEgress ? "egress" : "ingress";
    const podIp = verdict === DeniedEgress ? t.src[o] : t.src[r];
    const pod = this.engine.podAt(podIp);
    this.emit({
      direction, protocol: protocolName(t.proto[f]),
      src: formatIpv4(t.src[o]), dst: formatIpv4(t.src[r]), sport: t.sport[o], dport: t.sport[r],
      pod: pod ? `${pod.namespace}/${pod.name}` : formatIpv4(podIp),
      policies: this.engine.isolatedBy(podIp, direction),
    });
  }

  /** Takes a new view: Services and policies compiled, every flow decided again (see the top). */
  setView(view: NetworkView): void {
    this.services = new ServiceTable(view, this.services);
    this.engine = new PolicyEngine(view);
    const t = this.table;
    const c = this.state.counters;
    const flushed: number[] = [];
    t.forEach((f) => {
      const o = f * 2 + ORIG;
      const r = f * 2 + REPLY;
      if (t.proto[f] === PROTO_UDP && this.natted[f] && this.services.inServiceCidr(t.dst[o]) && !this.services.hasEndpoint(PROTO_UDP, t.dst[o], t.dport[o], t.src[r], t.sport[r])) {
        flushed.push(f);
        return;
      }
      const v = this.decideFlow(f);
      if (v !== Allowed && this.verdict[f] === Allowed) c.v[c.switchBase + SwitchCounter.FlowsCut]++;
      this.verdict[f] = v;
    });
    for (const f of flushed) t.remove(f);
    c.v[c.switchBase + SwitchCounter.FlowsFlushed] += flushed.length;
    c.v[c.switchBase + SwitchCounter.FlowsActive] = t.count;
  }

  /** Removes flows that expired, a slice of the table at a time. */
  sweep(now: number): void {
    const c = this.state.counters;
    const n = this.table.sweep(now, SWEEP_BUDGET);
    c.v[c.switchBase + SwitchCounter.FlowsExpired] += n;
    c.v[c.switchBase + SwitchCounter.FlowsActive] = this.table.count;
  }

  /** Every live flow, as `tapnet conntrack list` shows it. */
  flows(now: number): FlowInfo[] {
    const t = this.table;
    const out: FlowInfo[] = [];
    const tuple = (k: number) => ({ src: formatIpv4(t.src[k]), dst: formatIpv4(t.dst[k]), sport: t.sport[k], dport: t.dport[k] });
    t.forEach((f) => {
      const o = f * 2 + ORIG;
      const r = f * 2 + REPLY;
      const proto = t.proto[f];
      const row = this.services.lookup(proto, t.dst[o], t.dport[o]);
      out.push({
        protocol: protocolName(proto), proto,
        state: t.state[f] === FlowState.New ? "new" : t.state[f] === FlowState.Established ? "established" : "closing",
        expiresIn: Math.max(0, Math.round(t.expires[f] - now)),
        original: tuple(o), reply: tuple(r),
        packets: [t.packets[o], t.packets[r]], bytes: [t.bytes[o], t.bytes[r]],
        ...(row >= 0 && this.natted[f] ? { service: this.services.names[row] } : {}),
        verdict: this.verdict[f] === Allowed ? "allowed" : "denied",
      });
    });
    return out;
  }
}

function protocolName(proto: number): FlowInfo["protocol"] {
  return proto === PROTO_TCP ? "tcp" : proto === PROTO_UDP ? "udp" : proto === PROTO_ICMP ? "icmp" : "other";
}

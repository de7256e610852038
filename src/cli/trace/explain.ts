/**
 * What `tapnet trace` says at the hops that need more than "to port 3": each a short phrase,
 * from what the switch recorded (switch/trace/tracer.ts) and the headers (headers.ts).
 *   - dropPhrase: a drop reason by its counter name (switch/drops.ts), and what it means;
 *   - Translations: conntrack's rewrites along one journey. A destination rewritten on the way
 *     out is a Service's (kube-proxy's DNAT, done in the switch); the reply's source rewritten
 *     back to it is its reverse. A source rewritten (to the node's gateway address: hairpin,
 *     NodePort) is a source translation, and the reply's destination rewritten back its reverse;
 *   - kernelHandOver: a frame the switch writes to tapnet0, for beyond the cluster, is the node
 *     kernel's from there, and its masquerade rule (node/host-net.ts's, the same text) gives it
 *     the node's address; the reply comes back through tapnet0 with the masquerade undone.
 */
import type { TraceRecord } from "../../switch/trace/tracer.ts";
import { nftScript } from "../../node/host-net.ts";
import { cidrContains, parseCidr } from "../../wire/cidr.ts";
import { parseIpv4Address } from "../../wire/ipv4.ts";
import type { Headers } from "./headers.ts";
import type { NodeTrace } from "./journey.ts";

/** What each drop reason a trace is likely to meet means; the others are named by their counter alone. */
const REASONS: Record<string, string> = {
  policy_denied_egress: "a NetworkPolicy isolates the source pod for egress and none of its rules allows this flow",
  policy_denied_ingress: "a NetworkPolicy isolates the destination pod for ingress and none of its rules allows this flow",
  no_route: "sent to another node's VTEP MAC, but no node's pod CIDR holds the destination",
  cluster_unreachable: "no node owns this cluster address",
  frag_needed: "larger than the tunnel's MTU, DF set",
  too_big: "larger than the tunnel's MTU; tapnet does not fragment",
  ttl_expired: "the TTL ran out",
  service_no_endpoints: "the Service port has no ready endpoint (kube-proxy rejects)",
  service_no_port: "no Service has this port on this address",
  neigh_unresolved: "the destination pod's MAC is not known yet",
  foreign_source: "from an address this node does not speak for; the far node would refuse it",
  tunnel_spoofed: "its inner source is not in the sending node's pod CIDR",
  tunnel_not_local: "for an address that is not this node's to deliver",
  spoofed_source_mac: "from a MAC not the pod's own",
  spoofed_source_ip: "from an address not the pod's own",
  conntrack_full: "a new flow, and the connection-tracking table is full",
  conntrack_quota: "a new flow, and its owner holds its quota of the table",
  flow_clash: "another flow already has its reply tuple",
  nat_ports_exhausted: "no free source port to translate the flow to",
  same_port: "its destination is on the port it came in on",
  tx_error: "the write failed (the queue full, or the device gone)",
  no_port: "the port was removed while the frame was in flight",
};

/** "policy_denied_egress (a NetworkPolicy isolates ...)": the counter name and its meaning. */
export function dropPhrase(why: string): string {
  return REASONS[why] ? `${why} (${REASONS[why]})` : `${why} (see the switch's drop counters)`;
}

const endpoint = (ip: string, h: Headers, which: "src" | "dst") => {
  const p = h.tcp ?? h.udp;
  return p ? `${ip}:${which === "src" ? p.sport : p.dport}` : ip;
};

/** conntrack's rewrites along one journey, in the order the journey meets them. */
export class Translations {
  private readonly dnat: { from: string; to: string }[] = [];
  private readonly snat: { from: string; to: string }[] = [];

  /** What conntrack did between headers `a` and `b`, or undefined if it rewrote no address or port; `service` names it. */
  explain(a: Headers, b: Headers, service?: string): string | undefined {
    if (!a.ip || !b.ip) return undefined;
    const out: string[] = [];
    const dstA = endpoint(a.ip.dst, a, "dst"), dstB = endpoint(b.ip.dst, b, "dst");
    const srcA = endpoint(a.ip.src, a, "src"), srcB = endpoint(b.ip.src, b, "src");
    if (dstA !== dstB) {
      if (this.snat.some((x) => x.to === dstA && x.from === dstB)) out.push(`reverse source translation: the reply's destination ${dstA} → ${dstB}, back to the client's own`);
      else {
        this.dnat.push({ from: dstA, to: dstB });
        out.push(`service translation: ${dstA} → ${dstB}${service ? ` (${service})` : ""}: kube-proxy's DNAT, done in the switch's conntrack`);
      }
    }
    if (srcA !== srcB) {
      if (this.dnat.some((x) => x.to === srcA && x.from === srcB)) out.push(`reverse translation: the reply's source ${srcA} → ${srcB}, the Service's address the client asked for`);
      else {
        this.snat.push({ from: srcA, to: srcB });
        out.push(`source translation: ${srcA} → ${srcB} (the node's gateway address: the reply comes back through this switch)`);
      }
    }
    return out.length ? out.join("; ") : undefined;
  }
}

/** Is `ip` in the cluster CIDR `cidr`? */
function inCidr(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const a = parseIpv4Address(ip);
  return typeof c !== "string" && a !== undefined && cidrContains(c, a);
}

/**
 * A frame written to tapnet0 (`written`), or read from it (`first`): what the node's kernel does
 * with it, when it goes beyond the cluster or comes back from there; undefined otherwise.
 */
export function kernelHandOver(r: TraceRecord, h: Headers, n: NodeTrace, written: boolean, first: boolean): { what: string; notes: string[] } | undefined {
  const k = r.kernel;
  if (!k || !h.ip) return undefined;
  const dev = n.ports.get(written ? r.out : r.port) ?? "tapnet0";
  const beyond = (ip: string) => !inCidr(k.cluster, ip) && !k.nodes.includes(ip);
  if (written && r.stage === "port-out") {
    if (!beyond(h.ip.dst)) return { what: `handed to ${n.node}'s kernel through ${dev}: for the node itself`, notes: [] };
    const rule = nftScript(k.cluster, k.nodes).split("\n").find((l) => l.includes("masquerade"))?.trim() ?? "masquerade";
    const eg = n.egress?.get(h.ip.dst);
    const becomes = eg ? `${eg.source}${eg.dev ? ` (${n.node}'s ${eg.dev})` : ""}` : `the address of ${n.node}'s interface its route to ${h.ip.dst} leaves by`;
    const masq = inCidr(k.cluster, h.ip.src)
      ? `${n.node}'s kernel masquerades it: nft table ip tapnet, chain postrouting, "${rule}" (iptables' chain TAPNET-MASQ where nft is missing): source ${h.ip.src} becomes ${becomes}; the reply's destination goes back to ${h.ip.src}`
      : `the source ${h.ip.src} is not a pod's: ${n.node}'s kernel sends it on as it is`;
    return { what: `handed to ${n.node}'s kernel through ${dev}: beyond the cluster, the kernel routes it on`, notes: [masq] };
  }
  if (first && r.port >= 0 && beyond(h.ip.src) && inCidr(k.cluster, h.ip.dst)) {
    return { what: `in from ${n.node}'s kernel through ${dev}: from beyond the cluster, the masquerade undone (for ${h.ip.dst} again)`, notes: [] };
  }
  return undefined;
}

/**
 * The NetworkPolicy engine (networking.k8s.io/v1): given a network view, is a new flow allowed
 * out of its source pod (egress) and into its destination pod (ingress)? A connection is
 * allowed when both are.
 *
 * The rules, as the Kubernetes API defines them:
 *   - A pod is isolated for ingress (egress) when a policy of its own namespace selects it
 *     (spec.podSelector) and lists that type in spec.policyTypes. A pod no policy isolates
 *     allows everything in that direction.
 *   - An isolated pod allows the union of the rules of that type of every policy isolating it,
 *     and nothing else: `ingress: []` (or none) allows nothing.
 *   - A rule matches a flow when one of its peers matches the other end and one of its ports
 *     matches the destination port. No peers (or `from: []`): every peer. No ports: every port
 *     of every protocol. A rule with ports never matches a protocol without ports (ICMP).
 *   - Peers: podSelector alone selects pods of the policy's namespace; namespaceSelector alone,
 *     every pod of the namespaces it selects; both in one peer, pods matching both. ipBlock
 *     matches addresses in cidr and in no `except`, pods included. Every namespace carries the
 *     label kubernetes.io/metadata.name=<its name>, as the API server sets it.
 *   - Ports: protocol (TCP when left out), a number, a number with endPort (a range), or a name
 *     looked up in the destination pod's container ports by name and protocol: the isolated pod
 *     for ingress, the peer for egress. A name never matches a non-pod.
 *   - Always allowed: a pod to itself, and traffic between a pod and its own node's addresses.
 *
 * The constructor compiles the view (policy-rules.ts): pods by address, the policies isolating
 * each pod per direction, each rule's peers as a bitset over the pods (a selector is evaluated
 * once per namespace and per distinct set of pod labels). egress() and ingress() then allocate
 * nothing: the datapath calls them once per new flow. explain() calls them too and reads what
 * they decided (decidedBy, decidedRule), so `tapnet policy explain` cannot disagree with the
 * datapath. A view holding what validation refuses (a bad CIDR, a peer with no selector) gets a
 * peer or port that matches nothing, and a line in `problems`: it allows less, never more.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { PROTO, type NetworkView, type ViewPod } from "./network-view.ts";
import { compileRule, peerMatches, portMatches, selectPods, typesOf, type CompiledRule, type PeerScope } from "./policy-rules.ts";

/** What egress() and ingress() say. */
export const Verdict = {
  /** No policy limits the flow: the pod is not isolated that way, that end is not a pod, or the flow is always allowed (to itself, to its node). */
  NotIsolated: 0,
  /** The pod is isolated and a rule allows the flow: decidedBy and decidedRule say which. */
  AllowedByRule: 1,
  /** The pod is isolated and no rule allows the flow. */
  Denied: 2,
} as const;

/** The label the API server puts on every Namespace. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export type Direction = "ingress" | "egress";

export interface SideExplanation {
  /** "namespace/name"; absent when that end is not a pod. */
  pod?: string;
  isolated: boolean;
  /** The policies isolating it for this direction, "namespace/name". */
  policies: string[];
  allowed: boolean;
  /** The rule that allowed it: its index in the policy's ingress or egress list. */
  allowedBy?: { policy: string; rule: number };
  /** One plain sentence. */
  reason: string;
}

export interface Explanation {
  allowed: boolean;
  egress: SideExplanation;
  ingress: SideExplanation;
}

interface CompiledPolicy {
  name: string;
  ingress: CompiledRule[];
  egress: CompiledRule[];
}

export class PolicyEngine {
  readonly view: NetworkView;
  /** Faults in the view's policies; each made a peer or a port match nothing. */
  readonly problems: string[] = [];
  /** After egress()/ingress(): the index (into view.policies) of the policy whose rule allowed the flow, else -1. */
  decidedBy = -1;
  /** After egress()/ingress(): that rule's index in the policy's ingress or egress list, else -1. */
  decidedRule = -1;

  private readonly podIndex = new Map<number, number>();
  private readonly nsLabels = new Map<string, Record<string, string>>();
  private readonly policies: CompiledPolicy[];
  /** Per pod (index in view.pods): the policies isolating it per direction, and its node's addresses. */
  private readonly ingressOf: number[][];
  private readonly egressOf: number[][];
  private readonly nodeAddrsOf: number[][];

  constructor(view: NetworkView) {
    this.view = view;
    const pods = view.pods;
    pods.forEach((p, i) => {
      const first = this.podIndex.get(p.ip >>> 0);
      if (first === undefined) this.podIndex.set(p.ip >>> 0, i);
      else this.problems.push(`pods ${nameOf(pods[first])} and ${nameOf(p)} have the same address ${formatIpv4(p.ip)}: ${nameOf(p)} is left out`);
    });
    for (const ns of view.namespaces) this.nsLabels.set(ns.name, { ...ns.labels, [NAMESPACE_NAME_LABEL]: ns.name });
    const nodes = new Map(view.nodes.map((n) => [n.name, n.addresses.map((a) => a >>> 0)]));
    this.nodeAddrsOf = pods.map((p) => nodes.get(p.node) ?? []);
    this.ingressOf = pods.map(() => []);
    this.egressOf = pods.map(() => []);
    const podsIn = new Map<string, number[]>();
    pods.forEach((p, i) => {
      if (this.podIndex.get(p.ip >>> 0) !== i) return;
      const list = podsIn.get(p.namespace);
      if (list) list.push(i);
      else podsIn.set(p.namespace, [i]);
    });
    const sets = new Map<string, number>();
    const labelSet = Int32Array.from(pods, (p) => {
      const key = JSON.stringify(Object.entries(p.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      let id = sets.get(key);
      if (id === undefined) sets.set(key, (id = sets.size));
      return id;
    });
    const scope: PeerScope = { pods, podsIn, labelSet, labelSets: sets.size, namespaceLabels: (ns) => this.namespaceLabels(ns) };
    this.policies = view.policies.map((p, index) => {
      const ns = p.metadata.namespace ?? "default";
      const name = `${ns}/${p.metadata.name}`;
      const types = typesOf(p);
      selectPods(p.spec.podSelector, podsIn.get(ns) ?? [], scope, new Uint8Array(sets.size), (i) => {
        if (types.includes("Ingress")) this.ingressOf[i].push(index);
        if (types.includes("Egress")) this.egressOf[i].push(index);
      });
      const rules = (dir: Direction): CompiledRule[] =>
        (p.spec[dir] ?? []).map((r, i) => compileRule(ns, dir, r, `policy ${name}: spec.${dir}[${i}]`, scope, this.problems));
      return { name, ingress: rules("ingress"), egress: rules("egress") };
    });
  }

  /** Egress from src to dst:port/proto (proto an IP protocol number; port the destination port, 0 when none). src not a pod: NotIsolated. */
  egress(src: number, dst: number, proto: number, port: number): number {
    this.decidedBy = -1;
    this.decidedRule = -1;
    const s = this.podIndex.get(src >>> 0);
    if (s === undefined) return Verdict.NotIsolated;
    const isolating = this.egressOf[s];
    if (isolating.length === 0 || this.alwaysAllowed(s, dst)) return Verdict.NotIsolated;
    const d = this.podIndex.get(dst >>> 0) ?? -1;
    return this.decide(isolating, "egress", d, dst, proto, port, d);
  }

  /** Ingress into dst from src, as egress(). dst not a pod: NotIsolated. */
  ingress(src: number, dst: number, proto: number, port: number): number {
    this.decidedBy = -1;
    this.decidedRule = -1;
    const d = this.podIndex.get(dst >>> 0);
    if (d === undefined) return Verdict.NotIsolated;
    const isolating = this.ingressOf[d];
    if (isolating.length === 0 || this.alwaysAllowed(d, src)) return Verdict.NotIsolated;
    const s = this.podIndex.get(src >>> 0) ?? -1;
    return this.decide(isolating, "ingress", s, src, proto, port, d);
  }

  /** The policies ("namespace/name") isolating the pod at `ip` for that direction; none when it is not a pod. */
  isolatedBy(ip: number, direction: Direction): string[] {
    const i = this.podIndex.get(ip >>> 0);
    if (i === undefined) return [];
    return (direction === "ingress" ? this.ingressOf : this.egressOf)[i].map((p) => this.policies[p].name);
  }

  podAt(ip: number): ViewPod | undefined {
    const i = this.podIndex.get(ip >>> 0);
    return i === undefined ? undefined : this.view.pods[i];
  }

  /** "namespace/name" of view.policies[i]. */
  policyName(i: number): string {
    return this.policies[i]?.name ?? `policy #${i}`;
  }

  /** Allow or deny, and why, for both ends: egress() and ingress() decide, this reads what they did. */
  explain(src: number, dst: number, proto: number, port: number): Explanation {
    const egress = this.explainSide("egress", src, dst, proto, port);
    const ingress = this.explainSide("ingress", src, dst, proto, port);
    return { allowed: egress.allowed && ingress.allowed, egress, ingress };
  }

  /** Is `remote` the pod's own address or one of its node's? */
  private alwaysAllowed(local: number, remote: number): boolean {
    const ip = remote >>> 0;
    if (ip === this.view.pods[local].ip >>> 0) return true;
    const addrs = this.nodeAddrsOf[local];
    for (let i = 0; i < addrs.length; i++) if (addrs[i] === ip) return true;
    return false;
  }

  private decide(isolating: number[], dir: Direction, remote: number, remoteIp: number, proto: number, port: number, dstPod: number): number {
    const dst = dstPod >= 0 ? this.view.pods[dstPod] : undefined;
    for (let i = 0; i < isolating.length; i++) {
      const rules = this.policies[isolating[i]][dir];
      for (let r = 0; r < rules.length; r++) {
        if (peerMatches(rules[r], remote, remoteIp) && portMatches(rules[r], proto, port, dst)) {
          this.decidedBy = isolating[i];
          this.decidedRule = r;
          return Verdict.AllowedByRule;
        }
      }
    }
    return Verdict.Denied;
  }

  /** A namespace's labels with the name label the API server sets, also for a namespace the view does not list. */
  private namespaceLabels(ns: string): Record<string, string> {
    let labels = this.nsLabels.get(ns);
    if (labels === undefined) this.nsLabels.set(ns, (labels = { [NAMESPACE_NAME_LABEL]: ns }));
    return labels;
  }

  private explainSide(dir: Direction, src: number, dst: number, proto: number, port: number): SideExplanation {
    const verdict = dir === "egress" ? this.egress(src, dst, proto, port) : this.ingress(src, dst, proto, port);
    const by = this.decidedBy;
    const rule = this.decidedRule;
    const [localIp, remoteIp] = dir === "egress" ? [src, dst] : [dst, src];
    const local = this.podAt(localIp);
    const policies = this.isolatedBy(localIp, dir);
    const side: SideExplanation = {
      ...(local ? { pod: nameOf(local) } : {}),
      isolated: policies.length > 0,
      policies,
      allowed: verdict !== Verdict.Denied,
      ...(by >= 0 ? { allowedBy: { policy: this.policyName(by), rule } } : {}),
      reason: "",
    };
    const remote = this.podAt(remoteIp);
    const flow = `traffic ${dir === "egress" ? "to" : "from"} ${remote ? nameOf(remote) : formatIpv4(remoteIp)} on ${portText(proto, port)}`;
    if (!local) side.reason = `${formatIpv4(localIp)} is not a pod, so no NetworkPolicy limits its ${dir}.`;
    else if (policies.length === 0) side.reason = `No NetworkPolicy selects ${side.pod} for ${dir}, so its ${dir} is not limited.`;
    else if (verdict === Verdict.NotIsolated) {
      side.reason = remoteIp >>> 0 === local.ip >>> 0
        ? `${side.pod} is talking to itself, which is always allowed.`
        : `${formatIpv4(remoteIp)} is an address of ${side.pod}'s own node ${local.node}, and traffic between a pod and its node is always allowed.`;
    } else if (by >= 0) side.reason = `${cap(dir)} rule ${rule} of ${side.allowedBy!.policy} allows ${flow}.`;
    else side.reason = this.denial(dir, this.podIndexOf(localIp), flow, remoteIp, proto, port, this.podIndexOf(dst));
    return side;
  }

  private podIndexOf(ip: number): number {
    return this.podIndex.get(ip >>> 0) ?? -1;
  }

  /** Why no rule allowed it: the policies have no rules of that type, or none matches (naming one that matches the peer but not the port). */
  private denial(dir: Direction, local: number, flow: string, remoteIp: number, proto: number, port: number, dstPod: number): string {
    const pod = nameOf(this.view.pods[local]);
    const isolating = (dir === "ingress" ? this.ingressOf : this.egressOf)[local];
    const list = isolating.map((i) => this.policies[i].name).join(", ");
    const rules = isolating.flatMap((i) => this.policies[i][dir].map((rule, n) => ({ policy: this.policies[i].name, rule, n })));
    if (rules.length === 0) {
      return `${pod} is isolated for ${dir} by ${list}, which ${isolating.length === 1 ? "has" : "have"} no ${dir} rules, so all its ${dir} is denied.`;
    }
    const remote = this.podIndexOf(remoteIp);
    const dst = dstPod >= 0 ? this.view.pods[dstPod] : undefined;
    const near = rules.find((x) => peerMatches(x.rule, remote, remoteIp) && !portMatches(x.rule, proto, port, dst));
    const hint = near ? ` (${dir} rule ${near.n} of ${near.policy} matches that peer, but not ${portText(proto, port)})` : "";
    return `${pod} is isolated for ${dir} by ${list}, and no ${dir} rule of ${isolating.length === 1 ? "it" : "theirs"} allows ${flow}${hint}.`;
  }
}

function nameOf(p: ViewPod): string {
  return `${p.namespace}/${p.name}`;
}

function cap(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}

const PROTOCOL_NAMES: Record<number, string> = { [PROTO.TCP]: "TCP", [PROTO.UDP]: "UDP", [PROTO.SCTP]: "SCTP" };

/** "80/TCP", "ICMP", "IP protocol 47". */
export function portText(proto: number, port: number): string {
  const name = PROTOCOL_NAMES[proto];
  if (name) return `${port}/${name}`;
  return proto === 1 ? "ICMP" : `IP protocol ${proto}`;
}

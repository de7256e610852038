/**
 * NetworkPolicy rules compiled for the policy engine (policy.ts), and the two tests a rule
 * makes of a flow: does a peer match the other end, does a port match the destination?
 *
 * A compiled rule holds its selector peers as a bitset over the view's pods (bit i: view.pods[i]),
 * worked out once from the labels, its ipBlock peers as network/mask pairs (an address matches
 * when ((ip ^ network) & mask) === 0 and no `except` pair matches it), and its ports as
 * protocol and range, or protocol and name. peerMatches and portMatches allocate nothing.
 *
 * Something validation refuses (a bad CIDR, a peer with no selector, a named port with an
 * endPort) compiles to a peer or port that matches nothing, and a line in `problems`: a policy
 * that cannot be read allows less, never more.
 */
import { parseCidr } from "../wire/cidr.ts";
import { PROTO, type ViewPod } from "./network-view.ts";
import type { LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from "./objects.ts";
import { matchesSelector } from "./selectors.ts";

export interface IpBlock {
  /** Signed 32-bit network and mask. */
  network: number;
  mask: number;
  /** Pairs of network, mask. */
  except: Int32Array;
}

export interface PortMatch {
  proto: number;
  /** A numbered port or range, inclusive (0-65535 when the port is left out). */
  lo: number;
  hi: number;
  /** A named port, looked up in the destination pod's container ports. */
  name: string | undefined;
}

/** One ingress or egress rule. */
export interface CompiledRule {
  /** No peers given: every peer. */
  anyPeer: boolean;
  /** Bit i set: view.pods[i] is a peer. */
  pods: Uint32Array;
  blocks: IpBlock[];
  /** No ports given: every port of every protocol. */
  anyPort: boolean;
  ports: PortMatch[];
}

/** What a rule's peers are resolved against. */
export interface PeerScope {
  pods: readonly ViewPod[];
  /** Indexes in `pods` by namespace (duplicate addresses left out). */
  podsIn: ReadonlyMap<string, readonly number[]>;
  /** Per pod, which distinct set of labels it has (pods of one Deployment share one): selectors are evaluated once per set. */
  labelSet: Int32Array;
  labelSets: number;
  namespaceLabels(ns: string): Record<string, string>;
}

/** Which of `indices` (into scope.pods) `sel` selects; `memo` (one byte per label set, 0 when not yet known) carries answers across calls. */
export function selectPods(sel: LabelSelector | undefined, indices: readonly number[], scope: PeerScope, memo: Uint8Array, each: (i: number) => void): void {
  for (const i of indices) {
    const set = scope.labelSet[i];
    if (memo[set] === 0) memo[set] = matches(sel, scope.pods[i].labels) ? 1 : 2;
    if (memo[set] === 1) each(i);
  }
}

const PROTOCOLS: Record<string, number> = { TCP: PROTO.TCP, UDP: PROTO.UDP, SCTP: PROTO.SCTP };

/** policyTypes, or what the API server fills when it is left out (for a view of unchecked objects). */
export function typesOf(p: NetworkPolicy): readonly string[] {
  const t = p.spec.policyTypes;
  if (Array.isArray(t) && t.length > 0) return t;
  return Array.isArray(p.spec.egress) && p.spec.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

type Rule = { from?: NetworkPolicyPeer[]; to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] };

/** One rule of a policy in namespace `ns`; `where` names it in problems ("policy x/p: spec.ingress[0]"). */
export function compileRule(ns: string, direction: "ingress" | "egress", r: Rule, where: string, scope: PeerScope, problems: string[]): CompiledRule {
  const peersAt = direction === "ingress" ? "from" : "to";
  const peers = r[peersAt];
  const ports = r.ports;
  const rule: CompiledRule = {
    anyPeer: peers === undefined || peers.length === 0,
    pods: new Uint32Array(Math.ceil(scope.pods.length / 32)),
    blocks: [],
    anyPort: ports === undefined || ports.length === 0,
    ports: [],
  };
  (peers ?? []).forEach((peer, i) => {
    const fault = compilePeer(ns, peer, rule, scope);
    if (fault) problems.push(`${where}.${peersAt}[${i}]: ${fault}: it matches nothing`);
  });
  (ports ?? []).forEach((port, i) => {
    const m = compilePort(port);
    if (typeof m === "string") problems.push(`${where}.ports[${i}]: ${m}: it matches nothing`);
    else rule.ports.push(m);
  });
  return rule;
}

function compilePeer(ns: string, peer: NetworkPolicyPeer, rule: CompiledRule, scope: PeerScope): string | undefined {
  const { podSelector, namespaceSelector, ipBlock } = peer;
  if (ipBlock != null) {
    if (podSelector != null || namespaceSelector != null) return "an ipBlock cannot be given with selectors";
    const block = compileBlock(ipBlock);
    if (typeof block === "string") return block;
    rule.blocks.push(block);
    return undefined;
  }
  if (podSelector == null && namespaceSelector == null) return "no podSelector, namespaceSelector or ipBlock";
  const namespaces = namespaceSelector ? [...scope.podsIn.keys()].filter((n) => matches(namespaceSelector, scope.namespaceLabels(n))) : [ns];
  const memo = new Uint8Array(scope.labelSets);
  for (const n of namespaces) selectPods(podSelector, scope.podsIn.get(n) ?? [], scope, memo, (i) => (rule.pods[i >>> 5] |= 1 << (i & 31)));
  return undefined;
}

/** An absent or empty selector matches everything (checked first: `{}` is common and matchesSelector allocates). */
export function matches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (sel === undefined || sel === null) return true;
  const empty = (sel.matchExpressions === undefined || sel.matchExpressions.length === 0) && (sel.matchLabels === undefined || Object.keys(sel.matchLabels).length === 0);
  return empty || matchesSelector(sel, labels);
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : ~0 << (32 - prefix);
}

function compileBlock(b: { cidr: string; except?: string[] }): IpBlock | string {
  const outer = parseCidr(b.cidr);
  if (typeof outer === "string") return `ipBlock.cidr: ${outer}`;
  const list = b.except ?? [];
  const except = new Int32Array(2 * list.length);
  for (let i = 0; i < list.length; i++) {
    const inner = parseCidr(list[i]);
    if (typeof inner === "string") return `ipBlock.except[${i}]: ${inner}`;
    except[2 * i] = inner.network | 0;
    except[2 * i + 1] = maskOf(inner.prefix);
  }
  return { network: outer.network | 0, mask: maskOf(outer.prefix), except };
}

function compilePort(p: NetworkPolicyPort): PortMatch | string {
  const proto = PROTOCOLS[p.protocol ?? "TCP"];
  if (proto === undefined) return `protocol ${JSON.stringify(p.protocol)} is not TCP, UDP or SCTP`;
  if (p.port === undefined || p.port === null) return { proto, lo: 0, hi: 65535, name: undefined };
  if (typeof p.port === "string") return p.endPort != null ? "endPort needs a numbered port" : { proto, lo: 0, hi: -1, name: p.port };
  return { proto, lo: p.port, hi: p.endPort ?? p.port, name: undefined };
}

/** Does the rule match the other end: its index in view.pods (-1 when not a pod) and its address? */
export function peerMatches(rule: CompiledRule, remote: number, remoteIp: number): boolean {
  if (rule.anyPeer) return true;
  if (remote >= 0 && ((rule.pods[remote >>> 5] >>> (remote & 31)) & 1) === 1) return true;
  const blocks = rule.blocks;
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (((remoteIp ^ b.network) & b.mask) === 0 && !inExcept(b.except, remoteIp)) return true;
  }
  return false;
}

function inExcept(ex: Int32Array, ip: number): boolean {
  for (let j = 0; j < ex.length; j += 2) if (((ip ^ ex[j]) & ex[j + 1]) === 0) return true;
  return false;
}

/** Does the rule match proto/port at the destination (its pod, undefined when not a pod)? */
export function portMatches(rule: CompiledRule, proto: number, port: number, dst: ViewPod | undefined): boolean {
  if (rule.anyPort) return true;
  const ports = rule.ports;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i];
    if (p.proto !== proto) continue;
    if (p.name === undefined ? port >= p.lo && port <= p.hi : dst !== undefined && namedPortIs(dst, p.name, proto, port)) return true;
  }
  return false;
}

function namedPortIs(pod: ViewPod, name: string, proto: number, port: number): boolean {
  const ports = pod.ports;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i];
    if (p.port === port && p.protocol === proto && p.name === name) return true;
  }
  return false;
}

/**
 * `tapnet check`: the lab's checks (lab/check.ts's ping and iperf3), run on a real node against
 * the cluster as this node's switch knows it. It asks the switch for its status (this node,
 * its pods, the other nodes) and the store for the Pods of other nodes (all of them with etcd,
 * none with a node's own file store; `--to` adds addresses by hand), then:
 *   - pings between every two of this node's pods, and between the node and each pod, both ways;
 *   - pings from every pod of this node to every other node (its address and its gateway, which
 *     only its switch answers for: the tunnel both ways) and to every other node's pod it knows,
 *     and from the node itself to those gateways and pods (its routes to other pod CIDRs);
 *   - moves TCP (iperf3) between this node's pods and from the node to each, checking that the
 *     server saw the client's own address (its servers started here for one transfer each, on
 *     port 5202: a demo pod's own server holds 5201);
 *   - moves TCP from every pod here to every other node's pod that serves iperf3 already: the
 *     demo pods vm/provision.sh makes (label app=tapnet-demo, tapnet-demo@.service) and --to's
 *     addresses, the far server's own report (--get-server-output) saying it saw the client
 *     pod's own address. Nothing is started on the other node: a check run on one node leaves
 *     nothing behind on any, and two nodes may check at once (a busy server is tried again).
 */
import { IPERF_PORT, ping, tcpToServer, tcpTransfer, type CheckResult, type Endpoint } from "../../lab/check.ts";
import { rpcCall } from "../../node/rpc.ts";
import { formatTable } from "../../node/table.ts";
import { preflight } from "../../node/preflight.ts";
import { formatIpv4, parseIpv4Address } from "../../wire/ipv4.ts";
import { parseCidr } from "../../wire/cidr.ts";
import { gatewayOf } from "../../node/ipam.ts";
import { intOption, UsageError, type Command } from "../args.ts";
import { controlOptions, controlPath } from "./pod.ts";
import type { NodeStatusAnswer } from "./status.ts";
import type { Pod } from "../../cluster/objects.ts";

const out = (s: string) => process.stdout.write(s + "\n");

/** The port of the iperf3 servers check starts here for one transfer: the demo pods' own hold IPERF_PORT. */
export const CHECK_PORT = IPERF_PORT + 1;
/** The label of the demo pods vm/provision.sh makes, whose iperf3 servers other nodes' checks use. */
export const DEMO_LABEL = { key: "app", value: "tapnet-demo" };
const err = (s: string) => process.stderr.write(s + "\n");

export const checkCommand: Command = {
  name: "check",
  summary: "ping and move TCP between this node, its pods and the rest of the cluster",
  details: [
    "The lab's checks, on a node of a real cluster: pings between this node's pods and the node, both ways, and from each",
    "pod to every other node (its address and its pod gateway, across the tunnel) and to every other node's pod the store",
    "knows (with etcd, all of them; with a node's own file store, none: give them with --to), and from the node to those",
    "gateways and pods; an iperf3 TCP transfer between this node's pods and from the node to each (servers started here",
    "on port 5202), the server seeing the client's own address; and TCP from each pod here to every other node's pod that",
    "serves iperf3 on port 5201 (the VM demo pods, label app=tapnet-demo, and the --to addresses), that server's own",
    "report saying it saw the client pod's own address. Nothing is started on other nodes.",
    "Exit status 1 if anything fails.",
    "",
    "Example: tapnet check --to 10.244.2.2,10.244.2.3",
  ].join("\n"),
  options: {
    ...controlOptions,
    to: { type: "string", value: "IP[,IP...]", help: "other nodes' pods to ping from every pod here and from the node, and to move TCP to from every pod here (each must serve iperf3 on port 5201, as the demo pods do)" },
    bytes: { type: "string", value: "N", help: "bytes of TCP per transfer", default: "2000000" },
    json: { type: "boolean", help: "print the results as one JSON object" },
  },
  async run(p) {
    const tcpBytes = intOption(p, "bytes", 1, 10_000_000_000);
    const extra = toOption(p.values.to);
    preflight(["root", "ip", "ping", "iperf3"]);
    const control = controlPath(p);
    const status = await rpcCall<NodeStatusAnswer>(control, "status", {}, 10_000);
    const remote = await rpcCall<Pod[]>(control, "objects.list", { kind: "Pod" }, 10_000).catch(() => [] as Pod[]);
    const plan = checkPlan(status, remote, extra);
    const results = await runChecks(plan, tcpBytes, p.values.json ? undefined : (r) => err(`${r.ok ? "ok  " : "FAIL"} ${r.test.padEnd(4)} ${r.from} -> ${r.to}`));
    const failed = results.filter((r) => !r.ok).length;
    if (p.values.json) {
      out(JSON.stringify({ ok: failed === 0, passed: results.length - failed, failed, results }, null, 2));
    } else {
      out(formatTable(["FROM", "TO", "TEST", "RESULT", "DETAIL"], results.map((r) => [r.from, r.to, r.test, r.ok ? "ok" : "FAIL", r.detail])));
      out(`\n${results.length - failed} passed, ${failed} failed`);
    }
    return failed ? 1 : 0;
  },
};

/** --to 10.244.2.2,10.244.2.3: IPv4 addresses, checked one by one. */
export function toOption(raw: unknown): string[] {
  if (raw === undefined) return [];
  const list = String(raw).split(",").map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new UsageError("--to needs addresses, as 10.244.2.2,10.244.2.3");
  for (const a of list) if (parseIpv4Address(a) === undefined) throw new UsageError(`--to: ${JSON.stringify(a)} is not an IPv4 address`);
  return [...new Set(list)];
}

/** What to check: this node and its pods (each in its namespace), and the targets beyond it. */
export interface CheckPlan {
  node: Endpoint;
  pods: Endpoint[];
  /** Other nodes' addresses: pinged from every pod here. */
  peers: Endpoint[];
  /** Other nodes' gateways, their pods, --to: pinged from every pod here and from the node. */
  remote: Endpoint[];
  /** Those of `remote` that serve iperf3 on IPERF_PORT (demo pods, --to): TCP from every pod here. */
  servers: Endpoint[];
  /** Pods of this node whose namespace `ip netns exec` cannot enter (not under /run/netns). */
  skipped: string[];
}

export function checkPlan(s: NodeStatusAnswer, storePods: Pod[], extra: string[]): CheckPlan {
  const me = s.node.name;
  const node: Endpoint = { name: me, netns: "", ip: s.node.address, sources: [s.node.address, s.node.gateway] };
  const pods: Endpoint[] = [];
  const skipped: string[] = [];
  for (const pod of s.pods) {
    // CNI pods' namespaces are paths (/run/netns/cni-…); `ip netns exec` takes the name.
    const netns = pod.netns.startsWith("/run/netns/") ? pod.netns.slice("/run/netns/".length) : pod.netns;
    if (netns.includes("/")) skipped.push(pod.name);
    else pods.push({ name: pod.name, netns, ip: pod.ip, sources: [pod.ip] });
  }
  const peers: Endpoint[] = [];
  const remote: Endpoint[] = [];
  const seen = new Set<string>([node.ip, s.node.gateway, ...pods.map((x) => x.ip)]);
  const servers: Endpoint[] = [];
  const add = (to: Endpoint[], name: string, ip: string, serves = false) => {
    if (seen.has(ip)) return;
    seen.add(ip);
    const e = { name, netns: "", ip, sources: [ip] };
    to.push(e);
    if (serves) servers.push(e);
  };
  const others = s.nodes.filter((n) => n.name !== me);
  for (const n of others) add(peers, n.name, n.address);
  for (const n of others) {
    const gw = gatewayFor(n.podCidr);
    if (gw) add(remote, `${n.name} gateway`, gw);
  }
  for (const pod of storePods) {
    const ip = pod.status?.podIP;
    const demo = pod.metadata.labels?.[DEMO_LABEL.key] === DEMO_LABEL.value;
    if (ip && pod.spec.nodeName && pod.spec.nodeName !== me) add(remote, `${pod.spec.nodeName}/${pod.metadata.name}`, ip, demo);
  }
  for (const ip of extra) add(remote, ip, ip, true);
  return { node, pods, peers, remote, servers, skipped };
}

/** A node's gateway (tapnet0) from its pod CIDR, as ipam.ts gives it; none for a CIDR that does not parse. */
function gatewayFor(cidr: string): string | undefined {
  const c = parseCidr(cidr);
  return typeof c === "string" ? undefined : formatIpv4(gatewayOf(c));
}

export async function runChecks(plan: CheckPlan, tcpBytes: number, progress?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const record = (r: CheckResult) => { results.push(r); progress?.(r); };
  if (plan.skipped.length) err(`left out: ${plan.skipped.join(", ")} (namespaces not under /run/netns)`);
  const { node, pods, peers, remote } = plan;
  for (const a of pods) for (const b of pods) if (a !== b) record(await ping(a, b));
  for (const p of pods) {
    record(await ping(node, p));
    record(await ping(p, node));
  }
  for (const p of pods) for (const t of [...peers, ...remote]) record(await ping(p, t));
  for (const t of remote) record(await ping(node, t));
  for (let i = 0; i < pods.length; i++) for (let j = i + 1; j < pods.length; j++) record(await tcpTransfer(pods[i], pods[j], tcpBytes, pods[i].sources, CHECK_PORT));
  for (const p of pods) record(await tcpTransfer(node, p, tcpBytes, node.sources, CHECK_PORT));
  for (const p of pods) for (const t of plan.servers) record(await tcpToServer(p, t, tcpBytes));
  return results;
}

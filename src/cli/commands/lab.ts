/** `tapnet lab up|status|check|down`, `tapnet lab node add|stop|start` and `tapnet lab etcd stop|start`: a cluster of namespaces on this machine. */
import { isDeno } from "../../io/runtime.ts";
import { backendNames } from "../../tunnel/index.ts";
import { labCheck, stoppedNodes, type CheckResult } from "../../lab/check.ts";
import { labDown, labUp } from "../../lab/lab.ts";
import { labNodeAdd, labNodeStart, labNodeStop } from "../../lab/nodes.ts";
import { labEtcd } from "../../lab/lab-etcd.ts";
import { checkLabOptions, checkPrefix, DEFAULT_LEASE_TTL, LAB_MODES, LAB_STORES, LabError, readLabState, type LabOptions } from "../../lab/plan.ts";
import { labStatus, type LabStatus, type SwitchStatus } from "../../lab/status.ts";
import { preflight } from "../../node/preflight.ts";
import { choiceOption, intOption, UsageError, type Command, type Parsed } from "../args.ts";
import { formatTable } from "../../node/table.ts";

const prefixOption = { type: "string", value: "NAME", help: "names the lab: its namespaces are NAME-underlay, NAME-node1, NAME-node1-pod1, ...", default: "tapnet" } as const;
const out = (s: string) => process.stdout.write(s + "\n");
const err = (s: string) => process.stderr.write(s + "\n");
const downHint = (prefix: string) => `tapnet lab down${prefix === "tapnet" ? "" : ` --prefix ${prefix}`}`;

export const labUpCommand: Command = {
  name: "lab up",
  summary: "create a cluster of namespaces on this machine and wait until it forwards",
  options: {
    nodes: { type: "string", value: "N", help: "how many nodes", default: "2" },
    pods: { type: "string", value: "P", help: "pods per node", default: "2" },
    prefix: prefixOption,
    mode: { type: "string", value: "MODE", help: "how nodes are built: tapnet (tapnet switches), kernel-vxlan (plain Linux nodes, VXLAN as flannel sets it up) or host-gw (plain Linux nodes routing pod CIDRs over the underlay, no encapsulation)", default: "tapnet" },
    backend: { type: "string", value: "TYPE", help: `how tapnet nodes reach each other: ${backendNames().join(" or ")} (kernel-vxlan is always vxlan; host-gw has none; --kernel-node needs vxlan)`, default: "tapnet" },
    runtime: { type: "string", value: "RT", help: "what runs the switches: node or deno", default: isDeno ? "deno" : "node" },
    "kernel-node": { type: "string", value: "K", help: "make node K a plain Linux node (bridge, veth pods, VXLAN as flannel sets it up); needs --backend vxlan" },
    "no-pin": { type: "boolean", help: "leave the switches' datapath threads to the scheduler instead of pinning each to a CPU" },
    store: { type: "string", value: "STORE", help: "where the cluster's state lives: file (a directory in the lab's; every pod CIDR in cluster.yaml) or etcd (a real etcd in the underlay; each switch leases its pod CIDR there)", default: "file" },
    "lease-ttl": { type: "string", value: "SECONDS", help: `--store etcd: how long a node's subnet lease lives without renewal (default: ${DEFAULT_LEASE_TTL})` },
    insecure: { type: "boolean", help: "tapnet backend: send the tunnel's datagrams in the clear (backend.insecure: true) instead of sealing them with the lab's own secret" },
  },
  details: [
    "Nodes and pods are network namespaces; each node runs a tapnet switch whose TAP ports are the pods' eth0.",
    "With --mode kernel-vxlan or host-gw the same nodes, pods and addresses are built from the kernel's own bridge, veths",
    "and VXLAN or routes instead, for comparison (tapnet bench).",
    "Nodes share an underlay (a bridge in <prefix>-underlay, 192.168.56.0/24); <prefix>-outside, beyond node1 at",
    "203.0.113.2, stands for the world outside the cluster.",
    "Each switch's datapath thread is pinned to a CPU (tapnet switch --cpu), the nodes spread over the CPUs this process",
    "may use, round-robin: as on separate machines, each node's forwarding has a CPU of its own rather than queueing",
    "behind the other nodes' and the pods' work. --no-pin leaves them to the scheduler.",
    "With --store etcd, an etcd runs in the underlay namespace at 192.168.56.2:2379; cluster.yaml lists no nodes, each switch",
    "leases the lowest free pod CIDR there and learns its peers there, and `tapnet lab node add|stop|start` change the cluster",
    "while it runs. --store etcd is for --mode tapnet without --kernel-node.",
    "The lab's journal, cluster config, store and logs are kept in /run/tapnet/<prefix>/. Remove it all with `tapnet lab down`.",
  ].join("\n"),
  async run(p) {
    const nodes = intOption(p, "nodes", 1, 16);
    const pods = intOption(p, "pods", 0, 64);
    const mode = choiceOption(p, "mode", LAB_MODES);
    const backend = mode === "kernel-vxlan" ? "vxlan" : choiceOption(p, "backend", backendNames());
    const runtime = choiceOption(p, "runtime", ["node", "deno"] as const);
    const kernelNode = p.values["kernel-node"] === undefined ? undefined : intOption(p, "kernel-node", 1, nodes);
    const store = choiceOption(p, "store", LAB_STORES);
    const leaseTtl = p.values["lease-ttl"] === undefined ? undefined : intOption(p, "lease-ttl", 2, 3600);
    const prefix = String(p.values.prefix);
    const insecure = p.values.insecure === true;
    usageCheck({ mode, nodes, pods, prefix, backend, runtime, kernelNode, store, leaseTtl, insecure });
    preflight(["root", ...(mode === "tapnet" ? ["tun" as const, "nsenter" as const] : []), "ip", "ping", ...(nodes > 1 || kernelNode || mode !== "tapnet" ? ["nft" as const] : [])]);
    const abort = new AbortController();
    const onSignal = () => { err("interrupted: removing what the lab made so far"); abort.abort(); };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const state = await labUp({ mode, nodes, pods, prefix, backend, runtime, kernelNode, store, leaseTtl, insecure, pin: !p.values["no-pin"], progress: (l) => err(l), signal: abort.signal });
      out(`lab ${prefix} is up: ${state.nodes.length} node(s), ${state.pods.length} pod(s), ${mode === "tapnet" ? `backend ${backend}, store ${store}` : mode === "host-gw" ? "plain Linux nodes, host-gw" : "plain Linux nodes, kernel VXLAN"}`);
      out("next: tapnet lab status | tapnet lab check | " + downHint(prefix));
      return 0;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};

/** --prefix, checked as a lab's name: a bad one is wrong usage (exit 2), found before preflight. */
export function labPrefix(p: Parsed): string {
  const prefix = String(p.values.prefix ?? "tapnet");
  try {
    checkPrefix(prefix);
  } catch (e) {
    throw e instanceof LabError ? new UsageError(e.message) : e;
  }
  return prefix;
}

/** Options that do not go together (--kernel-node without --backend vxlan, ...) are wrong usage: exit 2, before preflight. */
function usageCheck(opts: LabOptions): void {
  try {
    checkLabOptions(opts);
  } catch (e) {
    throw e instanceof LabError ? new UsageError(`${e.message} (see tapnet lab up --help)`) : e;
  }
}

export const labStatusCommand: Command = {
  name: "lab status",
  summary: "show the lab's nodes, pods, learned MACs and drops",
  options: {
    prefix: prefixOption,
    json: { type: "boolean", help: "print one JSON object: {nodes:[...], pods:[...], ...}" },
  },
  async run(p) {
    const prefix = labPrefix(p);
    const s = await labStatus(prefix);
    if (!s) {
      err(`no lab named ${prefix} is up (start one with tapnet lab up)`);
      return 1;
    }
    if (p.values.json) {
      out(JSON.stringify(s, null, 2));
      return 0;
    }
    out(s.mode === "tapnet"
      ? `lab ${s.prefix}: ${s.nodes.length} node(s), ${s.pods.length} pod(s), backend ${s.backend}, switches run on ${s.runtime}${s.store ? `, store ${s.store.url}` : ""}\n`
      : `lab ${s.prefix}: ${s.nodes.length} node(s), ${s.pods.length} pod(s), mode ${s.mode}: plain Linux nodes, no switches\n`);
    out(formatTable(["NODE", "NETNS", "ADDRESS", "POD CIDR", "GATEWAY", "PID", "SWITCH"], s.nodes.map((n) => {
      const sw = s.switches[n.name];
      const state = "kernel" in sw ? (s.mode === "host-gw" ? "none: plain Linux (cni0, host-gw routes)" : "none: plain Linux (cni0, flannel.1)")
        : "stopped" in sw ? `stopped (tapnet lab node start ${n.name})` : "error" in sw ? `down: ${sw.error}` : `running${restarts(s.supervisors[n.name])}`;
      return [n.name, n.netns, n.address, n.podCidr, n.gateway, n.pid ? String(n.pid) : "-", state];
    })));
    if (s.outside) out(`outside: ${s.outside.netns} at ${s.outside.address}, reached through node1`);
    out("");
    const switches = Object.entries(s.switches).filter((e): e is [string, SwitchStatus] => "fdb" in e[1]);
    const learned = new Map<string, string>();
    for (const [node, sw] of switches) {
      for (const e of sw.fdb) learned.set(e.mac, `${node} port ${e.port}, ${Math.round(e.age)}s ago`);
    }
    out(formatTable(["POD", "NETNS", "NODE", "IP", "MAC", "IFNAME", "LEARNED"], s.pods.map((pod) =>
      [pod.name, pod.netns, pod.node, pod.ip, pod.mac, pod.ifname, learned.get(pod.mac) ?? (s.kernelNodes.includes(pod.node) ? "(kernel bridge)" : "not yet (no traffic)")])));
    for (const [node, sw] of switches) {
      out(`\n${node} FDB: ${sw.fdb.length} entr${sw.fdb.length === 1 ? "y" : "ies"}`);
      out(formatTable(["MAC", "PORT", "DEVICE", "POD", "AGE"], sw.fdb.map((e) => [e.mac, String(e.port), e.device ?? "?", e.pod ?? "-", `${Math.round(e.age)}s`])));
      const drops = sw.ports.flatMap((pt) => Object.entries(pt.counters).filter(([k, v]) => k.startsWith("drop_") && v).map(([k, v]) => `${pt.pod ?? pt.ifname} ${k.slice(5)}=${v}`));
      if (sw.tunnel) {
        const t = sw.tunnel;
        drops.push(...Object.entries(t).filter(([k, v]) => k.startsWith("drop_") && v).map(([k, v]) => `tunnel ${k.slice(5)}=${v}`));
        out(`${node} tunnel: ${t.rx_frames} datagrams in, ${t.tx_frames} out; routed ${sw.counters.routed}, delivered ${sw.counters.delivered}${sw.counters.coalesced ? `, among them super-frames merged from ${sw.counters.coalesced} segments` : ""}, ICMP errors sent ${sw.counters.icmp_sent}`);
      }
      out(`${node} drops: ${drops.length ? drops.join(", ") : "none"}`);
    }
    return 0;
  },
};

/** ", restarted 2 times (last: killed by SIGKILL)" when the node's supervisor restarted its switch. */
function restarts(sup: LabStatus["supervisors"][string] | undefined): string {
  if (!sup || "error" in sup || !sup.restarts) return "";
  return `, restarted ${sup.restarts} time${sup.restarts === 1 ? "" : "s"}${sup.lastExit ? ` (last: ${sup.lastExit.how})` : ""}`;
}

export const labCheckCommand: Command = {
  name: "lab check",
  summary: "ping and move TCP between all pods and nodes",
  details: "Pings every ordered pair of pods and every node and pod both ways, and runs an iperf3 TCP transfer between every pair,\nchecking that the server saw the client's own address. Exit status 1 if anything fails.",
  options: {
    prefix: prefixOption,
    bytes: { type: "string", value: "N", help: "bytes of TCP per transfer", default: "2000000" },
    json: { type: "boolean", help: "print the results as one JSON object" },
  },
  async run(p) {
    const tcpBytes = intOption(p, "bytes", 1, 10_000_000_000);
    const prefix = labPrefix(p);
    preflight(["root", "ip", "ping", "iperf3"]);
    const state = readLabState(prefix);
    if (!state) {
      err(`no lab named ${prefix} is up (start one with tapnet lab up)`);
      return 1;
    }
    const stopped = stoppedNodes(state);
    if (stopped.length) err(`left out, as their switches are stopped: ${stopped.join(", ")} and their pods${state.outside && stopped.includes(state.nodes[0].name) ? `, and the outside (reached through ${state.nodes[0].name})` : ""}`);
    const results = await labCheck(state, { tcpBytes, progress: p.values.json ? undefined : (r) => err(`${r.ok ? "ok  " : "FAIL"} ${r.test.padEnd(4)} ${r.from} -> ${r.to}`) });
    const failed = results.filter((r) => !r.ok).length;
    if (p.values.json) {
      out(JSON.stringify({ ok: failed === 0, passed: results.length - failed, failed, results }, null, 2));
    } else {
      out(formatTable(["FROM", "TO", "TEST", "RESULT", "DETAIL"], results.map((r: CheckResult) => [r.from, r.to, r.test, r.ok ? "ok" : "FAIL", r.detail])));
      out(`\n${results.length - failed} passed, ${failed} failed`);
    }
    return failed ? 1 : 0;
  },
};

export const labDownCommand: Command = {
  name: "lab down",
  summary: "remove everything the lab made",
  details: "Stops the lab's switches and deletes every namespace in its journal, by name. Safe to run twice, or when no lab is up.",
  options: { prefix: prefixOption },
  async run(p) {
    const prefix = labPrefix(p);
    preflight(["root", "ip"]);
    const r = await labDown(prefix, (l) => err(l));
    out(r.removed ? `lab ${prefix} removed` : `no lab named ${prefix} was up; nothing to do`);
    return 0;
  },
};

const nodeNameOf = (p: { positionals: string[] }, cmd: string): string => {
  const name = p.positionals[0];
  if (!name) throw new UsageError(`tapnet ${cmd} needs the node's name, e.g. node2 (see tapnet ${cmd} --help)`);
  return name;
};

export const labNodeAddCommand: Command = {
  name: "lab node add",
  summary: "add a node to a lab on the etcd store; it leases a pod CIDR and joins with no restart",
  details: "The new node is node<N+1>: its namespace, a link to the underlay at 192.168.56.<10+N+1>, and its switch, started as the\nothers were. It leases the lowest free pod CIDR from the lab's etcd; the other switches learn it from there.\nA lab on the file store has the nodes of its cluster.yaml and cannot grow.",
  options: {
    prefix: prefixOption,
    pods: { type: "string", value: "P", help: "pods on the new node, named <prefix>-node<i>-pod<j> (default: as many as node1 has)" },
  },
  async run(p) {
    const pods = p.values.pods === undefined ? undefined : intOption(p, "pods", 0, 64);
    const prefix = labPrefix(p);
    preflight(["root", "tun", "nsenter", "ip", "ping"]);
    const { state, node } = await labNodeAdd(prefix, { pods, progress: (l) => err(l) });
    out(`${node.name} joined lab ${prefix}: address ${node.address}, pod CIDR ${node.podCidr}, switch pid ${node.pid}, ${state.pods.filter((x) => x.node === node.name).length} pod(s)`);
    return 0;
  },
};

/** `lab node stop|start NAME`. */
function nodeCommand(action: "stop" | "start"): Command {
  return {
    name: `lab node ${action}`,
    summary: action === "stop"
      ? "stop a lab node's switch (its namespaces stay; on etcd its lease expires after the TTL)"
      : "start a stopped lab node's switch again, as it was started; its pods are attached again",
    positionals: "NAME",
    options: { prefix: prefixOption },
    async run(p) {
      const name = nodeNameOf(p, `lab node ${action}`);
      const prefix = labPrefix(p);
      preflight(action === "stop" ? ["root"] : ["root", "tun", "nsenter", "ip", "ping"]);
      if (action === "stop") {
        await labNodeStop(prefix, name, (l) => err(l));
        out(`${name}'s switch is stopped; start it again with tapnet lab node start ${name}${prefix === "tapnet" ? "" : ` --prefix ${prefix}`}`);
      } else {
        const node = await labNodeStart(prefix, name, (l) => err(l));
        out(`${name}'s switch is running: pid ${node.pid}, pod CIDR ${node.podCidr}`);
      }
      return 0;
    },
  };
}

export const labNodeStopCommand = nodeCommand("stop");
export const labNodeStartCommand = nodeCommand("start");

function etcdCommand(action: "stop" | "start"): Command {
  return {
    name: `lab etcd ${action}`,
    summary: action === "stop"
      ? "stop the lab's etcd (lab up --store etcd): the switches keep forwarding on what they have, and retry"
      : "start the lab's etcd again, on its data: the switches reconnect and apply what changed",
    options: { prefix: prefixOption },
    async run(p) {
      const prefix = labPrefix(p);
      preflight(["root"]);
      await labEtcd(prefix, action, (l) => err(l));
      return 0;
    },
  };
}

export const labEtcdStopCommand = etcdCommand("stop");
export const labEtcdStartCommand = etcdCommand("start");

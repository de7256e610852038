/**
 * `tapnet status`: what a person on a node asks first. It reads this node's switch over its
 * control socket (the `status` answer of node-status.ts) and prints the node (address, pod
 * CIDR, gateway, backend, pid), its pods with their ports' counters, the nodes it forwards to
 * (its peers), the tunnel's counters and every drop that is not zero. `--wait S` waits until the
 * switch answers (tapnet.service's ExecStartPost uses it, so that `systemctl start` returns
 * once the switch is up); `--quiet` prints nothing, the exit status says it all.
 */
import type { ThreadStat } from "../../io/thread-stat.ts";
import { rpcCall, RpcError } from "../../node/rpc.ts";
import { formatTable } from "../../node/table.ts";
import { intOption, type Command } from "../args.ts";
import { controlOptions, controlPath } from "./pod.ts";

/** The part of the switch's `status` answer this command prints. */
export interface NodeStatusAnswer {
  node: { name: string; address: string; podCidr: string; gateway: string; gatewayMac: string; podMtu: number; backend: string; pid: number; runtime: string };
  pods: { name: string; namespace: string; netns: string; ip: string; mac: string; ifname: string; port: number }[];
  nodes: { name: string; address: string; podCidr: string }[];
  store?: { description: string; cluster: string };
  ports: { port: number; ifname: string; role: string; pod?: string; counters: Record<string, number> }[];
  fdb: unknown[];
  counters: Record<string, number>;
  tunnel?: Record<string, number>;
  memory?: { rss: number; datapathThread?: ThreadStat };
}

const out = (s: string) => process.stdout.write(s + "\n");

export const statusCommand: Command = {
  name: "status",
  summary: "this node's switch: its pods, peers and counters",
  details: [
    "Asks the switch running on this machine (or the one --node or --control names) over its control socket.",
    "Exit status 1 when no switch answers.",
    "",
    "Example: tapnet status --wait 30      # as tapnet.service's start does: wait until the switch answers",
  ].join("\n"),
  options: {
    ...controlOptions,
    json: { type: "boolean", help: "print the switch's whole answer as one JSON object" },
    wait: { type: "string", value: "SECONDS", help: "wait up to this long for the switch to answer (default: ask once)" },
    quiet: { type: "boolean", help: "print nothing: the exit status says whether the switch answered" },
  },
  async run(p) {
    const waitMs = p.values.wait === undefined ? 0 : intOption(p, "wait", 0, 3600) * 1000;
    const s = await askUntil(() => rpcCall<NodeStatusAnswer>(controlPath(p), "status", {}, 10_000), waitMs);
    if (p.values.quiet) return 0;
    out(p.values.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    return 0;
  },
};

/**
 * Calls `ask` until it answers or `waitMs` have passed; the last error is thrown. With no wait,
 * one call. Errors other than the switch being unreachable (a usage error) are thrown at once.
 */
export async function askUntil<T>(ask: () => Promise<T>, waitMs: number, pauseMs = 200): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await ask();
    } catch (e) {
      if (!(e instanceof RpcError) || Date.now() + pauseMs > deadline) throw e;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
}

/** The status as a person reads it: a header, then pods, peers, tunnel and drops. */
export function formatStatus(s: NodeStatusAnswer): string {
  const n = s.node;
  const lines = [
    `node ${n.name}: address ${n.address}, pod CIDR ${n.podCidr}, gateway ${n.gateway} (tapnet0), backend ${n.backend}, pod MTU ${n.podMtu}`,
    `switch: pid ${n.pid} on ${n.runtime}${s.memory ? `, ${Math.round(s.memory.rss / 1048576)} MB resident` : ""}${s.store ? `; store ${s.store.description}, cluster ${s.store.cluster}` : ""}`,
  ];
  const t = s.memory?.datapathThread;
  if (t) lines.push(`datapath thread: ${(t.cpuMs / 1000).toFixed(1)} s of CPU, ${(t.waitMs / 1000).toFixed(1)} s waiting for one; woken ${t.sleeps} times, preempted ${t.preempted}`);
  lines.push("");
  const byPort = new Map(s.ports.map((pt) => [pt.port, pt]));
  lines.push(`pods: ${s.pods.length}`);
  if (s.pods.length) {
    lines.push(formatTable(["NAMESPACE", "POD", "IP", "MAC", "NETNS", "PORT", "RX", "TX"], s.pods.map((pod) => {
      const c = byPort.get(pod.port)?.counters ?? {};
      return [pod.namespace, pod.name, pod.ip, pod.mac, pod.netns, pod.port >= 0 ? String(pod.port) : "-", traffic(c.rx_frames, c.rx_bytes), traffic(c.tx_frames, c.tx_bytes)];
    })));
  }
  const peers = s.nodes.filter((x) => x.name !== n.name);
  lines.push("", `peers: ${peers.length} other node${peers.length === 1 ? "" : "s"}`);
  if (peers.length) lines.push(formatTable(["NODE", "ADDRESS", "POD CIDR"], peers.map((x) => [x.name, x.address, x.podCidr])));
  const c = s.counters;
  lines.push("");
  if (s.tunnel) {
    const t = s.tunnel;
    lines.push(`tunnel: ${t.rx_frames ?? 0} datagrams in (${bytes(t.rx_bytes)}), ${t.tx_frames ?? 0} out (${bytes(t.tx_bytes)})`);
  } else {
    lines.push("tunnel: none (no other node)");
  }
  lines.push(`forwarding: routed ${c.routed ?? 0}, delivered ${c.delivered ?? 0}, ICMP errors sent ${c.icmp_sent ?? 0}, flows active ${c.flows_active ?? 0}, MACs learned ${s.fdb.length}`);
  lines.push(`drops: ${drops(s)}`);
  return lines.join("\n");
}

/** Every drop counter that is not zero, by port (pod, device or tunnel) and reason. */
export function drops(s: NodeStatusAnswer): string {
  const found: string[] = [];
  for (const pt of s.ports) {
    for (const [k, v] of Object.entries(pt.counters)) if (k.startsWith("drop_") && v) found.push(`${pt.pod ?? pt.ifname} ${k.slice(5)}=${v}`);
  }
  for (const [k, v] of Object.entries(s.tunnel ?? {})) if (k.startsWith("drop_") && v) found.push(`tunnel ${k.slice(5)}=${v}`);
  for (const [k, v] of Object.entries(s.counters)) if (/^(conntrack_|policy_denied|fdb_full)/.test(k) && v) found.push(`${k}=${v}`);
  return found.length ? found.join(", ") : "none";
}

function traffic(frames: number | undefined, b: number | undefined): string {
  return `${frames ?? 0} (${bytes(b)})`;
}

/** 1536 → "1.5 KB". */
export function bytes(n: number | undefined): string {
  const v = n ?? 0;
  if (v < 1024) return `${v} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let x = v / 1024;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x < 10 ? x.toFixed(1) : Math.round(x)} ${units[i]}`;
}

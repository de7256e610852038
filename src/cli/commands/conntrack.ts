/**
 * `tapnet conntrack list`: the flows in a switch's connection tracking table, one a line as
 * `conntrack -L` prints them (protocol, its number, seconds left, TCP state, the original tuple,
 * [UNREPLIED] when no reply came yet, the reply tuple), then tapnet's own marks: [DENIED] for a
 * flow a NetworkPolicy refused, [service NS/NAME:PORT] for a flow to a Service's ClusterIP (its
 * reply tuple then comes from the endpoint). `-o wide` adds each direction's packets and bytes,
 * as conntrack does with accounting on; `-o json` prints the switch's FlowInfo objects.
 * Which switches: see switchTargets in cluster-client.ts (a lab: each of its switches, a block
 * each). As conntrack does, the count goes to stderr, so that stdout holds flows only.
 */
import type { FlowInfo, TupleInfo } from "../../switch/conntrack/flow-info.ts";
import { choiceOption, type Command } from "../args.ts";
import { callSwitch, switchOptions, switchTargets } from "./cluster-client.ts";

const out = (s: string) => process.stdout.write(s + "\n");
const err = (s: string) => process.stderr.write(s + "\n");

/** One direction's tuple as conntrack prints it; ICMP echo: type, code and id. */
function tuple(f: FlowInfo, t: TupleInfo): string {
  const addrs = `src=${t.src} dst=${t.dst}`;
  if (f.protocol === "icmp") return `${addrs} type=${t.dport} code=0 id=${t.sport}`;
  if (f.protocol === "other") return addrs;
  return `${addrs} sport=${t.sport} dport=${t.dport}`;
}

/** A flow as one line of `conntrack -L` (see the top of this file). */
export function formatFlow(f: FlowInfo, wide = false): string {
  const name = f.protocol === "other" ? "unknown" : f.protocol;
  const parts = [`${name.padEnd(8)} ${f.proto} ${f.expiresIn}`];
  if (f.protocol === "tcp") parts.push(f.state.toUpperCase());
  parts.push(tuple(f, f.original));
  if (wide) parts.push(`packets=${f.packets[0]} bytes=${f.bytes[0]}`);
  if (f.packets[1] === 0) parts.push("[UNREPLIED]");
  parts.push(tuple(f, f.reply));
  if (wide) parts.push(`packets=${f.packets[1]} bytes=${f.bytes[1]}`);
  if (f.verdict === "denied") parts.push("[DENIED]");
  if (f.service) parts.push(`[service ${f.service}]`);
  return parts.join(" ");
}

const plural = (n: number) => `${n} flow${n === 1 ? "" : "s"}`;

export const conntrackListCommand: Command = {
  name: "conntrack list",
  summary: "list the flows in a switch's connection tracking table (conntrack -L)",
  options: {
    output: { type: "string", short: "o", value: "FORMAT", help: "wide (each direction's packets and bytes) or json (the flows as objects)" },
    ...switchOptions,
  },
  details: [
    "One flow a line, as conntrack -L prints it:",
    "  tcp      6 86397 ESTABLISHED src=10.244.1.2 dst=10.96.0.10 sport=40000 dport=80 src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [service default/web:80]",
    "the protocol and its number, the seconds until the flow expires unless a packet comes, the TCP state (NEW,",
    "ESTABLISHED or CLOSING), the first packet's addresses and ports, [UNREPLIED] while no reply came, then the replies'",
    "(a Service's flow: from the endpoint it went to). ICMP echo shows type, code and id. [DENIED]: a NetworkPolicy",
    "refused the flow; its packets are dropped. The count goes to stderr.",
    "",
    "Without --node or --control, every switch of the lab that is up is listed, a block each; -o json then gives",
    "each flow a \"node\" field.",
    "",
    "Examples:",
    "  tapnet conntrack list",
    "  tapnet conntrack list --node node1 -o wide",
    "  tapnet conntrack list --control /run/tapnet/vm1.sock -o json",
  ].join("\n"),
  async run(p) {
    const format = p.values.output === undefined ? "plain" : choiceOption(p, "output", ["wide", "json"] as const);
    const targets = switchTargets(p);
    const several = targets.length > 1;
    const counts: string[] = [];
    const all: (FlowInfo & { node?: string })[] = [];
    let total = 0;
    let blocks = 0;
    let failed = false;
    for (const t of targets) {
      let flows: FlowInfo[];
      try {
        flows = await callSwitch<FlowInfo[]>(t, "conntrack.list", {}, "connection tracking");
      } catch (e) {
        if (!several) throw e;
        err(`tapnet: ${t.node}: ${(e as Error).message}`);
        failed = true;
        continue;
      }
      total += flows.length;
      counts.push(`${t.node} ${flows.length}`);
      if (format === "json") {
        all.push(...(several ? flows.map((f) => ({ node: t.node, ...f })) : flows));
        continue;
      }
      if (several) out(`${blocks++ > 0 ? "\n" : ""}${t.node}:`);
      for (const f of flows) out(formatFlow(f, format === "wide"));
    }
    if (format === "json") out(JSON.stringify(all, null, 2));
    err(`tapnet conntrack: ${plural(total)} shown (${several ? counts.join(", ") || "no switch answered" : targets[0].node}).`);
    return failed ? 1 : 0;
  },
};

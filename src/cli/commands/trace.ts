/**
 * `tapnet trace --from POD --to POD|IP`: sends probes from one pod (pings, or with --proto tcp|udp
 * --port P a connection or a datagram) and shows their journey hop by hop, through every switch
 * they cross, both ways. The trace itself (arm every switch, probe, read, disarm) is
 * cli/trace/run.ts; this prints the journey (cli/trace/journey.ts): at each hop the time since
 * the first, the node, the stage, what it did with the packet, and the headers and what changed
 * in them. `--json` prints the hops and each switch's raw records; `--pcapng FILE` writes the
 * hops for Wireshark (cli/trace/pcapng-out.ts).
 */
import { writeFileSync } from "node:fs";
import { parseIpv4Address } from "../../wire/ipv4.ts";
import { runtimeName } from "../../io/runtime.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";
import { formatJourney } from "../trace/journey.ts";
import { journeyPcapng } from "../trace/pcapng-out.ts";
import { clusterPods, findPod, runTrace } from "../trace/run.ts";
import { switchOptions, switchTargets } from "./cluster-client.ts";

const out = (s: string) => process.stdout.write(s + "\n");

export const traceCommand: Command = {
  name: "trace",
  summary: "send a probe from a pod and show its journey through every switch, hop by hop",
  options: {
    from: { type: "string", value: "POD", help: "the pod that sends (NAME or NAMESPACE/NAME)" },
    to: { type: "string", value: "POD|IP", help: "the pod, or the address, it pings" },
    proto: { type: "string", value: "PROTO", help: "icmp (pings), tcp (a connection opened and closed) or udp (one datagram)", default: "icmp" },
    port: { type: "string", value: "P", help: "the destination port for tcp and udp" },
    count: { type: "string", value: "N", help: "how many pings, connections or datagrams (1 to 20)", default: "1" },
    json: { type: "boolean", help: "print the hops and every switch's records as JSON" },
    pcapng: { type: "string", value: "FILE", help: "also write the hops to FILE for Wireshark: an interface per place, the same packet id on every hop of a packet" },
    ...switchOptions,
  },
  details: [
    "Arms a trace on every switch of the cluster (the protocol between the two addresses, both ways), sends the probes",
    "(ping; bash's /dev/tcp or /dev/udp for tcp and udp), reads what each",
    "switch recorded and disarms them. Each line is one stage that touched a packet: the µs since the first hop, the",
    "node, the stage (tunnel-in reads a pod's frames, route decides whether it leaves the node, tunnel-out",
    "encapsulates it, deliver takes it from the tunnel to a pod, port-out writes it to the pod's TAP; see the top",
    "of src/switch/datapath.ts), what it did, then the packet's headers and what changed (TTL 64 → 63: the switch",
    "routed it). A pod's other pings to the same address at the same time are traced too.",
    "",
    "Examples:",
    "  tapnet trace --from node1-pod1 --to node2-pod1",
    "  tapnet trace --from default/web --to 10.244.2.3 --count 3 --json",
    "  tapnet trace --from node1-pod1 --to node2-pod1 --proto tcp --port 80",
    "  tapnet trace --from node1-pod1 --to node2-pod1 --pcapng trace.pcapng && tshark -r trace.pcapng",
  ].join("\n"),
  async run(p) {
    if (p.values.from === undefined || p.values.to === undefined) throw new UsageError("--from POD and --to POD|IP are required (see tapnet trace --help)");
    const count = intOption(p, "count", 1, 20);
    const targets = switchTargets(p);
    const pods = await clusterPods(targets);
    const from = findPod(pods, String(p.values.from));
    if (!from) throw new UsageError(`--from ${p.values.from}: no such pod on ${targets.map((t) => t.node).join(", ")} (tapnet pod list shows them)`);
    const toRef = String(p.values.to);
    const toPod = findPod(pods, toRef);
    const toIp = toPod?.ip ?? (parseIpv4Address(toRef) !== undefined ? toRef : undefined);
    if (!toIp) throw new UsageError(`--to ${toRef}: neither a pod on ${targets.map((t) => t.node).join(", ")} nor an IPv4 address`);
    const proto = choiceOption(p, "proto", ["icmp", "tcp", "udp"] as const);
    if (proto !== "icmp" && p.values.port === undefined) throw new UsageError(`--proto ${proto} needs --port P, the destination port`);
    if (proto === "icmp" && p.values.port !== undefined) throw new UsageError("--port is for --proto tcp or udp: ICMP has no ports");
    const port = proto === "icmp" ? 0 : intOption(p, "port", 1, 65535);
    const { hops, traces, probeOutput: ping } = await runTrace(targets, { from, toIp, ...(toPod ? { toPod } : {}), proto, port, count });
    if (p.values.pcapng !== undefined) {
      const file = String(p.values.pcapng);
      writeFileSync(file, journeyPcapng(hops, `tapnet (${runtimeName})`));
      process.stderr.write(`wrote ${file}: ${hops.length} packets, one interface per place they were seen\n`);
    }
    if (p.values.json) {
      out(JSON.stringify({ from: { pod: from.name, ip: from.ip, node: from.node }, to: { ...(toPod ? { pod: toPod.name, node: toPod.node } : {}), ip: toIp }, hops, switches: traces.map((x) => ({ node: x.node, records: x.records, lost: x.lost })) }, null, 2));
      return hops.length ? 0 : 1;
    }
    const what = proto === "icmp" ? `ICMP echo, ${count} ping${count === 1 ? "" : "s"}` : proto === "tcp" ? `TCP to port ${port}, ${count} connection${count === 1 ? "" : "s"}` : `UDP to port ${port}, ${count} datagram${count === 1 ? "" : "s"}`;
    out(`trace ${from.name} (${from.ip}, ${from.node}) → ${toPod ? `${toPod.name} (${toIp}, ${toPod.node})` : toIp}: ${what}`);
    const replies = /(\d+) received/.exec(ping)?.[1];
    if (proto === "icmp" && replies !== undefined) out(`ping: ${replies} of ${count} answered`);
    if (proto === "tcp") out(`tcp: ${(ping.match(/connected/g) ?? []).length} of ${count} connected`);
    out("");
    for (const l of formatJourney(hops)) out(l);
    const lost = traces.filter((x) => x.lost > 0);
    if (lost.length) out(`\n(${lost.map((x) => `${x.node} lost ${x.lost} records`).join(", ")}: its ring was full)`);
    if (!hops.length) {
      process.stderr.write("tapnet: no switch saw the pings (is the pod attached to one of these switches?)\n");
      return 1;
    }
    return 0;
  },
};

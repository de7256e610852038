/**
 * `tapnet trace --from POD --to POD|IP`: sends probes from one pod (pings, or with --proto tcp|udp
 * --port P a connection or a datagram) and shows their journey hop by hop, through every switch
 * they cross, both ways. It arms a trace filter (the protocol between the two addresses, the
 * port, both ways) on every switch of the cluster (the control socket's trace.set), probes
 * from inside the pod's namespace, reads what each switch recorded (trace.read), disarms them
 * whatever happened, and prints the journey (cli/trace/journey.ts): at each hop the time since
 * the first, the node, the stage, what it did with the packet, and the headers and what changed
 * in them. `--json` prints the hops and each switch's raw records; `--pcapng FILE` writes the
 * hops for Wireshark (cli/trace/pcapng-out.ts).
 *
 * The filter matches by addresses, protocol and port: what the pod sends there at the same time
 * is traced too.
 */
import { writeFileSync } from "node:fs";
import { parseIpv4Address } from "../../wire/ipv4.ts";
import { runtimeName } from "../../io/runtime.ts";
import type { PodRecord } from "../../node/pod-record.ts";
import { inNetns } from "../../node/exec.ts";
import type { TraceRecord } from "../../switch/trace/tracer.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";
import { buildJourney, formatJourney, type NodeTrace } from "../trace/journey.ts";
import { journeyPcapng } from "../trace/pcapng-out.ts";
import { callSwitch, switchOptions, switchTargets, type SwitchTarget } from "./cluster-client.ts";

const out = (s: string) => process.stdout.write(s + "\n");

interface Status {
  node: { name: string; gatewayMac?: string };
  nodes: { name: string }[];
  ports: { port: number; pod?: string; ifname: string; mac?: string; role?: string }[];
}

/** How long the switches' records must bring nothing new after the probes, and the most to wait for them, in ms. */
const SETTLE_MS = 300;
const MAX_WAIT_MS = 3_000;

/** A pod by name ("NAME" or "NAMESPACE/NAME") among every switch's pods. */
function findPod(pods: (PodRecord & { node: string })[], ref: string): (PodRecord & { node: string }) | undefined {
  const [ns, name] = ref.includes("/") ? ref.split("/", 2) : [undefined, ref];
  return pods.find((p) => p.name === name && (ns === undefined || p.namespace === ns));
}

/**
 * Sends the probes from inside the pod's namespace: ping, or with bash's /dev/tcp and /dev/udp a
 * connection opened and closed, or a datagram. Returns what it printed, or why it failed.
 */
async function probe(netns: string, proto: "icmp" | "tcp" | "udp", ip: string, port: number, count: number): Promise<string> {
  if (proto === "icmp") return inNetns(netns, "ping", ["-c", String(count), "-i", "0.2", "-W", "2", "-n", ip]).catch((e: Error) => e.message);
  const one = proto === "tcp"
    ? `timeout 2 bash -c 'exec 3<>/dev/tcp/${ip}/${port}' 2>/dev/null && echo connected || echo refused`
    : `bash -c 'echo tapnet-trace > /dev/udp/${ip}/${port}' && echo sent`;
  const script = Array.from({ length: count }, () => one).join("; sleep 0.2; ");
  return inNetns(netns, "bash", ["-c", script]).catch((e: Error) => e.message);
}

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
    const pods = (await Promise.all(targets.map(async (t) => (await callSwitch<PodRecord[]>(t, "pod.list", {}, "pods")).map((x) => ({ ...x, node: t.node }))))).flat();
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
    // A ping is a request and a reply; a TCP probe up to a handshake and a close each way.
    // Room for more: a frame marked that is not the probe's must not leave the reply unmarked.
    const perProbe = proto === "tcp" ? 16 : 4;
    const filters = [{ id: 1, proto, src: from.ip, dst: toIp, ...(port ? { dport: port } : {}), bothWays: true, count: Math.min(1000, perProbe * count) }];
    const armed: SwitchTarget[] = [];
    let ping = "";
    const traces: NodeTrace[] = [];
    try {
      for (const t of targets) {
        await callSwitch(t, "trace.set", { filters }, "tracer");
        armed.push(t);
      }
      ping = await probe(from.netns, proto, toIp, port, count);
      // Records come in as the switches see the packets: a reply later than the probe's own
      // timeout still arrives. Read until a round brings nothing new (SETTLE_MS), or MAX_WAIT_MS.
      const got = new Map<string, { records: TraceRecord[]; lost: number }>(targets.map((t) => [t.path, { records: [], lost: 0 }]));
      const t0 = Date.now();
      for (;;) {
        let fresh = 0;
        for (const t of targets) {
          const r = await callSwitch<{ records: TraceRecord[]; lost: number }>(t, "trace.read", {}, "tracer");
          const acc = got.get(t.path)!;
          acc.records.push(...r.records);
          acc.lost += r.lost;
          fresh += r.records.length;
        }
        if ((fresh === 0 && Date.now() - t0 >= SETTLE_MS) || Date.now() - t0 >= MAX_WAIT_MS) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      for (const t of targets) {
        const st = await callSwitch<Status>(t, "status", {}, "status");
        const r = got.get(t.path)!;
        traces.push({
          node: st.node.name, records: r.records, lost: r.lost, nodes: st.nodes.map((n) => n.name),
          ports: new Map(st.ports.map((x) => [x.port, x.pod ?? x.ifname])),
          macs: new Map([
            ...(st.node.gatewayMac ? [[st.node.gatewayMac, `${st.node.name}'s gateway, tapnet0`] as [string, string]] : []),
            ...st.ports.flatMap((x): [string, string][] => (x.mac && x.pod ? [[x.mac, x.pod]] : [])),
          ]),
        });
      }
    } finally {
      for (const t of armed) await callSwitch(t, "trace.set", { filters: [] }, "tracer").catch(() => {});
    }
    const hops = buildJourney(traces);
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

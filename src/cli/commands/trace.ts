/**
 * `tapnet trace --from POD --to POD|IP`: sends probes from one pod (pings, or with --proto tcp|udp
 * --port P a connection or a datagram) and shows their journey hop by hop, through every switch
 * they cross, both ways. With --follow it sends nothing: it marks the next packets of the pod's
 * real traffic instead (cli/trace/follow.ts) until --count packets, --seconds or Ctrl-C. The
 * trace itself (arm every switch, probe, read, disarm) is cli/trace/run.ts; this prints the
 * journey (cli/trace/journey.ts): at each hop the time since the first, the node, the stage,
 * what it did with the packet, and the headers and what changed in them. `--json` prints the
 * hops and each switch's raw records; `--pcapng FILE` writes the hops for Wireshark
 * (cli/trace/pcapng-out.ts) and says how to read the tunnel's datagrams there.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseIpv4Address } from "../../wire/ipv4.ts";
import { runtimeName } from "../../io/runtime.ts";
import { tapnetBackend } from "../../tunnel/tapnet.ts";
import { choiceOption, intOption, UsageError, type Command, type Parsed } from "../args.ts";
import { useColor } from "../trace/bytes.ts";
import { formatJourney, type Hop, type NodeTrace } from "../trace/journey.ts";
import { journeyPcapng } from "../trace/pcapng-out.ts";
import { followTrace, MAX_FOLLOW } from "../trace/follow.ts";
import { clusterPods, findPod, runTrace, type ClusterPod, type TraceRun } from "../trace/run.ts";
import { switchOptions, switchTargets, type SwitchTarget } from "./cluster-client.ts";
import { DECODE_AS, LUA_DISSECTOR_URL } from "./lua-dissector.ts";

const out = (s: string) => process.stdout.write(s + "\n");
const err = (s: string) => process.stderr.write(s + "\n");
const PROTOS = ["icmp", "tcp", "udp"] as const;
const FOLLOW_COUNT = 10;
const FOLLOW_SECONDS = 10;

export const traceCommand: Command = {
  name: "trace",
  summary: "send a probe from a pod (or follow its real traffic) and show the journey through every switch, hop by hop",
  options: {
    from: { type: "string", value: "POD", help: "the pod that sends (NAME or NAMESPACE/NAME)" },
    to: { type: "string", value: "POD|IP", help: "the pod, or the address, it pings (with --follow: the other end; left out, any)" },
    proto: { type: "string", value: "PROTO", help: "icmp (pings), tcp (a connection opened and closed) or udp (one datagram); default icmp, with --follow any" },
    port: { type: "string", value: "P", help: "the destination port for tcp and udp (with --follow: the port at either end)" },
    count: { type: "string", value: "N", help: `how many pings, connections or datagrams (1 to 20, default 1); with --follow, packets either way (1 to ${MAX_FOLLOW}, default ${FOLLOW_COUNT})` },
    follow: { type: "boolean", help: "send nothing: follow the next packets of the pod's own traffic" },
    seconds: { type: "string", value: "S", help: `with --follow: stop after S seconds (1 to 3600, default ${FOLLOW_SECONDS})` },
    json: { type: "boolean", help: "print the hops and every switch's records as JSON" },
    bytes: { type: "boolean", help: "show the bytes at every hop where they changed (the first hop's are always shown), coloured by layer on a terminal; NO_COLOR turns colour off" },
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
    "--follow sends nothing. It marks the next --count packets between the pod and --to (any address if left out),",
    "of --proto (any if left out), with --port at either end, both ways: a ping and its reply are two packets. It",
    "stops when it has them, after --seconds, or on Ctrl-C (with what it has), and always disarms the switches.",
    "It prints at the end, all the journeys together in time order. A packet cut into segments after the pod's",
    "switch (udp and vxlan backends) shows each segment on the far switch. No packet seen: it says so, exits 1.",
    "",
    "With --pcapng it says how to read the tunnel's datagrams in Wireshark for the cluster's backend: the -d flag",
    "for vxlan and udp, the Lua dissector (tapnet lua-dissector) for tapnet.",
    "",
    "Examples:",
    "  tapnet trace --from node1-pod1 --to node2-pod1",
    "  tapnet trace --from default/web --to 10.244.2.3 --count 3 --json",
    "  tapnet trace --from node1-pod1 --to node2-pod1 --proto tcp --port 80",
    "  tapnet trace --from node1-pod1 --to node2-pod1 --pcapng trace.pcapng && tshark -r trace.pcapng",
    "  tapnet trace --follow --from node1-pod1 --proto tcp --port 80 --count 20 --seconds 30",
  ].join("\n"),
  async run(p) {
    if (p.values.from === undefined) throw new UsageError("--from POD is required (see tapnet trace --help)");
    const follow = p.values.follow === true;
    if (!follow && p.values.to === undefined) throw new UsageError("--from POD and --to POD|IP are required (see tapnet trace --help); or --follow, where --to may be left out");
    if (!follow && p.values.seconds !== undefined) throw new UsageError("--seconds goes with --follow (a probe's trace ends when its replies are in)");
    const count = p.values.count === undefined ? (follow ? FOLLOW_COUNT : 1) : follow ? intOption(p, "count", 1, MAX_FOLLOW) : intOption(p, "count", 1, 20);
    const seconds = p.values.seconds === undefined ? FOLLOW_SECONDS : intOption(p, "seconds", 1, 3600);
    const proto = p.values.proto === undefined ? (follow ? undefined : "icmp") : choiceOption(p, "proto", PROTOS);
    if (p.values.port !== undefined && proto !== "tcp" && proto !== "udp") {
      throw new UsageError(proto === "icmp" ? "--port is for --proto tcp or udp: ICMP has no ports" : "--port needs --proto tcp or udp: a port means nothing without them");
    }
    if (!follow && proto !== "icmp" && p.values.port === undefined) throw new UsageError(`--proto ${proto} needs --port P, the destination port`);
    const port = p.values.port === undefined ? 0 : intOption(p, "port", 1, 65535);
    const targets = switchTargets(p);
    const pods = await clusterPods(targets);
    const from = findPod(pods, String(p.values.from));
    if (!from) throw new UsageError(`--from ${p.values.from}: no such pod on ${targets.map((t) => t.node).join(", ")} (tapnet pod list shows them)`);
    let toPod: ClusterPod | undefined;
    let toIp: string | undefined;
    if (p.values.to !== undefined) {
      const toRef = String(p.values.to);
      toPod = findPod(pods, toRef);
      toIp = toPod?.ip ?? (parseIpv4Address(toRef) !== undefined ? toRef : undefined);
      if (!toIp) throw new UsageError(`--to ${toRef}: neither a pod on ${targets.map((t) => t.node).join(", ")} nor an IPv4 address`);
    }
    const to = toIp === undefined ? "any address" : toPod ? `${toPod.name} (${toIp}, ${toPod.node})` : toIp;
    if (follow) return followCommand(p, targets, { from, to, toIp, toPod, proto, port, count, seconds });
    const { hops, traces, probeOutput: ping, backend } = await runTrace(targets, { from, toIp: toIp!, ...(toPod ? { toPod } : {}), proto: proto!, port, count });
    writePcapng(p, hops, backend);
    if (p.values.json) {
      out(JSON.stringify({ from: { pod: from.name, ip: from.ip, node: from.node }, to: { ...(toPod ? { pod: toPod.name, node: toPod.node } : {}), ip: toIp }, hops, switches: switchesJson(traces) }, null, 2));
      return hops.length ? 0 : 1;
    }
    const what = proto === "icmp" ? `ICMP echo, ${count} ping${count === 1 ? "" : "s"}` : proto === "tcp" ? `TCP to port ${port}, ${count} connection${count === 1 ? "" : "s"}` : `UDP to port ${port}, ${count} datagram${count === 1 ? "" : "s"}`;
    out(`trace ${from.name} (${from.ip}, ${from.node}) → ${to}: ${what}`);
    const replies = /(\d+) received/.exec(ping)?.[1];
    if (proto === "icmp" && replies !== undefined) out(`ping: ${replies} of ${count} answered`);
    if (proto === "tcp") out(`tcp: ${(ping.match(/connected/g) ?? []).length} of ${count} connected`);
    printJourney(p, hops, traces);
    if (!hops.length) {
      err("tapnet: no switch saw the pings (is the pod attached to one of these switches?)");
      return 1;
    }
    return 0;
  },
};

interface FollowArgs {
  from: ClusterPod;
  to: string;
  toIp?: string;
  toPod?: ClusterPod;
  proto?: (typeof PROTOS)[number];
  port: number;
  count: number;
  seconds: number;
}

/** --follow: arms, waits for the packets, Ctrl-C or the time, disarms, prints. */
async function followCommand(p: Parsed, targets: SwitchTarget[], a: FollowArgs): Promise<number> {
  const what = `${a.proto ? a.proto.toUpperCase() : "any protocol"}${a.port ? `, port ${a.port} at either end` : ""}`;
  const head = `follow ${a.from.name} (${a.from.ip}, ${a.from.node}) ↔ ${a.to}: ${what}, the next ${a.count} packet${a.count === 1 ? "" : "s"} either way`;
  if (!p.values.json) err(`${head}, for at most ${a.seconds} s (Ctrl-C stops sooner)...`);
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let run;
  try {
    run = await followTrace(targets, { from: a.from, ...(a.toIp ? { toIp: a.toIp } : {}), ...(a.toPod ? { toPod: a.toPod } : {}), ...(a.proto ? { proto: a.proto } : {}), port: a.port, count: a.count, seconds: a.seconds }, abort.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  const { hops, traces, packets, ended, ms, backend } = run;
  writePcapng(p, hops, backend);
  const why = { count: `had ${packets}`, seconds: `${a.seconds} s passed`, signal: "interrupted" }[ended];
  if (p.values.json) {
    out(JSON.stringify({
      from: { pod: a.from.name, ip: a.from.ip, node: a.from.node }, to: a.toIp ? { ...(a.toPod ? { pod: a.toPod.name, node: a.toPod.node } : {}), ip: a.toIp } : null,
      follow: { proto: a.proto ?? null, port: a.port || null, count: a.count, seconds: a.seconds, packets, ended, ms }, hops, switches: switchesJson(traces),
    }, null, 2));
  } else {
    out(`${head}: ${packets} packet${packets === 1 ? "" : "s"} in ${(ms / 1000).toFixed(1)} s (${why})`);
    if (hops.length) printJourney(p, hops, traces);
  }
  if (!packets) {
    err(`tapnet: no packet matched in ${(ms / 1000).toFixed(1)} s${ended === "signal" ? " (interrupted)" : ""}: --follow sends nothing, it waits for the pod's own traffic`);
    return 1;
  }
  return 0;
}

const switchesJson = (traces: NodeTrace[]) => traces.map((x) => ({ node: x.node, records: x.records, lost: x.lost }));

function printJourney(p: Parsed, hops: Hop[], traces: NodeTrace[]): void {
  out("");
  for (const l of formatJourney(hops, { bytes: p.values.bytes === true, color: useColor() })) out(l);
  const lost = traces.filter((x) => x.lost > 0);
  if (lost.length) out(`\n(${lost.map((x) => `${x.node} lost ${x.lost} records`).join(", ")}: its ring was full)`);
}

/** --pcapng FILE: writes it, and says how Wireshark reads the cluster's tunnel there. */
function writePcapng(p: Parsed, hops: Hop[], backend: TraceRun["backend"]): void {
  if (p.values.pcapng === undefined) return;
  const file = String(p.values.pcapng);
  writeFileSync(file, journeyPcapng(hops, `tapnet (${runtimeName})`));
  err(`wrote ${file}: ${hops.length} packets, one interface per place they were seen`);
  for (const l of decodeAsLines(file, backend)) err(l);
}

/** How to read `file`'s tunnel datagrams with tshark, for the backend the switches run. */
export function decodeAsLines(file: string, backend: TraceRun["backend"]): string[] {
  const q = (s: string) => (/^[\w./:=,@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const d = DECODE_AS.find((x) => x.backend === backend?.type);
  if (d) {
    const flag = backend?.port ? d.flag.replace(/==\d+,/, `==${backend.port},`) : d.flag;
    return [`the ${d.backend} backend (${d.what}): tshark -r ${q(file)} ${flag}${backend?.port ? "" : " (its default port: use the cluster's backend.port if it sets another)"}`];
  }
  if (backend?.type === "tapnet") {
    const lua = fileURLToPath(LUA_DISSECTOR_URL);
    const other = backend.port && backend.port !== tapnetBackend.port ? ` -d udp.port==${backend.port},tapnet` : "";
    return [
      `the tapnet backend: tshark -X lua_script:${q(lua)} -r ${q(file)}${other}`,
      "  (or once for Wireshark too: tapnet lua-dissector > ~/.local/lib/wireshark/plugins/tapnet.lua)",
    ];
  }
  return [];
}

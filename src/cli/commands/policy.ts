/**
 * `tapnet policy log on|off|status` and `tapnet policy explain`.
 *
 * policy log: each switch asked (switchTargets in cluster-client.ts: a lab's every switch when
 * no node is named) starts or stops writing each new flow a NetworkPolicy denies to its log.
 *
 * policy explain: lists the cluster's objects (cluster-client.ts), builds the network view from
 * them as a switch does (buildNetworkView) and asks the same policy engine the datapath runs
 * (PolicyEngine.explain), so the answer is the switch's own. It prints ALLOW or DENY, then
 * egress (where the client is) and ingress (where the server is): which policies isolate each
 * pod and which rule allowed the flow, or that none did. A Service's ClusterIP as --to is
 * explained per endpoint, since the switch translates the address before policy sees it.
 * Exit status, as `kubectl auth can-i`: 0 allowed (a Service: by every endpoint), 1 denied (or an
 * error), 2 wrong usage.
 */
import { DEFAULT_SERVICE_CIDR } from "../../cluster/apply.ts";
import { buildNetworkView, PROTO, type ClusterObjects, type ViewService } from "../../cluster/network-view.ts";
import type { EndpointSlice, Namespace, NetworkPolicy, Node, Pod, Service } from "../../cluster/objects.ts";
import { PolicyEngine, portText, type Explanation, type SideExplanation } from "../../cluster/policy.ts";
import { podAddress } from "../../cluster/services.ts";
import { formatIpv4, parseIpv4Address } from "../../wire/ipv4.ts";
import { choiceOption, UsageError, type Command, type Parsed } from "../args.ts";
import { callSwitch, ClusterError, clusterConnector, clusterOptions, switchOptions, switchTargets } from "./cluster-client.ts";

const out = (s: string) => process.stdout.write(s + "\n");
const err = (s: string) => process.stderr.write(s + "\n");

const LOG_ACTIONS = ["on", "off", "status"] as const;

export const policyLogCommand: Command = {
  name: "policy log",
  summary: "turn the switches' log of denied flows on or off, or show it (policy log on|off|status)",
  positionals: "on|off|status",
  options: { ...switchOptions },
  details: [
    "With the log on, a switch writes each new flow a NetworkPolicy denies to its log (stderr; in a lab,",
    "/run/tapnet/<lab>/<node>.log): the direction, the protocol, addresses and ports, the pod it isolates and",
    "the policies that do. Without --node or --control, every switch of the lab that is up is told.",
    "",
    "Examples:",
    "  tapnet policy log on",
    "  tapnet policy log status --node node2",
  ].join("\n"),
  async run(p) {
    const action = p.positionals[0];
    if (action === undefined) throw new UsageError("policy log needs on, off or status (see tapnet policy log --help)");
    if (!(LOG_ACTIONS as readonly string[]).includes(action)) throw new UsageError(`policy log takes on, off or status, not "${action}"`);
    const params = action === "status" ? {} : { on: action === "on" };
    const targets = switchTargets(p);
    let failed = false;
    for (const t of targets) {
      try {
        const r = await callSwitch<{ on: boolean }>(t, "policy.log", params, "policy log");
        out(`${t.node}: policy log ${r.on ? "on" : "off"}`);
      } catch (e) {
        if (targets.length === 1) throw e;
        err(`tapnet: ${t.node}: ${(e as Error).message}`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },
};

// ---- explain ----

const PROTOCOLS = { tcp: PROTO.TCP, udp: PROTO.UDP, sctp: PROTO.SCTP } as const;
const protocolName = (proto: number): string => Object.entries(PROTOCOLS).find(([, n]) => n === proto)![0].toUpperCase();

/** `--port 80`, `80/tcp`, `53/UDP`: the port and the IP protocol number. */
export function parsePortArg(raw: string): { port: number; proto: number } {
  const m = /^(\d{1,5})(?:\/([a-zA-Z]+))?$/.exec(raw);
  const proto = m ? PROTOCOLS[(m[2] ?? "tcp").toLowerCase() as keyof typeof PROTOCOLS] : undefined;
  if (!m || proto === undefined || Number(m[1]) < 1 || Number(m[1]) > 65535) {
    throw new UsageError(`--port must be PORT or PORT/PROTO, PORT from 1 to 65535 and PROTO tcp, udp or sctp, not "${raw}"`);
  }
  return { port: Number(m[1]), proto };
}

/** An end of the flow: its address, and "namespace/name" when it is a pod's. */
export interface End {
  ip: number;
  pod?: string;
}

/** `--from`/`--to`: an IPv4 address as it is, else NS/POD found in `pods` with its address. */
export function resolveEnd(option: string, raw: string, pods: Pod[]): End {
  const ip = parseIpv4Address(raw);
  if (ip !== undefined) return { ip };
  const slash = raw.indexOf("/");
  const [ns, name] = slash < 0 ? ["default", raw] : [raw.slice(0, slash), raw.slice(slash + 1)];
  if (!ns || !name || name.includes("/")) throw new UsageError(`--${option} must be NAMESPACE/POD, POD (in default) or an IPv4 address, not "${raw}"`);
  const pod = pods.find((p) => (p.metadata.namespace ?? "default") === ns && p.metadata.name === name);
  if (!pod) throw new ClusterError(`--${option} ${ns}/${name}: no such pod (tapnet get pods -n ${ns} lists them)`);
  const addr = podAddress(pod);
  if (addr === undefined) {
    const phase = pod.status?.phase ?? "Pending";
    const why = phase === "Running" ? "it has no status.podIP" : `it is ${phase}`;
    throw new ClusterError(`--${option} ${ns}/${name}: the pod has no address (${why}): policy applies to running pods with an IP`);
  }
  return { ip: addr, pod: `${ns}/${name}` };
}

const endText = (e: End) => (e.pod ? `${e.pod} (${formatIpv4(e.ip)})` : formatIpv4(e.ip));

/** One side's summary line: who, and whether policy isolates it and what decided. */
function sideLine(dir: "egress" | "ingress", s: SideExplanation, ip: number): string {
  const who = `${dir} of ${s.pod ?? formatIpv4(ip)}`;
  const by = `isolated by ${s.policies.join(", ")}`;
  if (!s.pod) return `${who}: not a pod, no policy applies`;
  if (!s.isolated) return `${who}: not isolated (no policy selects it for ${dir})`;
  if (s.allowedBy) return `${who}: allowed by spec.${dir}[${s.allowedBy.rule}] of ${s.allowedBy.policy} (${by})`;
  if (s.allowed) return `${who}: allowed, always (${by})`;
  return `${who}: denied, no rule allows it (${by})`;
}

/** The verdict and both sides, as `policy explain` prints it. */
export function formatExplanation(x: Explanation, from: End, to: End, proto: number, port: number): string {
  return [
    `${x.allowed ? "ALLOW" : "DENY"}: ${endText(from)} to ${endText(to)} on ${portText(proto, port)}`,
    `  ${sideLine("egress", x.egress, from.ip)}`,
    `    ${x.egress.reason}`,
    `  ${sideLine("ingress", x.ingress, to.ip)}`,
    `    ${x.ingress.reason}`,
  ].join("\n");
}

async function listObjects(p: Parsed): Promise<ClusterObjects> {
  const c = await clusterConnector.connect(p);
  try {
    const list = async <T>(kind: Parameters<typeof c.client.list>[0]) => (await c.client.list(kind)) as unknown as T[];
    return {
      namespaces: await list<Namespace>("Namespace"),
      pods: await list<Pod>("Pod"),
      services: await list<Service>("Service"),
      endpointSlices: await list<EndpointSlice>("EndpointSlice"),
      policies: await list<NetworkPolicy>("NetworkPolicy"),
      nodes: await list<Node>("Node"),
    };
  } finally {
    await c.close();
  }
}

/** A ClusterIP as --to: each endpoint of the matching Service port, explained. */
function explainService(engine: PolicyEngine, svc: ViewService, from: End, proto: number, port: number, json: boolean): number {
  const name = `${svc.namespace}/${svc.name}`;
  const sp = svc.ports.find((x) => x.protocol === proto && x.port === port);
  const ports = svc.ports.map((x) => portText(x.protocol, x.port)).join(", ");
  const head = { service: name, clusterIP: formatIpv4(svc.clusterIp), port, protocol: protocolName(proto) };
  const intro = `${formatIpv4(svc.clusterIp)} is the ClusterIP of Service ${name}: policy applies to its endpoints, not to the ClusterIP (the switch translates the address before policy sees it).`;
  if (!sp || sp.endpoints.length === 0) {
    const why = !sp
      ? `Service ${name} has no port ${portText(proto, port)} (it has ${ports}): the switch refuses the connection.`
      : `Service ${name} has no ready endpoints for ${portText(proto, port)}: the switch refuses the connection at once.`;
    if (json) out(JSON.stringify({ ...head, endpoints: [], refused: why }, null, 2));
    else out(`${intro}\n${why}`);
    return 1;
  }
  const results = sp.endpoints.map((e) => {
    const pod = engine.podAt(e.ip);
    const to: End = pod ? { ip: e.ip, pod: `${pod.namespace}/${pod.name}` } : { ip: e.ip };
    return { e, to, x: engine.explain(from.ip, e.ip, proto, e.port) };
  });
  const allowed = results.filter((r) => r.x.allowed).length;
  if (json) {
    out(JSON.stringify({
      ...head,
      endpoints: results.map((r) => ({ ip: formatIpv4(r.e.ip), port: r.e.port, explanation: r.x })),
    }, null, 2));
  } else {
    out(intro);
    out(`Its port ${portText(proto, port)}${sp.name ? ` (${sp.name})` : ""} has ${results.length} ready endpoint${results.length === 1 ? "" : "s"}; ${allowed} allowed.`);
    for (const r of results) out(`\n${formatExplanation(r.x, from, r.to, proto, r.e.port)}`);
  }
  return allowed === results.length ? 0 : 1;
}

export const policyExplainCommand: Command = {
  name: "policy explain",
  summary: "say whether NetworkPolicy allows a connection, and why",
  options: {
    from: { type: "string", value: "NS/POD", help: "the client: a pod (NAMESPACE/NAME, or NAME in default) or an IPv4 address" },
    to: { type: "string", value: "NS/POD|IP", help: "the server: a pod, an IPv4 address, or a Service's ClusterIP (each of its endpoints is explained)" },
    port: { type: "string", value: "PORT/PROTO", help: "the server's port, PROTO tcp, udp or sctp (default tcp)" },
    output: { type: "string", short: "o", value: "FORMAT", help: "json: the explanation as an object" },
    ...clusterOptions,
  },
  details: [
    "Computed from the cluster's objects by the policy engine the switches run. A connection is allowed when the",
    "client's egress and the server's ingress both allow it: for each, the policies that isolate the pod, and the",
    "rule that allowed the flow, or why none did. Exit status: 0 allowed, 1 denied, as kubectl auth can-i (a Service:",
    "0 when every endpoint allows it).",
    "",
    "Examples:",
    "  tapnet policy explain --from x/a --to y/b --port 80",
    "  tapnet policy explain --from default/client --to 10.96.0.10 --port 53/udp",
    "  tapnet policy explain --from 203.0.113.2 --to web --port 8080/tcp -o json",
  ].join("\n"),
  async run(p) {
    for (const o of ["from", "to", "port"]) if (p.values[o] === undefined) throw new UsageError(`policy explain needs --${o} (see tapnet policy explain --help)`);
    const { port, proto } = parsePortArg(String(p.values.port));
    const json = p.values.output !== undefined && choiceOption(p, "output", ["json"] as const) === "json";
    const objects = await listObjects(p);
    const from = resolveEnd("from", String(p.values.from), objects.pods);
    const to = resolveEnd("to", String(p.values.to), objects.pods);
    const view = buildNetworkView(objects, DEFAULT_SERVICE_CIDR);
    const engine = new PolicyEngine(view);
    for (const problem of engine.problems) err(`warning: ${problem}`);
    const svc = to.pod ? undefined : view.services.find((s) => s.clusterIp >>> 0 === to.ip >>> 0);
    if (svc) return explainService(engine, svc, from, proto, port, json);
    const x = engine.explain(from.ip, to.ip, proto, port);
    out(json ? JSON.stringify(x, null, 2) : formatExplanation(x, from, to, proto, port));
    return x.allowed ? 0 : 1;
  },
};

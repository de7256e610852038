/**
 * A trace the live page asks for (POST /api/trace with {from, to, proto, port, count}): the
 * request is checked field by field as `tapnet trace` checks its options (a bad one is a
 * RequestError, which the server answers with 400 and the message), the pods are found on the
 * cluster's switches, and the trace is run as `tapnet trace` runs it (cli/trace/run.ts). The
 * answer holds each hop with its lines as the terminal prints them (cli/trace/journey.ts's
 * formatJourney), so the page shows exactly what `tapnet trace` would.
 *
 * One trace at a time: every switch has one set of trace filters, and a second trace would
 * replace the first's. The server refuses a trace while one runs (409).
 */
import { formatIpv4, parseIpv4Address } from "../../wire/ipv4.ts";
import type { SwitchTarget } from "../commands/cluster-client.ts";
import { formatJourney, type Hop } from "../trace/journey.ts";
import { clusterPods, findPod, runTrace, type ClusterPod, type TraceProto, type TraceRequest } from "../trace/run.ts";

/** The request is wrong; the message names the field. `status` is the HTTP status to answer. */
export class RequestError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

export interface PageTraceRequest {
  from: string;
  to: string;
  proto: TraceProto;
  port: number;
  count: number;
}

export interface PageHop extends Hop {
  /** The hop as `tapnet trace` prints it in a terminal with colours (SGR escapes): its line, its headers and changes. */
  lines: string[];
  /** The same with the byte view at every hop whose bytes changed (as with `tapnet trace --bytes`). */
  byteLines: string[];
}

export interface PageTrace {
  from: { pod: string; namespace: string; ip: string; node: string };
  to: { pod?: string; namespace?: string; ip: string; node?: string };
  proto: TraceProto;
  port: number;
  count: number;
  /** What the probe printed: ping's summary, "connected", "sent", or why it failed. */
  probe: string;
  hops: PageHop[];
  /** Switches whose record ring overflowed: some hops may be missing. */
  lost: { node: string; records: number }[];
}

const FIELDS = ["from", "to", "proto", "port", "count"];
/** A pod's reference: NAME or NAMESPACE/NAME, as Kubernetes names them. */
const POD_REF = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** The request body, checked: every field named when it is wrong. */
export function parseTraceRequest(body: unknown): PageTraceRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new RequestError("the body must be a JSON object: {\"from\": POD, \"to\": POD or IP, \"proto\": \"icmp\", \"port\": P, \"count\": N}");
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!FIELDS.includes(k)) throw new RequestError(`unknown field "${k}" (the fields are ${FIELDS.join(", ")})`);
  const str = (k: string): string => {
    if (typeof b[k] !== "string" || b[k] === "") throw new RequestError(`${k} must be a pod's name (NAME or NAMESPACE/NAME)${k === "to" ? " or an IPv4 address" : ""}, not ${JSON.stringify(b[k]) ?? "nothing"}`);
    return b[k] as string;
  };
  const from = str("from");
  const to = str("to");
  if (!POD_REF.test(from)) throw new RequestError(`from: ${JSON.stringify(from)} is not a pod's name (NAME or NAMESPACE/NAME)`);
  if (!POD_REF.test(to) && parseIpv4Address(to) === undefined) throw new RequestError(`to: ${JSON.stringify(to)} is neither a pod's name nor an IPv4 address`);
  const proto = b.proto ?? "icmp";
  if (proto !== "icmp" && proto !== "tcp" && proto !== "udp") throw new RequestError(`proto must be one of icmp, tcp, udp, not ${JSON.stringify(proto)}`);
  const int = (k: string, min: number, max: number, dflt: number | undefined): number => {
    const v = b[k] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new RequestError(`${k} must be a whole number from ${min} to ${max}, not ${JSON.stringify(v) ?? "nothing"}`);
    return v;
  };
  if (proto === "icmp" && b.port !== undefined && b.port !== 0) throw new RequestError("port is for proto tcp or udp: ICMP has no ports");
  if (proto !== "icmp" && b.port === undefined) throw new RequestError(`proto ${proto} needs port, the destination port`);
  const port = proto === "icmp" ? 0 : int("port", 1, 65535, undefined);
  return { from, to, proto, port, count: int("count", 1, 20, 1) };
}

/** The pods and the address of a request, found on the cluster's switches. */
export function resolveTrace(pods: ClusterPod[], req: PageTraceRequest, nodes: string): TraceRequest {
  const from = findPod(pods, req.from);
  if (!from) throw new RequestError(`from: no pod ${req.from} on ${nodes}`, 404);
  const toPod = findPod(pods, req.to);
  const addr = parseIpv4Address(req.to);
  if (!toPod && addr === undefined) throw new RequestError(`to: no pod ${req.to} on ${nodes}`, 404);
  // The address goes into the probe's command line: written anew from its number, never as given.
  const toIp = toPod?.ip ?? formatIpv4(addr!);
  return { from, toIp, ...(toPod ? { toPod } : {}), proto: req.proto, port: req.port, count: req.count };
}

/** A hop's first line as formatJourney prints it: "    +405 µs  node1    route …". */
const HOP_LINE = /^ *\+\d+ µs {2}/;

/**
 * The journey's lines as the terminal prints them (formatJourney over all the hops: what it
 * says at a hop may depend on the hops before), cut where each hop's first line starts.
 */
export function linesPerHop(hops: Hop[], opts: { bytes?: boolean; color?: boolean }): string[][] {
  const out: string[][] = [];
  for (const line of formatJourney(hops, opts)) {
    if (HOP_LINE.test(line.replace(/\x1b\[[0-9;]*m/g, "")) || out.length === 0) out.push([line]);
    else out[out.length - 1].push(line);
  }
  // A line format this file does not know: each hop formatted alone rather than cut wrong.
  return out.length === hops.length ? out : hops.map((h) => formatJourney([h], opts));
}

function withLines(hops: Hop[]): PageHop[] {
  const plain = linesPerHop(hops, { color: true });
  const bytes = linesPerHop(hops, { bytes: true, color: true });
  return hops.map((h, k) => ({ ...h, lines: plain[k], byteLines: bytes[k] }));
}

/** Runs a checked request on the cluster's switches. */
export async function pageTrace(targets: SwitchTarget[], req: PageTraceRequest): Promise<PageTrace> {
  const pods = await clusterPods(targets);
  const r = resolveTrace(pods, req, targets.map((t) => t.node).join(", "));
  const run = await runTrace(targets, r);
  return {
    from: { pod: r.from.name, namespace: r.from.namespace, ip: r.from.ip, node: r.from.node },
    to: { ...(r.toPod ? { pod: r.toPod.name, namespace: r.toPod.namespace, node: r.toPod.node } : {}), ip: r.toIp },
    proto: r.proto, port: r.port, count: r.count, probe: run.probeOutput.trim(),
    hops: withLines(run.hops),
    lost: run.traces.filter((x) => x.lost > 0).map((x) => ({ node: x.node, records: x.lost })),
  };
}

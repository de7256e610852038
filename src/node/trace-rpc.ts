/**
 * The control socket's methods for the switch's tracer (switch/trace/tracer.ts; rpc.ts carries
 * them), what `tapnet trace` calls on every node of a cluster:
 *   trace.set  {session, filters: [{id, proto, src, dst, sport, dport, bothWays, count}]}  → {armed}
 *              arms the session's filters (replacing its own; [] ends it). proto is "icmp",
 *              "tcp", "udp" or a number, src and dst dotted IPv4 addresses, each left out for
 *              any; sport is the ICMP echo identifier for icmp. count: frames to mark (1 to 1000).
 *   trace.read {session}  → {node, records, lost, armed}: what the session's filters marked
 *              since its last read; armed: the filters the switch has armed, all sessions'. session: a token the trace picks (up to 64 of A-Z a-z 0-9 . _ : -),
 *              so that traces at once keep apart (trace-sessions.ts); left out, "".
 *   trace.egress {dst}  → {source, dev}: the address and device the node's own route to `dst`
 *              leaves by (`ip route get`, run where the switch runs: the node's namespace): the
 *              address the node's masquerade rule gives a pod's packet to the outside.
 * The socket takes JSON from anyone who can open it: every field is checked here, and the
 * datapath checks the filters again.
 */
import { parseIpv4Address, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../wire/ipv4.ts";
import { checkFilter, MAX_FILTERS, type TraceFilter, type TraceRecord } from "../switch/trace/tracer.ts";
import { ip } from "./exec.ts";
import { RpcError } from "./rpc.ts";
import { parseSession, TraceSessions, type TraceSource } from "./trace-sessions.ts";

export type { TraceSource };

const PROTOS: Record<string, number> = { icmp: PROTO_ICMP, tcp: PROTO_TCP, udp: PROTO_UDP };

/** One filter as the socket takes it, into the tracer's form; an RpcError names the bad field. */
export function parseFilter(raw: unknown, k: number): TraceFilter {
  const where = `trace.set: filters[${k}]`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new RpcError(`${where} must be an object`);
  const f = raw as Record<string, unknown>;
  const known = new Set(["id", "proto", "src", "dst", "sport", "dport", "bothWays", "count"]);
  for (const key of Object.keys(f)) if (!known.has(key)) throw new RpcError(`${where}: unknown field "${key}" (the fields are ${[...known].join(", ")})`);
  const int = (name: string, min: number, max: number, dflt: number): number => {
    const v = f[name] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new RpcError(`${where}.${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`);
    return v;
  };
  const addr = (name: string): number => {
    const v = f[name];
    if (v === undefined) return 0;
    const a = typeof v === "string" ? parseIpv4Address(v) : undefined;
    if (a === undefined) throw new RpcError(`${where}.${name} must be an IPv4 address such as "10.244.1.2", not ${JSON.stringify(v)}`);
    return a >>> 0;
  };
  let proto = 0;
  if (f.proto !== undefined) {
    proto = typeof f.proto === "string" ? PROTOS[f.proto] ?? -1 : int("proto", 0, 255, 0);
    if (proto < 0) throw new RpcError(`${where}.proto must be icmp, tcp, udp or a protocol number, not ${JSON.stringify(f.proto)}`);
  }
  if (f.bothWays !== undefined && typeof f.bothWays !== "boolean") throw new RpcError(`${where}.bothWays must be true or false`);
  const filter: TraceFilter = {
    id: int("id", 0, 0x7fffffff, k), proto, a: addr("src"), b: addr("dst"),
    aPort: int("sport", 0, 65535, 0), bPort: int("dport", 0, 65535, 0), bothWays: f.bothWays === true, count: int("count", 1, 1000, 1),
  };
  const bad = checkFilter(filter);
  if (bad) throw new RpcError(`${where}: ${bad}`);
  return filter;
}

export function traceHandlers(sw: TraceSource, node: string): Record<string, (p: Record<string, unknown>) => Promise<unknown>> {
  const sessions = new TraceSessions(sw);
  return {
    "trace.set": async (p) => {
      const session = parseSession(p.session, "trace.set");
      const list = p.filters;
      if (!Array.isArray(list)) throw new RpcError("trace.set needs filters, a list (empty to stop tracing)");
      if (list.length > MAX_FILTERS) throw new RpcError(`trace.set: at most ${MAX_FILTERS} filters at once, not ${list.length}`);
      const filters = list.map((f, k) => parseFilter(f, k));
      return { armed: await sessions.set(session, filters) };
    },
    "trace.read": async (p) => {
      const got = await sessions.read(parseSession(p.session, "trace.read"));
      return { node, ...got, armed: sessions.armed };
    },
    "trace.egress": async (p) => egress(p.dst),
  };
}

/** The source address and device of this namespace's route to `dst` (trace.egress). */
export async function egress(dst: unknown): Promise<{ source?: string; dev?: string }> {
  if (typeof dst !== "string" || parseIpv4Address(dst) === undefined) throw new RpcError(`trace.egress needs dst, an IPv4 address such as "192.168.1.10", not ${JSON.stringify(dst)}`);
  let out: string;
  try {
    out = await ip("-j", "route", "get", dst);
  } catch (e) {
    throw new RpcError(`trace.egress: no route to ${dst} here (${(e as Error).message.split("\n")[0]})`);
  }
  const r = (JSON.parse(out) as { prefsrc?: unknown; dev?: unknown }[])[0] ?? {};
  return { ...(typeof r.prefsrc === "string" ? { source: r.prefsrc } : {}), ...(typeof r.dev === "string" ? { dev: r.dev } : {}) };
}

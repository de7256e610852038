/**
 * `lab check`: proves the pod network works, end to end, with the system's own tools.
 *   - ping between every ordered pair of pods, and between every node and every pod;
 *   - an iperf3 TCP transfer between every pair of pods and every node and pod, checking
 *     that the server saw the client's own address (no NAT on the way);
 *   - ping and TCP from every pod to the outside namespace, which must see the pod's node's
 *     address instead (masqueraded).
 * `tapnet check` on a VM node uses the same pieces, and tcpToServer for TCP to a server that runs
 * on another node already (a demo pod's iperf3), judged by that server's own report.
 * A node whose switch `lab node stop` stopped, and its pods, are left out (and the outside
 * with node 1, its way there).
 */
import { spawn } from "node:child_process";
import { inNetns, ExecError } from "../node/exec.ts";
import { OUTSIDE_NODE_ADDRESS, type LabState } from "./plan.ts";

export interface Endpoint {
  /** "node1" or "node1-pod2" */
  name: string;
  netns: string;
  /** The address others use to reach it. */
  ip: string;
  /** Addresses it may send from: a pod its own; a node its underlay address or its gateway. */
  sources: string[];
}

export interface CheckResult {
  from: string;
  to: string;
  test: "ping" | "tcp";
  ok: boolean;
  /** "0.08 ms", "1234 Mbit/s, server saw 10.244.1.2", or why it failed. */
  detail: string;
}

export interface CheckOptions {
  tcpBytes: number;
  progress?: (r: CheckResult) => void;
}

/** Nodes whose switch `lab node stop` stopped: check leaves them and their pods out. */
export function stoppedNodes(state: LabState): string[] {
  return state.nodes.filter((n) => n.pid === 0 && !(state.kernelNodes ?? []).includes(n.name)).map((n) => n.name);
}

export function endpoints(state: LabState): { nodes: Endpoint[]; pods: Endpoint[]; outside?: Endpoint } {
  const stopped = stoppedNodes(state);
  const nodes = state.nodes.flatMap((n, i) => {
    if (stopped.includes(n.name)) return [];
    const sources = [n.address, n.gateway];
    // A kernel node's own traffic to remote pods leaves from flannel.1, which holds the pod
    // CIDR's network address; node1's to the outside from ext0.
    if ((state.kernelNodes ?? []).includes(n.name)) sources.push(n.podCidr.split("/")[0]);
    if (i === 0 && state.outside) sources.push(OUTSIDE_NODE_ADDRESS);
    return [{ name: n.name, netns: n.netns, ip: n.address, sources }];
  });
  return {
    nodes,
    pods: state.pods.filter((p) => !stopped.includes(p.node)).map((p) => ({ name: p.name, netns: p.netns, ip: p.ip, sources: [p.ip] })),
    // The outside hangs off node 1, whose switch forwards to it: left out with node 1.
    ...(state.outside && !stopped.includes(state.nodes[0]?.name) ? { outside: { name: "outside", netns: state.outside.netns, ip: state.outside.address, sources: [state.outside.address] } } : {}),
  };
}

/** Runs `tasks` with at most `width` at a time; results in task order. */
async function pool<T>(tasks: (() => Promise<T>)[], width: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, tasks.length) }, async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  }));
  return out;
}

export async function ping(from: Endpoint, to: Endpoint): Promise<CheckResult> {
  const base = { from: from.name, to: to.name, test: "ping" as const };
  try {
    const out = await inNetns(from.netns, "ping", ["-c", "3", "-i", "0.05", "-W", "2", "-q", to.ip], { timeoutMs: 10_000 });
    const m = /= [\d.]+\/([\d.]+)\//.exec(out);
    return { ...base, ok: true, detail: m ? `${m[1]} ms` : "ok" };
  } catch (e) {
    const out = e instanceof ExecError ? e.stdout : "";
    const loss = /(\d+)% packet loss/.exec(out);
    return { ...base, ok: false, detail: loss ? `${loss[1]}% packet loss to ${to.ip}` : (e as Error).message };
  }
}

/** iperf3's own port: the lab's servers, and the VM demo pods' (vm/tapnet-demo@.service). */
export const IPERF_PORT = 5201;

interface IperfJson {
  error?: string;
  start?: { connected?: { remote_host?: string }[] };
  end?: { sum_sent?: { bytes?: number }; sum_received?: { bits_per_second?: number } };
  /** With --get-server-output: the server's report, as JSON if it runs with -J, else its text. */
  server_output_json?: IperfJson;
  server_output_text?: string;
}

/**
 * Judges an iperf3 client's JSON report (`-J --get-server-output`) of `bytes` sent to a server
 * that runs on its own (a demo pod's): the client must have sent them all, and the server must
 * have seen one of `expectSeen` as the client's address. The server's view is its JSON's
 * connected[0].remote_host, or in its text report the data connection's "connected to ADDR".
 * Anything else is a failure saying what was wrong; nothing here throws.
 */
export function judgeServedTransfer(clientOut: string, bytes: number, expectSeen: string[]): { ok: boolean; detail: string } {
  let c: IperfJson;
  try {
    c = JSON.parse(clientOut) as IperfJson;
  } catch {
    return { ok: false, detail: `iperf3 printed no JSON: ${clientOut.slice(0, 200)}` };
  }
  if (typeof c !== "object" || c === null) return { ok: false, detail: `iperf3 printed no report: ${clientOut.slice(0, 200)}` };
  if (c.error) return { ok: false, detail: String(c.error) };
  const sent = typeof c.end?.sum_sent?.bytes === "number" ? c.end.sum_sent.bytes : 0;
  if (sent < bytes) return { ok: false, detail: `only ${sent} of ${bytes} bytes were sent` };
  const text = typeof c.server_output_text === "string" ? c.server_output_text : "";
  const fromJson = c.server_output_json?.start?.connected?.[0]?.remote_host;
  const seen = typeof fromJson === "string" ? fromJson : /\bconnected to (\S+) port \d+/.exec(text)?.[1];
  if (!seen) return { ok: false, detail: "the server's report (--get-server-output) does not say whom it saw" };
  if (!expectSeen.includes(seen)) return { ok: false, detail: `server saw ${seen}, not ${expectSeen.join(" or ")}` };
  const mbps = Math.round((c.end?.sum_received?.bits_per_second ?? 0) / 1e6);
  return { ok: true, detail: `${mbps} Mbit/s, server saw ${seen}` };
}

/**
 * TCP from `client` to a server that is already there, as the demo pods' iperf3 on another node
 * (nothing is started on the far side): `bytes` sent, the server's own report asked for. A
 * server busy with another client's test, or not listening yet, is tried again for up to 20 s.
 */
export async function tcpToServer(client: Endpoint, server: Endpoint, bytes: number, port = IPERF_PORT): Promise<CheckResult> {
  const base = { from: client.name, to: server.name, test: "tcp" as const };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const out = await inNetns(client.netns, "iperf3", ["-c", server.ip, "-p", String(port), "-n", String(bytes), "-J", "--get-server-output", "--connect-timeout", "2000"], { timeoutMs: 60_000 })
      .catch((e) => (e instanceof ExecError && e.stdout ? e.stdout : JSON.stringify({ error: (e as Error).message })));
    const verdict = judgeServedTransfer(out, bytes, client.sources);
    if (verdict.ok || !/busy|refused/i.test(verdict.detail) || Date.now() > deadline) {
      const hint = /refused/i.test(verdict.detail) ? ` (nothing listens on ${server.ip}:${port}: the demo pods' iperf3 servers do, see tapnet-demo@.service)` : "";
      return { ...base, ok: verdict.ok, detail: verdict.detail + hint };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * An iperf3 transfer of `bytes` from `client` to `server`; the server must see one of
 * `expectSeen` as the client's address (by default the client's own addresses).
 */
export async function tcpTransfer(client: Endpoint, server: Endpoint, bytes: number, expectSeen = client.sources, port = IPERF_PORT): Promise<CheckResult> {
  const base = { from: client.name, to: server.name, test: "tcp" as const };
  const srv = spawn("ip", ["netns", "exec", server.netns, "iperf3", "-s", "-1", "-J", "--idle-timeout", "10", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  let srvOut = "";
  srv.stdout.on("data", (d) => (srvOut += d));
  // "close", not "exit": exit may come before the last of stdout has been read.
  const srvDone = new Promise<void>((resolve) => srv.on("close", () => resolve()));
  try {
    let lastErr = "";
    let clientOut = "";
    for (let attempt = 0; attempt < 30; attempt++) {
      // iperf3 3.12 with -J can exit 0 after "unable to connect": its JSON's error field, not
      // the exit status, says whether it worked.
      clientOut = await inNetns(client.netns, "iperf3", ["-c", server.ip, "-p", String(port), "-n", String(bytes), "-J", "--connect-timeout", "2000"], { timeoutMs: 60_000 })
        .catch((e) => (e instanceof ExecError && e.stdout ? e.stdout : JSON.stringify({ error: (e as Error).message })));
      try {
        lastErr = (JSON.parse(clientOut) as IperfJson).error ?? "";
      } catch {
        lastErr = `iperf3 printed no JSON: ${clientOut.slice(0, 200)}`;
      }
      if (!lastErr || !/refused/i.test(lastErr)) break; // refused: the server may not listen yet
      await new Promise((r) => setTimeout(r, 100));
    }
    if (lastErr) return { ...base, ok: false, detail: lastErr };
    const timer = setTimeout(() => srv.kill(), 10_000);
    await srvDone;
    clearTimeout(timer);
    // The client's report says all bytes were sent and acknowledged (TCP delivered them); the
    // server's own byte count is not used, as iperf3 stops it when the client's end message
    // arrives, which may overtake the last data.
    const c = JSON.parse(clientOut) as IperfJson;
    const s = JSON.parse(srvOut) as IperfJson;
    const seen = s.start?.connected?.[0]?.remote_host ?? "?";
    const sent = c.end?.sum_sent?.bytes ?? 0;
    const mbps = Math.round((c.end?.sum_received?.bits_per_second ?? 0) / 1e6);
    if (sent < bytes) return { ...base, ok: false, detail: `only ${sent} of ${bytes} bytes were sent` };
    if (!expectSeen.includes(seen)) return { ...base, ok: false, detail: `server saw ${seen}, not ${expectSeen.join(" or ")}` };
    return { ...base, ok: true, detail: `${mbps} Mbit/s, server saw ${seen}` };
  } catch (e) {
    return { ...base, ok: false, detail: (e as Error).message };
  } finally {
    if (srv.exitCode === null) srv.kill();
    await srvDone;
  }
}

export async function labCheck(state: LabState, opts: CheckOptions): Promise<CheckResult[]> {
  const { nodes, pods, outside } = endpoints(state);
  const results: CheckResult[] = [];
  const record = (r: CheckResult) => { results.push(r); opts.progress?.(r); };
  const pings: (() => Promise<CheckResult>)[] = [];
  for (const a of pods) for (const b of pods) if (a !== b) pings.push(() => ping(a, b));
  for (const n of nodes) {
    for (const p of pods) {
      pings.push(() => ping(p, n));
      pings.push(() => ping(n, p));
    }
  }
  if (outside) for (const p of pods) pings.push(() => ping(p, outside));
  for (const r of await pool(pings.map((t) => async () => { const r = await t(); opts.progress?.(r); return r; }), 8)) results.push(r);
  for (let i = 0; i < pods.length; i++) for (let j = i + 1; j < pods.length; j++) record(await tcpTransfer(pods[i], pods[j], opts.tcpBytes));
  for (const n of nodes) {
    for (const p of pods) {
      record(await tcpTransfer(p, n, opts.tcpBytes));
      record(await tcpTransfer(n, p, opts.tcpBytes));
    }
  }
  if (outside) {
    for (const p of pods) {
      const node = nodes.find((n) => n.name === state.pods.find((x) => x.name === p.name)!.node)!;
      record(await tcpTransfer(p, outside, opts.tcpBytes, node.sources.filter((a) => a === node.ip || a === OUTSIDE_NODE_ADDRESS)));
    }
  }
  return results;
}

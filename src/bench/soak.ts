/**
 * The soak (`npm run soak`): a lab of 2 nodes with 2 pods each under a steady load for
 * `minutes` (default 60), its switches sampled all along.
 *
 *   TCP    one iperf3 stream from node1-pod1 to node2-pod1 for the whole run (at `tcpRate`, or as
 *          fast as it goes), and a ping every 200 ms on the same path
 *   churn  every `churnSeconds`, a pod is attached to one node's switch (the nodes in turn) over
 *          its control socket, as `tapnet pod add` does (pod.add), pinged once from a pod of the
 *          other node, and detached again (pod.del), its namespace with it
 *   samples  every `sampleSeconds` (default 60), between two churn cycles: each switch's pid and
 *          start time, resident memory and open file descriptors, from /proc, and the used
 *          JavaScript heaps of its control and datapath threads, from its status
 *
 * soak-report.ts judges the samples and figures; the samples, figures and verdict are written
 * as JSON to `out`. The lab is removed at the end, also on an error or Ctrl-C, unless `keep`.
 */
import { writeFileSync } from "node:fs";
import { labDown, labUp } from "../lab/lab.ts";
import { readLabState, type LabNode, type LabPod } from "../lab/plan.ts";
import type { BackendType } from "../node/config.ts";
import { rpcCall } from "../node/rpc.ts";
import { Children, fdCount, rssKb, startTicks } from "./children.ts";
import { BenchError } from "./figures.ts";
import type { Check } from "./hostile-report.ts";
import { machineInfo } from "./proc.ts";
import type { Machine } from "./report.ts";
import { judgeSoak, type ChurnFigures, type MemoryTrend, type SoakSample } from "./soak-report.ts";
import { parsePing, startGoodTraffic, type PingFigures, type TcpFigures } from "./traffic.ts";

export interface SoakOptions {
  minutes: number;
  sampleSeconds: number;
  churnSeconds: number;
  prefix: string;
  backend: BackendType;
  runtime: "node" | "deno";
  pin?: boolean;
  /** iperf3 -b ("1G"); undefined: as fast as it goes. */
  tcpRate?: string;
  /** Where the JSON of samples, figures and verdict goes. */
  out: string;
  keep?: boolean;
  command: string;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SoakReport {
  date: string;
  command: string;
  machine: Machine;
  lab: { prefix: string; backend: string; runtime: string };
  options: { minutes: number; sampleSeconds: number; churnSeconds: number; tcpRate: string };
  seconds: number;
  samples: SoakSample[];
  ping: PingFigures;
  tcp: TcpFigures;
  churn: ChurnFigures;
  memory: MemoryTrend[];
  verdict: { pass: boolean; checks: Check[] };
}

const IPERF_PORT = 5302;
const MAX_FAILURES_KEPT = 5;

/**
 * The switch's own pid (its status says it), else the journal's; and what the JavaScript heaps
 * of its two threads hold from the system (V8's committed size, which RSS follows), in kB, if it
 * says them.
 */
async function switchFacts(node: LabNode): Promise<{ pid: number; heapKb?: { control: number; datapath: number } }> {
  type Status = { node?: { pid?: unknown }; memory?: { control?: { total?: unknown }; datapath?: { total?: unknown } } };
  const s = await rpcCall<Status>(node.control, "status", {}, 10_000).catch(() => undefined);
  const pid = typeof s?.node?.pid === "number" ? s.node.pid : node.pid;
  const c = s?.memory?.control?.total;
  const d = s?.memory?.datapath?.total;
  return typeof c === "number" && typeof d === "number" ? { pid, heapKb: { control: Math.round(c / 1024), datapath: Math.round(d / 1024) } } : { pid };
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const say = opts.progress ?? (() => {});
  const children = new Children(opts.signal);
  const sleep = (ms: number) => new Promise<void>((r) => {
    const wake = () => { clearTimeout(t); opts.signal?.removeEventListener("abort", wake); r(); };
    const t = setTimeout(wake, ms);
    opts.signal?.addEventListener("abort", wake, { once: true });
  });
  try {
    if (readLabState(opts.prefix)) {
      say(`removing the lab ${opts.prefix} an earlier run left`);
      await labDown(opts.prefix);
    }
    say(`building lab ${opts.prefix} (backend ${opts.backend})`);
    const state = await labUp({ nodes: 2, pods: 2, prefix: opts.prefix, backend: opts.backend, runtime: opts.runtime, pin: opts.pin, signal: opts.signal });
    const pod = (name: string): LabPod => {
      const p = state.pods.find((x) => x.name === name);
      if (!p) throw new BenchError(`the lab has no pod ${name}`);
      return p;
    };
    const client = pod("node1-pod1");
    const server = pod("node2-pod1");
    /** A pod of the other node, to ping each churn pod from. */
    const pinger = [pod("node2-pod2"), pod("node1-pod2")];
    const seconds = opts.minutes * 60;

    say(`load: TCP and ping from ${client.name} to ${server.name} for ${opts.minutes} min; a pod added and deleted every ${opts.churnSeconds} s`);
    const traffic = await startGoodTraffic(children, { client, server }, { port: IPERF_PORT, seconds, tcpRate: opts.tcpRate, pingInterval: 0.2 });
    const t0 = Date.now();
    const elapsed = () => (Date.now() - t0) / 1000;
    const samples: SoakSample[] = [];
    const sample = async () => {
      const t = Math.round(elapsed());
      for (const n of state.nodes) {
        const { pid, heapKb } = await switchFacts(n);
        samples.push({ t, node: n.name, pid, start: startTicks(pid), rssKb: rssKb(pid), fds: fdCount(pid), ...(heapKb ? { heapKb } : {}) });
      }
      const heap = (s: SoakSample) => (s.heapKb ? ` (heaps ${(s.heapKb.control / 1024).toFixed(1)} + ${(s.heapKb.datapath / 1024).toFixed(1)} MB)` : "");
      const row = samples.filter((s) => s.t === t).map((s) => `${s.node} ${(s.rssKb / 1024).toFixed(1)} MB${heap(s)} ${s.fds} fds`).join(", ");
      say(`${(t / 60).toFixed(1)} min: ${row}`);
    };

    const churn: ChurnFigures = { cycles: 0, added: 0, reached: 0, deleted: 0, failures: [] };
    const fail = (what: string) => { if (churn.failures.length < MAX_FAILURES_KEPT) churn.failures.push(what); };
    const cycle = async (i: number) => {
      const node = state.nodes[i % state.nodes.length];
      const name = `${opts.prefix}-churn-${i}`;
      churn.cycles++;
      try {
        const rec = await rpcCall<{ ip: string }>(node.control, "pod.add", { name, namespace: "default" }, 30_000);
        churn.added++;
        const from = pinger[i % pinger.length];
        const p = parsePing((await children.run(from.netns, "ping", ["-n", "-q", "-c", "1", "-W", "2", rec.ip], 10_000)).stdout);
        if (p.received === 1) churn.reached++;
        else fail(`${name} (${rec.ip} on ${node.name}) did not answer ${from.name}`);
      } catch (e) {
        children.check();
        fail(`${name} on ${node.name}: ${(e as Error).message.split("\n")[0]}`);
      }
      try {
        await rpcCall(node.control, "pod.del", { name, namespace: "default" }, 30_000);
        churn.deleted++;
      } catch (e) {
        children.check();
        fail(`deleting ${name}: ${(e as Error).message.split("\n")[0]}`);
      }
    };

    await sample();
    let nextSample = opts.sampleSeconds;
    for (let i = 0; elapsed() < seconds; i++) {
      children.check();
      const start = elapsed();
      await cycle(i);
      if (elapsed() >= nextSample) {
        await sample();
        while (nextSample <= elapsed()) nextSample += opts.sampleSeconds;
      }
      const rest = opts.churnSeconds - (elapsed() - start);
      const left = seconds - elapsed();
      if (left > 0) await sleep(Math.max(0, Math.min(rest, left)) * 1000);
    }
    children.check();
    await sample();
    say("stopping the load");
    await sleep(3_000); // iperf3's -t ends the stream on its own
    const good = await traffic.stop();
    const facts = { seconds: elapsed(), samples, ping: good.ping, tcp: good.tcp, churn };
    const { pass, checks, memory } = judgeSoak({ ...facts, seconds });
    const report: SoakReport = {
      date: new Date().toISOString(), command: opts.command, machine: machineInfo(),
      lab: { prefix: opts.prefix, backend: opts.backend, runtime: opts.runtime },
      options: { minutes: opts.minutes, sampleSeconds: opts.sampleSeconds, churnSeconds: opts.churnSeconds, tcpRate: opts.tcpRate ?? "unlimited" },
      ...facts, memory, verdict: { pass, checks },
    };
    writeFileSync(opts.out, JSON.stringify(report, null, 2) + "\n");
    return report;
  } finally {
    children.killAll();
    if (!opts.keep && readLabState(opts.prefix)) {
      say(`removing lab ${opts.prefix}`);
      await labDown(opts.prefix).catch((e) => say(`could not remove lab ${opts.prefix}: ${(e as Error).message}`));
    }
  }
}

/**
 * `tapnet bench`: the same two-node lab built several ways (the setups: setups.ts), measured
 * side by side.
 *
 * Every setup is a lab (src/lab) of 2 nodes with 2 pods each, under its own prefix, all built
 * before the first measurement and all removed at the end, by name, whatever happened. Each
 * round measures every setup in turn (A B C D A B C D ...), so that a machine that slows down
 * half way hurts all setups alike; each figure is reported as the median over rounds, its
 * spread (min..max), and its ratio to kernel-vxlan's median.
 *
 * A round of one setup, from node1-pod1 (the client) to node2-pod1 (across nodes) or to
 * node1-pod2 (same node):
 *   iperf3 TCP across nodes, 1 stream and -P 4; TCP same node, 1 stream;
 *   iperf3 UDP -b 0 with 1400 and 64-byte datagrams: packets per second delivered and loss;
 *   for 1400 B, the rate search (rate-search.ts): packets per second delivered at ≤ 1% loss;
 *   sockperf ping-pong (UDP): round-trip p50 and p99, and per round trip the running switches'
 *   wakeups and their wait for a CPU (every thread's, from /proc; n/a for the kernel setups);
 *   the switch processes' CPU time (utime + stime from /proc, per second of the round) and
 *   peak memory (VmHWM) per node; the kernel setups have no switch: n/a;
 *   for each throughput test but UDP 64 B and the rate search, its CPU cost (cpu.ts): /proc/stat
 *   and the node's tapnet processes sampled just before and after the iperf3 client runs.
 * The switches' CPU is every process the node's lab supervisor runs: the supervisor, the
 * running switch and the standby it keeps loaded (they wait, and cost next to nothing, but
 * nothing tapnet runs for the node is left out). Peak memory is the running switch's alone.
 *
 * A +policy setup's lab is its twin's with the policy load applied and checked to be in force
 * (policy-setup.ts) before the first round; the report compares the two round by round
 * (policy-compare.ts). After every setup's round, each +policy setup and its twin also run
 * ping-pong in alternating 1-s slices (pairedPingPong), which latency is compared on.
 *
 * This module builds the labs and runs the tools; parsers.ts reads their output, statistics.ts
 * and targets.ts summarise it, report.ts and svg.ts render it, all with plain objects, and the
 * command line prints them.
 */
import type { ChildProcess } from "node:child_process";
import { run } from "../node/exec.ts";
import { labDown, labUp } from "../lab/lab.ts";
import { readLabState, type LabPod, type LabState } from "../lab/plan.ts";
import { coresPerGbit, cpuWindow, udpGbps, type CpuWindow } from "./cpu.ts";
import { BenchError, CPU_COSTS, FIGURES, fmtNumber, REFERENCE, type FigureKey, type Figures, type PairedSlice, type RoundResult } from "./figures.ts";
import { comparePolicyLoad } from "./policy-compare.ts";
import { BENCH_PORTS, POLICY_LOAD } from "./policy-load.ts";
import { applyPolicyLoad } from "./policy-setup.ts";
import { offloadsOff, parseIperfTcp, parseIperfUdp, parseSockperf, type IperfJson } from "./parsers.ts";
import { machineInfo, peakMemoryMb, processTree, sampleCpu, treeSched } from "./proc.ts";
import { probeSocketBuffer, searchUdpRate, UDP_SEARCH_PROBES, type UdpRateProbe, type UdpRun } from "./rate-search.ts";
import type { BenchFailure, BenchReport, OffloadFinding } from "./report.ts";
import { policyTwin, setupLab, setupPrefix } from "./setups.ts";
import { summarize } from "./statistics.ts";
import { evaluateTargets } from "./targets.ts";
import { Runner } from "./tool-runs.ts";

export interface BenchOptions {
  setups: string[];
  rounds: number;
  seconds: number;
  prefix: string;
  runtime: "node" | "deno";
  command: string;
  /** Pin each node's switch datapath to a CPU of its own (the lab's default); false leaves them unpinned. */
  pin?: boolean;
  /** The tapnet setup checked against the targets; default the first tapnet-* setup. */
  defaultSetup?: string;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

const IPERF_PORT = BENCH_PORTS.iperf;
const SOCKPERF_PORT = BENCH_PORTS.sockperf;

interface Lab {
  setup: string;
  state: LabState;
  client: LabPod;
  cross: LabPod;
  same: LabPod;
  switchPids: number[];
  /** Each node's supervisor (or its switch, in a journal without one): their trees are the switches' CPU; null for a kernel setup. */
  tapnetPids: number[] | null;
  /** The sockperf server in `cross`, running for the whole bench. */
  sockperf?: ChildProcess;
}

function labPods(setup: string, state: LabState): Lab {
  const pod = (name: string) => {
    const p = state.pods.find((x) => x.name === name);
    if (!p) throw new BenchError(`${setup}: the lab has no pod ${name}`);
    return p;
  };
  return {
    setup, state,
    client: pod("node1-pod1"),
    cross: pod("node2-pod1"),
    same: pod("node1-pod2"),
    switchPids: state.nodes.map((n) => n.pid).filter((p) => p > 0),
    tapnetPids: state.nodes.some((n) => n.pid > 0) ? state.nodes.map((n) => (n.supervisor && n.supervisor > 0 ? n.supervisor : n.pid)).filter((p) => p > 0) : null,
  };
}

/**
 * One iperf3 test: a one-shot server in `server`, the client in the lab's client pod. With
 * `meter`, it is given the CPU window of the client's run (of the last attempt).
 */
async function iperf(runner: Runner, lab: Lab, server: { netns: string; ip: string }, seconds: number, extra: string[], meter?: (w: CpuWindow) => void): Promise<string> {
  const srv = runner.start(server.netns, "iperf3", ["-s", "-1", "-p", String(IPERF_PORT), "--idle-timeout", String(seconds + 20)]);
  try {
    let last = "";
    for (let attempt = 0; attempt < 50; attempt++) {
      const before = meter ? sampleCpu(lab.tapnetPids) : undefined;
      const r = await runner.run(lab.client.netns, "iperf3", ["-c", server.ip, "-p", String(IPERF_PORT), "-t", String(seconds), "-J", "--connect-timeout", "2000", ...extra], (seconds + 30) * 1000);
      if (meter && before) meter(cpuWindow(before, sampleCpu(lab.tapnetPids)));
      last = r.stdout || JSON.stringify({ error: r.stderr.trim() || `exit status ${r.code}` });
      let err = "";
      try { err = (JSON.parse(last) as IperfJson).error ?? ""; } catch { /* parsed below, with its message */ }
      if (!/refused/i.test(err)) return last; // refused: the server may not listen yet
      await new Promise((res) => setTimeout(res, 100));
    }
    return last;
  } finally {
    await runner.stop(srv.child);
  }
}

/** sockperf ping-pong from the lab's client to its cross-node server (which runs all along), for `seconds`; on CPU `cpu` if given. */
async function pingPong(runner: Runner, lab: Lab, seconds: number, cpu?: number): Promise<{ p50: number; p99: number; roundTrips: number }> {
  const args = ["ping-pong", "-i", lab.cross.ip, "-p", String(SOCKPERF_PORT), "-t", String(seconds), "--full-rtt"];
  const pp = cpu === undefined
    ? await runner.run(lab.client.netns, "sockperf", args, (seconds + 30) * 1000)
    : await runner.run(lab.client.netns, "taskset", ["-c", String(cpu), "sockperf", ...args], (seconds + 30) * 1000);
  return parseSockperf(pp.stdout + pp.stderr);
}

/** The CPU the switch of `node` is pinned to in `lab`; undefined if it is not pinned. */
function nodeCpu(lab: Lab, node: string): number | undefined {
  return lab.state.nodes.find((n) => n.name === node)?.cpu;
}

/** Sets the CPUs every thread of `pid` may run on (taskset -a -p -c), returning the list it had. */
async function setAffinity(pid: number, cpus: string): Promise<string> {
  const before = await run("taskset", ["-c", "-p", String(pid)]);
  const had = /:\s*([\d,-]+)\s*$/.exec(before.trim())?.[1];
  if (!had) throw new BenchError(`taskset -c -p ${pid} said: ${before.trim()}`);
  await run("taskset", ["-a", "-c", "-p", cpus, String(pid)]);
  return had;
}

/** How many pairs a round's paired ping-pong has: 2 per second of a test, at least 4 (10 by default, 4 with --quick). */
export function pairedPairs(seconds: number): number {
  return Math.max(4, Math.round(seconds * 2));
}

/** Seconds per slice of a paired ping-pong. */
const PAIRED_SLICE_S = 1;

/**
 * A +policy setup's ping-pong against its twin's, close in time (policy-compare.ts says why):
 * `pairs` pairs of 1-s runs back to back, in ABBA order (twin first in even pairs, the +policy
 * setup first in odd ones), so that neither always runs after the other.
 *
 * When the labs' switches are pinned (as on separate machines, a CPU per node), the two ends
 * are pinned with them for the pairs: the client to node1's CPU, the server to node2's, as on
 * one-CPU machines. Left to the scheduler, where two sockperfs land decides the round trip
 * (every cross-CPU wakeup is an interrupt to a vCPU the host may have parked): two identical
 * labs measured in 20 such pairs differed 0.93× once and 1.86× the next time; pinned, 0.99×
 * and 0.96× with the policy load on one of them (2026-12-03). The server gets its CPUs back after.
 */
async function pairedPingPong(runner: Runner, self: Lab, twin: Lab, pairs: number, step: (what: string) => void): Promise<PairedSlice[]> {
  const pin = (lab: Lab) => {
    const client = nodeCpu(lab, lab.client.node);
    const server = nodeCpu(lab, lab.cross.node);
    return client !== undefined && server !== undefined && lab.sockperf?.pid ? { client, server, pid: lab.sockperf.pid } : undefined;
  };
  const pins = [pin(self), pin(twin)];
  const pinned = pins[0] && pins[1] ? pins as NonNullable<(typeof pins)[0]>[] : [];
  const restore: { pid: number; cpus: string }[] = [];
  try {
    for (const p of pinned) restore.push({ pid: p.pid, cpus: await setAffinity(p.pid, String(p.server)) });
    const cpu = (lab: Lab) => (pinned.length ? nodeCpu(lab, lab.client.node) : undefined);
    const out: PairedSlice[] = [];
    for (let i = 0; i < pairs; i++) {
      step(`ping-pong paired with ${twin.setup}, pair ${i + 1}/${pairs}${pinned.length ? " (ends pinned to their nodes' CPUs)" : ""}`);
      const first = i % 2 === 0 ? "twin" : "self";
      const [x, y] = first === "twin" ? [twin, self] : [self, twin];
      const a = await pingPong(runner, x, PAIRED_SLICE_S, cpu(x));
      const b = await pingPong(runner, y, PAIRED_SLICE_S, cpu(y));
      const [t, s] = first === "twin" ? [a, b] : [b, a];
      out.push({ first, self: { p50: s.p50, p99: s.p99 }, twin: { p50: t.p50, p99: t.p99 } });
    }
    return out;
  } finally {
    for (const r of restore) await setAffinity(r.pid, r.cpus).catch(() => {});
  }
}

async function measure(runner: Runner, lab: Lab, round: number, seconds: number, step: (what: string) => void, failures: BenchFailure[]): Promise<{ figures: Figures; udpSearch?: UdpRateProbe[] }> {
  const f = Object.fromEntries(FIGURES.map((x) => [x.key, null])) as Figures;
  const round0 = sampleCpu(lab.tapnetPids);
  // A throughput test's CPU cost, from the window its meter was given.
  let metered: CpuWindow | undefined;
  const meter = (w: CpuWindow) => { metered = w; };
  const cost = (test: FigureKey, gbps: number) => {
    const c = CPU_COSTS.find((x) => x.test === test)!;
    const per = metered ? coresPerGbit(metered, gbps) : { machine: null, switches: null };
    f[c.machine] = per.machine;
    f[c.switches] = per.switches;
    metered = undefined;
  };
  // One test failing (a tool's hiccup, a datapath that stalls) costs its figures, not the run.
  const test = async (what: string, body: () => Promise<void>) => {
    step(what);
    try {
      await body();
    } catch (e) {
      runner.check(); // an interruption is not a measurement's failure
      failures.push({ round, setup: lab.setup, test: what, error: (e as Error).message.split("\n")[0] });
    }
  };
  await test("TCP across nodes, 1 stream", async () => { cost("tcp_cross_1", f.tcp_cross_1 = parseIperfTcp(await iperf(runner, lab, lab.cross, seconds, [], meter)).gbps); });
  await test("TCP across nodes, 4 streams", async () => { cost("tcp_cross_4", f.tcp_cross_4 = parseIperfTcp(await iperf(runner, lab, lab.cross, seconds, ["-P", "4"], meter)).gbps); });
  await test("TCP same node, 1 stream", async () => { cost("tcp_same_1", f.tcp_same_1 = parseIperfTcp(await iperf(runner, lab, lab.same, seconds, [], meter)).gbps); });
  let full1400: UdpRun | undefined;
  let udpSearch: UdpRateProbe[] | undefined;
  await test("UDP 1400 B", async () => {
    full1400 = parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", "0", "-l", "1400"], meter));
    f.udp1400_kpps = full1400.pps / 1000;
    f.udp1400_loss = full1400.lossPercent;
    cost("udp1400_kpps", udpGbps(full1400.pps, 1400));
  });
  if (full1400) {
    const full = full1400;
    await test("UDP 1400 B at ≤ 1% loss", async () => {
      let n = 0;
      const buffer = String(probeSocketBuffer());
      const found = await searchUdpRate(full, async (pps) => {
        step(`UDP 1400 B at ≤ 1% loss, probe ${++n}/${UDP_SEARCH_PROBES}: ${fmtNumber(pps / 1000)} kpps offered`);
        return parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", String(Math.round(pps * 1400 * 8)), "-l", "1400", "-w", buffer]));
      });
      udpSearch = found.probes;
      f.udp1400_kpps_1pct = found.pps / 1000;
    });
  }
  await test("UDP 64 B", async () => {
    const u = parseIperfUdp(await iperf(runner, lab, lab.cross, seconds, ["-u", "-b", "0", "-l", "64"]));
    f.udp64_kpps = u.pps / 1000;
    f.udp64_loss = u.lossPercent;
  });
  await test("ping-pong latency", async () => {
    const before = lab.switchPids.length ? treeSched(lab.switchPids) : undefined;
    const lat = await pingPong(runner, lab, seconds);
    f.rtt_p50 = lat.p50;
    f.rtt_p99 = lat.p99;
    if (before && lat.roundTrips > 0) {
      const after = treeSched(lab.switchPids);
      f.rtt_wakeups = (after.sleeps - before.sleeps) / lat.roundTrips;
      f.rtt_wait = (1000 * (after.waitMs - before.waitMs)) / lat.roundTrips;
    }
  });
  if (lab.switchPids.length) {
    const w = cpuWindow(round0, sampleCpu(lab.tapnetPids));
    f.switch_cpu = w.switchCpuSeconds === null || !(w.seconds > 0) ? null : w.switchCpuSeconds / w.seconds;
    f.switch_mem = Math.max(0, ...lab.switchPids.map((p) => processTree(p).reduce((a, q) => a + peakMemoryMb(q), 0)));
  }
  return { figures: f, ...(udpSearch ? { udpSearch } : {}) };
}

/** The underlay veths and the kernel's VXLAN devices of a lab, with offloads that are off. */
async function checkOffloads(setup: string, state: LabState): Promise<OffloadFinding[]> {
  const devices: { netns: string; device: string }[] = [];
  const underlay = state.namespaces.find((n) => n.endsWith("-underlay"));
  for (const n of state.nodes) {
    if (underlay) devices.push({ netns: underlay, device: n.name });
    devices.push({ netns: n.netns, device: "eth0" });
    if (n.pid === 0 && (state.mode ?? "tapnet") !== "host-gw") devices.push({ netns: n.netns, device: "flannel.1" });
  }
  const out: OffloadFinding[] = [];
  for (const d of devices) {
    const text = await run("ip", ["netns", "exec", d.netns, "ethtool", "-k", d.device]).catch((e) => { throw new BenchError(`ethtool -k ${d.device} in ${d.netns}: ${(e as Error).message}`); });
    const off = offloadsOff(text);
    if (off.length) out.push({ setup, netns: d.netns, device: d.device, off });
  }
  return out;
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const say = opts.progress ?? (() => {});
  const runner = new Runner(opts.signal);
  const t0 = Date.now();
  const prefixes = opts.setups.map((s) => setupPrefix(opts.prefix, s));
  const labs: Lab[] = [];
  const switchCpus: number[] = [];
  const servers: ChildProcess[] = [];
  try {
    for (const [i, setup] of opts.setups.entries()) {
      runner.check();
      const prefix = prefixes[i];
      if (readLabState(prefix)) {
        say(`${setup}: removing the lab ${prefix} an earlier bench left`);
        await labDown(prefix);
      }
      say(`${setup}: building lab ${prefix}`);
      const { mode, backend, policyLoad, insecure } = setupLab(setup);
      const state = await labUp({ mode, backend, insecure, nodes: 2, pods: 2, prefix, runtime: opts.runtime, pin: opts.pin, signal: opts.signal });
      const lab = labPods(setup, state);
      if (policyLoad) {
        const { enforcedAfter } = await applyPolicyLoad(setup, state, { client: lab.client, servers: [lab.cross, lab.same] }, say, opts.signal);
        say(`${setup}: the policy load is in force (after ${enforcedAfter.toFixed(1)} s)`);
      }
      if (mode === "tapnet" && switchCpus.length === 0) switchCpus.push(...state.nodes.flatMap((n) => n.cpu === undefined ? [] : [n.cpu]));
      labs.push(lab);
      lab.sockperf = runner.start(lab.cross.netns, "sockperf", ["server", "-i", lab.cross.ip, "-p", String(SOCKPERF_PORT)]).child;
      servers.push(lab.sockperf);
    }
    say("checking offloads (ethtool -k)");
    const offloads: OffloadFinding[] = [];
    for (const lab of labs) offloads.push(...await checkOffloads(lab.setup, lab.state));
    await new Promise((r) => setTimeout(r, 300)); // the sockperf servers bind

    const results: Record<string, RoundResult[]> = Object.fromEntries(opts.setups.map((s) => [s, []]));
    const failures: BenchFailure[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const lab of labs) {
        const m = await measure(runner, lab, round, opts.seconds, (what) => say(`round ${round}/${opts.rounds}, ${lab.setup}: ${what}`), failures);
        results[lab.setup].push({ round, ...m });
      }
      for (const lab of labs) {
        const twin = labs.find((l) => l.setup === policyTwin(lab.setup));
        if (!twin) continue;
        const what = `ping-pong paired with ${twin.setup}`;
        try {
          const slices = await pairedPingPong(runner, lab, twin, pairedPairs(opts.seconds), (w) => say(`round ${round}/${opts.rounds}, ${lab.setup}: ${w}`));
          results[lab.setup].find((r) => r.round === round)!.pairedLatency = slices;
        } catch (e) {
          runner.check();
          failures.push({ round, setup: lab.setup, test: what, error: (e as Error).message.split("\n")[0] });
        }
      }
    }
    const summary = summarize(results);
    const tapnetSetup = opts.defaultSetup ?? opts.setups.find((s) => s.startsWith("tapnet-"));
    const targets = tapnetSetup && opts.setups.includes(REFERENCE) && opts.setups.includes(tapnetSetup)
      ? { setup: tapnetSetup, rows: evaluateTargets(summary, tapnetSetup) } : undefined;
    const comparisons = comparePolicyLoad(opts.setups, results);
    const policyLoad = comparisons.length ? { ...POLICY_LOAD, comparisons } : undefined;
    return {
      date: new Date().toISOString(), command: opts.command, machine: machineInfo(),
      rounds: opts.rounds, seconds: opts.seconds, setups: opts.setups, reference: REFERENCE,
      offloads, failures, results, ...summary, switchCpus, ...(targets ? { targets } : {}), ...(policyLoad ? { policyLoad } : {}),
      durationSeconds: (Date.now() - t0) / 1000,
    };
  } finally {
    for (const s of servers) await runner.stop(s);
    runner.killAll();
    const failures: string[] = [];
    for (const prefix of prefixes) {
      if (!readLabState(prefix)) continue;
      say(`removing lab ${prefix}`);
      await labDown(prefix).catch((e) => failures.push((e as Error).message));
    }
    if (failures.length) say(`could not remove everything: ${failures.join("; ")}`);
  }
}

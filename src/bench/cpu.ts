/**
 * What a measurement cost in CPU: the arithmetic, as plain functions of /proc's text (proc.ts
 * reads the files, the runner takes the samples).
 *
 * The whole machine's busy time comes from /proc/stat's first line, "cpu", the sum over all
 * CPUs, in USER_HZ ticks (1/100 s). Busy is user + nice + system + irq + softirq:
 *   user, nice      processes (iperf3, sockperf, the switches), niced or not;
 *   system          the kernel working for them (copies, the TCP and UDP stacks, TAP reads);
 *   irq, softirq    interrupts and the network's receive and transmit work (NAPI, GRO, VXLAN).
 * Left out: idle and iowait (a CPU with nothing to run), steal (time the hypervisor gave to
 * another machine: not ours to spend), and guest and guest_nice (already counted in user and
 * nice: adding them would count a guest's time twice).
 *
 * A switch's share comes from /proc/<pid>/stat: utime + stime (fields 14 and 15), which count
 * every thread of the process, summed over the node's tapnet processes.
 *
 * The figure is "cores per Gbit/s": CPU-seconds spent per second of the window (how many cores
 * were busy, on average) divided by the Gbit/s the test delivered. Lower is cheaper.
 */
import { BenchError } from "./figures.ts";

/** USER_HZ: what /proc/stat and /proc/<pid>/stat count in, on every Linux architecture tapnet runs on. */
export const CLK_TCK = 100;

/** The fields of /proc/stat's "cpu" line, in ticks; those an older kernel does not print are 0. */
export interface ProcStatCpu {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  guest: number;
  guestNice: number;
}

const STAT_FIELDS: (keyof ProcStatCpu)[] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guestNice"];

/** The fields counted as busy (see the header for why these and not the others). */
export const BUSY_FIELDS: readonly (keyof ProcStatCpu)[] = ["user", "nice", "system", "irq", "softirq"];

/** /proc/stat's aggregate "cpu" line (all CPUs); a clear error if it is missing or not numbers. */
export function parseProcStat(text: string): ProcStatCpu {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (line === undefined) throw new BenchError("/proc/stat has no \"cpu\" line");
  const words = line.trim().split(/\s+/).slice(1);
  if (words.length < 4) throw new BenchError(`/proc/stat's "cpu" line has ${words.length} fields, not at least 4 (user nice system idle): "${line.trim()}"`);
  const out = {} as ProcStatCpu;
  STAT_FIELDS.forEach((name, i) => {
    const w = words[i];
    if (w !== undefined && !/^\d+$/.test(w)) throw new BenchError(`/proc/stat's "cpu" line: ${name} is "${w}", not a count of ticks`);
    out[name] = w === undefined ? 0 : Number(w);
  });
  return out;
}

/** Busy ticks: user + nice + system + irq + softirq. */
export function busyTicks(c: ProcStatCpu): number {
  return BUSY_FIELDS.reduce((a, f) => a + c[f], 0);
}

/** CPU-seconds the machine was busy between two samples of /proc/stat (never below 0). */
export function machineBusySeconds(before: ProcStatCpu, after: ProcStatCpu): number {
  return Math.max(0, busyTicks(after) - busyTicks(before)) / CLK_TCK;
}

/** utime + stime of a /proc/<pid>/stat line, in ticks; the command name may hold spaces and parentheses. */
export function parsePidStat(text: string): number {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new BenchError(`/proc/<pid>/stat has no ")" after the command name: "${text.slice(0, 80)}"`);
  const f = text.slice(close + 2).trim().split(/\s+/); // f[0] is field 3 (state)
  const utime = f[11];
  const stime = f[12];
  if (utime === undefined || stime === undefined || !/^\d+$/.test(utime) || !/^\d+$/.test(stime)) {
    throw new BenchError(`/proc/<pid>/stat: utime and stime (fields 14 and 15) are ${utime === undefined ? "missing" : `"${utime}"`} and ${stime === undefined ? "missing" : `"${stime}"`}, not counts of ticks`);
  }
  return Number(utime) + Number(stime);
}

/**
 * CPU-seconds a set of processes spent between two samples (pid → ticks): what each process
 * present at the end spent since the first sample, or since it started if it was not there
 * yet (a switch restarted during the window). A process gone by the end is not counted.
 */
export function processesBusySeconds(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += Math.max(0, t - (before.get(pid) ?? 0));
  return ticks / CLK_TCK;
}

/** One sample: the machine's counters, the switches' (null for a setup without one), and when. */
export interface CpuSample {
  machine: ProcStatCpu;
  switches: ReadonlyMap<number, number> | null;
  atMs: number;
}

/** What a window between two samples cost: seconds of it, CPU-seconds of the machine and of the switches. */
export interface CpuWindow {
  seconds: number;
  machineCpuSeconds: number;
  switchCpuSeconds: number | null;
}

export function cpuWindow(before: CpuSample, after: CpuSample): CpuWindow {
  return {
    seconds: Math.max(0, after.atMs - before.atMs) / 1000,
    machineCpuSeconds: machineBusySeconds(before.machine, after.machine),
    switchCpuSeconds: before.switches && after.switches ? processesBusySeconds(before.switches, after.switches) : null,
  };
}

/**
 * Cores per Gbit/s over a window that delivered `gbps`: (CPU-seconds / seconds) / Gbit/s, for
 * the machine and for the switches; null where it cannot be said (no throughput, an empty window).
 */
export function coresPerGbit(w: CpuWindow, gbps: number | null): { machine: number | null; switches: number | null } {
  if (gbps === null || !(gbps > 0) || !(w.seconds > 0)) return { machine: null, switches: null };
  return {
    machine: w.machineCpuSeconds / w.seconds / gbps,
    switches: w.switchCpuSeconds === null ? null : w.switchCpuSeconds / w.seconds / gbps,
  };
}

/** UDP delivered packets per second of `bytes`-byte datagrams as payload Gbit/s. */
export function udpGbps(pps: number, bytes: number): number {
  return (pps * bytes * 8) / 1e9;
}

/**
 * What the bench reads of the machine: a process and its descendants, their CPU time, peak
 * memory and their threads' wakeups (from /proc), samples of the machine's and the switches'
 * CPU time for a measurement's window (cpu.ts does the arithmetic), and the machine's kernel,
 * CPUs and runtime for the report.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { threadStat } from "../io/thread-stat.ts";
import { CLK_TCK, parsePidStat, parseProcStat, type CpuSample } from "./cpu.ts";
import type { Machine } from "./report.ts";

/** `pid` and its descendants, from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const c of children.get(p) ?? []) walk(c); };
  if (existsSync(`/proc/${pid}`)) walk(pid);
  return out;
}

/** utime + stime of a process (all its threads), in ticks; undefined if it is gone. */
function cpuTicks(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // gone
  }
  return parsePidStat(text);
}

/** utime + stime of a process (all its threads), in seconds; 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  return (cpuTicks(pid) ?? 0) / CLK_TCK;
}

/** pid → utime + stime in ticks, for each of `roots` and their descendants that still run. */
export function treeTicks(roots: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const root of roots) {
    for (const pid of processTree(root)) {
      const t = cpuTicks(pid);
      if (t !== undefined) out.set(pid, t);
    }
  }
  return out;
}

/**
 * A sample for a measurement's window: /proc/stat's "cpu" line and, if `switchRoots` is not
 * null, the CPU time of those processes and their descendants.
 */
export function sampleCpu(switchRoots: readonly number[] | null): CpuSample {
  const machine = parseProcStat(readFileSync("/proc/stat", "utf8"));
  return { machine, switches: switchRoots ? treeTicks(switchRoots) : null, atMs: Date.now() };
}

/**
 * The scheduling of every thread of `roots` and their descendants, summed: how often they slept
 * and were woken (voluntary context switches) and how long they waited, runnable, for a CPU (ms),
 * from /proc/<pid>/task/<tid>. Threads that end between two samples take their counts with them,
 * so compare samples of processes that keep their threads (a switch does).
 */
export function treeSched(roots: readonly number[]): { sleeps: number; waitMs: number } {
  let sleeps = 0;
  let waitMs = 0;
  for (const root of roots) {
    for (const pid of processTree(root)) {
      let tids: string[];
      try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; } // gone
      for (const tid of tids) {
        const t = threadStat(`/proc/${pid}/task/${tid}`);
        if (!t) continue;
        sleeps += t.sleeps;
        waitMs += t.waitMs;
      }
    }
  }
  return { sleeps, waitMs };
}

/** VmHWM (peak resident set) in MB; 0 if the process is gone. */
export function peakMemoryMb(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export function machineInfo(): Machine {
  const cpus = os.cpus();
  const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  return {
    kernel: `${os.type()} ${os.release()}`,
    nproc: typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length,
    cpu: cpus[0]?.model?.trim() || "unknown",
    node: process.version,
    runtime: isDeno ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`,
  };
}

/**
 * What the bench reads of the machine: a process and its descendants, their CPU time and peak
 * memory (from /proc), and the machine's kernel, CPUs and runtime for the report.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import type { Machine } from "./report.ts";

const CLK_TCK = 100; // USER_HZ: what /proc/<pid>/stat counts in, on every Linux architecture tapnet runs on

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

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
  } catch {
    return 0;
  }
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

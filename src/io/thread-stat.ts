/**
 * What the kernel says of the calling thread's scheduling, from /proc/thread-self: its CPU time,
 * its time runnable but waiting for a CPU (the run queue), and how often it gave the CPU up by
 * itself (voluntary context switches: for a datapath thread, each poll() that slept and was
 * woken) or was made to (preempted). Read off the hot path, when a status asks, as plain numbers.
 *
 *   /proc/thread-self/schedstat  "<cpu ns> <run-queue wait ns> <timeslices>"
 *   /proc/thread-self/status     lines "voluntary_ctxt_switches:\tN", "nonvoluntary_ctxt_switches:\tN"
 */
import { readFileSync } from "node:fs";

export interface ThreadStat {
  cpuMs: number;
  waitMs: number;
  slices: number;
  /** Voluntary context switches: the thread slept (in poll()) and was woken. */
  sleeps: number;
  /** Involuntary ones: the scheduler took the CPU away. */
  preempted: number;
}

/** The three numbers of a schedstat file, or undefined if it is not one. */
export function parseSchedstat(text: string): { cpuNs: number; waitNs: number; slices: number } | undefined {
  const m = /^(\d+) (\d+) (\d+)\s*$/.exec(text);
  return m ? { cpuNs: Number(m[1]), waitNs: Number(m[2]), slices: Number(m[3]) } : undefined;
}

/** The two context-switch counts of a status file, or undefined if either is missing. */
export function parseCtxSwitches(text: string): { voluntary: number; involuntary: number } | undefined {
  const v = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(text);
  const n = /^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(text);
  return v && n ? { voluntary: Number(v[1]), involuntary: Number(n[1]) } : undefined;
}

/** The calling thread's figures, or undefined where /proc does not give them. */
export function threadStat(dir = "/proc/thread-self"): ThreadStat | undefined {
  try {
    const s = parseSchedstat(readFileSync(`${dir}/schedstat`, "utf8"));
    const c = parseCtxSwitches(readFileSync(`${dir}/status`, "utf8"));
    if (!s || !c) return undefined;
    return { cpuMs: s.cpuNs / 1e6, waitMs: s.waitNs / 1e6, slices: s.slices, sleeps: c.voluntary, preempted: c.involuntary };
  } catch {
    return undefined;
  }
}

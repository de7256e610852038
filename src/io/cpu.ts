/**
 * Pinning the calling thread to one CPU (sched_setaffinity). The switch pins its datapath
 * worker when told to (`tapnet switch --cpu N`): a forwarding thread that stays on its CPU keeps
 * its buffers in that CPU's cache and is not queued behind the pods it serves.
 */
import { readFileSync } from "node:fs";
import { errnoName, type Libc } from "./libc.ts";

/** Bytes of the cpu_set_t passed: room for 1024 CPUs, glibc's CPU_SETSIZE. */
const CPU_SET_BYTES = 128;
export const MAX_CPU = CPU_SET_BYTES * 8 - 1;

export class CpuError extends Error {}

/** The cpu_set_t holding only `cpu`. */
export function cpuMask(cpu: number): Uint8Array {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu > MAX_CPU) throw new CpuError(`CPU ${cpu} is not a CPU number (0-${MAX_CPU})`);
  const mask = new Uint8Array(CPU_SET_BYTES);
  mask[cpu >> 3] = 1 << (cpu & 7);
  return mask;
}

/** Pins the calling thread to `cpu`; throws a CpuError saying why if the kernel refuses. */
export function pinThread(libc: Libc, cpu: number): void {
  const mask = cpuMask(cpu);
  if (libc.schedSetaffinity(0, mask.length, mask) !== 0) {
    const e = libc.errno();
    throw new CpuError(`cannot pin the datapath to CPU ${cpu}: ${e === 22 ? "no such CPU, or not one this process may use" : errnoName(e)}`);
  }
}

/** The CPUs this process may run on, from a Cpus_allowed_list such as "0-3,6" (proc(5)). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new CpuError(`cannot read the CPU list "${list}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi && c <= MAX_CPU; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs this process may run on; empty if the kernel does not say. */
export function allowedCpus(): number[] {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? parseCpuList(m[1]) : [];
  } catch {
    return [];
  }
}

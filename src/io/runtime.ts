/**
 * The two runtimes tapnet runs on, Node (through tsx) and Deno, differ in how they call C and
 * how they start a worker from a .ts file. Everything that differs is here.
 */
import { Worker } from "node:worker_threads";

// Deno's global, typed only as far as tapnet uses it.
// deno-lint-ignore no-explicit-any
export const Deno: any = (globalThis as any).Deno;
export const isDeno = typeof Deno !== "undefined";
export const runtimeName = isDeno ? `deno ${Deno.version.deno}` : `node ${process.versions.node}`;

/**
 * Starts a worker thread running the TypeScript module `entry` (a file URL).
 * Node cannot load .ts in a worker by itself, so there a small .mjs boot file registers tsx
 * first; Deno loads .ts natively.
 */
export function startWorker(entry: URL, workerData: unknown, transferList: unknown[] = [], warm?: Worker): Worker {
  // deno-lint-ignore no-explicit-any
  const transfer = transferList as any[];
  if (warm) {
    warm.postMessage({ [DEFERRED]: workerData }, transfer);
    return warm;
  }
  if (isDeno) return new Worker(entry, { workerData, transferList: transfer });
  const boot = new URL("./worker-boot.mjs", import.meta.url);
  return new Worker(boot, { workerData: { entry: entry.href, data: workerData }, transferList: transfer });
}

const DEFERRED = "tapnetDeferred";

/**
 * Starts the worker `entry` ahead of need: the runtime boots and the module's imports load now
 * (on a loaded machine, most of a second), then `loaded` resolves; its data comes later, with
 * `startWorker(entry, data, transfer, worker)`, and `workerInput` waits for it.
 */
export function prebootWorker(entry: URL): { worker: Worker; loaded: Promise<void> } {
  const worker = isDeno
    ? new Worker(entry, { workerData: { [DEFERRED]: true } })
    : new Worker(new URL("./worker-boot.mjs", import.meta.url), { workerData: { entry: entry.href, [DEFERRED]: true } });
  return { worker, loaded: new Promise((resolve) => worker.once("message", () => resolve())) };
}

/** The data a worker was started with, on both runtimes (for a prebooted one, once it is sent). */
export async function workerInput<T>(): Promise<T> {
  const wt = await import("node:worker_threads");
  const d = wt.workerData as { entry?: string; data?: T; [DEFERRED]?: true };
  if (d?.[DEFERRED]) {
    const data = new Promise<T>((resolve) => wt.parentPort!.once("message", (m: Record<string, T>) => resolve(m[DEFERRED])));
    wt.parentPort!.postMessage({ [DEFERRED]: "loaded" }); // what prebootWorker's `loaded` waits for
    return data;
  }
  return (isDeno ? wt.workerData : d.data) as T;
}

/**
 * The two runtimes tapnet runs on, Node and Deno, differ in how they call C and how they start a
 * worker from a .ts file. Everything that differs is here, and where tapnet's files are.
 *
 * On Node, tapnet runs from a bundle of its sources that bin/tapnet.mjs has esbuild make
 * (.build/<key>/: main.mjs, datapath-worker.mjs, supervise.mjs and their shared chunks), or,
 * if it cannot, from the sources through tsx. Deno runs the sources as they are.
 */
import { Worker } from "node:worker_threads";

// Deno's global, typed only as far as tapnet uses it.
// deno-lint-ignore no-explicit-any
export const Deno: any = (globalThis as any).Deno;
export const isDeno = typeof Deno !== "undefined";
export const runtimeName = isDeno ? `deno ${Deno.version.deno}` : `node ${process.versions.node}`;

/** Whether this code runs from the bundle (a chunk in .build/<key>/) rather than from src/. */
export const bundled = !import.meta.url.endsWith(".ts");

/**
 * The repository's root. This file is src/io/runtime.ts, or part of a chunk in .build/<key>/:
 * two folders down either way.
 */
export const REPO_URL = new URL("../../", import.meta.url);

/** A file of the repository, by its path from the root ("package.json", "dissector/tapnet.lua"). */
export function repoUrl(path: string): URL {
  return new URL(path, REPO_URL);
}

/**
 * The module a worker thread or a child process starts from: the source `src` (a path from the
 * root, "src/switch/datapath-worker.ts"), or in the bundle its entry point, named after it
 * ("datapath-worker.mjs", beside this chunk).
 */
export function entryUrl(src: string): URL {
  if (!bundled) return repoUrl(src);
  return new URL(`./${src.slice(src.lastIndexOf("/") + 1).replace(/\.ts$/, ".mjs")}`, import.meta.url);
}

/** How Node starts a worker on `entry`: a bundle's entry as it is, a .ts one through the boot file, which registers tsx first. */
function nodeWorker(entry: URL, workerData: Record<string, unknown>, transferList?: unknown[]): Worker {
  const ts = entry.pathname.endsWith(".ts");
  // deno-lint-ignore no-explicit-any
  const options = { workerData: { entry: entry.href, ...workerData }, ...(transferList ? { transferList: transferList as any[] } : {}) };
  return new Worker(ts ? repoUrl("src/io/worker-boot.mjs") : entry, options);
}

/**
 * Starts a worker thread running the module `entry` (a file URL, from entryUrl).
 * Node cannot load .ts in a worker by itself, so there a small .mjs boot file registers tsx
 * first (a bundle's entry needs none); Deno loads .ts natively.
 */
export function startWorker(entry: URL, workerData: unknown, transferList: unknown[] = [], warm?: Worker): Worker {
  // deno-lint-ignore no-explicit-any
  const transfer = transferList as any[];
  if (warm) {
    warm.postMessage({ [DEFERRED]: workerData }, transfer);
    return warm;
  }
  if (isDeno) return new Worker(entry, { workerData, transferList: transfer });
  return nodeWorker(entry, { data: workerData }, transfer);
}

const DEFERRED = "tapnetDeferred";

/**
 * Starts the worker `entry` ahead of need: the runtime boots and the module's imports load now
 * (on a loaded machine, most of a second), then `loaded` resolves; its data comes later, with
 * `startWorker(entry, data, transfer, worker)`, and `workerInput` waits for it.
 */
export function prebootWorker(entry: URL): { worker: Worker; loaded: Promise<void> } {
  const worker = isDeno ? new Worker(entry, { workerData: { [DEFERRED]: true } }) : nodeWorker(entry, { [DEFERRED]: true });
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

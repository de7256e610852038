/**
 * The processes the hostile-input script and the soak run inside a lab's namespaces (ping,
 * iperf3, the hostile senders), and what they read of the switches in /proc (resident memory,
 * open file descriptors). Every child is started with nsenter (the network namespace only, so
 * that the process is the command itself and a signal reaches it), kept in a set, and killed by
 * `killAll` whatever happened: on an error, on Ctrl-C, at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isDeno } from "../io/runtime.ts";
import { which } from "../node/exec.ts";
import { REPO_ROOT } from "../lab/plan.ts";
import { BenchError } from "./figures.ts";
import { processTree } from "./proc.ts";

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  done: Promise<Finished>;
}

export class Children {
  private readonly live = new Set<ChildProcess>();

  constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.killAll(), { once: true });
  }

  check(): void {
    if (this.signal?.aborted) throw new BenchError("interrupted");
  }

  /** Starts `cmd` in network namespace `netns`; its output is collected. */
  start(netns: string, cmd: string, args: string[]): Started {
    this.check();
    const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", cmd, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.live.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<Finished>((resolve) => {
      child.on("error", (e) => { stderr += e.message; });
      child.on("close", (code, signal) => { this.live.delete(child); resolve({ code, signal, stdout, stderr }); });
    });
    return { child, done };
  }

  /** Runs `cmd` in `netns` to its end, killed after `timeoutMs`. */
  async run(netns: string, cmd: string, args: string[], timeoutMs: number): Promise<Finished> {
    const { child, done } = this.start(netns, cmd, args);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const r = await done;
    clearTimeout(timer);
    this.check();
    return r;
  }

  /** Asks a child to finish (SIGINT: ping and iperf3 then print their summary) and waits; SIGKILL after 5 s. */
  async interrupt(s: Started): Promise<Finished> {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGINT");
    const timer = setTimeout(() => s.child.kill("SIGKILL"), 5_000);
    const r = await s.done;
    clearTimeout(timer);
    return r;
  }

  killAll(): void {
    for (const c of this.live) c.kill("SIGKILL");
  }
}

/** How to run one of src's TypeScript files as a program on `runtime`. */
export function scriptCommand(runtime: "node" | "deno", file: string): { cmd: string; args: string[] } {
  const path = join(REPO_ROOT, file);
  if (runtime === "deno") {
    const local = join(REPO_ROOT, "node_modules/.bin/deno");
    const deno = existsSync(local) ? local : which("deno");
    if (!deno) throw new BenchError("--runtime deno: deno is not installed (npm install adds it to node_modules)");
    return { cmd: deno, args: ["run", "--allow-all", "--quiet", path] };
  }
  const node = isDeno ? which("node") : process.execPath;
  if (!node) throw new BenchError("--runtime node: no node executable found in PATH");
  return { cmd: node, args: ["--import", "tsx", path] };
}

/** Resident memory (VmRSS) of `pid` and its descendants, in kB; 0 if it is gone. */
export function rssKb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, "utf8"));
      if (m) kb += Number(m[1]);
    } catch { /* gone */ }
  }
  return kb;
}

/** Open file descriptors of `pid` and its descendants; 0 if it is gone. */
export function fdCount(pid: number): number {
  let n = 0;
  for (const p of processTree(pid)) {
    try {
      n += readdirSync(`/proc/${p}/fd`).length;
    } catch { /* gone */ }
  }
  return n;
}

/** The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): a pid reused by another process has another. */
export function startTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return 0;
  }
}

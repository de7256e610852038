/**
 * The bench's tools as child processes (runner.ts runs iperf3 and sockperf with it): each
 * started in a lab's namespace (ip netns exec), run to completion or stopped, and all killed
 * at once when the bench is interrupted (its AbortSignal), so that nothing measures on after.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { BenchError } from "./figures.ts";

export class Runner {
  private children = new Set<ChildProcess>();
  constructor(private signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.killAll(), { once: true });
  }

  check(): void {
    if (this.signal?.aborted) throw new BenchError("interrupted");
  }

  /** Starts `cmd` in `netns`; it is killed by killAll. */
  start(netns: string, cmd: string, args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
    const child = spawn("ip", ["netns", "exec", netns, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      child.on("error", (e) => { stderr += e.message; });
      child.on("close", (code) => { this.children.delete(child); resolve({ code, stdout, stderr }); });
    });
    return { child, done };
  }

  /** Runs `cmd` in `netns` to completion, killed after `timeoutMs`. */
  async run(netns: string, cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
    this.check();
    const { child, done } = this.start(netns, cmd, args);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const r = await done;
    clearTimeout(timer);
    this.check();
    return r;
  }

  killAll(): void {
    for (const c of this.children) c.kill("SIGKILL");
  }

  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((r) => child.once("close", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 2_000);
    await closed;
    clearTimeout(t);
  }
}

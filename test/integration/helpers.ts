/**
 * Helpers for integration tests: they run the real `tapnet` command as root on this machine,
 * in namespaces whose names start with a prefix of the test's own ("tapnet-it-..."), and
 * remove them afterwards by name, from the lab's journal, also when a test failed.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const TAPNET = `${REPO}bin/tapnet.mjs`;
export const TEST_PREFIX = "tapnet-it-";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tapnet ARGS` to completion. */
export function tapnet(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return runCmd(process.execPath, [TAPNET, ...args], opts);
}

export function runCmd(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: REPO, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/** Runs a command, throwing with its output if it fails. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export function uniquePrefix(tag: string): string {
  return `${TEST_PREFIX}${tag}-${(process.pid % 10000).toString(36)}`;
}

export function netnsList(): string[] {
  return existsSync("/run/netns") ? readdirSync("/run/netns") : [];
}

/** Is `pid` a live process? A zombie (exited, not yet reaped by init) has let go of everything and is not. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Removes every lab a test left (by its journal), then any namespace the test names itself. */
export async function cleanupTestLabs(extraNetns: string[] = []): Promise<void> {
  const root = "/run/tapnet";
  if (existsSync(root)) {
    for (const d of readdirSync(root)) {
      if (d.startsWith(TEST_PREFIX)) await tapnet(["lab", "down", "--prefix", d]);
    }
  }
  for (const ns of extraNetns) if (existsSync(`/run/netns/${ns}`)) spawnSync("ip", ["netns", "del", ns]);
}

export function journal(prefix: string): { namespaces: string[]; nodes: { pid: number; cpu?: number }[] } | undefined {
  const f = `/run/tapnet/${prefix}/lab.json`;
  return existsSync(f) ? JSON.parse(readFileSync(f, "utf8")) : undefined;
}

export function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on("exit", (c) => resolve(c))));
}

/** iperf3 server in `serverNs`, client in `clientNs`; returns the client's and server's JSON. */
export async function iperf(clientNs: string, serverNs: string, serverIp: string, bytes: string): Promise<{ client: any; server: any }> {
  const srv = spawn("ip", ["netns", "exec", serverNs, "iperf3", "-s", "-1", "-J"], { stdio: ["ignore", "pipe", "ignore"] });
  let srvOut = "";
  srv.stdout.on("data", (d) => (srvOut += d));
  const closed = new Promise((r) => srv.on("close", r));
  try {
    for (let i = 0; i < 50; i++) {
      const r = await runCmd("ip", ["netns", "exec", clientNs, "iperf3", "-c", serverIp, "-n", bytes, "-J"]);
      const client = JSON.parse(r.stdout);
      if (!client.error) {
        await closed;
        return { client, server: JSON.parse(srvOut) };
      }
      if (!/refused/.test(client.error)) throw new Error(client.error);
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error("iperf3 server never listened");
  } finally {
    srv.kill();
  }
}

/** Each thread of process `pid` with the CPUs it may run on (its Cpus_allowed_list). */
export function threadCpus(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, "utf8"))?.[1] ?? "?");
}

/** ping from namespace `netns`: resolves with the packets sent and received, and the whole output. */
export function ping(netns: string, to: string, args: string[]): Promise<{ sent: number; received: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("ip", ["netns", "exec", netns, "ping", "-n", ...args, to], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      resolve({ sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out });
    });
  });
}

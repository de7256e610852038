/**
 * A real etcd for the lab and the tests: one member, started detached from /usr/bin/etcd (in a
 * network namespace when asked, through nsenter, so the pid is etcd's own), its output in a log
 * file. startEtcd waits until the member answers /health with {"health":"true"} and throws with
 * the log's last lines if etcd exits first or does not answer in 20 s. stopEtcd sends SIGTERM,
 * then SIGKILL if etcd has not gone after a while; before each signal it checks in
 * /proc/<pid>/cmdline that the pid is still an etcd, so a recycled pid is never hit.
 *
 * Health is /health answering {"health":"true"} and the member list holding our name, so
 * that another etcd already on the port is not taken for ours.
 * Logging is zap at level warn (etcd 3.4's default, capnslog at info, is a line per raft step).
 * Inside a namespace, /health is asked with etcdctl run in that namespace, since the address
 * need not be reachable from here.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { run } from "../node/exec.ts";

export const ETCD = "/usr/bin/etcd";
export const ETCDCTL = "/usr/bin/etcdctl";
const START_TIMEOUT_MS = 20_000;

export interface EtcdServerOptions {
  name: string;
  dataDir: string;
  /** Where clients connect: http://ip:port. */
  clientUrl: string;
  /** Where peers connect: http://ip:port. */
  peerUrl: string;
  /** Run inside this network namespace (/run/netns/<netns>). */
  netns?: string;
  logFile: string;
}

export class EtcdServerError extends Error {}

/** etcd's command line for `o`. */
export function etcdArgs(o: EtcdServerOptions): string[] {
  return [
    `--name=${o.name}`,
    `--data-dir=${o.dataDir}`,
    `--listen-client-urls=${o.clientUrl}`,
    `--advertise-client-urls=${o.clientUrl}`,
    `--listen-peer-urls=${o.peerUrl}`,
    `--initial-advertise-peer-urls=${o.peerUrl}`,
    `--initial-cluster=${o.name}=${o.peerUrl}`,
    "--initial-cluster-state=new",
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
}

/** etcd 3.4 refuses to start on an architecture it does not support unless told it may. */
function archEnv(): Record<string, string> {
  const supported = ["x64", "arm64", "ppc64", "s390x"];
  if (supported.includes(process.arch)) return {};
  const goArch: Record<string, string> = { ia32: "386", arm: "arm", mips: "mips", mipsel: "mipsle", riscv64: "riscv64", loong64: "loong64" };
  return { ETCD_UNSUPPORTED_ARCH: goArch[process.arch] ?? process.arch };
}

function checkUrl(field: string, value: string): void {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    // Said below.
  }
  if (!u || u.protocol !== "http:" || !u.port || (u.pathname !== "/" && u.pathname !== "")) throw new EtcdServerError(`etcd ${field} "${value}": must be http://ip:port`);
}

/** The last `lines` lines of a file, or a note that there is none. */
export function logTail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, "utf8").trimEnd();
    return text ? text.split("\n").slice(-lines).join("\n") : "(the log is empty)";
  } catch {
    return `(no log at ${file})`;
  }
}

/** Is `pid` a live (not zombie) etcd process? */
export function isEtcd(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z") return false;
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0];
    return argv0 === ETCD || argv0.endsWith("/etcd") || argv0 === "etcd";
  } catch {
    return false;
  }
}

/**
 * Does the member at `clientUrl` say it is healthy, and is it the member called `name`? (Another
 * etcd already on the port would answer /health too, while ours exits.)
 */
async function healthy(clientUrl: string, name: string, netns?: string): Promise<boolean> {
  try {
    if (netns) {
      const ctl = ["--net=/run/netns/" + netns, ETCDCTL, `--endpoints=${clientUrl}`, "--dial-timeout=1s", "--command-timeout=2s"];
      await run("nsenter", [...ctl, "endpoint", "health"], { timeoutMs: 4000 });
      const members = await run("nsenter", [...ctl, "member", "list"], { timeoutMs: 4000 });
      return members.split("\n").some((l) => l.split(", ")[2] === name);
    }
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { health?: unknown };
    if (!res.ok || String(body.health) !== "true") return false;
    const list = await fetch(`${clientUrl}/v3/cluster/member/list`, { method: "POST", body: "{}", signal: AbortSignal.timeout(2000) });
    const { members } = (await list.json()) as { members?: { name?: string }[] };
    return list.ok && (members ?? []).some((m) => m.name === name);
  } catch {
    return false;
  }
}

/** Starts etcd and waits until it answers. */
export async function startEtcd(opts: EtcdServerOptions): Promise<{ pid: number; url: string }> {
  checkUrl("clientUrl", opts.clientUrl);
  checkUrl("peerUrl", opts.peerUrl);
  if (!existsSync(ETCD)) throw new EtcdServerError(`${ETCD} is not installed (Debian: apt-get install etcd-server)`);
  if (opts.netns && !existsSync(`/run/netns/${opts.netns}`)) throw new EtcdServerError(`network namespace ${opts.netns} does not exist`);
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const clientUrl = opts.clientUrl.replace(/\/$/, "");
  const [cmd, args] = opts.netns ? ["nsenter", [`--net=/run/netns/${opts.netns}`, ETCD, ...etcdArgs(opts)]] : [ETCD, etcdArgs(opts)];
  const log = openSync(opts.logFile, "a");
  let exited: string | undefined;
  let pid: number | undefined;
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...archEnv() } });
    child.on("error", (err) => (exited = err.message));
    child.on("exit", (code, signal) => (exited = signal ? `killed by ${signal}` : `exit status ${code}`));
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    if (exited || pid === undefined) {
      throw new EtcdServerError(`etcd ${opts.name} did not start (${exited ?? "no pid"}); the end of ${opts.logFile}:\n${logTail(opts.logFile)}`);
    }
    if (await healthy(clientUrl, opts.name, opts.netns)) return { pid, url: clientUrl };
    if (Date.now() > deadline) {
      await stopEtcd(pid);
      throw new EtcdServerError(`etcd ${opts.name} did not answer at ${clientUrl}/health within ${START_TIMEOUT_MS / 1000} s; the end of ${opts.logFile}:\n${logTail(opts.logFile)}`);
    }
  }
}

/** Stops the etcd with `pid`: SIGTERM, then SIGKILL after `graceMs`. Nothing if it is gone or not an etcd. */
export async function stopEtcd(pid: number, graceMs = 10_000): Promise<void> {
  if (!isEtcd(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isEtcd(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        return;
      }
      const killDeadline = Date.now() + 5000;
      while (isEtcd(pid) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 20));
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

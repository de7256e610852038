/**
 * Running the system's network tools (ip, ping, iperf3, nft). Every failure becomes an
 * ExecError that quotes the command and what it printed, so a user sees why.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";

export class ExecError extends Error {
  constructor(readonly command: string[], readonly code: number | null, readonly stderr: string, readonly stdout = "") {
    super(`${command.join(" ")}: ${stderr.trim().split("\n").slice(-3).join("; ") || `exit status ${code}`}`);
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null;
        const why = (err as { killed?: boolean }).killed ? `timed out after ${opts.timeoutMs ?? 30_000} ms` : String(stderr || err.message);
        reject(new ExecError([cmd, ...args], code, why, String(stdout)));
      } else resolve(String(stdout));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `ip ARGS...` */
export function ip(...args: string[]): Promise<string> {
  return run("ip", args);
}

/** Several ip commands in one process (`ip -batch -`), inside network namespace `netns` if given. */
export function ipBatch(lines: string[], netns?: string): Promise<string> {
  const args = netns ? ["-n", netns, "-batch", "-"] : ["-batch", "-"];
  return run("ip", args, { input: lines.join("\n") + "\n" });
}

/** A command run inside a network namespace (by its name in /run/netns); "" is this process's own. */
export function inNetns(netns: string, cmd: string, args: string[], opts?: RunOptions): Promise<string> {
  return netns === "" ? run(cmd, args, opts) : run("ip", ["netns", "exec", netns, cmd, ...args], opts);
}

export function spawnInNetns(netns: string, cmd: string, args: string[]): ChildProcess {
  return spawn("ip", ["netns", "exec", netns, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

export async function netnsList(): Promise<string[]> {
  const out = await ip("netns", "list");
  return out.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** Deletes a network namespace by name; false if there was none. */
export async function netnsDelete(name: string): Promise<boolean> {
  if (!netnsExists(name)) return false;
  await ip("netns", "del", name);
  return true;
}

/** Finds an executable in PATH. */
export function which(cmd: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])) {
    if (dir && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return undefined;
}

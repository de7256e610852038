/**
 * Machines for the boot test: real Debian 12 systems with systemd as PID 1, booted with
 * systemd-nspawn, each in a network namespace of its own cabled to an underlay bridge, as VMs
 * on a private network are. What this machine needs for it is in ../../../shared/notes/vm-facts.md:
 *   - the root is debootstrapped once into /var/cache/tapnet-vm/bookworm-<hash of its packages>
 *     (make-root.sh) and never written to: each machine boots it with --volatile=overlay, its
 *     writes on a tmpfs that goes with it;
 *   - --register=no --keep-unit (no systemd on this host to register with), and a tmpfs on
 *     /run/systemd/nspawn/propagate (made here, and unmounted again if this made it);
 *   - /dev/net/tun bound in, the project bound read-only at /opt/tapnet-src, this machine's node
 *     binary at /usr/local/bin/node (Debian 12's own Node is 18).
 * Commands run inside a machine through nsenter into its PID 1's namespaces. Everything made
 * (machines, namespaces, the bridge's namespace) is named with the run's prefix and removed by
 * `destroy`, which also works after a half-done `boot`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UNDERLAY_BRIDGE_MAC } from "../../src/lab/plan.ts";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const CACHE = "/var/cache/tapnet-vm";
const PROPAGATE = "/run/systemd/nspawn/propagate";
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The packages the root gets: what boots systemd, and what vm/provision.sh installs. */
export function rootPackages(): string[] {
  return ["systemd", "systemd-sysv", "dbus", ...must("sh", [`${REPO}vm/provision.sh`, "--print-packages"]).trim().split(/\s+/)];
}

/** The cached root for these packages, debootstrapped if it is not there yet (about 2 min). */
export async function ensureRoot(): Promise<string> {
  const pkgs = rootPackages();
  const dir = `${CACHE}/bookworm-${createHash("sha256").update(pkgs.join(" ") + "\n").digest("hex").slice(0, 12)}`;
  if (existsSync(`${dir}/usr/lib/systemd/systemd`) || existsSync(`${dir}/lib/systemd/systemd`)) return dir;
  const r = await run("sh", [`${REPO}test/vm/make-root.sh`, dir, ...pkgs.slice(3)], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`could not make the Debian root ${dir}: ${r.stderr}`);
  return dir;
}

export interface Machine {
  name: string;
  hostname: string;
  netns: string;
  address: string;
  nspawn?: ChildProcess;
  console: string;
}

export interface Cluster {
  prefix: string;
  underlay: string;
  machines: Machine[];
  /** We mounted the tmpfs on PROPAGATE, and unmount it at the end. */
  mountedPropagate: boolean;
}

/** Plans a cluster of `n` machines named `<prefix>-node<i>` (hostname node<i>), 192.168.56.1<i>. */
export function plan(prefix: string, n: number): Cluster {
  return {
    prefix, underlay: `${prefix}-ul`, mountedPropagate: false,
    machines: Array.from({ length: n }, (_, i) => ({ name: `${prefix}-node${i + 1}`, hostname: `node${i + 1}`, netns: `${prefix}-node${i + 1}`, address: `192.168.56.${11 + i}`, console: "" })),
  };
}

/**
 * Cables the machines' namespaces to a bridge in the underlay namespace and boots them.
 * Their underlay device is `ul0`, not eth0 or eth1: provisioning must find it by address.
 * `underlayAddress` (CIDR) goes on the bridge, for a service in the underlay namespace.
 */
export async function boot(c: Cluster, root: string, opts: { underlayAddress?: string } = {}): Promise<void> {
  if (!isMountpoint(PROPAGATE)) {
    must("mkdir", ["-p", PROPAGATE]);
    must("mount", ["-t", "tmpfs", "tmpfs", PROPAGATE]);
    c.mountedPropagate = true;
  }
  must("ip", ["netns", "add", c.underlay]);
  must("ip", ["-n", c.underlay, "link", "add", "br0", "address", UNDERLAY_BRIDGE_MAC, "type", "bridge"]); // fixed, as the lab's (plan.ts)
  must("ip", ["-n", c.underlay, "link", "set", "br0", "up"]);
  must("ip", ["-n", c.underlay, "link", "set", "lo", "up"]);
  // An address of the underlay's own (a service every node reaches, as etcd at 192.168.56.2).
  if (opts.underlayAddress) must("ip", ["-n", c.underlay, "addr", "add", opts.underlayAddress, "dev", "br0"]);
  c.machines.forEach((m, i) => {
    must("ip", ["netns", "add", m.netns]);
    must("ip", ["-n", c.underlay, "link", "add", `n${i + 1}`, "type", "veth", "peer", "name", "ul0", "netns", m.netns]);
    must("ip", ["-n", c.underlay, "link", "set", `n${i + 1}`, "master", "br0", "up"]);
    must("ip", ["-n", m.netns, "addr", "add", `${m.address}/24`, "dev", "ul0"]);
    must("ip", ["-n", m.netns, "link", "set", "ul0", "up"]);
    must("ip", ["-n", m.netns, "link", "set", "lo", "up"]);
    // nspawn mounts /proc/sys read-only, so the switch cannot turn forwarding on as it does on a
    // VM (it says so in its log): done here, in the machine's namespace, before it boots.
    must("ip", ["netns", "exec", m.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  });
  const node = process.execPath;
  for (const m of c.machines) {
    const args = ["-D", root, "--volatile=overlay", "--register=no", "--keep-unit", `--machine=${m.name}`, `--hostname=${m.hostname}`,
      `--network-namespace-path=/run/netns/${m.netns}`, "--bind=/dev/net/tun", `--bind-ro=${REPO.replace(/\/$/, "")}:/opt/tapnet-src`,
      `--bind-ro=${node}:/usr/local/bin/node`, "--capability=all", "--console=pipe", "--boot"];
    const p = spawn("systemd-nspawn", args, { stdio: ["pipe", "pipe", "pipe"] });
    p.stdout!.on("data", (d) => (m.console = (m.console + d).slice(-20_000)));
    p.stderr!.on("data", (d) => (m.console = (m.console + d).slice(-20_000)));
    m.nspawn = p;
  }
  await Promise.all(c.machines.map((m) => waitBooted(m)));
}

/** The machine's PID 1 as this machine sees it: systemd, in the machine's network namespace. */
export function leader(m: Machine): number | undefined {
  let want: number;
  try {
    want = statSync(`/run/netns/${m.netns}`).ino;
  } catch {
    return undefined;
  }
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (statSync(`/proc/${d}/ns/net`).ino !== want) continue;
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${d}/status`, "utf8"))?.[1].trim().split(/\s+/);
      if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === "1" && readlinkSync(`/proc/${d}/exe`).endsWith("/systemd")) return Number(d);
    } catch {
      // gone while we looked
    }
  }
  return undefined;
}

/** Runs a shell command inside the machine, as root, with a clean environment. */
export function inside(m: Machine, script: string, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Result> {
  const pid = leader(m);
  if (!pid) return Promise.resolve({ code: -1, stdout: "", stderr: `machine ${m.name} is not running` });
  const env = Object.entries({ PATH, HOME: "/root", LANG: "C.UTF-8", ...opts.env }).map(([k, v]) => `${k}=${v}`);
  return run("nsenter", ["-t", String(pid), "-m", "-u", "-i", "-n", "-p", "-C", "--", "/usr/bin/env", "-i", ...env, "/bin/sh", "-c", script], { timeoutMs: opts.timeoutMs });
}

async function waitBooted(m: Machine): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (m.nspawn?.exitCode !== null) throw new Error(`${m.name} exited while booting:\n${m.console.slice(-3000)}`);
    if (leader(m)) {
      const r = await inside(m, "systemctl is-system-running --wait", { timeoutMs: 60_000 });
      const state = r.stdout.trim();
      if (state === "running" || state === "degraded") return;
      if (state && state !== "starting" && state !== "initializing") throw new Error(`${m.name}: systemd says ${state}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${m.name} did not boot within 120 s:\n${m.console.slice(-3000)}`);
}

/** Powers the machines off (killed after 20 s), deletes the namespaces, unmounts what we mounted. Safe twice. */
export async function destroy(c: Cluster): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(c.machines.map(async (m) => {
    const p = m.nspawn;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => p.once("close", () => resolve()));
    p.kill("SIGTERM"); // nspawn --boot: a clean poweroff of the machine
    const timer = setTimeout(() => { problems.push(`${m.name} did not power off within 20 s: killed`); p.kill("SIGKILL"); }, 20_000);
    await gone;
    clearTimeout(timer);
  }));
  for (const ns of [...c.machines.map((m) => m.netns), c.underlay]) {
    if (existsSync(`/run/netns/${ns}`)) {
      const r = spawnSync("ip", ["netns", "del", ns], { encoding: "utf8" });
      if (r.status !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
  }
  if (c.mountedPropagate && isMountpoint(PROPAGATE)) {
    // A machine's last mounts may take a moment to go after its nspawn has exited.
    let r = spawnSync("umount", [PROPAGATE], { encoding: "utf8" });
    for (let i = 0; i < 10 && r.status !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      r = spawnSync("umount", [PROPAGATE], { encoding: "utf8" });
    }
    if (r.status === 0) c.mountedPropagate = false;
    else problems.push(`umount ${PROPAGATE}: ${r.stderr.trim()}`);
  }
  return problems;
}

function isMountpoint(path: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === path);
}

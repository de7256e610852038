/**
 * A podman of the test's own, for the podman integration test: it touches nothing global that a
 * person's podman uses. Its containers.conf (CONTAINERS_CONF) selects the CNI backend, runc,
 * cgroupfs, file locks and its own temporary directory, CNI configs from a directory of its own
 * (`network_config_dir`) and plugins from the test's directory then Debian's /usr/lib/cni; its
 * images and containers live under `--root` in its directory and `--runroot` in
 * /run/tapnet-podman/ (podman refuses a run root over 50 characters). It runs inside a
 * lab node's network namespace (`nsenter --net`, which keeps the mounts: `ip netns exec`
 * remounts /sys and runc then finds no cgroups), so the CNI plugins podman runs (tapnet,
 * portmap) run there too, and portmap's rules are the node's. `destroy` removes its containers,
 * images and directory; `sweep` does it for a run that was killed before it could.
 *
 * What podman still writes outside: the container's network namespace (/run/netns/netns-…) and
 * libcni's cached result (/var/lib/cni/results/tapnet-<id>-eth0), both removed with the
 * container, and containers/image's blob cache (/var/lib/containers/cache) on import.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pidAlive, runCmd, type Result } from "./helpers.ts";

/** The image every container runs: busybox-static's /bin/busybox and these applets. */
export const IMAGE = "localhost/bb:1";
const APPLETS = ["sh", "ping", "ip", "nc", "sleep", "wget", "httpd", "cat", "echo", "hostname", "netstat"];
/** A CGI script: busybox httpd answers GET /cgi-bin/ip with the caller's address as it saw it. */
const WHO_CGI = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n";

/** Where the podmans of a test run live: /tmp/tapnet-podman-<lab prefix>/<node>/. */
export function podmanBase(prefix: string): string {
  return `/tmp/tapnet-podman-${prefix}`;
}

/** What this machine lacks for the podman test, as Debian packages (scripts/install-deps.sh installs them). */
export function missingTools(): string[] {
  const tools: [string[], string][] = [[["/usr/bin/podman"], "podman"], [["/usr/sbin/runc", "/usr/bin/runc"], "runc"], [["/bin/busybox"], "busybox-static"], [["/usr/lib/cni/portmap"], "containernetworking-plugins"]];
  return tools.filter(([files]) => !files.some((f) => existsSync(f))).map(([, pkg]) => pkg);
}

/** The hard limit of resource `what` ("Max processes") of this process, or undefined when unlimited. */
function hardLimit(what: string): number | undefined {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith(what));
  const hard = line?.slice(what.length).trim().split(/\s+/)[1];
  return hard === undefined || hard === "unlimited" ? undefined : Number(hard);
}

/**
 * containers.conf for a podman of the test's own. Podman's default ulimits ask for more than a
 * root without CAP_SYS_RESOURCE (in a container) may have: files up to this process's hard
 * limit; processes 4096 (runc is started by conmon, whose own limit podman lowers).
 */
export function containersConf(dir: string, networkDir: string, pluginDirs: string[]): string {
  const nofile = Math.min(hardLimit("Max open files") ?? 1_048_576, 1_048_576);
  const q = (s: string) => JSON.stringify(s);
  return [
    "[containers]",
    `default_ulimits = [${q(`nofile=${nofile}:${nofile}`)}, "nproc=4096:4096"]`,
    "[engine]",
    'cgroup_manager = "cgroupfs"',
    'runtime = "runc"',
    'lock_type = "file"',
    'events_logger = "file"',
    `events_logfile_path = ${q(join(dir, "tmp", "events.log"))}`,
    `tmp_dir = ${q(join(dir, "tmp"))}`,
    "[network]",
    'network_backend = "cni"',
    `network_config_dir = ${q(networkDir)}`,
    `cni_plugin_dirs = [${pluginDirs.map(q).join(", ")}]`,
    "",
  ].join("\n");
}

/** Writes a tarball of a root holding busybox and its applets (and the CGI script) to `file`. */
export async function busyboxTarball(dir: string, file: string): Promise<void> {
  const root = join(dir, "rootfs");
  for (const d of ["bin", "tmp", "proc", "sys", "dev", "etc", "www/cgi-bin"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const a of APPLETS) {
    const r = await runCmd("ln", ["-sf", "busybox", join(root, "bin", a)]);
    if (r.code !== 0) throw new Error(`ln ${a}: ${r.stderr}`);
  }
  writeFileSync(join(root, "www/cgi-bin/ip"), WHO_CGI, { mode: 0o755 });
  const t = await runCmd("tar", ["-C", root, "-cf", file, "."]);
  if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
  rmSync(root, { recursive: true, force: true });
}

/** Where run roots live: podman refuses one longer than 50 characters, so not in the podman's directory. */
const RUNROOTS = "/run/tapnet-podman";

export class Podman {
  readonly conf: string;
  readonly networkDir: string;
  readonly binDir: string;
  /** Its --runroot: /run/tapnet-podman/ + a digest of its directory (found again from it by `sweep`). */
  readonly runroot: string;

  /** A podman in `dir` (made here), run in network namespace `netns` (a name in /run/netns). */
  constructor(readonly dir: string, readonly netns: string) {
    this.conf = join(dir, "containers.conf");
    this.networkDir = join(dir, "net.d");
    this.binDir = join(dir, "bin");
    this.runroot = join(RUNROOTS, createHash("sha256").update(dir).digest("hex").slice(0, 16));
  }

  /** Makes its directories and config, records who owns it (for `sweep`), and imports the image. */
  async setUp(tarball: string): Promise<void> {
    for (const d of [this.dir, this.networkDir, this.binDir, join(this.dir, "tmp")]) mkdirSync(d, { recursive: true });
    writeFileSync(join(this.dir, "owner.pid"), String(process.pid));
    writeFileSync(join(this.dir, "netns"), this.netns);
    writeFileSync(this.conf, containersConf(this.dir, this.networkDir, [this.binDir, "/usr/lib/cni"]));
    const r = await this.run(["import", "-q", tarball, IMAGE]);
    if (r.code !== 0) throw new Error(`podman import: ${r.stderr}`);
  }

  /** Runs `podman ARGS` with this podman's config and storage, inside its network namespace. */
  run(args: string[], timeoutMs = 60_000): Promise<Result> {
    const podman = ["podman", "--root", join(this.dir, "root"), "--runroot", this.runroot, "--runtime", "runc", ...args];
    const cmd = existsSync(`/run/netns/${this.netns}`) ? ["nsenter", `--net=/run/netns/${this.netns}`, "--", ...podman] : podman;
    return runCmd(cmd[0], cmd.slice(1), { timeoutMs, env: { ...process.env, CONTAINERS_CONF: this.conf } });
  }

  /** Runs `podman ARGS`, throwing with its output when it fails; returns its stdout, trimmed. */
  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  }

  /** The address the container's network `network` has, as podman recorded the plugins' result. */
  async ip(container: string, network = "tapnet"): Promise<string> {
    return this.ok(["inspect", "-f", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
  }

  /** The full ids of its containers (running or not). */
  async containerIds(): Promise<string[]> {
    const out = await this.ok(["ps", "-a", "--no-trunc", "--format", "{{.ID}}"]);
    return out ? out.split("\n") : [];
  }

  /**
   * Removes its containers (their CNI DEL runs: the switch forgets them, portmap removes its
   * rules), its images, and its directory. Errors are collected and thrown after everything
   * was tried, so a failure leaves as little as it can.
   */
  async destroy(): Promise<void> {
    const errors: string[] = [];
    if (existsSync(this.conf)) {
      for (const args of [["rm", "-a", "-f", "-t", "0"], ["rmi", "-a", "-f"]]) {
        const r = await this.run(args, 120_000);
        if (r.code !== 0) errors.push(`podman ${args.join(" ")}: ${r.stderr}`);
      }
    }
    // Podman's overlay storage may stay mounted after a failure: unmount before deleting.
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1]).filter((m) => m?.startsWith(this.dir + "/") || m?.startsWith(this.runroot + "/"));
    for (const m of mounts.sort().reverse()) await runCmd("umount", ["-l", m]);
    try {
      rmSync(this.dir, { recursive: true, force: true });
      rmSync(this.runroot, { recursive: true, force: true });
      if (existsSync(RUNROOTS) && readdirSync(RUNROOTS).length === 0) rmdirSync(RUNROOTS);
    } catch (e) {
      errors.push((e as Error).message);
    }
    if (errors.length) throw new Error(errors.join("\n"));
  }
}

/**
 * Removes the podmans a killed run of this test left under /tmp/tapnet-podman-<prefix>/ (their
 * owner process gone), for prefixes starting with `prefixStart`. Those of a live run are left.
 */
export async function sweep(prefixStart: string): Promise<void> {
  for (const base of readdirSync("/tmp").filter((d) => d.startsWith(`tapnet-podman-${prefixStart}`))) {
    const dir = join("/tmp", base);
    const nodes = readdirSync(dir);
    const owner = nodes.map((n) => join(dir, n, "owner.pid")).find((f) => existsSync(f));
    if (owner && pidAlive(Number(readFileSync(owner, "utf8")))) continue;
    for (const n of nodes) {
      const nsFile = join(dir, n, "netns");
      await new Podman(join(dir, n), existsSync(nsFile) ? readFileSync(nsFile, "utf8") : "").destroy().catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Switches running in a lab's namespaces that the lab did not start: one started by hand in a
 * node's namespace (`nsenter --net=/run/netns/<prefix>-node1 tapnet switch ...`), or one whose
 * supervisor was killed. `lab down` stops them before it deletes the namespaces, since a
 * namespace deleted under a running process is only unmounted: the switch would go on, holding
 * it, with nothing left to stop it by.
 *
 * A process is in a namespace when /proc/PID/ns/net names the namespace's inode (the inode of
 * its /run/netns file); it is a switch when its command line runs tapnet's `switch` command.
 * Nothing else in the namespaces is touched (a user's iperf3 in a pod, the lab's etcd).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { sleep } from "./nodes.ts";

export interface NetnsProcess {
  pid: number;
  netns: string;
  argv: string[];
}

/** Is `argv` tapnet's `switch` command (on Node through bin/tapnet.mjs, on Deno through src/cli/main.ts)? */
export function isSwitchCommand(argv: string[]): boolean {
  // `tapnet switch ...`: the command comes right after the entry point.
  const entry = argv.findIndex((a) => /(^|\/)(tapnet\.mjs|tapnet|cli\/main\.ts)$/.test(a));
  return entry >= 0 && argv[entry + 1] === "switch" && !argv.some((a) => /(^|\/)supervise\.(ts|mjs)$/.test(a));
}

/** The processes whose network namespace is one of `names` (under /run/netns). */
export function processesIn(names: string[]): NetnsProcess[] {
  const byInode = new Map<string, string>();
  for (const n of names) {
    try {
      byInode.set(`net:[${statSync(`/run/netns/${n}`).ino}]`, n);
    } catch {
      // gone already
    }
  }
  if (!byInode.size) return [];
  const found: NetnsProcess[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const netns = byInode.get(readlinkSync(`/proc/${d}/ns/net`));
      if (!netns) continue;
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").filter(Boolean);
      found.push({ pid: Number(d), netns, argv });
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return found;
}

/** SIGTERM to every switch in `names`, SIGKILL to those still there after `timeoutMs`; returns what was found. */
export async function stopSwitchesIn(names: string[], say: (l: string) => void, timeoutMs = 10_000): Promise<NetnsProcess[]> {
  const found = processesIn(names).filter((p) => isSwitchCommand(p.argv));
  for (const p of found) {
    say(`a switch the lab did not start runs in ${p.netns} (pid ${p.pid}): stopping it`);
    try { process.kill(p.pid, "SIGTERM"); } catch { /* gone */ }
  }
  const alive = () => found.filter((p) => processesIn([p.netns]).some((q) => q.pid === p.pid));
  const t0 = Date.now();
  while (alive().length && Date.now() - t0 < timeoutMs) await sleep(100);
  for (const p of alive()) {
    say(`pid ${p.pid} did not stop on SIGTERM, killing it`);
    try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
  }
  return found;
}

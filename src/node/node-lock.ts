/**
 * One switch at a time for a node: the lock file beside its control socket
 * (/run/tapnet/node1.sock → /run/tapnet/node1.lock), locked with flock(2) for as long as the
 * switch runs. The kernel drops the lock when the process dies, `kill -9` included, so a lock
 * is never stale; the holder writes its pid into the file for the messages of those who wait.
 *
 * A switch started while another holds the lock refuses to start (naming that switch's pid),
 * before it changes anything: a second switch would take the first one's pods. A standby
 * (TAPNET_STANDBY=1 in its environment, as a supervisor sets it: the lab's, src/lab/supervisor.ts)
 * is a warm spare instead: started with everything loaded, it waits in flock(2) on a helper
 * thread (no polling: an idle standby costs no CPU), and starts the moment the switch holding
 * it dies, as systemd's Restart= would restart a service, without the seconds a runtime takes
 * to load (node/adopt.ts then takes the pods over).
 *
 * A standby says it is ready (loaded, waiting) in <control>.standby, its pid in it: a supervisor
 * can tell a spare that would take over at once from one still loading. The switch's pod file
 * (pod-state.ts) sits beside the lock too: <control>.pods.json.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { loadLibc, type Libc } from "../io/libc.ts";
import { errnoName } from "../io/libc.ts";
import { openSys } from "../io/sys.ts";
import type { Logger } from "./log.ts";

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;

/** The environment variable that makes a switch a standby. */
export const STANDBY_ENV = "TAPNET_STANDBY";

/** The files a node's switch keeps beside its control socket. */
export function nodeFiles(controlPath: string): { lock: string; pods: string; standby: string } {
  const base = controlPath.endsWith(".sock") ? controlPath.slice(0, -".sock".length) : controlPath;
  return { lock: `${base}.lock`, pods: `${base}.pods.json`, standby: `${base}.standby` };
}

/** The pid of the standby waiting, loaded, for the switch of `controlPath` to exit; undefined if none says it is. */
export function readyStandby(controlPath: string): number | undefined {
  return readPid(nodeFiles(controlPath).standby);
}

export class NodeLockError extends Error {}

export interface LockOptions {
  /** Wait for the holder to go (a standby) instead of refusing. */
  wait: boolean;
  log: Logger;
  /** A standby is ready once waiting and this has resolved (what it loads meanwhile). */
  loaded?: Promise<unknown>;
}

export class NodeLock {
  private constructor(private readonly libc: Libc, private fd: number, readonly path: string) {}

  /** Takes the lock of the switch whose control socket is `controlPath`. */
  static async acquire(controlPath: string, opts: LockOptions): Promise<NodeLock> {
    const { lock: path, standby } = nodeFiles(controlPath);
    const libc = await loadLibc();
    const sys = await openSys(libc);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, "", { flag: "a", mode: 0o600 }); // made if missing, never truncated here: its holder's pid stays readable
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw new NodeLockError(`cannot open the lock file ${path}: ${errnoName(libc.errno())}`);
    try {
      if (!sys.tryLock(fd)) {
        const holder = readPid(path);
        if (!opts.wait) throw new NodeLockError(`another switch${holder ? ` (pid ${holder})` : ""} holds ${path}: this node's switch is running already`);
        opts.log.info("standby: waiting for the running switch to exit", { lock: path, ...(holder ? { holder } : {}) });
        let waiting = true;
        void Promise.resolve(opts.loaded).then(() => { if (waiting) writeFileSync(standby, `${process.pid}\n`); });
        try {
          await sys.lock(fd);
        } finally {
          waiting = false;
        }
        if (readPid(standby) === process.pid) rmSync(standby, { force: true });
        opts.log.info("standby: the switch exited, taking over", { lock: path });
      }
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    writeFileSync(path, `${process.pid}\n`);
    return new NodeLock(libc, fd, path);
  }

  /** Lets go of the lock (a clean stop, at its very end). */
  release(): void {
    if (this.fd < 0) return;
    this.libc.close(this.fd);
    this.fd = -1;
  }
}

/** The pid a file names, if it names one. */
function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

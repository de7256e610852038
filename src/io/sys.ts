/**
 * Two libc calls beside libc.ts's, about the calling thread and process rather than devices
 * and sockets, over koffi on Node and Deno.dlopen on Deno:
 *
 *   setns(2)  `inNetns(path, fn)` runs a synchronous `fn` with the calling thread inside the
 *             network namespace at `path`, then puts the thread back. Only that thread moves
 *             (a network namespace is per thread), and only for the length of `fn`: no other
 *             JavaScript runs meanwhile, and the runtime's other threads never move. What `fn`
 *             opens there stays there: a /dev/net/tun fd opened inside a pod's namespace finds
 *             the pod's TAP by its name (io/tap.ts). Measured: about 2 ms for the two setns
 *             calls and a TAP's reopening.
 *   flock(2)  `tryLock(fd)`: an exclusive lock on an open file, never waiting (LOCK_NB). The
 *             kernel drops it when the process dies, however it dies: a `kill -9` frees it at
 *             once, which is what a node's lock file needs (node/node-lock.ts). `lock(fd)`
 *             waits for it without polling and without blocking JavaScript: the call blocks a
 *             helper thread (koffi's async call on Node, a nonblocking symbol on Deno), and the
 *             promise resolves the moment the holder lets go or dies.
 *
 * Errors come back as the errno's name; libc.ts's errno() reads the same thread's errno.
 */
import { Deno, isDeno } from "./runtime.ts";
import { errnoName, type Libc } from "./libc.ts";

export const CLONE_NEWNET = 0x40000000;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const EWOULDBLOCK = 11;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

interface SysCalls {
  setns(fd: number, nstype: number): number;
  flock(fd: number, op: number): number;
  /** flock(2) on a helper thread: the JavaScript thread goes on meanwhile. */
  flockOffThread(fd: number, op: number): Promise<number>;
}

let cached: SysCalls | undefined;

async function loadSys(): Promise<SysCalls> {
  if (cached) return cached;
  if (isDeno) {
    const { symbols: s } = Deno.dlopen("libc.so.6", {
      setns: { parameters: ["i32", "i32"], result: "i32" },
      flock: { parameters: ["i32", "i32"], result: "i32" },
      flockOffThread: { name: "flock", parameters: ["i32", "i32"], result: "i32", nonblocking: true },
    });
    cached = { setns: (fd, t) => s.setns(fd, t), flock: (fd, op) => s.flock(fd, op), flockOffThread: (fd, op) => s.flockOffThread(fd, op) };
  } else {
    const koffi = (await import("koffi")).default;
    const lib = koffi.load("libc.so.6");
    const setns = lib.func("int setns(int fd, int nstype)");
    const flock = lib.func("int flock(int fd, int op)");
    const flockOffThread = (fd: number, op: number) => new Promise<number>((resolve, reject) => {
      flock.async(fd, op, (err: unknown, r: number) => (err ? reject(err) : resolve(r)));
    });
    cached = { setns: (fd, t) => setns(fd, t), flock: (fd, op) => flock(fd, op), flockOffThread };
  }
  return cached;
}

export class SysError extends Error {}

/** What inNetns needs: loaded once, then every call is synchronous. */
export interface Sys {
  /** Runs `fn` with this thread in the network namespace at `path` (a /run/netns/NAME or /proc/PID/ns/net). */
  inNetns<T>(path: string, fn: () => T): T;
  /** An exclusive lock on `fd`: true if taken, false if another process holds it; throws on any other error. */
  tryLock(fd: number): boolean;
  /** An exclusive lock on `fd`, waited for on a helper thread: resolves once taken; rejects on an error other than waiting. */
  lock(fd: number): Promise<void>;
}

export async function openSys(libc: Libc): Promise<Sys> {
  const sys = await loadSys();
  const tryLock = (fd: number): boolean => {
    if (sys.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const e = libc.errno();
    if (e === EWOULDBLOCK) return false;
    throw new SysError(`flock: ${errnoName(e)}`);
  };
  return {
    inNetns<T>(path: string, fn: () => T): T {
      const home = libc.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (home < 0) throw new SysError(`cannot open this thread's network namespace: ${errnoName(libc.errno())}`);
      try {
        const there = libc.open(path, O_RDONLY | O_CLOEXEC);
        if (there < 0) throw new SysError(`cannot open the network namespace ${path}: ${errnoName(libc.errno())}`);
        try {
          if (sys.setns(there, CLONE_NEWNET) < 0) throw new SysError(`cannot enter the network namespace ${path}: ${errnoName(libc.errno())}`);
        } finally {
          libc.close(there);
        }
        try {
          return fn();
        } finally {
          // Back home whatever fn did; a thread left in a pod's namespace would be a quiet disaster.
          if (sys.setns(home, CLONE_NEWNET) < 0) throw new SysError(`cannot return to this thread's network namespace: ${errnoName(libc.errno())}`);
        }
      } finally {
        libc.close(home);
      }
    },
    tryLock,
    async lock(fd: number): Promise<void> {
      for (;;) {
        if ((await sys.flockOffThread(fd, LOCK_EX)) === 0) return;
        // It failed on the helper thread, whose errno is not this thread's: a call that does not
        // wait says why (and throws), takes the lock if it is free now, or it is held: wait again.
        if (tryLock(fd)) return;
      }
    },
  };
}

/**
 * The handful of libc calls tapnet makes, behind one interface, over koffi on Node and
 * Deno.dlopen on Deno. Calls return what the C function returns (-1 on error); `errno()`
 * then says why. Buffers are passed as Uint8Array views: a subarray passes its own offset,
 * so a caller can hand over a slot of a larger buffer without copying.
 */
import { Deno, isDeno } from "./runtime.ts";

export interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  /** ioctl whose argument is a pointer to `arg`. */
  ioctlPtr(fd: number, request: number, arg: Uint8Array): number;
  /** ioctl whose argument is passed by value. */
  ioctlInt(fd: number, request: number, arg: number): number;
  read(fd: number, buf: Uint8Array, len: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  /** `fds` holds `nfds` struct pollfd (8 bytes each). */
  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number;
  errno(): number;
}

let cached: Libc | undefined;

export async function loadLibc(): Promise<Libc> {
  cached ??= isDeno ? loadDeno() : await loadNode();
  return cached;
}

async function loadNode(): Promise<Libc> {
  const koffi = (await import("koffi")).default;
  const lib = koffi.load("libc.so.6");
  const open = lib.func("int open(const char *path, int flags)");
  const close = lib.func("int close(int fd)");
  const ioctl = lib.func("int ioctl(int fd, unsigned long request, ...)");
  const read = lib.func("int read(int fd, _Out_ uint8_t *buf, unsigned long n)");
  const write = lib.func("int write(int fd, const uint8_t *buf, unsigned long n)");
  const poll = lib.func("int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)");
  return {
    open: (path, flags) => open(path, flags),
    close: (fd) => close(fd),
    ioctlPtr: (fd, req, arg) => ioctl(fd, req, "uint8_t *", arg),
    ioctlInt: (fd, req, arg) => ioctl(fd, req, "unsigned long", arg),
    read: (fd, buf, len) => read(fd, buf, len),
    write: (fd, buf, len) => write(fd, buf, len),
    poll: (fds, nfds, timeout) => poll(fds, nfds, timeout),
    errno: () => koffi.errno(),
  };
}

function loadDeno(): Libc {
  // ssize_t results are declared i32: frames are far below 2 GiB, and x86-64 returns them in
  // rax, whose low half is eax. Deno cannot declare a variadic function; on x86-64 a fixed
  // call passes the same registers, so ioctl is declared twice, once per argument kind.
  const { symbols: s } = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    ioctlPtr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
    ioctlInt: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
    write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
    poll: { parameters: ["buffer", "usize", "i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  });
  const errnoView = new Deno.UnsafePointerView(s.__errno_location());
  const enc = new TextEncoder();
  return {
    open: (path, flags) => s.open(enc.encode(path + "\0"), flags),
    close: (fd) => s.close(fd),
    ioctlPtr: (fd, req, arg) => s.ioctlPtr(fd, BigInt(req), arg),
    ioctlInt: (fd, req, arg) => s.ioctlInt(fd, BigInt(req), BigInt(arg)),
    read: (fd, buf, len) => s.read(fd, buf, len),
    write: (fd, buf, len) => s.write(fd, buf, len),
    poll: (fds, nfds, timeout) => s.poll(fds, nfds, timeout),
    // errno is thread-local; each worker loads its own Libc, so this view is its own.
    errno: () => errnoView.getInt32(),
  };
}

/** errno values tapnet reacts to, and names for the rest. */
export const EAGAIN = 11;
export const EINTR = 4;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM: operation not permitted", 2: "ENOENT: no such file or directory",
  4: "EINTR", 5: "EIO: input/output error", 9: "EBADF: bad file descriptor",
  11: "EAGAIN", 12: "ENOMEM", 13: "EACCES: permission denied", 16: "EBUSY: device or resource busy",
  17: "EEXIST: already exists", 19: "ENODEV: no such device", 22: "EINVAL: invalid argument",
  24: "EMFILE: too many open files", 105: "ENOBUFS: no buffer space",
};
export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}

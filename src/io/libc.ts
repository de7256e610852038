/**
 * The libc calls tapnet makes (files, ioctl, poll, UDP sockets), behind one interface, over koffi on Node and
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
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, addrLen: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, valueLen: number): number;
  /** `addr` (16 bytes, sockaddr_in) receives the sender; `addrLen` (4 bytes) must hold 16 on entry. */
  recvfrom(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrLen: Uint8Array): number;
  sendto(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrLen: number): number;
  /** `msg` holds a struct msghdr whose pointers the caller filled in (see `addressOf`). */
  recvmsg(fd: number, msg: Uint8Array, flags: number): number;
  /** `msg` holds a struct msghdr whose pointers the caller filled in (see `addressOf`). */
  sendmsg(fd: number, msg: Uint8Array, flags: number): number;
  /** `iov` holds `count` struct iovec (16 bytes each) whose pointers the caller filled in. */
  writev(fd: number, iov: Uint8Array, count: number): number;
  /** sched_setaffinity: `pid` 0 is the calling thread; `mask` is a cpu_set_t of `size` bytes. */
  schedSetaffinity(pid: number, size: number, mask: Uint8Array): number;
  /** eventfd(2): a counter another thread can poll(); read and write move 8 bytes. */
  eventfd(initval: number, flags: number): number;
  /**
   * The address of `buf`'s first byte. Stable only for memory outside V8's heap: a typed array
   * over an ArrayBuffer larger than 64 bytes (V8 keeps smaller ones on its heap, where they move).
   */
  addressOf(buf: Uint8Array): number;
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
  const socket = lib.func("int socket(int domain, int type, int protocol)");
  const bind = lib.func("int bind(int fd, const uint8_t *addr, unsigned int len)");
  const setsockopt = lib.func("int setsockopt(int fd, int level, int name, const uint8_t *value, unsigned int len)");
  const recvfrom = lib.func("int recvfrom(int fd, _Out_ uint8_t *buf, unsigned long len, int flags, _Out_ uint8_t *addr, _Inout_ uint8_t *addrLen)");
  const sendto = lib.func("int sendto(int fd, const uint8_t *buf, unsigned long len, int flags, const uint8_t *addr, unsigned int addrLen)");
  const recvmsg = lib.func("int recvmsg(int fd, _Inout_ uint8_t *msg, int flags)");
  const sendmsg = lib.func("int sendmsg(int fd, const uint8_t *msg, int flags)");
  const writev = lib.func("int writev(int fd, const uint8_t *iov, int count)");
  const schedSetaffinity = lib.func("int sched_setaffinity(int pid, unsigned long size, const uint8_t *mask)");
  const eventfd = lib.func("int eventfd(unsigned int initval, int flags)");
  // memcpy of nothing returns its destination: the address of the memory koffi passed.
  const addressOf = lib.func("uintptr_t memcpy(uint8_t *dst, const uint8_t *src, unsigned long n)");
  return {
    open: (path, flags) => open(path, flags),
    close: (fd) => close(fd),
    ioctlPtr: (fd, req, arg) => ioctl(fd, req, "uint8_t *", arg),
    ioctlInt: (fd, req, arg) => ioctl(fd, req, "unsigned long", arg),
    read: (fd, buf, len) => read(fd, buf, len),
    write: (fd, buf, len) => write(fd, buf, len),
    poll: (fds, nfds, timeout) => poll(fds, nfds, timeout),
    socket: (d, t, p) => socket(d, t, p),
    bind: (fd, a, l) => bind(fd, a, l),
    setsockopt: (fd, level, name, v, l) => setsockopt(fd, level, name, v, l),
    recvfrom: (fd, buf, len, flags, a, al) => recvfrom(fd, buf, len, flags, a, al),
    sendto: (fd, buf, len, flags, a, al) => sendto(fd, buf, len, flags, a, al),
    recvmsg: (fd, msg, flags) => recvmsg(fd, msg, flags),
    sendmsg: (fd, msg, flags) => sendmsg(fd, msg, flags),
    writev: (fd, iov, count) => writev(fd, iov, count),
    schedSetaffinity: (pid, size, mask) => schedSetaffinity(pid, size, mask),
    eventfd: (initval, flags) => eventfd(initval, flags),
    addressOf: (buf) => Number(addressOf(buf, buf, 0)),
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
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "i32" },
    sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
    recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
    sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
    writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
    schedSetaffinity: { name: "sched_setaffinity", parameters: ["i32", "usize", "buffer"], result: "i32" },
    eventfd: { parameters: ["u32", "i32"], result: "i32" },
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
    socket: (d, t, p) => s.socket(d, t, p),
    bind: (fd, a, l) => s.bind(fd, a, l),
    setsockopt: (fd, level, name, v, l) => s.setsockopt(fd, level, name, v, l),
    recvfrom: (fd, buf, len, flags, a, al) => s.recvfrom(fd, buf, len, flags, a, al),
    sendto: (fd, buf, len, flags, a, al) => s.sendto(fd, buf, len, flags, a, al),
    recvmsg: (fd, msg, flags) => s.recvmsg(fd, msg, flags),
    sendmsg: (fd, msg, flags) => s.sendmsg(fd, msg, flags),
    writev: (fd, iov, count) => s.writev(fd, iov, count),
    schedSetaffinity: (pid, size, mask) => s.schedSetaffinity(pid, size, mask),
    eventfd: (initval, flags) => s.eventfd(initval, flags),
    addressOf: (buf) => Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf))),
    // errno is thread-local; each worker loads its own Libc, so this view is its own.
    errno: () => errnoView.getInt32(),
  };
}

/** errno values tapnet reacts to, and names for the rest. */
export const EAGAIN = 11;
export const EINTR = 4;
/** eventfd(2)'s flags. */
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM: operation not permitted", 2: "ENOENT: no such file or directory",
  4: "EINTR", 5: "EIO: input/output error", 9: "EBADF: bad file descriptor",
  11: "EAGAIN", 12: "ENOMEM", 13: "EACCES: permission denied", 16: "EBUSY: device or resource busy",
  17: "EEXIST: already exists", 19: "ENODEV: no such device", 22: "EINVAL: invalid argument",
  24: "EMFILE: too many open files", 98: "EADDRINUSE: address already in use",
  99: "EADDRNOTAVAIL: no such address on this machine", 105: "ENOBUFS: no buffer space",
};
export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}

// An in-memory Libc for the datapath's tests: TAP fds with frames waiting to be read and a
// record of what was written, one UDP socket with datagrams waiting and a record of what was
// sent, poll over both, and addresses (`addressOf`) that lead back to the Uint8Arrays they
// were taken of, so that iovec arrays and msghdrs are read as the kernel would read them.
import { EAGAIN, type Libc } from "../../src/io/libc.ts";
import { SOCKADDR_IN_LEN, SOL_UDP, UDP_GRO, UDP_SEGMENT, sockaddrAddress, sockaddrIn, sockaddrPort } from "../../src/io/udp.ts";

export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const EIO = 5;
export const ENOBUFS = 105;
export const EINVAL = 22;
const ENOPROTOOPT = 92;

/** What a read of a TAP returns: a frame, an error (errno), or end of file. */
export type TapRead = Uint8Array | { errno: number } | "eof";

export class FakeTap {
  /** Read in order; once empty, reads fail with EAGAIN. */
  readonly reads: TapRead[] = [];
  /** Every frame written, whole (writev's pieces put together). */
  readonly written: Uint8Array[] = [];
  /** How each frame was written: "write", or "writev/<pieces>". */
  readonly calls: string[] = [];
  readCalls = 0;
  /** When set, poll reports these events for this fd whatever is queued. */
  revents?: number;
  /** When set, writes fail with this errno. */
  writeErrno = 0;
  /** When set, writes take one byte less than asked (a short write). */
  shortWrites = false;

  constructor(readonly fd: number) {}
}

export interface Datagram {
  bytes: Uint8Array;
  /** The sender's address and port. */
  address: number;
  port: number;
  /** With UDP_GRO: the size of the datagrams of this run (the cmsg the kernel adds); absent for one. */
  gro?: number;
  /** A control message of another kind, in place of the UDP_GRO one (an int, as IP_TOS's). */
  cmsg?: { level: number; type: number; value: number };
}

export interface Sent {
  call: "sendto" | "sendmsg";
  address: number;
  port: number;
  bytes: Uint8Array;
  /** UDP_SEGMENT's segment size from sendmsg's control message; 0 when there is none. */
  segment: number;
  /** sendmsg's iovec count; 1 for sendto. */
  pieces: number;
}

export class FakeUdp {
  readonly incoming: (Datagram | { errno: number })[] = [];
  readonly sent: Sent[] = [];
  readonly options: { level: number; name: number; value: number }[] = [];
  /** Option names setsockopt refuses (ENOPROTOOPT), as a kernel without UDP_SEGMENT or UDP_GRO does. */
  readonly refused = new Set<number>();
  recvCalls = 0;
  /** When set, sends fail with this errno. */
  sendErrno = 0;
  /** When set, sends take one byte less than asked (as no UDP send does, but a caller must not trust that). */
  shortSends = false;

  constructor(readonly fd: number) {}
}

const SPACE = 2 ** 32;

function getPtr(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * SPACE;
}

function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  return all;
}

export class FakeLibc implements Libc {
  readonly taps = new Map<number, FakeTap>();
  readonly udp: FakeUdp;
  /** Each poll call: the fds and events asked for, and the timeout. */
  readonly polls: { fds: number[]; events: number[]; timeout: number }[] = [];
  /** Called at the end of each poll, after revents are set (the tests stop the loop from here). */
  onPoll?: () => void;
  /** Poll calls still to fail with EINTR (revents left as they were). */
  pollFailures = 0;
  private lastErrno = 0;
  private readonly buffers: ArrayBufferLike[] = [];

  constructor(udpFd = 3) {
    this.udp = new FakeUdp(udpFd);
  }

  tap(fd: number): FakeTap {
    let t = this.taps.get(fd);
    if (!t) this.taps.set(fd, (t = new FakeTap(fd)));
    return t;
  }

  /** The memory at a fake address, as the kernel would find it. */
  memory(address: number, len: number): Uint8Array {
    const id = Math.floor(address / SPACE) - 1;
    const off = address % SPACE;
    const buf = this.buffers[id];
    if (!buf || off + len > buf.byteLength) throw new Error(`bad address ${address} (${len} bytes)`);
    return new Uint8Array(buf, off, len);
  }

  private iovecs(dv: DataView, off: number, count: number): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    for (let k = 0; k < count; k++) pieces.push(this.memory(getPtr(dv, off + k * 16), getPtr(dv, off + k * 16 + 8)));
    return pieces;
  }

  private fail(errno: number): number {
    this.lastErrno = errno;
    return -1;
  }

  private tapOf(fd: number): FakeTap {
    const t = this.taps.get(fd);
    if (!t) throw new Error(`fd ${fd} is not a TAP`);
    return t;
  }

  addressOf(buf: Uint8Array): number {
    let id = this.buffers.indexOf(buf.buffer);
    if (id < 0) id = this.buffers.push(buf.buffer) - 1;
    return (id + 1) * SPACE + buf.byteOffset;
  }

  errno(): number {
    return this.lastErrno;
  }

  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number {
    const dv = viewOf(fds);
    const call = { fds: [] as number[], events: [] as number[], timeout: timeoutMs };
    this.polls.push(call);
    if (this.pollFailures > 0) {
      this.pollFailures--;
      this.onPoll?.();
      return this.fail(4);
    }
    let ready = 0;
    for (let k = 0; k < nfds; k++) {
      const fd = dv.getInt32(k * 8, true);
      const events = dv.getInt16(k * 8 + 4, true);
      call.fds.push(fd);
      call.events.push(events);
      let revents: number;
      if (fd === this.udp.fd) revents = this.udp.incoming.length ? POLLIN & events : 0;
      else if (this.eventfds.has(fd)) revents = this.eventfds.get(fd)!.count ? POLLIN & events : 0;
      else {
        const t = this.taps.get(fd);
        revents = !t ? POLLNVAL : t.revents ?? (t.reads.length ? POLLIN & events : 0);
      }
      dv.setInt16(k * 8 + 6, revents, true);
      if (revents) ready++;
    }
    this.onPoll?.();
    return ready;
  }

  read(fd: number, buf: Uint8Array, len: number): number {
    const e = this.eventfds.get(fd);
    if (e) {
      e.reads++;
      if (len < 8) return this.fail(22);
      if (e.count === 0) return this.fail(EAGAIN);
      new DataView(buf.buffer, buf.byteOffset, 8).setBigUint64(0, BigInt(e.count), true);
      e.count = 0;
      return 8;
    }
    const t = this.tapOf(fd);
    t.readCalls++;
    const r = t.reads.shift();
    if (r === undefined) return this.fail(EAGAIN);
    if (r === "eof") return 0;
    if (!(r instanceof Uint8Array)) return this.fail(r.errno);
    const n = Math.min(len, r.length);
    buf.set(r.subarray(0, n));
    return n;
  }

  private taken(t: FakeTap, bytes: Uint8Array, how: string): number {
    if (t.writeErrno) return this.fail(t.writeErrno);
    t.written.push(bytes.slice());
    t.calls.push(how);
    return t.shortWrites ? bytes.length - 1 : bytes.length;
  }

  write(fd: number, buf: Uint8Array, len: number): number {
    const e = this.eventfds.get(fd);
    if (e) {
      e.count += Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
      return len;
    }
    return this.taken(this.tapOf(fd), buf.subarray(0, len), "write");
  }

  writev(fd: number, iov: Uint8Array, count: number): number {
    return this.taken(this.tapOf(fd), concat(this.iovecs(viewOf(iov), 0, count)), `writev/${count}`);
  }

  setsockopt(fd: number, level: number, name: number, value: Uint8Array, valueLen: number): number {
    if (fd !== this.udp.fd) throw new Error(`setsockopt on fd ${fd}`);
    this.udp.options.push({ level, name, value: viewOf(value).getInt32(0, true) });
    if (valueLen !== 4) throw new Error("socket options here are ints");
    return this.udp.refused.has(name) ? this.fail(ENOPROTOOPT) : 0;
  }

  private sent(s: Sent): number {
    if (this.udp.sendErrno) return this.fail(this.udp.sendErrno);
    this.udp.sent.push(s);
    return this.udp.shortSends ? s.bytes.length - 1 : s.bytes.length;
  }

  sendto(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrLen: number): number {
    if (fd !== this.udp.fd || flags !== 0 || addrLen !== SOCKADDR_IN_LEN || addr[0] !== 2) throw new Error("a sendto the datapath does not make");
    return this.sent({ call: "sendto", address: sockaddrAddress(addr), port: sockaddrPort(addr), bytes: buf.slice(0, len), segment: 0, pieces: 1 });
  }

  sendmsg(fd: number, msg: Uint8Array, flags: number): number {
    if (fd !== this.udp.fd || flags !== 0) throw new Error("a sendmsg the datapath does not make");
    const dv = viewOf(msg);
    if (dv.getUint32(8, true) < SOCKADDR_IN_LEN) return this.fail(EINVAL); // as Linux: an AF_INET name is 16 bytes
    const name = this.memory(getPtr(dv, 0), dv.getUint32(8, true));
    const pieces = getPtr(dv, 24);
    const bytes = concat(this.iovecs(viewOf(this.memory(getPtr(dv, 16), pieces * 16)), 0, pieces));
    let segment = 0;
    const controlLen = getPtr(dv, 40);
    if (controlLen > 0) {
      const c = viewOf(this.memory(getPtr(dv, 32), controlLen));
      if (getPtr(c, 0) === 18 && c.getInt32(8, true) === SOL_UDP && c.getInt32(12, true) === UDP_SEGMENT) segment = c.getUint16(16, true);
      else throw new Error("a control message the datapath does not send");
    }
    return this.sent({ call: "sendmsg", address: sockaddrAddress(name), port: sockaddrPort(name), bytes, segment, pieces });
  }

  private nextDatagram(): Datagram | number {
    this.udp.recvCalls++;
    const d = this.udp.incoming.shift();
    if (d === undefined) return this.fail(EAGAIN);
    if (!("bytes" in d)) return this.fail(d.errno);
    return d;
  }

  recvfrom(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrLen: Uint8Array): number {
    if (fd !== this.udp.fd || flags !== 0) throw new Error("a recvfrom the datapath does not make");
    const d = this.nextDatagram();
    if (typeof d === "number") return d;
    const room = viewOf(addrLen).getUint32(0, true);
    addr.set(sockaddrIn(d.address, d.port).subarray(0, Math.min(room, SOCKADDR_IN_LEN)));
    viewOf(addrLen).setUint32(0, SOCKADDR_IN_LEN, true);
    const n = Math.min(len, d.bytes.length);
    buf.set(d.bytes.subarray(0, n));
    return n;
  }

  recvmsg(fd: number, msg: Uint8Array, flags: number): number {
    if (fd !== this.udp.fd || flags !== 0) throw new Error("a recvmsg the datapath does not make");
    const dv = viewOf(msg);
    const d = this.nextDatagram();
    if (typeof d === "number") return d;
    const room = dv.getUint32(8, true);
    this.memory(getPtr(dv, 0), room).set(sockaddrIn(d.address, d.port).subarray(0, Math.min(room, SOCKADDR_IN_LEN)));
    dv.setUint32(8, SOCKADDR_IN_LEN, true);
    let n = 0;
    for (const piece of this.iovecs(viewOf(this.memory(getPtr(dv, 16), getPtr(dv, 24) * 16)), 0, getPtr(dv, 24))) {
      const k = Math.min(piece.length, d.bytes.length - n);
      piece.set(d.bytes.subarray(n, n + k));
      n += k;
    }
    const controlRoom = getPtr(dv, 40);
    const cmsg = d.cmsg ?? (d.gro !== undefined ? { level: SOL_UDP, type: UDP_GRO, value: d.gro } : undefined);
    if (cmsg && controlRoom >= 24) {
      // struct cmsghdr: len (CMSG_LEN(4) = 20), level, type, then the int (the segment size)
      const c = viewOf(this.memory(getPtr(dv, 32), 24));
      c.setUint32(0, 20, true);
      c.setUint32(4, 0, true);
      c.setInt32(8, cmsg.level, true);
      c.setInt32(12, cmsg.type, true);
      c.setInt32(16, cmsg.value, true);
      dv.setUint32(40, 24, true);
      dv.setUint32(44, 0, true);
    } else {
      dv.setUint32(40, 0, true);
      dv.setUint32(44, 0, true);
    }
    return n;
  }

  open(): number { throw new Error("the datapath opens nothing"); }
  close(): number { throw new Error("the datapath closes nothing"); }
  ioctlPtr(): number { throw new Error("the datapath makes no ioctl"); }
  ioctlInt(): number { throw new Error("the datapath makes no ioctl"); }
  socket(): number { throw new Error("the datapath opens no socket"); }
  bind(): number { throw new Error("the datapath binds nothing"); }
  schedSetaffinity(): number { throw new Error("the datapath does not pin itself"); }

  /** eventfd(2)'s counters, by fd: readable while not 0; a read takes it all, a write adds. */
  readonly eventfds = new Map<number, { count: number; reads: number }>();
  eventfd(initval: number): number {
    const fd = 900 + this.eventfds.size;
    this.eventfds.set(fd, { count: initval, reads: 0 });
    return fd;
  }
}

/**
 * The tunnel's UDP socket, opened through libc rather than node:dgram: the datapath worker
 * polls its fd next to the TAPs' and moves datagrams with recvfrom/sendto straight from and to
 * its frame slots (node:dgram would copy each into a Buffer on the event loop).
 *
 * Addresses travel as struct sockaddr_in (16 bytes): family (little-endian 2), port and
 * address (big-endian), 8 bytes of zero. Each peer's is built once, when the switch starts.
 */
import { get16, get32, put16, put32, putLe16 } from "../wire/bytes.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { Iovecs, putPtr } from "./iovec.ts";
import { errnoName, type Libc } from "./libc.ts";

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SOCKADDR_IN_LEN = 16;
export const SOL_UDP = 17;
/** Segmentation offload: a send larger than this many bytes leaves as datagrams of this size (Linux 4.18). */
export const UDP_SEGMENT = 103;
/** Receive offload: consecutive equal-sized datagrams of one flow arrive in one read (Linux 5.0). */
export const UDP_GRO = 104;

export interface UdpSocket {
  fd: number;
  address: number;
  port: number;
}

/** A socket the kernel refused: `code` is the errno's name alone ("EADDRINUSE"), for callers to explain. */
export class UdpError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** "EADDRINUSE" of errnoName's "EADDRINUSE: address already in use" (or "errno 200"). */
const errnoCode = (e: number): string => errnoName(e).split(":")[0];

export function sockaddrIn(address: number, port: number): Uint8Array {
  const a = new Uint8Array(SOCKADDR_IN_LEN);
  putLe16(a, 0, AF_INET);
  put16(a, 2, port);
  put32(a, 4, address);
  return a;
}

/** The address of a sockaddr_in, as a 32-bit unsigned integer. */
export function sockaddrAddress(a: Uint8Array): number {
  return get32(a, 4);
}

export function sockaddrPort(a: Uint8Array): number {
  return get16(a, 2);
}

function intOpt(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/** A non-blocking UDP socket bound to `address`:`port`, with large kernel buffers. */
export function openUdp(libc: Libc, address: number, port: number, bufferBytes = 4 << 20): UdpSocket {
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const e = libc.errno();
    throw new UdpError(`cannot open a UDP socket: ${errnoName(e)}`, errnoCode(e));
  }
  // Best effort: the kernel's default buffers drop bursts a batch-reading switch would take.
  libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, intOpt(bufferBytes), 4);
  libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, intOpt(bufferBytes), 4);
  if (libc.bind(fd, sockaddrIn(address, port), SOCKADDR_IN_LEN) < 0) {
    const e = libc.errno();
    libc.close(fd);
    throw new UdpError(`cannot bind UDP ${formatIpv4(address)}:${port}: ${errnoName(e)}`, errnoCode(e));
  }
  return { fd, address, port };
}

/** Turns on UDP_SEGMENT with datagrams of `size` bytes; false where the kernel lacks it. */
export function enableUdpGso(libc: Libc, fd: number, size: number): boolean {
  return libc.setsockopt(fd, SOL_UDP, UDP_SEGMENT, intOpt(size), 4) === 0;
}

/** Turns on UDP_GRO; false where the kernel lacks it. */
export function enableUdpGro(libc: Libc, fd: number): boolean {
  return libc.setsockopt(fd, SOL_UDP, UDP_GRO, intOpt(1), 4) === 0;
}

/**
 * recvmsg for a UDP_GRO socket, without allocating per call: one struct msghdr, its iovec, the
 * sender's address and a control buffer, built once in memory outside V8's heap. Each call
 * points the iovec at the caller's buffer and reads the GRO segment size from the control
 * message the kernel adds when it coalesced datagrams.
 *
 *   struct msghdr (x86-64): name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48
 *   struct iovec: base 0, len 8;  struct cmsghdr: len 0, level 8, type 12, data 16
 */
export class GroReceiver {
  private readonly mem = new Uint8Array(512);
  private readonly dv = new DataView(this.mem.buffer);
  private readonly msg: Uint8Array;
  /** The sender's address of the last datagram read (a view into this receiver's memory). */
  readonly from: Uint8Array;
  /** The GRO segment size of the last read: its datagrams' size (all but the last), or 0 if one. */
  segmentSize = 0;

  constructor(private readonly libc: Libc) {
    const base = libc.addressOf(this.mem);
    // Layout in `mem`: msghdr 0..56, iovec 64..80, name 96..112, control 128..256.
    this.msg = this.mem.subarray(0, 56);
    this.from = this.mem.subarray(96, 112);
    this.putPtr(0, base + 96);
    this.putPtr(16, base + 64);
    this.putPtr(24, 1);
    this.putPtr(32, base + 128);
  }

  private putPtr(off: number, v: number): void {
    putPtr(this.dv, off, v);
  }

  /** Reads into `len` bytes at `address` (from libc.addressOf); returns bytes read or -1. */
  read(fd: number, address: number, len: number): number {
    const dv = this.dv;
    dv.setUint32(8, SOCKADDR_IN_LEN, true);
    this.putPtr(64, address);
    this.putPtr(72, len);
    this.putPtr(40, 128);
    const n = this.libc.recvmsg(fd, this.msg, 0);
    this.segmentSize = 0;
    if (n <= 0) return n;
    const clen = dv.getUint32(40, true);
    if (clen >= 20 && dv.getInt32(128 + 8, true) === SOL_UDP && dv.getInt32(128 + 12, true) === UDP_GRO) {
      this.segmentSize = dv.getInt32(128 + 16, true);
    }
    return n;
  }
}

/**
 * sendmsg over a gather list, for the tapnet backend (GatherSink): each piece is an iovec
 * pointing into the caller's memory (a frame slot, the backend's headers), so nothing is
 * copied in userspace, and with UDP_SEGMENT the kernel cuts the whole into datagrams of the
 * size given in a control message. Built once, outside V8's heap: the msghdr, the control
 * message and the peers' addresses (`mem`), and the iovecs. Pieces must stay where they are
 * until `send`.
 *
 *   mem: msghdr 0..56 | cmsghdr + u16 segment size 64..88 | peers' sockaddr_in from 96
 */
export class GatherSender {
  private readonly mem: Uint8Array;
  private readonly dv: DataView;
  private readonly base: number;
  private readonly msg: Uint8Array;
  private readonly iov: Iovecs;

  constructor(private readonly libc: Libc, private readonly fd: number, peers: Uint8Array[], maxPieces: number, private readonly segment: boolean) {
    this.mem = new Uint8Array(Math.max(96 + peers.length * SOCKADDR_IN_LEN, 128));
    this.dv = new DataView(this.mem.buffer);
    this.base = libc.addressOf(this.mem);
    this.msg = this.mem.subarray(0, 56);
    this.iov = new Iovecs(libc, maxPieces);
    peers.forEach((p, i) => this.mem.set(p, 96 + i * SOCKADDR_IN_LEN));
    putPtr(this.dv, 8, SOCKADDR_IN_LEN);
    putPtr(this.dv, 16, this.iov.address);
    if (segment) {
      // struct cmsghdr: len (CMSG_LEN(2) = 18), level, type; the data, a u16, right after
      putPtr(this.dv, 32, this.base + 64);
      putPtr(this.dv, 40, 24); // CMSG_SPACE(2)
      putPtr(this.dv, 64, 18);
      this.dv.setInt32(72, SOL_UDP, true);
      this.dv.setInt32(76, UDP_SEGMENT, true);
    }
  }

  add(buf: Uint8Array, off: number, len: number): void {
    this.iov.add(buf, off, len);
  }

  send(peer: number, segment: number): boolean {
    const total = this.iov.total;
    putPtr(this.dv, 0, this.base + 96 + peer * SOCKADDR_IN_LEN);
    putPtr(this.dv, 24, this.iov.count);
    if (this.segment) putLe16(this.mem, 80, segment);
    this.iov.reset();
    return this.libc.sendmsg(this.fd, this.msg, 0) === total;
  }
}

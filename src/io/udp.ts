/**
 * The tunnel's UDP socket, opened through libc rather than node:dgram: the datapath worker
 * polls its fd next to the TAPs' and moves datagrams with recvfrom/sendto straight from and to
 * its frame slots (node:dgram would copy each into a Buffer on the event loop).
 *
 * Addresses travel as struct sockaddr_in (16 bytes): family (little-endian 2), port and
 * address (big-endian), 8 bytes of zero. Each peer's is built once, when the switch starts.
 */
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

export interface UdpSocket {
  fd: number;
  address: number;
  port: number;
}

export class UdpError extends Error {}

export function sockaddrIn(address: number, port: number): Uint8Array {
  const a = new Uint8Array(SOCKADDR_IN_LEN);
  a[0] = AF_INET;
  a[2] = port >>> 8;
  a[3] = port & 0xff;
  a[4] = address >>> 24;
  a[5] = (address >>> 16) & 0xff;
  a[6] = (address >>> 8) & 0xff;
  a[7] = address & 0xff;
  return a;
}

/** The address of a sockaddr_in, as a 32-bit unsigned integer. */
export function sockaddrAddress(a: Uint8Array): number {
  return ((a[4] << 24) | (a[5] << 16) | (a[6] << 8) | a[7]) >>> 0;
}

export function sockaddrPort(a: Uint8Array): number {
  return (a[2] << 8) | a[3];
}

function intOpt(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/** A non-blocking UDP socket bound to `address`:`port`, with large kernel buffers. */
export function openUdp(libc: Libc, address: number, port: number, bufferBytes = 4 << 20): UdpSocket {
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new UdpError(`cannot open a UDP socket: ${errnoName(libc.errno())}`);
  // Best effort: the kernel's default buffers drop bursts a batch-reading switch would take.
  libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, intOpt(bufferBytes), 4);
  libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, intOpt(bufferBytes), 4);
  if (libc.bind(fd, sockaddrIn(address, port), SOCKADDR_IN_LEN) < 0) {
    const e = libc.errno();
    libc.close(fd);
    const ip = `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
    throw new UdpError(`cannot bind UDP ${ip}:${port}: ${errnoName(e)}`);
  }
  return { fd, address, port };
}

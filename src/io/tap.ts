/**
 * TAP devices: an Ethernet interface in the kernel whose other end is a file descriptor here.
 * A frame the kernel sends out of the interface is read from the fd; a frame written to the fd
 * arrives on the interface as if received from a wire.
 *
 * tapnet opens them persistent (TUNSETPERSIST: the device, with its addresses and routes, outlives
 * the fd, so a pod keeps its eth0 while its switch is dead and a new switch attaches to it
 * again), non-blocking (a datapath thread polls them) and with a virtio_net_hdr in front of
 * every frame, which lets the kernel hand over and accept TCP super-frames of up to 64 KB when
 * offloads are on (see wire/virtio.ts). `closeTap` clears the persistence before it closes, so
 * a port removed on purpose (a pod deleted, a switch stopped cleanly) takes its device with it;
 * only a process that dies without closing leaves the device behind, to be adopted.
 *
 * Opening a TAP by a name that exists attaches to that device (if no fd holds it: else EBUSY);
 * by a name that does not, creates it. The device is looked up in the network namespace the
 * /dev/net/tun fd was opened in, so a TAP that lives in a pod's namespace is reopened by
 * opening /dev/net/tun from inside it (io/sys.ts's inNetns).
 *
 * Constants and struct layout: linux/if_tun.h, linux/if.h (x86-64).
 */
import { putLe16 } from "../wire/bytes.ts";
import { ETH_OFF } from "../wire/virtio.ts";
import { errnoName, type Libc } from "./libc.ts";

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const TUNSETIFF = 0x400454ca;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNSETPERSIST = 0x400454cb;

export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;

export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;

/** struct ifreq: 16 bytes of name, then a union whose first member is `short ifr_flags`. */
export const IFREQ_SIZE = 40;
export const IFNAMSIZ = 16;

export interface TapOptions {
  /** Let the kernel pass partial checksums and TCP super-frames (needs vnetHdr). */
  offloads: boolean;
  /** Keep the device when the fd is closed without closeTap (the process died). Default true. */
  persist?: boolean;
}

export interface Tap {
  fd: number;
  name: string;
  /** Bytes of virtio_net_hdr before each frame read or written. */
  vnetHdrLen: number;
  offloads: boolean;
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace. */
export function checkIfName(name: string): string | undefined {
  if (typeof name !== "string") return "interface name must be a string";
  if (name.length === 0 || name.length >= IFNAMSIZ) return `interface name "${name}" must be 1-15 characters`;
  if (/[\s/:]/.test(name) || name === "." || name === "..") return `interface name "${name}" has a character Linux refuses`;
  return undefined;
}

export function encodeIfreq(name: string, flags: number): Uint8Array {
  const ifr = new Uint8Array(IFREQ_SIZE);
  new TextEncoder().encodeInto(name, ifr.subarray(0, IFNAMSIZ - 1));
  putLe16(ifr, 16, flags);
  return ifr;
}

export class TapError extends Error {}

export function openTap(libc: Libc, name: string, opts: TapOptions): Tap {
  const bad = checkIfName(name);
  if (bad) throw new TapError(bad);
  const fd = libc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw new TapError(`cannot open /dev/net/tun: ${errnoName(libc.errno())}`);
  const fail = (what: string): never => {
    const e = libc.errno();
    libc.close(fd);
    throw new TapError(`${what} for TAP ${name}: ${errnoName(e)}`);
  };
  if (libc.ioctlPtr(fd, TUNSETIFF, encodeIfreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)) < 0) fail("TUNSETIFF");
  const hdrLen = new Uint8Array(4);
  hdrLen[0] = ETH_OFF; // the virtio_net_hdr's size: each frame starts after it
  if (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, hdrLen) < 0) fail("TUNSETVNETHDRSZ");
  const offloadFlags = opts.offloads ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 : 0;
  if (libc.ioctlInt(fd, TUNSETOFFLOAD, offloadFlags) < 0) fail("TUNSETOFFLOAD");
  if (opts.persist !== false && libc.ioctlInt(fd, TUNSETPERSIST, 1) < 0) fail("TUNSETPERSIST");
  return { fd, name, vnetHdrLen: ETH_OFF, offloads: opts.offloads };
}

/** Removes the device: persistence cleared, then the fd closed (the kernel deletes a non-persistent TAP with its last fd). */
export function closeTap(libc: Libc, tap: Tap): void {
  libc.ioctlInt(tap.fd, TUNSETPERSIST, 0); // fails only if the device is gone already
  libc.close(tap.fd);
}



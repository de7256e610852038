/**
 * The building blocks of the hostile-input script's traffic (hostile-tunnel.ts, hostile-frames.ts):
 * a seeded random source, and writers of Ethernet, IPv4, ICMP, UDP and TCP headers straight into
 * a caller's buffer, with addresses as numbers and checksums right, so that a generator can make
 * a well-formed packet and then break exactly the field it means to. Nothing here allocates per
 * packet: a sender makes a million of them a run.
 */
import { put16, put32 } from "../wire/bytes.ts";
import { internetChecksum, pseudoHeaderSum } from "../wire/checksum.ts";
import { ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { IPV4_CHECKSUM, IPV4_FLAG_MF, IPV4_MIN_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "../wire/ipv4.ts";
import { putMac } from "../wire/mac.ts";

/** A seeded random source (mulberry32): the same seed gives the same traffic, so a crash can be replayed. */
export class Rng {
  private a: number;

  constructor(seed: number) {
    this.a = seed >>> 0;
  }

  /** 32 random bits, as a number from 0 to 2^32 - 1. */
  u32(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer from 0 to n - 1. */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  /** An integer from lo to hi, both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** Index of a weighted choice: `weights` need not sum to 1. */
  weighted(weights: readonly number[], total: number): number {
    let x = (this.u32() / 4294967296) * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    return weights.length - 1;
  }

  fill(b: Uint8Array, off: number, len: number): void {
    let i = 0;
    for (; i + 4 <= len; i += 4) put32(b, off + i, this.u32());
    for (; i < len; i++) b[off + i] = this.u32() & 0xff;
  }
}

/** A MAC as two numbers (mac.ts's hi and lo): the first two bytes and the last four. */
export interface Mac {
  hi: number;
  lo: number;
}

export function macOf(s: string): Mac {
  const h = s.split(":").map((x) => parseInt(x, 16));
  if (h.length !== 6 || h.some((x) => !(x >= 0 && x <= 255))) throw new Error(`not a MAC address: ${s}`);
  return { hi: (h[0] << 8) | h[1], lo: ((h[2] << 24) | (h[3] << 16) | (h[4] << 8) | h[5]) >>> 0 };
}

/** A random unicast, locally administered MAC (02:...), or a group one when `group`. */
export function randomMac(rng: Rng, group = false): Mac {
  const hi = ((rng.u32() & 0xfcff) | (group ? 0x0100 : 0x0200)) & 0xffff;
  return { hi, lo: rng.u32() };
}

export const BROADCAST: Mac = { hi: 0xffff, lo: 0xffffffff };

export function writeEth(b: Uint8Array, off: number, dst: Mac, src: Mac, type: number): number {
  putMac(b, off, dst.hi, dst.lo);
  putMac(b, off + 6, src.hi, src.lo);
  put16(b, off + 12, type);
  return 14;
}

/** A 20-byte IPv4 header with its checksum, for `payloadLen` bytes after it. */
export function writeIpv4(b: Uint8Array, off: number, src: number, dst: number, protocol: number, payloadLen: number, ttl = 64, id = 0, flagsFrag = 0): number {
  b[off] = 0x45;
  b[off + 1] = 0;
  put16(b, off + 2, IPV4_MIN_HEADER_LEN + payloadLen);
  put16(b, off + 4, id);
  put16(b, off + 6, flagsFrag);
  b[off + 8] = ttl;
  b[off + 9] = protocol;
  put16(b, off + IPV4_CHECKSUM, 0);
  put32(b, off + 12, src);
  put32(b, off + 16, dst);
  put16(b, off + IPV4_CHECKSUM, internetChecksum(b, off, IPV4_MIN_HEADER_LEN));
  return IPV4_MIN_HEADER_LEN;
}

/** Writes the checksum of the 20-byte IPv4 header at `ip` again, after a field of it was changed. */
export function fixIpv4Checksum(b: Uint8Array, ip: number): void {
  put16(b, ip + IPV4_CHECKSUM, 0);
  put16(b, ip + IPV4_CHECKSUM, internetChecksum(b, ip, IPV4_MIN_HEADER_LEN));
}

/** A UDP header over `payloadLen` bytes already at off + 8; checksum 0 (none) unless `checksum`. */
export function writeUdp(b: Uint8Array, off: number, src: number, dst: number, sport: number, dport: number, payloadLen: number, checksum = true): number {
  const len = 8 + payloadLen;
  put16(b, off, sport);
  put16(b, off + 2, dport);
  put16(b, off + 4, len);
  put16(b, off + 6, 0);
  if (checksum) put16(b, off + 6, internetChecksum(b, off, len, pseudoHeaderSum(src, dst, PROTO_UDP, len)) || 0xffff);
  return 8;
}

export const INNER_KINDS = ["icmp", "udp", "tcp"] as const;

/**
 * A whole IPv4 packet at `off` from `src` to `dst`: an ICMP echo request, a UDP datagram or a
 * TCP SYN (`kind` 0, 1, 2: INNER_KINDS; random by default), with `payloadLen` random bytes,
 * every checksum right. Returns its length.
 */
export function writePacket(rng: Rng, b: Uint8Array, off: number, src: number, dst: number, payloadLen: number, ttl = 64, kind = rng.int(3)): number {
  const l4 = off + IPV4_MIN_HEADER_LEN;
  if (kind === 0) {
    const len = 8 + payloadLen;
    rng.fill(b, l4 + 8, payloadLen);
    b[l4] = 8;
    b[l4 + 1] = 0;
    put16(b, l4 + 2, 0);
    put32(b, l4 + 4, rng.u32());
    put16(b, l4 + 2, internetChecksum(b, l4, len));
    writeIpv4(b, off, src, dst, PROTO_ICMP, len, ttl, rng.int(65536));
    return IPV4_MIN_HEADER_LEN + len;
  }
  if (kind === 1) {
    rng.fill(b, l4 + 8, payloadLen);
    writeUdp(b, l4, src, dst, rng.range(1024, 65535), rng.range(1, 65535), payloadLen);
    writeIpv4(b, off, src, dst, PROTO_UDP, 8 + payloadLen, ttl, rng.int(65536));
    return IPV4_MIN_HEADER_LEN + 8 + payloadLen;
  }
  const len = 20 + payloadLen;
  rng.fill(b, l4 + 20, payloadLen);
  put16(b, l4, rng.range(1024, 65535));
  put16(b, l4 + 2, rng.range(1, 65535));
  put32(b, l4 + 4, rng.u32());
  put32(b, l4 + 8, 0);
  b[l4 + 12] = 5 << 4;
  b[l4 + 13] = payloadLen > 0 ? 0x18 : 0x02; // PSH ACK with data, else SYN
  put16(b, l4 + 14, 64240);
  put32(b, l4 + 16, 0);
  put16(b, l4 + 16, internetChecksum(b, l4, len, pseudoHeaderSum(src, dst, PROTO_TCP, len)));
  writeIpv4(b, off, src, dst, PROTO_TCP, len, ttl, rng.int(65536));
  return IPV4_MIN_HEADER_LEN + len;
}

/** An Ethernet frame carrying writePacket's packet; returns the frame's length. */
export function writeFrame(rng: Rng, b: Uint8Array, off: number, dst: Mac, srcMac: Mac, src: number, dst4: number, payloadLen: number, ttl = 64): number {
  writeEth(b, off, dst, srcMac, ETHERTYPE_IPV4);
  return 14 + writePacket(rng, b, off + 14, src, dst4, payloadLen, ttl);
}

/** A fragment's payload: the most that fits a 1500-byte frame after a 20-byte IPv4 header, a multiple of 8. */
export const FRAGMENT_PAYLOAD = 1480;

/**
 * One IPv4 fragment in `frame`: the `FRAGMENT_PAYLOAD` bytes (or fewer, for the last) of an IP
 * payload of `ipPayload` bytes that start `at` bytes into it, the payload being at whole[34..]
 * (after an Ethernet and an IPv4 header). Returns the fragment frame's length.
 */
export function writeFragment(frame: Uint8Array, whole: Uint8Array, at: number, ipPayload: number, dst: Mac, srcMac: Mac, src: number, dst4: number, id: number): number {
  const n = Math.min(FRAGMENT_PAYLOAD, ipPayload - at);
  writeEth(frame, 0, dst, srcMac, ETHERTYPE_IPV4);
  writeIpv4(frame, 14, src, dst4, PROTO_UDP, n, 64, id, (at + n < ipPayload ? IPV4_FLAG_MF : 0) | (at >>> 3));
  frame.set(whole.subarray(34 + at, 34 + at + n), 34);
  return 34 + n;
}

/** "10.244.1.2" → 0x0af40102 (off the hot path: for the generators' settings). */
export function ipv4(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${s}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

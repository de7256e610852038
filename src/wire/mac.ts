/**
 * MAC addresses. On the hot path a MAC is two numbers, `hi` (first 2 bytes) and `lo` (last 4),
 * read straight from the frame; off it, the usual "0a:58:0a:f4:01:02" string.
 */
import { get16, get32, put16, put32 } from "./bytes.ts";

export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";

export function macHi(b: Uint8Array, o: number): number {
  return get16(b, o);
}

export function macLo(b: Uint8Array, o: number): number {
  return get32(b, o + 2);
}

/** Writes the MAC `hi`:`lo` (as macHi and macLo read it) at `o`: 6 bytes, big-endian. */
export function putMac(b: Uint8Array, o: number, hi: number, lo: number): void {
  put16(b, o, hi);
  put32(b, o + 2, lo);
}

/** Group (multicast or broadcast) addresses have the least significant bit of byte 0 set. */
export function isGroupMac(b: Uint8Array, o: number): boolean {
  return (b[o] & 1) === 1;
}

export function parseMac(s: string): Uint8Array | undefined {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(s.trim());
  if (!m) return undefined;
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]].map((x) => parseInt(x, 16)));
}

export function formatMac(b: Uint8Array, o = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(b[o + i].toString(16).padStart(2, "0"));
  return parts.join(":");
}

export function formatMacHiLo(hi: number, lo: number): string {
  const b = new Uint8Array(6);
  putMac(b, 0, hi, lo);
  return formatMac(b);
}

/**
 * The MAC Kubernetes' bridge plugin gives a pod: 0a:58 followed by its IPv4 address
 * (locally administered, unicast). Unique wherever the address is, and readable in captures.
 */
export function macForIpv4(ip: number): string {
  const b = Uint8Array.of(0x0a, 0x58, ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff);
  return formatMac(b);
}

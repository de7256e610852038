/**
 * IPv4 CIDR blocks for address planning, on top of ip-num: parsing that refuses host bits,
 * containment, overlap, and the n-th subnet of a given size. Addresses are 32-bit unsigned
 * integers, as on the datapath.
 */
import { IPv4CidrRange } from "ip-num";
import { formatIpv4 } from "./ipv4.ts";

export interface Cidr {
  /** The network address. */
  network: number;
  prefix: number;
}

export function parseCidr(s: string): Cidr | string {
  if (typeof s !== "string" || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(s.trim())) return `"${s}" is not an IPv4 CIDR like 10.244.0.0/16`;
  let range: IPv4CidrRange;
  try {
    range = IPv4CidrRange.fromCidr(s.trim());
  } catch (e) {
    return `"${s}" is not an IPv4 CIDR: ${(e as Error).message}`;
  }
  const network = Number(range.getFirst().getValue());
  const prefix = Number(range.getPrefix().getValue());
  const given = s.trim().split("/")[0];
  if (given !== formatIpv4(network)) return `"${s}" has host bits set (did you mean ${formatIpv4(network)}/${prefix}?)`;
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

function range(c: Cidr): IPv4CidrRange {
  return IPv4CidrRange.fromCidr(formatCidr(c));
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function lastAddress(c: Cidr): number {
  return c.network + cidrSize(c) - 1;
}

export function cidrContains(c: Cidr, addr: number): boolean {
  return addr >= c.network && addr <= lastAddress(c);
}

/** Is `inner` wholly inside `outer`? */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return range(inner).inside(range(outer)) || range(inner).isEquals(range(outer));
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return range(a).isOverlapping(range(b));
}

/** The `index`-th subnet of size /`prefix` inside `outer`, or undefined past the end. */
export function nthSubnet(outer: Cidr, prefix: number, index: number): Cidr | undefined {
  if (prefix < outer.prefix || prefix > 32) return undefined;
  const count = 2 ** (prefix - outer.prefix);
  if (index < 0 || index >= count) return undefined;
  return { network: outer.network + index * 2 ** (32 - prefix), prefix };
}

export function subnetCount(outer: Cidr, prefix: number): number {
  return prefix < outer.prefix ? 0 : 2 ** (prefix - outer.prefix);
}

/** Addresses and CIDRs written the readable way in tests, failing loudly if mistyped. */
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";

export function ip(s: string): number {
  const a = parseIpv4Address(s);
  if (a === undefined) throw new Error(`bad test address ${s}`);
  return a;
}

export function cidr(s: string): Cidr {
  const c = parseCidr(s);
  if (typeof c === "string") throw new Error(`bad test CIDR ${s}: ${c}`);
  return c;
}

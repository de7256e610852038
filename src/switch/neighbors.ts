/**
 * The router's neighbour table: the MAC of each address in this node's pod CIDR, so that a
 * packet arriving from another node can be delivered to its pod. Learned from the pods' ARP
 * and IPv4 traffic, and seeded by the agent when it attaches a pod.
 *
 * Indexed directly by the address's offset in the pod CIDR (at most a /16: 64 Ki entries, half
 * a megabyte), so a lookup is an array read and nothing is allocated.
 */
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatMacHiLo } from "../wire/mac.ts";

export class Neighbors {
  private readonly size: number;
  private readonly his: Uint16Array;
  private readonly los: Uint32Array;
  private readonly valid: Uint8Array;

  constructor(readonly network: number, readonly prefix: number) {
    if (prefix < 16 || prefix > 32) throw new RangeError("a pod CIDR for the neighbour table must be /16 to /32");
    this.size = 2 ** (32 - prefix);
    this.his = new Uint16Array(this.size);
    this.los = new Uint32Array(this.size);
    this.valid = new Uint8Array(this.size);
  }

  /** The index of `ip` in the table, or -1 if it is outside the pod CIDR. */
  private index(ip: number): number {
    const i = ip - this.network;
    return i >= 0 && i < this.size ? i : -1;
  }

  contains(ip: number): boolean {
    return this.index(ip) >= 0;
  }

  learn(ip: number, hi: number, lo: number): void {
    const i = this.index(ip);
    if (i < 0) return;
    this.his[i] = hi;
    this.los[i] = lo;
    this.valid[i] = 1;
  }

  forget(ip: number): void {
    const i = this.index(ip);
    if (i >= 0) this.valid[i] = 0;
  }

  known(ip: number): boolean {
    const i = this.index(ip);
    return i >= 0 && this.valid[i] === 1;
  }

  /** MAC of a known `ip` (check `known` first). */
  hi(ip: number): number {
    return this.his[ip - this.network];
  }

  lo(ip: number): number {
    return this.los[ip - this.network];
  }

  entries(): { ip: string; mac: string }[] {
    const out: { ip: string; mac: string }[] = [];
    for (let i = 0; i < this.size; i++) if (this.valid[i]) out.push({ ip: formatIpv4(this.network + i), mac: formatMacHiLo(this.his[i], this.los[i]) });
    return out;
  }
}

/**
 * The router's neighbour table: the MAC of each address in this node's pod CIDR, so that a
 * packet arriving from another node can be delivered to its pod. A pod the switch attached
 * with its identity has its entry pinned (`pin`, when its port is added): no traffic changes
 * it, and only the port's removal (`unpin`) takes it out. Other entries are learned from the
 * ARP and IPv4 traffic of ports without an identity, or seeded by `learn`; learning never
 * overwrites a pinned entry.
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
  private readonly pinned: Uint8Array;

  constructor(readonly network: number, readonly prefix: number) {
    if (prefix < 16 || prefix > 32) throw new RangeError("a pod CIDR for the neighbour table must be /16 to /32");
    this.size = 2 ** (32 - prefix);
    this.his = new Uint16Array(this.size);
    this.los = new Uint32Array(this.size);
    this.valid = new Uint8Array(this.size);
    this.pinned = new Uint8Array(this.size);
  }

  /** The index of `ip` in the table, or -1 if it is outside the pod CIDR. */
  private index(ip: number): number {
    const i = ip - this.network;
    return i >= 0 && i < this.size ? i : -1;
  }

  contains(ip: number): boolean {
    return this.index(ip) >= 0;
  }

  /** Records hi:lo as the MAC of `ip`, unless `ip` is outside the pod CIDR or pinned; says whether it did. */
  learn(ip: number, hi: number, lo: number): boolean {
    const i = this.index(ip);
    if (i < 0 || this.pinned[i]) return false;
    this.his[i] = hi;
    this.los[i] = lo;
    this.valid[i] = 1;
    return true;
  }

  /** Pins hi:lo as the MAC of `ip` (a pod's own address); false if `ip` is outside the pod CIDR. */
  pin(ip: number, hi: number, lo: number): boolean {
    const i = this.index(ip);
    if (i < 0) return false;
    this.his[i] = hi;
    this.los[i] = lo;
    this.valid[i] = 1;
    this.pinned[i] = 1;
    return true;
  }

  /** Takes out the entry of `ip` if it is pinned to hi:lo (the pod's port went away). */
  unpin(ip: number, hi: number, lo: number): void {
    const i = this.index(ip);
    if (i < 0 || !this.pinned[i] || this.his[i] !== hi || this.los[i] !== lo) return;
    this.pinned[i] = 0;
    this.valid[i] = 0;
  }

  isPinned(ip: number): boolean {
    const i = this.index(ip);
    return i >= 0 && this.pinned[i] === 1;
  }

  /** Forgets a learned entry; a pinned one stays (see unpin). */
  forget(ip: number): void {
    const i = this.index(ip);
    if (i >= 0 && !this.pinned[i]) this.valid[i] = 0;
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

  entries(): { ip: string; mac: string; pinned?: true }[] {
    const out: { ip: string; mac: string; pinned?: true }[] = [];
    for (let i = 0; i < this.size; i++) {
      if (this.valid[i]) out.push({ ip: formatIpv4(this.network + i), mac: formatMacHiLo(this.his[i], this.los[i]), ...(this.pinned[i] ? { pinned: true as const } : {}) });
    }
    return out;
  }
}

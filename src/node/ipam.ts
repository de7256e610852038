/**
 * Addresses inside one node's pod CIDR: the gateway takes the first usable address (the
 * switch's tapnet0 holds it), pods take the lowest free ones after it. The network and
 * broadcast addresses are never handed out.
 */
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { cidrContains, formatCidr, lastAddress, type Cidr } from "../wire/cidr.ts";

export function gatewayOf(podCidr: Cidr): number {
  return podCidr.network + 1;
}

export class IpamError extends Error {}

export class PodIpam {
  private readonly used = new Set<number>();

  constructor(readonly podCidr: Cidr) {}

  /** Reserves `requested` (an address string) or the lowest free one; returns it. */
  allocate(requested?: string): number {
    const first = gatewayOf(this.podCidr) + 1;
    const last = lastAddress(this.podCidr) - 1;
    if (requested !== undefined) {
      const a = parseIpv4Address(requested);
      if (a === undefined) throw new IpamError(`"${requested}" is not an IPv4 address`);
      if (!cidrContains(this.podCidr, a)) throw new IpamError(`${requested} is outside this node's pod CIDR ${formatCidr(this.podCidr)}`);
      if (a === gatewayOf(this.podCidr)) throw new IpamError(`${requested} is the gateway address`);
      if (a < first || a > last) throw new IpamError(`${requested} is the network or broadcast address of ${formatCidr(this.podCidr)}`);
      if (this.used.has(a)) throw new IpamError(`${requested} is already in use`);
      this.used.add(a);
      return a;
    }
    for (let a = first; a <= last; a++) {
      if (!this.used.has(a)) {
        this.used.add(a);
        return a;
      }
    }
    throw new IpamError(`no free address left in ${formatCidr(this.podCidr)}`);
  }

  release(addr: number): void {
    this.used.delete(addr);
  }

  get inUse(): string[] {
    return [...this.used].sort((a, b) => a - b).map(formatIpv4);
  }
}

/**
 * The subnet map: which node owns which pod CIDR, and which node has which underlay address.
 * Both are sorted arrays searched by bisection: no allocation, O(log nodes). A map is fixed
 * once made; when the node list changes, the switch makes a new one (state.ts, membership.ts).
 */
export interface NodeRoute {
  address: number;
  network: number;
  prefix: number;
}

export class SubnetMap {
  private readonly nets: Float64Array;
  private readonly lasts: Float64Array;
  private readonly netNode: Int32Array;
  private readonly addrs: Float64Array;
  private readonly addrNode: Int32Array;
  /** Each node's pod CIDR, by node index: its first and last address. */
  private readonly firstOf: Float64Array;
  private readonly lastOf: Float64Array;
  /** Each node's underlay address, by node index. */
  private readonly addressOf: Float64Array;

  constructor(readonly nodes: readonly NodeRoute[]) {
    const byNet = nodes.map((n, i) => ({ n, i })).sort((a, b) => a.n.network - b.n.network);
    this.nets = Float64Array.from(byNet, (x) => x.n.network);
    this.lasts = Float64Array.from(byNet, (x) => x.n.network + 2 ** (32 - x.n.prefix) - 1);
    this.netNode = Int32Array.from(byNet, (x) => x.i);
    const byAddr = nodes.map((n, i) => ({ n, i })).sort((a, b) => a.n.address - b.n.address);
    this.addrs = Float64Array.from(byAddr, (x) => x.n.address);
    this.addrNode = Int32Array.from(byAddr, (x) => x.i);
    this.firstOf = Float64Array.from(nodes, (n) => n.network);
    this.lastOf = Float64Array.from(nodes, (n) => n.network + 2 ** (32 - n.prefix) - 1);
    this.addressOf = Float64Array.from(nodes, (n) => n.address);
  }

  /** The node whose pod CIDR holds `ip`, or -1. */
  nodeForIp(ip: number): number {
    let lo = 0;
    let hi = this.nets.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (ip < this.nets[mid]) hi = mid - 1;
      else if (ip > this.lasts[mid]) lo = mid + 1;
      else return this.netNode[mid];
    }
    return -1;
  }

  /** The node with underlay address `addr`, or -1. */
  nodeForAddress(addr: number): number {
    let lo = 0;
    let hi = this.addrs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const a = this.addrs[mid];
      if (addr < a) hi = mid - 1;
      else if (addr > a) lo = mid + 1;
      else return this.addrNode[mid];
    }
    return -1;
  }

  /** Is `ip` in node `node`'s pod CIDR? */
  owns(node: number, ip: number): boolean {
    return ip >= this.firstOf[node] && ip <= this.lastOf[node];
  }

  /**
   * May node `node` send a packet from `ip` through the tunnel? Only from its pod CIDR (its
   * pods, its gateway, what it translated to its gateway address) or its own underlay address.
   */
  speaksFor(node: number, ip: number): boolean {
    return (ip >= this.firstOf[node] && ip <= this.lastOf[node]) || ip === this.addressOf[node];
  }
}

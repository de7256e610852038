/**
 * A node's subnet lease, as flannel's subnet manager takes and keeps one, over the Kv contract.
 *
 * acquire() grants a lease of the node's TTL, lists the cluster's leases (members.ts) and takes,
 * in this order:
 *   1. the live lease that names this node: a restart within the TTL keeps its subnet. It is
 *      taken over by a put conditional on the key's modRevision, attached to the new lease.
 *      If that lease names another address, two machines share one name: refused.
 *   2. `preferred` (the subnet the node had before, from its Node object), if nobody holds it.
 *   3. the lowest free subnet of clusterCidr at subnetPrefix. Subnet 0 is never given (as
 *      flannel's SubnetMin skips it), so that the cluster CIDR's first address is no pod's.
 * A new key is written by a put that expects it not to exist: when nodes race, the store lets
 * one of them through and the others get KvConflict, list again and try the next subnet.
 *
 * start() renews the lease every TTL/3. A store that cannot be reached is logged once per outage
 * and retried with backoff, and the node keeps running: its datapath forwards on what it has.
 * A keepAlive that answers 0 means the lease expired and its key is gone (the store was away
 * longer than the TTL): the same subnet is taken again if it is still free; if another node took
 * it meanwhile, onLost is called and renewing stops (the node's pods' addresses are no longer
 * its own, so the agent must stop).
 *
 * stop() stops renewing and, by default, keeps the lease: like flannel, a node that is shut
 * down keeps its subnet until the TTL runs out, so that a restart within the TTL (an upgrade,
 * a crash) finds its own lease and keeps its pods' addresses; a node that stays down is removed
 * from every switch's map when the lease expires. stop({ release: true }) revokes the lease,
 * which removes the node at once: for a node taken out of the cluster for good.
 */
import { formatCidr, nthSubnet, subnetCount, cidrSize, lastAddress, type Cidr } from "../wire/cidr.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatMac, parseMac } from "../wire/mac.ts";
import { KvConflict, type Kv, type KvEntry } from "./kv.ts";
export { leaseKey, parseLeaseKey, watchMembers, type Member, type MemberWatch, type WatchMembersOptions } from "./members.ts";
import { compareSubnets, formatLeaseValue, leaseKey, leasePrefix, parseLeaseKey, parseLeaseValue, realTimers, type LeaseValue, type Timers } from "./members.ts";

export type LeaseLogLevel = "debug" | "info" | "warn" | "error";

export interface SubnetLeaserOptions {
  kv: Kv;
  cluster: string;
  clusterCidr: Cidr;
  /** The size of each node's subnet, e.g. 24. */
  subnetPrefix: number;
  /** Seconds a lease lives without renewal: how long a stopped node stays in the maps. */
  ttlSeconds: number;
  node: string;
  /** The node's underlay address. */
  address: number;
  vtepMac?: string;
  /** The subnet this node had before (its Node object's podCIDR); used if nobody holds it. */
  preferred?: Cidr;
  log?: (level: LeaseLogLevel, msg: string, fields?: Record<string, unknown>) => void;
  /** The subnet is gone to another node; the node must stop. */
  onLost?: (why: string) => void;
  timers?: Timers;
  /** Milliseconds, for the length of outages in the logs. */
  now?: () => number;
}

/** The lease could not be taken: no free subnet, a name held by another machine, bad options. */
export class LeaseError extends Error {}

interface Held {
  lease: number;
  subnet: Cidr;
  key: string;
}

interface Taken {
  subnet: Cidr;
  entry: KvEntry;
  /** undefined when the value does not parse: the subnet counts as held by someone unknown. */
  value?: LeaseValue;
}

/** Conflicts beyond one per subnet before acquire() gives up (only a store gone mad gets there). */
const EXTRA_ATTEMPTS = 16;
const FIRST_RETRY_MS = 500;

export class SubnetLeaser {
  private held?: Held;
  private timer: unknown;
  private busy?: Promise<void>;
  private stopped = false;
  private lost = false;
  /** The lease expired and the subnet must be taken again before renewing goes on. */
  private reacquiring = false;
  private outageSince?: number;
  private retryMs = 0;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly renewMs: number;
  private readonly o: SubnetLeaserOptions;

  constructor(options: SubnetLeaserOptions) {
    const o = (this.o = { ...options });
    const c = o.clusterCidr;
    leasePrefix(o.cluster);
    if (!Number.isInteger(o.subnetPrefix) || o.subnetPrefix <= c.prefix || o.subnetPrefix > 30) {
      throw new LeaseError(`subnet prefix /${o.subnetPrefix} must be longer than the cluster CIDR ${formatCidr(c)} and at most /30`);
    }
    if (!Number.isInteger(o.ttlSeconds) || o.ttlSeconds < 1) throw new LeaseError(`lease TTL ${o.ttlSeconds} must be a whole number of seconds, at least 1`);
    if (typeof o.node !== "string" || o.node === "") throw new LeaseError("node name must not be empty");
    if (!Number.isInteger(o.address) || o.address < 0 || o.address > 0xffffffff) throw new LeaseError(`node address ${o.address} is not an IPv4 address`);
    if (o.vtepMac !== undefined) {
      const mac = parseMac(o.vtepMac);
      if (!mac) throw new LeaseError(`VTEP MAC "${o.vtepMac}" is not a MAC address`);
      o.vtepMac = formatMac(mac);
    }
    this.timers = o.timers ?? realTimers;
    this.now = o.now ?? Date.now;
    this.renewMs = (o.ttlSeconds * 1000) / 3;
  }

  /** The subnet held, once acquire() has returned (and until it is lost or released). */
  get subnet(): Cidr | undefined {
    return this.held && !this.lost ? { ...this.held.subnet } : undefined;
  }

  /** The store's lease id the key is attached to. */
  get leaseId(): number | undefined {
    return this.held?.lease;
  }

  private log(level: LeaseLogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    this.o.log?.(level, msg, { cluster: this.o.cluster, node: this.o.node, ...fields });
  }

  private value(): string {
    return formatLeaseValue({ node: this.o.node, address: this.o.address, vtepMac: this.o.vtepMac });
  }

  /** The index of `s` among clusterCidr's subnets at subnetPrefix, or undefined if it is not one of them. */
  private indexOf(s: Cidr): number | undefined {
    const c = this.o.clusterCidr;
    if (s.prefix !== this.o.subnetPrefix || s.network < c.network || s.network > lastAddress(c)) return undefined;
    const off = s.network - c.network;
    return off % cidrSize(s) === 0 ? off / cidrSize(s) : undefined;
  }

  /** Leases the node a subnet and returns it (see the header for the order). */
  async acquire(): Promise<Cidr> {
    if (this.held && !this.lost) return { ...this.held.subnet };
    const pref = this.o.preferred;
    if (pref && !this.indexOf(pref)) {
      this.log("warn", `preferred subnet ${formatCidr(pref)} is not a /${this.o.subnetPrefix} of ${formatCidr(this.o.clusterCidr)} other than the first; ignored`);
    }
    const lease = await this.o.kv.grant(this.o.ttlSeconds);
    try {
      return await this.claim(lease);
    } catch (e) {
      await this.o.kv.revoke(lease).catch(() => {});
      throw e;
    }
  }

  private async leases(): Promise<Taken[]> {
    const list = await this.o.kv.list(leasePrefix(this.o.cluster));
    const out: Taken[] = [];
    for (const entry of list.entries) {
      const key = parseLeaseKey(entry.key);
      if (!key) continue;
      const value = parseLeaseValue(entry.value);
      out.push({ subnet: key.subnet, entry, value: typeof value === "string" ? undefined : value });
    }
    return out.sort((a, b) => compareSubnets(a.subnet, b.subnet));
  }

  private async claim(lease: number): Promise<Cidr> {
    const { kv, node, address } = this.o;
    const attempts = subnetCount(this.o.clusterCidr, this.o.subnetPrefix) + EXTRA_ATTEMPTS;
    for (let i = 0; i < attempts; i++) {
      const taken = await this.leases();
      const mine = taken.filter((t) => t.value?.node === node);
      const impostor = mine.find((t) => t.value!.address !== address);
      if (impostor) {
        throw new LeaseError(
          `node name "${node}" is held by ${formatIpv4(impostor.value!.address)} (subnet ${formatCidr(impostor.subnet)}), not this node's ${formatIpv4(address)}: ` +
            `are two machines using one name? Its lease goes ${this.o.ttlSeconds} s after that machine stops renewing it`,
        );
      }
      try {
        // Our own live lease first: the first one that fits the cluster CIDR, the rest deleted.
        const own = mine.find((t) => this.indexOf(t.subnet));
        if (own) {
          await kv.put(own.entry.key, this.value(), { expect: own.entry.modRevision, lease });
          for (const t of mine) if (t !== own) await kv.delete(t.entry.key, { expect: t.entry.modRevision }).catch(() => {});
          return this.took(lease, own.subnet, "kept its own lease");
        }
        for (const t of mine) await kv.delete(t.entry.key, { expect: t.entry.modRevision }).catch(() => {});
        const blocked = this.blocked(taken);
        const pref = this.o.preferred;
        const prefIndex = pref ? this.indexOf(pref) : undefined;
        const index = prefIndex && !blocked.has(prefIndex) ? prefIndex : this.lowestFree(blocked);
        if (index === undefined) throw new LeaseError(this.exhausted(taken));
        const subnet = nthSubnet(this.o.clusterCidr, this.o.subnetPrefix, index)!;
        await kv.put(leaseKey(this.o.cluster, subnet), this.value(), { expect: 0, lease });
        return this.took(lease, subnet, index === prefIndex ? "took its preferred subnet" : "took the lowest free subnet");
      } catch (e) {
        if (e instanceof KvConflict) continue;
        throw e;
      }
    }
    throw new LeaseError(`gave up leasing a subnet for "${node}" after ${attempts} conflicting writes on ${kv.description}`);
  }

  /** The indexes of clusterCidr's subnets that any lease overlaps. */
  private blocked(taken: Taken[]): Set<number> {
    const c = this.o.clusterCidr;
    const size = 2 ** (32 - this.o.subnetPrefix);
    const out = new Set<number>();
    for (const t of taken) {
      const lo = Math.max(t.subnet.network, c.network);
      const hi = Math.min(lastAddress(t.subnet), lastAddress(c));
      for (let i = Math.floor((lo - c.network) / size); lo <= hi && i <= Math.floor((hi - c.network) / size); i++) out.add(i);
    }
    return out;
  }

  private lowestFree(blocked: Set<number>): number | undefined {
    const count = subnetCount(this.o.clusterCidr, this.o.subnetPrefix);
    for (let i = 1; i < count; i++) if (!blocked.has(i)) return i;
    return undefined;
  }

  private exhausted(taken: Taken[]): string {
    const c = this.o.clusterCidr;
    const usable = subnetCount(c, this.o.subnetPrefix) - 1;
    const holders = taken.map((t) => `${formatCidr(t.subnet)} ${t.value ? `${t.value.node} (${formatIpv4(t.value.address)})` : "(unreadable value)"}`);
    const shown = holders.slice(0, 8).join(", ") + (holders.length > 8 ? `, and ${holders.length - 8} more` : "");
    return (
      `no free /${this.o.subnetPrefix} subnet in ${formatCidr(c)} for node "${this.o.node}": all ${usable} are leased ` +
      `(the first, ${formatCidr(nthSubnet(c, this.o.subnetPrefix, 0)!)}, is never given): ${shown}. ` +
      `Use a larger cluster CIDR or a longer subnet prefix, or remove nodes (a stopped node's lease ends after its TTL)`
    );
  }

  private took(lease: number, subnet: Cidr, how: string): Cidr {
    this.held = { lease, subnet, key: leaseKey(this.o.cluster, subnet) };
    this.lost = false;
    this.log("info", `leased subnet ${formatCidr(subnet)}: ${how}`, { subnet: formatCidr(subnet), lease, ttl: this.o.ttlSeconds });
    return { ...subnet };
  }

  /** Renews the lease every TTL/3 until stop() or loss. */
  start(): void {
    if (!this.held || this.lost) throw new LeaseError("start() needs a subnet: call acquire() first");
    this.stopped = false;
    this.schedule(this.renewMs);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.busy = this.renew().finally(() => (this.busy = undefined));
    }, ms);
  }

  private async renew(): Promise<void> {
    const held = this.held!;
    const { kv } = this.o;
    try {
      if (!this.reacquiring) {
        const ttl = await kv.keepAlive(held.lease);
        if (ttl > 0) return this.healthy();
        if (this.stopped) return;
        this.log("warn", `lease of ${formatCidr(held.subnet)} expired (the store was out of reach longer than the ${this.o.ttlSeconds} s TTL?); taking the subnet again`, { subnet: formatCidr(held.subnet) });
        this.reacquiring = true;
      }
      const lease = await kv.grant(this.o.ttlSeconds);
      try {
        await kv.put(held.key, this.value(), { expect: 0, lease });
      } catch (e) {
        await kv.revoke(lease).catch(() => {});
        if (!(e instanceof KvConflict)) throw e;
        return this.lose(held, await kv.get(held.key).catch(() => undefined));
      }
      held.lease = lease;
      this.reacquiring = false;
      this.log("info", `took subnet ${formatCidr(held.subnet)} again with a new lease`, { subnet: formatCidr(held.subnet), lease });
      this.healthy();
    } catch (e) {
      if (this.stopped) return;
      if (this.outageSince === undefined) {
        this.outageSince = this.now();
        this.log("warn", `cannot renew the lease of ${formatCidr(held.subnet)} on ${kv.description}: ${(e as Error).message}; retrying with backoff, the datapath keeps forwarding`, { subnet: formatCidr(held.subnet) });
      }
      this.retryMs = this.retryMs ? Math.min(this.retryMs * 2, this.renewMs) : Math.min(FIRST_RETRY_MS, this.renewMs);
      this.schedule(this.retryMs);
    }
  }

  private healthy(): void {
    if (this.outageSince !== undefined) {
      this.log("info", `lease of ${formatCidr(this.held!.subnet)} renewed: the store is back`, { outageMs: this.now() - this.outageSince });
    }
    this.outageSince = undefined;
    this.retryMs = 0;
    this.schedule(this.renewMs);
  }

  private lose(held: Held, holder: KvEntry | undefined): void {
    const v = holder ? parseLeaseValue(holder.value) : undefined;
    const who = v === undefined ? "another node" : typeof v === "string" ? "someone (unreadable value)" : `node "${v.node}" (${formatIpv4(v.address)})`;
    const why =
      `subnet ${formatCidr(held.subnet)} was lost: this node's lease expired (the store was out of reach longer than the ` +
      `${this.o.ttlSeconds} s TTL) and ${who} took it meanwhile; its pods' addresses are no longer its own, so the node must stop`;
    this.lost = true;
    this.stopped = true;
    this.log("error", why, { subnet: formatCidr(held.subnet) });
    this.o.onLost?.(why);
  }

  /**
   * Stops renewing. The lease is kept (it expires after the TTL, and a restart within it keeps
   * the subnet) unless `release`, which revokes it: the key goes at once.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.busy;
    if (!opts.release || !this.held || this.lost) return;
    const held = this.held;
    try {
      await this.o.kv.revoke(held.lease);
      this.held = undefined;
      this.log("info", `released subnet ${formatCidr(held.subnet)}`, { subnet: formatCidr(held.subnet) });
    } catch (e) {
      this.log("warn", `could not release subnet ${formatCidr(held.subnet)}: ${(e as Error).message}; it goes when its lease expires`, { subnet: formatCidr(held.subnet) });
    }
  }
}

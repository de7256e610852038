/**
 * Node membership as flannel keeps it: one key per leased subnet, attached to a lease of the
 * node's TTL, so that a node which stops renewing drops out of the cluster by itself.
 *
 *   /tapnet/<cluster>/leases/10.244.3.0-24  →  {"node":"node3","address":"192.168.56.13","vtepMac":"0e:00:…"}
 *
 * This file has the key and value formats and `watchMembers`, which every switch runs: it lists
 * the leases, watches them from the next revision, and after each batch of changes hands the
 * whole member list (sorted by subnet) to its caller, who rebuilds its subnet map from it. A
 * value that does not parse is skipped and counted, never taken for a member and never a crash.
 * subnet-lease.ts writes the keys (SubnetLeaser).
 */
import { cidrSize, type Cidr } from "../wire/cidr.ts";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { formatMac, parseMac } from "../wire/mac.ts";
import type { Kv, KvEntry, KvList, KvWatch, WatchHandlers } from "./kv.ts";

export interface Member {
  node: string;
  /** The node's underlay address, where its tunnels end. */
  address: number;
  subnet: Cidr;
  vtepMac?: string;
}

/** What a lease key's value says: who holds the subnet. */
export interface LeaseValue {
  node: string;
  address: number;
  vtepMac?: string;
}

/** The timers the lease code waits on; tests pass a driven clock's. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** "/tapnet/<cluster>/leases/"; throws on a cluster name that cannot be one path segment. */
export function leasePrefix(cluster: string): string {
  if (typeof cluster !== "string" || cluster === "" || cluster.includes("/")) {
    throw new Error(`cluster name "${cluster}" must be a non-empty name without "/"`);
  }
  return `/tapnet/${cluster}/leases/`;
}

/** leaseKey("lab", 10.244.3.0/24) → "/tapnet/lab/leases/10.244.3.0-24", as flannel writes it. */
export function leaseKey(cluster: string, subnet: Cidr): string {
  return `${leasePrefix(cluster)}${formatIpv4(subnet.network)}-${subnet.prefix}`;
}

/** The inverse of leaseKey; undefined for any other key (host bits set, leading zeros, …). */
export function parseLeaseKey(key: string): { cluster: string; subnet: Cidr } | undefined {
  const m = /^\/tapnet\/([^/]+)\/leases\/([0-9.]+)-(0|[1-9][0-9]?)$/.exec(key);
  if (!m) return undefined;
  const network = parseIpv4Address(m[2]);
  const prefix = Number(m[3]);
  if (network === undefined || prefix > 32) return undefined;
  if (network % cidrSize({ network: 0, prefix }) !== 0) return undefined;
  return { cluster: m[1], subnet: { network, prefix } };
}

export function formatLeaseValue(v: LeaseValue): string {
  const out: Record<string, string> = { node: v.node, address: formatIpv4(v.address) };
  if (v.vtepMac !== undefined) out.vtepMac = v.vtepMac;
  return JSON.stringify(out);
}

/** A lease value, or a message saying what is wrong with it. */
export function parseLeaseValue(text: string): LeaseValue | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return `value is not JSON: ${JSON.stringify(text.slice(0, 60))}`;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return "value is not a JSON object";
  const o = raw as Record<string, unknown>;
  if (typeof o.node !== "string" || o.node === "") return "node: must be a non-empty string";
  const address = typeof o.address === "string" ? parseIpv4Address(o.address) : undefined;
  if (address === undefined) return `address: ${JSON.stringify(o.address)} is not an IPv4 address`;
  const value: LeaseValue = { node: o.node, address };
  if (o.vtepMac !== undefined) {
    const mac = typeof o.vtepMac === "string" ? parseMac(o.vtepMac) : undefined;
    if (!mac) return `vtepMac: ${JSON.stringify(o.vtepMac)} is not a MAC address`;
    value.vtepMac = formatMac(mac);
  }
  return value;
}

/** The member a lease key names, or a message saying why the entry is not one. */
export function parseMember(entry: KvEntry): Member | string {
  const key = parseLeaseKey(entry.key);
  if (!key) return "key is not <prefix>/leases/<a.b.c.d>-<prefix length>";
  const value = parseLeaseValue(entry.value);
  if (typeof value === "string") return value;
  return { ...value, subnet: key.subnet };
}

export function compareSubnets(a: Cidr, b: Cidr): number {
  return a.network - b.network || a.prefix - b.prefix;
}

export interface WatchMembersOptions {
  /** The store was lost or came back (the watch and the first list retry by themselves). */
  onStatus?(state: "lost" | "restored", detail: string): void;
  /** A key under the prefix that is not a member, with the reason; for logs. */
  onSkip?(key: string, why: string): void;
  timers?: Timers;
}

export interface MemberWatch {
  /** Resolves once the first list has been handed to onChange. */
  ready: Promise<void>;
  close(): void;
  /** How many unparsable keys or values have been seen (each time one was written or listed). */
  skipped(): number;
  /** The keys skipped now, with the reason for each. */
  invalid(): { key: string; why: string }[];
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 10_000;

/**
 * Watches the cluster's leases. onChange gets the whole current list, sorted by subnet, once
 * after the first list and then after every batch of changes that changed it (a batch that
 * leaves the list as it was, such as a node taking over its own key, calls nothing). The first
 * list is retried with backoff while the store is out of reach; the watch retries by itself.
 */
export function watchMembers(kv: Kv, cluster: string, onChange: (members: Member[]) => void, opts: WatchMembersOptions = {}): MemberWatch {
  const prefix = leasePrefix(cluster);
  const timers = opts.timers ?? realTimers;
  const members = new Map<string, Member>();
  const invalid = new Map<string, string>();
  let skipped = 0;
  let closed = false;
  let failing = false;
  let watch: KvWatch | undefined;
  let timer: unknown;
  let last: string | undefined;
  let resolveReady!: () => void;
  let rejectReady!: (e: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => ((resolveReady = resolve), (rejectReady = reject)));

  const set = (entry: KvEntry): void => {
    const m = parseMember(entry);
    if (typeof m === "string") {
      members.delete(entry.key);
      invalid.set(entry.key, m);
      skipped++;
      opts.onSkip?.(entry.key, m);
    } else {
      invalid.delete(entry.key);
      members.set(entry.key, m);
    }
  };
  const deliver = (): void => {
    if (closed) return;
    const list = [...members.values()].sort((a, b) => compareSubnets(a.subnet, b.subnet)).map((m) => ({ ...m, subnet: { ...m.subnet } }));
    const text = JSON.stringify(list);
    if (text !== last) {
      last = text;
      onChange(list);
    }
    resolveReady();
  };
  const load = (list: KvList): void => {
    members.clear();
    invalid.clear();
    for (const e of list.entries) set(e);
    deliver();
  };
  const retry = (retryMs: number, what: string, e: unknown): void => {
    if (closed) return;
    if (!failing) opts.onStatus?.("lost", `${what} ${prefix} on ${kv.description}: ${(e as Error).message}; retrying`);
    failing = true;
    timer = timers.setTimeout(() => void start(Math.min(retryMs * 2, MAX_RETRY_MS)).catch(rejectReady), retryMs);
  };
  const start = async (retryMs: number): Promise<void> => {
    let list: KvList;
    try {
      list = await kv.list(prefix);
    } catch (e) {
      return retry(retryMs, "listing", e);
    }
    if (closed) return;
    if (failing) opts.onStatus?.("restored", `listed ${prefix} on ${kv.description}`);
    failing = false;
    load(list);
    try {
      watch = kv.watch(prefix, list.revision + 1, handlers);
    } catch (e) {
      return retry(retryMs, "watching", e);
    }
    if (closed) watch.close();
  };
  const handlers: WatchHandlers = {
    events: (events) => {
      if (closed) return;
      for (const ev of events) {
        if (ev.type === "put") set(ev.entry);
        else {
          members.delete(ev.entry.key);
          invalid.delete(ev.entry.key);
        }
      }
      deliver();
    },
    resync: (fresh) => {
      if (!closed) load(fresh);
    },
    status: (state, detail) => {
      if (!closed) opts.onStatus?.(state, detail);
    },
  };
  // onChange throwing on the first list (a caller's bug) rejects ready rather than going unhandled.
  void start(FIRST_RETRY_MS).catch(rejectReady);

  return {
    ready,
    close: () => {
      closed = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      watch?.close();
    },
    skipped: () => skipped,
    invalid: () => [...invalid].map(([key, why]) => ({ key, why })),
  };
}

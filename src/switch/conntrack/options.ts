/**
 * What the switch's connection tracking is told at start (`tapnet switch --conntrack-max`,
 * `--conntrack-timeouts`, `--conntrack-max-per-pod`), off the hot path: the table's size, the
 * flows' timeouts, the quota of flows each owner may hold, their defaults and limits, and the
 * parser and printer of the timeouts' list. flow-table.ts uses them (and exports them again).
 *
 * The quota: every flow has an owner, the port it came from or the peer node that sent it (see
 * tracker.ts), and no owner holds more than its quota. By default a quarter of the table
 * (16384 of the default 65536 flows): it takes four owners at their quota to fill the table,
 * while one busy pod still gets 16k flows, more than a real client needs (a pod opening flows
 * to random ports as fast as it can reaches its quota in a fraction of a second, then only its
 * own new flows are dropped, counted conntrack_quota).
 */

/** Seconds a flow lives without packets, by protocol and state. */
export interface ConntrackTimeouts {
  tcpNew: number;
  tcpEstablished: number;
  tcpClosing: number;
  udp: number;
  /** A UDP flow that has seen replies. */
  udpStream: number;
  icmp: number;
  other: number;
}

/** Linux's defaults, except TCP established: 24 h as kube-proxy sets it (Linux's 5 days is too long for a lab). */
export const DEFAULT_TIMEOUTS: ConntrackTimeouts = { tcpNew: 120, tcpEstablished: 86400, tcpClosing: 120, udp: 30, udpStream: 120, icmp: 30, other: 600 };

export const DEFAULT_MAX_FLOWS = 65536;

/** The largest table the constructor accepts (about 350 MB). */
export const MAX_FLOWS_LIMIT = 1 << 22;

export interface ConntrackOptions {
  max: number;
  timeouts: ConntrackTimeouts;
  /** The most flows one owner (a port, a peer node) holds: 1 to max; defaultQuota(max) if not given. */
  maxPerOwner?: number;
}

/** A quarter of the table, at least one flow (see the top). */
export function defaultQuota(max: number): number {
  return Math.max(1, Math.ceil(max / 4));
}

/** The names parseTimeouts takes, as on a command line, and the fields they set. */
export const TIMEOUT_NAMES: ReadonlyArray<readonly [string, keyof ConntrackTimeouts]> = [
  ["tcp-new", "tcpNew"],
  ["tcp-established", "tcpEstablished"],
  ["tcp-closing", "tcpClosing"],
  ["udp", "udp"],
  ["udp-stream", "udpStream"],
  ["icmp", "icmp"],
  ["other", "other"],
];

/** The longest timeout parseTimeouts takes: 2^31-1 seconds (68 years), as the kernel's sysctls. */
const MAX_TIMEOUT = 2147483647;

/**
 * "tcp-established=3600,udp=30": `base` (the defaults) with those changed. An empty text changes
 * nothing. Throws an Error naming the bad item: an unknown name (listing the names), seconds that
 * are not a whole number from 1 to 2147483647, a name given twice, an item without "=", an empty item.
 */
export function parseTimeouts(text: string, base: ConntrackTimeouts = DEFAULT_TIMEOUTS): ConntrackTimeouts {
  const out: ConntrackTimeouts = { ...base };
  if (text.trim() === "") return out;
  const given = new Set<string>();
  const names = TIMEOUT_NAMES.map(([n]) => n).join(", ");
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") throw new Error(`conntrack timeouts: empty item in "${text}" (expected name=seconds, separated by commas)`);
    const eq = item.indexOf("=");
    if (eq < 0) throw new Error(`conntrack timeouts: "${item}" is not name=seconds (as in udp=30)`);
    const name = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    const entry = TIMEOUT_NAMES.find(([n]) => n === name);
    if (!entry) throw new Error(`conntrack timeouts: unknown name "${name}" in "${item}"; the names are ${names}`);
    if (given.has(name)) throw new Error(`conntrack timeouts: "${name}" is given twice`);
    given.add(name);
    const seconds = /^[0-9]+$/.test(value) ? Number(value) : NaN;
    if (!(seconds >= 1 && seconds <= MAX_TIMEOUT)) {
      throw new Error(`conntrack timeouts: ${name} must be a whole number of seconds from 1 to ${MAX_TIMEOUT}, not "${value}"`);
    }
    out[entry[1]] = seconds;
  }
  return out;
}

/** The timeouts as parseTimeouts reads them: "tcp-new=120,tcp-established=86400,...". */
export function formatTimeouts(t: ConntrackTimeouts): string {
  return TIMEOUT_NAMES.map(([name, field]) => `${name}=${t[field]}`).join(",");
}

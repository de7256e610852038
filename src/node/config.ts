/**
 * The cluster config, as a user writes it (YAML or JSON), checked and completed:
 *
 *   clusterCidr: 10.244.0.0/16      # default
 *   serviceCidr: 10.96.0.0/12       # default: where Services' ClusterIPs come from
 *   nodeSubnetPrefix: 24            # default
 *   mtu: 1500                       # the underlay's MTU, default 1500
 *   backend: { type: tapnet, port: 8287 }      # tapnet (default) | udp | vxlan
 *   backend: { secret: "...", keyFile: /etc/tapnet/secret, insecure: true }  # tapnet: sealing (below)
 *   nodes:
 *     - { name: node1, address: 192.168.56.11, podCidr: 10.244.1.0/24, vtepMac: "0e:..." }
 *
 * Pod CIDRs not given are assigned in node order from the cluster CIDR, lowest first, skipping
 * its first subnet (as flannel's SubnetMin does) and any subnet a node was given: the same file
 * gives the same answer on every node. A given pod CIDR may not overlap that first subnet, and
 * no node's address may be inside the cluster CIDR. The service CIDR overlaps neither the
 * cluster CIDR nor a node's address (the node routes it to its switch). Every fault is a
 * ConfigError naming the field.
 */
import { readFileSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { parse as parseYaml } from "yaml";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";
import { formatMac, parseMac } from "../wire/mac.ts";
import { backend, backendNames, defaultBackend, findBackend, type BackendType } from "../tunnel/index.ts";
import { cidrContains, cidrInside, cidrOverlaps, formatCidr, nthSubnet, parseCidr, subnetCount, type Cidr } from "../wire/cidr.ts";

export type { BackendType };

export interface NodeConfig {
  name: string;
  address: number;
  podCidr: Cidr;
  vtepMac: string;
}

export interface ClusterConfig {
  clusterCidr: Cidr;
  /** Services' ClusterIPs come from it; each node routes it to its switch (host-net.ts). */
  serviceCidr: Cidr;
  nodeSubnetPrefix: number;
  mtu: number;
  podMtu: number;
  backend: { type: BackendType; port: number; vni: number } & BackendSeal;
  nodes: NodeConfig[];
}

/**
 * Sealing, for a backend that seals (tapnet): `secret` is the cluster's secret (given as
 * backend.secret, or read from backend.keyFile, which is then kept too, to be written back);
 * `insecure` says the cluster sends in the clear on purpose. Absent fields are absent.
 */
export interface BackendSeal {
  secret?: string;
  keyFile?: string;
  insecure?: true;
}

export class ConfigError extends Error {}

const DEFAULT_SERVICE_CIDR = "10.96.0.0/12"; // Kubernetes' default --service-cluster-ip-range
const MIN_POD_MTU = 576; // every IPv4 host must accept datagrams this large (RFC 791)
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function fail(field: string, msg: string): never {
  throw new ConfigError(`${field}: ${msg}`);
}

function checkKeys(obj: Record<string, unknown>, where: string, allowed: string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(where ? `${where}.${k}` : k, `unknown field (expected one of: ${allowed.join(", ")})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fail(field, `must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return v;
}

/** Derived, locally administered VTEP MAC: 0e:00 then the node's IPv4 address. */
export function vtepMacFor(address: number): string {
  return formatMac(Uint8Array.of(0x0e, 0x00, address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff));
}

export function parseClusterConfig(text: string, source = "config"): ClusterConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${source} is not valid YAML or JSON: ${(e as Error).message.split("\n")[0].replace(/:\s*$/, "")}`);
  }
  return checkClusterConfig(raw);
}

export function checkClusterConfig(raw: unknown): ClusterConfig {
  if (!isObject(raw)) throw new ConfigError("the config must be a mapping (clusterCidr, backend, nodes, ...)");
  checkKeys(raw, "", ["clusterCidr", "serviceCidr", "nodeSubnetPrefix", "mtu", "backend", "nodes"]);

  const cc = parseCidr(String(raw.clusterCidr ?? "10.244.0.0/16"));
  if (typeof cc === "string") fail("clusterCidr", cc);
  if (cc.prefix > 28) fail("clusterCidr", `/${cc.prefix} is too small for a cluster`);
  const sc = parseCidr(String(raw.serviceCidr ?? DEFAULT_SERVICE_CIDR));
  if (typeof sc === "string") fail("serviceCidr", sc);
  // The API server refuses a range larger than /12 too; a /30 holds two ClusterIPs.
  if (sc.prefix < 12) fail("serviceCidr", `${formatCidr(sc)} is too large: at most a /12`);
  if (sc.prefix > 30) fail("serviceCidr", `${formatCidr(sc)} is too small: at least a /30`);
  const defaulted = raw.serviceCidr === undefined ? " (the default: give a serviceCidr outside it)" : "";
  if (cidrOverlaps(sc, cc)) fail("serviceCidr", `${formatCidr(sc)} overlaps clusterCidr ${formatCidr(cc)}${defaulted}`);
  // At least two subnets: the first is reserved (as flannel does), so one subnet would leave none.
  const nodeSubnetPrefix = int(raw.nodeSubnetPrefix ?? 24, "nodeSubnetPrefix", Math.max(cc.prefix + 1, 16), 30);
  const mtu = int(raw.mtu ?? 1500, "mtu", 68, 65535);

  const b = raw.backend ?? {};
  if (!isObject(b)) fail("backend", "must be a mapping like { type: udp }");
  checkKeys(b, "backend", ["type", "port", "vni", "secret", "keyFile", "insecure"]);
  // tapnet's own backend is the fastest between tapnet nodes; a cluster with plain Linux
  // nodes in it needs vxlan, one with flannel udp nodes udp.
  const type = (b.type ?? defaultBackend()) as string;
  const info = typeof type === "string" ? findBackend(type) : undefined;
  if (!info) fail("backend.type", `unknown backend "${type}" (known: ${backendNames().join(", ")})`);
  const backendType: BackendType = info.name;
  const port = int(b.port ?? info.port, "backend.port", 1, 65535);
  if (b.vni !== undefined && !info.vni) fail("backend.vni", `only the ${backendNames().filter((n) => backend(n).vni).join(" and ")} backend has a VNI`);
  const vni = int(b.vni ?? 1, "backend.vni", 0, 0xffffff);
  const seal = checkSeal(b, backendType, info.seals === true);
  const podMtu = mtu - info.overhead;
  if (podMtu < MIN_POD_MTU) fail("mtu", `${mtu} leaves ${podMtu} bytes for pods after the ${backendType} backend's ${info.overhead} bytes of headers; pods need at least ${MIN_POD_MTU}`);

  // No nodes is a cluster whose nodes join through etcd, each leasing its pod CIDR (node/store-sync.ts).
  const rawNodes = raw.nodes ?? [];
  if (!Array.isArray(rawNodes)) fail("nodes", "must be a list of nodes (or empty: nodes that join through etcd)");
  const seen = { name: new Map<string, number>(), address: new Map<number, number>(), vtepMac: new Map<string, number>() };
  const partial = rawNodes.map((n: unknown, i: number) => {
    const where = `nodes[${i}]`;
    if (!isObject(n)) fail(where, "must be a mapping with name and address");
    checkKeys(n, where, ["name", "address", "podCidr", "vtepMac"]);
    if (typeof n.name !== "string" || !NAME_RE.test(n.name)) fail(`${where}.name`, `${JSON.stringify(n.name)} must be lower-case letters, digits and '-', 1-63 long`);
    const address = typeof n.address === "string" ? parseIpv4Address(n.address) : undefined;
    if (address === undefined) fail(`${where}.address`, `${JSON.stringify(n.address)} is not an IPv4 address`);
    let podCidr: Cidr | undefined;
    if (n.podCidr !== undefined) {
      const p = parseCidr(String(n.podCidr));
      if (typeof p === "string") fail(`${where}.podCidr`, p);
      if (!cidrInside(p, cc)) fail(`${where}.podCidr`, `${formatCidr(p)} is outside clusterCidr ${formatCidr(cc)}`);
      if (p.prefix > 30) fail(`${where}.podCidr`, `${formatCidr(p)} is too small: a node needs a gateway and at least one pod (/30 or larger)`);
      if (p.prefix < 16) fail(`${where}.podCidr`, `${formatCidr(p)} is too large: a node's pod CIDR can be at most a /16`);
      const first = nthSubnet(cc, nodeSubnetPrefix, 0)!;
      if (cidrOverlaps(p, first)) fail(`${where}.podCidr`, `${formatCidr(p)} overlaps ${formatCidr(first)}, the first /${nodeSubnetPrefix} of clusterCidr, which is reserved (no pod holds the cluster CIDR's first address)`);
      podCidr = p;
    }
    let vtepMac = vtepMacFor(address);
    if (n.vtepMac !== undefined) {
      const m = typeof n.vtepMac === "string" ? parseMac(n.vtepMac) : undefined;
      if (!m) fail(`${where}.vtepMac`, `${JSON.stringify(n.vtepMac)} is not a MAC address`);
      if (m[0] & 1) fail(`${where}.vtepMac`, `${n.vtepMac} is a multicast address`);
      vtepMac = formatMac(m);
    }
    for (const [key, value] of [["name", n.name], ["address", address], ["vtepMac", vtepMac]] as const) {
      const map = seen[key] as Map<unknown, number>;
      const prev = map.get(value);
      if (prev !== undefined) fail(`${where}.${key}`, `${key === "address" ? formatIpv4(address) : value} is also nodes[${prev}].${key}`);
      map.set(value, i);
    }
    return { name: n.name, address, podCidr, vtepMac };
  });

  partial.forEach((n, i) => {
    if (cidrContains(sc, n.address)) fail("serviceCidr", `${formatCidr(sc)} holds nodes[${i}].address ${formatIpv4(n.address)}${defaulted}`);
    // Pods' addresses and nodes' are routed apart: a node inside the cluster CIDR would be routed to a pod CIDR.
    if (cidrContains(cc, n.address)) fail(`nodes[${i}].address`, `${formatIpv4(n.address)} is inside clusterCidr ${formatCidr(cc)}: a node's address is its underlay address, outside the pods' addresses`);
  });
  partial.forEach((a, i) => {
    partial.forEach((o, j) => {
      if (j <= i || !a.podCidr || !o.podCidr) return;
      if (cidrOverlaps(a.podCidr, o.podCidr)) fail(`nodes[${j}].podCidr`, `${formatCidr(o.podCidr)} overlaps nodes[${i}].podCidr ${formatCidr(a.podCidr)}`);
    });
  });

  // Assign the missing pod CIDRs: lowest free subnet, skipping subnet 0.
  const taken: Cidr[] = partial.flatMap((n) => (n.podCidr ? [n.podCidr] : []));
  let next = 1;
  const total = subnetCount(cc, nodeSubnetPrefix);
  const nodes: NodeConfig[] = partial.map((n, i) => {
    if (n.podCidr) return n as NodeConfig;
    for (; next < total; next++) {
      const s = nthSubnet(cc, nodeSubnetPrefix, next)!;
      if (!taken.some((t) => cidrOverlaps(t, s))) {
        taken.push(s);
        next++;
        return { ...n, podCidr: s };
      }
    }
    return fail(`nodes[${i}].podCidr`, `no /${nodeSubnetPrefix} left in clusterCidr ${formatCidr(cc)} (it holds ${total}, the first reserved); give a larger clusterCidr or a longer nodeSubnetPrefix`);
  });

  return { clusterCidr: cc, serviceCidr: sc, nodeSubnetPrefix, mtu, podMtu, backend: { type: backendType, port, vni, ...seal }, nodes };
}

const MIN_SECRET = 32;
const MAX_SECRET = 1024;

/** A secret's faults, or undefined: long enough to be a key's worth when random, and one line. */
function secretFault(secret: string): string | undefined {
  if (secret.length < MIN_SECRET) return `is ${secret.length} characters: a secret has at least ${MIN_SECRET} (a random one: openssl rand -base64 32)`;
  if (secret.length > MAX_SECRET) return `is ${secret.length} characters: at most ${MAX_SECRET}`;
  if (/[\r\n]/.test(secret)) return "must be one line";
  return undefined;
}

/** backend.secret, backend.keyFile (read here) and backend.insecure, checked against the backend. */
function checkSeal(b: Record<string, unknown>, type: BackendType, seals: boolean): BackendSeal {
  const given = (["secret", "keyFile", "insecure"] as const).filter((k) => b[k] !== undefined);
  if (!given.length) return {};
  if (!seals) fail(`backend.${given[0]}`, `the ${type} backend never seals its datagrams (it is wire-compatible with other implementations); only ${backendNames().filter((n) => backend(n).seals).join(" and ")} does`);
  if (b.secret !== undefined && b.keyFile !== undefined) fail("backend.keyFile", "give backend.secret or backend.keyFile, not both");
  if (b.insecure !== undefined && b.insecure !== true && b.insecure !== false) fail("backend.insecure", `must be true or false, not ${JSON.stringify(b.insecure)}`);
  if (b.insecure === true && given.length > 1) fail("backend.insecure", "true sends in the clear: it cannot go with a secret");
  if (b.secret !== undefined) {
    if (typeof b.secret !== "string") fail("backend.secret", `must be a string, not ${JSON.stringify(b.secret)}`);
    const why = secretFault(b.secret);
    if (why) fail("backend.secret", why);
    return { secret: b.secret };
  }
  if (b.keyFile !== undefined) {
    const f = b.keyFile;
    if (typeof f !== "string" || !isAbsolute(f)) fail("backend.keyFile", `must be an absolute path, not ${JSON.stringify(f)}`);
    let text: string;
    try {
      if (statSync(f).mode & 0o004) fail("backend.keyFile", `${f} can be read by every user: chmod 600 it (or 640 for a group)`);
      text = readFileSync(f, "utf8");
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      fail("backend.keyFile", `cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const secret = text.replace(/\s+$/, "");
    const why = secretFault(secret);
    if (why) fail("backend.keyFile", `the secret in ${f} ${why}`);
    return { secret, keyFile: f };
  }
  return b.insecure === true ? { insecure: true } : {};
}

/**
 * Refuses a cluster whose backend seals but which has no secret and does not say
 * `backend.insecure: true`: a tapnet cluster is sealed unless told. A config of one node has
 * no peer to seal for, and needs none.
 */
export function checkSealed(c: ClusterConfig): void {
  if (!backend(c.backend.type).seals || c.backend.secret !== undefined || c.backend.insecure || c.nodes.length === 1) return;
  fail("backend.secret", `the ${c.backend.type} backend seals its datagrams with the cluster's secret, and this config has none: give backend.secret (${MIN_SECRET} characters or more, the same on every node: openssl rand -base64 32) or backend.keyFile (a file holding it), or set backend.insecure: true to send in the clear`);
}

/**
 * A config file read and checked, as `tapnet switch` takes it (sealed unless told: checkSealed);
 * a file that cannot be read is a ConfigError naming it and why.
 */
export function readClusterConfig(file: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const c = parseClusterConfig(text, file);
  checkSealed(c);
  return c;
}

/** The config as a user would write it, every default filled in: for `lab` to write out. */
export function formatClusterConfig(c: ClusterConfig): Record<string, unknown> {
  return {
    clusterCidr: formatCidr(c.clusterCidr),
    serviceCidr: formatCidr(c.serviceCidr),
    nodeSubnetPrefix: c.nodeSubnetPrefix,
    mtu: c.mtu,
    backend: formatBackend(c.backend),
    nodes: c.nodes.map((n) => ({
      name: n.name, address: formatIpv4(n.address), podCidr: formatCidr(n.podCidr),
      // A backend with a VNI speaks to Linux VTEPs, which must be told each node's MAC.
      ...(backend(c.backend.type).vni || n.vtepMac !== vtepMacFor(n.address) ? { vtepMac: n.vtepMac } : {}),
    })),
  };
}

/** The backend section as written: its VNI where it has one; the key file, else the secret, else insecure. */
function formatBackend(b: ClusterConfig["backend"]): Record<string, unknown> {
  const seal = b.keyFile !== undefined ? { keyFile: b.keyFile } : b.secret !== undefined ? { secret: b.secret } : b.insecure ? { insecure: true } : {};
  return { type: b.type, port: b.port, ...(backend(b.type).vni ? { vni: b.vni } : {}), ...seal };
}

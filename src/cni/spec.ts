/**
 * The CNI specification (containernetworking/cni SPEC.md, 1.1.0) as tapnet's plugin reads and
 * writes it: the versions it speaks, the error codes, the environment and the network config a
 * runtime passes, and the ADD result in the shape of each version. Plain objects, no I/O.
 *
 * Results are held in the 1.1.0 shape and converted on the way out: 1.0.0 drops what 1.1.0
 * added (an interface's mtu, socketPath, pciID; a route's mtu, advmss, priority, table, scope);
 * 0.3.x and 0.4.0 drop the same and give each ip a "version" ("4" or "6").
 */

export const SPEC_VERSION = "1.1.0";
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/** The spec's well-known error codes (Section 5, "Error"). */
export const CODE = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  INTERNAL: 999,
} as const;

/** An error the plugin reports as the spec's error object on stdout. */
export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details = "") {
    super(msg);
  }
}

export interface ErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function errorResult(version: string, e: CniError): ErrorResult {
  return { cniVersion: version, code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
}

/** "1.0.0" → [1, 0, 0]; undefined if it is not a version. */
function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** a >= b, both valid versions. */
export function versionAtLeast(a: string, b: string): boolean {
  const x = parseVersion(a)!;
  const y = parseVersion(b)!;
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i];
  return true;
}

// ---------------------------------------------------------------- the environment

export type Command = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION";
const COMMANDS: Command[] = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"];

/** The environment variables each command requires (Section 2). */
const REQUIRED: Record<Command, string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  STATUS: [],
  GC: [],
  VERSION: [],
};

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key=value pairs. */
  args: Record<string, string>;
  path: string[];
}

/** Names: a letter or digit, then letters, digits, _ . - (container IDs and network names). */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function readCommand(env: Record<string, string | undefined>): Command {
  const cmd = env.CNI_COMMAND ?? "";
  if (cmd === "") throw new CniError(CODE.INVALID_ENV, "required environment variables missing: CNI_COMMAND");
  if (!COMMANDS.includes(cmd as Command)) throw new CniError(CODE.INVALID_ENV, `unknown CNI_COMMAND: ${cmd}`, `CNI_COMMAND must be one of ${COMMANDS.join(", ")}`);
  return cmd as Command;
}

export function readEnv(env: Record<string, string | undefined>): CniEnv {
  const command = readCommand(env);
  const missing = REQUIRED[command].filter((k) => !env[k]);
  if (missing.length) throw new CniError(CODE.INVALID_ENV, `required environment variables missing: ${missing.join(", ")}`, `CNI_COMMAND=${command} needs ${REQUIRED[command].join(", ")}`);
  const containerId = env.CNI_CONTAINERID ?? "";
  if (containerId && !NAME_RE.test(containerId)) {
    throw new CniError(CODE.INVALID_ENV, "invalid characters in CNI_CONTAINERID", `${JSON.stringify(containerId)}: it must start with a letter or digit, then letters, digits, _ . or -`);
  }
  const ifname = env.CNI_IFNAME ?? "";
  if (ifname) {
    const why = ifnameFault(ifname);
    if (why) throw new CniError(CODE.INVALID_ENV, `invalid CNI_IFNAME ${JSON.stringify(ifname)}`, why);
  }
  return { command, containerId, netns: env.CNI_NETNS ?? "", ifname, args: parseArgs(env.CNI_ARGS ?? ""), path: (env.CNI_PATH ?? "").split(":").filter(Boolean) };
}

/** What is wrong with an interface name as Linux takes it, or "" if nothing. */
export function ifnameFault(name: string): string {
  if (name.length > 15) return "an interface name has at most 15 characters";
  if (name === "." || name === "..") return "an interface name cannot be . or ..";
  if (/[/:\s]/.test(name)) return "an interface name cannot contain /, : or whitespace";
  return "";
}

/** CNI_ARGS: "K8S_POD_NAME=web;K8S_POD_NAMESPACE=default;IgnoreUnknown=1". */
export function parseArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CniError(CODE.INVALID_ENV, "invalid CNI_ARGS", `${JSON.stringify(pair)} is not KEY=VALUE (CNI_ARGS is KEY=VALUE pairs separated by ;)`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

// ---------------------------------------------------------------- the network config

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
  [more: string]: unknown;
}

export interface IpConfig {
  address: string;
  gateway?: string;
  interface?: number;
  [more: string]: unknown;
}

export interface Route {
  dst: string;
  gw?: string;
  [more: string]: unknown;
}

/** An ADD result in the 1.1.0 shape (without cniVersion). */
export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns?: Dns;
  [more: string]: unknown;
}

/** One plugin's config as the runtime passes it on stdin. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** The node's control socket: tapnet's own field. */
  socket: string;
  dns?: Dns;
  prevResult?: Result;
  /** GC: cni.dev/valid-attachments. */
  validAttachments?: { containerID: string; ifname: string }[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
const invalid = (msg: string, details = "") => new CniError(CODE.INVALID_CONFIG, msg, details);

/** The config's cniVersion, if the text is a JSON object with one: for the error's own cniVersion. */
export function peekVersion(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as { cniVersion?: unknown }).cniVersion;
    return typeof v === "string" && SUPPORTED_VERSIONS.includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function parseConfig(text: string, command: Command): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CniError(CODE.DECODE_FAILURE, "the network config on stdin is not JSON", (e as Error).message);
  }
  if (!isObject(raw)) throw new CniError(CODE.DECODE_FAILURE, "the network config on stdin is not a JSON object");
  const v = raw.cniVersion;
  if (typeof v !== "string" || v === "") throw invalid("cniVersion: missing", 'the network config needs "cniVersion" (e.g. "1.1.0")');
  if (!SUPPORTED_VERSIONS.includes(v)) throw new CniError(CODE.INCOMPATIBLE_VERSION, "incompatible CNI versions", `config is ${JSON.stringify(v)}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`);
  if (typeof raw.name !== "string" || !NAME_RE.test(raw.name)) {
    throw invalid(raw.name === undefined ? "name: missing" : "name: invalid network name", `${JSON.stringify(raw.name)}: a network name starts with a letter or digit, then letters, digits, _ . or -`);
  }
  if (typeof raw.type !== "string" || raw.type === "") throw invalid("type: missing", 'the plugin config needs "type": "tapnet"');
  if (raw.ipam !== undefined) {
    throw new CniError(CODE.UNSUPPORTED_FIELD, `unsupported field ipam: ${JSON.stringify(raw.ipam)}`, "tapnet allocates addresses from its node's pod CIDR itself: remove the ipam section");
  }
  const socket = raw.socket;
  if (typeof socket !== "string" || !socket.startsWith("/")) {
    throw invalid(socket === undefined ? "socket: missing" : `socket: ${JSON.stringify(socket)} is not an absolute path`,
      'the tapnet entry says which switch to use: "socket": "/run/tapnet/<node>.sock" (tapnet cni install writes it)');
  }
  const conf: NetConf = { cniVersion: v, name: raw.name, type: raw.type, socket };
  if (raw.dns !== undefined) conf.dns = parseDns(raw.dns, "dns");
  if (raw.prevResult !== undefined && command !== "VERSION") conf.prevResult = parsePrevResult(raw.prevResult);
  if (command === "GC") conf.validAttachments = parseAttachments(raw["cni.dev/valid-attachments"]);
  return conf;
}

function parseDns(d: unknown, at: string): Dns {
  if (!isObject(d)) throw invalid(`${at}: not an object`, `${at} is {"nameservers": [...], "domain": "...", "search": [...], "options": [...]}`);
  const out: Dns = {};
  for (const k of ["nameservers", "search", "options"] as const) {
    if (d[k] === undefined) continue;
    if (!isStrings(d[k])) throw invalid(`${at}.${k}: not a list of strings`, JSON.stringify(d[k]));
    out[k] = d[k] as string[];
  }
  if (d.domain !== undefined) {
    if (typeof d.domain !== "string") throw invalid(`${at}.domain: not a string`, JSON.stringify(d.domain));
    out.domain = d.domain;
  }
  return out;
}

function parseAttachments(v: unknown): { containerID: string; ifname: string }[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid("cni.dev/valid-attachments: not a list", JSON.stringify(v));
  return v.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== "string" || typeof a.ifname !== "string") {
      throw invalid(`cni.dev/valid-attachments[${i}]: not {"containerID": ..., "ifname": ...}`, JSON.stringify(a));
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** A previous plugin's result, in whatever version it came: into the 1.1.0 shape, unknown fields kept. */
export function parsePrevResult(p: unknown): Result {
  if (!isObject(p)) throw invalid("prevResult: not an object");
  const list = (k: string): Record<string, unknown>[] => {
    const v = p[k] ?? [];
    if (!Array.isArray(v) || !v.every(isObject)) throw invalid(`prevResult.${k}: not a list of objects`, JSON.stringify(v));
    return v;
  };
  const interfaces = list("interfaces").map((x, i) => {
    if (typeof x.name !== "string") throw invalid(`prevResult.interfaces[${i}].name: missing`, JSON.stringify(x));
    return { ...x } as Interface;
  });
  const ips = list("ips").map((x, i) => {
    if (typeof x.address !== "string" || !(CIDR4.test(x.address) || x.address.includes(":"))) {
      throw invalid(`prevResult.ips[${i}].address: not an address in CIDR notation`, JSON.stringify(x.address));
    }
    if (x.interface !== undefined && !(Number.isInteger(x.interface) && (x.interface as number) >= 0 && (x.interface as number) < interfaces.length)) {
      throw invalid(`prevResult.ips[${i}].interface: not an index into interfaces`, JSON.stringify(x.interface));
    }
    const { version: _v, ...rest } = x;
    return rest as IpConfig;
  });
  const routes = list("routes").map((x, i) => {
    if (typeof x.dst !== "string") throw invalid(`prevResult.routes[${i}].dst: missing`, JSON.stringify(x));
    return { ...x } as Route;
  });
  const { cniVersion: _c, interfaces: _i, ips: _p, routes: _r, dns, ...more } = p;
  return { ...more, interfaces, ips, routes, ...(dns !== undefined ? { dns: parseDns(dns, "prevResult.dns") } : {}) };
}

// ---------------------------------------------------------------- results

/** What the switch answers to cni.add (the contract). */
export interface Attachment {
  ifname: string;
  mac: string;
  sandbox: string;
  ip: string;
  prefix: number;
  gateway: string;
  mtu: number;
}

/**
 * tapnet's ADD result: its interface in the container, its address on it, the default route via
 * the gateway, and the config's dns. After a previous plugin, appended to that plugin's result.
 */
export function addResult(att: Attachment, netns: string, dns: Dns | undefined, prev?: Result): Result {
  const base: Result = prev ?? { interfaces: [], ips: [], routes: [] };
  const index = base.interfaces.length;
  const out: Result = {
    ...base,
    interfaces: [...base.interfaces, { name: att.ifname, mac: att.mac, mtu: att.mtu, sandbox: netns }],
    ips: [...base.ips, { address: `${att.ip}/${att.prefix}`, gateway: att.gateway, interface: index }],
    routes: [...base.routes, { dst: "0.0.0.0/0", gw: att.gateway }],
  };
  const hasDns = (d?: Dns) => d !== undefined && Object.keys(d).length > 0;
  if (!hasDns(base.dns) && hasDns(dns)) out.dns = dns;
  return out;
}

const V110_INTERFACE = ["mtu", "socketPath", "pciID"];
const V110_ROUTE = ["mtu", "advmss", "priority", "table", "scope"];
const without = <T extends object>(o: T, keys: string[]): T => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k))) as T;

/** The result as version `v` writes it, with cniVersion first. */
export function resultFor(v: string, r: Result): Record<string, unknown> {
  const { interfaces, ips, routes, dns, ...more } = r;
  if (versionAtLeast(v, "1.1.0")) return { cniVersion: v, interfaces, ips, routes, ...(dns ? { dns } : {}), ...more };
  const old = !versionAtLeast(v, "1.0.0");
  return {
    cniVersion: v,
    interfaces: interfaces.map((i) => without(i, V110_INTERFACE)),
    ips: ips.map((ip) => (old ? { version: ip.address.includes(":") ? "6" : "4", ...ip } : ip)),
    routes: routes.map((rt) => without(rt, V110_ROUTE)),
    ...(dns ? { dns } : {}),
    ...more,
  };
}

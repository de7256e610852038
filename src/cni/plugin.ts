/**
 * The CNI commands of tapnet's plugin: what ADD, DEL, CHECK, STATUS, GC and VERSION do with the
 * environment and the config a runtime gives, asking the node's switch over its control socket
 * (cni.add, cni.del, cni.check, cni.gc, cni.status). `runPlugin` is the whole plugin but for
 * the process around it (main.ts): it takes the environment and stdin, and gives stdout and the
 * exit status. Every failure is the spec's error object with a non-zero status.
 *
 * When the switch is not running, ADD, DEL, CHECK and GC answer 11 ("try again later"): the
 * switch holds the address and the TAP, so a DEL cannot be done without it, and saying it was
 * would leak the address; the runtime retries (the kubelet does), or GC collects it later.
 * DEL succeeds when the switch knows no such attachment, or the namespace is gone.
 */
import { addResult, CniError, CODE, errorResult, parseConfig, peekVersion, readCommand, readEnv, resultFor, SPEC_VERSION,
  SUPPORTED_VERSIONS, versionAtLeast, type Attachment, type CniEnv, type NetConf } from "./spec.ts";
import { checkNamespace, type NetnsProbe } from "./netns.ts";

/** Calls a control socket method; rejects with the switch's message (node/rpc.ts's rpcCall). */
export type Call = (socket: string, method: string, params: Record<string, unknown>, timeoutMs: number) => Promise<unknown>;

export interface PluginDeps {
  call: Call;
  probe: NetnsProbe;
}

export interface PluginOutput {
  stdout: string;
  /** Logs for people (the spec allows unstructured output on stderr). */
  stderr: string;
  code: number;
}

/** How long a command waits for the switch: attaching may wait behind other ADDs and the store. */
const TIMEOUT_MS = { add: 60_000, del: 60_000, check: 20_000, gc: 60_000, status: 5_000 };

export async function runPlugin(env: Record<string, string | undefined>, stdin: string, deps: PluginDeps): Promise<PluginOutput> {
  let version = peekVersion(stdin) ?? SPEC_VERSION;
  try {
    if (readCommand(env) === "VERSION") return ok(JSON.stringify(versionResult(stdin)));
    const e = readEnv(env);
    const conf = parseConfig(stdin, e.command);
    version = conf.cniVersion;
    switch (e.command) {
      case "ADD": return ok(JSON.stringify(resultFor(conf.cniVersion, await add(e, conf, deps.call))));
      case "DEL": return ok("", await del(e, conf, deps.call));
      case "CHECK":
        needVersion(conf, "0.4.0", "CHECK");
        await check(e, conf, deps);
        return ok("");
      case "STATUS":
        needVersion(conf, "1.1.0", "STATUS");
        await status(conf, deps.call);
        return ok("");
      case "GC":
        needVersion(conf, "1.1.0", "GC");
        return ok("", await gc(conf, deps.call));
      default: throw new CniError(CODE.INVALID_ENV, `unknown CNI_COMMAND: ${e.command}`);
    }
  } catch (err) {
    const ce = err instanceof CniError ? err : new CniError(CODE.INTERNAL, "internal error in the tapnet plugin", (err as Error)?.stack ?? String(err));
    return { stdout: JSON.stringify(errorResult(version, ce)), stderr: "", code: 1 };
  }
}

const ok = (stdout: string, stderr = ""): PluginOutput => ({ stdout, stderr, code: 0 });

/** VERSION: the version given on stdin (1.1.0 if none), and every version the plugin speaks. */
export function versionResult(stdin: string): { cniVersion: string; supportedVersions: string[] } {
  let v: unknown;
  try {
    v = (JSON.parse(stdin) as { cniVersion?: unknown })?.cniVersion;
  } catch { /* no config: answer in the current version */ }
  return { cniVersion: typeof v === "string" && v !== "" ? v : SPEC_VERSION, supportedVersions: SUPPORTED_VERSIONS };
}

function needVersion(conf: NetConf, min: string, command: string): void {
  if (!versionAtLeast(conf.cniVersion, min)) {
    throw new CniError(CODE.INCOMPATIBLE_VERSION, `config version does not allow ${command}`, `${command} needs cniVersion ${min} or later; the config says ${conf.cniVersion}`);
  }
}

async function add(e: CniEnv, conf: NetConf, call: Call) {
  const params: Record<string, unknown> = { containerId: e.containerId, netns: e.netns, ifname: e.ifname };
  if (e.args.K8S_POD_NAME) params.podName = e.args.K8S_POD_NAME;
  if (e.args.K8S_POD_NAMESPACE) params.podNamespace = e.args.K8S_POD_NAMESPACE;
  const att = await ask<Attachment>(call, conf.socket, "cni.add", params, TIMEOUT_MS.add, e);
  return addResult(att, e.netns, conf.dns, conf.prevResult);
}

async function del(e: CniEnv, conf: NetConf, call: Call): Promise<string> {
  try {
    const r = await ask<{ removed?: boolean }>(call, conf.socket, "cni.del", { containerId: e.containerId, ifname: e.ifname }, TIMEOUT_MS.del, e);
    return r?.removed ? "" : `tapnet: no attachment ${e.containerId}/${e.ifname} on the switch: nothing to do\n`;
  } catch (err) {
    // The namespace is gone: what was in it went with it, and the switch has nothing left to free.
    if (err instanceof CniError && err.code === CODE.INTERNAL && /^NETNS:/.test(err.details)) return `tapnet: ${err.details}\n`;
    throw err;
  }
}

async function status(conf: NetConf, call: Call): Promise<void> {
  let r: { ready?: boolean } | undefined;
  try {
    r = (await call(conf.socket, "cni.status", {}, TIMEOUT_MS.status)) as { ready?: boolean };
  } catch (err) {
    throw new CniError(CODE.NOT_AVAILABLE, "the plugin is not available: the tapnet switch does not answer", `${conf.socket}: ${(err as Error).message}`);
  }
  if (r?.ready !== true) throw new CniError(CODE.NOT_AVAILABLE, "the plugin is not available: the tapnet switch is not ready", `${conf.socket} answered ${JSON.stringify(r)}`);
}

async function gc(conf: NetConf, call: Call): Promise<string> {
  const valid = (conf.validAttachments ?? []).map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
  const r = await ask<{ removed?: { containerId: string; ifname: string }[] }>(call, conf.socket, "cni.gc", { valid }, TIMEOUT_MS.gc);
  const removed = r?.removed ?? [];
  return removed.length ? `tapnet: GC removed ${removed.map((a) => `${a.containerId}/${a.ifname}`).join(", ")}\n` : "";
}

interface CheckAnswer {
  ifname: string;
  mac: string;
  ip: string;
  prefix: number;
  gateway: string;
  mtu: number;
}

/**
 * CHECK: prevResult must hold tapnet's interface (CNI_IFNAME in CNI_NETNS) and its address; the
 * switch must have that attachment with that address and gateway; and the namespace must have
 * the interface up, with that MAC (a later plugin may have changed it: prevResult says so) and
 * address, and the default route prevResult lists.
 */
async function check(e: CniEnv, conf: NetConf, deps: PluginDeps): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw new CniError(CODE.INVALID_CONFIG, "prevResult: missing", "CHECK needs the result of the ADD (prevResult)");
  const index = prev.interfaces.findIndex((i) => i.name === e.ifname && (i.sandbox ?? "") === e.netns);
  if (index < 0) throw mismatch(`prevResult has no interface ${e.ifname} in ${e.netns}`, JSON.stringify(prev.interfaces));
  const iface = prev.interfaces[index];
  const ip = prev.ips.find((x) => x.interface === index && !x.address.includes(":"));
  if (!ip) throw mismatch(`prevResult has no IPv4 address on ${e.ifname}`, JSON.stringify(prev.ips));
  const have = await ask<CheckAnswer>(deps.call, conf.socket, "cni.check", { containerId: e.containerId, ifname: e.ifname, netns: e.netns }, TIMEOUT_MS.check, e);
  if (`${have.ip}/${have.prefix}` !== ip.address) throw mismatch(`the switch has ${have.ip}/${have.prefix} for ${e.containerId}/${e.ifname}, prevResult says ${ip.address}`);
  if (ip.gateway !== undefined && have.gateway !== ip.gateway) throw mismatch(`the switch's gateway is ${have.gateway}, prevResult says ${ip.gateway}`);
  const route = prev.routes.find((r) => r.dst === "0.0.0.0/0");
  const fault = await checkNamespace(deps.probe, e.netns, e.ifname, { mac: iface.mac, address: ip.address, gateway: route ? route.gw ?? ip.gateway : undefined });
  if (fault) throw mismatch(fault);
}

const mismatch = (msg: string, details = "") => new CniError(CODE.INTERNAL, msg, details);

/**
 * Calls the switch, turning what goes wrong into the spec's errors: not running → 11; the
 * agent's coded messages (EXHAUSTED:, IFNAME_TAKEN:, NETNS:) → clear messages with code 999
 * (the spec has no code for them) and the switch's words in details.
 */
async function ask<T>(call: Call, socket: string, method: string, params: Record<string, unknown>, timeoutMs: number, e?: CniEnv): Promise<T> {
  try {
    return (await call(socket, method, params, timeoutMs)) as T;
  } catch (err) {
    throw switchError((err as Error).message ?? String(err), socket, method, e);
  }
}

export function switchError(m: string, socket: string, method: string, e?: CniEnv): CniError {
  // rpcCall's words for: no socket or nobody listening; the switch gone mid-request; no answer in time.
  if (/^cannot reach the switch at .*: (no switch is running there|.*\b(ECONNRESET|EPIPE)\b)/.test(m) || /closed the connection without answering$/.test(m) || /^no answer from /.test(m) || /^the switch is busy/.test(m)) {
    return new CniError(CODE.TRY_AGAIN_LATER, "try again later: the tapnet switch is not running", `${method} on ${socket}: ${m}`);
  }
  if (m.startsWith("EXHAUSTED:")) return new CniError(CODE.INTERNAL, "no address left in the node's pod CIDR", m);
  if (m.startsWith("IFNAME_TAKEN:")) return new CniError(CODE.INTERNAL, `interface name ${e?.ifname ?? "?"} is already taken in the container`, m);
  if (m.startsWith("NETNS:")) return new CniError(CODE.INTERNAL, `${e?.netns || "the namespace"} is not a network namespace (gone?)`, m);
  if (/^unknown method /.test(m)) return new CniError(CODE.INTERNAL, `the switch at ${socket} does not speak CNI (${method}): upgrade it`, m);
  return new CniError(CODE.INTERNAL, `the tapnet switch refused ${method}: ${m}`, `${method} on ${socket}`);
}

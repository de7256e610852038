/**
 * `tapnet cni install`: the plugin executable in BIN_DIR (named `tapnet`, the conflist's type)
 * and a conflist in CONF_DIR naming the switch to use by its control socket. Both are written
 * whole and renamed into place, so a runtime running the plugin meanwhile sees the old or the
 * new file, never half of one. `uninstall` removes only files tapnet wrote.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildPlugin, PLUGIN_MARK } from "./build.ts";
import { SUPPORTED_VERSIONS, type Dns } from "./spec.ts";

export const DEFAULT_BIN_DIR = "/opt/cni/bin";
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";
export const PLUGIN_NAME = "tapnet";

export class CniInstallError extends Error {}

export interface ConflistOptions {
  /** The network's name (default tapnet): podman's --network NAME. */
  name: string;
  socket: string;
  cniVersion: string;
  dns?: Dns;
  /** Chain the reference portmap plugin after tapnet (podman run -p). */
  portmap?: boolean;
}

export interface InstallOptions extends ConflistOptions {
  binDir: string;
  confDir: string;
  /** The node binary the plugin runs on (its first line). */
  nodeBin: string;
}

/** The conflist's file: 10-NAME.conflist (runtimes read CONF_DIR in name order). */
export function conflistPath(confDir: string, name: string): string {
  return join(confDir, `10-${name}.conflist`);
}

export function conflist(o: ConflistOptions): Record<string, unknown> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(o.name)) throw new CniInstallError(`network name "${o.name}": it must start with a letter or digit, then letters, digits, _ . or -`);
  if (!o.socket.startsWith("/")) throw new CniInstallError(`socket "${o.socket}" is not an absolute path`);
  if (!SUPPORTED_VERSIONS.includes(o.cniVersion)) throw new CniInstallError(`cniVersion "${o.cniVersion}": the plugin speaks ${SUPPORTED_VERSIONS.join(", ")}`);
  const tapnet: Record<string, unknown> = { type: PLUGIN_NAME, socket: o.socket };
  if (o.dns && Object.keys(o.dns).length) tapnet.dns = o.dns;
  const plugins: Record<string, unknown>[] = [tapnet];
  if (o.portmap) plugins.push({ type: "portmap", capabilities: { portMappings: true } });
  return { cniVersion: o.cniVersion, name: o.name, plugins };
}

/** Is `path` a plugin file tapnet wrote? */
function isOurs(path: string): boolean {
  try {
    return readFileSync(path, "utf8").slice(0, 4096).split("\n")[1]?.startsWith(PLUGIN_MARK) ?? false;
  } catch {
    return false;
  }
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export async function installCni(o: InstallOptions): Promise<{ plugin: string; conflist: string }> {
  const list = conflist(o);
  const plugin = join(o.binDir, PLUGIN_NAME);
  if (existsSync(plugin) && !isOurs(plugin)) throw new CniInstallError(`${plugin} exists and is not tapnet's plugin: not overwriting it`);
  if (!existsSync(o.nodeBin)) throw new CniInstallError(`${o.nodeBin}: no node binary there (give --node-bin PATH)`);
  const text = await buildPlugin(o.nodeBin);
  mkdirSync(o.binDir, { recursive: true });
  mkdirSync(o.confDir, { recursive: true });
  writeAtomic(plugin, text, 0o755);
  const file = conflistPath(o.confDir, o.name);
  writeAtomic(file, JSON.stringify(list, null, 2) + "\n", 0o644);
  return { plugin, conflist: file };
}

/** Is `file` a conflist whose first plugin is tapnet? */
function isTapnetConflist(file: string): boolean {
  try {
    const l = JSON.parse(readFileSync(file, "utf8")) as { plugins?: { type?: string }[] };
    return l.plugins?.[0]?.type === PLUGIN_NAME;
  } catch {
    return false;
  }
}

/** Removes the network's conflist, and the plugin when no other tapnet conflist is left, unless `keepPlugin` (other networks use it); returns what it removed. */
export function uninstallCni(o: { binDir: string; confDir: string; name: string; keepPlugin?: boolean }): string[] {
  const removed: string[] = [];
  const file = conflistPath(o.confDir, o.name);
  if (existsSync(file)) {
    if (!isTapnetConflist(file)) throw new CniInstallError(`${file} is not a tapnet conflist: not removing it`);
    unlinkSync(file);
    removed.push(file);
  }
  const plugin = join(o.binDir, PLUGIN_NAME);
  const others = existsSync(o.confDir) ? readdirSync(o.confDir).filter((f) => f.endsWith(".conflist") && isTapnetConflist(join(o.confDir, f))) : [];
  if (!o.keepPlugin && others.length === 0 && existsSync(plugin)) {
    if (!isOurs(plugin)) throw new CniInstallError(`${plugin} is not tapnet's plugin: not removing it`);
    unlinkSync(plugin);
    removed.push(plugin);
  }
  return removed;
}

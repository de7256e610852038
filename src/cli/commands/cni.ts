/** `tapnet cni install|uninstall`: tapnet as a CNI plugin for container runtimes (src/cni/). */
import { conflistPath, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, installCni, uninstallCni } from "../../cni/install.ts";
import type { Dns } from "../../cni/spec.ts";
import { readLabState } from "../../lab/plan.ts";
import { CONTROL_DIR, controlSockets, defaultControlPath, isAlive } from "../../node/rpc.ts";
import { UsageError, type Command, type Parsed } from "../args.ts";

const out = (s: string) => process.stdout.write(s + "\n");

const dirOptions = {
  "bin-dir": { type: "string", value: "DIR", help: "where the runtime looks for plugins", default: DEFAULT_BIN_DIR },
  "conf-dir": { type: "string", value: "DIR", help: "where the runtime looks for network configs", default: DEFAULT_CONF_DIR },
  name: { type: "string", value: "NAME", help: "the network's name (podman --network NAME); the conflist is 10-NAME.conflist", default: "tapnet" },
} as const;

/** The switch's socket: --socket; else --node of lab --prefix; else --node's /run/tapnet/NAME.sock; else the only one there. */
export function socketFor(p: Parsed, dir = CONTROL_DIR): string {
  if (p.values.socket) {
    if (p.values.node || p.values.prefix) throw new UsageError("give --socket, or --node (with --prefix for a lab's node), not both");
    return String(p.values.socket);
  }
  const node = p.values.node === undefined ? undefined : String(p.values.node);
  if (p.values.prefix) {
    const prefix = String(p.values.prefix);
    const state = readLabState(prefix);
    if (!state) throw new UsageError(`no lab "${prefix}" is up (see tapnet lab status --prefix ${prefix})`);
    const names = state.nodes.filter((n) => n.control).map((n) => n.name);
    if (!node) throw new UsageError(`say which node of lab "${prefix}" with --node (one of ${names.join(", ")})`);
    const n = state.nodes.find((x) => x.name === node);
    if (!n || !n.control) throw new UsageError(`lab "${prefix}" has no tapnet node "${node}" (its nodes: ${names.join(", ")})`);
    return n.control;
  }
  if (node) return defaultControlPath(node);
  const socks = controlSockets(dir);
  if (socks.length === 1) return `${dir}/${socks[0]}`;
  if (socks.length === 0) throw new UsageError(`no switch runs here (no control socket in ${dir}): say which with --node NAME or --socket PATH`);
  throw new UsageError(`several switches run here (${socks.join(", ")}): say which with --node NAME or --socket PATH`);
}

function dnsOption(p: Parsed): Dns | undefined {
  const list = (k: string) => (p.values[k] === undefined ? [] : ([] as string[]).concat(p.values[k] as string | string[]));
  const dns: Dns = {};
  const servers = list("dns-server");
  for (const s of servers) if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(s) && !s.includes(":")) throw new UsageError(`--dns-server ${s}: not an IP address`);
  if (servers.length) dns.nameservers = servers;
  if (list("dns-search").length) dns.search = list("dns-search");
  if (p.values["dns-domain"]) dns.domain = String(p.values["dns-domain"]);
  return Object.keys(dns).length ? dns : undefined;
}

export const cniInstallCommand: Command = {
  name: "cni install",
  summary: "install tapnet as a CNI plugin for container runtimes (podman, containerd, the kubelet)",
  details: [
    "Writes BIN_DIR/tapnet (the plugin: one bundled file run by the node binary running this command) and",
    "CONF_DIR/10-NAME.conflist, a network NAME whose tapnet entry uses the switch at SOCKET. Run it again to",
    "update both. Several networks (one per switch, e.g. a lab's nodes) share the plugin: give each a --name.",
  ].join("\n"),
  options: {
    ...dirOptions,
    node: { type: "string", value: "NODE", help: "use node NODE's switch (/run/tapnet/NODE.sock, or the lab's with --prefix)" },
    prefix: { type: "string", value: "LAB", help: "NODE is a node of the lab LAB (tapnet lab up --prefix LAB)" },
    socket: { type: "string", value: "PATH", help: "use the switch listening on this control socket" },
    "dns-server": { type: "string", value: "ADDR", help: "a DNS server for the containers (again for more)", multiple: true },
    "dns-search": { type: "string", value: "DOMAIN", help: "a DNS search domain (again for more)", multiple: true },
    "dns-domain": { type: "string", value: "DOMAIN", help: "the DNS domain" },
    portmap: { type: "boolean", help: "chain the portmap plugin after tapnet (published ports: podman run -p)" },
    "cni-version": { type: "string", value: "V", help: "the conflist's cniVersion (podman 4.3 reads at most 1.0.0)", default: "1.1.0" },
    "node-bin": { type: "string", value: "PATH", help: "the node binary the plugin runs on (default: the one running this)" },
  },
  async run(p) {
    const socket = socketFor(p);
    const nodeBin = p.values["node-bin"] ? String(p.values["node-bin"]) : process.versions.node && !("Deno" in globalThis) ? process.execPath : "";
    if (!nodeBin) throw new UsageError("running on Deno: give the node binary the plugin runs on with --node-bin PATH");
    const r = await installCni({
      binDir: String(p.values["bin-dir"]), confDir: String(p.values["conf-dir"]), name: String(p.values.name), socket,
      cniVersion: String(p.values["cni-version"]), dns: dnsOption(p), portmap: Boolean(p.values.portmap), nodeBin,
    });
    out(`plugin ${r.plugin} (runs on ${nodeBin})`);
    out(`network ${String(p.values.name)}: ${r.conflist} (switch ${socket})`);
    if (!(await isAlive(socket))) out(`note: no switch answers on ${socket} yet: containers get an error (try again later) until one does`);
    return 0;
  },
};

export const cniUninstallCommand: Command = {
  name: "cni uninstall",
  summary: "remove a network's conflist, and the plugin when no other tapnet network is left",
  options: { ...dirOptions, "keep-plugin": { type: "boolean", help: "leave BIN_DIR/tapnet in place" } },
  async run(p) {
    const confDir = String(p.values["conf-dir"]);
    const name = String(p.values.name);
    const removed = uninstallCni({ binDir: String(p.values["bin-dir"]), confDir, name, keepPlugin: Boolean(p.values["keep-plugin"]) });
    out(removed.length ? removed.map((f) => `removed ${f}`).join("\n") : `nothing to remove (no ${conflistPath(confDir, name)})`);
    return 0;
  },
};

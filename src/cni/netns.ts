/**
 * Looking inside a container's network namespace for CHECK: the interface, its MAC, state and
 * addresses, and the default routes, with `nsenter --net=PATH ip -j …` (the runtime's namespace
 * is a path, /run/netns/x or /proc/PID/ns/net, which `ip -n` cannot take). Runtimes run plugins
 * with a small PATH, so the system's directories are added to it.
 */
import { execFile } from "node:child_process";

export interface NsLink {
  ifname: string;
  mac: string;
  up: boolean;
  /** IPv4 addresses in CIDR notation. */
  addresses: string[];
}

export interface NetnsProbe {
  /** The interface in the namespace; undefined if there is none of that name. Throws if the namespace cannot be entered. */
  link(netns: string, ifname: string): Promise<NsLink | undefined>;
  /** The gateways of the namespace's IPv4 default routes. */
  defaultGateways(netns: string): Promise<string[]>;
}

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function nsIp(netns: string, args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const env = { ...process.env, PATH: process.env.PATH ? `${process.env.PATH}:${SYSTEM_PATH}` : SYSTEM_PATH };
  return new Promise((resolve) => {
    execFile("nsenter", [`--net=${netns}`, "--", "ip", "-j", ...args], { env, timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ ok: !err, stdout: String(stdout), stderr: String(stderr || (err ? err.message : "")) });
    });
  });
}

/** The probe of this machine's namespaces. */
export const nsenterProbe: NetnsProbe = {
  async link(netns, ifname) {
    const r = await nsIp(netns, ["addr", "show", "dev", ifname]);
    if (!r.ok) {
      if (/does not exist/.test(r.stderr)) return undefined;
      throw new Error(`cannot look into ${netns}: ${r.stderr.trim()}`);
    }
    const [l] = JSON.parse(r.stdout) as { ifname: string; address?: string; flags?: string[]; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    if (!l) return undefined;
    return {
      ifname: l.ifname,
      mac: l.address ?? "",
      up: (l.flags ?? []).includes("UP"),
      addresses: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
    };
  },
  async defaultGateways(netns) {
    const r = await nsIp(netns, ["-4", "route", "show", "default"]);
    if (!r.ok) throw new Error(`cannot look into ${netns}: ${r.stderr.trim()}`);
    return (JSON.parse(r.stdout || "[]") as { gateway?: string }[]).flatMap((x) => (x.gateway ? [x.gateway] : []));
  },
};

/** What is wrong in the namespace against what the result says, or "" when all is there. */
export async function checkNamespace(probe: NetnsProbe, netns: string, ifname: string, want: { mac?: string; address: string; gateway?: string }): Promise<string> {
  let link: NsLink | undefined;
  try {
    link = await probe.link(netns, ifname);
  } catch (e) {
    return (e as Error).message;
  }
  if (!link) return `${ifname} is missing in ${netns}`;
  if (!link.up) return `${ifname} in ${netns} is down`;
  if (want.mac && link.mac.toLowerCase() !== want.mac.toLowerCase()) return `${ifname} in ${netns} has MAC ${link.mac}, prevResult says ${want.mac}`;
  if (!link.addresses.includes(want.address)) return `${ifname} in ${netns} does not hold ${want.address} (it has ${link.addresses.join(", ") || "no IPv4 address"})`;
  if (want.gateway) {
    const gws = await probe.defaultGateways(netns).catch((e: Error) => e);
    if (gws instanceof Error) return gws.message;
    if (!gws.includes(want.gateway)) return `${netns} has no default route via ${want.gateway} (default via ${gws.join(", ") || "none"})`;
  }
  return "";
}

/**
 * Attaching a TAP into a network namespace given by a path, as a CNI runtime gives it
 * (CNI_NETNS: /run/netns/x, /var/run/netns/…, /proc/PID/ns/net), not by a name in /run/netns.
 *
 * iproute2 (6.1, measured) takes a path where it names a namespace to move a device into
 * (`ip link set DEV netns PATH` opens PATH), but `ip -n NAME` only takes names under
 * /run/netns. So the TAP is moved with `ip link set TMP netns PATH`, and the commands inside
 * run as `nsenter --net=PATH ip -batch -` (util-linux: setns(2) on the path, nothing else).
 * Bind-mounting the path under /run/netns for the duration would leave a mount behind if the
 * switch died in between, and its name would be one more thing to keep apart between
 * concurrent ADDs; nsenter leaves nothing. nsenter also tells a path that is no network
 * namespace (EINVAL) from one that is gone (ENOENT): the "NETNS:" errors.
 *
 * The steps, the first undone if a later one fails (closing the TAP removes the device,
 * wherever it went): open the TAP under a temporary name in the switch's namespace (the switch
 * keeps the fd), move it in, rename it, give it its MAC, MTU and address, bring it and lo up,
 * route the default via the gateway, cap its super-frames (best effort). The port is added
 * with the pod's MAC and address as its identity: the switch pins them (FDB and neighbour
 * table) and drops whatever the pod sends from any other (port security). The device is down
 * until it has its MAC, so nothing is sent from the kernel's first one.
 */
import { statSync } from "node:fs";
import type { Switch } from "../switch/switch.ts";
import { run, type ExecError } from "./exec.ts";
import type { Logger } from "./log.ts";
import type { ClusterConfig } from "./config.ts";
import { backend } from "../tunnel/index.ts";

export class PodAttachError extends Error {}

/** The inode of the namespace at `path` (it names another namespace if its inode changed), if it exists. */
export function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** `ip ARGS` inside the namespace at `path`. */
export function ipIn(path: string, args: string[], input?: string): Promise<string> {
  return run("nsenter", [`--net=${path}`, "--", "ip", ...args], input === undefined ? {} : { input });
}

/**
 * The inode of the network namespace at `path`; "NETNS:" if it is gone, no network namespace,
 * or the switch's own; "IFNAME_TAKEN:" if it already has an interface `ifname`.
 */
export async function checkNetnsPath(path: string, ifname?: string): Promise<number> {
  const inode = netnsInode(path);
  if (inode === undefined) throw new PodAttachError(`NETNS: ${path} does not exist`);
  if (inode === netnsInode("/proc/self/ns/net")) throw new PodAttachError(`NETNS: ${path} is the switch's own network namespace, not a pod's`);
  let links: string;
  try {
    links = await ipIn(path, ["-o", "link", "show"]);
  } catch (e) {
    if (/Invalid argument|No such file|cannot open/.test((e as ExecError).stderr ?? "")) throw new PodAttachError(`NETNS: ${path} is not a network namespace`);
    throw e;
  }
  // "2: eth0: <…" or "3: eth0@if7: <…"
  if (ifname !== undefined && links.split("\n").some((l) => l.split(": ")[1]?.split("@")[0] === ifname)) {
    throw new PodAttachError(`IFNAME_TAKEN: ${path} already has an interface ${ifname}`);
  }
  return inode;
}

export interface TapSpec {
  /** The temporary name in the switch's namespace: unique among concurrent attaches. */
  tmp: string;
  /** The switch port's pod label. */
  label: string;
  /** The namespace's path (a name under /run/netns is /run/netns/NAME). */
  netns: string;
  /** How the switch's port list shows the namespace: `netns` unless given (a name, say). */
  shownAs?: string;
  ifname: string;
  ip: string;
  mac: string;
  prefix: number;
  gateway: string;
  mtu: number;
  /** Caps the interface's TSO super-frames (the tapnet backend). */
  gsoMaxSize?: number;
}

/** The gso_max_size for pods' interfaces: on a backend with a super-frame cap, when the switch has a tunnel. */
export function podGsoMaxSize(config: ClusterConfig, sw: Switch): number | undefined {
  const cap = backend(config.backend.type).superFrameCap;
  return cap && sw.tunnel ? cap(config.mtu - 28) : undefined;
}

/** Attaches a TAP as `spec` says; returns its switch port. */
export async function attachTap(sw: Switch, spec: TapSpec, log: Logger): Promise<number> {
  const { tmp, netns, ifname } = spec;
  const port = sw.addTap(tmp, "pod", spec.label, { mac: spec.mac, ip: spec.ip });
  try {
    try {
      await run("ip", ["link", "set", tmp, "netns", netns]);
    } catch (e) {
      throw new PodAttachError(`NETNS: cannot move the interface into ${netns}: ${(e as Error).message}`);
    }
    try {
      await ipIn(netns, ["-batch", "-"], [
        `link set ${tmp} name ${ifname}`,
        `link set ${ifname} address ${spec.mac} mtu ${spec.mtu}`,
        `addr add ${spec.ip}/${spec.prefix} dev ${ifname}`,
        "link set lo up",
        `link set ${ifname} up`,
        `route replace default via ${spec.gateway} dev ${ifname}`,
      ].join("\n") + "\n");
    } catch (e) {
      // Another attach took the name meanwhile.
      if (/File exists/.test((e as ExecError).stderr ?? "") && /name/.test((e as ExecError).stderr ?? "")) throw new PodAttachError(`IFNAME_TAKEN: ${netns} already has an interface ${ifname}`);
      throw e;
    }
    if (spec.gsoMaxSize !== undefined) {
      await ipIn(netns, ["link", "set", ifname, "gso_max_size", String(spec.gsoMaxSize)])
        .catch((e) => log.warn("cannot cap TSO super-frames", { ifname, netns, error: (e as Error).message }));
    }
  } catch (e) {
    await sw.removePort(port.port).catch(() => {});
    throw e;
  }
  sw.relocated(port.port, ifname, spec.shownAs ?? netns);
  return port.port;
}

/**
 * Is a network namespace free for a new pod? `tapnet pod add --netns X` attaches into an
 * existing namespace; if X is already a pod's (of this switch or of another node's switch on
 * the same machine, as in a lab) or a node's, a second interface there would put one pod's
 * traffic in another's namespace. Such a namespace holds an IPv4 address of the cluster CIDR
 * (a pod's eth0, a node's tapnet0): that is what is checked, with `ip -j -4 addr show` inside
 * it. The store cannot answer this: namespace names are per machine, and nodes on different
 * machines may each have a namespace of the same name.
 */
import { cidrContains, formatCidr, type Cidr } from "../wire/cidr.ts";
import { parseIpv4Address } from "../wire/ipv4.ts";
import { ip, netnsExists } from "./exec.ts";

export class PodNetnsError extends Error {}

/** What `ip -j -4 addr show` prints, as far as it is read here. */
interface IpAddrJson {
  ifname?: unknown;
  addr_info?: { family?: unknown; local?: unknown }[];
}

/** The interfaces of `ip -j -4 addr show` output that hold an address inside `cidr`, as "eth0 10.244.1.2". */
export function clusterAddresses(json: string, cidr: Cidr): string[] {
  let links: unknown;
  try {
    links = JSON.parse(json || "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(links)) return [];
  const found: string[] = [];
  for (const l of links as IpAddrJson[]) {
    for (const a of Array.isArray(l?.addr_info) ? l.addr_info : []) {
      const addr = a?.family === "inet" && typeof a.local === "string" ? parseIpv4Address(a.local) : undefined;
      if (addr !== undefined && cidrContains(cidr, addr)) found.push(`${String(l.ifname)} ${a.local}`);
    }
  }
  return found;
}

/**
 * Throws a PodNetnsError if the namespace named `netns` exists and holds an address of the
 * cluster CIDR. A name that is not a namespace's (absent, or not a valid name) passes: the
 * agent makes the namespace, or refuses the name, itself.
 */
export async function refuseClusterNetns(netns: unknown, clusterCidr: Cidr): Promise<void> {
  if (typeof netns !== "string" || !/^[A-Za-z0-9_.-]{1,255}$/.test(netns) || netns === "." || netns === ".." || !netnsExists(netns)) return;
  const taken = clusterAddresses(await ip("-n", netns, "-j", "-4", "addr", "show"), clusterCidr);
  if (taken.length) {
    throw new PodNetnsError(`namespace ${netns} is already a pod's or a node's of this cluster (it holds ${taken.join(", ")}, inside the cluster CIDR ${formatCidr(clusterCidr)}): give a namespace of its own`);
  }
}

/**
 * The node agent's pod file (<control>.pods.json, beside the control socket: node-lock.ts):
 * every pod the agent attached (`tapnet pod add`, the store's pods), with what a switch started
 * after this one needs to take it over: its namespace, interface, address, MAC, and whether the
 * agent made the namespace. It lives in /run, as the TAPs do: both go at a reboot, never one
 * without the other.
 *
 * Written whole (a temporary file renamed over it) each time a pod comes or goes. A pod is
 * written before its TAP is made, marked `pending` with the TAP's temporary name, and again
 * without the mark once attached: a switch killed in between leaves a pending entry, and its
 * successor removes what that attach left (adopt.ts) rather than adopting half a pod.
 *
 * The CNI plugin's pods are not here: the store keeps them (cni-host.ts).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { parseIpv4Address } from "../wire/ipv4.ts";
import { checkIfName } from "../io/tap.ts";
import { NAMESPACE_RE, netnsNameProblem, POD_NAME_RE, type PodRecord } from "./pod-record.ts";

/** A pod as the file keeps it: no switch port (a port number means nothing to the next switch). */
export type SavedPod = Omit<PodRecord, "port"> & {
  /** Set while its TAP is being made: the TAP's temporary name in the switch's namespace. */
  pending?: string;
};

const VERSION = 1;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Why `v` is not a saved pod, if it is not. */
export function savedPodProblem(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not an object";
  const p = v as Record<string, unknown>;
  if (typeof p.name !== "string" || !POD_NAME_RE.test(p.name)) return `name ${JSON.stringify(p.name)} is not a pod name`;
  if (typeof p.namespace !== "string" || !NAMESPACE_RE.test(p.namespace)) return `namespace ${JSON.stringify(p.namespace)} is not a namespace name`;
  const badNetns = netnsNameProblem(p.netns);
  if (badNetns) return badNetns;
  if (typeof p.ip !== "string" || parseIpv4Address(p.ip) === undefined) return `ip ${JSON.stringify(p.ip)} is not an IPv4 address`;
  if (typeof p.mac !== "string" || !MAC_RE.test(p.mac)) return `mac ${JSON.stringify(p.mac)} is not a MAC address`;
  if (typeof p.ifname !== "string" || checkIfName(p.ifname)) return `ifname ${JSON.stringify(p.ifname)} is not an interface name`;
  if (typeof p.ownsNetns !== "boolean" || typeof p.fromStore !== "boolean") return "ownsNetns and fromStore must be true or false";
  if (p.pending !== undefined && (typeof p.pending !== "string" || checkIfName(p.pending))) return `pending ${JSON.stringify(p.pending)} is not an interface name`;
  return undefined;
}

export interface PodFileContents {
  pods: SavedPod[];
  /** Entries left out, each with why (a file written by hand, or cut short). */
  problems: string[];
}

/** Reads the pod file; none is an empty list. A broken file or entry is reported, never thrown. */
export function readPodFile(path: string): PodFileContents {
  if (!existsSync(path)) return { pods: [], problems: [] };
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    return { pods: [], problems: [`${path} is not JSON (${(e as Error).message}): its pods are not taken over`] };
  }
  const d = data as { version?: unknown; pods?: unknown };
  if (typeof data !== "object" || data === null || d.version !== VERSION || !Array.isArray(d.pods)) {
    return { pods: [], problems: [`${path} is not a version ${VERSION} pod file ({"version": ${VERSION}, "pods": [...]}): its pods are not taken over`] };
  }
  const pods: SavedPod[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [i, v] of d.pods.entries()) {
    const bad = savedPodProblem(v);
    const p = v as SavedPod;
    const key = bad ? "" : `${p.namespace}/${p.name}`;
    if (bad || seen.has(key)) {
      problems.push(`${path}: pods[${i}]: ${bad ?? `pod ${key} is there twice`}`);
      continue;
    }
    seen.add(key);
    const { name, namespace, netns, ip, mac, ifname, ownsNetns, fromStore, pending } = p;
    pods.push({ name, namespace, netns, ip, mac, ifname, ownsNetns, fromStore, ...(pending ? { pending } : {}) });
  }
  return { pods, problems };
}

/** Writes the pod file whole; atomic (a reader, or the next switch, never sees half of it). */
export function writePodFile(path: string, pods: SavedPod[]): void {
  writeFileSync(`${path}.tmp`, JSON.stringify({ version: VERSION, pods }, null, 1) + "\n", { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function removePodFile(path: string): void {
  rmSync(path, { force: true });
}

/** A pod record as the file keeps it. */
export function savedPod(r: PodRecord, pending?: string): SavedPod {
  const { port: _, ...rest } = r;
  return pending ? { ...rest, pending } : rest;
}

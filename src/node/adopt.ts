/**
 * A starting switch takes over the pods a dead one left. Their TAPs are persistent (io/tap.ts):
 * each is still its pod's eth0, with its address, MAC, routes and MTU, its carrier down while no
 * switch holds it. To hold it again, the switch opens /dev/net/tun from inside the pod's
 * namespace (setns on this thread for the length of one synchronous call, io/sys.ts) and
 * attaches to the device by its name there: no device is made, moved or renamed, nothing in the
 * pod changes, and the carrier comes back up. About 2 ms a pod, no process spawned.
 *
 * `adoptTap` does it for one interface (the CNI host's pods use it too, through `tryAdopt`);
 * `adoptSaved` for the agent's pod file (pod-state.ts), before anything else the switch starts,
 * so that forwarding resumes as early as it can. The port is added with the pod's MAC and
 * address as its identity, as when it was attached: its FDB and neighbour entries are pinned
 * again, and port security holds from the first frame.
 *
 * What cannot be adopted is removed, never left half-working: a pending entry (its switch died
 * while attaching it) has its temporary device and, if the agent made it, its namespace deleted;
 * a pod whose namespace or interface is gone is dropped (the store's pods are attached again by
 * store-sync.ts, as after any restart); one whose address is no longer this node's (the pod CIDR
 * changed) is adopted and let go at once, which deletes its TAP. An interface another switch
 * holds (EBUSY) is left alone.
 */
import { readFileSync } from "node:fs";
import type { Sys } from "../io/sys.ts";
import type { Switch } from "../switch/switch.ts";
import { ip, ipBatch, netnsExists, run } from "./exec.ts";
import type { PodIpam } from "./ipam.ts";
import type { Logger } from "./log.ts";
import { podKey, type PodRecord } from "./pod-record.ts";
import type { SavedPod } from "./pod-state.ts";

export class AdoptError extends Error {}

export interface AdoptTarget {
  /** The namespace's path (/run/netns/NAME, a CNI runtime's path). */
  netns: string;
  /** How the switch's port list shows the namespace. */
  shownAs: string;
  ifname: string;
  /** The switch port's pod label. */
  label: string;
  ip: string;
  mac: string;
}

/** Is `ifname` among the devices of a /proc/net/dev listing? */
export function listsDevice(procNetDev: string, ifname: string): boolean {
  return procNetDev.split("\n").some((l) => l.trim().startsWith(`${ifname}:`));
}

/** Takes over the TAP `ifname` in the namespace at `t.netns` as a pod port of `sw`; returns the port. */
export function adoptTap(sys: Sys, sw: Switch, t: AdoptTarget): number {
  let port: number;
  try {
    port = sys.inNetns(t.netns, () => {
      // Opening a TAP by a name that does not exist would make one: look first.
      if (!listsDevice(readFileSync("/proc/thread-self/net/dev", "utf8"), t.ifname)) throw new AdoptError(`${t.netns} has no interface ${t.ifname}`);
      return sw.addTap(t.ifname, "pod", t.label, { mac: t.mac, ip: t.ip }).port; // pinned again: port security, FDB, neighbours
    });
  } catch (e) {
    if (e instanceof AdoptError) throw e;
    const msg = (e as Error).message;
    throw new AdoptError(/EBUSY/.test(msg) ? `another process holds ${t.ifname} in ${t.netns}` : /EINVAL/.test(msg) ? `${t.ifname} in ${t.netns} is not a TAP` : msg);
  }
  sw.relocated(port, t.ifname, t.shownAs);
  return port;
}

export interface AdoptContext {
  sw: Switch;
  sys: Sys;
  ipam: PodIpam;
  log: Logger;
}

/** The pods of the pod file this switch now holds again, and those it dropped (their leftovers to remove: `cleanUp`). */
export function adoptSaved(ctx: AdoptContext, saved: SavedPod[]): { adopted: PodRecord[]; dropped: SavedPod[] } {
  const adopted: PodRecord[] = [];
  const dropped: SavedPod[] = [];
  for (const s of saved) {
    const key = podKey(s.namespace, s.name);
    if (s.pending) {
      ctx.log.warn("pod was being attached when the last switch died: removing what was made", { pod: key, netns: s.netns });
      dropped.push(s);
      continue;
    }
    const path = `/run/netns/${s.netns}`;
    let port: number;
    try {
      if (!netnsExists(s.netns)) throw new AdoptError(`its namespace ${s.netns} is gone`);
      port = adoptTap(ctx.sys, ctx.sw, { netns: path, shownAs: s.netns, ifname: s.ifname, label: key, ip: s.ip, mac: s.mac });
    } catch (e) {
      const busy = /another process holds/.test((e as Error).message);
      ctx.log.warn("pod not taken over", { pod: key, netns: s.netns, error: (e as Error).message });
      if (!busy) dropped.push(s);
      continue;
    }
    try {
      ctx.ipam.allocate(s.ip);
    } catch (e) {
      ctx.log.warn("pod not taken over: its address is not this node's to give", { pod: key, ip: s.ip, error: (e as Error).message });
      void ctx.sw.removePort(port).catch(() => {}); // its TAP goes with the port
      dropped.push(s);
      continue;
    }
    adopted.push({ ...s, port });
    ctx.log.info("pod taken over", { pod: key, netns: s.netns, ip: s.ip, mac: s.mac, port });
  }
  return { adopted, dropped };
}

/** Is `ifname` in namespace `netns` (a name) a TAP? */
async function isTap(netns: string, ifname: string): Promise<boolean> {
  const out = await ip("-n", netns, "-d", "link", "show", "dev", ifname).catch(() => "");
  return /\btun type tap\b/.test(out);
}

/** Removes what dropped pods left: a pending attach's devices, the namespaces the agent made. */
export async function cleanUp(dropped: SavedPod[], log: Logger): Promise<void> {
  for (const s of dropped) {
    if (s.pending) await ip("link", "del", s.pending).catch(() => {}); // still in the switch's namespace
    if (netnsExists(s.netns)) {
      for (const dev of s.pending ? [s.pending, s.ifname] : []) {
        // The interface was not there before the attach (addPod refuses a taken name): a TAP of that name is the attach's.
        if (await isTap(s.netns, dev)) await ip("-n", s.netns, "link", "del", dev).catch(() => {});
      }
      if (s.ownsNetns) await ip("netns", "del", s.netns).catch((e) => log.warn("could not delete namespace", { netns: s.netns, error: (e as Error).message }));
    }
  }
}

/** The temporary names the agent and the CNI host give a TAP before it moves into its pod (pod-attach.ts). */
export const TEMPORARY_TAP_RE = /^tn[pc]\d+x\d+$/;

/**
 * Deletes TAPs with a temporary name in the switch's own namespace: an attach cut short by the
 * death of its switch. Called once this switch holds the gateway port, so no other switch of
 * this namespace is attaching anything.
 */
export async function removeStrayTaps(log: Logger): Promise<void> {
  const out = await run("ip", ["-o", "-d", "link", "show"]).catch(() => "");
  const stray = out.split("\n").map((l) => ({ name: l.split(": ")[1]?.split("@")[0] ?? "", line: l }))
    .filter((d) => TEMPORARY_TAP_RE.test(d.name) && /\btun type tap\b/.test(d.line)).map((d) => d.name);
  if (!stray.length) return;
  await ipBatch(stray.map((n) => `link del ${n}`)).catch(() => {});
  log.info("stray temporary TAPs removed", { devices: stray.join(" ") });
}

/** `adopt(t)` if there is an adopter, undefined when there is nothing to take over (the caller then attaches anew). */
export function tryAdopt(adopt: ((t: AdoptTarget) => number) | undefined, t: AdoptTarget): number | undefined {
  try {
    return adopt?.(t);
  } catch {
    return undefined;
  }
}

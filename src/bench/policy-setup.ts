/**
 * A +policy setup's lab made ready: the policy load (policy-load.ts) applied to the lab's store
 * through its first switch (the control socket's objects.apply, what `tapnet apply -f` does), and
 * then checked to be in force before anything is measured, end to end: an idle pod, which the
 * load isolates, must no longer reach the client (ICMP echo), and the client must still reach
 * every server. A lab whose switches do not enforce the load fails the bench with that said,
 * rather than be measured as if they did.
 */
import type { ApplyResult } from "../cluster/apply.ts";
import { describeRef } from "../cluster/objects.ts";
import { labConfig, type LabPod, type LabState } from "../lab/plan.ts";
import { inNetns } from "../node/exec.ts";
import { rpcCall } from "../node/rpc.ts";
import { BenchError } from "./figures.ts";
import { policyLoad, type PolicyLoad } from "./policy-load.ts";

export interface LoadRoles {
  client: LabPod;
  servers: LabPod[];
}

/** How long the switches have to put the load in force once it is in the store. */
const ENFORCE_TIMEOUT_MS = 30_000;

async function reaches(from: LabPod, to: LabPod): Promise<boolean> {
  try {
    await inNetns(from.netns, "ping", ["-c", "1", "-W", "1", "-q", to.ip]);
    return true;
  } catch {
    return false;
  }
}

/** Applies the load to the lab and waits until it is in force; returns what was applied and how long that took. */
export async function applyPolicyLoad(setup: string, state: LabState, roles: LoadRoles, say: (line: string) => void, signal?: AbortSignal): Promise<{ load: PolicyLoad; enforcedAfter: number }> {
  const taken = new Set([roles.client.name, ...roles.servers.map((p) => p.name)]);
  const idle = state.pods.filter((p) => !taken.has(p.name));
  if (!idle.length) throw new BenchError(`${setup}: the lab has no pod besides the client and the servers, to check that the policy load isolates it`);
  const node = state.nodes.find((n) => n.pid > 0 && n.control);
  if (!node) throw new BenchError(`${setup}: the lab has no switch to apply the policy load through`);
  const config = labConfig(state.nodes.length, state.backend);
  const load = policyLoad({ client: roles.client, servers: roles.servers, idle }, { clusterCidr: config.clusterCidr, serviceCidr: config.serviceCidr });
  say(`${setup}: applying the policy load (${load.objects.length} objects) through ${node.name}'s switch`);
  const results = await rpcCall<ApplyResult[]>(node.control, "objects.apply", { objects: load.objects }, 60_000)
    .catch((e) => { throw new BenchError(`${setup}: the policy load was not applied: ${(e as Error).message}`); });
  const failed = results.filter((r) => r.outcome === "failed");
  if (failed.length) throw new BenchError(`${setup}: ${failed.length} object(s) of the policy load failed, the first ${describeRef(failed[0].ref)}: ${failed[0].error ?? "no reason given"}`);

  say(`${setup}: waiting for the switches to enforce it (${idle[0].name} refused, ${roles.client.name} to ${roles.servers.map((p) => p.name).join(" and ")} allowed)`);
  const t0 = Date.now();
  let blocked = false;
  let allowed = false;
  while (Date.now() - t0 < ENFORCE_TIMEOUT_MS) {
    if (signal?.aborted) throw new BenchError("interrupted");
    blocked = !(await reaches(idle[0], roles.client));
    allowed = true;
    for (const s of roles.servers) allowed = allowed && (await reaches(roles.client, s));
    if (blocked && allowed) return { load, enforcedAfter: (Date.now() - t0) / 1000 };
    await new Promise((r) => setTimeout(r, 200));
  }
  const s = ENFORCE_TIMEOUT_MS / 1000;
  if (!blocked) throw new BenchError(`${setup}: the policy load is not in force: ${idle[0].name} still reaches ${roles.client.name} ${s} s after it was applied (do the switches enforce NetworkPolicy?)`);
  throw new BenchError(`${setup}: the policy load blocks the bench's own traffic: ${roles.client.name} does not reach every server (ICMP echo) ${s} s after it was applied`);
}

/**
 * The setups `tapnet bench` compares, each a lab of its own:
 *   kernel-vxlan     plain Linux nodes, bridge + VXLAN as flannel's vxlan backend: the reference
 *   host-gw          plain Linux nodes routing pod CIDRs over the underlay, no encapsulation:
 *                    the ceiling
 *   tapnet-<backend> tapnet switches, one setup per registered backend (read at run time)
 *   tapnet-<backend>+policy  the same lab with the policy load applied (policy-load.ts: 100
 *                    Services, 100 NetworkPolicies, every measured flow allowed by them),
 *                    compared with its twin tapnet-<backend>, which is always measured with it
 *   tapnet-<backend>+insecure  for a backend that seals its datagrams (tapnet), the same lab in
 *                    the clear (backend.insecure): what sealing costs, beside its twin
 * and how a --setups list and a setup's lab prefix are read and made. By default every setup is
 * measured, with the insecure twin of each backend that seals and the policy twin of the first
 * backend (the default one) right after it.
 */
import type { BackendType } from "../node/config.ts";
import { backendNames, findBackend } from "../tunnel/index.ts";
import type { LabMode } from "../lab/plan.ts";
import { BenchError, REFERENCE } from "./figures.ts";

export const POLICY_SUFFIX = "+policy";
export const INSECURE_SUFFIX = "+insecure";

/** Whether backend `b` seals its datagrams when its cluster has a secret (the registry says). */
const sealsByRegistry = (b: string): boolean => findBackend(b)?.seals === true;

/**
 * Every setup, in order: the reference, the ceiling, then tapnet with each backend (one that
 * seals with its insecure twin, the first with its policy twin).
 */
export function allSetups(backends: readonly string[] = backendNames(), seals: (b: string) => boolean = sealsByRegistry): string[] {
  return [REFERENCE, "host-gw", ...backends.flatMap((b, i) => [
    `tapnet-${b}`, ...(seals(b) ? [`tapnet-${b}${INSECURE_SUFFIX}`] : []), ...(i === 0 ? [`tapnet-${b}${POLICY_SUFFIX}`] : []),
  ])];
}

/** The setup a +insecure setup is the clear twin of; undefined for the others. */
export function insecureTwin(setup: string): string | undefined {
  return setup.endsWith(INSECURE_SUFFIX) ? setup.slice(0, -INSECURE_SUFFIX.length) : undefined;
}

/** The setup a +policy setup is compared with (the same without the load); undefined for the others. */
export function policyTwin(setup: string): string | undefined {
  return setup.endsWith(POLICY_SUFFIX) ? setup.slice(0, -POLICY_SUFFIX.length) : undefined;
}

/** How a setup's lab is built, whether the policy load is applied to it, and whether it is in the clear on purpose. */
export function setupLab(setup: string, backends: readonly string[] = backendNames(), seals: (b: string) => boolean = sealsByRegistry): { mode: LabMode; backend: BackendType; policyLoad: boolean; insecure?: true } {
  const clear = insecureTwin(setup);
  if (clear !== undefined) {
    const plain = clear.startsWith("tapnet-") && policyTwin(clear) === undefined && insecureTwin(clear) === undefined;
    const lab = plain && backends.includes(clear.slice("tapnet-".length)) ? setupLab(clear, backends, seals) : undefined;
    if (!lab || !seals(lab.backend)) throw new BenchError(`unknown setup "${setup}" (${INSECURE_SUFFIX} is for tapnet-<backend> of a backend that seals: ${backends.filter(seals).map((b) => `tapnet-${b}`).join(", ") || "none"})`);
    return { ...lab, insecure: true };
  }
  if (setup === REFERENCE) return { mode: "kernel-vxlan", backend: "vxlan", policyLoad: false };
  if (setup === "host-gw") return { mode: "host-gw", backend: "vxlan", policyLoad: false }; // unused: nothing is encapsulated
  const twin = policyTwin(setup);
  const base = twin ?? setup;
  const b = base.startsWith("tapnet-") ? base.slice("tapnet-".length) : "";
  if (!backends.includes(b)) {
    const why = twin !== undefined && (twin === REFERENCE || twin === "host-gw") ? ` (the policy load is for tapnet setups: ${twin} has no switch to enforce it)` : "";
    throw new BenchError(`unknown setup "${setup}"${why} (known: ${allSetups(backends).join(", ")}, and tapnet-<backend>${POLICY_SUFFIX} for every backend)`);
  }
  return { mode: "tapnet", backend: b as BackendType, policyLoad: twin !== undefined };
}

/** The lab prefix of a setup: short, as namespace names grow from it ("-node1-pod1"). */
export function setupPrefix(prefix: string, setup: string): string {
  const clear = insecureTwin(setup);
  if (clear !== undefined) return `${setupPrefix(prefix, clear)}-ins`;
  const twin = policyTwin(setup);
  if (twin !== undefined) return `${setupPrefix(prefix, twin)}-pol`;
  const tag = setup === REFERENCE ? "kvxlan" : setup === "host-gw" ? "hostgw" : setup.slice("tapnet-".length);
  return `${prefix}-${tag}`;
}

/**
 * A --setups list: names checked, duplicates dropped, in the order given; a +policy setup's
 * twin is added right before it when the list does not have it (the two are compared).
 */
export function parseSetups(list: string, backends: readonly string[] = backendNames()): string[] {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (!names.length) throw new BenchError("--setups is empty");
  for (const n of names) setupLab(n, backends);
  const out: string[] = [];
  for (const n of names) {
    const twin = policyTwin(n);
    if (twin !== undefined && !names.includes(twin) && !out.includes(twin)) out.push(twin);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

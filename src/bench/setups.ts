/**
 * The setups `tapnet bench` compares, each a lab of its own:
 *   kernel-vxlan     plain Linux nodes, bridge + VXLAN as flannel's vxlan backend: the reference
 *   host-gw          plain Linux nodes routing pod CIDRs over the underlay, no encapsulation:
 *                    the ceiling
 *   tapnet-<backend> tapnet switches, one setup per registered backend (read at run time)
 * and how a --setups list and a setup's lab prefix are read and made.
 */
import type { BackendType } from "../node/config.ts";
import { backendNames } from "../tunnel/index.ts";
import type { LabMode } from "../lab/plan.ts";
import { BenchError, REFERENCE } from "./figures.ts";

/** Every setup, in order: the reference, the ceiling, then tapnet with each backend. */
export function allSetups(backends: readonly string[] = backendNames()): string[] {
  return [REFERENCE, "host-gw", ...backends.map((b) => `tapnet-${b}`)];
}

/** How a setup's lab is built. */
export function setupLab(setup: string, backends: readonly string[] = backendNames()): { mode: LabMode; backend: BackendType } {
  if (setup === REFERENCE) return { mode: "kernel-vxlan", backend: "vxlan" };
  if (setup === "host-gw") return { mode: "host-gw", backend: "vxlan" }; // unused: nothing is encapsulated
  const b = setup.startsWith("tapnet-") ? setup.slice("tapnet-".length) : "";
  if (!backends.includes(b)) throw new BenchError(`unknown setup "${setup}" (known: ${allSetups(backends).join(", ")})`);
  return { mode: "tapnet", backend: b as BackendType };
}

/** The lab prefix of a setup: short, as namespace names grow from it ("-node1-pod1"). */
export function setupPrefix(prefix: string, setup: string): string {
  const tag = setup === REFERENCE ? "kvxlan" : setup === "host-gw" ? "hostgw" : setup.slice("tapnet-".length);
  return `${prefix}-${tag}`;
}

/** A --setups list: names checked, duplicates dropped, in the order given. */
export function parseSetups(list: string, backends: readonly string[] = backendNames()): string[] {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (!names.length) throw new BenchError("--setups is empty");
  for (const n of names) setupLab(n, backends);
  return [...new Set(names)];
}

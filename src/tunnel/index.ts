/**
 * The backends' registry: a backend's name, as a config file says it (`backend.type`), maps to
 * what the control plane needs to know of it (its default port, what its headers cost the
 * pods' MTU, whether it takes a VNI) and to the factory the datapath builds it with. Adding a
 * backend is one file in tunnel/ (its wire format in wire/) and one `registerBackend` call
 * here; nothing in switch/ or the control plane names a backend.
 *
 * The first one registered is the default: the fastest between tapnet nodes.
 */
import type { BackendFactory } from "./contract.ts";
import { tapnetBackend } from "./tapnet.ts";
import { udpBackend } from "./udp.ts";
import { vxlanBackend } from "./vxlan.ts";

/** A backend's name, as `backend.type` gives it. */
export type BackendType = string;

export interface BackendInfo {
  name: BackendType;
  /** Its UDP port, unless the config gives one. */
  port: number;
  /** Bytes its encapsulation costs each packet: the pods' MTU is the underlay's less this. */
  overhead: number;
  /** Whether it carries a VNI (`backend.vni`). */
  vni: boolean;
  /** One line for --help and error messages. */
  about: string;
  /**
   * Whether it seals its datagrams (authenticated encryption, tunnel/seal.ts) when the cluster
   * has a secret (backend.secret): the tapnet backend does; the wire-compatible ones never.
   */
  seals?: boolean;
  /**
   * The largest TSO super-frame the pods should send (their gso_max_size), for a backend that
   * carries super-frames whole and sends them best a little under 64 KB; absent: the kernel's.
   */
  superFrameCap?: (datagramSize: number) => number;
  create: BackendFactory;
}

const registry = new Map<BackendType, BackendInfo>();

/** Adds a backend (the test suite adds its own too). A name is registered once. */
export function registerBackend(info: BackendInfo): void {
  if (registry.has(info.name)) throw new Error(`backend ${info.name} is registered already`);
  registry.set(info.name, info);
}

/** The registered backends' names, the default first. */
export function backendNames(): BackendType[] {
  return [...registry.keys()];
}

export function defaultBackend(): BackendType {
  return backendNames()[0];
}

/** The backend named `name`, or undefined. */
export function findBackend(name: string): BackendInfo | undefined {
  return registry.get(name);
}

/** The backend named `name`; throws if there is none (the config has checked the name by then). */
export function backend(name: string): BackendInfo {
  const b = registry.get(name);
  if (!b) throw new Error(`unknown backend "${name}" (known: ${backendNames().join(", ")})`);
  return b;
}

registerBackend(tapnetBackend);
registerBackend(udpBackend);
registerBackend(vxlanBackend);

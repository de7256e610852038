/**
 * The kinds tapnet keeps, as the API server names them: apiVersion, resource (plural) name,
 * the names `kubectl get` accepts for it, and whether its objects live in a namespace.
 */
import { KINDS, type Kind } from "./objects.ts";

export interface KindInfo {
  kind: Kind;
  apiVersion: string;
  /** The resource name: "pods", "endpointslices". Also the stores' key segment. */
  plural: string;
  /** Every name `tapnet get` takes for it: plural, singular, short names. */
  names: string[];
  namespaced: boolean;
}

const TABLE: Record<Kind, Omit<KindInfo, "kind">> = {
  Namespace: { apiVersion: "v1", plural: "namespaces", names: ["namespaces", "namespace", "ns"], namespaced: false },
  Node: { apiVersion: "v1", plural: "nodes", names: ["nodes", "node", "no"], namespaced: false },
  Pod: { apiVersion: "v1", plural: "pods", names: ["pods", "pod", "po"], namespaced: true },
  Service: { apiVersion: "v1", plural: "services", names: ["services", "service", "svc"], namespaced: true },
  EndpointSlice: { apiVersion: "discovery.k8s.io/v1", plural: "endpointslices", names: ["endpointslices", "endpointslice"], namespaced: true },
  NetworkPolicy: { apiVersion: "networking.k8s.io/v1", plural: "networkpolicies", names: ["networkpolicies", "networkpolicy", "netpol"], namespaced: true },
};

export function kindInfo(kind: Kind): KindInfo {
  return { kind, ...TABLE[kind] };
}

/** The kind a `tapnet get`/`delete` argument names ("po", "pods", "Pod", "pod"), or undefined. */
export function kindByName(name: string): Kind | undefined {
  const n = name.toLowerCase();
  return KINDS.find((k) => k.toLowerCase() === n || TABLE[k].names.includes(n));
}

/** Every name `tapnet get` takes, for messages. */
export function resourceNames(): string[] {
  return KINDS.map((k) => TABLE[k].plural);
}

/**
 * Objects as `kubectl get` prints them: a table per kind (columns chosen per kind, `-o wide`
 * adds some, `-A` leads with NAMESPACE), ages as kubectl rounds them, or the objects as JSON or
 * YAML (one object for `get KIND NAME`, else a v1 List). Also the one-line outcomes of apply and
 * delete in kubectl's words. Pure functions of the objects and the clock, for the CLI and the
 * agent alike.
 */
import { stringify } from "yaml";
import type { ApplyResult, DeleteResult } from "./apply.ts";
import { kindInfo } from "./kinds.ts";
import { ANNOTATIONS, type EndpointSlice, type Kind, type KubeObject, type LabelSelector, type NetworkPolicy, type Node, type Pod, type Service } from "./objects.ts";

export const OUTPUT_FORMATS = ["wide", "json", "yaml"] as const;
export type OutputFormat = "table" | (typeof OUTPUT_FORMATS)[number];

export interface TableOptions {
  wide?: boolean;
  /** Lead with a NAMESPACE column (`-A`, namespaced kinds only). */
  allNamespaces?: boolean;
  /** The time ages are counted to, in milliseconds. */
  now: number;
}

/** What kubectl calls a resource in its messages: "pod", "networkpolicy.networking.k8s.io". */
export function kubectlName(kind: Kind, apiVersion = kindInfo(kind).apiVersion, plural = false): string {
  const slash = apiVersion.indexOf("/");
  const base = plural ? kindInfo(kind).plural : kind.toLowerCase();
  return slash < 0 ? base : `${base}.${apiVersion.slice(0, slash)}`;
}

/** kubectl's AGE (apimachinery's HumanDuration): 45s, 3m20s, 15m, 5h10m, 20h, 3d4h, 30d, 2y. */
export function formatAge(ms: number): string {
  const seconds = Math.trunc(ms / 1000); // toward zero, as Go converts
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 ? `${minutes}m${seconds % 60}s` : `${minutes}m`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 ? `${hours}h${minutes % 60}m` : `${hours}h`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 ? `${days}d${hours % 24}h` : `${days}d`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 ? `${years}y${days % 365}d` : `${years}y`;
  return `${years}y`;
}

function age(o: KubeObject, now: number): string {
  const t = o.metadata.creationTimestamp ? Date.parse(o.metadata.creationTimestamp) : NaN;
  return Number.isNaN(t) ? "<unknown>" : formatAge(now - t);
}

/** kubectl's tables: columns left-aligned, three spaces apart, "<none>" for an empty cell. */
export function formatColumns(headers: string[], rows: string[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === "" ? "<none>" : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3))).join("");
  return [headers, ...cells].map(line).join("\n");
}

/** "k1=v1,k2=v2", kubectl's way of showing a map selector. */
function formatLabels(m: Record<string, string> | undefined): string {
  return Object.keys(m ?? {}).sort().map((k) => `${k}=${m![k]}`).join(",");
}

/** A LabelSelector as kubectl shows it: "app=web,tier in (a,b)"; "<none>" when it selects everything. */
export function formatSelector(s: LabelSelector | undefined): string {
  const reqs: [string, string][] = Object.entries(s?.matchLabels ?? {}).map(([k, v]) => [k, `${k}=${v}`]);
  for (const e of s?.matchExpressions ?? []) {
    const vals = [...(e.values ?? [])].sort().join(",");
    const text = e.operator === "In" ? `${e.key} in (${vals})` : e.operator === "NotIn" ? `${e.key} notin (${vals})` : e.operator === "Exists" ? e.key : `!${e.key}`;
    reqs.push([e.key, text]);
  }
  reqs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return reqs.length ? reqs.map((r) => r[1]).join(",") : "<none>";
}

/** Up to three items, then " + N more...", as kubectl lists an EndpointSlice's ports and addresses. */
function firstThree(items: string[]): string {
  if (items.length === 0) return "<unset>";
  return items.length > 3 ? `${items.slice(0, 3).join(",")} + ${items.length - 3} more...` : items.join(",");
}

interface Columns {
  headers: string[];
  wide: string[];
  /** The cells of the headers, then of the wide ones. */
  row(o: KubeObject): { cells: string[]; wide: string[] };
}

/** AGE is always the last of the plain columns; the wide ones follow it, as in kubectl. */
const COLUMNS: Record<Kind, Columns> = {
  Namespace: {
    headers: ["NAME", "STATUS"],
    wide: [],
    row: (o) => ({ cells: [o.metadata.name, (o.status as { phase?: string } | undefined)?.phase ?? "Active"], wide: [] }),
  },
  Node: {
    headers: ["NAME", "STATUS", "ADDRESS", "POD-CIDR"],
    wide: ["VTEP-MAC"],
    row: (o) => {
      const n = o as Node;
      const ready = n.status?.conditions?.find((c) => c.type === "Ready");
      const status = !ready ? "Unknown" : ready.status === "True" ? "Ready" : "NotReady";
      const address = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address ?? "";
      const cidr = n.spec?.podCIDR ?? n.spec?.podCIDRs?.join(",") ?? "";
      return { cells: [n.metadata.name, status, address, cidr], wide: [n.metadata.annotations?.[ANNOTATIONS.vtepMac] ?? ""] };
    },
  },
  Pod: {
    headers: ["NAME", "STATUS"],
    wide: ["IP", "NODE", "NETNS"],
    row: (o) => {
      const p = o as Pod;
      return {
        cells: [p.metadata.name, p.status?.phase ?? "Pending"],
        wide: [p.status?.podIP ?? "", p.spec?.nodeName ?? "", p.metadata.annotations?.[ANNOTATIONS.netns] ?? ""],
      };
    },
  },
  Service: {
    headers: ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)"],
    wide: ["SELECTOR"],
    row: (o) => {
      const s = o as Service;
      const ports = (s.spec?.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol ?? "TCP"}`).join(",");
      return { cells: [s.metadata.name, s.spec?.type ?? "ClusterIP", s.spec?.clusterIP ?? "", ports], wide: [formatLabels(s.spec?.selector)] };
    },
  },
  EndpointSlice: {
    headers: ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS"],
    wide: [],
    row: (o) => {
      const e = o as EndpointSlice;
      const ports = (e.ports ?? []).map((p) => (p.port !== undefined ? String(p.port) : p.name ?? "*"));
      const addresses = (e.endpoints ?? []).flatMap((x) => x.addresses ?? []);
      return { cells: [e.metadata.name, e.addressType ?? "", firstThree(ports), firstThree(addresses)], wide: [] };
    },
  },
  NetworkPolicy: {
    headers: ["NAME", "POD-SELECTOR"],
    wide: [],
    row: (o) => ({ cells: [o.metadata.name, formatSelector((o as NetworkPolicy).spec?.podSelector)], wide: [] }),
  },
};

/** The table `kubectl get` prints for objects of one kind (without a trailing newline). */
export function formatObjectTable(kind: Kind, objects: KubeObject[], opts: TableOptions): string {
  const c = COLUMNS[kind];
  const lead = opts.allNamespaces && kindInfo(kind).namespaced;
  const headers = [...(lead ? ["NAMESPACE"] : []), ...c.headers, "AGE", ...(opts.wide ? c.wide : [])];
  const rows = objects.map((o) => {
    const r = c.row(o);
    return [...(lead ? [o.metadata.namespace ?? "default"] : []), ...r.cells, age(o, opts.now), ...(opts.wide ? r.wide : [])];
  });
  return formatColumns(headers, rows);
}

/** `-o json|yaml`: the object itself when one was asked for by name, else a v1 List of them. */
export function formatObjects(objects: KubeObject[], format: "json" | "yaml", single: boolean): string {
  const doc = single && objects.length === 1 ? objects[0] : { apiVersion: "v1", kind: "List", items: objects, metadata: { resourceVersion: "" } };
  return format === "json" ? JSON.stringify(doc, null, 4) : stringify(doc).trimEnd();
}

/** kubectl's words when nothing matched (printed on stderr). */
export function noResourcesMessage(kind: Kind, namespace: string | undefined): string {
  return kindInfo(kind).namespaced && namespace !== undefined ? `No resources found in ${namespace} namespace.` : "No resources found";
}

/** kubectl's NotFound for one object: `Error from server (NotFound): pods "web" not found`. */
export function notFoundMessage(ref: { kind: Kind; name: string }): string {
  return `Error from server (NotFound): ${kubectlName(ref.kind, undefined, true)} "${ref.name}" not found`;
}

/** `pod/web created`, `networkpolicy.networking.k8s.io/deny unchanged`, or the error. */
export function applyLine(r: ApplyResult): string {
  const name = `${kubectlName(r.ref.kind, r.apiVersion)}/${r.ref.name}`;
  if (r.outcome !== "failed") return `${name} ${r.outcome}`;
  return `error: ${name}${r.ref.namespace ? ` -n ${r.ref.namespace}` : ""}: ${r.error ?? "failed"}`;
}

/** `pod "web" deleted`, or kubectl's NotFound, or the error. */
export function deleteLine(r: DeleteResult): string {
  if (r.outcome === "deleted") return `${kubectlName(r.ref.kind)} "${r.ref.name}" deleted`;
  if (r.outcome === "not found") return notFoundMessage(r.ref);
  return `error: deleting ${kubectlName(r.ref.kind)} "${r.ref.name}": ${r.error ?? "failed"}`;
}

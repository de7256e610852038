/**
 * A small schema walker for Kubernetes objects: a schema is a function that checks one value at
 * a path ("spec.ports[0].port"), records every fault it finds in a Faults list, and returns the
 * value cleaned and completed (defaults filled, dropped fields gone), or BAD. Objects are field
 * tables: each field has a schema, and may be required, defaulted, or accepted and dropped.
 * Keys not in the table are refused as unknown fields, the way `kubectl apply --validate=strict`
 * does. A null value counts as absent, as it does for the API server's JSON decoder.
 *
 * The name and format checks follow Kubernetes' own (k8s.io/apimachinery validation): DNS-1123
 * labels and subdomains, DNS-1035 labels, IANA service names for ports, qualified names for
 * label keys, label values.
 */
import { parseIpv4Address } from "../wire/ipv4.ts";
import { parseCidr, type Cidr } from "../wire/cidr.ts";

/** The faults found in one object, each "path: what is wrong". */
export class Faults {
  readonly list: string[] = [];
  add(path: string, msg: string): typeof BAD {
    this.list.push(path === "" ? msg : `${path}: ${msg}`);
    return BAD;
  }
}

export const BAD = Symbol("bad");
export type Schema = (v: unknown, path: string, f: Faults) => unknown;

export interface FieldSpec {
  schema: Schema;
  required?: boolean;
  /** The value filled when the field is absent; given the whole mapping as written. */
  default?: (raw: Record<string, unknown>) => unknown;
  /** Accepted (and checked), then left out of the result. */
  drop?: boolean;
}
export type Fields = Record<string, Schema | FieldSpec>;
/**
 * A check across fields, run on the cleaned object (`out`: fields that failed are absent from it),
 * with the mapping as written (`raw`) to tell a field left out from one that failed.
 */
export type After = (out: Record<string, unknown>, path: string, f: Faults, raw: Record<string, unknown>) => void;

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A value as a message shows it: JSON, shortened. */
export function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** The path of a map entry: `metadata.labels.app`, or `metadata.labels["app.kubernetes.io/name"]`. */
export function entry(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (isMapping(v)) return "a mapping";
  return show(v);
}

/** The known field closest to a misspelt one, if any is close (case, or one or two letters off). */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(k, key);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= (key.length > 4 ? 2 : 1) ? best : undefined;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

export function object(fields: Fields, after?: After): Schema {
  const specs = Object.entries(fields).map(([key, s]) => [key, typeof s === "function" ? { schema: s } : s] as const);
  const known = specs.map(([k]) => k);
  return (v, path, f) => {
    if (!isMapping(v)) return f.add(path, `must be a mapping of fields, not ${typeName(v)}`);
    for (const key of Object.keys(v)) {
      if (known.includes(key)) continue;
      const near = closest(key, known);
      f.add(join(path, key), `unknown field${near ? ` (did you mean "${near}"?)` : ""}`);
    }
    const out: Record<string, unknown> = {};
    for (const [key, spec] of specs) {
      const value = v[key];
      if (value === undefined || value === null) {
        if (spec.required) f.add(join(path, key), "required field missing");
        else if (spec.default) out[key] = spec.default(v);
        continue;
      }
      const clean = spec.schema(value, join(path, key), f);
      if (clean !== BAD && clean !== undefined && !spec.drop) out[key] = clean;
    }
    after?.(out, path, f, v);
    return out;
  };
}

export function list(item: Schema, opts: { min?: number; max?: number } = {}): Schema {
  return (v, path, f) => {
    if (!Array.isArray(v)) return f.add(path, `must be a list, not ${typeName(v)}`);
    if (opts.min !== undefined && v.length < opts.min) return f.add(path, opts.min === 1 ? "must have at least one item" : `must have at least ${opts.min} items`);
    if (opts.max !== undefined && v.length > opts.max) return f.add(path, `must have at most ${opts.max} items, not ${v.length}`);
    const out = v.map((x, i) => (x === null ? f.add(`${path}[${i}]`, "must not be null") : item(x, `${path}[${i}]`, f)));
    // A bad item leaves the whole list out, so that checks across items never see shifted indices.
    return out.includes(BAD) ? BAD : out;
  };
}

/** A mapping of string keys (checked by `key`) to values (checked by `value`): labels, selectors. */
export function map(key: (k: string) => string | undefined, value: Schema): Schema {
  return (v, path, f) => {
    if (!isMapping(v)) return f.add(path, `must be a mapping, not ${typeName(v)}`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const bad = key(k);
      if (bad) {
        f.add(entry(path, k), bad);
        continue;
      }
      const clean = value(x, entry(path, k), f);
      if (clean !== BAD) out[k] = clean;
    }
    return out;
  };
}

/** A string, checked by `check` (which returns what is wrong, or undefined). */
export function str(check?: (s: string) => string | undefined): Schema {
  return (v, path, f) => {
    if (typeof v !== "string") {
      const hint = typeof v === "boolean" || typeof v === "number" ? ` (quote it: "${v}")` : "";
      return f.add(path, `must be a string, not ${typeName(v)}${hint}`);
    }
    const bad = check?.(v);
    return bad ? f.add(path, bad) : v;
  };
}

export function int(min: number, max: number): Schema {
  return (v, path, f) => {
    if (typeof v !== "number" || !Number.isInteger(v)) return f.add(path, `must be a whole number, not ${typeName(v)}`);
    if (v < min || v > max) return f.add(path, `must be ${min}-${max}, not ${v}`);
    return v;
  };
}

export function bool(): Schema {
  return (v, path, f) => (typeof v === "boolean" ? v : f.add(path, `must be true or false, not ${typeName(v)}`));
}

export function oneOf(values: readonly string[], why?: string): Schema {
  return (v, path, f) => {
    if (typeof v === "string" && values.includes(v)) return v;
    const near = typeof v === "string" ? values.find((x) => x.toLowerCase() === v.toLowerCase()) : undefined;
    const list = values.length === 1 ? `"${values[0]}"` : `one of ${values.join(", ")}`;
    return f.add(path, `must be ${list}, not ${typeName(v)}${near ? ` (did you mean "${near}"?)` : why ? ` (${why})` : ""}`);
  };
}

/** A port number 1-65535 or a port's name (Kubernetes' IntOrString). */
export function portOrName(): Schema {
  return (v, path, f) => {
    if (typeof v === "string") {
      const bad = portName(v);
      return bad ? f.add(path, `${bad}; or give a port number 1-65535`) : v;
    }
    if (typeof v !== "number") return f.add(path, `must be a port number or a port name, not ${typeName(v)}`);
    return int(1, 65535)(v, path, f);
  };
}

/** Anything of the given outer shape, kept as given: fields tapnet carries but does not act on. */
export function opaque(shape: "mapping" | "list"): Schema {
  return (v, path, f) => {
    if (shape === "list" ? Array.isArray(v) : isMapping(v)) return v;
    return f.add(path, `must be ${shape === "list" ? "a list" : "a mapping"}, not ${typeName(v)}`);
  };
}

/** Anything: for server-owned fields that are accepted and dropped. */
export const anything: Schema = (v) => v;

/** Refused outright, with a reason. */
export function refused(why: string): Schema {
  return (_v, path, f) => f.add(path, why);
}

// ---- Kubernetes' name and format rules. Each returns what is wrong, or undefined. ----

const LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const LABEL_RE = new RegExp(`^${LABEL}$`);
const SUBDOMAIN_RE = new RegExp(`^${LABEL}(\\.${LABEL})*$`);
const DNS1035_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QNAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** A DNS-1123 label: namespace names, container names. */
export function dnsLabel(s: string): string | undefined {
  if (s.length > 63) return `"${s}" is too long: at most 63 characters`;
  if (!LABEL_RE.test(s)) return `"${s}" must be lower-case letters, digits and '-', starting and ending with a letter or digit`;
  return undefined;
}

/** A DNS-1123 subdomain: pod, node, endpointslice and networkpolicy names. */
export function dnsSubdomain(s: string): string | undefined {
  if (s.length > 253) return `"${s.slice(0, 20)}..." is too long: at most 253 characters`;
  if (!SUBDOMAIN_RE.test(s)) return `"${s}" must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`;
  return undefined;
}

/** A DNS-1035 label: Service names (they become DNS names, so they start with a letter). */
export function dns1035Label(s: string): string | undefined {
  if (s.length > 63) return `"${s}" is too long: at most 63 characters`;
  if (!DNS1035_RE.test(s)) return `"${s}" must be lower-case letters, digits and '-', starting with a letter and ending with a letter or digit`;
  return undefined;
}

/** An IANA_SVC_NAME: the name of a container port, or a named targetPort. */
export function portName(s: string): string | undefined {
  if (s.length === 0 || s.length > 15) return `port name "${s}" must be 1-15 characters`;
  if (!/^[a-z0-9-]+$/.test(s)) return `port name "${s}" must be lower-case letters, digits and '-'`;
  if (!/[a-z]/.test(s)) return `port name "${s}" must contain at least one letter`;
  if (s.includes("--") || s.startsWith("-") || s.endsWith("-")) return `port name "${s}" must not start or end with '-' or contain "--"`;
  return undefined;
}

/** A label or annotation key: an optional DNS subdomain prefix and '/', then a name of 1-63. */
export function qualifiedName(s: string): string | undefined {
  const parts = s.split("/");
  if (parts.length > 2) return `key "${s}" may contain at most one '/'`;
  const name = parts[parts.length - 1];
  if (parts.length === 2) {
    if (parts[0] === "") return `key "${s}" has an empty prefix before '/'`;
    const bad = dnsSubdomain(parts[0]);
    if (bad) return `key "${s}": prefix ${bad}`;
  }
  if (name.length === 0 || name.length > 63) return `key "${s}": the name part must be 1-63 characters`;
  if (!QNAME_RE.test(name)) return `key "${s}": the name part must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

export function labelValue(s: string): string | undefined {
  if (s.length > 63) return `label value "${s.slice(0, 20)}..." is too long: at most 63 characters`;
  if (s !== "" && !QNAME_RE.test(s)) return `label value "${s}" must be empty or letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

export function ipv4(s: string): string | undefined {
  return parseIpv4Address(s) === undefined ? `"${s}" is not an IPv4 address like 10.244.1.5` : undefined;
}

export function cidr(s: string): string | undefined {
  const c = parseCidr(s);
  return typeof c === "string" ? c : undefined;
}

export function cidrOf(s: string): Cidr {
  return parseCidr(s) as Cidr;
}

/** Labels: qualified-name keys, label values. */
export const labels: Schema = map(qualifiedName, str(labelValue));

/** Names that must be unique in a list: faults the later duplicates at `path[i].field`. */
export function unique(items: unknown, path: string, field: string, f: Faults, what = field): void {
  if (!Array.isArray(items)) return;
  const seen = new Map<string, number>();
  items.forEach((x, i) => {
    const v = isMapping(x) ? x[field] : undefined;
    if (v === undefined) return;
    const key = String(v);
    const first = seen.get(key);
    if (first !== undefined) f.add(`${path}[${i}].${field}`, `${what} ${show(v)} is already used by ${path}[${first}]`);
    else seen.set(key, i);
  });
}

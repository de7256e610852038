/**
 * parseManifests: golden fixtures (manifests as people write them for Kubernetes, parsed to
 * exact objects), YAML and JSON, v1 Lists, empty documents, syntax errors with their line,
 * duplicates, every fault reported; and a mutation test: every field of the fixtures dropped,
 * retyped, or given an unknown sibling, each mutant refused naming the mutated path (or
 * accepted, when the field is optional), the unmutated manifests accepted.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ManifestError, parseManifests, validateObject } from "../../src/cluster/manifest.ts";
import { prng, trials } from "../support/random.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0x3a1f);

function fixture(name: string): string {
  return readFileSync(new URL(`fixtures/${name}`, import.meta.url), "utf8");
}

function problems(text: string, source = "m.yaml"): string[] {
  try {
    parseManifests(text, source);
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    return (e as ManifestError).problems;
  }
  throw new Error(`accepted: ${text}`);
}

const NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
const POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c}]}\n";

describe("parseManifests", () => {
  it("parses the golden fixtures to exact objects", () => {
    expect(parseManifests(fixture("shop.yaml"), "shop.yaml")).toEqual(JSON.parse(fixture("shop.expected.json")));
    expect(parseManifests(fixture("nodes.json"), "nodes.json")).toEqual(JSON.parse(fixture("nodes.expected.json")));
  });

  it("reads JSON, a List, and skips empty documents", () => {
    const json = JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    expect(parseManifests(json, "ns.json")).toEqual([{ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } }]);
    expect(parseManifests(`---\n# nothing\n---\n${NS}---\n---\n`, "m.yaml")).toHaveLength(1);
    expect(parseManifests("", "m.yaml")).toEqual([]);
    const list = { apiVersion: "v1", kind: "List", items: [JSON.parse(json), { apiVersion: "v1", kind: "Node", metadata: { name: "n1" } }] };
    expect(parseManifests(JSON.stringify(list), "l.json").map((o) => o.kind)).toEqual(["Namespace", "Node"]);
  });

  it("names the source, line and column of a YAML syntax error", () => {
    expect(problems(`${NS}---\nkind: Pod\nmetadata:\n  name: web\n labels: {}\n`)).toEqual(["m.yaml: line 8, column 1: All mapping items must start at the same column"]);
    expect(problems("a: b: c\n", "x.yaml")).toEqual(["x.yaml: line 1, column 1: Nested mappings are not allowed in compact mappings"]);
    expect(problems(`${NS}metadata: {}\n`)).toEqual(["m.yaml: line 4, column 1: Map keys must be unique"]);
    expect(problems("a:\n\tb: 1\n")).toEqual(["m.yaml: line 2, column 1: Tabs are not allowed as indentation"]);
  });

  it("names the document and object of a fault, and reports every fault in the input", () => {
    const text = `${NS}---\n${POD.replace("{name: c}", "{name: c, ports: [{containerPort: 70000}]}")}---\nkind: Deployment\n---\n- 1\n`;
    expect(problems(text, "pods.yaml")).toEqual([
      "pods.yaml: document 2 (Pod web): spec.containers[0].ports[0].containerPort: must be 1-65535, not 70000",
      'pods.yaml: document 3 (Deployment): kind: unknown kind "Deployment" (tapnet knows Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)',
      "pods.yaml: document 4: must be a mapping with apiVersion, kind and metadata, not a list",
    ]);
  });

  it("checks a List and names its items", () => {
    const list = (extra: object, items: unknown[]): string => JSON.stringify({ apiVersion: "v1", kind: "List", items, ...extra });
    expect(problems(list({ apiVersion: "v2", extra: 1 }, []), "l.json")).toEqual([
      "l.json: document 1 (List): extra: unknown field",
      'l.json: document 1 (List): apiVersion: must be "v1" for a List, not "v2"',
    ]);
    expect(problems(list({}, [{ apiVersion: "v1", kind: "Pod", metadata: { name: "web" }, spec: {} }]), "l.json")).toEqual([
      "l.json: document 1 items[0] (Pod web): spec.containers: required field missing",
    ]);
    expect(problems(list({ items: {} }, []), "l.json")).toEqual(["l.json: document 1 (List): items: must be a list, not {}"]);
  });

  it("refuses the same object twice in one input, and allows one name in two namespaces", () => {
    expect(problems(`${POD}---\n${NS}---\n${POD.replace("{name: web}", "{name: web, namespace: default}")}`)).toEqual([
      "m.yaml: document 3 (Pod web): pod/web -n default is already defined in document 1 (Pod web)",
    ]);
    expect(parseManifests(`${POD}---\n${POD.replace("{name: web}", "{name: web, namespace: shop}")}`, "m.yaml")).toHaveLength(2);
  });
});

// ---- The mutation test ----

type Seg = string | number;
interface Site {
  segs: Seg[];
  /** As validation names it: spec.containers[0].ports, metadata.labels["app.kubernetes.io/name"]. */
  path: string;
  value: unknown;
}

function pathOf(segs: Seg[]): string {
  return segs.reduce<string>((p, s) => {
    if (typeof s === "number") return `${p}[${s}]`;
    if (p === "") return s;
    return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s) ? `${p}.${s}` : `${p}[${JSON.stringify(s)}]`;
  }, "");
}

function sites(v: unknown, segs: Seg[] = []): Site[] {
  const here: Site[] = segs.length > 0 ? [{ segs, path: pathOf(segs), value: v }] : [];
  if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => sites(x, [...segs, i]))];
  if (typeof v === "object" && v !== null) return [...here, ...Object.entries(v).flatMap(([k, x]) => sites(x, [...segs, k]))];
  return here;
}

/** Fields the validation accepts in any form and drops: mutating them changes nothing. */
const IGNORED = /^metadata\.(uid|resourceVersion|creationTimestamp)$/;

/**
 * Which fields must not be dropped: the required ones, by Kubernetes' schema (a list index is
 * [*]). Dropping any other field is accepted, except where a rule across fields refuses it.
 */
const REQUIRED = [
  "apiVersion", "kind", "metadata", "metadata.name", "spec", "spec.containers", "spec.containers[*].name",
  "spec.containers[*].ports[*].containerPort", "spec.containers[*].env[*].name", "spec.ports", "spec.ports[*].port",
  "addressType", "endpoints", "endpoints[*].addresses", "endpoints[*].targetRef.kind", "endpoints[*].targetRef.name",
  "spec.ingress[*].from[*].ipBlock.cidr", "spec.egress[*].to[*].ipBlock.cidr", "spec.podSelector.matchExpressions[*].key",
  "spec.ingress[*].from[*].podSelector.matchExpressions[*].key", "spec.ingress[*].from[*].podSelector.matchExpressions[*].operator",
  "spec.ingress[*].from[*].podSelector.matchExpressions[*].values", "status.addresses[*].type", "status.addresses[*].address",
  "status.conditions[*].type", "status.conditions[*].status",
];

/** What dropping `site` from `obj` must be refused naming, or undefined if it must be accepted. */
function dropRefusal(obj: Record<string, unknown>, site: Site): string | undefined {
  const pattern = site.path.replace(/\[\d+\]/g, "[*]");
  const parentSegs = site.segs.slice(0, -1);
  const parent = parentSegs.reduce<any>((o, s) => o[s], obj);
  if (pattern === "spec" && (obj.kind === "Namespace" || obj.kind === "Node")) return undefined;
  if (REQUIRED.includes(pattern)) return site.path;
  // A Service with more than one port names each; a peer needs a selector or an ipBlock.
  if (obj.kind === "Service" && /^spec\.ports\[\d+\]\.name$/.test(site.path) && (obj.spec as any).ports.length > 1) return site.path;
  if (/\.(from|to)\[\d+\]\.\w+$/.test(site.path) && Object.keys(parent).length === 1) return pathOf(parentSegs);
  // A port range starts at a numbered port.
  if (/\.ports\[\d+\]\.port$/.test(site.path) && parent.endPort !== undefined) return pathOf([...parentSegs, "endPort"]);
  return undefined;
}

function wrongType(v: unknown): unknown {
  if (typeof v === "string") return true; // not 42: a port may be a number or a name
  if (typeof v === "number") return true;
  if (typeof v === "boolean") return "yes";
  return Array.isArray(v) ? "x" : 7;
}

function mutate(obj: unknown, segs: Seg[], how: "drop" | "retype" | "unknown"): unknown {
  const copy = structuredClone(obj);
  const parent = segs.slice(0, -1).reduce<any>((o, s) => o[s], copy);
  const last = segs[segs.length - 1];
  if (how === "drop") Array.isArray(parent) ? parent.splice(last as number, 1) : delete parent[last];
  else if (how === "retype") parent[last] = wrongType(parent[last]);
  else parent[last].zzUnknown = 1;
  return copy;
}

function outcome(raw: unknown): string[] | "accepted" {
  try {
    validateObject(raw, "w");
    return "accepted";
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    return (e as ManifestError).problems;
  }
}

describe("mutated manifests", () => {
  const raws: Record<string, unknown>[] = [
    ...parseAllDocuments(fixture("shop.yaml")).map((d) => d.toJS()),
    ...JSON.parse(fixture("nodes.json")).items,
  ];

  it("the unmutated ones are accepted", () => {
    for (const raw of raws) expect(outcome(raw)).toBe("accepted");
  });

  it("every field retyped, dropped or given an unknown sibling is refused naming its path", () => {
    let refused = 0;
    let accepted = 0;
    for (const raw of raws) {
      for (const site of sites(raw)) {
        if (IGNORED.test(site.path)) continue;
        const retyped = outcome(mutate(raw, site.segs, "retype"));
        expect(retyped, `retype ${site.path} of ${raw.kind}`).not.toBe("accepted");
        expect((retyped as string[]).some((p) => p.startsWith(`w: ${site.path}: `)), `${site.path}: ${retyped}`).toBe(true);
        if (typeof site.value === "object" && site.value !== null && !Array.isArray(site.value)) {
          const extended = outcome(mutate(raw, site.segs, "unknown"));
          expect(extended, `unknown key in ${site.path}`).toContain(`w: ${site.path}.zzUnknown: ${/labels|annotations|matchLabels|selector$/.test(site.path) ? "must be a string, not 1 (quote it: \"1\")" : "unknown field"}`);
        }
        if (typeof site.segs[site.segs.length - 1] === "number") continue; // dropping a list item: the next test
        const want = dropRefusal(raw, site);
        const dropped = outcome(mutate(raw, site.segs, "drop"));
        if (want === undefined) {
          expect(dropped, `drop ${site.path} of ${raw.kind}`).toBe("accepted");
          accepted++;
        } else {
          expect(dropped, `drop ${site.path} of ${raw.kind}`).not.toBe("accepted");
          expect((dropped as string[]).some((p) => p.startsWith(`w: ${want}`)), `drop ${site.path}: ${dropped}`).toBe(true);
          refused++;
        }
      }
    }
    expect(refused).toBeGreaterThan(20);
    expect(accepted).toBeGreaterThan(20);
  });

  it("several faults at once are all named", () => {
    const rand = prng(SEED);
    const n = trials(500);
    for (let t = 0; t < n; t++) {
      const raw = raws[Math.floor(rand() * raws.length)];
      // Not the kind (a wrong kind stops the check there) nor fields that are dropped unread.
      const all = sites(raw).filter((s) => s.path !== "kind" && !IGNORED.test(s.path));
      const picked: Site[] = [];
      for (let k = 0; k < 3; k++) {
        const s = all[Math.floor(rand() * all.length)];
        // Disjoint fields: none inside another, so that each fault is found on its own.
        if (picked.some((p) => s.path.startsWith(p.path) || p.path.startsWith(s.path))) continue;
        picked.push(s);
      }
      let mutant: unknown = raw;
      for (const s of picked) mutant = mutate(mutant, s.segs, "retype");
      const got = outcome(mutant);
      for (const s of picked) expect(got === "accepted" ? [] : got.some((p) => p.startsWith(`w: ${s.path}: `)), `${s.path} in ${JSON.stringify(got)}`).toBe(true);
    }
  });
});

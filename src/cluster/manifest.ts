/**
 * Manifests as `kubectl apply -f` reads them: multi-document YAML (documents between `---`),
 * JSON (which YAML reads too), and a v1 `List` whose `items` are objects. Empty documents are
 * skipped. Every object is checked and completed by validateObject; two objects with the same
 * kind, namespace and name in one input are refused. Like kubectl, every fault in the input is
 * reported, not just the first: one ManifestError, one line per fault, each beginning with the
 * source and the document ("pods.yaml: document 2 (Pod web): spec.containers: ...").
 */
import { parseAllDocuments } from "yaml";
import { describeRef, refOf, type KubeObject } from "./objects.ts";
import { ManifestError, validateObject } from "./validate.ts";
import { isMapping, show } from "./validate-schema.ts";

export { ManifestError, validateObject };

/** "document 2 (Pod web)": what a message calls an object, before it is known to be valid. */
function describe(at: string, raw: unknown): string {
  if (!isMapping(raw) || typeof raw.kind !== "string") return at;
  const meta = raw.metadata;
  const name = isMapping(meta) && typeof meta.name === "string" ? ` ${meta.name}` : "";
  return `${at} (${raw.kind}${name})`;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** A v1 List's items, or its faults. */
function listItems(raw: Record<string, unknown>, where: string, problems: string[]): unknown[] {
  for (const key of Object.keys(raw)) {
    if (!["apiVersion", "kind", "metadata", "items"].includes(key)) problems.push(`${where}: ${key}: unknown field`);
  }
  if (raw.apiVersion !== "v1") problems.push(`${where}: apiVersion: must be "v1" for a List, not ${show(raw.apiVersion)}`);
  if (raw.metadata != null && !isMapping(raw.metadata)) problems.push(`${where}: metadata: must be a mapping, not ${show(raw.metadata)}`);
  if (raw.items == null) return [];
  if (!Array.isArray(raw.items)) {
    problems.push(`${where}: items: must be a list, not ${show(raw.items)}`);
    return [];
  }
  return raw.items;
}

/**
 * Every object in `text`, checked, with defaults filled, in the order written. `source` names
 * the input in messages ("pods.yaml", "-" for stdin). Throws ManifestError listing every fault.
 */
export function parseManifests(text: string, source: string): KubeObject[] {
  const problems: string[] = [];
  const found: { raw: unknown; where: string }[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: false });
  docs.forEach((doc, i) => {
    const at = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0] ?? { line: lineOf(text, e.pos[0]), col: 1 };
        problems.push(`${source}: line ${pos.line}, column ${pos.col}: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`);
      }
      return;
    }
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push(`${source}: ${at} (line ${lineOf(text, doc.range[0])}): ${(e as Error).message}`);
      return;
    }
    if (raw === null || raw === undefined) return; // an empty document
    if (isMapping(raw) && raw.kind === "List") {
      const where = `${source}: ${at} (List)`;
      listItems(raw, where, problems).forEach((item, j) => found.push({ raw: item, where: `${source}: ${describe(`${at} items[${j}]`, item)}` }));
    } else found.push({ raw, where: `${source}: ${describe(at, raw)}` });
  });

  const objects: KubeObject[] = [];
  const seen = new Map<string, string>();
  for (const { raw, where } of found) {
    let obj: KubeObject;
    try {
      obj = validateObject(raw, where);
    } catch (e) {
      if (!(e instanceof ManifestError)) throw e;
      problems.push(...e.problems);
      continue;
    }
    const key = describeRef(refOf(obj));
    const first = seen.get(key);
    if (first !== undefined) problems.push(`${where}: ${key} is already defined in ${first.slice(source.length + 2)}`);
    else seen.set(key, where);
    objects.push(obj);
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return objects;
}

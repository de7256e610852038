/**
 * The shape of src/, checked on every file: no file too long, and no import running back up
 * the layers. Imports only go leftward:
 *
 *   wire ← io, tunnel, cluster ← switch ← node ← cni, lab ← bench ← cli
 *
 * io, tunnel and cluster are one level and import none of each other (the cluster model is
 * below the switch, which enforces its Services and NetworkPolicies); bench may import lab, not the
 * other way round. A relative import is judged by the top folder of src it lands in.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Each top folder of src and its level: a file may import its own folder and lower levels. */
const LEVELS: Record<string, number> = {
  wire: 0, io: 1, tunnel: 1, cluster: 1, switch: 2, node: 3, cni: 4, lab: 4, bench: 5, cli: 6,
};

/** The folders whose files must stay within MAX_LINES: all of them. */
const LENGTH_CHECKED = Object.keys(LEVELS);
const MAX_LINES = 400;

/**
 * Imports that break the order today, file to file, each with its reason. Every entry must
 * still exist: one that no longer does is reported, so that the list only shrinks.
 */
const EXCEPTIONS: { from: string; to: string; why: string }[] = [];

interface SourceFile {
  /** From the repository's root, with forward slashes: "src/node/agent.ts". */
  path: string;
  text: string;
}

function sources(dir = join(ROOT, "src")): SourceFile[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = join(dir, e.name);
    if (e.isDirectory()) return sources(full);
    if (!/\.(ts|mjs)$/.test(e.name)) return [];
    return [{ path: relative(ROOT, full).split("\\").join("/"), text: readFileSync(full, "utf8") }];
  });
}

function lineCount(text: string): number {
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** "src/node/agent.ts" → "node"; "" for a file directly in src or outside it. */
function topFolder(path: string): string {
  const parts = path.split("/");
  return parts[0] === "src" && parts.length > 2 ? parts[1] : "";
}

/** Every relative import of every file (static, type-only, re-exports, dynamic), resolved. */
function imports(files: SourceFile[]): { from: string; to: string }[] {
  return files.flatMap((f) => ts.preProcessFile(f.text, true, true).importedFiles
    .filter((r) => r.fileName.startsWith("."))
    .map((r) => ({ from: f.path, to: posix.normalize(posix.join(posix.dirname(f.path), r.fileName)) })));
}

/** What breaks the layer order, one line each, leaving out EXCEPTIONS. */
function layerViolations(files: SourceFile[], exceptions = EXCEPTIONS): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (!(topFolder(f.path) in LEVELS)) out.push(`${f.path}: not in a folder of the layer order (${Object.keys(LEVELS).join(", ")})`);
  }
  for (const { from, to } of imports(files)) {
    if (exceptions.some((e) => e.from === from && e.to === to)) continue;
    const a = topFolder(from);
    const b = topFolder(to);
    if (!(a in LEVELS)) continue; // said above
    if (!(b in LEVELS)) out.push(`${from} imports ${to}, outside the folders of src`);
    else if (a !== b && LEVELS[b] >= LEVELS[a]) out.push(`${from} imports ${to}: ${a} may not import ${b}`);
  }
  return out;
}

const files = sources();

describe("src/ architecture", () => {
  it(`no file in ${LENGTH_CHECKED.map((d) => `src/${d}`).join(", ")} is over ${MAX_LINES} lines`, () => {
    const checked = files.filter((f) => f.path.endsWith(".ts") && LENGTH_CHECKED.includes(topFolder(f.path)));
    expect(checked.length).toBeGreaterThan(LENGTH_CHECKED.length);
    expect(checked.filter((f) => lineCount(f.text) > MAX_LINES).map((f) => `${f.path}: ${lineCount(f.text)} lines`)).toEqual([]);
  });

  it("no import runs back up the layers", () => {
    expect(files.length).toBeGreaterThan(50);
    expect(layerViolations(files)).toEqual([]);
  });

  it("every allowed exception still exists", () => {
    const found = imports(files);
    expect(EXCEPTIONS.filter((e) => !found.some((i) => i.from === e.from && i.to === e.to)).map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });
});

describe("the layer check itself", () => {
  const file = (path: string, text: string): SourceFile => ({ path, text });

  it("finds upward and sideways imports of every form, and nothing in leftward ones", () => {
    const v = layerViolations([
      file("src/wire/a.ts", 'import { Switch } from "../switch/switch.ts";'),
      file("src/io/b.ts", 'import type { T } from "../tunnel/t.ts";\nimport { ok } from "../wire/ok.ts";'),
      file("src/node/c.ts", 'export { cli } from "../cli/main.ts";\nimport { x } from "./x.ts";'),
      file("src/lab/d.ts", 'const m = await import("../bench/runner.ts");\nimport { n } from "../node/n.ts";'),
      file("src/bench/e.ts", 'import { labUp } from "../lab/lab.ts";\nimport {\n  a,\n  b,\n} from "../cli/args.ts";'),
      file("src/cli/f.ts", 'import { y } from "../../test/y.ts";\nimport { readFileSync } from "node:fs";'),
      file("src/g.ts", ""),
    ], []);
    expect(v).toEqual([
      "src/g.ts: not in a folder of the layer order (wire, io, tunnel, cluster, switch, node, cni, lab, bench, cli)",
      "src/wire/a.ts imports src/switch/switch.ts: wire may not import switch",
      "src/io/b.ts imports src/tunnel/t.ts: io may not import tunnel",
      "src/node/c.ts imports src/cli/main.ts: node may not import cli",
      "src/lab/d.ts imports src/bench/runner.ts: lab may not import bench",
      "src/bench/e.ts imports src/cli/args.ts: bench may not import cli",
      "src/cli/f.ts imports test/y.ts, outside the folders of src",
    ]);
  });

  it("leaves out exactly the exceptions listed", () => {
    const tree = [file("src/switch/router.ts", 'import type { BackendType } from "../node/config.ts";\nimport { n } from "../node/n.ts";')];
    const allowed = [{ from: "src/switch/router.ts", to: "src/node/config.ts", why: "a test" }];
    expect(layerViolations(tree, allowed)).toEqual(["src/switch/router.ts imports src/node/n.ts: switch may not import node"]);
    expect(layerViolations(tree, [])).toHaveLength(2);
  });
});

// bin/bundle.mjs: the bundle tapnet runs from on Node, over a small tree of sources of its own
// shape (the three entry points, a module they share and one that says where it runs from).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript, run before anything can load TypeScript; no types of its own
import { bundle, sourceKey } from "../../bin/bundle.mjs";

let root = "";
const write = (path: string, text: string) => {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), text);
};
const run = (file: string) => spawnSync(process.execPath, [file], { encoding: "utf8" });

beforeEach(() => {
  root = `${mkdtempSync(join(tmpdir(), "tapnet-bundle-"))}/`;
  // Where each module runs from, as src/io/runtime.ts works it out: two folders down.
  write("src/io/where.ts", 'export const repo: string = new URL("../../", import.meta.url).pathname;\nexport const bundled = !import.meta.url.endsWith(".ts");\n');
  write("src/cli/main.ts", 'import { bundled, repo } from "../io/where.ts";\nconsole.log(JSON.stringify({ entry: "main", bundled, repo }));\n');
  write("src/switch/datapath-worker.ts", 'import { repo } from "../io/where.ts";\nconsole.log(JSON.stringify({ entry: "worker", repo }));\n');
  write("src/lab/supervise.ts", 'import { repo } from "../io/where.ts";\nconsole.log(JSON.stringify({ entry: "supervise", repo }));\n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("bin/bundle.mjs", () => {
  it("bundles the three entry points into .build/<key>/, where each finds the repository's root as from src/", async () => {
    const main: string = await bundle(root);
    expect(main).toBe(`${root}.build/${sourceKey(root)}/main.mjs`);
    const names = readdirSync(join(main, ".."));
    expect(names).toEqual(expect.arrayContaining(["main.mjs", "datapath-worker.mjs", "supervise.mjs"]));
    expect(names.some((n) => n.startsWith("chunk-"))).toBe(true); // what they share is one chunk, loaded once
    for (const [file, entry] of [["main.mjs", "main"], ["datapath-worker.mjs", "worker"], ["supervise.mjs", "supervise"]]) {
      const r = run(join(main, "..", file));
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout)).toMatchObject({ entry, repo: root });
    }
    expect(JSON.parse(run(main).stdout).bundled).toBe(true);
  });

  it("makes the bundle once for a version of the sources, and anew when a source changes", async () => {
    const first: string = await bundle(root);
    const made = statSync(first).mtimeMs;
    expect(await bundle(root)).toBe(first);
    expect(statSync(first).mtimeMs).toBe(made);
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(root, "src/io/where.ts"), later, later);
    const second: string = await bundle(root);
    expect(second).not.toBe(first);
    expect(existsSync(second)).toBe(true);
    expect(existsSync(first)).toBe(true); // kept a day: a switch running from it may yet start a worker
    write("src/lab/extra.ts", "export const x = 1;\n"); // a new file is a new version too
    expect(await bundle(root)).not.toBe(second);
  });

  it("removes bundles of other sources made over a day ago, and leaves no half-made one", async () => {
    const old = join(root, ".build/0123456789abcdef");
    mkdirSync(old, { recursive: true });
    const dayAgo = new Date(Date.now() - 86_400_000 - 60_000);
    utimesSync(old, dayAgo, dayAgo);
    const main: string = await bundle(root);
    expect(readdirSync(join(root, ".build"))).toEqual([main.split("/").at(-2)]);
  });

  it("returns undefined, with the reason, for sources esbuild cannot build (tapnet then runs them through tsx)", async () => {
    write("src/lab/supervise.ts", "export const = ;\n");
    const errors: Error[] = [];
    expect(await bundle(root, (e: Error) => errors.push(e))).toBeUndefined();
    expect(String(errors[0]?.message)).toMatch(/supervise\.ts/);
    expect(readdirSync(join(root, ".build"))).toEqual([]); // the attempt's folder is gone
  });
});

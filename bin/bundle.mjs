// The bundle bin/tapnet.mjs runs tapnet from: see there. Plain JavaScript, as it runs before
// anything can load TypeScript.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";

/** The digest of `root`'s sources: every .ts and .mjs under src/, by path, size and mtime, and Node's version. */
export function sourceKey(root) {
  const h = createHash("sha256");
  h.update(`${process.version}\n`);
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs)$/.test(e.name)) {
        const s = statSync(p);
        h.update(`${p} ${s.size} ${s.mtimeMs}\n`);
      }
    }
  };
  walk(`${root}src`);
  return h.digest("hex").slice(0, 16);
}

/**
 * The path of the bundle's main.mjs for the sources under `root` (a path ending in "/"), made
 * if it is not there; undefined if it cannot be made (`onError` is told why).
 */
export async function bundle(root, onError = () => {}) {
  try {
    const dir = `${root}.build/${sourceKey(root)}`;
    const main = `${dir}/main.mjs`;
    if (existsSync(main)) return main;
    const esbuild = await import("esbuild");
    // Made aside and renamed into place: processes started at once never see half a bundle.
    const tmp = `${root}.build/tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true });
    try {
      esbuild.buildSync({
        entryPoints: { main: `${root}src/cli/main.ts`, "datapath-worker": `${root}src/switch/datapath-worker.ts`, supervise: `${root}src/lab/supervise.ts` },
        outdir: tmp, outExtension: { ".js": ".mjs" }, bundle: true, splitting: true, format: "esm", platform: "node", target: "node20",
        packages: "external", legalComments: "none", logLevel: "silent",
      });
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(main)) throw e; // else another process made it first
    }
    pruneOld(root, dir);
    return main;
  } catch (e) {
    onError(e);
    return undefined;
  }
}

/** Removes bundles of other sources made over a day ago (not at once: a switch running from one may yet start a worker from it). */
function pruneOld(root, keep) {
  const dir = `${root}.build`;
  for (const name of readdirSync(dir)) {
    const p = `${dir}/${name}`;
    if (p !== keep && Date.now() - statSync(p).mtimeMs > 86_400_000) rmSync(p, { recursive: true, force: true });
  }
}


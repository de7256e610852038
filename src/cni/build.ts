/**
 * Builds the plugin executable: src/cni/main.ts and what it imports bundled by esbuild into one
 * ES module (no TypeScript loader, no module resolution at start: measured in the README), with
 * a first line naming the node binary by absolute path, since runtimes run plugins with a
 * small PATH. esbuild is a development dependency: it is loaded only here.
 */
import { fileURLToPath } from "node:url";
import { repoUrl } from "../io/runtime.ts";

/** The first line of every plugin file tapnet writes: how `cni uninstall` knows its own. */
export const PLUGIN_MARK = "// tapnet CNI plugin";

export class CniBuildError extends Error {}

/** The plugin's source text: `#!NODE`, the mark, the bundle. */
export async function buildPlugin(nodeBin: string): Promise<string> {
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch {
    throw new CniBuildError("cannot build the CNI plugin: esbuild is not installed (run npm install in tapnet's directory)");
  }
  const r = await esbuild.build({
    entryPoints: [fileURLToPath(repoUrl("src/cni/main.ts"))],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const text = r.outputFiles[0].text;
  return `#!${nodeBin}\n${PLUGIN_MARK} (built by tapnet cni install from src/cni; do not edit)\n${text}`;
}

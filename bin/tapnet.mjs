#!/usr/bin/env node
// tapnet on Node. (On Deno: deno run --allow-all src/cli/main.ts ...)
//
// The TypeScript sources run from a bundle of them that esbuild makes here, once per version of
// the sources: .build/<key>/ holds main.mjs, datapath-worker.mjs and supervise.mjs (the entry
// points: the CLI, the switch's datapath thread, a lab node's supervisor) and the chunks they
// share; <key> is a digest of every source file's path, size and mtime, and of Node's version.
// A bundle starts faster and holds less memory than the sources through tsx, which runs a
// module-loader thread of its own in every process and transforms each file as it loads: a lab
// switch's resident memory, measured, is in the README. If the bundle cannot be made (no
// esbuild, a read-only tree) or TAPNET_TSX=1 is set, the sources run through tsx as before.
import { fileURLToPath } from "node:url";
import { bundle } from "./bundle.mjs";

const root = fileURLToPath(new URL("../", import.meta.url));
const main = process.env.TAPNET_TSX === "1" ? undefined : await bundle(root);
if (main) {
  await import(main);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}

#!/usr/bin/env node
// Builds tapnet's CNI plugin into one executable file (default dist/cni/tapnet), as
// `tapnet cni install` does before copying it to the runtime's plugin directory:
//   node scripts/build-cni.mjs [OUT] [--node-bin PATH]      (npm run build:cni)
import { register } from "tsx/esm/api";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

register();
const { buildPlugin } = await import("../src/cni/build.ts");
const args = process.argv.slice(2);
const at = args.indexOf("--node-bin");
const nodeBin = at >= 0 ? args.splice(at, 2)[1] : process.execPath;
const out = resolve(args[0] ?? fileURLToPath(new URL("../dist/cni/tapnet", import.meta.url)));
const text = await buildPlugin(nodeBin);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, text, { mode: 0o755 });
chmodSync(out, 0o755);
console.log(`${out}: ${text.length} bytes, runs on ${nodeBin}`);

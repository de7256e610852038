/**
 * The entry of tapnet's CNI plugin executable (bundled into one file by src/cni/build.ts and
 * installed by `tapnet cni install` as BIN_DIR/tapnet): the environment and stdin in, the
 * result or the spec's error object on stdout, the exit status out. Nothing else runs on
 * import: a runtime starts this once per container and command, so it must start fast.
 */
import { readFileSync, writeSync } from "node:fs";
import { rpcCall } from "../node/rpc.ts";
import { nsenterProbe } from "./netns.ts";
import { runPlugin } from "./plugin.ts";
import { SUPPORTED_VERSIONS } from "./spec.ts";

function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch {
    return ""; // no stdin (closed): the config checks say what is missing
  }
}

function writeAll(fd: number, s: string): void {
  const buf = Buffer.from(s);
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
}

if (!process.env.CNI_COMMAND) {
  // Run by a person: say what this is, as the reference plugins do, and do not wait on stdin.
  writeAll(2, `tapnet CNI plugin: attaches containers to a tapnet node's switch\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`);
}
const stdin = process.env.CNI_COMMAND ? readStdin() : "";
const out = await runPlugin(process.env, stdin, { call: rpcCall, probe: nsenterProbe });
if (out.stderr) writeAll(2, out.stderr);
if (out.stdout) writeAll(1, out.stdout + "\n");
process.exit(out.code);

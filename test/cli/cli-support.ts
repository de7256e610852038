// What the CLI tests share: the command line run as main runs it, with stdout and stderr
// captured, a scratch directory per test, and control sockets served in the test (stand-in
// switches) closed after it. captureCli() registers its own beforeEach and afterEach.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, vi } from "vitest";
import { main } from "../../src/cli/main.ts";
import { flowHandlers } from "../../src/node/flow-rpc.ts";
import { RpcServer, type Handler } from "../../src/node/rpc.ts";
import type { FlowInfo } from "../../src/switch/conntrack/flow-info.ts";

export interface CliIo {
  /** What the last command printed (reset by cli() and clear()). */
  stdout: string;
  stderr: string;
  /** This test's scratch directory. */
  dir: string;
  /** Runs `tapnet ...argv` through main: its error handling and exit codes. */
  cli(...argv: string[]): Promise<number>;
  clear(): void;
  /** Serves `handlers` (and ping) on a control socket at `path` until the test ends. */
  serve(path: string, handlers: Record<string, Handler>): Promise<RpcServer>;
}

export function captureCli(tmpPrefix: string): CliIo {
  const servers: RpcServer[] = [];
  const io: CliIo = {
    stdout: "", stderr: "", dir: "",
    clear() { io.stdout = ""; io.stderr = ""; },
    async cli(...argv) { io.clear(); return main(argv); },
    async serve(path, handlers) {
      const s = await RpcServer.listen(path, { ping: () => ({}), ...handlers });
      servers.push(s);
      return s;
    },
  };
  beforeEach(() => {
    io.clear();
    io.dir = mkdtempSync(join(tmpdir(), tmpPrefix));
    vi.spyOn(process.stdout, "write").mockImplementation(((s: string) => { io.stdout += String(s); return true; }) as typeof process.stdout.write);
    vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => { io.stderr += String(s); return true; }) as typeof process.stderr.write);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const s of servers.splice(0)) await s.close();
    rmSync(io.dir, { recursive: true, force: true });
  });
  return io;
}

/** A switch stand-in with the switch's own conntrack and policy-log methods (node/flow-rpc.ts), over `flows`. */
export async function flowSwitch(io: CliIo, path: string, o: { flows?: FlowInfo[]; policyLog?: boolean } = {}) {
  const sw = { flows: async () => o.flows ?? [], setPolicyLog(v: boolean) { this.policyLog = v; }, policyLog: o.policyLog ?? false };
  await io.serve(path, flowHandlers(sw));
  return sw;
}

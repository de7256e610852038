/** Entry point of the datapath worker thread: build the datapath and run it until told to stop. */
import { CpuError, pinThread } from "../io/cpu.ts";
import { loadLibc } from "../io/libc.ts";
import { workerInput } from "../io/runtime.ts";
import { Datapath } from "./datapath.ts";
import type { DatapathInput, Reply } from "./commands.ts";

const input = await workerInput<DatapathInput>();
try {
  const libc = await loadLibc();
  if (input.cpu !== undefined) pinThread(libc, input.cpu);
  new Datapath(libc, input).run();
} catch (e) {
  // A refused CPU is the caller's mistake, said in its own words; anything else is a bug: its stack.
  const message = e instanceof CpuError ? e.message : String((e as Error)?.stack ?? e);
  input.port.postMessage({ op: "fatal", message } satisfies Reply);
}
input.port.close();

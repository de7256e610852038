/**
 * Entry point of the datapath worker thread: build the datapath and run it until told to stop.
 * Every EVENT_LOOP_EVERY_S it leaves its loop for one turn of the thread's event loop, where V8
 * runs the tasks it posted to this thread (the memory reducer, the end of incremental marking):
 * a few microseconds, ten times a second.
 */
import { setImmediate } from "node:timers";
import { CpuError, pinThread } from "../io/cpu.ts";
import { loadLibc } from "../io/libc.ts";
import { workerInput } from "../io/runtime.ts";
import { Datapath } from "./datapath.ts";
import type { DatapathInput, Reply } from "./commands.ts";

const EVENT_LOOP_EVERY_S = 0.1;
const oneTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const input = await workerInput<DatapathInput>();
try {
  const libc = await loadLibc();
  if (input.cpu !== undefined) pinThread(libc, input.cpu);
  const datapath = new Datapath(libc, input);
  while (datapath.run(EVENT_LOOP_EVERY_S)) await oneTurn();
} catch (e) {
  // A refused CPU is the caller's mistake, said in its own words; anything else is a bug: its stack.
  const message = e instanceof CpuError ? e.message : String((e as Error)?.stack ?? e);
  input.port.postMessage({ op: "fatal", message } satisfies Reply);
}
input.port.close();

/**
 * Entry point of the datapath worker thread: build the datapath and run it until told to stop.
 *
 * Every EVENT_LOOP_EVERY_S it leaves its loop for one turn of the thread's event loop, where V8
 * runs the tasks it posted to this thread (the memory reducer, the end of incremental marking):
 * a few microseconds, ten times a second.
 *
 * Every FULL_GC_EVERY_S, when the runtime exposes `gc` (the switch's V8 flags, src/lab/plan.ts
 * SWITCH_V8_FLAGS), it collects its whole heap: a pause of a few ms. Under steady traffic this
 * thread allocates all the time (a few boxed numbers a sealed datagram), so V8's memory reducer,
 * which waits for a quiet moment, never runs here; what scavenges promote then fills the old
 * generation for an hour or more before V8 collects it, and the soak reads that as memory
 * creeping (#13: the datapath's heap +4 to 6 MB an hour). Collected every few minutes, it stays
 * where it is.
 */
import { setImmediate } from "node:timers";
import { CpuError, pinThread } from "../io/cpu.ts";
import { loadLibc } from "../io/libc.ts";
import { workerInput } from "../io/runtime.ts";
import { Datapath } from "./datapath.ts";
import type { DatapathInput, Reply } from "./commands.ts";

const EVENT_LOOP_EVERY_S = 0.1;
const FULL_GC_EVERY_S = 120;
const oneTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const fullGc = (globalThis as { gc?: () => void }).gc;

const input = await workerInput<DatapathInput>();
try {
  const libc = await loadLibc();
  if (input.cpu !== undefined) pinThread(libc, input.cpu);
  const datapath = new Datapath(libc, input);
  let lastGc = performance.now();
  while (datapath.run(EVENT_LOOP_EVERY_S)) {
    const t = performance.now();
    if (fullGc && t - lastGc >= FULL_GC_EVERY_S * 1000) {
      lastGc = t;
      fullGc();
    }
    await oneTurn();
  }
} catch (e) {
  // A refused CPU is the caller's mistake, said in its own words; anything else is a bug: its stack.
  const message = e instanceof CpuError ? e.message : String((e as Error)?.stack ?? e);
  input.port.postMessage({ op: "fatal", message } satisfies Reply);
}
input.port.close();

/** Entry point of the datapath worker thread: build the datapath and run it until told to stop. */
import { loadLibc } from "../io/libc.ts";
import { workerInput } from "../io/runtime.ts";
import { Datapath, type DatapathInput, type Reply } from "./datapath.ts";

const input = await workerInput<DatapathInput>();
try {
  new Datapath(await loadLibc(), input).run();
} catch (e) {
  input.port.postMessage({ op: "fatal", message: String((e as Error)?.stack ?? e) } satisfies Reply);
}
input.port.close();

// Node only, when tapnet runs from its sources (not the bundle): register tsx in this worker thread, then load the TypeScript entry it was given.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";
register();
await import(workerData.entry);

/**
 * Temporary: src/switch/router.ts and src/tunnel/backend.ts still import BackendType from here,
 * from before the control plane moved to src/node, src/lab and src/bench. The datapath rewrite
 * (issue 9) moves the backend table into tunnel/ and deletes this file; nothing new imports it.
 */
export type { BackendType } from "../node/config.ts";

/**
 * What the switch's control thread (switch.ts) and its datapath thread (datapath.ts) say to each
 * other. The control thread posts a Command on the datapath's MessagePort and bumps
 * Ctrl.CmdSeq in the shared control words; the datapath, which never returns to an event loop,
 * drains its port when the sequence has moved (between rounds) and answers with a Reply when the
 * command has an id. DatapathInput is what the worker is started with.
 */
import { threadStat, type ThreadStat } from "../io/thread-stat.ts";
import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";
import type { MessagePort } from "node:worker_threads";
import type { NetworkView } from "../cluster/network-view.ts";
import type { ConntrackOptions } from "./conntrack/flow-table.ts";
import type { DeniedEvent, FlowInfo } from "./conntrack/flow-info.ts";
import type { FdbEntry, FdbOptions } from "./fdb.ts";
import type { RouterConfig } from "./state.ts";
import type { TraceFilter, TraceRecord } from "./trace/tracer.ts";

export const Ctrl = { Stop: 0, CmdSeq: 1, Ready: 2 } as const;
export const CTRL_WORDS = 4;

export type Command =
  /** A pod's `identity` (its MAC, its address) is pinned, and it may send only as that pod (port-security.ts). */
  | { op: "add"; port: number; fd: number; role: "gateway" | "pod"; identity?: { mac: string; ip: number } }
  /** Tells the router a pod's MAC before it has said anything (learned, not pinned). */
  | { op: "neigh"; ip: number; mac: string }
  | { op: "remove"; port: number; id: number }
  | { op: "fdb"; id: number }
  /** The cluster's node list changed: this node is nodes[self] (membership.ts). */
  | { op: "nodes"; id: number; nodes: RouterConfig["nodes"]; self: number }
  /** The cluster's Services and NetworkPolicies changed (conntrack/tracker.ts). */
  | { op: "view"; id: number; view: NetworkView }
  | { op: "flows"; id: number }
  | { op: "policyLog"; on: boolean }
  /** Arms these trace filters, replacing those armed (an empty list disarms): trace/tracer.ts. */
  | { op: "trace"; id: number; filters: TraceFilter[] }
  /** The trace records since the last read. */
  | { op: "traceRead"; id: number }
  /** The datapath thread's JavaScript heap. */
  | { op: "memory"; id: number };

/** A thread's JavaScript heap, in bytes (V8's heap statistics; 0 where the runtime gives none). */
export interface HeapFigures {
  used: number;
  total: number;
  /** Memory outside the heap that its objects hold (ArrayBuffers, and what addons report). */
  external: number;
  /** Of `total`, what the young generation holds (V8's new space, whose size it adapts). */
  young: number;
}

/** This thread's heap figures. */
export function heapFigures(): HeapFigures {
  const h = getHeapStatistics();
  let young = 0;
  try {
    for (const sp of getHeapSpaceStatistics()) if (sp.space_name === "new_space") young = sp.space_size;
  } catch {
    // A runtime without per-space figures: 0, as the type says.
  }
  return { used: h.used_heap_size ?? 0, total: h.total_heap_size ?? 0, external: h.external_memory ?? 0, young };
}

/** The datapath's answer to "memory": its thread's heap and scheduling, read on that thread. */
export function memoryReply(id: number): Reply {
  const thread = threadStat();
  return { op: "memory", id, heap: heapFigures(), ...(thread ? { thread } : {}) };
}

export type Reply =
  | { op: "removed"; id: number }
  | { op: "fdb"; id: number; entries: FdbEntry[] }
  /** The node list was applied, or refused (`error`, naming the field) and nothing changed. */
  | { op: "nodes"; id: number; error?: string }
  /** The port's device went away under us (its namespace was deleted, say). */
  | { op: "down"; port: number; reason: string }
  | { op: "view"; id: number; error?: string }
  | { op: "flows"; id: number; flows: FlowInfo[] }
  /** A new flow a policy denied, while logging is on. */
  | { op: "denied"; event: DeniedEvent }
  | { op: "trace"; id: number; error?: string }
  | { op: "traceRead"; id: number; records: TraceRecord[]; lost: number }
  /** The datapath thread's heap, and its scheduling (io/thread-stat.ts) where /proc gives it. */
  | { op: "memory"; id: number; heap: HeapFigures; thread?: ThreadStat }
  | { op: "fatal"; message: string };

export interface DatapathInput {
  ctrl: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  maxPorts: number;
  port: MessagePort;
  fdb: FdbOptions;
  batch: number;
  slotSize: number;
  /** Present when the switch routes between nodes. */
  router?: RouterConfig;
  /** The tunnel's UDP socket, and the port datagrams go to on the other nodes. */
  tunnel?: { fd: number; port: number };
  /**
   * An eventfd the control thread writes to after each command (and to stop): polled with the
   * ports, it wakes an idle datapath at once instead of at poll()'s timeout.
   */
  wakeFd?: number;
  /** The CPU this thread is pinned to; absent, it runs wherever the scheduler puts it. */
  cpu?: number;
  /** The TAPs take TSO super-frames (switch option `offloads`): received segments may be merged. */
  offloads?: boolean;
  /** Connection tracking's size and timeouts (a routing switch tracks flows). */
  conntrack?: ConntrackOptions;
}

/**
 * A traced packet's journey, put together from what every switch recorded (trace.read on each
 * node: switch/trace/tracer.ts). Each record is one frame after one stage of one switch; the
 * journey orders them all by time, keeps for each frame the stages that touched it (its first,
 * each that changed where it goes, its length or its headers, and its last), and says at each
 * hop what happened there: where the frame went, and what changed in its headers.
 *
 * Times are the switches' wall clocks, in µs from the first hop: on one machine (a lab) they
 * are one clock; across machines they are as good as the machines' clock sync.
 */
import type { TraceRecord } from "../../switch/trace/tracer.ts";
import { changes, layers, readHeaders, summary, type Headers, type MacNames } from "./headers.ts";

/** What one switch recorded, and what is needed to name its ports and nodes. */
export interface NodeTrace {
  node: string;
  records: TraceRecord[];
  lost: number;
  /** Port number → the pod on it (or "tapnet0"). */
  ports: Map<number, string>;
  /** The cluster's nodes, in the order the switch numbers them. */
  nodes: string[];
  /** Whose MACs the switch knows: its pods' and its gateway's. */
  macs?: MacNames;
}

export interface Hop {
  /** µs since the journey's first hop. */
  t: number;
  /** Wall-clock µs. */
  at: number;
  /** The frame as the stage left it: its first bytes (hex, virtio_net_hdr first) and whole length. */
  head: string;
  len: number;
  /** The pod (or tapnet0) on the port the frame is read from or written to, at read and port-out hops. */
  tap?: string;
  node: string;
  pipeline: string;
  stage: string;
  /** What the stage did with the frame, in a phrase. */
  what: string;
  /** The headers, in a line (at a frame's first hop, and where they changed). */
  headers?: string;
  /** What changed in the headers at this stage. */
  changed: string[];
  /** At a frame's first hop on a node: its headers layer by layer, each field explained. */
  fields?: string[];
  /** Which frame of its switch it is (one per switch and direction). */
  frame: number;
}

// frames.ts's `outs` values.
const PENDING = -1, FLOOD = -2, TO_NODE = -3, REPLY = -4, ASK = -5, DONE = -6;

/** What a stage did with a frame, from where it said the frame goes. */
function what(r: TraceRecord, n: NodeTrace): string {
  const port = (p: number) => `port ${p}${n.ports.has(p) ? ` (${n.ports.get(p)})` : ""}`;
  if (r.out >= 0) return `to ${port(r.out)}`;
  switch (r.out) {
    case PENDING: return r.port >= 0 ? `in from ${port(r.port)}` : `in from ${n.nodes[r.node] ?? `node #${r.node}`}, over the tunnel`;
    case FLOOD: return "flooded to every port but its own (destination MAC not learned)";
    case TO_NODE: return `to ${n.nodes[r.node] ?? `node #${r.node}`}: leaves this node through the tunnel`;
    case REPLY: return "answered here: an ICMP error goes back to the sender";
    case ASK: return "held: the gateway asks by ARP who has the address";
    case DONE:
      if (r.stage === "tunnel-out") return "encapsulated and sent to the peer node";
      if (r.stage === "merge") return "merged into a super-frame";
      return "dropped here (the switch's drop counters say why)";
    default: return `out ${r.out}`;
  }
}

/** The journey of every traced frame, all switches together, in time order. */
export function buildJourney(traces: NodeTrace[]): Hop[] {
  const all = traces.flatMap((n) => n.records.map((r) => ({ r, n })));
  if (!all.length) return [];
  all.sort((x, y) => x.r.t - y.r.t || x.n.node.localeCompare(y.n.node) || x.r.frame - y.r.frame);
  const t0 = all[0].r.t;
  // Each frame's records, in order: a frame is (node, frame number).
  const byFrame = new Map<string, { r: TraceRecord; n: NodeTrace }[]>();
  for (const x of all) {
    const k = `${x.n.node}/${x.r.frame}`;
    byFrame.set(k, [...(byFrame.get(k) ?? []), x]);
  }
  const macs: MacNames = new Map(traces.flatMap((n) => [...(n.macs ?? [])]));
  const hops: Hop[] = [];
  for (const list of byFrame.values()) {
    let prev: { r: TraceRecord; h: Headers } | undefined;
    list.forEach(({ r, n }, k) => {
      const h = readHeaders(r.head);
      const diff = prev ? changes(prev.h, h, macs) : [];
      // port-out writes what an earlier stage sent to a port: the write is its touch.
      const written = r.stage === "port-out" && (r.out >= 0 || r.out === FLOOD);
      const touched = !prev || written || prev.r.out !== r.out || prev.r.len !== r.len || prev.r.head !== r.head;
      if (touched) {
        const fromTunnel = k === 0 && r.port < 0 && r.out !== PENDING ? `in from ${n.nodes[r.node] ?? `node #${r.node}`} over the tunnel, ` : "";
        const tapPort = k === 0 && r.port >= 0 ? r.port : written && r.out >= 0 ? r.out : -1;
        hops.push({
          t: r.t - t0, at: r.t, head: r.head, len: r.len, ...(tapPort >= 0 ? { tap: n.ports.get(tapPort) ?? `port ${tapPort}` } : {}), node: n.node, pipeline: r.pipeline, stage: k === 0 && r.stage === "tunnel-in" ? "read" : r.stage,
          what: written ? `written to ${r.out >= 0 ? `port ${r.out}${n.ports.has(r.out) ? ` (${n.ports.get(r.out)})` : ""}` : "every port"}: the pod reads it` : fromTunnel + what(r, n),
          ...(!prev || diff.length ? { headers: summary(h) } : {}), changed: diff, frame: r.frame, ...(!prev ? { fields: layers(h, macs) } : {}),
        });
      }
      prev = { r, h };
    });
  }
  return hops.sort((a, b) => a.t - b.t || a.node.localeCompare(b.node) || a.frame - b.frame);
}

/** The journey as the terminal shows it: a line per hop, the headers and changes indented below. */
export function formatJourney(hops: Hop[]): string[] {
  const lines: string[] = [];
  for (const h of hops) {
    lines.push(`${`+${h.t} µs`.padStart(10)}  ${h.node.padEnd(8)} ${h.stage.padEnd(14)} ${h.what}`);
    if (h.fields) for (const f of h.fields) lines.push(`${"".padStart(36)}${f}`);
    else if (h.headers) lines.push(`${"".padStart(36)}${h.headers}`);
    for (const c of h.changed) lines.push(`${"".padStart(36)}${c}`);
  }
  return lines;
}

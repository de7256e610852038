/**
 * A traced packet's journey, put together from what every switch recorded (trace.read on each
 * node: switch/trace/tracer.ts). Each record is one frame after one stage of one switch; the
 * journey orders them all by time, keeps for each frame the stages that touched it (its first,
 * each that changed where it goes, its length or its headers, and its last), and says at each
 * hop what happened there: where the frame went, and what changed in its headers. Named in
 * particular (explain.ts says how):
 *   - a drop or a refusal: the stage, and the drop reason it counted ("policy_denied_egress");
 *   - conntrack's rewrites: a Service's translation (ClusterIP:port → endpoint), and the
 *     reply's reverse translation; a source translated to the node's gateway address;
 *   - a frame handed to the node's kernel through tapnet0 for beyond the cluster, and the
 *     masquerade rule the kernel applies there (and the reply coming back through it);
 *   - after tunnel-out, the underlay datagram as a hop of its own (stage "underlay"): outer
 *     IPv4 and UDP and the backend's header, built for display (underlay.ts).
 *
 * Times are in µs from the first hop: from CLOCK_MONOTONIC when every switch read it on one
 * machine (one boot id: a lab), so the switches' hops are on one clock; else the switches' wall
 * clocks, as good as the machines' (or processes') clock sync.
 */
import type { TraceRecord } from "../../switch/trace/tracer.ts";
import { byteView, frameLayers } from "./bytes.ts";
import { dropPhrase, kernelHandOver, Translations } from "./explain.ts";
import { changes, layers, readHeaders, summary, type Headers, type MacNames } from "./headers.ts";
import { underlayDatagram, type ByteLayer } from "./underlay.ts";

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
  /**
   * Where the node's kernel sends what leaves the cluster, by destination: the address it
   * masquerades to (`ip route get DST`'s src) and the device, when whoever ran the trace could ask.
   */
  egress?: Map<string, { source: string; dev?: string }>;
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
  /** The drop reason the stage counted, by its counter name, where it dropped or refused the frame. */
  why?: string;
  /** More to say at this hop, a line each (what the node's kernel does with it). */
  notes?: string[];
  /** The underlay hop: its head is a datagram (outer IPv4 first, no virtio_net_hdr), of these layers. */
  datagram?: { layers: ByteLayer[] };
}

// frames.ts's `outs` values.
const PENDING = -1, FLOOD = -2, TO_NODE = -3, REPLY = -4, ASK = -5, DONE = -6;

/** What a stage did with a frame, from where it said the frame goes; `why`: the reason it counted, if it did here. */
function what(r: TraceRecord, n: NodeTrace, why: string | undefined): string {
  const port = (p: number) => `port ${p}${n.ports.has(p) ? ` (${n.ports.get(p)})` : ""}`;
  if (r.out >= 0) return why ? `the write to ${port(r.out)} failed: ${dropPhrase(why)}` : `to ${port(r.out)}`;
  switch (r.out) {
    case PENDING: return r.port >= 0 ? `in from ${port(r.port)}` : `in from ${n.nodes[r.node] ?? `node #${r.node}`}, over the tunnel`;
    case FLOOD: return "flooded to every port but its own (destination MAC not learned)";
    case TO_NODE: return `to ${n.nodes[r.node] ?? `node #${r.node}`}: leaves this node through the tunnel`;
    case REPLY: return `refused: ${why ? dropPhrase(why) : "no reason recorded"}; the gateway answers with an ICMP error`;
    case ASK: return `held: ${why ? `${dropPhrase(why)}; ` : ""}the gateway asks by ARP who has the address`;
    case DONE:
      if (why) return `dropped: ${dropPhrase(why)}`;
      if (r.stage === "tunnel-out") return "encapsulated and sent to the peer node";
      if (r.stage === "merge") return "merged into a super-frame";
      return "dropped here (no reason recorded: the switch's drop counters say why)";
    default: return `out ${r.out}`;
  }
}

/** The journey of every traced frame, all switches together, in time order. */
export function buildJourney(traces: NodeTrace[]): Hop[] {
  const all = traces.flatMap((n) => n.records.map((r) => ({ r, n })));
  if (!all.length) return [];
  // One clock for every switch when they all read CLOCK_MONOTONIC on one machine; else their wall clocks.
  const oneClock = all.every((x) => x.r.mono !== undefined && x.r.boot !== undefined && x.r.boot === all[0].r.boot);
  const time = (r: TraceRecord) => (oneClock ? r.mono! : r.t);
  all.sort((x, y) => time(x.r) - time(y.r) || x.n.node.localeCompare(y.n.node) || x.r.frame - y.r.frame);
  const t0 = time(all[0].r);
  // Each frame's records, in order: a frame is (node, frame number).
  const byFrame = new Map<string, { r: TraceRecord; n: NodeTrace }[]>();
  for (const x of all) {
    const k = `${x.n.node}/${x.r.frame}`;
    byFrame.set(k, [...(byFrame.get(k) ?? []), x]);
  }
  const macs: MacNames = new Map(traces.flatMap((n) => [...(n.macs ?? [])]));
  // The VTEP MACs the underlay records name (VXLAN writes them into the frame it sends).
  for (const { r, n } of all) {
    if (!r.underlay) continue;
    const peer = n.nodes[r.node] ?? `node #${r.node}`;
    const sent = r.stage === "tunnel-out";
    macs.set(r.underlay.vtepSrc, `${sent ? n.node : peer}'s VTEP`);
    macs.set(r.underlay.vtepDst, `${sent ? peer : n.node}'s VTEP`);
  }
  const translations = new Translations();
  const hops: Hop[] = [];
  for (const list of byFrame.values()) {
    let prev: { r: TraceRecord; h: Headers } | undefined;
    // flannel's udp carries no Ethernet header: the frame's is whatever its slot held until deliver writes one.
    let noEth = list[0].r.underlay?.backend === "udp" && list[0].r.port < 0;
    list.forEach(({ r, n }, k) => {
      const h = readHeaders(r.head);
      let diff = prev ? changes(prev.h, h, macs) : [];
      let fields = !prev ? layers(h, macs) : undefined;
      if (noEth && fields) fields = fields.map((l) => (l.startsWith("Ethernet") ? "Ethernet        none yet: flannel's udp carries the IPv4 packet alone, and deliver writes this header" : l));
      if (noEth && prev && h.eth && prev.h.eth && (h.eth.src !== prev.h.eth.src || h.eth.dst !== prev.h.eth.dst)) {
        const name = (m: string) => (macs.has(m) ? `${m} (${macs.get(m)})` : m);
        diff = [`Ethernet header written: ${name(h.eth.src)} → ${name(h.eth.dst)}`, ...diff.filter((c) => !/^(source|destination) MAC /.test(c))];
        noEth = false;
      }
      const why = r.why !== undefined && r.why !== prev?.r.why ? r.why : undefined;
      // port-out writes what an earlier stage sent to a port: the write is its touch.
      const written = r.stage === "port-out" && (r.out >= 0 || r.out === FLOOD) && !why;
      const touched = !prev || written || why !== undefined || prev.r.out !== r.out || prev.r.len !== r.len || prev.r.head !== r.head;
      if (touched) {
        const fromTunnel = k === 0 && r.port < 0 && r.out !== PENDING ? `in from ${n.nodes[r.node] ?? `node #${r.node}`} over the tunnel, ` : "";
        const tapPort = k === 0 && r.port >= 0 ? r.port : written && r.out >= 0 ? r.out : -1;
        const translated = prev && r.stage === "conntrack" ? translations.explain(prev.h, h, r.service) : undefined;
        const kernel = r.kernel ? kernelHandOver(r, h, n, written, k === 0) : undefined;
        const replaced = prev?.r.out === REPLY && r.out >= 0 ? `the ICMP error, made in the frame's place, goes back to port ${r.out}${n.ports.has(r.out) ? ` (${n.ports.get(r.out)})` : ""}` : undefined;
        hops.push({
          t: time(r) - t0, at: r.t, head: r.head, len: r.len, ...(tapPort >= 0 ? { tap: n.ports.get(tapPort) ?? `port ${tapPort}` } : {}), node: n.node, pipeline: r.pipeline, stage: k === 0 && r.stage === "tunnel-in" ? "read" : r.stage,
          what: kernel?.what ?? translated ?? replaced ?? (written ? `written to ${r.out >= 0 ? `port ${r.out}${n.ports.has(r.out) ? ` (${n.ports.get(r.out)})` : ""}` : "every port"}: the pod reads it` : fromTunnel + what(r, n, why)),
          ...(!prev || diff.length ? { headers: summary(h) } : {}), changed: diff, frame: r.frame, ...(fields ? { fields } : {}),
          ...(why ? { why } : {}), ...(kernel?.notes.length ? { notes: kernel.notes } : {}),
        });
        if (r.underlay && r.stage === "tunnel-out") {
          const d = underlayDatagram(r.underlay, r.head, r.len, { from: n.node, to: n.nodes[r.node] ?? `node #${r.node}` });
          hops.push({
            t: time(r) - t0, at: r.t, head: Buffer.from(d.bytes).toString("hex"), len: d.len, node: n.node, pipeline: "wire", stage: "underlay",
            what: `on the wire to ${n.nodes[r.node] ?? `node #${r.node}`}: ${d.summary}`, headers: d.summary, changed: [], frame: r.frame, fields: d.fields,
            datagram: { layers: d.layers },
          });
        }
      }
      prev = { r, h };
    });
  }
  return hops.sort((a, b) => a.t - b.t || a.node.localeCompare(b.node) || a.frame - b.frame);
}

/** A hop's bytes and their layers, for the byte view. */
function hopBytes(h: Hop): { bytes: Uint8Array; layers: ByteLayer[] } {
  const bytes = Uint8Array.from(Buffer.from(h.head, "hex"));
  return { bytes, layers: h.datagram?.layers ?? frameLayers(bytes) };
}

/**
 * The journey as the terminal shows it: a line per hop, the headers and changes indented below.
 * The byte view (bytes.ts) comes at the first hop; with `bytes`, also at each hop whose bytes
 * differ from its frame's hop before (and at each underlay datagram). `color`: in colours.
 */
export function formatJourney(hops: Hop[], opts: { bytes?: boolean; color?: boolean } = {}): string[] {
  const lines: string[] = [];
  const pad = "".padStart(36);
  const lastHead = new Map<string, string>();
  hops.forEach((h, k) => {
    lines.push(`${`+${h.t} µs`.padStart(10)}  ${h.node.padEnd(8)} ${h.stage.padEnd(14)} ${h.what}`);
    if (h.fields) for (const f of h.fields) lines.push(`${pad}${f}`);
    else if (h.headers) lines.push(`${pad}${h.headers}`);
    for (const c of h.changed) lines.push(`${pad}${c}`);
    for (const c of h.notes ?? []) lines.push(`${pad}${c}`);
    const key = `${h.node}/${h.frame}`;
    const changed = h.datagram !== undefined || lastHead.get(key) !== h.head;
    if (k === 0 || (opts.bytes && changed)) {
      const b = hopBytes(h);
      lines.push(...byteView(b.bytes, b.layers, opts.color === true, pad));
    }
    if (!h.datagram) lastHead.set(key, h.head);
  });
  return lines;
}

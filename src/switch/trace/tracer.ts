/**
 * The tracer: what `tapnet trace` sees of a packet inside a switch. It marks the frames that
 * match a trace filter as they enter a pipeline, then, after every stage of that pipeline,
 * records each marked frame as the stage left it: where it is going (`outs`), its port and
 * node, its length, and a copy of its first HEAD_BYTES bytes (the headers, virtio_net_hdr
 * first). A frame that nothing marked costs nothing: a pipeline asks the tracer only while a
 * filter is armed, and records only when a frame of the batch is marked (pipeline.ts).
 *
 * A filter matches IPv4 packets by protocol, addresses and ports, each 0 for any, one way or
 * both ways (the reply too: addresses and ports swapped). ICMP echo is matched by its
 * identifier in either direction (`aPort`; `bPort` is not used). Each filter marks at most
 * `count` frames and is then spent; a pipeline's later stages still record the frames already
 * marked. At most MAX_FILTERS filters are armed at once.
 *
 * A filter to a Service port (its `b` a ClusterIP in the service CIDR, `bPort` the port) also
 * marks the frames between `a` and the Service's endpoints, both ways when it goes both ways:
 * conntrack rewrites the ClusterIP to an endpoint on the first switch, and the far switch sees
 * only the endpoint's address (the current Services, from the switch's state, looked up only
 * while armed).
 *
 * A stage that drops or refuses a frame says why in the batch (Frames.why); each record keeps
 * it, and drain names it by its counter ("policy_denied_egress").
 *
 * Records go to a ring of RING_SIZE, allocated when the tracer is made (the first trace
 * command), never per packet. `drain()` (a datapath command, off the hot path) turns the records
 * since the last drain into plain objects, oldest first, and says how many were overwritten
 * before they were read; it adds what the journey needs to explain a hop and the switch knows
 * (the TraceRecord's optional fields): the underlay datagram's ends where a frame leaves for
 * the tunnel or comes from it, the masquerade rule's inputs where a frame goes to the node's
 * kernel, the Service a translated frame is for.
 *
 * Times: the ring keeps this thread's performance.now(), in µs. drain gives each record its
 * wall-clock time (`t`: performance.timeOrigin + now, which every process sets for itself, so
 * two switches' differ by a little), and on Node its CLOCK_MONOTONIC time (`mono`, which
 * performance.now() counts on, offset by process.hrtime(), the same clock read directly) with
 * the machine's boot id: the switches of one machine share that clock, and the journey orders
 * their records by it when the boot ids match.
 */
import { FlowKeyView, FlowKind } from "../../wire/flow-key.ts";
import { get16 } from "../../wire/bytes.ts";
import { Drop } from "../../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../../wire/ethernet.ts";
import { formatIpv4, PROTO_ICMP } from "../../wire/ipv4.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { DROP_NAMES } from "../counters.ts";
import { DONE, TUNNEL, type Frames } from "../frames.ts";
import type { SwitchState } from "../state.ts";
import type { ServiceTable } from "../conntrack/services.ts";
import { readFileSync } from "node:fs";
import { runtimeName } from "../../io/runtime.ts";

export const MAX_FILTERS = 4;
export const RING_SIZE = 2048;
/** Bytes of each frame kept per record: virtio_net_hdr, Ethernet, IPv4 with options, TCP with options. */
export const HEAD_BYTES = 160;
/** The most frames one filter may mark. */
export const MAX_TRACE_COUNT = 1000;

export interface TraceFilter {
  /** Names the filter's records. */
  id: number;
  /** IP protocol (1, 6, 17), 0 for any. */
  proto: number;
  /** Source and destination addresses (unsigned 32-bit), 0 for any. */
  a: number;
  b: number;
  /** Source and destination ports (TCP, UDP), or aPort the ICMP echo identifier; 0 for any. */
  aPort: number;
  bPort: number;
  /** The reply direction too (b to a). */
  bothWays: boolean;
  /** How many frames it marks, 1 to MAX_TRACE_COUNT. */
  count: number;
  /**
   * The trace it belongs to (0 if left out): the frames its filters mark are numbered 1, 2, ...
   * per group, so that one trace's numbers run on one by one while another's are armed too.
   */
  group?: number;
}

export interface TraceRecord {
  /** The filter that marked the frame. */
  filter: number;
  /** Which marked frame of this switch this is (1, 2, ...): the same through every stage. */
  frame: number;
  /** Wall-clock microseconds. */
  t: number;
  /** CLOCK_MONOTONIC microseconds, one clock for every process of the machine `boot` names (Node only). */
  mono?: number;
  boot?: string;
  pipeline: string;
  stage: string;
  /** The frame's in-port (-1: from the tunnel), its node (from the tunnel), and `outs` after the stage (frames.ts). */
  port: number;
  node: number;
  out: number;
  len: number;
  /** The frame's first bytes after the stage, as hex. */
  head: string;
  /** The counter name of the reason a stage dropped or refused the frame ("no_route"), from that stage on. */
  why?: string;
  /** Where the frame leaves for the tunnel (tunnel-out) or comes from it (the receive pipeline's first stage): the datagram's ends. */
  underlay?: UnderlayInfo;
  /** Where the frame is written to the gateway port (tapnet0) or read from it: what the node's kernel's rules are made of. */
  kernel?: KernelInfo;
  /** At conntrack, for a filter to a Service port: the Service's port ("namespace/name:port"). */
  service?: string;
}

/** The underlay datagram a frame travels in: the switches' sockets' addresses, the backend and its settings. */
export interface UnderlayInfo {
  backend: string;
  src: string;
  dst: string;
  /** The UDP port, the same on every node. */
  port: number;
  vni: number;
  /** The tapnet backend seals every datagram (the cluster has a secret). */
  sealed: boolean;
  /** The largest UDP payload sent. */
  datagramSize: number;
  /** The sending and receiving nodes' VTEP MACs (the inner Ethernet header VXLAN carries). */
  vtepSrc: string;
  vtepDst: string;
}

/** What the node's kernel does with what the switch hands it: tapnet's masquerade rule's inputs (node/host-net.ts). */
export interface KernelInfo {
  /** The cluster CIDR, and the node addresses (sorted) the rule leaves alone. */
  cluster: string;
  nodes: string[];
  /** The gateway address (tapnet0's), and this node's underlay address. */
  gateway: string;
  self: string;
}

/** What the tracer may read of the switch: its state (the cluster, the Services) and the tunnel's UDP port. */
export interface TraceContext {
  state: SwitchState;
  tunnelPort?: number;
}

/** Why a filter is refused: the field and the rule, or undefined if it is good. */
export function checkFilter(f: TraceFilter): string | undefined {
  const u = (v: number, max: number) => Number.isInteger(v) && v >= 0 && v <= max;
  if (!u(f.id, 0x7fffffff)) return `id must be a whole number from 0 to 2147483647, not ${f.id}`;
  if (!u(f.proto, 255)) return `proto must be 0 to 255, not ${f.proto}`;
  if (!u(f.a, 0xffffffff) || !u(f.b, 0xffffffff)) return "addresses must be unsigned 32-bit numbers";
  if (!u(f.aPort, 65535) || !u(f.bPort, 65535)) return "ports must be 0 to 65535";
  if (!(Number.isInteger(f.count) && f.count >= 1 && f.count <= MAX_TRACE_COUNT)) return `count must be 1 to ${MAX_TRACE_COUNT}, not ${f.count}`;
  if (f.group !== undefined && !u(f.group, 0x7fffffff)) return `group must be a whole number from 0 to 2147483647, not ${f.group}`;
  return undefined;
}

export class Tracer {
  /** Filters with frames left to mark. */
  armed = 0;
  /** The armed filters (copies), and how many frames each may still mark. */
  private filters: TraceFilter[] = [];
  private readonly left = new Int32Array(MAX_FILTERS);
  private readonly key = new FlowKeyView();
  /** The frames each group has marked; `counterOf[slot]`: the counter of the slot's group. */
  private readonly marked = new Int32Array(MAX_FILTERS);
  private readonly counterOf = new Int32Array(MAX_FILTERS);

  // The ring.
  private readonly rFilter = new Int32Array(RING_SIZE);
  private readonly rFrame = new Int32Array(RING_SIZE);
  private readonly rT = new Float64Array(RING_SIZE);
  private readonly rWhere = new Int32Array(RING_SIZE);
  private readonly rPort = new Int32Array(RING_SIZE);
  private readonly rNode = new Int32Array(RING_SIZE);
  private readonly rOut = new Int32Array(RING_SIZE);
  private readonly rLen = new Int32Array(RING_SIZE);
  private readonly rHeadLen = new Int32Array(RING_SIZE);
  private readonly rWhy = new Uint16Array(RING_SIZE);
  private readonly rHead = new Uint8Array(RING_SIZE * HEAD_BYTES);
  /** Records written in all, and read by drain. */
  private written = 0;
  private read = 0;

  constructor(private readonly ctx?: TraceContext) {}

  /** The switch's current Services, if it has any. */
  private services(): ServiceTable | undefined {
    return this.ctx?.state.tracker?.services;
  }

  /**
   * Arms `filters` (checked: checkFilter), replacing those armed; an empty list disarms. A
   * filter whose id was armed already keeps the frames it had left, and a group armed already
   * its numbering: re-arming the others' filters beside a new trace's changes nothing for them.
   */
  set(filters: TraceFilter[]): void {
    if (filters.length > MAX_FILTERS) throw new RangeError(`at most ${MAX_FILTERS} trace filters at once, not ${filters.length}`);
    for (const f of filters) {
      const bad = checkFilter(f);
      if (bad) throw new RangeError(`trace filter ${f.id}: ${bad}`);
    }
    const leftOf = new Map(this.filters.map((f, k) => [f.id, this.left[k]]));
    const markedBy = new Map(this.filters.map((f, k) => [f.group ?? 0, this.marked[this.counterOf[k]]]));
    this.filters = filters.map((f) => ({ ...f }));
    this.left.fill(0);
    this.marked.fill(0);
    this.armed = 0;
    filters.forEach((f, k) => {
      this.left[k] = leftOf.get(f.id) ?? f.count;
      if (this.left[k] > 0) this.armed++;
      const first = filters.findIndex((g) => (g.group ?? 0) === (f.group ?? 0));
      this.counterOf[k] = first;
      if (first === k) this.marked[k] = markedBy.get(f.group ?? 0) ?? 0;
    });
  }

  /**
   * Marks the batch's IPv4 frames that an armed filter matches. In the ports pipeline
   * (`received` false) the entries from the tunnel are datagrams not yet taken apart: left out;
   * in the receive pipeline every entry is a frame from the tunnel.
   */
  mark(f: Frames, received: boolean): void {
    const k = this.key;
    for (let i = 0; i < f.count; i++) {
      if (f.marks[i] !== 0 || (!received && f.ports[i] === TUNNEL)) continue;
      const buf = f.bufs[i];
      const o = f.offs[i] + ETH_OFF;
      const held = f.headLen(i) - ETH_OFF;
      if (held < ETH_HEADER_LEN + 20 || get16(buf, o + ETH_TYPE) !== ETHERTYPE_IPV4) continue;
      if (k.parse(buf, o + ETH_HEADER_LEN, f.lens[i] - ETH_OFF - ETH_HEADER_LEN, held - ETH_HEADER_LEN) !== Drop.None) continue;
      const slot = this.match(k);
      if (slot < 0) continue;
      f.marks[i] = slot + 1;
      f.why[i] = 0;
      f.marked++;
      f.traceNo[i] = ++this.marked[this.counterOf[slot]];
      if (--this.left[slot] === 0) this.armed--;
    }
  }

  private match(k: FlowKeyView): number {
    const icmpEcho = k.proto === PROTO_ICMP && k.kind === FlowKind.Plain;
    const svc = this.services();
    for (let s = 0; s < this.filters.length; s++) {
      if (this.left[s] <= 0) continue;
      const { proto: p, a, b, aPort: ap, bPort: bp, bothWays } = this.filters[s];
      if (p !== 0 && p !== k.proto) continue;
      if (icmpEcho) {
        if (ap !== 0 && k.sport !== ap) continue;
        if (((a === 0 || k.src === a) && (b === 0 || k.dst === b)) || (bothWays && (b === 0 || k.src === b) && (a === 0 || k.dst === a))) return s;
        continue;
      }
      // To a Service port: its endpoints stand for it (see the top of this file).
      const service = svc !== undefined && b !== 0 && bp !== 0 && svc.inServiceCidr(b);
      const toB = ((b === 0 || k.dst === b) && (bp === 0 || k.dport === bp)) || (service && svc.hasEndpoint(k.proto, b, bp, k.dst, k.dport));
      const fwd = toB && (a === 0 || k.src === a) && (ap === 0 || k.sport === ap);
      if (fwd) return s;
      if (!bothWays || !((a === 0 || k.dst === a) && (ap === 0 || k.dport === ap))) continue;
      if (((b === 0 || k.src === b) && (bp === 0 || k.sport === bp)) || (service && svc.hasEndpoint(k.proto, b, bp, k.src, k.sport))) return s;
    }
    return -1;
  }

  /** Records every marked frame of the batch as stage `stage` of pipeline `pipeline` left it (`where` = pipeline * 256 + stage). */
  record(f: Frames, where: number): void {
    const t = performance.now() * 1000;
    for (let i = 0; i < f.count; i++) {
      const m = f.marks[i];
      if (m === 0) continue;
      const r = this.written++ % RING_SIZE;
      this.rFilter[r] = this.filters[m - 1].id;
      this.rFrame[r] = f.traceNo[i];
      this.rT[r] = t;
      this.rWhere[r] = where;
      this.rPort[r] = f.ports[i];
      this.rNode[r] = f.nodes[i];
      this.rOut[r] = f.outs[i];
      this.rLen[r] = f.lens[i];
      this.rWhy[r] = f.why[i];
      const n = Math.min(HEAD_BYTES, f.headLen(i));
      const src = f.bufs[i];
      const off = f.offs[i];
      const base = r * HEAD_BYTES;
      for (let j = 0; j < n; j++) this.rHead[base + j] = src[off + j];
      this.rHeadLen[r] = n;
    }
  }

  /**
   * The records since the last drain, oldest first, as plain objects; `names(where)` gives a
   * record's pipeline and stage names. `lost`: records overwritten before they were read.
   */
  drain(names: (where: number) => { pipeline: string; stage: string }): { records: TraceRecord[]; lost: number } {
    const lost = Math.max(0, this.written - this.read - RING_SIZE);
    const wall = performance.timeOrigin * 1000;
    const mono = monoOffset();
    const from = this.read + lost;
    const records: TraceRecord[] = [];
    for (let w = from; w < this.written; w++) {
      const r = w % RING_SIZE;
      const head = this.rHead.subarray(r * HEAD_BYTES, r * HEAD_BYTES + this.rHeadLen[r]);
      const rec: TraceRecord = {
        filter: this.rFilter[r], frame: this.rFrame[r], t: Math.round(this.rT[r] + wall), ...(mono ? { mono: Math.round(this.rT[r] + mono.offset), boot: mono.boot } : {}), ...names(this.rWhere[r]),
        port: this.rPort[r], node: this.rNode[r], out: this.rOut[r], len: this.rLen[r], head: Buffer.from(head).toString("hex"),
      };
      if (this.rWhy[r] !== 0) rec.why = DROP_NAMES[this.rWhy[r]] ?? `reason ${this.rWhy[r]}`;
      this.explain(rec, this.rWhere[r]);
      records.push(rec);
    }
    this.read = this.written;
    return { records, lost };
  }

  /** Adds to `rec` what the switch knows that explains it: see the top of this file. */
  private explain(rec: TraceRecord, where: number): void {
    const cl = this.ctx?.state.cluster;
    if (!cl) return;
    const cfg = cl.cfg;
    const first = (where & 0xff) === 0;
    const sent = rec.stage === "tunnel-out" && rec.out === DONE && rec.why === undefined && rec.node >= 0;
    const received = first && where >> 8 === 1 && rec.port === TUNNEL && rec.node >= 0;
    if ((sent || received) && rec.node < cfg.nodes.length) {
      const self = cfg.nodes[cfg.self];
      const peer = cfg.nodes[rec.node];
      const [from, to] = sent ? [self, peer] : [peer, self];
      rec.underlay = {
        backend: cfg.backend.type, src: formatIpv4(from.address), dst: formatIpv4(to.address), port: this.ctx?.tunnelPort ?? 0,
        vni: cfg.backend.vni, sealed: cfg.backend.secret !== undefined, datagramSize: cfg.datagramSize,
        vtepSrc: from.vtepMac.toLowerCase(), vtepDst: to.vtepMac.toLowerCase(),
      };
    }
    const gw = cl.gatewayPort;
    if (gw >= 0 && ((rec.stage === "port-out" && rec.out === gw) || (first && where >> 8 === 0 && rec.port === gw))) {
      rec.kernel = {
        cluster: `${formatIpv4(cfg.clusterNetwork)}/${cfg.clusterPrefix}`,
        nodes: [...cfg.nodes].sort((x, y) => x.address - y.address).map((n) => formatIpv4(n.address)),
        gateway: formatIpv4(cfg.gatewayIp), self: formatIpv4(cfg.nodes[cfg.self].address),
      };
    }
    const svc = this.services();
    const f = this.filters.find((x) => x.id === rec.filter);
    if (rec.stage === "conntrack" && svc && f && f.b !== 0 && f.bPort !== 0 && svc.inServiceCidr(f.b)) {
      const row = svc.lookup(f.proto === 0 ? 6 : f.proto, f.b, f.bPort);
      if (row >= 0) rec.service = svc.names[row];
    }
  }
}

let bootId: string | undefined | null = null;

/** What to add to performance.now() (µs) for CLOCK_MONOTONIC µs, and the boot id; undefined where that clock cannot be read. */
function monoOffset(): { offset: number; boot: string } | undefined {
  if (!runtimeName.startsWith("node")) return undefined; // Node's hrtime is CLOCK_MONOTONIC; Deno's is not documented so
  if (bootId === null) {
    try {
      bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      bootId = undefined;
    }
  }
  if (bootId === undefined) return undefined;
  return { offset: Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000, boot: bootId };
}

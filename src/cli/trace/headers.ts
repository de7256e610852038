/**
 * The headers of a traced frame as `tapnet trace` prints them: the first bytes a switch recorded
 * (switch/trace/tracer.ts: virtio_net_hdr, Ethernet, IPv4, and TCP, UDP or ICMP) read into named
 * fields, a one-line summary of them, and what changed from one hop to the next, each change in
 * a short phrase ("TTL 64 → 63"). Plain objects: this runs once per hop, off the datapath.
 */
import { formatIpv4 } from "../../wire/ipv4.ts";

export interface Headers {
  vnet?: { flags: number; gsoType: number; gsoSize: number; hdrLen: number };
  eth?: { dst: string; src: string; type: number };
  ip?: { src: string; dst: string; ttl: number; proto: number; id: number; totalLen: number; df: boolean };
  icmp?: { type: number; code: number; id: number; seq: number };
  tcp?: { sport: number; dport: number; flags: number; seq: number; ack: number };
  udp?: { sport: number; dport: number; len: number };
}

const VNET_LEN = 10;
const hex2 = (n: number) => n.toString(16).padStart(2, "0");
const mac = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), hex2).join(":");
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** The fields of a recorded head (hex), as far as its bytes go; a layer cut short is left out. */
export function readHeaders(headHex: string): Headers {
  const b = Uint8Array.from(Buffer.from(headHex, "hex"));
  const h: Headers = {};
  if (b.length < VNET_LEN) return h;
  h.vnet = { flags: b[0], gsoType: b[1], hdrLen: b[2] | (b[3] << 8), gsoSize: b[4] | (b[5] << 8) };
  const e = VNET_LEN;
  if (b.length < e + 14) return h;
  h.eth = { dst: mac(b, e), src: mac(b, e + 6), type: u16(b, e + 12) };
  const i = e + 14;
  if (h.eth.type !== 0x0800 || b.length < i + 20) return h;
  const ihl = (b[i] & 0x0f) * 4;
  h.ip = {
    src: formatIpv4(u32(b, i + 12)), dst: formatIpv4(u32(b, i + 16)), ttl: b[i + 8], proto: b[i + 9],
    id: u16(b, i + 4), totalLen: u16(b, i + 2), df: (b[i + 6] & 0x40) !== 0,
  };
  const l = i + ihl;
  if (h.ip.proto === 1 && b.length >= l + 8) h.icmp = { type: b[l], code: b[l + 1], id: u16(b, l + 4), seq: u16(b, l + 6) };
  if (h.ip.proto === 6 && b.length >= l + 14) h.tcp = { sport: u16(b, l), dport: u16(b, l + 2), seq: u32(b, l + 4), ack: u32(b, l + 8), flags: b[l + 13] };
  if (h.ip.proto === 17 && b.length >= l + 8) h.udp = { sport: u16(b, l), dport: u16(b, l + 2), len: u16(b, l + 4) };
  return h;
}

const ICMP_TYPES: Record<number, string> = { 0: "echo reply", 3: "destination unreachable", 8: "echo request", 11: "time exceeded" };
const TCP_FLAGS: [number, string][] = [[0x02, "SYN"], [0x10, "ACK"], [0x01, "FIN"], [0x04, "RST"], [0x08, "PSH"]];

export function tcpFlags(f: number): string {
  return TCP_FLAGS.filter(([bit]) => f & bit).map(([, n]) => n).join(",") || "none";
}

/** One line: the inner packet as a person names it ("10.244.1.2 → 10.244.2.3 ICMP echo request id 7 seq 1, TTL 64"). */
export function summary(h: Headers): string {
  if (!h.eth) return "(too short to read)";
  if (!h.ip) return `Ethernet ${h.eth.src} → ${h.eth.dst}, type 0x${h.eth.type.toString(16).padStart(4, "0")}${h.eth.type === 0x0806 ? " (ARP)" : ""}`;
  const { ip } = h;
  let l4 = `protocol ${ip.proto}`;
  if (h.icmp) l4 = `ICMP ${ICMP_TYPES[h.icmp.type] ?? `type ${h.icmp.type}`}${h.icmp.type === 0 || h.icmp.type === 8 ? ` id ${h.icmp.id} seq ${h.icmp.seq}` : ` code ${h.icmp.code}`}`;
  if (h.tcp) l4 = `TCP ${h.tcp.sport} → ${h.tcp.dport} [${tcpFlags(h.tcp.flags)}]`;
  if (h.udp) l4 = `UDP ${h.udp.sport} → ${h.udp.dport}`;
  const gso = h.vnet && h.vnet.gsoType !== 0 ? `, a ${ip.totalLen} B TSO super-frame (segments of ${h.vnet.gsoSize})` : "";
  return `${ip.src} → ${ip.dst} ${l4}, TTL ${ip.ttl}${gso}`;
}

/** What changed between two hops' headers, each in a short phrase; [] if nothing. */
export function changes(a: Headers, b: Headers, names: MacNames = new Map()): string[] {
  const out: string[] = [];
  if (a.ip && b.ip && (a.ip.proto !== b.ip.proto || (a.icmp && b.icmp && a.icmp.type !== b.icmp.type))) {
    return [`replaced: the switch answers with ${b.icmp ? `an ICMP ${ICMP_TYPES[b.icmp.type] ?? `type ${b.icmp.type}`}` : "a packet of its own"} from ${b.ip.src}, quoting the packet`];
  }
  if (a.eth && b.eth) {
    if (a.eth.src !== b.eth.src) out.push(`source MAC ${named(a.eth.src, names)} → ${named(b.eth.src, names)}`);
    if (a.eth.dst !== b.eth.dst) out.push(`destination MAC ${named(a.eth.dst, names)} → ${named(b.eth.dst, names)}`);
  }
  if (a.ip && b.ip) {
    if (a.ip.ttl !== b.ip.ttl) out.push(`TTL ${a.ip.ttl} → ${b.ip.ttl} (a router's hop)`);
    if (a.ip.src !== b.ip.src) out.push(`source ${a.ip.src} → ${b.ip.src} (translated)`);
    if (a.ip.dst !== b.ip.dst) out.push(`destination ${a.ip.dst} → ${b.ip.dst} (translated)`);
  }
  const ports = (h: Headers) => h.tcp ?? h.udp;
  const pa = ports(a), pb = ports(b);
  if (pa && pb && (pa.sport !== pb.sport || pa.dport !== pb.dport)) out.push(`ports ${pa.sport} → ${pa.dport} become ${pb.sport} → ${pb.dport} (translated)`);
  if (a.vnet && b.vnet && a.vnet.flags !== b.vnet.flags) out.push(`virtio_net_hdr flags 0x${hex2(a.vnet.flags)} → 0x${hex2(b.vnet.flags)}${b.vnet.flags & 2 ? " (checksum already checked: DATA_VALID)" : ""}`);
  return out;
}

/** Who a MAC belongs to, when the trace knows ("node1-pod1", "node1's gateway tapnet0"). */
export type MacNames = Map<string, string>;

const named = (m: string, names: MacNames) => (names.has(m) ? `${m} (${names.get(m)})` : m);

const VNET_GSO: Record<number, string> = { 0: "none", 1: "TCPv4", 3: "UDP", 4: "TCPv6" };

/**
 * The headers layer by layer, each field named and what it means here, for a frame's first hop
 * on a node: `names` names the MACs the trace knows.
 */
export function layers(h: Headers, names: MacNames = new Map()): string[] {
  const out: string[] = [];
  if (h.vnet) {
    const v = h.vnet;
    const csum = v.flags & 1 ? "checksum left partial (NEEDS_CSUM): whoever sends it on fills it in" : v.flags & 2 ? "checksum already checked (DATA_VALID)" : "no checksum work";
    const gso = v.gsoType === 0 ? "one packet" : `a ${VNET_GSO[v.gsoType] ?? `type ${v.gsoType}`} super-frame, cut into ${v.gsoSize} B segments only if it must be`;
    out.push(`virtio_net_hdr  flags 0x${hex2(v.flags)}, gso ${VNET_GSO[v.gsoType] ?? v.gsoType}: the TAP's offload header; ${csum}; ${gso}`);
  }
  if (h.eth) out.push(`Ethernet        ${named(h.eth.src, names)} → ${named(h.eth.dst, names)}, type 0x${h.eth.type.toString(16).padStart(4, "0")}${h.eth.type === 0x0800 ? " (IPv4)" : ""}`);
  if (h.ip) {
    const ip = h.ip;
    out.push(`IPv4            ${ip.src} → ${ip.dst}, TTL ${ip.ttl} (each router takes one), id ${ip.id}, ${ip.totalLen} B${ip.df ? ", DF (no fragmenting: too big means an ICMP error back)" : ""}`);
  }
  if (h.icmp) out.push(`ICMP            ${ICMP_TYPES[h.icmp.type] ?? `type ${h.icmp.type}`}${h.icmp.type === 0 || h.icmp.type === 8 ? `, id ${h.icmp.id} (ping's own, the same in the reply), seq ${h.icmp.seq}` : `, code ${h.icmp.code}`}`);
  if (h.tcp) out.push(`TCP             ${h.tcp.sport} → ${h.tcp.dport} [${tcpFlags(h.tcp.flags)}], seq ${h.tcp.seq}, ack ${h.tcp.ack}`);
  if (h.udp) out.push(`UDP             ${h.udp.sport} → ${h.udp.dport}, ${h.udp.len} B`);
  return out;
}

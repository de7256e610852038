/**
 * The switch's counters, in a SharedArrayBuffer: the datapath thread adds to them, the control
 * thread reads them whenever it likes, and nothing is sent between the two per packet.
 * One row per port, then one row for the switch as a whole. Float64 holds exact integers up
 * to 2^53, and aligned 8-byte stores are not torn on x86-64.
 */
import { DROP_NAMES, DROP_REASON_COUNT } from "../wire/drop.ts";

export const PortCounter = { RxFrames: 0, RxBytes: 1, TxFrames: 2, TxBytes: 3, RxFlooded: 4 } as const;
const PORT_BASE_NAMES = ["rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_flooded"];
/** Drop counters follow the base ones, one per DropReason, counted on the port the frame came in on. */
export const DROP_BASE = PORT_BASE_NAMES.length;
export const PORT_COUNTERS = DROP_BASE + DROP_REASON_COUNT;

export const SwitchCounter = {
  FdbLearned: 0, FdbMoved: 1, FdbFull: 2, FdbAged: 3, UnknownUnicast: 4, Broadcast: 5, Multicast: 6,
  /** Packets routed into the tunnel, and delivered from it. */
  Routed: 7, Delivered: 8,
  IcmpSent: 9, ArpReplies: 10, ArpRequests: 11,
  /** Inner checksums from the tunnel left partial by the sender's kernel, completed here. */
  InnerCsumCompleted: 12,
  /** TCP segments from the tunnel (udp, vxlan) written to pods merged into super-frames. */
  Coalesced: 13,
} as const;
const SWITCH_NAMES = [
  "fdb_learned", "fdb_moved", "fdb_full", "fdb_aged", "unknown_unicast", "broadcast", "multicast",
  "routed", "delivered", "icmp_sent", "arp_replies", "arp_requests", "inner_csum_completed", "coalesced",
];

export class Counters {
  readonly v: Float64Array;
  readonly switchBase: number;

  constructor(readonly maxPorts: number, shared?: SharedArrayBuffer) {
    const n = maxPorts * PORT_COUNTERS + SWITCH_NAMES.length;
    this.v = new Float64Array(shared ?? new SharedArrayBuffer(n * 8));
    if (this.v.length !== n) throw new RangeError("counter buffer does not match the port count");
    this.switchBase = maxPorts * PORT_COUNTERS;
  }

  get buffer(): SharedArrayBuffer {
    return this.v.buffer as SharedArrayBuffer;
  }

  port(port: number, counter: number): number {
    return this.v[port * PORT_COUNTERS + counter];
  }

  drop(port: number, reason: number): void {
    this.v[port * PORT_COUNTERS + DROP_BASE + reason]++;
  }

  sw(counter: number): number {
    return this.v[this.switchBase + counter];
  }

  clearPort(port: number): void {
    this.v.fill(0, port * PORT_COUNTERS, (port + 1) * PORT_COUNTERS);
  }

  /** A port's non-zero counters by name; drops appear as drop_<reason>. */
  portSnapshot(port: number): Record<string, number> {
    const out: Record<string, number> = {};
    const base = port * PORT_COUNTERS;
    PORT_BASE_NAMES.forEach((name, i) => { out[name] = this.v[base + i]; });
    for (let r = 1; r < DROP_REASON_COUNT; r++) {
      const n = this.v[base + DROP_BASE + r];
      if (n) out[`drop_${DROP_NAMES[r]}`] = n;
    }
    return out;
  }

  switchSnapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    SWITCH_NAMES.forEach((name, i) => { out[name] = this.v[this.switchBase + i]; });
    return out;
  }
}

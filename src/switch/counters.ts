/**
 * The switch's counters, in a SharedArrayBuffer: the datapath thread adds to them, the control
 * thread reads them whenever it likes, and nothing is sent between the two per packet.
 * One row per port, then one row for the switch as a whole. Float64 holds exact integers up
 * to 2^53, and aligned 8-byte stores are not torn on x86-64.
 */
import { counterNames, Drop, numberAfter, numbered } from "../wire/drop.ts";
import { TunnelDrop } from "../tunnel/drops.ts";
import { SwitchDrop } from "./drops.ts";

export const PortCounter = numbered(0, ["RxFrames", "RxBytes", "TxFrames", "TxBytes", "RxFlooded"]);
const PORT_BASE_NAMES = counterNames(PortCounter);

/** Every layer's drop reasons in the order of their numbers: wire's from 0, the tunnel's, the switch's. */
export const DROP_TABLES = [Drop, TunnelDrop, SwitchDrop] as const;
/** The counter name of each drop reason, at its number: "ipv4_bad_checksum" at Drop.Ipv4BadChecksum. */
export const DROP_NAMES: readonly string[] = DROP_TABLES.flatMap(counterNames);
export const DROP_REASON_COUNT = DROP_NAMES.length;
/** Drop counters follow the base ones, one per reason, counted on the port the frame came in on. */
export const DROP_BASE = numberAfter(PortCounter);
export const PORT_COUNTERS = DROP_BASE + DROP_REASON_COUNT;

export const SwitchCounter = numbered(0, [
  "FdbLearned", "FdbMoved", "FdbFull", "FdbAged", "UnknownUnicast", "Broadcast", "Multicast",
  /** Packets routed into the tunnel, and delivered from it. */
  "Routed", "Delivered",
  "IcmpSent", "ArpReplies", "ArpRequests",
  /** Inner checksums from the tunnel left partial by the sender's kernel, completed here. */
  "InnerCsumCompleted",
  /** TCP segments from the tunnel (udp, vxlan) written to pods merged into super-frames. */
  "Coalesced",
  /** Connection tracking: flows made, expired, removed by a change (a UDP flow to an endpoint gone), cut by a policy change; live now. */
  "FlowsCreated", "FlowsExpired", "FlowsFlushed", "FlowsCut", "FlowsActive",
  /** Packets whose addresses or ports were translated (Service DNAT and its replies, hairpin and NodePort SNAT). */
  "Translated",
  /** IPv4 packets not tracked: fragments after the first, ICMP errors about no known flow. */
  "Untracked",
]);
const SWITCH_NAMES = counterNames(SwitchCounter);

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

/**
 * The learning bridge's decision for one frame (IEEE 802.1D, without spanning tree: a switch's
 * ports are pods and the node, so there are no loops). It learns the source MAC's port, then
 * picks where the frame goes:
 *   - broadcast, multicast, and unicast to a MAC not in the FDB: flooded to every other port;
 *   - unicast to a known MAC: that port, or dropped if it is the port the frame came in on;
 *   - too short for an Ethernet header, or from a group source address: dropped and counted.
 * As a stage it decides every frame from a TAP port that no stage before it took (the
 * routing stages take what leaves the node); port out acts on the answer.
 */
import { Drop } from "../../wire/drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC } from "../../wire/ethernet.ts";
import { isGroupMac, macHi, macLo } from "../../wire/mac.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchDrop } from "../drops.ts";
import { Counters, PORT_COUNTERS, PortCounter, SwitchCounter } from "../counters.ts";
import { Fdb, Learn } from "../fdb.ts";
import { DONE, FLOOD, PENDING, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";

export { FLOOD };
/** `decide` returns a port number, FLOOD, or this. */
export const DROP = -100;

export class Bridge implements Stage {
  readonly name = "bridge";

  /** Why `decide` said DROP, the last time it did. */
  private reason = 0;

  constructor(readonly fdb: Fdb, readonly counters: Counters) {}

  run(f: Frames, now: number): void {
    const v = this.counters.v;
    for (let i = 0; i < f.count; i++) {
      const inPort = f.ports[i];
      if (inPort < 0 || f.outs[i] !== PENDING) continue;
      const out = this.decide(inPort, f.bufs[i], f.offs[i] + ETH_OFF, f.lens[i] - ETH_OFF, now);
      if (out === FLOOD) v[inPort * PORT_COUNTERS + PortCounter.RxFlooded]++;
      if (out === DROP) {
        f.outs[i] = DONE;
        f.why[i] = this.reason;
      } else f.outs[i] = out;
    }
  }

  /** The output for the Ethernet frame at `buf[off..off+len)` that came in on `inPort`. */
  decide(inPort: number, buf: Uint8Array, off: number, len: number, now: number): number {
    const c = this.counters;
    if (len < ETH_HEADER_LEN) {
      c.drop(inPort, Drop.EthRunt);
      this.reason = Drop.EthRunt;
      return DROP;
    }
    if (isGroupMac(buf, off + ETH_SRC)) {
      c.drop(inPort, SwitchDrop.EthBadSource);
      this.reason = SwitchDrop.EthBadSource;
      return DROP;
    }
    const learned = this.fdb.learn(macHi(buf, off + ETH_SRC), macLo(buf, off + ETH_SRC), inPort, now);
    if (learned !== Learn.Known) {
      if (learned === Learn.New) c.v[c.switchBase + SwitchCounter.FdbLearned]++;
      else if (learned === Learn.Moved) c.v[c.switchBase + SwitchCounter.FdbMoved]++;
      else c.v[c.switchBase + SwitchCounter.FdbFull]++;
    }
    if (isGroupMac(buf, off + ETH_DST)) {
      const bcast = buf[off] === 0xff && macHi(buf, off) === 0xffff && macLo(buf, off) === 0xffffffff;
      c.v[c.switchBase + (bcast ? SwitchCounter.Broadcast : SwitchCounter.Multicast)]++;
      return FLOOD;
    }
    const out = this.fdb.lookup(macHi(buf, off + ETH_DST), macLo(buf, off + ETH_DST), now);
    if (out < 0) {
      c.v[c.switchBase + SwitchCounter.UnknownUnicast]++;
      return FLOOD;
    }
    if (out === inPort) {
      c.drop(inPort, SwitchDrop.SamePort);
      this.reason = SwitchDrop.SamePort;
      return DROP;
    }
    return out;
  }
}

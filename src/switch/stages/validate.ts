/**
 * validate: the first stage a frame from a TAP port meets. Counts it in on its port, and drops
 * (counted) one too short to hold the virtio_net_hdr every TAP frame starts with. What lies
 * behind that header is each later stage's to check, as far as it reads.
 */
import { Drop } from "../../wire/drop.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { PORT_COUNTERS, PortCounter } from "../counters.ts";
import { DONE, PENDING, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";

export class Validate implements Stage {
  readonly name = "validate";

  constructor(private readonly state: SwitchState) {}

  run(f: Frames): void {
    const c = this.state.counters;
    const v = c.v;
    for (let i = 0; i < f.count; i++) {
      const port = f.ports[i];
      if (port < 0 || f.outs[i] !== PENDING) continue;
      const len = f.lens[i];
      v[port * PORT_COUNTERS + PortCounter.RxFrames]++;
      if (len < ETH_OFF) {
        c.drop(port, Drop.VnetHdrTruncated);
        f.outs[i] = DONE;
        f.why[i] = Drop.VnetHdrTruncated;
        continue;
      }
      v[port * PORT_COUNTERS + PortCounter.RxBytes] += len - ETH_OFF;
    }
  }
}

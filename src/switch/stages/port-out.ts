/**
 * port out: the last stage. Writes every frame that has a port to go to (or floods it to every
 * live port but the one it came in on), counting frames and bytes out on each port, and a
 * failed write (a full queue, a device gone) as tx_error on the port the frame came in on. A
 * frame for a port that was removed while it was in flight is dropped as no_port.
 */
import { type FrameTail } from "../../tunnel/contract.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { PORT_COUNTERS, PortCounter } from "../counters.ts";
import { SwitchDrop } from "../drops.ts";
import { FLOOD, TUNNEL, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";

/**
 * Where frames leave: a TAP port's device. `write` returns false when the port could not take
 * the frame. With a `tail` (count > 0), the frame's first tail.headLen bytes are at buf[off..]
 * and the rest in the tail's pieces.
 */
export interface PortWriter {
  write(port: number, buf: Uint8Array, off: number, len: number, tail: FrameTail | null): boolean;
}

export class PortOut implements Stage {
  readonly name = "port-out";

  constructor(private readonly state: SwitchState, private readonly writer: PortWriter) {}

  run(f: Frames): void {
    const ports = this.state.ports;
    for (let i = 0; i < f.count; i++) {
      const out = f.outs[i];
      if (out >= 0) {
        if (ports.has(out)) this.transmit(f, i, out);
        else {
          this.state.counters.drop(this.row(f.ports[i]), SwitchDrop.NoPort);
          f.why[i] = SwitchDrop.NoPort;
        }
      } else if (out === FLOOD) {
        const inPort = f.ports[i];
        for (let k = 0; k < ports.count; k++) if (ports.list[k] !== inPort) this.transmit(f, i, ports.list[k]);
      }
    }
  }

  /** The counters' row of an in-port: a TAP port's own, or the tunnel's. */
  private row(port: number): number {
    return port === TUNNEL ? this.state.tunnelRow : port;
  }

  private transmit(f: Frames, i: number, port: number): void {
    const tail = f.tails[i];
    const len = f.lens[i];
    const c = this.state.counters;
    if (this.writer.write(port, f.bufs[i], f.offs[i], len, tail.count > 0 ? tail : null)) {
      c.v[port * PORT_COUNTERS + PortCounter.TxFrames]++;
      c.v[port * PORT_COUNTERS + PortCounter.TxBytes] += len - ETH_OFF;
    } else {
      c.drop(this.row(f.ports[i]), SwitchDrop.TxError);
      f.why[i] = SwitchDrop.TxError;
    }
  }
}

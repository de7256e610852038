/**
 * The datapath's poll set: an array of `struct pollfd` (8 bytes each: int fd, short events,
 * short revents) over the control thread's wake-up eventfd, the tunnel socket and every live
 * TAP port, with the port each entry stands for (WAKE, TUNNEL for the socket). It is rebuilt between rounds, whenever a port comes or
 * goes, and read after each poll() for the entries that are ready. Nothing is allocated after
 * it is made.
 */
import { TUNNEL } from "./frames.ts";
import type { LivePorts } from "./state.ts";

export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
/** The entry of the eventfd the control thread writes to when it sends a command. */
export const WAKE = -2;

export class PollSet {
  /** What poll() reads and writes: `count` entries. */
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private readonly ports: Int32Array;
  count = 0;

  /** Room for `maxPorts` TAPs, the tunnel and the wake-up eventfd. */
  constructor(maxPorts: number) {
    this.buf = new Uint8Array((maxPorts + 2) * 8);
    this.view = new DataView(this.buf.buffer);
    this.ports = new Int32Array(maxPorts + 2);
  }

  /**
   * The wake-up eventfd first (if there is one), the tunnel's socket (if there is one), then
   * each live port's fd (`fds[port]`), to be read.
   */
  rebuild(tunnelFd: number | undefined, fds: Int32Array, live: LivePorts, wakeFd?: number): void {
    this.count = 0;
    if (wakeFd !== undefined) this.add(wakeFd, WAKE);
    if (tunnelFd !== undefined) this.add(tunnelFd, TUNNEL);
    for (let p = 0; p < fds.length; p++) {
      if (fds[p] >= 0 && live.has(p)) this.add(fds[p], p);
    }
  }

  private add(fd: number, port: number): void {
    const o = this.count * 8;
    this.view.setInt32(o, fd, true);
    this.view.setInt16(o + 4, POLLIN, true);
    this.view.setInt16(o + 6, 0, true);
    this.ports[this.count++] = port;
  }

  /** What poll() said of entry k. */
  revents(k: number): number {
    return this.view.getInt16(k * 8 + 6, true);
  }

  /** The port entry k stands for (TUNNEL: the tunnel's socket; WAKE: the wake-up eventfd). */
  port(k: number): number {
    return this.ports[k];
  }
}

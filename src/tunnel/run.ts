/**
 * How every backend sends: datagrams are gathered, as pieces, into a run for one peer, and a
 * run goes in one send. With UDP_SEGMENT the kernel cuts the send into datagrams of the run's
 * first datagram's size, so every datagram of a run but the last has that size: a shorter one
 * closes the run, and a longer one, or one for another peer, starts the next. A run holds at
 * most MAX_SEGMENTS_PER_SEND datagrams and MAX_UDP_PAYLOAD bytes. Without UDP_SEGMENT a run is
 * one datagram, sent as soon as it is complete.
 *
 * A batch of small frames to one peer (ACKs, requests) thus costs one send, and so does a 64 KB
 * frame cut into chunks (tapnet) or a super-frame cut into segments (udp, vxlan).
 */
import { MAX_SEGMENTS_PER_SEND, MAX_UDP_PAYLOAD, type GatherSink, type TunnelEvents } from "./contract.ts";

export class DatagramRun {
  private peer = -1;
  private size = 0;
  /** Datagrams in the run so far. */
  count = 0;
  private bytes = 0;
  private closed = false;

  constructor(readonly out: GatherSink, readonly segmenting: boolean, private readonly events: TunnelEvents) {}

  /** Makes way for a datagram of `bytes` to `peer`: sends the run first if it cannot join it. */
  open(peer: number, bytes: number): void {
    const joins = this.peer === peer && !this.closed && bytes <= this.size &&
      this.count < MAX_SEGMENTS_PER_SEND && this.bytes + bytes <= MAX_UDP_PAYLOAD;
    if (joins) return;
    this.flush();
    this.peer = peer;
    this.size = bytes;
  }

  /**
   * The datagram opened has had its pieces added to `out`: `bytes` long in all. Without
   * UDP_SEGMENT it is sent now: false if that failed (counted as one frame lost).
   */
  close(bytes: number): boolean {
    this.count++;
    this.bytes += bytes;
    if (bytes < this.size) this.closed = true;
    return this.segmenting || this.flush();
  }

  /**
   * One datagram of two pieces, `a`'s and then `b`'s (none when bLen is 0), to `peer`: false
   * if it was sent at once and that failed.
   */
  datagram(peer: number, a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): boolean {
    const bytes = aLen + bLen;
    this.open(peer, bytes);
    this.out.add(a, aOff, aLen);
    if (bLen > 0) this.out.add(b, bOff, bLen);
    return this.close(bytes);
  }

  /**
   * Sends the run; `frames` is how many frames a failure loses (by default one per datagram:
   * a run of single-datagram frames). Returns false if the send failed.
   */
  flush(frames = this.count): boolean {
    if (this.count === 0) return true;
    const ok = this.out.send(this.peer, this.size);
    if (ok) this.events.sent(this.count, this.bytes);
    else this.events.failed(frames);
    this.peer = -1;
    this.count = 0;
    this.bytes = 0;
    this.closed = false;
    return ok;
  }
}

/**
 * merge: for a backend that wants it (udp, vxlan: their senders cut every super-frame into
 * segments of the pods' MTU), consecutive TCP segments of one flow from one read of the tunnel
 * (a UDP_GRO run) become one TSO super-frame for the pod (coalesce.ts), written with one
 * writev, its payloads where they lie. A segment is offered only if deliver would take it
 * (IPv4 without options, its checksum and its TCP checksum right, not spoofed, for a known
 * local pod, TTL over 1) and it is plain data (ACK, maybe PSH). A lone segment goes on as it
 * was, marked DATA_VALID (its checksum was verified here); a merged run goes on as the run's
 * first entry, the others DONE. Only on when the pods' TAPs take super-frames (offloads).
 */
import { get16, get32 } from "../../wire/bytes.ts";
import { fold, pseudoHeaderSum, sumWords } from "../../wire/checksum.ts";
import { ETH_HEADER_LEN } from "../../wire/ethernet.ts";
import {
  IPV4_DST, IPV4_FLAGS_FRAG, IPV4_MIN_HEADER_LEN, IPV4_PROTOCOL, IPV4_SRC, IPV4_TOTAL_LEN, IPV4_TTL, IPV4_VER_IHL, PROTO_TCP,
} from "../../wire/ipv4.ts";
import { TCP_ACK_FLAG, TCP_DATA_OFF, TCP_FLAGS, TCP_MIN_HEADER_LEN, TCP_PSH } from "../../wire/tcp.ts";
import { VNET_F_DATA_VALID } from "../../wire/virtio.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { TcpCoalescer } from "../coalesce.ts";
import { SwitchCounter } from "../counters.ts";
import { DONE, PENDING, TUNNEL, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { Cluster, SwitchState } from "../state.ts";

const IP = ETH_OFF + ETH_HEADER_LEN;

export class Merge implements Stage {
  readonly name = "merge";
  private readonly co = new TcpCoalescer();
  private readonly cluster: Cluster;
  /** The run's first entry, and the read it came in. */
  private first = -1;
  private read = -1;
  // Where the payload of the entry `coalescable` last accepted lies.
  private payBuf: Uint8Array = new Uint8Array(0);
  private payOff = 0;

  constructor(private readonly state: SwitchState) {
    this.cluster = state.cluster!;
  }

  run(f: Frames): void {
    const co = this.co;
    for (let i = 0; i < f.count; i++) {
      if (f.outs[i] !== PENDING || f.ports[i] !== TUNNEL || !this.coalescable(f, i)) {
        if (co.count > 0) this.end(f);
        continue;
      }
      const h = f.bufs[i];
      const ip = f.offs[i] + IP;
      if (co.count > 0 && (f.reads[i] !== this.read || !co.fits(h, ip, this.payBuf))) this.end(f);
      if (co.count === 0) {
        this.first = i;
        this.read = f.reads[i];
        co.start(h, ip, this.payBuf, this.payOff);
      } else {
        co.add(h, ip, this.payOff);
        f.outs[i] = DONE;
      }
      if (co.closed) this.end(f);
    }
    if (co.count > 0) this.end(f);
  }

  /** Ends the run: a lone segment goes on as it is, more as one super-frame in the first's place. */
  private end(f: Frames): void {
    const co = this.co;
    const i = this.first;
    if (co.count === 1) {
      co.count = 0;
      f.bufs[i][f.offs[i]] = VNET_F_DATA_VALID;
      return;
    }
    const n = co.count;
    const head = f.heads[i];
    f.lens[i] = co.finish(head, f.tails[i]);
    f.bufs[i] = head;
    f.offs[i] = 0;
    const c = this.state.counters;
    c.v[c.switchBase + SwitchCounter.Coalesced] += n;
  }

  /**
   * Whether entry i is a TCP segment the coalescer may take (see the header); if so, where its
   * payload lies is left in payBuf/payOff.
   */
  private coalescable(f: Frames, i: number): boolean {
    const h = f.bufs[i];
    const ip = f.offs[i] + IP;
    const ipLen = f.lens[i] - IP;
    const peer = f.nodes[i];
    const cl = this.cluster;
    if (h[f.offs[i]] !== 0 || h[f.offs[i] + 1] !== 0) return false; // offloads asked already
    if (ipLen < 41 || h[ip + IPV4_VER_IHL] !== 0x45 || get16(h, ip + IPV4_TOTAL_LEN) !== ipLen || h[ip + IPV4_PROTOCOL] !== PROTO_TCP) return false;
    if ((get16(h, ip + IPV4_FLAGS_FRAG) & 0x3fff) !== 0 || h[ip + IPV4_TTL] <= 1) return false; // a fragment; TTL
    if (fold(sumWords(h, ip, IPV4_MIN_HEADER_LEN)) !== 0xffff) return false;
    const src = get32(h, ip + IPV4_SRC);
    const dst = get32(h, ip + IPV4_DST);
    if (!cl.map.speaksFor(peer, src)) return false;
    if (dst === cl.cfg.gatewayIp || !cl.neighbors.contains(dst) || !cl.neighbors.known(dst)) return false;
    const tcp = ip + IPV4_MIN_HEADER_LEN;
    const tcpLen = ipLen - IPV4_MIN_HEADER_LEN;
    const hl = (h[tcp + TCP_DATA_OFF] >> 4) * 4;
    const flags = h[tcp + TCP_FLAGS];
    // ACK and maybe PSH only
    if (hl < TCP_MIN_HEADER_LEN || hl >= tcpLen || (flags & TCP_ACK_FLAG) === 0 || (flags & ~(TCP_ACK_FLAG | TCP_PSH)) !== 0) return false;
    const tail = f.tails[i];
    const payLen = tcpLen - hl;
    if (tail.count === 0) {
      this.payBuf = h;
      this.payOff = tcp + hl;
    } else {
      // Headers in the head, the payload the tail's one piece (tunnel/inner.ts).
      if (tail.count !== 1 || tail.headLen !== tcp + hl - f.offs[i] || tail.lens[0] !== payLen) return false;
      this.payBuf = tail.buf;
      this.payOff = tail.offs[0];
    }
    const sum = sumWords(h, tcp, hl, pseudoHeaderSum(src, dst, PROTO_TCP, tcpLen));
    return fold(sumWords(this.payBuf, this.payOff, payLen, sum)) === 0xffff;
  }
}

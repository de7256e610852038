/**
 * The udp and vxlan backends' receive side: a datagram whose payload is an IPv4 packet (behind
 * an inner Ethernet header for vxlan) becomes a TAP frame, a virtio_net_hdr and an Ethernet
 * header in front of the packet. The first datagram of a read has room for them in front of
 * it (the backend's recvOff), so its frame is made in place. The others of a GRO run do not:
 * the datagram before lies there. Their frame is a head the sink lends (virtio_net_hdr,
 * Ethernet, the IPv4 and TCP/UDP headers, copied) and a tail: the payload, where it lies.
 * Everything the switch reads or writes per packet is in the head either way.
 */
import { ETH_HEADER_LEN, ETH_TYPE, ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { IPV4_MIN_HEADER_LEN, IPV4_PROTOCOL, IPV4_VER_IHL, PROTO_TCP } from "../wire/ipv4.ts";
import { TCP_DATA_OFF, TCP_MIN_HEADER_LEN } from "../wire/tcp.ts";
import { UDP_HEADER_LEN } from "../wire/udp.ts";
import { HEAD_ROOM, type FrameSink } from "./contract.ts";
import { ETH_OFF } from "../wire/virtio.ts";

/** Bytes of the IPv4 packet at buf[ip..ip+len) that go in a head: its IPv4 and L4 headers. */
export function headerSpan(buf: Uint8Array, ip: number, len: number): number {
  const max = Math.min(len, HEAD_ROOM - ETH_OFF - ETH_HEADER_LEN);
  if (len < IPV4_MIN_HEADER_LEN) return max;
  const ihl = (buf[ip + IPV4_VER_IHL] & 0x0f) * 4;
  const proto = buf[ip + IPV4_PROTOCOL];
  // TCP: its header, options too; UDP, ICMP and the rest: their first 8 bytes.
  const span = proto === PROTO_TCP && len >= ihl + TCP_MIN_HEADER_LEN ? ihl + (buf[ip + ihl + TCP_DATA_OFF] >> 4) * 4 : ihl + UDP_HEADER_LEN;
  return Math.min(max, Math.max(ihl, span));
}

/**
 * Hands `sink` the frame of the IPv4 packet at buf[ip..ip+ipLen) with an Ethernet header made
 * of `eth` (the 14 bytes at buf[eth..], vxlan's inner header) or, when `eth` < 0, of nothing but
 * the IPv4 EtherType (udp; the switch sets the MACs). In place when `inPlace` (there are
 * ETH_OFF + 14 bytes free before `ip`), else in a lent head.
 */
export function innerFrame(buf: Uint8Array, ip: number, ipLen: number, eth: number, inPlace: boolean, sink: FrameSink): void {
  const start = ip - ETH_HEADER_LEN - ETH_OFF;
  if (inPlace) {
    buf.fill(0, start, start + ETH_OFF);
    if (eth < 0) {
      buf[ip - ETH_HEADER_LEN + ETH_TYPE] = ETHERTYPE_IPV4 >> 8;
      buf[ip - ETH_HEADER_LEN + ETH_TYPE + 1] = ETHERTYPE_IPV4 & 0xff;
    }
    sink.frame(buf, start, ETH_OFF + ETH_HEADER_LEN + ipLen);
    return;
  }
  const { head, tail } = sink.lend();
  head.fill(0, 0, ETH_OFF);
  if (eth < 0) {
    head.fill(0, ETH_OFF, ETH_OFF + ETH_TYPE);
    head[ETH_OFF + ETH_TYPE] = ETHERTYPE_IPV4 >> 8;
    head[ETH_OFF + ETH_TYPE + 1] = ETHERTYPE_IPV4 & 0xff;
  } else {
    for (let i = 0; i < ETH_HEADER_LEN; i++) head[ETH_OFF + i] = buf[eth + i];
  }
  const h = headerSpan(buf, ip, ipLen);
  const o = ETH_OFF + ETH_HEADER_LEN;
  for (let i = 0; i < h; i++) head[o + i] = buf[ip + i]; // a loop: at most HEAD_ROOM bytes, no view made
  tail.buf = buf;
  tail.headLen = o + h;
  tail.count = 0;
  if (ipLen > h) {
    tail.offs[0] = ip + h;
    tail.lens[0] = ipLen - h;
    tail.count = 1;
  }
  sink.frame(head, 0, o + ipLen, tail);
}

/** A backend whose datagrams each hold one packet (udp, vxlan): what it does with one of them. */
export interface DatagramReader {
  /**
   * Takes the datagram of `len` bytes at buf[at..] from node `peer`; `first`: the first of its
   * read, with room in front of it for a frame's headers.
   */
  datagram(buf: Uint8Array, at: number, len: number, first: boolean, peer: number, sink: FrameSink): void;
}

/**
 * Hands each datagram of a read (`len` bytes at buf[off..], datagrams of `stride` bytes, the
 * last maybe shorter; 0: one datagram) to `reader`; returns how many there were.
 */
export function eachDatagram(reader: DatagramReader, buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number {
  const step = stride > 0 && stride < len ? stride : Math.max(len, 1);
  let n = 0;
  for (let p = 0; p < len || n === 0; p += step) {
    n++;
    reader.datagram(buf, off + p, Math.min(step, len - p), p === 0, peer, sink);
  }
  return n;
}

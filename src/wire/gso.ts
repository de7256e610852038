/**
 * Finishing what a TAP's offloads left undone, before a frame leaves for a tunnel. With
 * IFF_VNET_HDR and TSO/CSUM on, the kernel hands over (see virtio.ts) either a frame whose
 * TCP/UDP checksum is only partial (NEEDS_CSUM: `completeChecksum` finishes it in place), or a
 * TCP "super-frame" of up to 64 KB to be cut into segments of gso_size payload bytes, each a
 * complete frame with its own IPv4 length, id and checksum and its own TCP sequence number,
 * flags and checksum (`GsoSegmenter`, Linux's tcp_gso_segment done in userspace). UDP
 * super-datagrams (GSO_UDP_L4, USO) are cut the same way, each segment its own datagram.
 * IPv4 only: TCPv6 and UFO super-frames are counted drops.
 *
 * The segmenter writes each segment's headers into a caller's buffer behind `headroom` bytes
 * left for the tunnel headers. `segmentPieces` copies no payload: it hands over the headers and
 * where the segment's payload lies in the super-frame, and with a stride keeps every segment's
 * headers, for one gathered send of them all. `segment` copies the payload behind the headers
 * and emits whole segments, one after the other in the same place. The headers are parsed from
 * the packet itself (the virtio hdr_len is not trusted) and every checksum is recomputed from
 * scratch (for GSO, Linux leaves a pseudo-header sum without the length in the TCP field).
 *
 *   super-frame:  | eth (+tags) | ipv4 | tcp | payload ..................................... |
 *   segment k:    | headroom | eth | ipv4 (len, id+k, csum) | tcp (seq+k·mss, flags, csum) | ≤ mss |
 *   as pieces:    headers at headroom + k·stride in `out` | payload where it lies in the super-frame
 */
import { copyBytes, get16, get32, put16, put32 } from "./bytes.ts";
import { fold, pseudoHeaderSum, sumWords } from "./checksum.ts";
import { Drop, type DropReason } from "./drop.ts";
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetView } from "./ethernet.ts";
import {
  IPV4_CHECKSUM, IPV4_DST, IPV4_ID, IPV4_PROTOCOL, IPV4_SRC, IPV4_TOTAL_LEN, Ipv4View, PROTO_TCP, PROTO_UDP,
} from "./ipv4.ts";
import { TCP_CHECKSUM, TCP_CWR, TCP_FIN, TCP_FLAGS, TCP_PSH, TCP_SEQ, TcpView } from "./tcp.ts";
import { UDP_CHECKSUM, UDP_HEADER_LEN, UDP_LENGTH, UdpView } from "./udp.ts";
import { GSO_ECN, GSO_TCPV4, GSO_UDP_L4 } from "./virtio.ts";

/** Receives one finished segment: `segLen` bytes at `segOff` in `out`, valid until it returns. */
export type SegmentSink = (out: Uint8Array, segOff: number, segLen: number) => void;

/**
 * Receives one segment as two pieces, nothing copied: its headers (`hdrLen` bytes at `hdrOff`
 * in the segmenter's `out`) and its payload (`payLen` bytes at `payOff` in the super-frame).
 */
export type SegmentPiecesSink = (out: Uint8Array, hdrOff: number, hdrLen: number, frame: Uint8Array, payOff: number, payLen: number) => void;

/**
 * Completes the partial checksum of a NEEDS_CSUM frame in place: sums from `csumStart` to the
 * end of the frame, the field's current value (the pseudo-header sum) included, and stores the
 * complement at `csumStart + csumOffset`. Offsets count from `off`, the start of the Ethernet
 * frame. A result of 0 is stored as 0xffff, as Linux's skb_checksum_help does: the same value
 * in ones' complement for TCP, and the only right one for UDP, where 0 means "no checksum".
 */
export function completeChecksumAt(frame: Uint8Array, off: number, len: number, csumStart: number, csumOffset: number): DropReason {
  if (off < 0 || len < 0 || off + len > frame.length) return Drop.CsumBadOffset;
  if (csumStart < 0 || csumOffset < 0 || csumStart + csumOffset + 2 > len) return Drop.CsumBadOffset;
  const start = off + csumStart;
  const c = ~fold(sumWords(frame, start, off + len - start)) & 0xffff;
  put16(frame, start + csumOffset, c === 0 ? 0xffff : c);
  return Drop.None;
}

/** `completeChecksumAt` with the offsets of a parsed virtio_net_hdr. */
export function completeChecksum(frame: Uint8Array, off: number, len: number, hdr: { csumStart: number; csumOffset: number }): DropReason {
  return completeChecksumAt(frame, off, len, hdr.csumStart, hdr.csumOffset);
}

/**
 * Cuts IPv4 TCP and UDP super-frames into wire-sized frames. One instance per datapath thread,
 * reused for every frame. `out` must not overlap the super-frame, but may lie in the same
 * ArrayBuffer (another slot of it): `segment` then copies each payload with copyWithin and
 * allocates nothing, where from another buffer it takes a subarray of the super-frame per
 * segment (see copyBytes; payloads under 96 bytes excepted). `emit` may write into the
 * headroom but must leave the segment's own bytes alone (the next segment reuses its headers)
 * and must copy the segment if it keeps it past its return.
 */
export class GsoSegmenter {
  private readonly eth = new EthernetView();
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  private readonly udp = new UdpView();

  // Set by parse(): offsets relative to the start of the Ethernet frame, and lengths.
  private ipRel = 0;
  private l4Rel = 0;
  private ipHeaderLen = 0;
  /** Ethernet + IPv4 + TCP/UDP header bytes. */
  private headersLen = 0;
  private payloadLen = 0;

  /** `maxSegmentFrame`: the largest Ethernet frame (headers included, no FCS) a segment may be. */
  constructor(readonly maxSegmentFrame: number) {}

  /**
   * Segments by the virtio gso_type (the ECN bit ignored): TCPv4 and UDP_L4 over IPv4; anything
   * else is Drop.GsoUnsupported (GSO_NONE included: a plain frame needs no segmenting).
   */
  segment(frame: Uint8Array, off: number, len: number, gsoType: number, gsoSize: number,
    out: Uint8Array, outHeadroom: number, emit: SegmentSink): DropReason {
    this.emitWhole = emit;
    return this.segmentPieces(frame, off, len, gsoType, gsoSize, out, outHeadroom, 0, this.copyPayload);
  }

  /**
   * Like `segment`, but copies no payload: segment k's headers are written at
   * `outHeadroom + k * stride` in `out` (a stride of 0 reuses one place), and `emit` gets them
   * and where the segment's payload lies in `frame`. With a stride, every segment's headers
   * stay until the caller is done with all of them: a gathered send (sendmsg, UDP_SEGMENT)
   * passes headers and payloads as they lie. `stride` must hold the headroom and the headers.
   */
  segmentPieces(frame: Uint8Array, off: number, len: number, gsoType: number, gsoSize: number,
    out: Uint8Array, outHeadroom: number, stride: number, emit: SegmentPiecesSink): DropReason {
    const t = gsoType & ~GSO_ECN;
    if (t === GSO_TCPV4) return this.segmentTcp4(frame, off, len, gsoSize, out, outHeadroom, stride, emit);
    if (t === GSO_UDP_L4) return this.segmentUdp4(frame, off, len, gsoSize, out, outHeadroom, stride, emit);
    return Drop.GsoUnsupported;
  }

  /** How many segments a super-frame with `payload` bytes makes (at least one). */
  static segments(payload: number, gsoSize: number): number {
    return payload <= gsoSize ? 1 : Math.ceil(payload / gsoSize);
  }

  // `segment`'s sink, and the adapter that makes whole segments of pieces: the payload is
  // copied behind the headers, which a stride of 0 leaves in one place.
  private emitWhole: SegmentSink = () => {};
  private readonly copyPayload: SegmentPiecesSink = (out, hdrOff, hdrLen, frame, payOff, payLen) => {
    copyBytes(out, hdrOff + hdrLen, frame, payOff, payLen);
    this.emitWhole(out, hdrOff, hdrLen + payLen);
  };

  /**
   * Cuts the TCP super-frame of `len` bytes at `off` (the Ethernet frame, after the virtio
   * header) into segments of at most `gsoSize` payload bytes: same Ethernet header and tags;
   * IPv4 header with total length, id (original + index, mod 2^16) and checksum recomputed,
   * options kept; TCP header with seq advanced by the bytes already sent, FIN and PSH only on
   * the last segment, CWR only on the first, and a full checksum. Each is written at
   * `outHeadroom` in `out` and passed to `emit` before the next is written.
   */
  segmentTcp4(frame: Uint8Array, off: number, len: number, gsoSize: number,
    out: Uint8Array, outHeadroom: number, stride: number, emit: SegmentPiecesSink): DropReason {
    const r = this.parse(frame, off, len, gsoSize, PROTO_TCP, out, outHeadroom, stride);
    if (r !== Drop.None) return r;
    const hdrs = this.headersLen;
    const payload = this.payloadLen;
    const ipHl = this.ipHeaderLen;
    const tcpHl = hdrs - this.l4Rel;
    let ho = outHeadroom;

    // The headers once, by hand (they are tens of bytes); only the fields that differ change below.
    for (let i = 0; i < hdrs; i++) out[ho + i] = frame[off + i];
    const id0 = get16(out, ho + this.ipRel + IPV4_ID);
    const seq0 = get32(out, ho + this.l4Rel + TCP_SEQ);
    const flags0 = out[ho + this.l4Rel + TCP_FLAGS];
    const pseudo = pseudoHeaderSum(get32(out, ho + this.ipRel + IPV4_SRC), get32(out, ho + this.ipRel + IPV4_DST), PROTO_TCP, tcpHl);

    let src = off + hdrs;
    let sent = 0;
    let index = 0;
    do {
      const n = payload - sent < gsoSize ? payload - sent : gsoSize;
      if (index > 0 && stride > 0) {
        out.copyWithin(ho + stride, ho, ho + hdrs); // the last segment's headers, to be changed below
        ho += stride;
      }
      const ipo = ho + this.ipRel;
      const tcpo = ho + this.l4Rel;

      put16(out, ipo + IPV4_TOTAL_LEN, ipHl + tcpHl + n);
      put16(out, ipo + IPV4_ID, (id0 + index) & 0xffff);
      out[ipo + IPV4_CHECKSUM] = 0;
      out[ipo + IPV4_CHECKSUM + 1] = 0;
      put16(out, ipo + IPV4_CHECKSUM, ~fold(sumWords(out, ipo, ipHl)) & 0xffff);

      put32(out, tcpo + TCP_SEQ, (seq0 + sent) >>> 0);
      let f = flags0;
      if (sent + n < payload) f &= ~(TCP_FIN | TCP_PSH);
      if (index > 0) f &= ~TCP_CWR;
      out[tcpo + TCP_FLAGS] = f;
      out[tcpo + TCP_CHECKSUM] = 0;
      out[tcpo + TCP_CHECKSUM + 1] = 0;
      // The payload sum is taken from the source; the header starts on an even offset of the
      // segment and is a whole number of words long, so the two sums simply add.
      const sum = sumWords(frame, src, n, sumWords(out, tcpo, tcpHl, pseudo + n));
      put16(out, tcpo + TCP_CHECKSUM, ~fold(sum) & 0xffff);

      emit(out, ho, hdrs, frame, src, n);
      sent += n;
      src += n;
      index++;
    } while (sent < payload);
    return Drop.None;
  }

  /**
   * Cuts a UDP super-datagram (GSO_UDP_L4 over IPv4) into datagrams of at most `gsoSize`
   * payload bytes, each with its own UDP length and checksum (0 sent as 0xffff) and its IPv4
   * total length, id (original + index) and checksum. As `segmentTcp4` otherwise.
   */
  segmentUdp4(frame: Uint8Array, off: number, len: number, gsoSize: number,
    out: Uint8Array, outHeadroom: number, stride: number, emit: SegmentPiecesSink): DropReason {
    const r = this.parse(frame, off, len, gsoSize, PROTO_UDP, out, outHeadroom, stride);
    if (r !== Drop.None) return r;
    const hdrs = this.headersLen;
    const payload = this.payloadLen;
    const ipHl = this.ipHeaderLen;
    let ho = outHeadroom;

    for (let i = 0; i < hdrs; i++) out[ho + i] = frame[off + i];
    const id0 = get16(out, ho + this.ipRel + IPV4_ID);
    const pseudo = pseudoHeaderSum(get32(out, ho + this.ipRel + IPV4_SRC), get32(out, ho + this.ipRel + IPV4_DST), PROTO_UDP, 0);

    let src = off + hdrs;
    let sent = 0;
    let index = 0;
    do {
      const n = payload - sent < gsoSize ? payload - sent : gsoSize;
      if (index > 0 && stride > 0) {
        out.copyWithin(ho + stride, ho, ho + hdrs);
        ho += stride;
      }
      const ipo = ho + this.ipRel;
      const udpo = ho + this.l4Rel;

      put16(out, ipo + IPV4_TOTAL_LEN, ipHl + UDP_HEADER_LEN + n);
      put16(out, ipo + IPV4_ID, (id0 + index) & 0xffff);
      out[ipo + IPV4_CHECKSUM] = 0;
      out[ipo + IPV4_CHECKSUM + 1] = 0;
      put16(out, ipo + IPV4_CHECKSUM, ~fold(sumWords(out, ipo, ipHl)) & 0xffff);

      const udpLen = UDP_HEADER_LEN + n;
      put16(out, udpo + UDP_LENGTH, udpLen);
      out[udpo + UDP_CHECKSUM] = 0;
      out[udpo + UDP_CHECKSUM + 1] = 0;
      const c = ~fold(sumWords(frame, src, n, sumWords(out, udpo, UDP_HEADER_LEN, pseudo + udpLen))) & 0xffff;
      put16(out, udpo + UDP_CHECKSUM, c === 0 ? 0xffff : c);

      emit(out, ho, hdrs, frame, src, n);
      sent += n;
      src += n;
      index++;
    } while (sent < payload);
    return Drop.None;
  }

  /** Validates a super-frame and fills the offsets and lengths above; writes nothing. */
  private parse(frame: Uint8Array, off: number, len: number, gsoSize: number, proto: number,
    out: Uint8Array, outHeadroom: number, stride: number): DropReason {
    if (!(gsoSize > 0)) return Drop.GsoBadSize;
    if (off < 0 || len < 0 || off + len > frame.length) return Drop.GsoMalformed;
    const eth = this.eth;
    let r = eth.wrap(frame, off, len);
    if (r !== Drop.None) return r;
    if (eth.etherType !== ETHERTYPE_IPV4) return eth.etherType === ETHERTYPE_IPV6 ? Drop.GsoUnsupported : Drop.GsoMalformed;
    const ip = this.ip;
    r = ip.wrap(frame, eth.payloadOff, off + len - eth.payloadOff);
    if (r !== Drop.None) return r;
    if (frame[ip.off + IPV4_PROTOCOL] !== proto || ip.isFragment) return Drop.GsoMalformed;
    let l4Len: number;
    if (proto === PROTO_TCP) {
      r = this.tcp.wrap(frame, ip.payloadOff, ip.payloadLen);
      l4Len = this.tcp.headerLen;
    } else {
      // The UDP length field of a super-datagram only has to be sane: each segment gets its own.
      r = this.udp.wrap(frame, ip.payloadOff, ip.payloadLen);
      l4Len = UDP_HEADER_LEN;
    }
    if (r !== Drop.None) return r;
    const hdrs = ip.payloadOff + l4Len - off;
    const payload = ip.off + ip.totalLen - (off + hdrs);
    const first = payload < gsoSize ? payload : gsoSize;
    if (hdrs + first > this.maxSegmentFrame || outHeadroom < 0) return Drop.GsoTooBig;
    // Room in `out`: one segment whole (payload copied) without a stride; with one, every
    // segment's headers, each within its stride.
    const room = stride > 0
      ? (outHeadroom + hdrs <= stride ? outHeadroom + (GsoSegmenter.segments(payload, gsoSize) - 1) * stride + hdrs : Infinity)
      : outHeadroom + hdrs + first;
    if (room > out.length) return Drop.GsoTooBig;
    this.ipRel = ip.off - off;
    this.l4Rel = ip.payloadOff - off;
    this.ipHeaderLen = ip.headerLen;
    this.headersLen = hdrs;
    this.payloadLen = payload;
    return Drop.None;
  }
}

/**
 * Off the hot path (tests, traces): segments a whole super-frame (Ethernet, no virtio header)
 * by its gso_type and returns each segment as its own array, or the drop reason. By default
 * a segment may be as large as the super-frame.
 */
export function segmentToArrays(frame: Uint8Array, gsoType: number, gsoSize: number, maxSegmentFrame = frame.length): Uint8Array[] | DropReason {
  const segs: Uint8Array[] = [];
  const out = new Uint8Array(maxSegmentFrame);
  const r = new GsoSegmenter(maxSegmentFrame).segment(frame, 0, frame.length, gsoType, gsoSize, out, 0,
    (b, o, l) => { segs.push(b.slice(o, o + l)); });
  return r === Drop.None ? segs : r;
}

/** `segmentToArrays` for a TCPv4 super-frame. */
export function segmentTcp4ToArrays(frame: Uint8Array, gsoSize: number, maxSegmentFrame = frame.length): Uint8Array[] | DropReason {
  return segmentToArrays(frame, GSO_TCPV4, gsoSize, maxSegmentFrame);
}

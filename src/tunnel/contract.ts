/**
 * What every tunnel backend is to the switch: the one contract between switch/ and tunnel/.
 *
 * A frame in the switch is a TAP's frame: a virtio_net_hdr (wire/virtio.ts's ETH_OFF bytes), an Ethernet
 * header, an IPv4 packet. To send one to another node, the switch hands it to the backend:
 *   - whole (`send`), when the backend carries super-frames whole (`wholeFrames`: tapnet), or
 *     when it is a packet no larger than the pods' MTU;
 *   - cut into segments by the switch, one `sendSegment` each (udp, vxlan, for a TSO
 *     super-frame): a segment's headers and its payload are separate pieces, nothing copied.
 * The backend gathers what it is given (GatherSink) and sends at most when a run cannot grow
 * or at `flush()`, the end of the batch: what it was given must stay put until then.
 *
 * A read from the tunnel socket (one datagram, or with UDP_GRO a run of datagrams of
 * `stride` bytes) goes to `receive`, which turns it into frames for the switch, each through
 * the FrameSink: contiguous where the datagram lies when there is room for the frame's headers
 * in front of it, else headers in a head the sink lends and the rest where it lies (a
 * FrameTail). The backend counts nothing itself: it reports sends and failures through
 * TunnelEvents and refusals through the sink, with its own drop reasons.
 */
import type { DropReason } from "../wire/drop.ts";
import type { SealContext } from "./seal.ts";


/** The most UDP payload one send may carry, segmented or not. */
export const MAX_UDP_PAYLOAD = 65507;
/** The most datagrams one UDP_SEGMENT send may make (UDP_MAX_SEGMENTS: 64 in Linux 4.18, 128 later). */
export const MAX_SEGMENTS_PER_SEND = 64;
/** Bytes of a frame's head a FrameSink lends: every header the switch reads or writes fits. */
export const HEAD_ROOM = 256;

/**
 * Where a backend sends: pieces of datagrams are gathered (a header here, a chunk of a frame
 * there, nothing copied), then sent to one peer in one go, cut into datagrams of `segment`
 * bytes (the last may be shorter). io/udp.ts's GatherSender does it with one sendmsg over an
 * iovec per piece (and UDP_SEGMENT where the kernel has it); tests collect the bytes.
 */
export interface GatherSink {
  /** Appends buf[off..off+len) to what is being gathered. */
  add(buf: Uint8Array, off: number, len: number): void;
  /** Sends what was gathered to node `peer`; false if the send failed. Starts a new gather. */
  send(peer: number, segment: number): boolean;
}

/** What a backend reports as it sends, for the tunnel's counters. */
export interface TunnelEvents {
  sent(datagrams: number, bytes: number): void;
  /** Frames lost to a failed send. */
  failed(frames: number): void;
}

/**
 * The rest of a frame whose first `headLen` bytes are elsewhere (its head): `count` pieces of
 * `buf`, at `offs[k]`, `lens[k]` bytes each, in order. A writer sends the head and then these
 * (writev), clipping the whole to the frame's length; nothing is copied.
 */
export interface FrameTail {
  buf: Uint8Array;
  headLen: number;
  offs: Int32Array;
  lens: Int32Array;
  count: number;
}

/** Where a backend's `receive` puts the frames it takes out of datagrams. */
export interface FrameSink {
  /**
   * A head of HEAD_ROOM bytes for the next frame, lent until that frame is delivered, and the
   * tail that goes with it (count 0). Call it before `frame` for a frame that is not contiguous.
   */
  lend(): { head: Uint8Array; tail: FrameTail };
  /**
   * A frame: `len` bytes from buf[off] (virtio_net_hdr first), or, with `tail`, its first
   * tail.headLen bytes there and the rest in the tail. `buf` and the tail's buffer stay as
   * they are until the frame is delivered: at the latest, when `receive` returns or `commit`
   * is called.
   */
  frame(buf: Uint8Array, off: number, len: number, tail?: FrameTail): void;
  /** A datagram refused, for a reason of the backend's (or of wire/'s parsers). */
  drop(reason: DropReason): void;
  /** Delivers what was handed over so far: the backend is about to reuse memory a frame is in. */
  commit(): void;
}

/** What a backend knows of the cluster when it is made. */
export interface BackendContext {
  /** Largest UDP payload on the underlay (its MTU - 28): the largest datagram to send. */
  datagramSize: number;
  /** This node's index in the cluster's node list, and how many nodes there are. */
  self: number;
  nodes: number;
  /** Each node's VTEP MAC, by node index, as hi (2 bytes) and lo (4 bytes). */
  vtepHi: Uint16Array;
  vtepLo: Uint32Array;
  vni: number;
  /** Where datagrams go, and whether the socket cuts one send into many (UDP_SEGMENT). */
  out: GatherSink;
  segmenting: boolean;
  events: TunnelEvents;
  /**
   * Present when the cluster has a secret (backend.secret) and the backend seals its datagrams
   * (the registry's `seals`): the secret, the nodes' addresses by index, the cipher (seal.ts).
   */
  seal?: SealContext;
}

export type BackendFactory = (ctx: BackendContext) => TunnelBackend;

export interface TunnelBackend {
  readonly name: string;
  /** Offset in a read slot at which to receive a datagram, so that a frame fits in front of it. */
  readonly recvOff: number;
  /** Takes TSO super-frames whole (true), or wants them cut into segments of the pods' MTU. */
  readonly wholeFrames: boolean;
  /** Whether received TCP segments of a flow should be merged into super-frames for the pods. */
  readonly mergeReceived: boolean;
  /**
   * Sends the frame buf[off..off+len) (virtio_net_hdr, Ethernet, IPv4) to node `peer`, or
   * gathers it until `flush`; the backend may write in the frame's virtio_net_hdr (its
   * headroom). Returns the datagrams it makes, or -1 if it cannot carry the frame (too large).
   */
  send(buf: Uint8Array, off: number, len: number, peer: number): number;
  /**
   * Sends one segment of a super-frame: its Ethernet, IPv4 and L4 headers at
   * hdr[hdrOff..hdrOff+hdrLen), with at least 16 bytes of headroom before them, and its payload
   * at pay[payOff..payOff+payLen). Only asked of a backend that does not take whole frames.
   */
  sendSegment(hdr: Uint8Array, hdrOff: number, hdrLen: number, pay: Uint8Array, payOff: number, payLen: number, peer: number): void;
  /** Sends whatever is gathered: the end of a batch, before its memory is reused. */
  flush(): void;
  /**
   * Takes `len` bytes read at buf[off..] from node `peer`: one datagram, or a run of datagrams of
   * `stride` bytes each, the last maybe shorter. Frames go to `sink`; returns the datagrams.
   */
  receive(buf: Uint8Array, off: number, len: number, stride: number, peer: number, sink: FrameSink): number;
  /**
   * Takes over what `previous` (a backend of the same kind, made for the node list before it
   * changed) keeps from one round to the next for each peer: a frame half received, say.
   * peerOf[i] is old peer i's index now, or -1 if it left. A backend that keeps nothing across
   * rounds has no need of it.
   */
  adopt?(previous: TunnelBackend, peerOf: Int32Array): void;
}

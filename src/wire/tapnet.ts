/**
 * The `tapnet` tunnel format, version 1: how whole offloaded frames travel between tapnet nodes.
 *
 * A frame as a TAP hands it over (a virtio_net_hdr, then an Ethernet frame of up to 64 KB: a TCP
 * super-frame, its checksum left partial) is cut into chunks, each sent as one UDP datagram
 * behind this 12-byte header. Every datagram but a frame's last is exactly the tunnel's datagram
 * size (underlay MTU - 28), so that one send with UDP_SEGMENT makes them all, and a receiver
 * with UDP_GRO gets them back in one read. The receiving switch reassembles the frame and writes
 * it to the pod's TAP as it was, virtio_net_hdr included: no segmenting and no checksums in
 * between. Tapnet nodes only; Linux and flannel do not speak it.
 *
 *   0         1       2          4                8                12
 *   | version | flags | frame id | frame length   | chunk offset   | chunk ...
 *
 * version is 1; flags are 0 (ignored on receipt); frame id counts frames per sender (mod 2^16);
 * frame length and chunk offset count bytes of the frame, virtio_net_hdr included. All
 * big-endian. A receiver drops, counted, any datagram that does not fit the frame it belongs to.
 */
import { get16, get32, put16, put32 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";

export const TAPNET_VERSION = 1;
export const TAPNET_HEADER_LEN = 12;
export const TAPNET_FRAME_ID = 2;
export const TAPNET_FRAME_LEN = 4;
export const TAPNET_OFFSET = 8;
/** The largest frame: a 64 KB super-frame, its Ethernet header and virtio_net_hdr. */
export const TAPNET_MAX_FRAME = 65536 + 128;

export function writeTapnetHeader(b: Uint8Array, off: number, frameId: number, frameLen: number, offset: number): void {
  b[off] = TAPNET_VERSION;
  b[off + 1] = 0;
  put16(b, off + TAPNET_FRAME_ID, frameId & 0xffff);
  put32(b, off + TAPNET_FRAME_LEN, frameLen);
  put32(b, off + TAPNET_OFFSET, offset);
}

/** Checks the header of a datagram of `len` bytes at `off`: version, and a chunk inside its frame. */
export function checkTapnetHeader(b: Uint8Array, off: number, len: number): DropReason {
  if (len <= TAPNET_HEADER_LEN) return Drop.TapnetTruncated;
  if (b[off] !== TAPNET_VERSION) return Drop.TapnetBadVersion;
  const frameLen = get32(b, off + TAPNET_FRAME_LEN);
  const offset = get32(b, off + TAPNET_OFFSET);
  if (frameLen > TAPNET_MAX_FRAME || offset + len - TAPNET_HEADER_LEN > frameLen) return Drop.TapnetBadChunk;
  return Drop.None;
}

export interface TapnetRepr {
  frameId: number;
  frameLen: number;
  offset: number;
  chunk: Uint8Array;
}

export function parseTapnet(d: Uint8Array): TapnetRepr | DropReason {
  const r = checkTapnetHeader(d, 0, d.length);
  if (r !== Drop.None) return r;
  return {
    frameId: get16(d, TAPNET_FRAME_ID), frameLen: get32(d, TAPNET_FRAME_LEN),
    offset: get32(d, TAPNET_OFFSET), chunk: d.slice(TAPNET_HEADER_LEN),
  };
}

export function emitTapnet(repr: TapnetRepr, b: Uint8Array, off: number): number {
  writeTapnetHeader(b, off, repr.frameId, repr.frameLen, repr.offset);
  b.set(repr.chunk, off + TAPNET_HEADER_LEN);
  return TAPNET_HEADER_LEN + repr.chunk.length;
}

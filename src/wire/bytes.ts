/** Big-endian field access on byte arrays: the network's byte order, without DataView. */

export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

export function getLe16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

export function putLe16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

// A view over the whole ArrayBuffer last copied within, made again only when another comes
// along (frames sit in slots of one large buffer).
let wholeBuffer: ArrayBufferLike | undefined;
let whole: Uint8Array = new Uint8Array(0);

/** Below this many bytes a copy between two buffers is a loop: no view to make, and quick enough. */
const SMALL_COPY = 96;

/**
 * Copies `len` bytes from src[srcOff..] to dst[dstOff..] as memmove does: right even where the
 * two ranges overlap in one ArrayBuffer. Allocates nothing when both lie in one ArrayBuffer
 * (a copyWithin over the whole of it) or when `len` is below 96 (a loop); otherwise it takes
 * one subarray of `src`, as JS has no other way to copy between two buffers at memcpy speed.
 * The ranges must lie within `dst` and `src`: nothing checks them.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (dst.buffer === src.buffer) {
    if (dst.buffer !== wholeBuffer) {
      wholeBuffer = dst.buffer;
      whole = new Uint8Array(dst.buffer);
    }
    const from = src.byteOffset + srcOff;
    whole.copyWithin(dst.byteOffset + dstOff, from, from + len);
  } else if (len < SMALL_COPY) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
  } else {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  }
}

/** "0a 58 ..." or "0a58..." → bytes; for tests and golden captures. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/[^0-9a-fA-F]/g, "");
  if (clean.length % 2) throw new Error("odd number of hex digits");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}

/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of the
 * data as 16-bit big-endian words. And its incremental update (RFC 1624), so that a router
 * changing one field (the TTL) need not sum the header again.
 */

// A DataView over the buffer last summed: frames sit in slots of one large buffer, so this is
// made again only when a different buffer comes along.
let viewBuffer: ArrayBufferLike | undefined;
let view: DataView | undefined;

/** Ones' complement sum of `len` bytes at `off`, added to `initial`; not folded, not inverted. */
export function sumWords(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len;
  let i = off;
  if (len >= 64) {
    if (b.buffer !== viewBuffer) {
      viewBuffer = b.buffer;
      view = new DataView(b.buffer);
    }
    const dv = view!;
    // Eight bytes a round as two big-endian 32-bit words, each added as its two 16-bit halves.
    // The sum stays far below 2^53 for any frame (64 KB of 0xffff words).
    let p = b.byteOffset + i;
    const stop = b.byteOffset + end - 7;
    for (; p < stop; p += 8) {
      const w1 = dv.getUint32(p);
      const w2 = dv.getUint32(p + 4);
      sum += (w1 >>> 16) + (w1 & 0xffff) + (w2 >>> 16) + (w2 & 0xffff);
    }
    i = p - b.byteOffset;
  }
  for (; i + 3 < end; i += 4) sum += ((b[i] << 8) | b[i + 1]) + ((b[i + 2] << 8) | b[i + 3]);
  if (i + 1 < end) { sum += (b[i] << 8) | b[i + 1]; i += 2; }
  if (i < end) sum += b[i] << 8;
  return sum;
}

/**
 * `sumWords` over a datagram held in pieces, as if they were one run of bytes: `headLen` bytes
 * at `headOff` in `head`, then `count` pieces of `tailBuf` (`lens[k]` bytes at `offs[k]`). The
 * same value `sumWords` gives over their concatenation (not folded), `initial` included. A piece
 * that starts at an odd position of the whole begins with the low byte of a word: that byte is
 * added alone and the rest summed from the even position after it. With `limit`, no more than
 * that many bytes of the whole are summed (what lies past a packet's end in its last piece).
 */
export function sumPieces(head: Uint8Array, headOff: number, headLen: number, tailBuf: Uint8Array,
  offs: Int32Array, lens: Int32Array, count: number, initial: number, limit = Infinity): number {
  headLen = Math.min(headLen, limit);
  let sum = sumWords(head, headOff, headLen, initial);
  let odd = headLen & 1;
  let left = limit - headLen;
  for (let k = 0; k < count && left > 0; k++) {
    const n = Math.min(lens[k], left);
    left -= n;
    if (n <= 0) continue;
    const o = offs[k];
    sum += odd ? tailBuf[o] + sumWords(tailBuf, o + 1, n - 1) : sumWords(tailBuf, o, n);
    odd ^= n & 1;
  }
  return sum;
}

/** Folds a sum to 16 bits with end-around carry. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum to put in a header whose checksum field was zero while summing. */
export function internetChecksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sumWords(b, off, len, initial)) & 0xffff;
}

/** The sum of the TCP/UDP pseudo-header for IPv4 (addresses, protocol, length). */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/**
 * RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changes from
 * `oldWord` to `newWord`: HC' = ~(~HC + ~m + m').
 */
export function checksumUpdate16(oldChecksum: number, oldWord: number, newWord: number): number {
  return ~fold((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + newWord) & 0xffff;
}

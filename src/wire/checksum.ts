/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of the
 * data as 16-bit big-endian words. And its incremental update (RFC 1624), so that a router
 * changing one field (the TTL) need not sum the header again.
 */

/** Ones' complement sum of `len` bytes at `off`, added to `initial`; not folded, not inverted. */
export function sumWords(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len;
  let i = off;
  // Four bytes a round; the sum stays far below 2^53 for any frame (64 KB × 0x1fffe).
  for (; i + 3 < end; i += 4) sum += ((b[i] << 8) | b[i + 1]) + ((b[i + 2] << 8) | b[i + 3]);
  if (i + 1 < end) { sum += (b[i] << 8) | b[i + 1]; i += 2; }
  if (i < end) sum += b[i] << 8;
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

/**
 * The sealed `tapnet` tunnel format, version 2: a version-1 datagram (wire/tapnet.ts), encrypted
 * and authenticated with AES-256-GCM, behind a 16-byte header. A node whose cluster has a secret
 * (backend.secret) sends only these, and accepts only these.
 *
 *   0         1       2                 8                            16
 *   | version | flags | key epoch       | counter                    | ciphertext ... | tag (16)
 *
 * version is 2; flags are 0 (a datagram with other flags is of a later format: dropped); the key
 * epoch (48 bits) names the key it was sealed with (tunnel/seal.ts: keys per ordered pair of
 * nodes and epoch, derived from the secret); the counter (64 bits) counts the datagrams sealed
 * with that key, from 0, and is the nonce: 4 zero bytes, then the counter. The ciphertext is the
 * whole version-1 datagram (its 12-byte header and chunk), as long as it; the tag is GCM's.
 * All big-endian. There is no associated data: a changed epoch gives another key, a changed
 * counter another nonce, so the tag fails either way (WireGuard's data messages do the same).
 *
 * Sealing costs 32 bytes a datagram: a chunk is 44 bytes shorter than the datagram, not 12.
 *
 * `Aead` is what a sealer needs of AES-256-GCM, made by io/aead.ts (OpenSSL, through FFI) and
 * handed to the tunnel by the switch: allocation-free calls over byte ranges.
 */
import { get16, get32, put16, put32 } from "./bytes.ts";

export const SEALED_VERSION = 2;
export const SEALED_HEADER_LEN = 16;
export const SEALED_EPOCH = 2;
export const SEALED_COUNTER = 8;
export const SEALED_TAG_LEN = 16;
/** Bytes sealing adds to a datagram. */
export const SEALED_OVERHEAD = SEALED_HEADER_LEN + SEALED_TAG_LEN;
export const SEALED_KEY_LEN = 32;
/** The largest key epoch: 48 bits. */
export const SEALED_MAX_EPOCH = 2 ** 48 - 1;

/** Writes a sealed header at b[off]: the epoch below 2^48, the counter below 2^53. */
export function writeSealedHeader(b: Uint8Array, off: number, epoch: number, counter: number): void {
  b[off] = SEALED_VERSION;
  b[off + 1] = 0;
  put16(b, off + SEALED_EPOCH, Math.floor(epoch / 2 ** 32));
  put32(b, off + SEALED_EPOCH + 2, epoch >>> 0);
  put32(b, off + SEALED_COUNTER, Math.floor(counter / 2 ** 32));
  put32(b, off + SEALED_COUNTER + 4, counter >>> 0);
}

export function sealedEpoch(b: Uint8Array, off: number): number {
  return get16(b, off + SEALED_EPOCH) * 2 ** 32 + get32(b, off + SEALED_EPOCH + 2);
}

/** The counter's high 32 bits (0 for every datagram this version's senders make) and low 32 bits. */
export function sealedCounterHi(b: Uint8Array, off: number): number {
  return get32(b, off + SEALED_COUNTER);
}

export function sealedCounterLo(b: Uint8Array, off: number): number {
  return get32(b, off + SEALED_COUNTER + 4);
}

/** AES-256-GCM under one key, as a sealer uses it: 16-byte tags, 12-byte nonces. */
export interface AeadKey {
  /**
   * Seals a message of two pieces, a[aOff..aOff+aLen) then b[bOff..bOff+bLen), under the nonce
   * (4 zero bytes, `hi`, `lo`, big-endian): writes aLen + bLen bytes of ciphertext and then the
   * tag at out[outOff..]. `a` may be `out` at `outOff` (sealed in place). False if the cipher failed.
   */
  seal(hi: number, lo: number, a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number, out: Uint8Array, outOff: number): boolean;
  /**
   * Opens buf[off..off+len) in place, its tag right after it, under the nonce (0, hi, lo):
   * true if it is authentic (then the plaintext is where the ciphertext was).
   */
  open(hi: number, lo: number, buf: Uint8Array, off: number, len: number): boolean;
  /** Gives the key another value (32 bytes); its direction stays. */
  rekey(key: Uint8Array): void;
  /** Releases the cipher's memory: the key is not used again. */
  free(): void;
}

export interface Aead {
  /** A key of 32 bytes, for sealing (`encrypt`) or for opening. */
  key(key: Uint8Array, encrypt: boolean): AeadKey;
}

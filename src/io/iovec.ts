/**
 * A struct iovec array outside V8's heap, for writev and sendmsg: pieces of the caller's
 * buffers, passed to the kernel by address so that nothing is copied in userspace. Built once;
 * `add` writes one entry (struct iovec: base 0, len 8; 16 bytes). Pieces must stay where they
 * are until the call that uses them.
 */
import type { Libc } from "./libc.ts";

export const IOVEC_LEN = 16;

export class Iovecs {
  /** The array itself (count entries used); its address is `address`. */
  readonly mem: Uint8Array;
  readonly address: number;
  count = 0;
  /** Bytes in the pieces added since the last reset. */
  total = 0;
  private readonly dv: DataView;
  // The base addresses of the last two ArrayBuffers pieces came from: pieces alternate between
  // a few buffers (headers and the slots, heads and a receive buffer), every slot and head a
  // view of one of them, and libc.addressOf is a call into C.
  private bufA?: ArrayBufferLike;
  private addrA = 0;
  private bufB?: ArrayBufferLike;
  private addrB = 0;

  constructor(private readonly libc: Libc, readonly capacity: number) {
    // Over 64 bytes, so that V8 keeps it off its heap, where it cannot move (see addressOf).
    this.mem = new Uint8Array(Math.max(capacity * IOVEC_LEN, 128));
    this.dv = new DataView(this.mem.buffer);
    this.address = libc.addressOf(this.mem);
  }

  reset(): void {
    this.count = 0;
    this.total = 0;
  }

  /** Adds buf[off..off+len); throws if full (a bug in the caller, not a runtime condition). */
  add(buf: Uint8Array, off: number, len: number): void {
    if (this.count === this.capacity) throw new RangeError("iovec array full");
    const o = this.count * IOVEC_LEN;
    putPtr(this.dv, o, this.addressOf(buf) + off);
    putPtr(this.dv, o + 8, len);
    this.count++;
    this.total += len;
  }

  private addressOf(buf: Uint8Array): number {
    const ab = buf.buffer;
    if (ab === this.bufA) return this.addrA + buf.byteOffset;
    if (ab === this.bufB) return this.addrB + buf.byteOffset;
    this.bufB = this.bufA;
    this.addrB = this.addrA;
    this.bufA = ab;
    this.addrA = this.libc.addressOf(buf) - buf.byteOffset;
    return this.addrA + buf.byteOffset;
  }
}

/** Writes a 64-bit pointer or size, little-endian (x86-64), from a JS number (< 2^53). */
export function putPtr(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v % 0x100000000, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000), true);
}

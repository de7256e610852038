/**
 * AES-256-GCM for the sealed tunnel (wire/sealed.ts's `Aead`), from OpenSSL 3's EVP interface
 * called through FFI: koffi on Node, Deno.dlopen on Deno. On Node it is Node's own OpenSSL (its
 * symbols are the process's), else the system's libcrypto.so.3; on Deno, libcrypto.so.3.
 *
 * Why not node:crypto: createCipheriv makes a cipher object, schedules the key and returns new
 * Buffers on every call, about 11 µs a 1,440-byte datagram on the 2-core VM (1 Gbit/s a core);
 * here one EVP_CIPHER_CTX per key is made once and reused, and a datagram costs five calls over
 * raw addresses (set the nonce, two updates, final, the tag), nothing allocated: 1.3 to 2 µs
 * on Node or Deno, of which AES-GCM itself is about 0.6 (see README, How it works). WebCrypto
 * is asynchronous: no use in the datapath's loop.
 *
 * Addresses: a buffer's address is taken once per ArrayBuffer and kept (four are remembered:
 * the switch's slots, a sealer's output, ...). Only memory outside V8's heap stays put, which an
 * ArrayBuffer over 64 bytes is; a smaller one is copied through this module's own memory.
 */
import { createRequire } from "node:module";
import type { Aead, AeadKey } from "../wire/sealed.ts";
import { SEALED_KEY_LEN, SEALED_TAG_LEN } from "../wire/sealed.ts";
import { Deno, isDeno } from "./runtime.ts";

const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** V8 keeps typed arrays' memory of up to this many bytes on its heap, where it moves. */
const ON_HEAP_MAX = 64;

/** The EVP calls, each pointer a number (an address). */
interface Evp {
  ctxNew(): number;
  ctxFree(ctx: number): void;
  aes256gcm(): number;
  /** EVP_CipherInit_ex(ctx, cipher, NULL, key, iv, enc): 1 on success. */
  init(ctx: number, cipher: number, key: number, iv: number, enc: number): number;
  update(ctx: number, out: number, outl: number, inp: number, inl: number): number;
  final(ctx: number, out: number, outl: number): number;
  ctrl(ctx: number, type: number, arg: number, ptr: number): number;
  addressOf(buf: Uint8Array): number;
}

export class AeadError extends Error {}

function loadNode(): Evp {
  const koffi = createRequire(import.meta.url)("koffi");
  const bind = (lib: ReturnType<typeof koffi.load>): Evp => {
    const f = (sig: string) => lib.func(sig);
    const ctxNew = f("uintptr_t EVP_CIPHER_CTX_new()");
    const ctxFree = f("void EVP_CIPHER_CTX_free(uintptr_t ctx)");
    const cipher = f("uintptr_t EVP_aes_256_gcm()");
    const init = f("int EVP_CipherInit_ex(uintptr_t ctx, uintptr_t cipher, uintptr_t engine, uintptr_t key, uintptr_t iv, int enc)");
    const update = f("int EVP_CipherUpdate(uintptr_t ctx, uintptr_t out, uintptr_t outl, uintptr_t inp, int inl)");
    const final = f("int EVP_CipherFinal_ex(uintptr_t ctx, uintptr_t out, uintptr_t outl)");
    const ctrl = f("int EVP_CIPHER_CTX_ctrl(uintptr_t ctx, int type, int arg, uintptr_t ptr)");
    // memcpy of nothing returns its destination: the address of the memory koffi passed.
    const memcpy = koffi.load("libc.so.6").func("uintptr_t memcpy(uint8_t *dst, const uint8_t *src, unsigned long n)");
    return {
      ctxNew: () => Number(ctxNew()),
      ctxFree: (c) => ctxFree(c),
      aes256gcm: () => Number(cipher()),
      init: (c, ci, k, iv, enc) => init(c, ci, 0, k, iv, enc),
      update: (c, o, ol, i, il) => update(c, o, ol, i, il),
      final: (c, o, ol) => final(c, o, ol),
      ctrl: (c, t, a, p) => ctrl(c, t, a, p),
      addressOf: (b) => Number(memcpy(b, b, 0)),
    };
  };
  try {
    return bind(koffi.load(null)); // Node's own OpenSSL: one copy of it in the process
  } catch {
    try {
      return bind(koffi.load("libcrypto.so.3"));
    } catch (e) {
      throw new AeadError(`sealing the tunnel needs OpenSSL 3 (libcrypto.so.3; on Debian the libssl3 package): ${(e as Error).message}`);
    }
  }
}

function loadDeno(): Evp {
  let lib;
  try {
    lib = Deno.dlopen("libcrypto.so.3", {
      ctxNew: { name: "EVP_CIPHER_CTX_new", parameters: [], result: "pointer" },
      ctxFree: { name: "EVP_CIPHER_CTX_free", parameters: ["usize"], result: "void" },
      cipher: { name: "EVP_aes_256_gcm", parameters: [], result: "pointer" },
      init: { name: "EVP_CipherInit_ex", parameters: ["usize", "usize", "usize", "usize", "usize", "i32"], result: "i32" },
      update: { name: "EVP_CipherUpdate", parameters: ["usize", "usize", "usize", "usize", "i32"], result: "i32" },
      final: { name: "EVP_CipherFinal_ex", parameters: ["usize", "usize", "usize"], result: "i32" },
      ctrl: { name: "EVP_CIPHER_CTX_ctrl", parameters: ["usize", "i32", "i32", "usize"], result: "i32" },
    });
  } catch (e) {
    throw new AeadError(`sealing the tunnel needs OpenSSL 3 (libcrypto.so.3; on Debian the libssl3 package): ${(e as Error).message}`);
  }
  const s = lib.symbols;
  const ptr = (p: unknown) => Number(Deno.UnsafePointer.value(p));
  // Deno passes a 64-bit argument given as a bigint on its fast path, and one given as a number
  // ten times slower: each address is made a bigint once and kept (a switch uses a few thousand).
  const bigs = new Map<number, bigint>();
  const big = (x: number): bigint => {
    let b = bigs.get(x);
    if (b === undefined) {
      if (bigs.size >= 1 << 16) bigs.clear();
      b = BigInt(x);
      bigs.set(x, b);
    }
    return b;
  };
  return {
    ctxNew: () => ptr(s.ctxNew()),
    ctxFree: (c) => s.ctxFree(big(c)),
    aes256gcm: () => ptr(s.cipher()),
    init: (c, ci, k, iv, enc) => s.init(big(c), big(ci), 0n, big(k), big(iv), enc),
    update: (c, o, ol, i, il) => s.update(big(c), big(o), big(ol), big(i), il),
    final: (c, o, ol) => s.final(big(c), big(o), big(ol)),
    ctrl: (c, t, a, p) => s.ctrl(big(c), t, a, big(p)),
    addressOf: (b) => ptr(Deno.UnsafePointer.of(b)),
  };
}

/** The nonce, the out-length and a key, in memory of this module's (off V8's heap). */
const NONCE = 0;
const OUTL = 16;
const KEY = 32;
const SCRATCH = 128;

class OpenSslAead implements Aead {
  /** Nonce, out-length, key, then room to copy a small buffer through. */
  readonly mem = new Uint8Array(SCRATCH + 2 * ON_HEAP_MAX + SEALED_TAG_LEN + 64);
  readonly memAddr: number;
  readonly cipher: number;
  private readonly seen: (ArrayBufferLike | undefined)[] = [undefined, undefined, undefined, undefined];
  private readonly seenAt = new Float64Array(4);
  private nextSeen = 0;

  constructor(readonly evp: Evp) {
    this.memAddr = evp.addressOf(this.mem);
    this.cipher = evp.aes256gcm();
  }

  key(key: Uint8Array, encrypt: boolean): AeadKey {
    const ctx = this.evp.ctxNew();
    if (!ctx) throw new AeadError("EVP_CIPHER_CTX_new failed: out of memory");
    const k = new OpenSslKey(this, ctx, encrypt ? 1 : 0);
    k.rekey(key);
    return k;
  }

  /** The address of byte `off` of `buf`, which must be off V8's heap (over 64 bytes). */
  address(buf: Uint8Array, off: number): number {
    const ab = buf.buffer;
    const seen = this.seen;
    for (let i = 0; i < 4; i++) if (seen[i] === ab) return this.seenAt[i] + buf.byteOffset + off;
    const i = this.nextSeen;
    this.nextSeen = (i + 1) & 3;
    seen[i] = ab;
    this.seenAt[i] = this.evp.addressOf(new Uint8Array(ab)); // once per ArrayBuffer
    return this.seenAt[i] + buf.byteOffset + off;
  }

  /** Sets the nonce: 4 zero bytes, then hi and lo, big-endian. */
  nonce(hi: number, lo: number): void {
    const m = this.mem;
    m[NONCE] = m[NONCE + 1] = m[NONCE + 2] = m[NONCE + 3] = 0;
    m[NONCE + 4] = hi >>> 24; m[NONCE + 5] = hi >>> 16; m[NONCE + 6] = hi >>> 8; m[NONCE + 7] = hi;
    m[NONCE + 8] = lo >>> 24; m[NONCE + 9] = lo >>> 16; m[NONCE + 10] = lo >>> 8; m[NONCE + 11] = lo;
  }
}

/** Where a buffer of V8's heap is copied through: scratch for a piece (a), and after it room for b. */
const onHeap = (buf: Uint8Array) => buf.buffer.byteLength <= ON_HEAP_MAX;

class OpenSslKey implements AeadKey {
  private ctx: number;

  constructor(private readonly a: OpenSslAead, ctx: number, private readonly enc: number) {
    this.ctx = ctx;
  }

  rekey(key: Uint8Array): void {
    if (key.length !== SEALED_KEY_LEN) throw new AeadError(`a key is ${SEALED_KEY_LEN} bytes, not ${key.length}`);
    const { a } = this;
    a.mem.set(key, KEY);
    const ok = a.evp.init(this.ctx, a.cipher, a.memAddr + KEY, 0, this.enc);
    a.mem.fill(0, KEY, KEY + SEALED_KEY_LEN);
    if (ok !== 1) throw new AeadError("EVP_CipherInit_ex refused the key");
  }

  seal(hi: number, lo: number, pa: Uint8Array, aOff: number, aLen: number, pb: Uint8Array, bOff: number, bLen: number, out: Uint8Array, outOff: number): boolean {
    const { a, ctx } = this;
    const evp = a.evp;
    const outl = a.memAddr + OUTL;
    if (onHeap(out)) return this.sealVia(hi, lo, pa, aOff, aLen, pb, bOff, bLen, out, outOff);
    const dst = a.address(out, outOff);
    a.nonce(hi, lo);
    if (evp.init(ctx, 0, 0, a.memAddr + NONCE, -1) !== 1) return false;
    if (aLen > 0 && evp.update(ctx, dst, outl, onHeap(pa) ? this.copyIn(pa, aOff, aLen, 0) : a.address(pa, aOff), aLen) !== 1) return false;
    if (bLen > 0 && evp.update(ctx, dst + aLen, outl, onHeap(pb) ? this.copyIn(pb, bOff, bLen, ON_HEAP_MAX) : a.address(pb, bOff), bLen) !== 1) return false;
    if (evp.final(ctx, dst + aLen + bLen, outl) !== 1) return false;
    return evp.ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SEALED_TAG_LEN, dst + aLen + bLen) === 1;
  }

  open(hi: number, lo: number, buf: Uint8Array, off: number, len: number): boolean {
    const { a, ctx } = this;
    const evp = a.evp;
    if (onHeap(buf)) return this.openVia(hi, lo, buf, off, len);
    const at = a.address(buf, off);
    const outl = a.memAddr + OUTL;
    a.nonce(hi, lo);
    if (evp.init(ctx, 0, 0, a.memAddr + NONCE, -1) !== 1) return false;
    if (len > 0 && evp.update(ctx, at, outl, at, len) !== 1) return false;
    if (evp.ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SEALED_TAG_LEN, at + len) !== 1) return false;
    return evp.final(ctx, at + len, outl) === 1;
  }

  free(): void {
    if (this.ctx) this.a.evp.ctxFree(this.ctx);
    this.ctx = 0;
  }

  /** Copies a small piece into scratch at `at` (0 or 64): its address there. */
  private copyIn(buf: Uint8Array, off: number, len: number, at: number): number {
    const m = this.a.mem;
    for (let i = 0; i < len; i++) m[SCRATCH + at + i] = buf[off + i];
    return this.a.memAddr + SCRATCH + at;
  }

  /** seal, for an output buffer on V8's heap (at most 64 bytes: a and b are smaller still). */
  private sealVia(hi: number, lo: number, pa: Uint8Array, aOff: number, aLen: number, pb: Uint8Array, bOff: number, bLen: number, out: Uint8Array, outOff: number): boolean {
    const m = this.a.mem;
    const tmp = new Uint8Array(aLen + bLen);
    tmp.set(pa.subarray(aOff, aOff + aLen), 0);
    tmp.set(pb.subarray(bOff, bOff + bLen), aLen);
    const n = aLen + bLen + SEALED_TAG_LEN;
    m.set(tmp, SCRATCH);
    const ok = this.seal(hi, lo, m, SCRATCH, aLen + bLen, m, 0, 0, m, SCRATCH);
    if (ok) for (let i = 0; i < n; i++) out[outOff + i] = m[SCRATCH + i];
    return ok;
  }

  private openVia(hi: number, lo: number, buf: Uint8Array, off: number, len: number): boolean {
    const m = this.a.mem;
    for (let i = 0; i < len + SEALED_TAG_LEN; i++) m[SCRATCH + i] = buf[off + i];
    const ok = this.open(hi, lo, m, SCRATCH, len);
    if (ok) for (let i = 0; i < len; i++) buf[off + i] = m[SCRATCH + i];
    return ok;
  }
}

let cached: Aead | undefined;

/** AES-256-GCM from OpenSSL, loaded once per thread; an AeadError says why it cannot be. */
export function openSslAead(): Aead {
  cached ??= new OpenSslAead(isDeno ? loadDeno() : loadNode());
  return cached;
}

// The sealed tapnet format (version 2): golden bytes of a whole sealed datagram, from a fixed key,
// epoch, counter and plaintext, checked against node:crypto's AES-256-GCM (an independent
// computation of the same cipher: the switch's own goes through OpenSSL's EVP calls by FFI).
import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openSslAead } from "../../src/io/aead.ts";
import { fromHex, toHex } from "../../src/wire/bytes.ts";
import {
  SEALED_HEADER_LEN, SEALED_OVERHEAD, SEALED_TAG_LEN, sealedCounterHi, sealedCounterLo, sealedEpoch, writeSealedHeader,
} from "../../src/wire/sealed.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const EPOCH = 1_767_225_600_000; // 2026-01-01T00:00:00Z in ms: 0x019b76daa800
const COUNTER = 258;
// The version-1 golden datagram of test/wire/tapnet.test.ts: frame id 0x1234, frame length
// 65000, offset 2920, a 4-byte chunk.
const PLAIN = fromHex("01 00 1234 0000fde8 00000b68 deadbeef");
// version 2, flags 0, epoch 0x019b76daa800, counter 258; then the ciphertext and GCM's tag.
const GOLDEN = fromHex(
  "02 00 019b76daa800 0000000000000102" +
  "0c2802a2649cedb9261c626d65ad8997" +
  "78ec60b21ff088c014fb3dccfcd77464",
);

function nodeSeal(key: Uint8Array, counter: number, plain: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setUint32(8, counter);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  return new Uint8Array(Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]));
}

describe("sealed header", () => {
  it("is version, flags, a 48-bit epoch and a 64-bit counter, big-endian", () => {
    const b = new Uint8Array(SEALED_HEADER_LEN + 4).fill(0xee);
    writeSealedHeader(b, 2, EPOCH, COUNTER);
    expect(toHex(b)).toBe("eeee" + "0200019b76daa8000000000000000102" + "eeee");
    expect(sealedEpoch(b, 2)).toBe(EPOCH);
    expect(sealedCounterHi(b, 2)).toBe(0);
    expect(sealedCounterLo(b, 2)).toBe(COUNTER);
  });

  it("carries the edges: epoch 2^48 - 1, counter 2^32 + 5", () => {
    const b = new Uint8Array(SEALED_HEADER_LEN);
    writeSealedHeader(b, 0, 2 ** 48 - 1, 2 ** 32 + 5);
    expect(toHex(b)).toBe("0200ffffffffffff0000000100000005");
    expect(sealedEpoch(b, 0)).toBe(2 ** 48 - 1);
    expect([sealedCounterHi(b, 0), sealedCounterLo(b, 0)]).toEqual([1, 5]);
  });
});

describe("a sealed datagram", () => {
  it("is the golden bytes: header, AES-256-GCM of the version-1 datagram under nonce 0^4 || counter, tag", () => {
    // The independent computation: node:crypto.
    expect(toHex(nodeSeal(KEY, COUNTER, PLAIN))).toBe(toHex(GOLDEN.subarray(SEALED_HEADER_LEN)));
    // The switch's: OpenSSL by FFI, the header written by the format's writer.
    const out = new Uint8Array(200);
    writeSealedHeader(out, 0, EPOCH, COUNTER);
    expect(openSslAead().key(KEY, true).seal(0, COUNTER, PLAIN, 0, 2, PLAIN, 2, PLAIN.length - 2, out, SEALED_HEADER_LEN)).toBe(true);
    expect(toHex(out.subarray(0, PLAIN.length + SEALED_OVERHEAD))).toBe(toHex(GOLDEN));
    expect(GOLDEN.length).toBe(PLAIN.length + SEALED_HEADER_LEN + SEALED_TAG_LEN);
  });

  it("opens to the version-1 datagram, and not with a bit flipped anywhere in the ciphertext or tag", () => {
    const open = openSslAead().key(KEY, false);
    const copy = new Uint8Array(256);
    copy.set(GOLDEN);
    expect(open.open(0, COUNTER, copy, SEALED_HEADER_LEN, PLAIN.length)).toBe(true);
    expect(toHex(copy.subarray(SEALED_HEADER_LEN, SEALED_HEADER_LEN + PLAIN.length))).toBe(toHex(PLAIN));
    for (let bit = SEALED_HEADER_LEN * 8; bit < GOLDEN.length * 8; bit++) {
      copy.set(GOLDEN);
      copy[bit >> 3] ^= 1 << (bit & 7);
      expect(open.open(0, COUNTER, copy, SEALED_HEADER_LEN, PLAIN.length), `bit ${bit}`).toBe(false);
    }
    copy.set(GOLDEN);
    expect(open.open(0, COUNTER + 1, copy, SEALED_HEADER_LEN, PLAIN.length)).toBe(false); // another nonce
  });
});

import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import {
  VXLAN_FLAG_I, VXLAN_FLAGS, VXLAN_HEADER_LEN, VXLAN_VNI,
  checkVxlanHeader, emitVxlan, parseVxlan, writeVxlanHeader, type VxlanRepr,
} from "../../src/wire/vxlan.ts";
import { prng, trials } from "../support/random.ts";
import { VXLAN_DATAGRAM } from "../support/vxlan-golden.ts";

// The golden datagram: test/support/vxlan-golden.ts says where its bytes come from.
const VXLAN_HEADER = fromHex("0800 0000 0000 0100");
const REPR: VxlanRepr = { vni: 1 };

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

describe("VXLAN header layout", () => {
  it("flags at 0, VNI at 4, 8 bytes, the I flag is 0x08 (RFC 7348)", () => {
    expect([VXLAN_FLAGS, VXLAN_VNI, VXLAN_HEADER_LEN, VXLAN_FLAG_I]).toEqual([0, 4, 8, 0x08]);
  });

  it("the golden datagram starts with the golden header", () => {
    expect(VXLAN_DATAGRAM.subarray(0, 8)).toEqual(VXLAN_HEADER);
  });
});

describe("VXLAN, golden datagram", () => {
  it("deconstruct: checkVxlanHeader accepts the header with its VNI inside a larger buffer", () => {
    const buf = new Uint8Array(2 + VXLAN_DATAGRAM.length).fill(0xee);
    buf.set(VXLAN_DATAGRAM, 2);
    expect(checkVxlanHeader(buf, 2, VXLAN_DATAGRAM.length, 1)).toBe(Drop.None);
  });

  it("construct: writeVxlanHeader writes exactly the golden 8 bytes at its offset, reserved bytes as zero", () => {
    const buf = new Uint8Array(3 + 8 + 3).fill(0xff);
    writeVxlanHeader(buf, 3, 1);
    expect(buf.subarray(3, 11)).toEqual(VXLAN_HEADER);
    expect(buf.subarray(0, 3)).toEqual(Uint8Array.of(0xff, 0xff, 0xff));
    expect(buf.subarray(11)).toEqual(Uint8Array.of(0xff, 0xff, 0xff));
  });

  it("parse: the golden datagram gives VNI 1", () => {
    expect(parseVxlan(VXLAN_DATAGRAM)).toEqual(REPR);
  });

  it("emit: emitVxlan writes the golden header over a dirty buffer and returns 8", () => {
    const buf = new Uint8Array(20).fill(0xff);
    expect(emitVxlan(REPR, buf, 4)).toBe(VXLAN_HEADER_LEN);
    expect(buf.subarray(4, 12)).toEqual(VXLAN_HEADER);
    expect(buf.subarray(0, 4).every((x) => x === 0xff)).toBe(true);
    expect(buf.subarray(12).every((x) => x === 0xff)).toBe(true);
  });
});

describe("VXLAN VNI encoding", () => {
  it("the VNI is 24 bits big-endian in bytes 4..6: 0x123456 → 12 34 56", () => {
    const buf = new Uint8Array(8).fill(0xff);
    writeVxlanHeader(buf, 0, 0x123456);
    expect(buf).toEqual(fromHex("0800 0000 1234 5600"));
    expect(ok(parseVxlan(buf)).vni).toBe(0x123456);
    expect(checkVxlanHeader(buf, 0, 8, 0x123456)).toBe(Drop.None);
  });

  it("the largest VNI 0xffffff round-trips and leaves the reserved bytes zero", () => {
    const buf = new Uint8Array(8).fill(0xaa);
    emitVxlan({ vni: 0xffffff }, buf, 0);
    expect(buf).toEqual(fromHex("0800 0000 ffff ff00"));
    expect(parseVxlan(buf)).toEqual({ vni: 0xffffff });
  });

  it("a header whose VNI differs from ours in any one of its three bytes is vxlan_wrong_vni", () => {
    for (const [i, v] of [[4, 0x01], [5, 0x01], [6, 0x02]] as const) {
      const buf = VXLAN_HEADER.slice();
      buf[i] = v;
      expect(checkVxlanHeader(buf, 0, 8, 1), `byte ${i}`).toBe(Drop.VxlanWrongVni);
    }
    expect(checkVxlanHeader(VXLAN_HEADER, 0, 8, 2)).toBe(Drop.VxlanWrongVni);
    expect(checkVxlanHeader(VXLAN_HEADER, 0, 8, 0x010001)).toBe(Drop.VxlanWrongVni);
  });

  it("the VNI is read at the given offset, not at 0", () => {
    const buf = new Uint8Array(16);
    writeVxlanHeader(buf, 0, 7);
    writeVxlanHeader(buf, 8, 9);
    expect(checkVxlanHeader(buf, 8, 8, 9)).toBe(Drop.None);
    expect(checkVxlanHeader(buf, 8, 8, 7)).toBe(Drop.VxlanWrongVni);
  });
});

describe("VXLAN malformed headers", () => {
  it("a header without the I flag is vxlan_bad_flags, with the right VNI too", () => {
    const buf = VXLAN_HEADER.slice();
    buf[0] = 0x00;
    expect(checkVxlanHeader(buf, 0, 8, 1)).toBe(Drop.VxlanBadFlags);
    expect(parseVxlan(buf)).toBe(Drop.VxlanBadFlags);
  });

  it("every other flag bit set but not I is still vxlan_bad_flags", () => {
    const buf = VXLAN_HEADER.slice();
    buf[0] = 0xf7;
    expect(checkVxlanHeader(buf, 0, 8, 1)).toBe(Drop.VxlanBadFlags);
    expect(parseVxlan(buf)).toBe(Drop.VxlanBadFlags);
  });

  it("the I flag is checked at the header's offset, not at 0", () => {
    const buf = new Uint8Array(12);
    buf[0] = VXLAN_FLAG_I;
    buf.set(VXLAN_HEADER, 4);
    buf[4] = 0;
    expect(checkVxlanHeader(buf, 4, 8, 1)).toBe(Drop.VxlanBadFlags);
  });

  it("reserved flag bits and reserved bytes are ignored on receipt", () => {
    const buf = fromHex("ff12 3456 0000 01ab");
    expect(checkVxlanHeader(buf, 0, 8, 1)).toBe(Drop.None);
    expect(parseVxlan(buf)).toEqual({ vni: 1 });
  });

  it("7 bytes are vxlan_truncated, 8 are a whole header (the boundary)", () => {
    expect(checkVxlanHeader(VXLAN_HEADER, 0, 7, 1)).toBe(Drop.VxlanTruncated);
    expect(checkVxlanHeader(VXLAN_HEADER, 0, 8, 1)).toBe(Drop.None);
    expect(checkVxlanHeader(VXLAN_HEADER, 0, 0, 1)).toBe(Drop.VxlanTruncated);
    expect(parseVxlan(VXLAN_HEADER.subarray(0, 7))).toBe(Drop.VxlanTruncated);
    expect(parseVxlan(VXLAN_HEADER.subarray(0, 8))).toEqual(REPR);
    expect(parseVxlan(new Uint8Array(0))).toBe(Drop.VxlanTruncated);
  });

  it("truncation is judged before the flags: 7 bytes without the I flag are vxlan_truncated", () => {
    const buf = new Uint8Array(8);
    expect(checkVxlanHeader(buf, 0, 7, 0)).toBe(Drop.VxlanTruncated);
    expect(parseVxlan(buf.subarray(0, 7))).toBe(Drop.VxlanTruncated);
  });

  it("the flags are judged before the VNI: no I flag and a wrong VNI is vxlan_bad_flags", () => {
    expect(checkVxlanHeader(fromHex("0000 0000 0000 0200"), 0, 8, 1)).toBe(Drop.VxlanBadFlags);
  });

  it("random headers are classified as a naive reading of RFC 7348 says", () => {
    const rnd = prng(7348);
    const byte = () => Math.floor(rnd() * 256);
    for (let t = 0; t < trials(500); t++) {
      const len = Math.floor(rnd() * 12);
      const b = Uint8Array.from({ length: 12 }, byte);
      if (rnd() < 0.5) b[0] |= 0x08;
      const ourVni = rnd() < 0.5 ? b[4] * 65536 + b[5] * 256 + b[6] : Math.floor(rnd() * 0x1000000);
      // Naive model: a whole header, then bit 3 of byte 0, then bytes 4, 5, 6 against ours.
      let want: DropReason = Drop.None;
      if (len < 8) want = Drop.VxlanTruncated;
      else if ((b[0] >> 3) % 2 === 0) want = Drop.VxlanBadFlags;
      else if (b[4] !== ourVni >>> 16 || b[5] !== ((ourVni >>> 8) & 0xff) || b[6] !== (ourVni & 0xff)) want = Drop.VxlanWrongVni;
      expect(checkVxlanHeader(b, 0, len, ourVni), `trial ${t}`).toBe(want);
      const parsed = parseVxlan(b.subarray(0, len));
      if (want === Drop.VxlanTruncated || want === Drop.VxlanBadFlags) expect(parsed).toBe(want);
      else expect(parsed).toEqual({ vni: b[4] * 65536 + b[5] * 256 + b[6] });
    }
  });
});

import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import {
  GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_UDP_L4, ETH_OFF, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM,
  emitVirtioNetHdr, parseVirtioNetHdr, vnetGsoType, type VirtioNetHdr,
} from "../../src/wire/virtio.ts";

// No capture exists for virtio_net_hdr (tcpdump never sees it), so these golden bytes were
// written by hand from struct virtio_net_hdr in linux/virtio_net.h, little-endian:
//   u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size, le16 csum_start, le16 csum_offset.

/**
 * A TCPv4 super-frame as a TAP hands it over: NEEDS_CSUM, GSO_TCPV4, headers 66 bytes
 * (14 Ethernet + 20 IPv4 + 32 TCP), segments of 1448 bytes, checksum from byte 34 (the TCP
 * header) stored 16 bytes in (the TCP checksum field).
 */
const TSO_HDR = fromHex("01 01 4200 a805 2200 1000");
const TSO_REPR: VirtioNetHdr = {
  flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16,
};

/** A plain frame whose checksum the sender already checked: DATA_VALID, no GSO. */
const PLAIN_HDR = fromHex("02 00 0000 0000 0000 0000");
const PLAIN_REPR: VirtioNetHdr = { flags: VNET_F_DATA_VALID, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

/** Every 16-bit field with both bytes distinct, to catch a swapped byte order: 0x1234 is 34 12. */
const BYTE_ORDER_HDR = fromHex("ab 85 3412 7856 bc9a f0de");
const BYTE_ORDER_REPR: VirtioNetHdr = {
  flags: 0xab, gsoType: GSO_ECN | GSO_UDP_L4, hdrLen: 0x1234, gsoSize: 0x5678, csumStart: 0x9abc, csumOffset: 0xdef0,
};

const GOLDEN: [string, Uint8Array, VirtioNetHdr][] = [
  ["TSO", TSO_HDR, TSO_REPR], ["plain", PLAIN_HDR, PLAIN_REPR], ["byte order", BYTE_ORDER_HDR, BYTE_ORDER_REPR],
];

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

describe("virtio_net_hdr, hand-written golden bytes", () => {
  it("deconstruct/parse: each header gives its fields", () => {
    for (const [name, golden, repr] of GOLDEN) expect(parseVirtioNetHdr(golden), name).toEqual(repr);
  });

  it("parse reads the header at its offset, in front of a frame", () => {
    const buf = new Uint8Array(4 + 10 + 14);
    buf.set(TSO_HDR, 4);
    expect(parseVirtioNetHdr(buf, 4)).toEqual(TSO_REPR);
  });

  it("construct: emit reproduces each header and returns 10", () => {
    for (const [name, golden, repr] of GOLDEN) {
      const buf = new Uint8Array(10).fill(0xee);
      expect(emitVirtioNetHdr(repr, buf, 0), name).toBe(ETH_OFF);
      expect(buf, name).toEqual(golden);
    }
  });

  it("construct: emit writes at its offset and nowhere else", () => {
    const buf = new Uint8Array(16).fill(0xee);
    emitVirtioNetHdr(TSO_REPR, buf, 3);
    expect(buf.subarray(3, 13)).toEqual(TSO_HDR);
    expect([...buf.subarray(0, 3), ...buf.subarray(13)].every((x) => x === 0xee)).toBe(true);
  });

  it("round-trip: parse then emit gives the same bytes", () => {
    for (const [name, golden] of GOLDEN) {
      const buf = new Uint8Array(10);
      emitVirtioNetHdr(ok(parseVirtioNetHdr(golden)), buf, 0);
      expect(buf, name).toEqual(golden);
    }
  });

  it("vnetGsoType reads the GSO type without the ECN bit", () => {
    expect(vnetGsoType(TSO_HDR, 0)).toBe(GSO_TCPV4);
    expect(vnetGsoType(BYTE_ORDER_HDR, 0)).toBe(GSO_UDP_L4);
    const buf = new Uint8Array(12);
    buf.set(TSO_HDR, 2);
    buf[3] = GSO_ECN | GSO_TCPV4;
    expect(vnetGsoType(buf, 2)).toBe(GSO_TCPV4);
  });
});

describe("virtio_net_hdr malformed input", () => {
  it("every length below 10 is truncated", () => {
    for (let len = 0; len < ETH_OFF; len++) {
      expect(parseVirtioNetHdr(TSO_HDR.slice(0, len)), `len ${len}`).toBe(Drop.VnetHdrTruncated);
    }
  });

  it("an offset leaving fewer than 10 bytes is truncated, an offset past the end too", () => {
    const buf = new Uint8Array(14);
    for (let off = 5; off <= 20; off++) expect(parseVirtioNetHdr(buf, off), `off ${off}`).toBe(Drop.VnetHdrTruncated);
    expect(parseVirtioNetHdr(buf, 4)).not.toBe(Drop.VnetHdrTruncated);
  });
});

import { describe, expect, it } from "vitest";
import { ETH_OFF, type PeerMacs } from "../../src/tunnel/backend.ts";
import { VxlanBackend, putMac } from "../../src/tunnel/vxlan.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { Drop } from "../../src/wire/drop.ts";
import { VXLAN_DATAGRAM } from "../support/vxlan-golden.ts";

// The golden datagram (test/support/vxlan-golden.ts): node 0's VTEP 0e:d1:4a:7c:22:31 sends
// node 2's VTEP 5a:36:9f:e0:8b:14 an ICMP echo request 10.244.1.2 → 10.244.2.3 (IPv4 packet of 44 bytes).
const DATAGRAM = VXLAN_DATAGRAM;
const IP_PACKET = DATAGRAM.subarray(22);
const IP_LEN = 44;

// Node 0, node 1 (another VTEP, never used as a destination below) and node 2.
const VTEP_HI = Uint16Array.of(0x0ed1, 0x0a0b, 0x5a36);
const VTEP_LO = Uint32Array.of(0x4a7c2231, 0x0c0d0e0f, 0x9fe08b14);

function macs(self: number): PeerMacs {
  return { vtepHi: VTEP_HI, vtepLo: VTEP_LO, self };
}

/** A slot holding a routed frame at `ethOff`: dirty Ethernet MACs (the router's), EtherType IPv4, the packet. */
function slotWithFrame(ethOff: number): Uint8Array {
  const slot = new Uint8Array(ethOff + 14 + IP_LEN + 6).fill(0xee);
  slot.set(fromHex("0a58 0af4 0102 0a58 0af4 0101 0800"), ethOff);
  slot.set(IP_PACKET, ethOff + 14);
  return slot;
}

/** A slot as the receiving node (node 2) fills it: `d` at recvOff, dirty bytes around. */
function received(b: VxlanBackend, d: Uint8Array): Uint8Array {
  const slot = new Uint8Array(b.recvOff + d.length + 8).fill(0xee);
  slot.set(d, b.recvOff);
  return slot;
}

describe("vxlan backend geometry", () => {
  it("is type vxlan, adds 22 bytes (VXLAN 8 + inner Ethernet 14), receives at ETH_OFF - 8", () => {
    const b = new VxlanBackend(1, macs(0));
    expect(b.type).toBe("vxlan");
    expect(b.overhead).toBe(22);
    expect(b.recvOff).toBe(ETH_OFF - 8);
    expect(b.recvOff).toBe(2);
  });

  it("innerLen is the datagram length less 22", () => {
    const b = new VxlanBackend(1, macs(0));
    expect(b.innerLen(DATAGRAM.length)).toBe(IP_LEN);
    expect(b.innerLen(22)).toBe(0);
  });
});

describe("vxlan encapsulate", () => {
  it("turns the frame at ETH_OFF into the golden datagram at offset 2, inner MACs from our VTEP to the peer's", () => {
    const b = new VxlanBackend(1, macs(0));
    const slot = slotWithFrame(ETH_OFF);
    const off = b.encapsulate(slot, ETH_OFF, IP_LEN, 2);
    expect(off).toBe(2);
    expect(slot.subarray(off, ETH_OFF + 14 + IP_LEN)).toEqual(DATAGRAM);
    expect(slot.subarray(0, 2)).toEqual(Uint8Array.of(0xee, 0xee));
    expect(slot.subarray(ETH_OFF + 14 + IP_LEN).every((x) => x === 0xee)).toBe(true);
  });

  it("the datagram begins 8 bytes before any ethOff, and carries the backend's VNI", () => {
    const b = new VxlanBackend(0x123456, macs(2));
    const slot = slotWithFrame(40);
    expect(b.encapsulate(slot, 40, IP_LEN, 0)).toBe(32);
    expect(slot.subarray(32, 40)).toEqual(fromHex("0800 0000 1234 5600"));
    expect(slot.subarray(40, 54)).toEqual(fromHex("0ed1 4a7c 2231 5a36 9fe0 8b14 0800"));
    expect(slot.subarray(54, 54 + IP_LEN)).toEqual(IP_PACKET);
    expect(slot.subarray(0, 32).every((x) => x === 0xee)).toBe(true);
  });

  it("what one node encapsulates, the peer it was for decapsulates", () => {
    const tx = new VxlanBackend(5, macs(0));
    const rx = new VxlanBackend(5, macs(2));
    const slot = slotWithFrame(ETH_OFF);
    const off = tx.encapsulate(slot, ETH_OFF, IP_LEN, 2);
    const d = slot.slice(off, ETH_OFF + 14 + IP_LEN);
    expect(rx.decapsulate(received(rx, d), d.length)).toBe(Drop.None);
    expect(new VxlanBackend(5, macs(1)).decapsulate(received(rx, d), d.length)).toBe(Drop.VxlanNotForUs);
  });

  it("putMac writes hi as 2 bytes then lo as 4, big-endian", () => {
    const buf = new Uint8Array(8).fill(0xee);
    putMac(buf, 1, 0x0102, 0x03040506);
    expect(buf).toEqual(Uint8Array.of(0xee, 1, 2, 3, 4, 5, 6, 0xee));
  });
});

describe("vxlan decapsulate", () => {
  const rx = () => new VxlanBackend(1, macs(2));

  it("accepts the golden datagram at node 2 and leaves the inner frame, EtherType IPv4, at ETH_OFF", () => {
    const b = rx();
    const slot = received(b, DATAGRAM);
    expect(b.decapsulate(slot, DATAGRAM.length)).toBe(Drop.None);
    expect(slot.subarray(ETH_OFF, ETH_OFF + 14 + IP_LEN)).toEqual(DATAGRAM.subarray(8));
    expect(b.innerLen(DATAGRAM.length)).toBe(IP_LEN);
  });

  it("a datagram without the I flag is dropped as vxlan_bad_flags", () => {
    const d = DATAGRAM.slice();
    d[0] = 0;
    const b = rx();
    expect(b.decapsulate(received(b, d), d.length)).toBe(Drop.VxlanBadFlags);
  });

  it("a datagram with another VNI is dropped as vxlan_wrong_vni", () => {
    const d = DATAGRAM.slice();
    d[6] = 2;
    const b = rx();
    expect(b.decapsulate(received(b, d), d.length)).toBe(Drop.VxlanWrongVni);
    expect(new VxlanBackend(2, macs(2)).decapsulate(received(b, DATAGRAM), DATAGRAM.length)).toBe(Drop.VxlanWrongVni);
  });

  it("shorter than the VXLAN header is vxlan_truncated", () => {
    const b = rx();
    expect(b.decapsulate(received(b, DATAGRAM), 7)).toBe(Drop.VxlanTruncated);
    expect(b.decapsulate(received(b, DATAGRAM), 0)).toBe(Drop.VxlanTruncated);
  });

  it("a whole VXLAN header but less than an inner Ethernet header (8..21 bytes) is vxlan_truncated", () => {
    const b = rx();
    for (const len of [8, 9, 21]) expect(b.decapsulate(received(b, DATAGRAM), len), `len ${len}`).toBe(Drop.VxlanTruncated);
  });

  it("22 bytes (VXLAN and an inner Ethernet header, no packet) pass the tunnel checks", () => {
    const b = rx();
    expect(b.decapsulate(received(b, DATAGRAM.subarray(0, 22)), 22)).toBe(Drop.None);
  });

  it("an inner frame for another VTEP MAC is dropped as vxlan_not_for_us, whichever MAC byte differs", () => {
    const b = rx();
    for (const i of [8, 9, 10, 11, 12, 13]) {
      const d = DATAGRAM.slice();
      d[i] ^= 0x01;
      expect(b.decapsulate(received(b, d), d.length), `byte ${i}`).toBe(Drop.VxlanNotForUs);
    }
  });

  it("an inner frame addressed to the sender's own VTEP is not for us", () => {
    const b = new VxlanBackend(1, macs(0));
    expect(b.decapsulate(received(b, DATAGRAM), DATAGRAM.length)).toBe(Drop.VxlanNotForUs);
  });

  it("a non-IPv4 inner frame (IPv6, ARP) is dropped exactly as tunnel_not_ipv4", () => {
    const b = rx();
    for (const type of [0x86dd, 0x0806]) {
      const d = DATAGRAM.slice();
      d[20] = type >> 8;
      d[21] = type & 0xff;
      expect(b.decapsulate(received(b, d), d.length), type.toString(16)).toBe(Drop.TunnelNotIpv4);
    }
  });

  it("an EtherType off IPv4 in its high byte alone (0x0900) or its low byte alone (0x0801) is tunnel_not_ipv4", () => {
    const b = rx();
    for (const [hi, lo] of [[0x09, 0x00], [0x08, 0x01]]) {
      const d = DATAGRAM.slice();
      d[20] = hi;
      d[21] = lo;
      expect(b.decapsulate(received(b, d), d.length), `${hi}:${lo}`).toBe(Drop.TunnelNotIpv4);
    }
  });

  it("the checks come in order: flags, VNI, length, MAC, EtherType", () => {
    const b = rx();
    const bad = DATAGRAM.slice();
    bad[8] = 0; // not for us
    bad[20] = 0x86; // not IPv4
    expect(b.decapsulate(received(b, bad), bad.length)).toBe(Drop.VxlanNotForUs);
    bad[6] = 9; // wrong VNI
    expect(b.decapsulate(received(b, bad), bad.length)).toBe(Drop.VxlanWrongVni);
    expect(b.decapsulate(received(b, bad), 21)).toBe(Drop.VxlanWrongVni);
    bad[0] = 0; // no I flag
    expect(b.decapsulate(received(b, bad), bad.length)).toBe(Drop.VxlanBadFlags);
  });
});

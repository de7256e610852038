import { describe, expect, it } from "vitest";
import { ETH_OFF, type TunnelBackend } from "../../src/tunnel/backend.ts";
import { UdpBackend } from "../../src/tunnel/udp.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { Drop } from "../../src/wire/drop.ts";

// flannel's udp backend sends the inner IPv4 packet as the whole UDP payload. The packet here is
// the ICMP echo request 10.244.1.2 → 10.244.2.3 of test/wire/vxlan.test.ts (44 bytes).
const IP_PACKET = fromHex(`
  4500 002c 4ea1 4000 3f01 d443 0af4 0102
  0af4 0203 0800 00c5 0f68 0001 e5ab 036b
  0000 0000 f0ba 0e00 0000 0000`);

/** A slot as the receiving node fills it: `d` at recvOff, dirty bytes everywhere else. */
function received(b: UdpBackend, d: Uint8Array): Uint8Array {
  const slot = new Uint8Array(b.recvOff + d.length + 8).fill(0xee);
  slot.set(d, b.recvOff);
  return slot;
}

describe("udp backend geometry", () => {
  it("is type udp, adds no header, receives the packet right after the Ethernet header", () => {
    const b = new UdpBackend();
    expect(b.type).toBe("udp");
    expect(b.overhead).toBe(0);
    expect(b.recvOff).toBe(ETH_OFF + 14);
    expect(b.recvOff).toBe(24);
  });

  it("innerLen is the datagram length itself", () => {
    const b = new UdpBackend();
    expect(b.innerLen(44)).toBe(44);
    expect(b.innerLen(1)).toBe(1);
  });
});

describe("udp encapsulate", () => {
  it("the datagram is the IPv4 packet: it starts 14 bytes after the Ethernet header, nothing written", () => {
    const b: TunnelBackend = new UdpBackend();
    const slot = new Uint8Array(ETH_OFF + 14 + IP_PACKET.length).fill(0xee);
    slot.set(IP_PACKET, ETH_OFF + 14);
    const before = slot.slice();
    expect(b.encapsulate(slot, ETH_OFF, IP_PACKET.length, 1)).toBe(24);
    expect(slot).toEqual(before);
    expect(slot.subarray(24)).toEqual(IP_PACKET);
  });

  it("at any ethOff the datagram starts at ethOff + 14", () => {
    const b: TunnelBackend = new UdpBackend();
    expect(b.encapsulate(new Uint8Array(100), 40, 20, 0)).toBe(54);
  });
});

describe("udp decapsulate", () => {
  it("an IPv4 packet is accepted and the EtherType before it is set to IPv4, the rest untouched", () => {
    const b = new UdpBackend();
    const slot = received(b, IP_PACKET);
    expect(b.decapsulate(slot, IP_PACKET.length)).toBe(Drop.None);
    expect(slot.subarray(ETH_OFF + 12, ETH_OFF + 14)).toEqual(Uint8Array.of(0x08, 0x00));
    expect(slot.subarray(0, ETH_OFF + 12).every((x) => x === 0xee)).toBe(true);
    expect(slot.subarray(24, 24 + IP_PACKET.length)).toEqual(IP_PACKET);
  });

  it("only the version nibble counts: 0x4f and a 1-byte datagram 0x40 are accepted", () => {
    const b = new UdpBackend();
    expect(b.decapsulate(received(b, Uint8Array.of(0x4f)), 1)).toBe(Drop.None);
    expect(b.decapsulate(received(b, Uint8Array.of(0x40)), 1)).toBe(Drop.None);
  });

  it("an IPv6 packet (version 6) is dropped as tunnel_not_ipv4 and the EtherType is left alone", () => {
    const b = new UdpBackend();
    const d = IP_PACKET.slice();
    d[0] = 0x60;
    const slot = received(b, d);
    expect(b.decapsulate(slot, d.length)).toBe(Drop.TunnelNotIpv4);
    expect(slot.subarray(ETH_OFF + 12, ETH_OFF + 14)).toEqual(Uint8Array.of(0xee, 0xee));
  });

  it("versions next to 4 (3, 5) and a version in the low nibble (0x04) are tunnel_not_ipv4", () => {
    const b = new UdpBackend();
    for (const v of [0x35, 0x55, 0x04, 0x00, 0xf4]) {
      expect(b.decapsulate(received(b, Uint8Array.of(v)), 1), v.toString(16)).toBe(Drop.TunnelNotIpv4);
    }
  });

  it("an empty datagram is tunnel_not_ipv4, even with an IPv4 version byte left in the slot", () => {
    const b = new UdpBackend();
    const slot = received(b, IP_PACKET);
    expect(b.decapsulate(slot, 0)).toBe(Drop.TunnelNotIpv4);
    expect(slot.subarray(ETH_OFF + 12, ETH_OFF + 14)).toEqual(Uint8Array.of(0xee, 0xee));
  });
});

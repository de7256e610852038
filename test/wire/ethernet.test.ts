import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import { DROP_NAMES } from "../../src/switch/counters.ts";
import { Drop, type DropReason } from "../../src/wire/drop.ts";
import {
  ETH_DST, ETH_HEADER_LEN, ETH_SRC, ETHERTYPE_ARP, ETHERTYPE_IPV4,
  EthernetView, emitEthernet, parseEthernet, type EthernetRepr,
} from "../../src/wire/ethernet.ts";
import { formatMac } from "../../src/wire/mac.ts";

// Golden frames, captured 2026-11-23 (UTC) between two network namespaces joined by a veth pair:
//   tapnet-golden-a: veth-ga 02:00:0a:63:00:01, 10.99.0.1/24 and 10.99.5.1/24
//   tapnet-golden-b: veth-gb 02:00:0a:63:00:02, 10.99.0.2/24 and 10.99.5.2/24
// with `ip netns exec tapnet-golden-a tcpdump -U -i veth-ga -w arp_icmp.pcap -c 4 'arp or icmp'`
// while `ip netns exec tapnet-golden-a ping -c 1 -s 16 10.99.0.2` ran, dumped with
// `tcpdump -r arp_icmp.pcap -xx`.

/** ARP request, 02:00:0a:63:00:01 → broadcast: a plain Ethernet II frame. */
const ARP_REQUEST_FRAME = fromHex(`
  ffff ffff ffff 0200 0a63 0001 0806 0001
  0800 0604 0001 0200 0a63 0001 0a63 0001
  0000 0000 0000 0a63 0002`);

/** ICMP echo request 10.99.0.1 → 10.99.0.2, unicast. */
const ICMP_REQUEST_FRAME = fromHex(`
  0200 0a63 0002 0200 0a63 0001 0800 4500
  002c 4ea1 4000 4001 d767 0a63 0001 0a63
  0002 0800 00c5 0f68 0001 e5ab 036b 0000
  0000 f0ba 0e00 0000 0000`);

// 802.1Q, captured the same day, same namespaces. The kernel here has no 8021q module, so VLAN 5
// was made with tc BPF programs on both veths (egress: bpf_skb_vlan_push(skb, 0x8100, 5);
// ingress: bpf_skb_vlan_pop) and `ethtool -K veth-g? txvlan off rxvlan off`, so the kernel wrote
// the tag into the frame. Captured with `tcpdump -U -i veth-ga -w vlan.pcap -c 4 vlan` while
// `ping -c 1 -s 16 10.99.5.2` ran in tapnet-golden-a; dumped with `tcpdump -r vlan.pcap -xx`.

/** ICMP echo request 10.99.5.1 → 10.99.5.2 on VLAN 5. */
const VLAN_ICMP_REQUEST_FRAME = fromHex(`
  0200 0a63 0002 0200 0a63 0001 8100 0005
  0800 4500 002c 0386 4000 4001 1883 0a63
  0501 0a63 0502 0800 63e7 1028 0001 edab
  036b 0000 0000 8bd8 0700 0000 0000`);

/** ARP request on VLAN 5, to broadcast. */
const VLAN_ARP_REQUEST_FRAME = fromHex(`
  ffff ffff ffff 0200 0a63 0001 8100 0005
  0806 0001 0800 0604 0001 0200 0a63 0001
  0a63 0501 0000 0000 0000 0a63 0502`);

function ok<T extends object>(r: T | DropReason): T {
  if (typeof r === "number") throw new Error(`dropped: ${DROP_NAMES[r]}`);
  return r;
}

/** `frame` copied into a larger buffer behind `before` bytes, as the switch holds it. */
function embedded(frame: Uint8Array, before: number): Uint8Array {
  const b = new Uint8Array(before + frame.length + 7).fill(0xee);
  b.set(frame, before);
  return b;
}

describe("Ethernet II (untagged), golden capture", () => {
  const repr: EthernetRepr = { dst: "02:00:0a:63:00:02", src: "02:00:0a:63:00:01", vlans: [], etherType: ETHERTYPE_IPV4 };

  it("deconstruct: the view finds EtherType and payload of a frame inside a larger buffer", () => {
    const buf = embedded(ICMP_REQUEST_FRAME, 10);
    const v = new EthernetView();
    expect(v.wrap(buf, 10, ICMP_REQUEST_FRAME.length)).toBe(Drop.None);
    expect(v.off).toBe(10);
    expect(v.len).toBe(58);
    expect(v.etherType).toBe(ETHERTYPE_IPV4);
    expect(v.vlanTags).toBe(0);
    expect(v.payloadOff).toBe(10 + 14);
    expect(v.payloadLen).toBe(44);
    expect(formatMac(buf, v.off + ETH_DST)).toBe("02:00:0a:63:00:02");
    expect(formatMac(buf, v.off + ETH_SRC)).toBe("02:00:0a:63:00:01");
  });

  it("construct: emitEthernet writes the captured header and returns 14", () => {
    const buf = new Uint8Array(ICMP_REQUEST_FRAME.length);
    expect(emitEthernet(repr, buf, 0)).toBe(ETH_HEADER_LEN);
    buf.set(ICMP_REQUEST_FRAME.subarray(ETH_HEADER_LEN), ETH_HEADER_LEN);
    expect(buf).toEqual(ICMP_REQUEST_FRAME);
  });

  it("construct: emitEthernet writes at the offset it is given and nowhere else", () => {
    const buf = new Uint8Array(40).fill(0xee);
    expect(emitEthernet(repr, buf, 10)).toBe(14);
    expect(buf.subarray(10, 24)).toEqual(ICMP_REQUEST_FRAME.subarray(0, 14));
    expect(buf.subarray(0, 10).every((x) => x === 0xee)).toBe(true);
    expect(buf.subarray(24).every((x) => x === 0xee)).toBe(true);
  });

  it("parse: the captured frame gives its repr", () => {
    expect(parseEthernet(ICMP_REQUEST_FRAME)).toEqual(repr);
    expect(parseEthernet(ARP_REQUEST_FRAME)).toEqual({
      dst: "ff:ff:ff:ff:ff:ff", src: "02:00:0a:63:00:01", vlans: [], etherType: ETHERTYPE_ARP,
    });
  });

  it("round-trip: parse then emit reproduces the header bytes", () => {
    for (const frame of [ICMP_REQUEST_FRAME, ARP_REQUEST_FRAME]) {
      const buf = new Uint8Array(ETH_HEADER_LEN);
      emitEthernet(ok(parseEthernet(frame)), buf, 0);
      expect(buf).toEqual(frame.subarray(0, ETH_HEADER_LEN));
    }
  });

  it("a bare 14-byte header is a frame with an empty payload", () => {
    const v = new EthernetView();
    expect(v.wrap(ICMP_REQUEST_FRAME, 0, 14)).toBe(Drop.None);
    expect(v.payloadOff).toBe(14);
    expect(v.payloadLen).toBe(0);
  });
});

describe("Ethernet with an 802.1Q tag, golden capture", () => {
  const repr: EthernetRepr = { dst: "02:00:0a:63:00:02", src: "02:00:0a:63:00:01", vlans: [5], etherType: ETHERTYPE_IPV4 };

  it("deconstruct: the view skips the tag to the inner EtherType", () => {
    const buf = embedded(VLAN_ICMP_REQUEST_FRAME, 10);
    const v = new EthernetView();
    expect(v.wrap(buf, 10, VLAN_ICMP_REQUEST_FRAME.length)).toBe(Drop.None);
    expect(v.etherType).toBe(ETHERTYPE_IPV4);
    expect(v.vlanTags).toBe(1);
    expect(v.payloadOff).toBe(10 + 18);
    expect(v.payloadLen).toBe(44);
    expect(buf[v.payloadOff]).toBe(0x45); // the IPv4 header starts there
  });

  it("construct: emitEthernet writes the captured tagged header and returns 18", () => {
    const buf = new Uint8Array(18);
    expect(emitEthernet(repr, buf, 0)).toBe(18);
    expect(buf).toEqual(VLAN_ICMP_REQUEST_FRAME.subarray(0, 18));
  });

  it("parse: the repr lists the VLAN ID", () => {
    expect(parseEthernet(VLAN_ICMP_REQUEST_FRAME)).toEqual(repr);
    expect(parseEthernet(VLAN_ARP_REQUEST_FRAME)).toEqual({
      dst: "ff:ff:ff:ff:ff:ff", src: "02:00:0a:63:00:01", vlans: [5], etherType: ETHERTYPE_ARP,
    });
  });

  it("round-trip: parse then emit reproduces the tagged header", () => {
    for (const frame of [VLAN_ICMP_REQUEST_FRAME, VLAN_ARP_REQUEST_FRAME]) {
      const buf = new Uint8Array(18);
      emitEthernet(ok(parseEthernet(frame)), buf, 0);
      expect(buf).toEqual(frame.subarray(0, 18));
    }
  });

  it("the VLAN ID leaves out the priority and DEI bits of the tag", () => {
    const frame = VLAN_ICMP_REQUEST_FRAME.slice();
    frame[14] = 0xb0; // PCP 5, DEI 1, VID 5
    expect(ok(parseEthernet(frame)).vlans).toEqual([5]);
  });

  // Not captured: the kernel here cannot make QinQ. Hand-built from the captured frame by
  // putting an 802.1ad outer tag (VID 100) in front of its 802.1Q tag.
  it("skips stacked 802.1ad + 802.1Q tags and lists both VLAN IDs, outermost first", () => {
    const frame = new Uint8Array(VLAN_ICMP_REQUEST_FRAME.length + 4);
    frame.set(VLAN_ICMP_REQUEST_FRAME.subarray(0, 12), 0);
    frame.set([0x88, 0xa8, 0x00, 0x64], 12);
    frame.set(VLAN_ICMP_REQUEST_FRAME.subarray(12), 16);
    const v = new EthernetView();
    expect(v.wrap(frame, 0, frame.length)).toBe(Drop.None);
    expect(v.vlanTags).toBe(2);
    expect(v.etherType).toBe(ETHERTYPE_IPV4);
    expect(v.payloadOff).toBe(22);
    expect(ok(parseEthernet(frame)).vlans).toEqual([100, 5]);
  });
});

describe("Ethernet malformed input", () => {
  it("every length below 14 is a runt", () => {
    const v = new EthernetView();
    for (let len = 0; len < ETH_HEADER_LEN; len++) {
      expect(v.wrap(ICMP_REQUEST_FRAME, 0, len), `len ${len}`).toBe(Drop.EthRunt);
      expect(parseEthernet(ICMP_REQUEST_FRAME.slice(0, len)), `len ${len}`).toBe(Drop.EthRunt);
    }
  });

  it("a tagged frame cut inside its tag or before the inner EtherType is truncated", () => {
    const v = new EthernetView();
    for (let len = 14; len < 18; len++) {
      expect(v.wrap(VLAN_ICMP_REQUEST_FRAME, 0, len), `len ${len}`).toBe(Drop.EthVlanTruncated);
      expect(parseEthernet(VLAN_ICMP_REQUEST_FRAME.slice(0, len)), `len ${len}`).toBe(Drop.EthVlanTruncated);
    }
    expect(v.wrap(VLAN_ICMP_REQUEST_FRAME, 0, 18)).toBe(Drop.None);
    expect(v.payloadLen).toBe(0);
  });

  it("the truncation check counts from the frame's offset, not the buffer's start", () => {
    // The buffer holds the whole frame, but the frame handed over is only 16 bytes long.
    const buf = embedded(VLAN_ICMP_REQUEST_FRAME, 10);
    expect(new EthernetView().wrap(buf, 10, 16)).toBe(Drop.EthVlanTruncated);
  });

  it("a second stacked tag cut short is truncated", () => {
    const frame = new Uint8Array(30);
    frame.set([0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00], 12);
    const v = new EthernetView();
    for (let len = 18; len < 22; len++) expect(v.wrap(frame, 0, len), `len ${len}`).toBe(Drop.EthVlanTruncated);
    expect(v.wrap(frame, 0, 22)).toBe(Drop.None);
  });

  it("emitEthernet refuses a repr with a malformed MAC, naming it, and writes nothing", () => {
    const buf = new Uint8Array(18).fill(0xee);
    expect(() => emitEthernet({ dst: "02:00:0a:63:00", src: "02:00:0a:63:00:01", vlans: [], etherType: 0x800 }, buf, 0))
      .toThrow(/^bad MAC in .*"dst":"02:00:0a:63:00"/);
    expect(() => emitEthernet({ dst: "02:00:0a:63:00:02", src: "nope", vlans: [], etherType: 0x800 }, buf, 0))
      .toThrow(/^bad MAC in .*"src":"nope"/);
    expect(buf.every((x) => x === 0xee)).toBe(true);
  });
});

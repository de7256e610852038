// The vxlan backend: Ethernet in VXLAN (RFC 7348) between VTEP MACs, as a Linux flannel.1 device sends it.
import { describe, expect, it } from "vitest";
import { backend } from "../../src/tunnel/index.ts";
import { VxlanBackend } from "../../src/tunnel/vxlan.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { countSubarrays } from "../support/subarrays.ts";
import { FrameCollector, testContext } from "../support/tunnel.ts";
import { VXLAN_DATAGRAM } from "../support/vxlan-golden.ts";

// The golden datagram (test/support/vxlan-golden.ts): node 0's VTEP 0e:d1:4a:7c:22:31 sends
// node 2's VTEP 5a:36:9f:e0:8b:14 an ICMP echo request 10.244.1.2 → 10.244.2.3 (IPv4 packet of 44 bytes).
const DATAGRAM = VXLAN_DATAGRAM;
const IP_PACKET = DATAGRAM.subarray(22);
const IP_LEN = 44;

// Node 0, node 1 (another VTEP, never used as a destination below) and node 2.
const VTEP_HI = Uint16Array.of(0x0ed1, 0x0a0b, 0x5a36);
const VTEP_LO = Uint32Array.of(0x4a7c2231, 0x0c0d0e0f, 0x9fe08b14);

function setup(self: number, vni = 1, segmenting = false) {
  const t = testContext({ self, vni, segmenting, vtepHi: VTEP_HI, vtepLo: VTEP_LO });
  return { ...t, b: new VxlanBackend(t.ctx) };
}

/** A routed frame as the switch hands it over: a virtio_net_hdr of 0xee, dirty Ethernet MACs (the router's), EtherType IPv4, the packet. */
function routedFrame(): Uint8Array {
  const f = new Uint8Array(ETH_OFF + 14 + IP_LEN).fill(0xee);
  f.set(fromHex("0a58 0af4 0102 0a58 0af4 0101 0800"), ETH_OFF);
  f.set(IP_PACKET, ETH_OFF + 14);
  return f;
}

/** Node `self` receives `d` (its first `len` bytes) alone, at recvOff in a dirty slot; the sink after it. */
function receive(self: number, d: Uint8Array, len = d.length, vni = 1): FrameCollector {
  const { b } = setup(self, vni);
  const slot = new Uint8Array(b.recvOff + d.length + 8).fill(0xee);
  slot.set(d, b.recvOff);
  const sink = new FrameCollector();
  expect(b.receive(slot, b.recvOff, len, 0, 0, sink)).toBe(1);
  sink.commit();
  return sink;
}

const drops = (self: number, d: Uint8Array, len = d.length) => receive(self, d, len).drops;

describe("vxlan backend", () => {
  it("is vxlan: per-packet, received segments merged, the datagram received at ETH_OFF - 8", () => {
    const { b } = setup(0);
    expect([b.name, b.wholeFrames, b.mergeReceived, b.recvOff]).toEqual(["vxlan", false, true, ETH_OFF - 8]);
    expect(b.recvOff).toBe(2);
    expect(backend("vxlan").create(testContext().ctx)).toBeInstanceOf(VxlanBackend);
  });
});

describe("vxlan send", () => {
  it("turns the frame into the golden datagram: the VXLAN header over the virtio_net_hdr, inner MACs from our VTEP to the peer's", () => {
    const { b, out, events } = setup(0);
    const f = routedFrame();
    expect(b.send(f, 0, f.length, 2)).toBe(1);
    b.flush();
    expect(out.datagrams).toEqual([{ peer: 2, bytes: DATAGRAM, send: 0 }]);
    expect(f.subarray(0, 2)).toEqual(Uint8Array.of(0xee, 0xee));
    expect(events).toEqual({ sent: 1, bytes: DATAGRAM.length, failed: 0 });
  });

  it("sends the frame at its offset in the buffer, the VXLAN header in its virtio_net_hdr", () => {
    const { b, out } = setup(0);
    const slot = new Uint8Array(200).fill(0xee);
    slot.set(routedFrame(), 50);
    expect(b.send(slot, 50, ETH_OFF + 14 + IP_LEN, 2)).toBe(1);
    expect(out.datagrams.map((d) => d.bytes)).toEqual([DATAGRAM]);
    expect(slot.subarray(0, 52).every((x) => x === 0xee)).toBe(true);
    expect(slot.subarray(50 + ETH_OFF + 14 + IP_LEN).every((x) => x === 0xee)).toBe(true);
  });

  it("carries the backend's VNI and this node's VTEP MAC, whatever they are", () => {
    const { b, out } = setup(2, 0x123456);
    b.send(routedFrame(), 0, ETH_OFF + 14 + IP_LEN, 0);
    const [d] = out.datagrams;
    expect(d.peer).toBe(0);
    expect(d.bytes.subarray(0, 8)).toEqual(fromHex("0800 0000 1234 5600"));
    expect(d.bytes.subarray(8, 22)).toEqual(fromHex("0ed1 4a7c 2231 5a36 9fe0 8b14 0800"));
    expect(d.bytes.subarray(22)).toEqual(IP_PACKET);
  });

  it("sendSegment: the VXLAN header goes in the 8 bytes before the segment's Ethernet header, then its headers, then its payload", () => {
    const { b, out, events } = setup(0, 1, true);
    const hdr = new Uint8Array(100).fill(0xee);
    hdr.set(DATAGRAM.subarray(8, 22 + 20), 40); // Ethernet and the IPv4 header, at 40
    const pay = Uint8Array.from({ length: 100 }, (_, i) => i);
    b.sendSegment(hdr, 40, 34, pay, 10, 24, 2);
    b.sendSegment(hdr, 40, 34, pay, 34, 0, 2);
    b.flush();
    expect(out.datagrams.map((d) => d.bytes)).toEqual([
      Uint8Array.from([...DATAGRAM.subarray(0, 42), ...pay.subarray(10, 34)]), DATAGRAM.subarray(0, 42),
    ]);
    expect(hdr.subarray(0, 32).every((x) => x === 0xee)).toBe(true);
    expect(out.sends).toEqual([{ peer: 2, bytes: 66 + 42, segment: 66 }]);
    expect(events).toEqual({ sent: 2, bytes: 108, failed: 0 });
  });

  it("with UDP_SEGMENT, small frames to one peer go in one send; a failed send is reported as frames lost", () => {
    const { b, out, events } = setup(0, 1, true);
    for (let i = 0; i < 3; i++) b.send(routedFrame(), 0, ETH_OFF + 14 + IP_LEN, 2);
    b.flush();
    expect(out.sends).toEqual([{ peer: 2, bytes: 3 * 66, segment: 66 }]);
    out.failing = true;
    b.send(routedFrame(), 0, ETH_OFF + 14 + IP_LEN, 2);
    b.flush();
    expect(events).toEqual({ sent: 3, bytes: 198, failed: 1 });
  });

  it("what one node sends, the peer it was for receives; another node drops it as not for it", () => {
    const { b, out } = setup(0, 5);
    b.send(routedFrame(), 0, ETH_OFF + 14 + IP_LEN, 2);
    const d = out.datagrams[0].bytes;
    expect(receive(2, d, d.length, 5).frames.map((f) => f.bytes)).toEqual([Uint8Array.from([...new Uint8Array(10), ...d.subarray(8)])]);
    expect(receive(1, d, d.length, 5).drops).toEqual(["vxlan_not_for_us"]);
  });

  it("makes no view per packet, sending or receiving", () => {
    const { ctx } = testContext({ segmenting: true, vtepHi: VTEP_HI, vtepLo: VTEP_LO, self: 2 });
    const b = new VxlanBackend({ ...ctx, out: { add: () => {}, send: () => true } });
    const f = routedFrame();
    const slot = new Uint8Array(2 + 2 * DATAGRAM.length);
    slot.set(DATAGRAM, 2);
    slot.set(DATAGRAM, 2 + DATAGRAM.length);
    const lent = { head: new Uint8Array(256), tail: { buf: slot, headLen: 0, offs: new Int32Array(1), lens: new Int32Array(1), count: 0 } };
    const sink = { lend: () => lent, frame: () => {}, drop: () => {}, commit: () => {} };
    expect(countSubarrays(() => {
      for (let i = 0; i < 10; i++) b.send(f, 0, f.length, 1);
      b.sendSegment(f, ETH_OFF, 14 + 28, f, ETH_OFF + 42, 16, 1);
      b.flush();
      expect(b.receive(slot, 2, 2 * DATAGRAM.length, DATAGRAM.length, 0, sink)).toBe(2);
    })).toBe(0);
  });
});

describe("vxlan receive", () => {
  it("takes the golden datagram at node 2: the inner frame in place, behind a zeroed virtio_net_hdr", () => {
    const sink = receive(2, DATAGRAM);
    expect(sink.drops).toEqual([]);
    const [f] = sink.frames;
    expect([f.off, f.len, f.lent, f.tail]).toEqual([0, ETH_OFF + 14 + IP_LEN, false, null]);
    expect(f.bytes).toEqual(Uint8Array.from([...new Uint8Array(10), ...DATAGRAM.subarray(8)]));
  });

  it("a datagram without the I flag is dropped as vxlan_bad_flags", () => {
    const d = DATAGRAM.slice();
    d[0] = 0;
    expect(drops(2, d)).toEqual(["vxlan_bad_flags"]);
  });

  it("a datagram with another VNI is dropped as vxlan_wrong_vni", () => {
    const d = DATAGRAM.slice();
    d[6] = 2;
    expect(drops(2, d)).toEqual(["vxlan_wrong_vni"]);
    expect(receive(2, DATAGRAM, DATAGRAM.length, 2).drops).toEqual(["vxlan_wrong_vni"]);
  });

  it("shorter than the VXLAN header, or than it and an inner Ethernet header (0..21 bytes), is vxlan_truncated", () => {
    for (const len of [0, 7, 8, 9, 21]) expect(drops(2, DATAGRAM, len), `len ${len}`).toEqual(["vxlan_truncated"]);
  });

  it("22 bytes (VXLAN and an inner Ethernet header, no packet) pass the tunnel checks: a frame of no packet", () => {
    const sink = receive(2, DATAGRAM, 22);
    expect(sink.drops).toEqual([]);
    expect(sink.frames.map((f) => f.len)).toEqual([ETH_OFF + 14]);
  });

  it("an inner frame for another VTEP MAC is dropped as vxlan_not_for_us, whichever MAC byte differs", () => {
    for (const i of [8, 9, 10, 11, 12, 13]) {
      const d = DATAGRAM.slice();
      d[i] ^= 0x01;
      expect(drops(2, d), `byte ${i}`).toEqual(["vxlan_not_for_us"]);
    }
  });

  it("an inner frame addressed to the sender's own VTEP is not for us", () => {
    expect(drops(0, DATAGRAM)).toEqual(["vxlan_not_for_us"]);
  });

  it("a non-IPv4 inner frame (IPv6, ARP), or an EtherType off IPv4 in one byte alone (0x0900, 0x0801), is tunnel_not_ipv4", () => {
    for (const type of [0x86dd, 0x0806, 0x0900, 0x0801]) {
      const d = DATAGRAM.slice();
      d[20] = type >> 8;
      d[21] = type & 0xff;
      expect(drops(2, d), type.toString(16)).toEqual(["tunnel_not_ipv4"]);
    }
  });

  it("the checks come in order: length, flags, VNI, length of the inner frame, MAC, EtherType", () => {
    const bad = DATAGRAM.slice();
    bad[8] = 0; // not for us
    bad[20] = 0x86; // not IPv4
    expect(drops(2, bad)).toEqual(["vxlan_not_for_us"]);
    expect(drops(2, bad, 21)).toEqual(["vxlan_truncated"]);
    bad[6] = 9; // wrong VNI
    expect(drops(2, bad)).toEqual(["vxlan_wrong_vni"]);
    expect(drops(2, bad, 21)).toEqual(["vxlan_wrong_vni"]);
    bad[0] = 0; // no I flag
    expect(drops(2, bad)).toEqual(["vxlan_bad_flags"]);
    expect(drops(2, bad, 7)).toEqual(["vxlan_truncated"]);
  });

  it("a GRO run: each datagram checked on its own; the first taken in place, the later ones in heads", () => {
    const { b } = setup(2);
    const other = DATAGRAM.slice();
    other[6] = 7;
    const n = DATAGRAM.length;
    const read = new Uint8Array(2 + 3 * n).fill(0xee);
    read.set(DATAGRAM, 2);
    read.set(other, 2 + n);
    read.set(DATAGRAM, 2 + 2 * n);
    const sink = new FrameCollector();
    expect(b.receive(read, 2, 3 * n, n, 0, sink)).toBe(3);
    sink.commit();
    expect(sink.log).toEqual(["frame", "drop vxlan_wrong_vni", "lend", "frame", "commit"]);
    const expected = Uint8Array.from([...new Uint8Array(10), ...DATAGRAM.subarray(8)]);
    expect(sink.frames.map((f) => [f.lent, f.bytes])).toEqual([[false, expected], [true, expected]]);
    expect(sink.frames[1].tail).toEqual({ buf: read, headLen: 24 + 28, pieces: [[2 + 2 * n + 22 + 28, 16]] });
  });
});

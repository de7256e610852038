// The udp backend: the inner IPv4 packet is the whole UDP payload, as flannel's udp backend sends it.
import { describe, expect, it } from "vitest";
import { backend } from "../../src/tunnel/index.ts";
import { UdpBackend } from "../../src/tunnel/udp.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { countSubarrays } from "../support/subarrays.ts";
import { FrameCollector, testContext } from "../support/tunnel.ts";
import { VXLAN_DATAGRAM } from "../support/vxlan-golden.ts";

// The ICMP echo request 10.244.1.2 → 10.244.2.3 of the golden VXLAN datagram (44 bytes).
const IP_PACKET = VXLAN_DATAGRAM.subarray(22);

function setup(segmenting = false) {
  const t = testContext({ segmenting });
  return { ...t, b: new UdpBackend(t.ctx) };
}

/** A frame as the switch hands it over: virtio_net_hdr, an Ethernet header (the router's MACs), the packet. */
function frameOf(p: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETH_OFF + 14 + p.length);
  f.set(fromHex("0a58 0af4 0102 0a58 0af4 0101 0800"), ETH_OFF);
  f.set(p, ETH_OFF + 14);
  return f;
}

/** A slot as the receiving node fills it: `d` at recvOff, dirty bytes everywhere else. */
function received(b: UdpBackend, d: Uint8Array): Uint8Array {
  const slot = new Uint8Array(b.recvOff + d.length + 8).fill(0xee);
  slot.set(d, b.recvOff);
  return slot;
}

/** Receives `d` alone; the sink after it. */
function receive(b: UdpBackend, d: Uint8Array, len = d.length): FrameCollector {
  const sink = new FrameCollector();
  expect(b.receive(received(b, d), b.recvOff, len, 0, 1, sink)).toBe(1);
  sink.commit();
  return sink;
}

describe("udp backend", () => {
  it("is udp: per-packet (segments cut by the switch), received segments merged, the packet received right after the Ethernet header", () => {
    const { b } = setup();
    expect([b.name, b.wholeFrames, b.mergeReceived, b.recvOff]).toEqual(["udp", false, true, ETH_OFF + 14]);
    expect(b.recvOff).toBe(24);
    expect(backend("udp").create(testContext().ctx)).toBeInstanceOf(UdpBackend);
  });
});

describe("udp send", () => {
  it("the datagram is the IPv4 packet, nothing of the frame written (golden bytes)", () => {
    const { b, out, events } = setup();
    const f = frameOf(IP_PACKET);
    const before = f.slice();
    expect(b.send(f, 0, f.length, 2)).toBe(1);
    b.flush();
    expect(out.datagrams).toEqual([{ peer: 2, bytes: IP_PACKET, send: 0 }]);
    expect(f).toEqual(before);
    expect(events).toEqual({ sent: 1, bytes: 44, failed: 0 });
  });

  it("sends the frame at its offset in the buffer", () => {
    const { b, out } = setup();
    const slot = new Uint8Array(300).fill(0xee);
    slot.set(frameOf(IP_PACKET), 100);
    expect(b.send(slot, 100, ETH_OFF + 14 + 44, 1)).toBe(1);
    expect(out.datagrams.map((d) => d.bytes)).toEqual([IP_PACKET]);
  });

  it("without UDP_SEGMENT each datagram is sent at once; with it, small packets to one peer go in one send at flush", () => {
    const plain = setup(false);
    const gso = setup(true);
    for (const s of [plain, gso]) {
      for (const peer of [1, 1, 2]) s.b.send(frameOf(IP_PACKET), 0, ETH_OFF + 14 + 44, peer);
    }
    expect(plain.out.sends).toEqual([{ peer: 1, bytes: 44, segment: 44 }, { peer: 1, bytes: 44, segment: 44 }, { peer: 2, bytes: 44, segment: 44 }]);
    expect(gso.out.sends).toEqual([{ peer: 1, bytes: 88, segment: 44 }]);
    gso.b.flush();
    expect(gso.out.sends).toEqual([{ peer: 1, bytes: 88, segment: 44 }, { peer: 2, bytes: 44, segment: 44 }]);
    expect(gso.out.datagrams.map((d) => d.bytes)).toEqual(plain.out.datagrams.map((d) => d.bytes));
    expect(gso.events).toEqual({ sent: 3, bytes: 132, failed: 0 });
  });

  it("sendSegment sends the segment's IPv4 and L4 headers (after its Ethernet header) and then its payload", () => {
    const { b, out, events } = setup(true);
    const hdr = new Uint8Array(100).fill(0xee);
    const headers = Uint8Array.from({ length: 54 }, (_, i) => i);
    hdr.set(headers, 30);
    const pay = Uint8Array.from({ length: 500 }, (_, i) => (i * 3) & 0xff);
    b.sendSegment(hdr, 30, 54, pay, 100, 300, 1);
    b.sendSegment(hdr, 30, 54, pay, 400, 0, 1); // headers alone: a segment of no payload
    b.flush();
    expect(out.datagrams.map((d) => d.bytes)).toEqual([
      Uint8Array.from([...headers.subarray(14), ...pay.subarray(100, 400)]), headers.subarray(14),
    ]);
    expect(out.sends).toEqual([{ peer: 1, bytes: 340 + 40, segment: 340 }]);
    expect(events).toEqual({ sent: 2, bytes: 380, failed: 0 });
  });

  it("a failed send is reported as frames lost, one per datagram of the run", () => {
    const { b, out, events } = setup(true);
    out.failing = true;
    b.send(frameOf(IP_PACKET), 0, ETH_OFF + 14 + 44, 1);
    b.send(frameOf(IP_PACKET), 0, ETH_OFF + 14 + 44, 1);
    b.flush();
    expect(events).toEqual({ sent: 0, bytes: 0, failed: 2 });
  });

  it("makes no view per packet, sending or receiving", () => {
    const { ctx } = testContext({ segmenting: true });
    const b = new UdpBackend({ ...ctx, out: { add: () => {}, send: () => true } });
    const f = frameOf(IP_PACKET);
    const slot = received(b, Uint8Array.from([...IP_PACKET, ...IP_PACKET])); // a GRO run of two: in place, then in a head
    const sink = { lend: () => ({ head: new Uint8Array(256), tail: { buf: slot, headLen: 0, offs: new Int32Array(1), lens: new Int32Array(1), count: 0 } }), frame: () => {}, drop: () => {}, commit: () => {} };
    const lent = sink.lend();
    sink.lend = () => lent;
    expect(countSubarrays(() => {
      for (let i = 0; i < 10; i++) b.send(f, 0, f.length, 1);
      b.sendSegment(f, ETH_OFF, 14 + 28, f, ETH_OFF + 42, 16, 1);
      b.flush();
      expect(b.receive(slot, b.recvOff, 88, 44, 1, sink)).toBe(2);
    })).toBe(0);
  });
});

describe("udp receive", () => {
  it("an IPv4 packet becomes a frame in place: virtio_net_hdr zeroed and EtherType IPv4 in front of it, MACs left for the switch", () => {
    const { b } = setup();
    const sink = receive(b, IP_PACKET);
    expect(sink.drops).toEqual([]);
    const [f] = sink.frames;
    expect([f.off, f.len, f.lent, f.tail]).toEqual([0, 24 + 44, false, null]);
    expect(f.bytes).toEqual(Uint8Array.from([...new Uint8Array(10), ...new Uint8Array(12).fill(0xee), 0x08, 0x00, ...IP_PACKET]));
  });

  it("only the version nibble counts: 0x4f and a 1-byte datagram 0x40 are taken", () => {
    const { b } = setup();
    expect(receive(b, Uint8Array.of(0x4f)).frames.map((f) => f.len)).toEqual([25]);
    expect(receive(b, Uint8Array.of(0x40)).frames.map((f) => f.len)).toEqual([25]);
  });

  it("an IPv6 packet (version 6) is dropped as tunnel_not_ipv4", () => {
    const { b } = setup();
    const d = IP_PACKET.slice();
    d[0] = 0x60;
    const sink = receive(b, d);
    expect(sink.frames).toEqual([]);
    expect(sink.drops).toEqual(["tunnel_not_ipv4"]);
  });

  it("versions next to 4 (3, 5) and a version in the low nibble (0x04) are tunnel_not_ipv4", () => {
    const { b } = setup();
    for (const v of [0x35, 0x55, 0x04, 0x00, 0xf4]) expect(receive(b, Uint8Array.of(v)).drops, v.toString(16)).toEqual(["tunnel_not_ipv4"]);
  });

  it("an empty datagram is one datagram, tunnel_not_ipv4, even with an IPv4 version byte left in the slot", () => {
    const { b } = setup();
    const sink = receive(b, IP_PACKET, 0);
    expect(sink.drops).toEqual(["tunnel_not_ipv4"]);
    expect(sink.frames).toEqual([]);
  });

  it("a GRO run: each datagram at the stride, the bad ones dropped, the others taken; the count of datagrams returned", () => {
    const { b } = setup();
    const bad = IP_PACKET.slice();
    bad[0] = 0x60;
    const read = new Uint8Array(b.recvOff + 3 * 44 + 20).fill(0xee);
    read.set(IP_PACKET, 24);
    read.set(bad, 24 + 44);
    read.set(IP_PACKET, 24 + 88);
    read.set(IP_PACKET.subarray(0, 20), 24 + 132);
    const sink = new FrameCollector();
    expect(b.receive(read, 24, 3 * 44 + 20, 44, 1, sink)).toBe(4);
    sink.commit();
    expect(sink.log).toEqual(["frame", "drop tunnel_not_ipv4", "lend", "frame", "lend", "frame", "commit"]);
    expect(sink.frames.map((f) => [f.lent, f.len])).toEqual([[false, 68], [true, 68], [true, 44]]);
    expect(sink.frames[1].bytes.subarray(24)).toEqual(IP_PACKET);
    expect(sink.frames[2].bytes.subarray(24)).toEqual(IP_PACKET.subarray(0, 20));
  });

  it("a stride of 0, or of the read's length or more, is one datagram", () => {
    const { b } = setup();
    for (const stride of [0, 44, 45, 1472]) {
      const sink = new FrameCollector();
      expect(b.receive(received(b, IP_PACKET), 24, 44, stride, 1, sink), `stride ${stride}`).toBe(1);
      expect(sink.frames.map((f) => [f.lent, f.len])).toEqual([[false, 68]]);
    }
  });

  it("what one node sends, another receives: the same packet, in a frame of EtherType IPv4", () => {
    const { b, out } = setup();
    const f = frameOf(IP_PACKET);
    b.send(f, 0, f.length, 1);
    const sink = receive(new UdpBackend(testContext({ self: 1 }).ctx), out.datagrams[0].bytes);
    expect(sink.frames[0].bytes.subarray(ETH_OFF + 12)).toEqual(f.subarray(ETH_OFF + 12));
  });
});

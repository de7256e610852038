// cli/trace: the headers of a recorded head read into fields, summed up, compared hop to hop; and
// the journey put together from two switches' records, in time order, the untouched stages left
// out, checked line by line.
import { describe, expect, it } from "vitest";
import { buildJourney, formatJourney, type NodeTrace } from "../../../src/cli/trace/journey.ts";
import { changes, readHeaders, summary } from "../../../src/cli/trace/headers.ts";
import { hopInterface, journeyPcapng } from "../../../src/cli/trace/pcapng-out.ts";
import { readPcapng } from "../../../src/wire/pcapng-read.ts";
import type { TraceRecord } from "../../../src/switch/trace/tracer.ts";
import { emitEthernet } from "../../../src/wire/ethernet.ts";
import { emitIcmp } from "../../../src/wire/icmp.ts";
import { emitIpv4 } from "../../../src/wire/ipv4.ts";
import { emitTcp } from "../../../src/wire/tcp.ts";
import { emitVirtioNetHdr, ETH_OFF, GSO_TCPV4, VNET_F_DATA_VALID } from "../../../src/wire/virtio.ts";

const MAC1 = "0a:58:0a:f4:01:02", GW1 = "0a:58:0a:f4:01:01", MAC2 = "0a:58:0a:f4:02:02", GW2 = "0a:58:0a:f4:02:01";

/** A frame's head as a switch records it: virtio_net_hdr, Ethernet, IPv4, ICMP echo. */
function echoHead(o: { src: string; dst: string; ttl: number; type: 0 | 8; ethSrc: string; ethDst: string; vnetFlags?: number }): string {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 16);
  b[0] = o.vnetFlags ?? 0;
  emitEthernet({ dst: o.ethDst, src: o.ethSrc, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 9, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: o.ttl, protocol: 1, src: o.src, dst: o.dst, payloadLen: 16 }, b, ETH_OFF + 14);
  emitIcmp({ type: o.type, code: 0, rest: (77 << 16) | 1, data: new Uint8Array(8) }, b, ETH_OFF + 34);
  return Buffer.from(b).toString("hex");
}

describe("headers", () => {
  it("reads the fields of every layer a head holds, and sums them up in a line", () => {
    const h = readHeaders(echoHead({ src: "10.244.1.2", dst: "10.244.2.2", ttl: 64, type: 8, ethSrc: MAC1, ethDst: GW1 }));
    expect(h).toEqual({
      vnet: { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0 },
      eth: { dst: GW1, src: MAC1, type: 0x0800 },
      ip: { src: "10.244.1.2", dst: "10.244.2.2", ttl: 64, proto: 1, id: 9, totalLen: 36, df: true },
      icmp: { type: 8, code: 0, id: 77, seq: 1 },
    });
    expect(summary(h)).toBe("10.244.1.2 → 10.244.2.2 ICMP echo request id 77 seq 1, TTL 64");
  });

  it("says a TCP super-frame is one, with its flags", () => {
    const b = new Uint8Array(ETH_OFF + 14 + 20 + 20);
    emitVirtioNetHdr({ flags: 0, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 0, csumOffset: 0 }, b, 0);
    emitEthernet({ dst: GW1, src: MAC1, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
    emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: "10.244.1.2", dst: "10.244.2.2", payloadLen: 20 + 64000 }, b, ETH_OFF + 14);
    emitTcp({ srcPort: 40000, dstPort: 5201, seq: 1, ack: 2, flags: 0x18, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
    expect(summary(readHeaders(Buffer.from(b).toString("hex")))).toBe("10.244.1.2 → 10.244.2.2 TCP 40000 → 5201 [ACK,PSH], TTL 64, a 64040 B TSO super-frame (segments of 1448)");
  });

  it("reads no further than the bytes go", () => {
    expect(readHeaders("00".repeat(9))).toEqual({});
    expect(summary(readHeaders(echoHead({ src: "1.1.1.1", dst: "2.2.2.2", ttl: 1, type: 8, ethSrc: MAC1, ethDst: GW1 }).slice(0, 2 * 30)))).toBe(`Ethernet ${MAC1} → ${GW1}, type 0x0800`);
  });

  it("names what changed between two hops: MACs, TTL, translated addresses, checksum flags, a packet replaced", () => {
    const a = readHeaders(echoHead({ src: "10.244.1.2", dst: "10.244.2.2", ttl: 64, type: 8, ethSrc: MAC1, ethDst: GW1 }));
    const b = readHeaders(echoHead({ src: "10.244.1.2", dst: "10.244.2.9", ttl: 63, type: 8, ethSrc: GW2, ethDst: MAC2, vnetFlags: VNET_F_DATA_VALID }));
    expect(changes(a, b)).toEqual([
      `source MAC ${MAC1} → ${GW2}`, `destination MAC ${GW1} → ${MAC2}`, "TTL 64 → 63 (a router's hop)",
      "destination 10.244.2.2 → 10.244.2.9 (translated)", "virtio_net_hdr flags 0x00 → 0x02 (checksum already checked: DATA_VALID)",
    ]);
    expect(changes(a, a)).toEqual([]);
    const err = readHeaders(echoHead({ src: "10.244.1.1", dst: "10.244.1.2", ttl: 64, type: 0, ethSrc: GW1, ethDst: MAC1 }));
    expect(changes(a, { ...err, icmp: { ...err.icmp!, type: 3 } })).toEqual(["replaced: the switch answers with an ICMP destination unreachable from 10.244.1.1, quoting the packet"]);
  });
});

describe("the journey", () => {
  const rec = (p: Partial<TraceRecord>): TraceRecord => ({ filter: 1, frame: 1, t: 0, pipeline: "ports", stage: "tunnel-in", port: 1, node: -1, out: -1, len: 60, head: "", ...p });
  const req1 = echoHead({ src: "10.244.1.2", dst: "10.244.2.2", ttl: 64, type: 8, ethSrc: MAC1, ethDst: GW1 });
  const req1r = echoHead({ src: "10.244.1.2", dst: "10.244.2.2", ttl: 63, type: 8, ethSrc: MAC1, ethDst: GW1 });
  const req2 = echoHead({ src: "10.244.1.2", dst: "10.244.2.2", ttl: 62, type: 8, ethSrc: GW2, ethDst: MAC2, vnetFlags: VNET_F_DATA_VALID });
  const node1: NodeTrace = {
    node: "node1", lost: 0, nodes: ["node1", "node2"], ports: new Map([[0, "tapnet0"], [1, "node1-pod1"]]),
    macs: new Map([[MAC1, "node1-pod1"], [GW1, "node1's gateway, tapnet0"]]),
    records: [
      rec({ t: 1_000_000, stage: "tunnel-in", head: req1 }),
      rec({ t: 1_000_001, stage: "validate", head: req1 }),
      rec({ t: 1_000_004, stage: "route", out: -3, node: 1, head: req1r }),
      rec({ t: 1_000_005, stage: "bridge", out: -3, node: 1, head: req1r }),
      rec({ t: 1_000_010, stage: "tunnel-out", out: -6, node: 1, head: req1r }),
      rec({ t: 1_000_011, stage: "port-out", out: -6, node: 1, head: req1r }),
    ],
  };
  const node2: NodeTrace = {
    node: "node2", lost: 0, nodes: ["node1", "node2"], ports: new Map([[0, "tapnet0"], [1, "node2-pod1"]]),
    records: [
      rec({ t: 1_000_090, pipeline: "receive", stage: "deliver", port: -1, node: 0, out: 1, head: req2 }),
      rec({ t: 1_000_091, pipeline: "receive", stage: "conntrack", port: -1, node: 0, out: 1, head: req2 }),
      rec({ t: 1_000_095, pipeline: "receive", stage: "port-out", port: -1, node: 0, out: 1, head: req2 }),
    ],
  };

  it("orders both switches' hops by time, keeps the stages that touched the packet, and says what each did", () => {
    expect(formatJourney(buildJourney([node2, node1]))).toEqual([
      "     +0 µs  node1    read           in from port 1 (node1-pod1)",
      "                                    virtio_net_hdr  flags 0x00, gso none: the TAP's offload header; no checksum work; one packet",
      `                                    Ethernet        ${MAC1} (node1-pod1) → ${GW1} (node1's gateway, tapnet0), type 0x0800 (IPv4)`,
      "                                    IPv4            10.244.1.2 → 10.244.2.2, TTL 64 (each router takes one), id 9, 36 B, DF (no fragmenting: too big means an ICMP error back)",
      "                                    ICMP            echo request, id 77 (ping's own, the same in the reply), seq 1",
      "                                    bytes: virtio_net_hdr 0-9 · Ethernet 10-23 · IPv4 24-43 · ICMP 44-51 · data 52-59",
      "                                    0000  00 00 00 00 00 00 00 00 00 00|0a 58 0a f4 01 01",
      "                                    0010  0a 58 0a f4 01 02 08 00|45 00 00 24 00 09 40 00",
      "                                    0020  40 01 21 e5 0a f4 01 02 0a f4 02 02|08 00 f7 b1",
      "                                    0030  00 4d 00 01|00 00 00 00 00 00 00 00",
      "     +4 µs  node1    route          to node2: leaves this node through the tunnel",
      "                                    10.244.1.2 → 10.244.2.2 ICMP echo request id 77 seq 1, TTL 63",
      "                                    TTL 64 → 63 (a router's hop)",
      "    +10 µs  node1    tunnel-out     encapsulated and sent to the peer node",
      "    +90 µs  node2    deliver        in from node1 over the tunnel, to port 1 (node2-pod1)",
      "                                    virtio_net_hdr  flags 0x02, gso none: the TAP's offload header; checksum already checked (DATA_VALID); one packet",
      `                                    Ethernet        ${GW2} → ${MAC2}, type 0x0800 (IPv4)`,
      "                                    IPv4            10.244.1.2 → 10.244.2.2, TTL 62 (each router takes one), id 9, 36 B, DF (no fragmenting: too big means an ICMP error back)",
      "                                    ICMP            echo request, id 77 (ping's own, the same in the reply), seq 1",
      "    +95 µs  node2    port-out       written to port 1 (node2-pod1): the pod reads it",
    ]);
  });

  it("says a frame dropped where a stage took it without sending it, and nothing for no records", () => {
    const dropped: NodeTrace = { ...node1, records: [rec({ t: 5, head: req1 }), rec({ t: 7, stage: "conntrack", out: -6, head: req1 })] };
    expect(buildJourney([dropped]).map((h) => `${h.stage}: ${h.what}`)).toEqual(["read: in from port 1 (node1-pod1)", "conntrack: dropped here (no reason recorded: the switch's drop counters say why)"]);
    expect(buildJourney([{ ...node1, records: [] }])).toEqual([]);
  });

  it("as pcapng: an interface per place, a packet per hop without its virtio_net_hdr, comments, one packet id for the packet on every hop", () => {
    const hops = buildJourney([node1, node2]);
    expect(hops.map(hopInterface)).toEqual(["node1/tap:node1-pod1", "node1/route", "node1/tunnel-out", "node2/deliver", "node2/tap:node2-pod1"]);
    const file = readPcapng(journeyPcapng(hops, "tapnet test"));
    expect(file.interfaces.map((i) => [i.name, i.linkType])).toEqual(hops.map((h) => [hopInterface(h), 1]));
    expect(file.packets.map((p) => p.packetId)).toEqual([1n, 1n, 1n, 1n, 1n]);
    expect(file.packets[0].data).toEqual(Uint8Array.from(Buffer.from(req1, "hex")).subarray(10));
    expect(file.packets[0].originalLength).toBe(50);
    expect(file.packets[1].comments).toEqual(["route: to node2: leaves this node through the tunnel", "TTL 64 → 63 (a router's hop)"]);
    expect(file.packets[4].comments).toEqual(["port-out: written to port 1 (node2-pod1): the pod reads it"]);
    expect(file.packets.map((p) => p.timeNs)).toEqual([1_000_000_000n, 1_000_004_000n, 1_000_010_000n, 1_000_090_000n, 1_000_095_000n]);
    // The reply is another packet.
    const reply = echoHead({ src: "10.244.2.2", dst: "10.244.1.2", ttl: 64, type: 0, ethSrc: MAC2, ethDst: GW2 });
    const withReply = buildJourney([node1, { ...node2, records: [...node2.records, rec({ t: 1_000_200, frame: 2, stage: "tunnel-in", head: reply })] }]);
    expect(readPcapng(journeyPcapng(withReply, "t")).packets.map((p) => p.packetId)).toEqual([1n, 1n, 1n, 1n, 1n, 2n]);
  });
});

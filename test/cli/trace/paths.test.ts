// cli/trace: what the trace says on the paths besides a plain forward, from real header bytes:
// a drop or refusal named by its counted reason; a Service's translation and the reply's
// reverse, a source translation and its reverse; a frame handed to the node's kernel through
// tapnet0 and its masquerade, and the reply back; the underlay datagram of each backend, field
// by field and byte by byte, as a hop of the journey and as raw IPv4 in pcapng; the byte view,
// plain and in colour.
import { describe, expect, it } from "vitest";
import { byteView, frameLayers, useColor } from "../../../src/cli/trace/bytes.ts";
import { dropPhrase, Translations } from "../../../src/cli/trace/explain.ts";
import { readHeaders } from "../../../src/cli/trace/headers.ts";
import { buildJourney, formatJourney, type NodeTrace } from "../../../src/cli/trace/journey.ts";
import { hopInterface, journeyPcapng } from "../../../src/cli/trace/pcapng-out.ts";
import { underlayDatagram } from "../../../src/cli/trace/underlay.ts";
import type { TraceRecord, UnderlayInfo } from "../../../src/switch/trace/tracer.ts";
import { internetChecksum } from "../../../src/wire/checksum.ts";
import { emitEthernet } from "../../../src/wire/ethernet.ts";
import { emitIcmp } from "../../../src/wire/icmp.ts";
import { emitIpv4 } from "../../../src/wire/ipv4.ts";
import { LINKTYPE_ETHERNET, LINKTYPE_IPV4 } from "../../../src/wire/pcapng.ts";
import { readPcapng } from "../../../src/wire/pcapng-read.ts";
import { emitTcp } from "../../../src/wire/tcp.ts";
import { ETH_OFF } from "../../../src/wire/virtio.ts";

const MAC1 = "0a:58:0a:f4:01:02", GW1 = "0a:58:0a:f4:01:01", MAC2 = "0a:58:0a:f4:02:04", GW2 = "0a:58:0a:f4:02:01";
const VTEP1 = "0e:00:c0:a8:38:0b", VTEP2 = "0e:00:c0:a8:38:0c";
const POD = "10.244.1.2", EP = "10.244.2.4", VIP = "10.96.77.10";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A TCP segment's head as a switch records it: virtio_net_hdr, Ethernet, IPv4, TCP. */
function tcpHead(o: { src: string; dst: string; sport: number; dport: number; flags?: number; ttl?: number; ethSrc?: string; ethDst?: string }): string {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20);
  emitEthernet({ dst: o.ethDst ?? GW1, src: o.ethSrc ?? MAC1, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 7, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: o.ttl ?? 64, protocol: 6, src: o.src, dst: o.dst, payloadLen: 20 }, b, ETH_OFF + 14);
  emitTcp({ srcPort: o.sport, dstPort: o.dport, seq: 100, ack: 0, flags: o.flags ?? 0x02, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  return hex(b);
}

/** An ICMP echo's head: virtio_net_hdr, Ethernet, IPv4, ICMP and 8 bytes of data. */
function echoHead(src: string, dst: string, type: 0 | 3 | 8, ethSrc = MAC1, ethDst = GW1): string {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 16);
  emitEthernet({ dst: ethDst, src: ethSrc, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 9, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 1, src, dst, payloadLen: 16 }, b, ETH_OFF + 14);
  emitIcmp({ type, code: 0, rest: (77 << 16) | 1, data: new Uint8Array(8) }, b, ETH_OFF + 34);
  return hex(b);
}

const rec = (p: Partial<TraceRecord>): TraceRecord => ({ filter: 1, frame: 1, t: 0, pipeline: "ports", stage: "tunnel-in", port: 1, node: -1, out: -1, len: 60, head: "", ...p });
const node1 = (records: TraceRecord[], extra: Partial<NodeTrace> = {}): NodeTrace => ({
  node: "node1", lost: 0, nodes: ["node1", "node2"], ports: new Map([[0, "tapnet0"], [1, "node1-pod1"]]), records, ...extra,
});
const said = (traces: NodeTrace[]) => buildJourney(traces).map((h) => `${h.node} ${h.stage}: ${h.what}`);

describe("drops and refusals", () => {
  it("names the reason a stage counted, at the stage that counted it", () => {
    const head = echoHead(POD, "10.244.2.2", 8);
    expect(said([node1([rec({ t: 1, head }), rec({ t: 2, stage: "conntrack", out: -6, head, why: "policy_denied_egress" }), rec({ t: 3, stage: "port-out", out: -6, head, why: "policy_denied_egress" })])])).toEqual([
      "node1 read: in from port 1 (node1-pod1)",
      "node1 conntrack: dropped: policy_denied_egress (a NetworkPolicy isolates the source pod for egress and none of its rules allows this flow)",
    ]);
    const n2: NodeTrace = { ...node1([]), node: "node2", records: [
      rec({ t: 5, pipeline: "receive", stage: "deliver", port: -1, node: 0, out: 3, head }),
      rec({ t: 6, pipeline: "receive", stage: "conntrack", port: -1, node: 0, out: -6, head, why: "policy_denied_ingress" }),
    ] };
    expect(buildJourney([n2]).map((h) => [h.stage, h.why ?? ""])).toEqual([["deliver", ""], ["conntrack", "policy_denied_ingress"]]);
    expect(said([n2])[1]).toBe("node2 conntrack: dropped: policy_denied_ingress (a NetworkPolicy isolates the destination pod for ingress and none of its rules allows this flow)");
  });

  it("follows a refused frame into the ICMP error the gateway writes in its place, and back to the pod", () => {
    const head = echoHead(POD, "10.244.2.2", 8);
    const err = echoHead("10.244.1.1", POD, 3, GW1, MAC1);
    expect(said([node1([
      rec({ t: 1, head }), rec({ t: 2, stage: "route", out: -4, head, why: "frag_needed" }),
      rec({ t: 3, stage: "gateway", out: 1, head: err, why: "frag_needed" }), rec({ t: 4, stage: "port-out", out: 1, head: err, why: "frag_needed" }),
    ])])).toEqual([
      "node1 read: in from port 1 (node1-pod1)",
      "node1 route: refused: frag_needed (larger than the tunnel's MTU, DF set); the gateway answers with an ICMP error",
      "node1 gateway: the ICMP error, made in the frame's place, goes back to port 1 (node1-pod1)",
      "node1 port-out: written to port 1 (node1-pod1): the pod reads it",
    ]);
  });

  it("says a failed write as such, and a reason it has no phrase for by its counter", () => {
    const head = echoHead(POD, "10.244.1.3", 8);
    expect(said([node1([rec({ t: 1, head }), rec({ t: 2, stage: "bridge", out: 2, head }), rec({ t: 3, stage: "port-out", out: 2, head, why: "tx_error" })])])[2])
      .toBe("node1 port-out: the write to port 2 failed: tx_error (the write failed (the queue full, or the device gone))");
    expect(dropPhrase("gso_malformed")).toBe("gso_malformed (see the switch's drop counters)");
  });
});

describe("conntrack's translations", () => {
  const h = (src: string, dst: string, sport: number, dport: number) => readHeaders(tcpHead({ src, dst, sport, dport }));

  it("names a Service's DNAT and the reply's reverse translation", () => {
    const t = new Translations();
    expect(t.explain(h(POD, VIP, 40000, 80), h(POD, EP, 40000, 8080), "tr/web:http"))
      .toBe(`service translation: ${VIP}:80 → ${EP}:8080 (tr/web:http): kube-proxy's DNAT, done in the switch's conntrack`);
    expect(t.explain(h(EP, POD, 8080, 40000), h(VIP, POD, 80, 40000)))
      .toBe(`reverse translation: the reply's source ${EP}:8080 → ${VIP}:80, the Service's address the client asked for`);
    expect(t.explain(h(POD, EP, 1, 2), h(POD, EP, 1, 2))).toBeUndefined();
  });

  it("names a source translation to the gateway address (hairpin) and its reverse", () => {
    const t = new Translations();
    expect(t.explain(h(POD, VIP, 40000, 80), h("10.244.1.1", POD, 40000, 8080))).toBe(
      `service translation: ${VIP}:80 → ${POD}:8080: kube-proxy's DNAT, done in the switch's conntrack; source translation: ${POD}:40000 → 10.244.1.1:40000 (the node's gateway address: the reply comes back through this switch)`);
    expect(t.explain(h(POD, "10.244.1.1", 8080, 40000), h(VIP, POD, 80, 40000))).toBe(
      `reverse source translation: the reply's destination 10.244.1.1:40000 → ${POD}:40000, back to the client's own; reverse translation: the reply's source ${POD}:8080 → ${VIP}:80, the Service's address the client asked for`);
  });

  it("says so at the conntrack hops of a journey", () => {
    const syn = tcpHead({ src: POD, dst: VIP, sport: 40000, dport: 80 });
    const dnat = tcpHead({ src: POD, dst: EP, sport: 40000, dport: 8080 });
    const rst = tcpHead({ src: EP, dst: POD, sport: 8080, dport: 40000, flags: 0x14, ethSrc: GW1, ethDst: MAC1 });
    const unnat = tcpHead({ src: VIP, dst: POD, sport: 80, dport: 40000, flags: 0x14, ethSrc: GW1, ethDst: MAC1 });
    const hops = buildJourney([node1([
      rec({ t: 1, head: syn }), rec({ t: 2, stage: "conntrack", head: dnat, service: "tr/web:http" }),
      rec({ t: 9, frame: 2, pipeline: "receive", stage: "deliver", port: -1, node: 1, out: 1, head: rst }),
      rec({ t: 10, frame: 2, pipeline: "receive", stage: "conntrack", port: -1, node: 1, out: 1, head: unnat }),
    ])]);
    expect(hops.map((x) => x.what)).toEqual([
      "in from port 1 (node1-pod1)",
      `service translation: ${VIP}:80 → ${EP}:8080 (tr/web:http): kube-proxy's DNAT, done in the switch's conntrack`,
      "in from node2 over the tunnel, to port 1 (node1-pod1)",
      `reverse translation: the reply's source ${EP}:8080 → ${VIP}:80, the Service's address the client asked for`,
    ]);
    expect(hops[1].changed).toEqual([`destination ${VIP} → ${EP} (translated)`, "ports 40000 → 80 become 40000 → 8080 (translated)"]);
  });
});

describe("the node's kernel, through tapnet0", () => {
  const kernel = { cluster: "10.244.0.0/16", nodes: ["192.168.56.11", "192.168.56.12"], gateway: "10.244.1.1", self: "192.168.56.11" };
  const out = echoHead(POD, "203.0.113.2", 8);
  const back = echoHead("203.0.113.2", POD, 0, GW1, MAC1);
  const records = [
    rec({ t: 1, head: out }), rec({ t: 2, stage: "bridge", out: 0, head: out }), rec({ t: 3, stage: "port-out", out: 0, head: out, kernel }),
    rec({ t: 9, frame: 2, port: 0, head: back, kernel }), rec({ t: 10, frame: 2, stage: "bridge", port: 0, out: 1, head: back }), rec({ t: 11, frame: 2, stage: "port-out", port: 0, out: 1, head: back }),
  ];
  const rule = `"ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 ip daddr != { 192.168.56.11, 192.168.56.12 } masquerade"`;

  it("hands a packet for beyond the cluster to the kernel, names the masquerade rule, and sees the reply come back through it", () => {
    const hops = buildJourney([node1(records)]);
    expect(hops.map((h) => `${h.stage} ${h.tap ?? "-"}: ${h.what}`)).toEqual([
      "read node1-pod1: in from port 1 (node1-pod1)",
      "bridge -: to port 0 (tapnet0)",
      "port-out tapnet0: handed to node1's kernel through tapnet0: beyond the cluster, the kernel routes it on",
      "read tapnet0: in from node1's kernel through tapnet0: from beyond the cluster, the masquerade undone (for 10.244.1.2 again)",
      "bridge -: to port 1 (node1-pod1)",
      "port-out node1-pod1: written to port 1 (node1-pod1): the pod reads it",
    ]);
    expect(hops[2].notes).toEqual([
      `node1's kernel masquerades it: nft table ip tapnet, chain postrouting, ${rule} (iptables' chain TAPNET-MASQ where nft is missing): source 10.244.1.2 becomes the address of node1's interface its route to 203.0.113.2 leaves by; the reply's destination goes back to 10.244.1.2`,
    ]);
    expect(formatJourney(hops)).toContain(`${"".padStart(36)}${hops[2].notes![0]}`);
  });

  it("gives the address the kernel masquerades to when the trace knows the route, and nothing to masquerade for the node itself", () => {
    const egress = new Map([["203.0.113.2", { source: "203.0.113.1", dev: "eth1" }]]);
    expect(buildJourney([node1(records, { egress })])[2].notes![0]).toContain("source 10.244.1.2 becomes 203.0.113.1 (node1's eth1); the reply");
    const toNode = echoHead(POD, "192.168.56.11", 8);
    const hops = buildJourney([node1([rec({ t: 1, head: toNode }), rec({ t: 3, stage: "port-out", out: 0, head: toNode, kernel })])]);
    expect(hops[1].what).toBe("handed to node1's kernel through tapnet0: for the node itself");
    expect(hops[1].notes).toBeUndefined();
  });
});

describe("the underlay datagram", () => {
  const frame = echoHead(POD, "10.244.2.2", 8); // 60 bytes: virtio_net_hdr, Ethernet, IPv4 (36 B)
  const info = (p: Partial<UnderlayInfo>): UnderlayInfo => ({
    backend: "vxlan", src: "192.168.56.11", dst: "192.168.56.12", port: 8472, vni: 1, sealed: false, datagramSize: 1472, vtepSrc: VTEP1, vtepDst: VTEP2, ...p,
  });
  const OUTER = "Outer IPv4      192.168.56.11 → 192.168.56.12, protocol 17 (UDP), TTL 64";
  const KERNEL = "the underlay, node to node; the node's kernel writes this header (shown as built from the switch socket's addresses; its id is the kernel's, 0 here)";

  it("VXLAN: outer IPv4 and UDP 8472, the VXLAN header with its VNI, the inner frame between the VTEP MACs", () => {
    const d = underlayDatagram(info({}), frame, 60);
    expect(d.len).toBe(20 + 8 + 8 + 50);
    // IPv4 (86 B, UDP, TTL 64, its checksum), UDP 8472 → 8472 (66 B), VXLAN (I flag, VNI 1).
    expect(hex(d.bytes.subarray(0, 36))).toBe("45000056000000004011892fc0a8380bc0a8380c" + "2118211800420000" + "0800000000000100");
    expect(internetChecksum(d.bytes, 0, 20)).toBe(0);
    expect(hex(d.bytes.subarray(36, 48))).toBe("0e00c0a8380c0e00c0a8380b");
    expect(hex(d.bytes.subarray(48))).toBe(frame.slice(2 * 22));
    expect(d.summary).toBe("192.168.56.11:8472 → 192.168.56.12:8472 UDP, VXLAN VNI 1, 86 B");
    expect(d.fields).toEqual([
      `${OUTER}, 86 B: ${KERNEL}`,
      "Outer UDP       8472 → 8472, 66 B: UDP 8472 is VXLAN as flannel sets it up (Linux's port; IANA's is 4789); checksum the kernel's (0 here)",
      "VXLAN           flags 0x08 (I: the VNI is valid), VNI 1 (flannel's: one network for the cluster), the reserved bytes 0",
      `Inner Ethernet  ${VTEP1} → ${VTEP2}: the two nodes' VTEP MACs (flannel.1's), as a Linux node expects; the pod's MACs stay behind`,
    ]);
    expect(d.layers.map((l) => `${l.name} ${l.start}-${l.end}`)).toEqual(["outer IPv4 0-20", "outer UDP 20-28", "VXLAN 28-36", "inner Ethernet 36-50"]);
    expect(underlayDatagram(info({ port: 4789, vni: 42 }), frame, 60).fields.slice(1, 3)).toEqual([
      "Outer UDP       4789 → 4789, 66 B: UDP 4789 is VXLAN as flannel sets it up (set in the cluster's config; its default is 8472) (Linux's port; IANA's is 4789); checksum the kernel's (0 here)",
      "VXLAN           flags 0x08 (I: the VNI is valid), VNI 42, the reserved bytes 0",
    ]);
  });

  it("flannel udp: the pod's IPv4 packet is the payload, no header of its own", () => {
    const d = underlayDatagram(info({ backend: "udp", port: 8285 }), frame, 60);
    expect(d.len).toBe(28 + 36);
    expect(hex(d.bytes.subarray(20, 28))).toBe("205d205d002c0000");
    expect(hex(d.bytes.subarray(28))).toBe(frame.slice(2 * 24));
    expect(d.fields.slice(1)).toEqual([
      "Outer UDP       8285 → 8285, 44 B: UDP 8285 is flannel's udp backend; checksum the kernel's (0 here)",
      "(no tunnel header: the UDP payload is the pod's IPv4 packet itself, its Ethernet header left behind)",
    ]);
  });

  it("tapnet: its own header before the frame as the TAP gave it, in as many chunks as it takes; sealed, said so", () => {
    const d = underlayDatagram(info({ backend: "tapnet", port: 8287 }), frame, 60);
    expect(d.len).toBe(28 + 12 + 60);
    // version 1, flags 0, frame id 0, frame length 60, chunk offset 0
    expect(hex(d.bytes.subarray(28, 40))).toBe("01" + "00" + "0000" + "0000003c" + "00000000");
    expect(hex(d.bytes.subarray(40))).toBe(frame);
    expect(d.fields[2]).toBe("tapnet header   version 1, flags 0, frame id (the sender's count of frames: not recorded, 0 here), frame length 60 B (virtio_net_hdr included), chunk offset 0: one datagram carries the frame whole");
    const big = underlayDatagram(info({ backend: "tapnet", port: 8287, sealed: true }), frame, 65000);
    expect([big.count, big.len]).toEqual([Math.ceil(65000 / (1472 - 12 - 32)), 1500]);
    expect(big.summary).toBe("192.168.56.11:8287 → 192.168.56.12:8287 UDP, tapnet, sealed, 1500 B (the first of 46 datagrams)");
    expect(big.fields.slice(2)).toEqual([
      "tapnet header   version 1, flags 0, frame id (the sender's count of frames: not recorded, 0 here), frame length 65000 B (virtio_net_hdr included), chunk offset 0: the first of 46 chunks of up to 1428 B, put back together by the far switch",
      "sealed          the cluster has a secret: header and chunk go encrypted (AES-256-GCM) behind a 16-byte header (version 2, key epoch, counter: the nonce) and before a 16-byte tag; shown as before sealing",
    ]);
  });

  it("is a hop of the journey after tunnel-out, the VTEP MACs named, and an interface of raw IPv4 in pcapng with its frame's packet id", () => {
    const sent = echoHead(POD, "10.244.2.2", 8, VTEP1, VTEP2);
    const hops = buildJourney([node1([
      rec({ t: 1, head: frame }), rec({ t: 2, stage: "route", out: -3, node: 1, head: frame }),
      rec({ t: 3, stage: "tunnel-out", out: -6, node: 1, head: sent, underlay: info({}) }),
    ])]);
    expect(hops[3].fields![3]).toBe(`Inner Ethernet  ${VTEP1} (node1's VTEP) → ${VTEP2} (node2's VTEP): the two nodes' VTEP MACs (flannel.1's), as a Linux node expects; the pod's MACs stay behind`);
    expect(hops.map((h) => `${h.stage}: ${h.what}`)).toEqual([
      "read: in from port 1 (node1-pod1)", "route: to node2: leaves this node through the tunnel", "tunnel-out: encapsulated and sent to the peer node",
      "underlay: on the wire to node2: 192.168.56.11:8472 → 192.168.56.12:8472 UDP, VXLAN VNI 1, 86 B",
    ]);
    expect(hops[2].changed).toEqual([`source MAC ${MAC1} → ${VTEP1} (node1's VTEP)`, `destination MAC ${GW1} → ${VTEP2} (node2's VTEP)`]);
    expect(hops.map(hopInterface)).toEqual(["node1/tap:node1-pod1", "node1/route", "node1/tunnel-out", "node1/underlay"]);
    const file = readPcapng(journeyPcapng(hops, "t"));
    expect(file.interfaces.map((i) => i.linkType)).toEqual([LINKTYPE_ETHERNET, LINKTYPE_ETHERNET, LINKTYPE_ETHERNET, LINKTYPE_IPV4]);
    expect(file.packets.map((p) => p.packetId)).toEqual([1n, 1n, 1n, 1n]);
    expect(file.packets[3].data[0]).toBe(0x45);
    expect(file.packets[3].originalLength).toBe(86);
    expect(file.packets[3].comments[0]).toBe("underlay: on the wire to node2: 192.168.56.11:8472 → 192.168.56.12:8472 UDP, VXLAN VNI 1, 86 B");
  });
});

describe("the udp backend's missing Ethernet header", () => {
  it("says the received frame has none until deliver writes one, and not what the slot held before", () => {
    const u: UnderlayInfo = { backend: "udp", src: "192.168.56.11", dst: "192.168.56.12", port: 8285, vni: 1, sealed: false, datagramSize: 1472, vtepSrc: VTEP1, vtepDst: VTEP2 };
    const stale = echoHead(POD, "10.244.2.2", 8, "0a:58:0a:f4:02:03", "33:33:00:00:00:02");
    const written = echoHead(POD, "10.244.2.2", 8, GW2, MAC2);
    const n2: NodeTrace = {
      node: "node2", lost: 0, nodes: ["node1", "node2"], ports: new Map([[1, "node2-pod1"]]), macs: new Map([[GW2, "node2's gateway, tapnet0"], [MAC2, "node2-pod1"]]),
      records: [
        rec({ t: 1, pipeline: "receive", stage: "merge", port: -1, node: 0, out: -1, head: stale, underlay: u }),
        rec({ t: 2, pipeline: "receive", stage: "deliver", port: -1, node: 0, out: 1, head: written }),
      ],
    };
    const hops = buildJourney([n2]);
    expect(hops[0].fields![1]).toBe("Ethernet        none yet: flannel's udp carries the IPv4 packet alone, and deliver writes this header");
    expect(hops[1].changed).toEqual([`Ethernet header written: ${GW2} (node2's gateway, tapnet0) → ${MAC2} (node2-pod1)`]);
  });
});

describe("the byte view", () => {
  it("finds a frame's layers and shows them plain, a | where each starts", () => {
    const b = Uint8Array.from(Buffer.from(tcpHead({ src: POD, dst: EP, sport: 1, dport: 2 }), "hex"));
    expect(frameLayers(b).map((l) => `${l.name} ${l.start}-${l.end}`)).toEqual(["virtio_net_hdr 0-10", "Ethernet 10-24", "IPv4 24-44", "TCP 44-64"]);
    expect(byteView(b, frameLayers(b), false, "  ")).toEqual([
      "  bytes: virtio_net_hdr 0-9 · Ethernet 10-23 · IPv4 24-43 · TCP 44-63",
      "  0000  00 00 00 00 00 00 00 00 00 00|0a 58 0a f4 01 01",
      "  0010  0a 58 0a f4 01 02 08 00|45 00 00 28 00 07 40 00",
      "  0020  40 06 21 dc 0a f4 01 02 0a f4 02 04|00 01 00 02",
      "  0030  00 00 00 64 00 00 00 00 50 02 01 f4 00 00 00 00",
    ]);
  });

  it("colours each layer when asked, and asks for colour only on a terminal without NO_COLOR", () => {
    const b = Uint8Array.from(Buffer.from(echoHead(POD, EP, 8), "hex")).subarray(0, 26);
    const [key, first, second] = byteView(b, frameLayers(b), true);
    expect(key).toBe("bytes: \x1b[90mvirtio_net_hdr 0-9\x1b[0m · \x1b[34mEthernet 10-23\x1b[0m · data 24-25");
    expect(first).toBe(`0000  ${Array(10).fill("\x1b[90m00\x1b[0m").join(" ")} ${["0a", "58", "0a", "f4", "01", "01"].map((x) => `\x1b[34m${x}\x1b[0m`).join(" ")}`);
    expect(second).toBe(`0010  ${["0a", "58", "0a", "f4", "01", "02", "08", "00"].map((x) => `\x1b[34m${x}\x1b[0m`).join(" ")} 45 00`);
    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: true }, { NO_COLOR: "1" })).toBe(false);
    expect(useColor({ isTTY: false }, {})).toBe(false);
    expect(useColor({}, { NO_COLOR: "" })).toBe(false);
  });

  it("comes at the first hop, and with bytes on at each hop whose bytes changed", () => {
    const a = echoHead(POD, "10.244.2.2", 8);
    const b = echoHead(POD, "10.244.2.2", 8, VTEP1, VTEP2);
    const hops = buildJourney([node1([rec({ t: 1, head: a }), rec({ t: 2, stage: "route", out: -3, node: 1, head: a }), rec({ t: 3, stage: "tunnel-out", out: -6, node: 1, head: b })])]);
    const views = (lines: string[]) => lines.filter((l) => l.trim().startsWith("bytes:")).length;
    expect(views(formatJourney(hops))).toBe(1);
    expect(views(formatJourney(hops, { bytes: true }))).toBe(2);
    expect(formatJourney(hops, { bytes: true, color: true }).some((l) => l.includes("\x1b[34m0e\x1b[0m"))).toBe(true);
  });
});

describe("the clock", () => {
  const head = echoHead(POD, "10.244.2.2", 8);
  const two = (boot2: string) => [
    node1([rec({ t: 1_000_050, mono: 500, boot: "b1", head }), rec({ t: 1_000_060, mono: 510, boot: "b1", stage: "route", out: -3, node: 1, head })]),
    { ...node1([]), node: "node2", records: [rec({ t: 1_000_000, mono: 530, boot: boot2, pipeline: "receive", stage: "deliver", port: -1, node: 0, out: 1, head })] },
  ];

  it("orders the switches of one machine (one boot id) by CLOCK_MONOTONIC, whatever their wall clocks say", () => {
    expect(buildJourney(two("b1")).map((h) => `${h.t} ${h.node} ${h.stage} ${h.at}`)).toEqual([
      "0 node1 read 1000050", "10 node1 route 1000060", "30 node2 deliver 1000000",
    ]);
  });

  it("falls back to the wall clocks across machines", () => {
    expect(buildJourney(two("b2")).map((h) => `${h.t} ${h.node} ${h.stage}`)).toEqual(["0 node2 deliver", "50 node1 read", "60 node1 route"]);
  });
});

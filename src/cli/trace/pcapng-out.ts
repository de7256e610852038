/**
 * A journey (journey.ts) as a pcapng file for Wireshark (`tapnet trace --pcapng FILE`): one
 * interface per place a packet was seen, named as the trace names it (`node1/tap:node1-pod1`
 * where a pod's frame is read or written, `node1/route` for a stage inside a switch), one
 * enhanced packet block per hop, with the hop's phrase and what changed as comments, and the
 * same packet id (epb_packetid) on every hop of one packet, so that Wireshark's packet id
 * follows it across hops and nodes. A packet is one frame through one switch, and is known to
 * the next switch by its IPv4 source, destination and identification, and its ICMP sequence or
 * TCP sequence: a translation (conntrack's) changes its headers, not its id.
 *
 * The switch keeps the first bytes of each frame (switch/trace/tracer.ts, HEAD_BYTES), so the
 * packets are cut there, their original length kept; the virtio_net_hdr before the Ethernet
 * header is left out (the link type is Ethernet), and said in the first hop's comment.
 *
 * The underlay datagram between two switches (journey.ts's "underlay" hop, built for display
 * from the sockets' addresses: underlay.ts) goes on an interface `node1/underlay` of link type
 * raw IPv4 (LINKTYPE_IPV4): outer IPv4, UDP, the backend's header, the frame. It carries the
 * packet id of the frame it carries.
 */
import { LINKTYPE_ETHERNET, LINKTYPE_IPV4, pcapngFile, type InterfaceSpec, type PacketSpec } from "../../wire/pcapng.ts";
import { readHeaders } from "./headers.ts";
import type { Hop } from "./journey.ts";

const VNET_LEN = 10;

/** Where a hop was seen, as an interface name. */
export function hopInterface(h: Hop): string {
  if (h.datagram) return `${h.node}/underlay`;
  return h.tap !== undefined ? `${h.node}/tap:${h.tap}` : `${h.node}/${h.stage}`;
}

/** The journey's pcapng file; `userappl` names the writer. */
export function journeyPcapng(hops: Hop[], userappl: string): Uint8Array {
  const interfaces: InterfaceSpec[] = [];
  const ifIndex = new Map<string, number>();
  const packetIds = new Map<string, number>();
  /** The packet id of each frame's last hop, by node and frame: an underlay datagram takes its frame's. */
  const frameIds = new Map<string, number>();
  let lastId = 0;
  const packets: PacketSpec[] = [];
  for (const h of hops) {
    const name = hopInterface(h);
    let id = ifIndex.get(name);
    if (id === undefined) {
      id = interfaces.length;
      ifIndex.set(name, id);
      interfaces.push({
        linkType: h.datagram ? LINKTYPE_IPV4 : LINKTYPE_ETHERNET, name, resolution: "us",
        description: h.datagram ? `${h.node}'s underlay: the tunnel's datagrams as the kernel sends them (outer headers built for display from the socket's addresses)`
          : h.tap !== undefined ? `${h.node}'s TAP port of ${h.tap}, as its switch reads and writes it` : `${h.node}'s switch, after its ${h.stage} stage`,
      });
    }
    const frameKey = `${h.node}/${h.frame}`;
    if (h.datagram) {
      const data = Uint8Array.from(Buffer.from(h.head, "hex"));
      const pid = frameIds.get(frameKey);
      packets.push({
        interfaceId: id, timeNs: BigInt(Math.round(h.at)) * 1000n, data, originalLength: Math.max(data.length, h.len),
        comments: [`${h.stage}: ${h.what}`, ...(h.fields ?? [])], ...(pid !== undefined ? { packetId: pid } : {}),
      });
      continue;
    }
    const head = Uint8Array.from(Buffer.from(h.head, "hex"));
    const hd = readHeaders(h.head);
    const l4 = hd.icmp ? `icmp ${hd.icmp.id} ${hd.icmp.seq}` : hd.tcp ? `tcp ${hd.tcp.seq}` : hd.udp ? `udp ${hd.udp.sport} ${hd.udp.dport}` : "";
    const key = hd.ip ? `${hd.ip.id} ${l4} ${[hd.ip.src, hd.ip.dst].sort().join(" ")} ${hd.icmp?.type ?? ""}` : `${h.node} ${h.frame}`;
    // One frame of one switch is one packet, translated or not; the next switch knows it by its headers.
    let pid = frameIds.get(frameKey) ?? packetIds.get(key);
    if (pid === undefined) pid = ++lastId;
    if (!packetIds.has(key)) packetIds.set(key, pid);
    frameIds.set(frameKey, pid);
    const data = head.subarray(Math.min(VNET_LEN, head.length));
    packets.push({
      interfaceId: id, timeNs: BigInt(Math.round(h.at)) * 1000n, data, originalLength: Math.max(data.length, h.len - VNET_LEN),
      comments: [`${h.stage}: ${h.what}`, ...h.changed], packetId: pid,
    });
  }
  return pcapngFile({ userappl, comments: ["tapnet trace: one interface per place a packet was seen, the same packet id on every hop of one packet"] }, interfaces, packets);
}

/**
 * The underlay datagram of a traced frame, for `tapnet trace`'s hop between one switch's
 * tunnel-out and the other's receive: the frame as it goes on the wire, outer IPv4 and UDP, the
 * backend's tunnel header, then what it carries. The switch hands the backend's payload to its
 * UDP socket and the node's kernel writes the outer headers, so these are built here for
 * display, from the two sockets' addresses and the backend's settings the switch recorded
 * (switch/trace/tracer.ts, UnderlayInfo), and every field says what it is:
 *   - tapnet: its own 12-byte header (wire/tapnet.ts), then the frame as the TAP gave it,
 *     virtio_net_hdr included, whole or in chunks; sealed, all of that is encrypted behind a
 *     16-byte header and before a tag (wire/sealed.ts): shown as it is before sealing;
 *   - udp (flannel's): the pod's IPv4 packet is the payload, no header of its own;
 *   - vxlan (flannel's, RFC 7348): the 8-byte VXLAN header, then an Ethernet frame between the
 *     two nodes' VTEP MACs.
 * What the kernel picks and the switch cannot know (the outer IPv4 id, the UDP checksum; the
 * tapnet frame id) is written as 0 and said to be so.
 */
import type { UnderlayInfo } from "../../switch/trace/tracer.ts";
import { findBackend } from "../../tunnel/index.ts";
import { emitIpv4 } from "../../wire/ipv4.ts";
import { parseMac } from "../../wire/mac.ts";
import { SEALED_OVERHEAD } from "../../wire/sealed.ts";
import { TAPNET_HEADER_LEN, writeTapnetHeader } from "../../wire/tapnet.ts";
import { VXLAN_HEADER_LEN, writeVxlanHeader } from "../../wire/vxlan.ts";

/** Bytes of a byte view that belong to one layer (bytes.ts colours them). */
export interface ByteLayer {
  name: string;
  start: number;
  end: number;
}

export interface UnderlayDatagram {
  /** The datagram's first bytes, outer IPv4 header first. */
  bytes: Uint8Array;
  /** Its whole length on the wire (the first datagram's, when the frame takes several). */
  len: number;
  /** How many datagrams the frame takes. */
  count: number;
  /** The layers of `bytes`, outermost first. */
  layers: ByteLayer[];
  /** One line: "192.168.56.11:8472 → 192.168.56.12:8472 UDP, VXLAN VNI 1, 98 B". */
  summary: string;
  /** Each header, field by field, explained. */
  fields: string[];
}

const VNET_LEN = 10;
const ETH_LEN = 14;
const IP_UDP = 28;

/** What a backend's UDP port is, in a phrase. */
function portPhrase(u: UnderlayInfo): string {
  const dflt = findBackend(u.backend)?.port;
  const usual = dflt === undefined || dflt === u.port ? "" : ` (set in the cluster's config; its default is ${dflt})`;
  if (u.backend === "vxlan") return `UDP ${u.port} is VXLAN as flannel sets it up${usual} (Linux's port; IANA's is 4789)`;
  if (u.backend === "udp") return `UDP ${u.port} is flannel's udp backend${usual}`;
  if (u.backend === "tapnet") return `UDP ${u.port} is tapnet's own format${usual}: whole frames, offloads and all`;
  return `UDP ${u.port} is the ${u.backend} backend's`;
}

/**
 * The datagram that carries a frame of `frameLen` bytes (virtio_net_hdr first) whose first
 * bytes are `innerHex`, as the backend in `u` sends it; `ends` names the two nodes.
 */
export function underlayDatagram(u: UnderlayInfo, innerHex: string, frameLen: number, ends?: { from: string; to: string }): UnderlayDatagram {
  const inner = Uint8Array.from(Buffer.from(innerHex, "hex"));
  const gso = inner.length > 1 ? inner[1] : 0;
  let tunnelHdr = new Uint8Array(0);
  let carried: Uint8Array;
  let payloadLen: number;
  let count = 1;
  const tunnelFields: string[] = [];
  const layers: { name: string; len: number }[] = [];
  if (u.backend === "vxlan") {
    tunnelHdr = new Uint8Array(VXLAN_HEADER_LEN);
    writeVxlanHeader(tunnelHdr, 0, u.vni);
    const eth = inner.slice(VNET_LEN);
    const s = parseMac(u.vtepSrc), d = parseMac(u.vtepDst);
    if (s && d && eth.length >= 12) {
      eth.set(d, 0);
      eth.set(s, 6);
    }
    carried = eth;
    payloadLen = VXLAN_HEADER_LEN + frameLen - VNET_LEN;
    tunnelFields.push(
      `VXLAN           flags 0x08 (I: the VNI is valid), VNI ${u.vni}${u.vni === 1 ? " (flannel's: one network for the cluster)" : ""}, the reserved bytes 0`,
      `Inner Ethernet  ${u.vtepSrc}${ends ? ` (${ends.from}'s VTEP)` : ""} → ${u.vtepDst}${ends ? ` (${ends.to}'s VTEP)` : ""}: the two nodes' VTEP MACs (flannel.1's), as a Linux node expects; the pod's MACs stay behind`,
    );
    layers.push({ name: "VXLAN", len: VXLAN_HEADER_LEN }, { name: "inner Ethernet", len: ETH_LEN });
  } else if (u.backend === "udp") {
    carried = inner.slice(VNET_LEN + ETH_LEN);
    payloadLen = frameLen - VNET_LEN - ETH_LEN;
    tunnelFields.push("(no tunnel header: the UDP payload is the pod's IPv4 packet itself, its Ethernet header left behind)");
  } else {
    const chunkMax = u.datagramSize - TAPNET_HEADER_LEN - (u.sealed ? SEALED_OVERHEAD : 0);
    count = Math.max(1, Math.ceil(frameLen / chunkMax));
    const chunk = Math.min(frameLen, chunkMax);
    tunnelHdr = new Uint8Array(TAPNET_HEADER_LEN);
    writeTapnetHeader(tunnelHdr, 0, 0, frameLen, 0);
    carried = inner;
    payloadLen = TAPNET_HEADER_LEN + chunk + (u.sealed ? SEALED_OVERHEAD : 0);
    tunnelFields.push(
      `tapnet header   version 1, flags 0, frame id (the sender's count of frames: not recorded, 0 here), frame length ${frameLen} B (virtio_net_hdr included), chunk offset 0: ${count === 1 ? "one datagram carries the frame whole" : `the first of ${count} chunks of up to ${chunkMax} B, put back together by the far switch`}`,
    );
    if (u.sealed) {
      tunnelFields.push(`sealed          the cluster has a secret: header and chunk go encrypted (AES-256-GCM) behind a 16-byte header (version 2, key epoch, counter: the nonce) and before a 16-byte tag; shown as before sealing`);
    }
    layers.push({ name: "tapnet header", len: TAPNET_HEADER_LEN }, { name: "virtio_net_hdr", len: VNET_LEN }, { name: "inner Ethernet", len: ETH_LEN });
  }
  if (u.backend !== "tapnet" && gso !== 0) {
    tunnelFields.push("(a TSO super-frame: tunnel-out cut it into packets of the pods' MTU first, each in a datagram like this one)");
  }
  const len = IP_UDP + payloadLen;
  const bytes = new Uint8Array(IP_UDP + tunnelHdr.length + carried.length);
  emitIpv4({ tos: 0, id: 0, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 17, src: u.src, dst: u.dst, payloadLen: 8 + payloadLen }, bytes, 0);
  bytes[20] = u.port >> 8;
  bytes[21] = u.port & 0xff;
  bytes[22] = u.port >> 8;
  bytes[23] = u.port & 0xff;
  bytes[24] = ((8 + payloadLen) >> 8) & 0xff;
  bytes[25] = (8 + payloadLen) & 0xff;
  bytes.set(tunnelHdr, IP_UDP);
  bytes.set(carried, IP_UDP + tunnelHdr.length);
  const name = u.backend === "vxlan" ? `VXLAN VNI ${u.vni}` : u.backend === "udp" ? "flannel udp" : u.sealed ? "tapnet, sealed" : "tapnet";
  const all = [{ name: "outer IPv4", len: 20 }, { name: "outer UDP", len: 8 }, ...layers];
  let at = 0;
  const byteLayers: ByteLayer[] = [];
  for (const l of all) {
    byteLayers.push({ name: l.name, start: at, end: Math.min(at + l.len, bytes.length) });
    at += l.len;
  }
  return {
    bytes, len, count, layers: byteLayers,
    summary: `${u.src}:${u.port} → ${u.dst}:${u.port} UDP, ${name}, ${len} B${count > 1 ? ` (the first of ${count} datagrams)` : ""}`,
    fields: [
      `Outer IPv4      ${u.src} → ${u.dst}, protocol 17 (UDP), TTL 64, ${len} B: the underlay, node to node; the node's kernel writes this header (shown as built from the switch socket's addresses; its id is the kernel's, 0 here)`,
      `Outer UDP       ${u.port} → ${u.port}, ${8 + payloadLen} B: ${portPhrase(u)}; checksum the kernel's (0 here)`,
      ...tunnelFields,
    ],
  };
}

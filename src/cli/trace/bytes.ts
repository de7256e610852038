/**
 * The byte view of `tapnet trace`: a hop's bytes in hex, 16 to a line, each layer in its own
 * colour when the terminal shows colours (`useColor`: stdout a TTY and NO_COLOR unset, as
 * https://no-color.org asks), and plain otherwise, where a `|` marks where a layer starts. A
 * key line above names the layers and their byte ranges either way.
 *
 * `frameLayers` finds the layers of a recorded frame (virtio_net_hdr, Ethernet, IPv4, its
 * ICMP, TCP or UDP header, the data after it); underlay.ts gives the layers of a datagram.
 * Only the bytes the switch kept are shown (switch/trace/tracer.ts's HEAD_BYTES).
 */
import type { ByteLayer } from "./underlay.ts";

const VNET_LEN = 10;
const ETH_LEN = 14;

const RESET = "\x1b[0m";
/** SGR colours by layer name; anything else (the data) is left plain. */
const COLOURS: Record<string, string> = {
  "virtio_net_hdr": "\x1b[90m",
  "Ethernet": "\x1b[34m",
  "inner Ethernet": "\x1b[34m",
  "IPv4": "\x1b[32m",
  "ICMP": "\x1b[33m",
  "TCP": "\x1b[33m",
  "UDP": "\x1b[33m",
  "outer IPv4": "\x1b[35m",
  "outer UDP": "\x1b[95m",
  "VXLAN": "\x1b[36m",
  "tapnet header": "\x1b[36m",
};

/** Should the byte view be coloured on `stream`? A TTY, and NO_COLOR unset or empty. */
export function useColor(stream: { isTTY?: boolean } = process.stdout, env: Record<string, string | undefined> = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

/** The layers of a recorded frame's first `n` bytes (virtio_net_hdr first), as far as they go. */
export function frameLayers(b: Uint8Array): ByteLayer[] {
  const out: ByteLayer[] = [];
  const add = (name: string, start: number, len: number) => {
    if (start < b.length && len > 0) out.push({ name, start, end: Math.min(start + len, b.length) });
    return start + len;
  };
  let at = add("virtio_net_hdr", 0, VNET_LEN);
  at = add("Ethernet", at, ETH_LEN);
  if (b.length < at + 20 || b[VNET_LEN + 12] !== 0x08 || b[VNET_LEN + 13] !== 0x00) {
    add("data", at, b.length - at);
    return out;
  }
  const ihl = (b[at] & 0x0f) * 4;
  const proto = b[at + 9];
  at = add("IPv4", at, ihl);
  const l4 = proto === 1 ? ["ICMP", 8] : proto === 17 ? ["UDP", 8] : proto === 6 && b.length > at + 12 ? ["TCP", (b[at + 12] >> 4) * 4] : undefined;
  if (l4) at = add(l4[0] as string, at, l4[1] as number);
  add("data", at, b.length - at);
  return out;
}

/**
 * `bytes` as hex lines, each starting with `indent`: a key line naming the layers and their
 * byte ranges, then 16 bytes a line with their offset; coloured by layer with `color`.
 */
export function byteView(bytes: Uint8Array, layers: ByteLayer[], color: boolean, indent = ""): string[] {
  const paint = (name: string, s: string) => (color && COLOURS[name] ? `${COLOURS[name]}${s}${RESET}` : s);
  const layerAt = new Array<string>(bytes.length).fill("data");
  const starts = new Set<number>();
  for (const l of layers) {
    for (let i = l.start; i < l.end; i++) layerAt[i] = l.name;
    starts.add(l.start);
  }
  const key = layers.map((l) => paint(l.name, `${l.name} ${l.start}-${l.end - 1}`)).join(" · ");
  const lines = [`${indent}bytes: ${key}`];
  for (let row = 0; row < bytes.length; row += 16) {
    let s = "";
    for (let i = row; i < Math.min(row + 16, bytes.length); i++) {
      const sep = i === row ? "" : !color && starts.has(i) ? "|" : " ";
      s += sep + paint(layerAt[i], bytes[i].toString(16).padStart(2, "0"));
    }
    lines.push(`${indent}${row.toString(16).padStart(4, "0")}  ${s}`);
  }
  return lines;
}

/**
 * Why a frame was dropped. Parsers return one of these instead of throwing: on the hot path a
 * malformed frame is a counted drop, never an exception.
 *
 * Each layer declares its own reasons once, as an ordered list of PascalCase names: what the
 * parsers find here (`Drop`), what a backend refuses in tunnel/drops.ts (`TunnelDrop`), what
 * forwarding decides in switch/drops.ts (`SwitchDrop`). `numbered` turns a list into a frozen
 * name → number table, counting from a base; each layer starts where the one below ends
 * (`numberAfter`: wire from 0, then tunnel, then switch), so the numbers are fixed by the
 * declarations alone and the datapath and control threads agree whatever the import order.
 * A reason's counter name is its name in snake_case (`counterName`); switch/counters.ts joins
 * the three lists into one counter per port per reason. The same helpers number the counters.
 */

/** A drop reason: a number of `Drop`, `TunnelDrop` or `SwitchDrop`; `Drop.None` (0) is no drop. */
export type DropReason = number;

/** A table made by `numbered`: each name of the list → its number. */
export type Numbered<N extends string> = { readonly [K in N]: number };

const PASCAL = /^(?:[A-Z][a-z0-9]+)+$/;

/** "Ipv4BadChecksum" → "ipv4_bad_checksum": the name a counter of `name` is shown by. */
export function counterName(name: string): string {
  if (!PASCAL.test(name)) throw new Error(`not a PascalCase name of words: ${JSON.stringify(name)}`);
  return name.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? "" : "_") + c.toLowerCase());
}

/**
 * Numbers `names` base, base + 1, … in their order: `numbered(0, ["A", "B"]).B` is 1, and an
 * unknown name is a compile error. Each name must be PascalCase (it names a counter) and appear once.
 */
export function numbered<const N extends readonly string[]>(base: number, names: N): Numbered<N[number]> {
  if (!Number.isInteger(base) || base < 0) throw new RangeError(`bad base ${base}`);
  if (names.length === 0) throw new RangeError("an empty list of names");
  names.forEach((name, i) => {
    counterName(name);
    if (names.indexOf(name) !== i) throw new Error(`${name} is listed twice`);
  });
  // Object.fromEntries keeps the table in V8's fast-properties mode (assigning key by key would
  // not), and frozen, its fields fold to constants where the hot path reads them.
  return Object.freeze(Object.fromEntries(names.map((name, i) => [name, base + i]))) as Numbered<N[number]>;
}

/** The first number after a table: where the next layer's list starts. */
export function numberAfter(table: Numbered<string>): number {
  return Math.max(...Object.values(table)) + 1;
}

/** A table's counter names, in the order of their numbers (the first at its base). */
export function counterNames(table: Numbered<string>): string[] {
  return Object.entries(table).sort((a, b) => a[1] - b[1]).map(([name]) => counterName(name));
}

/** What a parser finds wrong in a frame, numbered from 0. */
export const Drop = numbered(0, [
  /** Not dropped. */
  "None",
  /** Shorter than an Ethernet header. */
  "EthRunt",
  /** An 802.1Q/802.1ad tag cut short. */
  "EthVlanTruncated",
  "ArpTruncated",
  "ArpUnsupported",
  "Ipv4Truncated",
  "Ipv4BadVersion",
  "Ipv4BadHeaderLen",
  "Ipv4BadTotalLen",
  "Ipv4BadChecksum",
  "IcmpTruncated",
  "UdpTruncated",
  "UdpBadLength",
  "TcpTruncated",
  "TcpBadHeaderLen",
  "VnetHdrTruncated",
  /** A super-frame of a kind not segmented here: TCPv6, UFO, anything over IPv6, an unknown gso_type. */
  "GsoUnsupported",
  /** A super-frame whose headers parse but do not fit its gso_type (wrong protocol, an IP fragment, not IP). */
  "GsoMalformed",
  /** A super-frame with gso_size 0. */
  "GsoBadSize",
  /** A segment would not fit the wire (maxSegmentFrame) or the output buffer. */
  "GsoTooBig",
  /** NEEDS_CSUM with csum_start/csum_offset pointing outside the frame. */
  "CsumBadOffset",
  /** A VXLAN datagram shorter than its header and an inner Ethernet header. */
  "VxlanTruncated",
  /** A VXLAN header without the I flag (no valid VNI). */
  "VxlanBadFlags",
  /** A VXLAN header with another VNI than the cluster's. */
  "VxlanWrongVni",
  /** A tapnet-format datagram no longer than its header. */
  "TapnetTruncated",
  /** A tapnet-format datagram of another version. */
  "TapnetBadVersion",
  /** A tapnet-format chunk that does not fit its frame, or a frame over 64 KB. */
  "TapnetBadChunk",
]);

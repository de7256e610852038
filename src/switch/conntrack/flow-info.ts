/**
 * What the datapath says about its connection tracking, off the hot path, as plain objects:
 * the flows `tapnet conntrack list` prints (as `conntrack -L` does), and the policy denials
 * `tapnet policy log on` writes to the switch's log.
 */

/** One direction's tuple as it is on the wire. ICMP echo: sport is the identifier, dport the type. */
export interface TupleInfo {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface FlowInfo {
  protocol: "tcp" | "udp" | "icmp" | "other";
  /** IP protocol number. */
  proto: number;
  state: "new" | "established" | "closing";
  /** Seconds until it expires unless a packet comes. */
  expiresIn: number;
  /** The first packet's direction, and the replies' (their translation: the service's endpoint, the hairpin's source). */
  original: TupleInfo;
  reply: TupleInfo;
  /** Packets and bytes seen each way. */
  packets: [number, number];
  bytes: [number, number];
  /** A service's translation: "namespace/name:port". */
  service?: string;
  /** The policy verdict cached in the flow. */
  verdict: "allowed" | "denied";
}

/** A new flow a NetworkPolicy refused. */
export interface DeniedEvent {
  direction: "ingress" | "egress";
  protocol: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** The pod isolated for that direction, "namespace/name". */
  pod: string;
  /** The policies that select it for that direction (none of whose rules allowed the flow). */
  policies: string[];
}

/**
 * What forwarding decides against a frame: the switch's drop reasons, numbered after wire's
 * (wire/drop.ts) and the backends' (tunnel/drops.ts). Counted on the port the frame came in on,
 * or on the tunnel's row for what came from or failed to go to the tunnel.
 */
import { numberAfter, numbered } from "../wire/drop.ts";
import { TunnelDrop } from "../tunnel/drops.ts";

export const SwitchDrop = numbered(numberAfter(TunnelDrop), [
  /** Source MAC is multicast or broadcast: no station sends from a group address. */
  "EthBadSource",
  /** The destination is on the port the frame came in on: a bridge filters it. */
  "SamePort",
  /** Writing to the output port or the tunnel failed (its queue full, or the device gone). */
  "TxError",
  /** The output port was removed while the frame was in flight. */
  "NoPort",
  /** A tunnel datagram from an address that is no other node of the cluster. */
  "TunnelUnknownPeer",
  /** A tunnel datagram whose inner source is neither in the sending node's pod CIDR nor its underlay address. */
  "TunnelSpoofed",
  /** A tunnel datagram for an address that is not this node's to deliver. */
  "TunnelNotLocal",
  /** Sent to a VTEP MAC but for no remote pod CIDR. */
  "NoRoute",
  /** For a cluster address no node owns: ICMP destination unreachable sent back. */
  "ClusterUnreachable",
  /** DF set and larger than the tunnel MTU: ICMP fragmentation needed sent back. */
  "FragNeeded",
  /** Larger than the tunnel MTU without DF: tapnet does not fragment. */
  "TooBig",
  /** TTL would reach 0: ICMP time exceeded sent back (when it came from a port). */
  "TtlExpired",
  /** For a pod whose MAC is not known yet: an ARP request was sent. */
  "NeighUnresolved",
  /** The inner TCP/UDP checksum of a tunnel datagram is wrong (and not merely left partial). */
  "TunnelBadChecksum",
  /** A new flow when the connection-tracking table is full (--conntrack-max): never grown. */
  "ConntrackFull",
  /** A new flow whose owner (the port it came from, or the peer node that sent it) holds its quota of the table (--conntrack-max-per-pod). */
  "ConntrackQuota",
  /** A new flow whose reply tuple another flow already has (a client reaching an endpoint both directly and through its Service from one port). */
  "FlowClash",
  /** For a Service port with no ready endpoint: ICMP port unreachable sent back (kube-proxy rejects). */
  "ServiceNoEndpoints",
  /** For an address of the service CIDR on a port no Service has: ICMP port unreachable sent back (not TCP/UDP: dropped). */
  "ServiceNoPort",
  /** No free source port on the node's gateway address to translate a flow to (hairpin, NodePort to another node). */
  "NatPortsExhausted",
  /** A NetworkPolicy isolates the destination pod for ingress and none of its rules allows the flow. */
  "PolicyDeniedIngress",
  /** A NetworkPolicy isolates the source pod for egress and none of its rules allows the flow. */
  "PolicyDeniedEgress",
  /** From a pod's port, with a source MAC (Ethernet, or ARP sender) not the pod's own; or from any port, a MAC pinned to another. */
  "SpoofedSourceMac",
  /** From a pod's port, with an IPv4 source or ARP sender address not the pod's own (0.0.0.0 only in an ARP probe). */
  "SpoofedSourceIp",
  /** For another node, from an address neither in this node's pod CIDR nor its own: the peer would refuse it, so it is not sent. */
  "ForeignSource",
]);

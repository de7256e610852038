/**
 * What a tunnel backend refuses in a datagram that parsed (the wire format's own faults are
 * wire/drop.ts's `Drop`). Numbered after wire's reasons; switch/drops.ts's come after these.
 * A backend reports one through its FrameSink's `drop`, and the switch counts it on the
 * tunnel's row. A new backend adds its reasons here, at the end.
 */
import { Drop, numberAfter, numbered } from "../wire/drop.ts";

export const TunnelDrop = numbered(numberAfter(Drop), [
  /** Any backend: a tunnel datagram whose inner packet is not IPv4. */
  "TunnelNotIpv4",
  /** vxlan: an inner frame addressed to another VTEP MAC than this node's. */
  "VxlanNotForUs",
  /** tapnet: a frame whose chunks did not all arrive, in order, before the next frame began. */
  "TapnetIncomplete",
  /** tapnet, sealing (backend.secret): a datagram in the clear (version 1), from a node without the secret. */
  "TapnetUnsealed",
  /** tapnet, sealing: a sealed datagram whose tag fails: another key (secret, sender, receiver), altered, or forged. */
  "SealAuthFailed",
  /** tapnet, sealing: a counter already seen, or too far below the highest seen (the replay window). */
  "SealReplayed",
  /** tapnet, sealing: a key epoch older than the peer's current and previous, or stale from a peer not heard from before. */
  "SealOldEpoch",
]);

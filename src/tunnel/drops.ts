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
]);

/**
 * port security: the stage right after validate, as the CNI bridge plugin's `spoofchk` and
 * Calico give it. A pod port added with its identity (the MAC and IPv4 address the switch gave
 * the pod when it made it: Switch.addTap) sends only as that pod:
 *   - Ethernet source: its own MAC;
 *   - ARP: sender MAC its own; sender address its own, or 0.0.0.0 in a request (an RFC 5227
 *     probe);
 *   - IPv4: source its own address.
 * Anything else is dropped and counted (spoofed_source_mac, spoofed_source_ip) before
 * connection tracking, routing or learning see it; an ARP or IPv4 header too short to check is
 * dropped with its parser's reason. Other EtherTypes (IPv6's link-local chatter) pass with their
 * source MAC checked. A port without an identity (tapnet0, a pod added without one) sends from
 * any MAC but one pinned to another port (spoofed_source_mac): nothing takes a pod's MAC.
 *
 * PortIdentities holds each port's identity. Binding one pins the pod's MAC to its port in the
 * FDB and its address to that MAC in the neighbour table, so neither is learned from traffic,
 * aged or moved; releasing it (the port went away) takes the pins out again.
 */
import { ARP_REQUEST, ARP_SHA, ArpView } from "../../wire/arp.ts";
import { get16, get32 } from "../../wire/bytes.ts";
import { Drop } from "../../wire/drop.ts";
import { ETH_HEADER_LEN, ETH_SRC, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "../../wire/ethernet.ts";
import { IPV4_MIN_HEADER_LEN, IPV4_SRC } from "../../wire/ipv4.ts";
import { macHi, macLo, parseMac } from "../../wire/mac.ts";
import { ETH_OFF } from "../../wire/virtio.ts";
import { SwitchDrop } from "../drops.ts";
import { DONE, PENDING, type Frames } from "../frames.ts";
import type { Stage } from "../pipeline.ts";
import type { SwitchState } from "../state.ts";

/** Each port's identity (its pod's MAC and IPv4 address), if it was given one. */
export class PortIdentities {
  readonly bound: Uint8Array;
  readonly his: Uint16Array;
  readonly los: Uint32Array;
  readonly ips: Float64Array;

  constructor(maxPorts: number) {
    this.bound = new Uint8Array(maxPorts);
    this.his = new Uint16Array(maxPorts);
    this.los = new Uint32Array(maxPorts);
    this.ips = new Float64Array(maxPorts);
  }

  has(port: number): boolean {
    return port >= 0 && port < this.bound.length && this.bound[port] === 1;
  }

  /**
   * Makes `mac` and `ip` port's identity: pins the MAC to the port in the FDB and, on a
   * routing switch, the address to the MAC in the neighbour table. Says why not, if it cannot
   * (a MAC that is not unicast, a table of pinned entries only); off the hot path.
   */
  bind(port: number, mac: string, ip: number, state: SwitchState, now: number): string | undefined {
    const m = parseMac(mac);
    if (!m || (m[0] & 1) !== 0) return `mac ${JSON.stringify(mac)} is not a unicast MAC address`;
    if (!(Number.isInteger(ip) && ip > 0 && ip < 0xffffffff)) return `ip ${ip} is not a host's IPv4 address`;
    this.release(port, state);
    const hi = macHi(m, 0);
    const lo = macLo(m, 0);
    if (!state.fdb.pin(hi, lo, port, now)) return `the FDB holds ${state.fdb.size} pinned MACs: no room for port ${port}'s`;
    state.cluster?.neighbors.pin(ip, hi, lo);
    this.bound[port] = 1;
    this.his[port] = hi;
    this.los[port] = lo;
    this.ips[port] = ip;
    return undefined;
  }

  /**
   * Pins what is known of a port being added: a pod's `identity`, or on a routing switch
   * tapnet0's MAC (the gateway MAC, on the gateway port). False if a pin found no room.
   */
  attach(port: number, role: "gateway" | "pod", identity: { mac: string; ip: number } | undefined, state: SwitchState, now: number): boolean {
    const cl = state.cluster;
    if (role === "gateway" && cl && !state.fdb.pin(cl.gwHi, cl.gwLo, port, now)) return false;
    return !identity || this.bind(port, identity.mac, identity.ip, state, now) === undefined;
  }

  /** Forgets port's identity and takes its pins out of the FDB and the neighbour table. */
  release(port: number, state: SwitchState): void {
    if (!this.has(port)) return;
    this.bound[port] = 0;
    const hi = this.his[port];
    const lo = this.los[port];
    if (state.fdb.pinnedPort(hi, lo) === port) state.fdb.delete(hi, lo);
    state.cluster?.neighbors.unpin(this.ips[port], hi, lo);
  }
}

export class PortSecurity implements Stage {
  readonly name = "port-security";
  private readonly arp = new ArpView();

  constructor(private readonly state: SwitchState, readonly identities: PortIdentities) {}

  run(f: Frames): void {
    const { bound, his, los, ips } = this.identities;
    for (let i = 0; i < f.count; i++) {
      const port = f.ports[i];
      if (port < 0 || f.outs[i] !== PENDING) continue;
      const len = f.lens[i] - ETH_OFF;
      if (len < ETH_HEADER_LEN) continue; // the bridge's to refuse (eth_runt)
      const buf = f.bufs[i];
      const o = f.offs[i] + ETH_OFF;
      const hi = macHi(buf, o + ETH_SRC);
      const lo = macLo(buf, o + ETH_SRC);
      let r: number = Drop.None;
      if (bound[port] !== 1) r = this.unbound(port, hi, lo);
      else if (hi !== his[port] || lo !== los[port]) r = SwitchDrop.SpoofedSourceMac;
      else {
        const type = get16(buf, o + ETH_TYPE);
        if (type === ETHERTYPE_IPV4) {
          if (len < ETH_HEADER_LEN + IPV4_MIN_HEADER_LEN) r = Drop.Ipv4Truncated;
          else if (get32(buf, o + ETH_HEADER_LEN + IPV4_SRC) !== ips[port]) r = SwitchDrop.SpoofedSourceIp;
        } else if (type === ETHERTYPE_ARP) r = this.arpSender(buf, o + ETH_HEADER_LEN, len - ETH_HEADER_LEN, hi, lo, ips[port]);
      }
      if (r !== Drop.None) {
        this.state.counters.drop(port, r);
        f.outs[i] = DONE;
        f.why[i] = r;
      }
    }
  }

  /** A port without an identity: any source MAC but one pinned to another port. */
  private unbound(port: number, hi: number, lo: number): number {
    const fdb = this.state.fdb;
    if (fdb.pinnedCount === 0) return Drop.None;
    const owner = fdb.pinnedPort(hi, lo);
    return owner >= 0 && owner !== port ? SwitchDrop.SpoofedSourceMac : Drop.None;
  }

  /** The ARP packet at buf[off..off+len) from the station hi:lo whose address is `ip`: Drop.None, or why not. */
  private arpSender(buf: Uint8Array, off: number, len: number, hi: number, lo: number, ip: number): number {
    const arp = this.arp;
    const r = arp.wrap(buf, off, len);
    if (r !== Drop.None) return r;
    if (macHi(buf, off + ARP_SHA) !== hi || macLo(buf, off + ARP_SHA) !== lo) return SwitchDrop.SpoofedSourceMac;
    const spa = arp.senderIp;
    return spa === ip || (spa === 0 && arp.operation === ARP_REQUEST) ? Drop.None : SwitchDrop.SpoofedSourceIp;
  }
}

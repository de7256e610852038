import { describe, expect, it } from "vitest";
import {
  Counters, DROP_BASE, DROP_NAMES, DROP_REASON_COUNT, DROP_TABLES, PORT_COUNTERS, PortCounter, SwitchCounter,
} from "../../src/switch/counters.ts";
import { SwitchDrop } from "../../src/switch/drops.ts";
import { TunnelDrop } from "../../src/tunnel/drops.ts";
import { counterName, Drop, numberAfter } from "../../src/wire/drop.ts";

/** Every drop counter name as users saw it in `lab status` before the reasons were split by layer. */
const DROP_NAMES_BEFORE = [
  "none", "eth_runt", "eth_vlan_truncated", "eth_bad_source", "same_port",
  "arp_truncated", "arp_unsupported", "ipv4_truncated", "ipv4_bad_version",
  "ipv4_bad_header_len", "ipv4_bad_total_len", "ipv4_bad_checksum", "icmp_truncated",
  "udp_truncated", "udp_bad_length", "tcp_truncated", "tcp_bad_header_len",
  "vnet_hdr_truncated", "tx_error", "no_port",
  "gso_unsupported", "gso_malformed", "gso_bad_size", "gso_too_big", "csum_bad_offset",
  "vxlan_truncated", "vxlan_bad_flags", "vxlan_wrong_vni", "vxlan_not_for_us", "tunnel_not_ipv4",
  "tunnel_unknown_peer", "tunnel_spoofed", "tunnel_not_local", "no_route", "cluster_unreachable",
  "frag_needed", "too_big", "ttl_expired", "neigh_unresolved", "tunnel_bad_checksum",
  "tapnet_truncated", "tapnet_bad_version", "tapnet_bad_chunk", "tapnet_incomplete",
  // The sealed tunnel (#13).
  "tapnet_unsealed", "seal_auth_failed", "seal_replayed", "seal_old_epoch",
  // Connection tracking, Services and NetworkPolicy (#12); conntrack_quota (#13).
  "conntrack_full", "conntrack_quota", "flow_clash", "service_no_endpoints", "service_no_port", "nat_ports_exhausted",
  "policy_denied_ingress", "policy_denied_egress",
  // Port security and the tunnel's inner sources (#13).
  "spoofed_source_mac", "spoofed_source_ip", "foreign_source",
];

describe("drop reasons of every layer", () => {
  it("keep every counter name users saw, no more and no fewer", () => {
    expect([...DROP_NAMES].sort()).toEqual([...DROP_NAMES_BEFORE].sort());
    expect(DROP_REASON_COUNT).toBe(DROP_NAMES_BEFORE.length);
  });

  it("are numbered contiguously, wire from 0, then the tunnel's, then the switch's", () => {
    expect(DROP_TABLES).toEqual([Drop, TunnelDrop, SwitchDrop]);
    const numbers = DROP_TABLES.flatMap((t) => Object.values(t));
    expect(numbers).toEqual(DROP_NAMES.map((_, i) => i));
    expect(Math.min(...Object.values(TunnelDrop))).toBe(numberAfter(Drop));
    expect(Math.min(...Object.values(SwitchDrop))).toBe(numberAfter(TunnelDrop));
    expect(numberAfter(SwitchDrop)).toBe(DROP_REASON_COUNT);
  });

  it("each has a distinct number and, at that number, the snake_case of its name", () => {
    const seen = new Set<number>();
    for (const table of DROP_TABLES) {
      for (const [name, reason] of Object.entries(table)) {
        expect(seen.has(reason), name).toBe(false);
        seen.add(reason);
        expect(DROP_NAMES[reason], name).toBe(counterName(name));
      }
    }
    expect(seen.size).toBe(DROP_REASON_COUNT);
    expect(new Set(DROP_NAMES).size).toBe(DROP_REASON_COUNT);
    expect(DROP_NAMES[Drop.Ipv4BadChecksum]).toBe("ipv4_bad_checksum");
    expect(DROP_NAMES[TunnelDrop.VxlanNotForUs]).toBe("vxlan_not_for_us");
    expect(DROP_NAMES[SwitchDrop.SamePort]).toBe("same_port");
  });

  it("the tunnel's and the switch's are the backends' refusals and forwarding's decisions", () => {
    expect(Object.keys(TunnelDrop)).toEqual(["TunnelNotIpv4", "VxlanNotForUs", "TapnetIncomplete", "TapnetUnsealed", "SealAuthFailed", "SealReplayed", "SealOldEpoch"]);
    expect(Object.keys(SwitchDrop)).toEqual([
      "EthBadSource", "SamePort", "TxError", "NoPort", "TunnelUnknownPeer", "TunnelSpoofed", "TunnelNotLocal",
      "NoRoute", "ClusterUnreachable", "FragNeeded", "TooBig", "TtlExpired", "NeighUnresolved", "TunnelBadChecksum",
      "ConntrackFull", "ConntrackQuota", "FlowClash", "ServiceNoEndpoints", "ServiceNoPort", "NatPortsExhausted", "PolicyDeniedIngress", "PolicyDeniedEgress",
      "SpoofedSourceMac", "SpoofedSourceIp", "ForeignSource",
    ]);
  });
});

describe("Counters", () => {
  it("has one row per port of base counters and one counter per drop reason, then the switch row", () => {
    const c = new Counters(4);
    expect(PORT_COUNTERS).toBe(DROP_BASE + DROP_REASON_COUNT);
    expect(c.v.length).toBe(4 * PORT_COUNTERS + Object.keys(SwitchCounter).length);
    expect(c.switchBase).toBe(4 * PORT_COUNTERS);
  });

  it("numbers the port and switch counters 0, 1, 2, … in the order they are declared", () => {
    expect(Object.values(PortCounter)).toEqual(Object.keys(PortCounter).map((_, i) => i));
    expect(Object.values(SwitchCounter)).toEqual(Object.keys(SwitchCounter).map((_, i) => i));
    expect(DROP_BASE).toBe(Object.keys(PortCounter).length);
  });

  it("a port snapshot names the base counters and only the drops that happened", () => {
    const c = new Counters(4);
    c.v[2 * PORT_COUNTERS + PortCounter.RxFrames] = 3;
    c.v[2 * PORT_COUNTERS + PortCounter.TxBytes] = 1500;
    c.drop(2, Drop.EthRunt);
    c.drop(2, Drop.EthRunt);
    c.drop(2, SwitchDrop.TxError);
    c.drop(2, TunnelDrop.TapnetIncomplete);
    c.drop(3, SwitchDrop.SamePort);
    expect(c.portSnapshot(2)).toEqual({
      rx_frames: 3, rx_bytes: 0, tx_frames: 0, tx_bytes: 1500, rx_flooded: 0,
      drop_eth_runt: 2, drop_tx_error: 1, drop_tapnet_incomplete: 1,
    });
    expect(c.port(2, DROP_BASE + Drop.EthRunt)).toBe(2);
    expect(c.portSnapshot(3)).toMatchObject({ drop_same_port: 1 });
  });

  it("the switch snapshot names every switch counter", () => {
    const c = new Counters(2);
    c.v[c.switchBase + SwitchCounter.FdbAged] = 5;
    expect(c.sw(SwitchCounter.FdbAged)).toBe(5);
    expect(c.switchSnapshot()).toEqual({
      fdb_learned: 0, fdb_moved: 0, fdb_full: 0, fdb_aged: 5, unknown_unicast: 0, broadcast: 0, multicast: 0,
      routed: 0, delivered: 0, icmp_sent: 0, arp_replies: 0, arp_requests: 0, inner_csum_completed: 0, coalesced: 0,
      flows_created: 0, flows_expired: 0, flows_flushed: 0, flows_cut: 0, flows_active: 0, translated: 0, untracked: 0,
    });
  });

  it("clearPort zeroes that port's row only", () => {
    const c = new Counters(3);
    c.v.fill(7);
    c.clearPort(1);
    expect(c.v.subarray(PORT_COUNTERS, 2 * PORT_COUNTERS).every((x) => x === 0)).toBe(true);
    expect(c.port(0, PortCounter.RxFrames)).toBe(7);
    expect(c.port(2, PortCounter.RxFrames)).toBe(7);
    expect(c.sw(SwitchCounter.FdbLearned)).toBe(7);
  });

  it("a second Counters over the same SharedArrayBuffer sees the first one's counts", () => {
    const a = new Counters(4);
    const b = new Counters(4, a.buffer);
    a.drop(1, SwitchDrop.NoPort);
    expect(b.portSnapshot(1)).toMatchObject({ drop_no_port: 1 });
  });

  it("a shared buffer sized for another port count is refused", () => {
    const a = new Counters(4);
    expect(() => new Counters(5, a.buffer)).toThrow(new RangeError("counter buffer does not match the port count"));
  });
});

import { describe, expect, it } from "vitest";
import { Counters, DROP_BASE, PORT_COUNTERS, PortCounter, SwitchCounter } from "../../src/switch/counters.ts";
import { DROP_NAMES, DROP_REASON_COUNT, Drop } from "../../src/wire/drop.ts";

describe("Counters", () => {
  it("has one row per port of base counters and one counter per drop reason, then the switch row", () => {
    const c = new Counters(4);
    expect(PORT_COUNTERS).toBe(DROP_BASE + DROP_REASON_COUNT);
    expect(c.v.length).toBe(4 * PORT_COUNTERS + Object.keys(SwitchCounter).length);
    expect(c.switchBase).toBe(4 * PORT_COUNTERS);
  });

  it("every drop reason has a counter name, in the order of Drop", () => {
    expect(DROP_NAMES).toHaveLength(Object.keys(Drop).length);
    expect(DROP_NAMES[Drop.SamePort]).toBe("same_port");
    expect(DROP_NAMES[Drop.NoPort]).toBe("no_port");
    expect(DROP_NAMES[Drop.Ipv4BadChecksum]).toBe("ipv4_bad_checksum");
  });

  it("a port snapshot names the base counters and only the drops that happened", () => {
    const c = new Counters(4);
    c.v[2 * PORT_COUNTERS + PortCounter.RxFrames] = 3;
    c.v[2 * PORT_COUNTERS + PortCounter.TxBytes] = 1500;
    c.drop(2, Drop.EthRunt);
    c.drop(2, Drop.EthRunt);
    c.drop(2, Drop.TxError);
    c.drop(3, Drop.SamePort);
    expect(c.portSnapshot(2)).toEqual({
      rx_frames: 3, rx_bytes: 0, tx_frames: 0, tx_bytes: 1500, rx_flooded: 0, drop_eth_runt: 2, drop_tx_error: 1,
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
    a.drop(1, Drop.NoPort);
    expect(b.portSnapshot(1)).toMatchObject({ drop_no_port: 1 });
  });

  it("a shared buffer sized for another port count is refused", () => {
    const a = new Counters(4);
    expect(() => new Counters(5, a.buffer)).toThrow(new RangeError("counter buffer does not match the port count"));
  });
});

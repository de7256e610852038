import { describe, expect, it } from "vitest";
import { Bridge, DROP, FLOOD } from "../../src/switch/bridge.ts";
import { Counters, SwitchCounter } from "../../src/switch/counters.ts";
import { Fdb } from "../../src/switch/fdb.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";

/** Frames sit behind a 10-byte virtio_net_hdr, as on the switch's TAP ports. */
const L2_OFF = 10;

const A = "02:00:0a:63:00:01";
const B = "02:00:0a:63:00:02";
const C = "02:00:0a:63:00:03";

/** A virtio header of zeros, then an Ethernet header, then 46 bytes of payload. */
function frame(dst: string, src: string): Uint8Array {
  const b = new Uint8Array(L2_OFF + 14 + 46);
  emitEthernet({ dst, src, vlans: [], etherType: 0x0800 }, b, L2_OFF);
  return b;
}

function withHeader(ethernetFrame: Uint8Array): Uint8Array {
  const b = new Uint8Array(L2_OFF + ethernetFrame.length);
  b.set(ethernetFrame, L2_OFF);
  return b;
}

function setup(maxEntries = 64, ageingSeconds = 300) {
  const fdb = new Fdb({ maxEntries, ageingSeconds });
  const counters = new Counters(8);
  const bridge = new Bridge(fdb, counters);
  const decide = (inPort: number, f: Uint8Array, now = 0) => bridge.decide(inPort, f, L2_OFF, f.length - L2_OFF, now);
  return { fdb, counters, bridge, decide };
}

describe("Bridge.decide", () => {
  it("the captured ARP exchange: the request floods, the reply goes back to the asker's port", () => {
    // From the golden capture of 2026-11-23 (see test/wire/arp.test.ts for how it was taken).
    const request = withHeader(fromHex(`ffff ffff ffff 0200 0a63 0001 0806 0001 0800 0604 0001 0200
      0a63 0001 0a63 0001 0000 0000 0000 0a63 0002`));
    const reply = withHeader(fromHex(`0200 0a63 0001 0200 0a63 0002 0806 0001 0800 0604 0002 0200
      0a63 0002 0a63 0002 0200 0a63 0001 0a63 0001`));
    const { decide, counters } = setup();
    expect(decide(1, request)).toBe(FLOOD);
    expect(decide(4, reply)).toBe(1);
    expect(counters.sw(SwitchCounter.Broadcast)).toBe(1);
    expect(counters.sw(SwitchCounter.FdbLearned)).toBe(2);
  });

  it("unicast to an unknown MAC floods, counted as unknown unicast, and the source is learned", () => {
    const { decide, fdb, counters } = setup();
    expect(decide(1, frame(B, A))).toBe(FLOOD);
    expect(counters.sw(SwitchCounter.UnknownUnicast)).toBe(1);
    expect(counters.sw(SwitchCounter.FdbLearned)).toBe(1);
    expect(fdb.entries(0)).toEqual([{ mac: A, port: 1, age: 0 }]);
  });

  it("unicast to a learned MAC goes to its port", () => {
    const { decide, counters } = setup();
    decide(1, frame(B, A));
    expect(decide(2, frame(A, B))).toBe(1);
    expect(decide(1, frame(B, A))).toBe(2);
    expect(counters.sw(SwitchCounter.UnknownUnicast)).toBe(1);
  });

  it("broadcast floods and counts as broadcast, even to a learned MAC's port", () => {
    const { decide, counters } = setup();
    decide(2, frame(A, B));
    expect(decide(1, frame("ff:ff:ff:ff:ff:ff", A))).toBe(FLOOD);
    expect(counters.sw(SwitchCounter.Broadcast)).toBe(1);
    expect(counters.sw(SwitchCounter.Multicast)).toBe(0);
  });

  it("multicast floods and counts as multicast, including a group address that is nearly broadcast", () => {
    const { decide, counters } = setup();
    expect(decide(1, frame("01:00:5e:00:00:fb", A))).toBe(FLOOD);
    expect(decide(1, frame("33:33:00:00:00:01", A))).toBe(FLOOD);
    expect(decide(1, frame("ff:ff:ff:ff:ff:fe", A))).toBe(FLOOD);
    expect(decide(1, frame("ff:ff:ff:ff:fe:ff", A))).toBe(FLOOD);
    expect(decide(1, frame("ff:fe:ff:ff:ff:ff", A))).toBe(FLOOD);
    expect(decide(1, frame("01:00:ff:ff:ff:ff", A))).toBe(FLOOD);
    expect(counters.sw(SwitchCounter.Multicast)).toBe(6);
    expect(counters.sw(SwitchCounter.Broadcast)).toBe(0);
  });

  it("a frame to a MAC learned on the port it came in on is dropped as same_port", () => {
    const { decide, counters } = setup();
    decide(3, frame(B, C));
    expect(decide(3, frame(C, A))).toBe(DROP);
    expect(counters.portSnapshot(3)).toMatchObject({ drop_same_port: 1 });
    expect(counters.portSnapshot(1).drop_same_port).toBeUndefined();
  });

  it("a group source MAC is dropped as eth_bad_source and not learned", () => {
    const { decide, fdb, counters } = setup();
    expect(decide(2, frame(A, "01:00:5e:00:00:01"))).toBe(DROP);
    expect(decide(2, frame(A, "ff:ff:ff:ff:ff:ff"))).toBe(DROP);
    expect(counters.portSnapshot(2)).toMatchObject({ drop_eth_bad_source: 2 });
    expect(fdb.size).toBe(0);
  });

  it("a frame shorter than an Ethernet header is dropped as eth_runt and learns nothing", () => {
    const { bridge, fdb, counters } = setup();
    const f = frame(B, A);
    for (let len = 0; len < 14; len++) expect(bridge.decide(5, f, L2_OFF, len, 0)).toBe(DROP);
    expect(counters.portSnapshot(5)).toMatchObject({ drop_eth_runt: 14 });
    expect(fdb.size).toBe(0);
    expect(bridge.decide(5, f, L2_OFF, 14, 0)).toBe(FLOOD);
  });

  it("a station heard on another port has moved: counted, and frames follow it", () => {
    const { decide, counters } = setup();
    decide(1, frame(B, A));
    expect(decide(2, frame(A, B))).toBe(1);
    decide(4, frame(B, A));
    expect(counters.sw(SwitchCounter.FdbMoved)).toBe(1);
    expect(decide(2, frame(A, B))).toBe(4);
    decide(4, frame(B, A)); // heard again where it is: no further move
    expect(counters.sw(SwitchCounter.FdbMoved)).toBe(1);
  });

  it("a destination not heard from for longer than the ageing time floods again", () => {
    const { decide, counters } = setup(64, 300);
    decide(1, frame(B, A), 0);
    expect(decide(2, frame(A, B), 300)).toBe(1);
    expect(decide(2, frame(A, B), 300.5)).toBe(FLOOD);
    expect(counters.sw(SwitchCounter.UnknownUnicast)).toBe(2); // the first frame and this one
  });

  it("when the FDB is full a new source is counted as fdb_full and its frames still forwarded", () => {
    const { decide, counters, fdb } = setup(2);
    decide(1, frame(C, A));
    decide(2, frame(A, B));
    expect(decide(3, frame(A, C))).toBe(1);
    expect(counters.sw(SwitchCounter.FdbFull)).toBe(1);
    expect(fdb.size).toBe(2);
    expect(decide(1, frame(C, A))).toBe(FLOOD); // C could not be learned
  });

  it("counts each source once as learned: a station heard again on its port adds to no FDB counter", () => {
    const { decide, counters } = setup();
    decide(1, frame(B, A));
    decide(1, frame(B, A));
    decide(1, frame(C, A));
    expect(counters.switchSnapshot()).toMatchObject({ fdb_learned: 1, fdb_moved: 0, fdb_full: 0, unknown_unicast: 3 });
  });

  it("decide reads the frame at its offset, not at the start of the buffer", () => {
    const { bridge } = setup();
    const f = frame(B, A);
    f.fill(0xff, 0, L2_OFF); // a header of 0xff would read as a group source if misread
    expect(bridge.decide(1, f, L2_OFF, f.length - L2_OFF, 0)).toBe(FLOOD);
    expect(bridge.fdb.entries(0)).toEqual([{ mac: A, port: 1, age: 0 }]);
  });
});

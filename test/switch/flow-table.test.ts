import { describe, expect, it } from "vitest";
import {
  defaultQuota, DEFAULT_MAX_FLOWS, DEFAULT_TIMEOUTS, FlowState, FlowTable, ORIG, REPLY, formatTimeouts, parseTimeouts, type ConntrackTimeouts,
} from "../../src/switch/conntrack/flow-table.ts";
import { prng, trials } from "../support/random.ts";

const TCP = 6, UDP = 17, ICMP = 1, GRE = 47;
const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

/** Short, all different timeouts, so a wrong row or column of the timeout table shows. */
const T: ConntrackTimeouts = { tcpNew: 5, tcpEstablished: 50, tcpClosing: 3, udp: 4, udpStream: 20, icmp: 2, other: 10 };

const A = 0x0af40102, B = 0x0af40203, HIGH = 0xc0a80001; // HIGH is above 2^31

type Tuple = [proto: number, src: number, dst: number, sport: number, dport: number];

/** The bucket a tuple hashes to. White-box: used only to prove that collisions happen. */
function bucketOf(t: FlowTable, tu: Tuple): number {
  return (t as unknown as { bucket(...a: number[]): number }).bucket(...tu);
}

function tupleOf(t: FlowTable, k: number): Tuple {
  return [t.proto[k >> 1], t.src[k], t.dst[k], t.sport[k], t.dport[k]];
}

describe("FlowTable basics", () => {
  it("create keys both tuples; lookup gives f*2+d; the tuples, counters and state read in place", () => {
    const t = new FlowTable({ max: 4, timeouts: T, seed: 1 });
    const f = t.create(TCP, A, HIGH, 40000, 80, HIGH, A, 80, 40000, 100);
    expect(f).toBe(0);
    expect(t.count).toBe(1);
    expect(t.isLive(f)).toBe(true);
    expect(t.lookup(TCP, A, HIGH, 40000, 80)).toBe(f * 2 + ORIG);
    expect(t.lookup(TCP, HIGH, A, 80, 40000)).toBe(f * 2 + REPLY);
    expect(tupleOf(t, f * 2)).toEqual([TCP, A, HIGH, 40000, 80]);
    expect(tupleOf(t, f * 2 + 1)).toEqual([TCP, HIGH, A, 80, 40000]);
    expect([t.state[f], t.expires[f]]).toEqual([FlowState.New, 105]);
    expect([...t.packets.subarray(0, 2), ...t.bytes.subarray(0, 2)]).toEqual([0, 0, 0, 0]);
    // Any one field different is another tuple.
    for (const other of [[UDP, A, HIGH, 40000, 80], [TCP, B, HIGH, 40000, 80], [TCP, A, B, 40000, 80], [TCP, A, HIGH, 40001, 80], [TCP, A, HIGH, 40000, 81]]) {
      expect(t.lookup(...(other as Tuple)), String(other)).toBe(-1);
    }
  });

  it("addresses and ports are reduced to their widths alike when keyed and looked up (a signed address finds its flow)", () => {
    const t = new FlowTable({ max: 4, timeouts: T });
    const f = t.create(UDP, HIGH | 0, A, 0x10035, 53, A, HIGH, 53, 0x10035, 0);
    expect(HIGH | 0).toBeLessThan(0);
    expect(t.src[f * 2]).toBe(HIGH);
    expect(t.sport[f * 2]).toBe(0x35);
    expect(t.lookup(UDP, HIGH, A, 0x35, 53)).toBe(f * 2);
    expect(t.lookup(UDP, HIGH | 0, A, 0x35, 53)).toBe(f * 2);
    expect(t.lookup(UDP + 256, A, HIGH | 0, 53, 0x35)).toBe(f * 2 + 1);
  });

  it("seen counts packets and bytes per direction", () => {
    const t = new FlowTable({ max: 2, timeouts: T });
    const f = t.create(UDP, A, B, 1000, 53, B, A, 53, 1000, 0);
    t.seen(f, ORIG, 0, 60, 1);
    t.seen(f, ORIG, 0, 70, 1);
    t.seen(f, REPLY, 0, 1500, 2);
    expect([...t.packets.subarray(f * 2, f * 2 + 2)]).toEqual([2, 1]);
    expect([...t.bytes.subarray(f * 2, f * 2 + 2)]).toEqual([130, 1500]);
  });

  it("a new flow in a reused slot starts with zero counters", () => {
    const t = new FlowTable({ max: 1, timeouts: T });
    const f = t.create(UDP, A, B, 1, 2, B, A, 2, 1, 0);
    t.seen(f, REPLY, 0, 100, 0);
    t.remove(f);
    const g = t.create(UDP, A, B, 3, 4, B, A, 4, 3, 0);
    expect(g).toBe(f);
    expect([t.packets[g * 2 + 1], t.bytes[g * 2 + 1], t.state[g]]).toEqual([0, 0, FlowState.New]);
  });

  it("a full table returns -1 and count stays at capacity; a removal makes room", () => {
    const t = new FlowTable({ max: 3, timeouts: T });
    const ids = [1, 2, 3].map((p) => t.create(TCP, A, B, p, 80, B, A, 80, p, 0));
    expect(ids.sort()).toEqual([0, 1, 2]);
    expect(t.create(TCP, A, B, 4, 80, B, A, 80, 4, 0)).toBe(-1);
    expect(t.count).toBe(3);
    expect(t.lookup(TCP, A, B, 4, 80)).toBe(-1);
    t.remove(1);
    expect(t.count).toBe(2);
    expect(t.create(TCP, A, B, 4, 80, B, A, 80, 4, 0)).toBe(1);
    expect(t.count).toBe(3);
  });

  it("an owner holding its quota gets -3 and the table is unchanged; another owner still gets flows; a removal gives one back", () => {
    const t = new FlowTable({ max: 8, timeouts: T, owners: 3, quota: 2 });
    const a = [1, 2].map((p) => t.create(TCP, A, B, p, 80, B, A, 80, p, 0, 1));
    expect(t.create(TCP, A, B, 3, 80, B, A, 80, 3, 0, 1)).toBe(-3);
    expect(t.lookup(TCP, A, B, 3, 80)).toBe(-1);
    expect([t.count, t.heldBy(1)]).toEqual([2, 2]);
    const b = t.create(TCP, A, B, 3, 80, B, A, 80, 3, 0, 0);
    expect(b).toBeGreaterThanOrEqual(0);
    expect([t.owner[a[0]], t.owner[a[1]], t.owner[b]]).toEqual([1, 1, 0]);
    // An owner out of range is the last one (2); a duplicate is -2 before any quota is looked at.
    expect(t.create(TCP, A, B, 4, 80, B, A, 80, 4, 0, 3)).toBeGreaterThanOrEqual(0);
    expect(t.create(TCP, A, B, 5, 80, B, A, 80, 5, 0, -1)).toBeGreaterThanOrEqual(0);
    expect([t.heldBy(2), t.heldBy(3), t.heldBy(-1)]).toEqual([2, 0, 0]);
    expect(t.create(TCP, A, B, 1, 80, B, A, 80, 1, 0, 1)).toBe(-2);
    t.remove(a[0]);
    t.remove(a[0]);
    expect(t.heldBy(1)).toBe(1);
    expect(t.create(TCP, A, B, 6, 80, B, A, 80, 6, 0, 1)).toBeGreaterThanOrEqual(0);
    expect(t.heldBy(1)).toBe(2);
  });

  it("a full table is -1 even for an owner at its quota: the table's size is what to raise", () => {
    const t = new FlowTable({ max: 2, timeouts: T, owners: 2, quota: 1 });
    t.create(TCP, A, B, 1, 80, B, A, 80, 1, 0, 0);
    t.create(TCP, A, B, 2, 80, B, A, 80, 2, 0, 1);
    expect(t.create(TCP, A, B, 3, 80, B, A, 80, 3, 0, 0)).toBe(-1);
  });

  it("returns -2 when either tuple is already a key, or the two are the same, and changes nothing", () => {
    const t = new FlowTable({ max: 8, timeouts: T });
    const f = t.create(TCP, A, B, 1, 80, B, A, 80, 1, 0);
    expect(t.create(TCP, A, B, 1, 80, B, A, 80, 2, 0)).toBe(-2); // same ORIG
    expect(t.create(TCP, A, B, 2, 80, B, A, 80, 1, 0)).toBe(-2); // REPLY = f's REPLY
    expect(t.create(TCP, B, A, 80, 1, A, B, 1, 80, 0)).toBe(-2); // ORIG = f's REPLY, REPLY = f's ORIG
    expect(t.create(TCP, A, B, 9, 80, A, B, 1, 80, 0)).toBe(-2); // REPLY = f's ORIG
    expect(t.create(UDP, A, A, 7, 7, A, A, 7, 7, 0)).toBe(-2); // a tuple that is its own inverse
    expect(t.count).toBe(1);
    expect(t.lookup(TCP, A, B, 9, 80)).toBe(-1);
    expect(t.lookup(TCP, B, A, 80, 2)).toBe(-1);
    expect(t.lookup(UDP, A, A, 7, 7)).toBe(-1);
    expect(t.lookup(TCP, B, A, 80, 1)).toBe(f * 2 + 1);
    // A full table still says -2 for a duplicate: the flow is there.
    const s = new FlowTable({ max: 1, timeouts: T });
    s.create(TCP, A, B, 1, 80, B, A, 80, 1, 0);
    expect(s.create(TCP, A, B, 1, 80, B, A, 80, 1, 0)).toBe(-2);
    expect(s.create(TCP, A, B, 2, 80, B, A, 80, 2, 0)).toBe(-1);
  });

  it("setReply re-keys the REPLY tuple; a tuple that is another key is refused with nothing changed", () => {
    const t = new FlowTable({ max: 4, timeouts: T });
    const f = t.create(TCP, A, HIGH, 40000, 80, HIGH, A, 80, 40000, 0);
    const g = t.create(TCP, B, HIGH, 40000, 80, HIGH, B, 80, 40000, 0);
    expect(t.setReply(f, HIGH, B, 80, 33000)).toBe(true); // SNAT: replies now come to B:33000
    expect(t.lookup(TCP, HIGH, A, 80, 40000)).toBe(-1);
    expect(t.lookup(TCP, HIGH, B, 80, 33000)).toBe(f * 2 + 1);
    expect(tupleOf(t, f * 2 + 1)).toEqual([TCP, HIGH, B, 80, 33000]);
    expect(t.lookup(TCP, A, HIGH, 40000, 80)).toBe(f * 2);
    expect(t.setReply(f, HIGH, B, 80, 40000)).toBe(false); // g's REPLY
    expect(t.setReply(f, A, HIGH, 40000, 80)).toBe(false); // f's own ORIG
    expect(tupleOf(t, f * 2 + 1)).toEqual([TCP, HIGH, B, 80, 33000]);
    expect(t.lookup(TCP, HIGH, B, 80, 40000)).toBe(g * 2 + 1);
    expect(t.setReply(f, HIGH, B, 80, 33000)).toBe(true); // its own REPLY: nothing to do
    expect(t.lookup(TCP, HIGH, B, 80, 33000)).toBe(f * 2 + 1);
    // The old tuple is free for a new flow.
    expect(t.create(TCP, A, HIGH, 40001, 80, HIGH, A, 80, 40000, 0)).toBeGreaterThanOrEqual(0);
    expect(t.setReply(3, HIGH, A, 1, 1)).toBe(false); // not a live flow
    expect(t.lookup(TCP, HIGH, A, 1, 1)).toBe(-1);
  });

  it("remove forgets both tuples; removing, seeing or asking about a flow that is not live does nothing", () => {
    const t = new FlowTable({ max: 2, timeouts: T });
    const f = t.create(ICMP, A, B, 7, 8, B, A, 7, 0, 0);
    t.remove(f);
    expect([t.count, t.isLive(f), t.lookup(ICMP, A, B, 7, 8), t.lookup(ICMP, B, A, 7, 0)]).toEqual([0, false, -1, -1]);
    t.remove(f);
    t.remove(-1);
    t.remove(2);
    expect(t.count).toBe(0);
    t.seen(f, ORIG, 0, 100, 1);
    expect(t.packets[f * 2]).toBe(0);
    expect([t.isLive(-1), t.isLive(2), t.isLive(0.5), t.isLive(NaN)]).toEqual([false, false, false, false]);
    const g = t.create(ICMP, A, B, 7, 8, B, A, 7, 0, 0); // the same tuples again: a new flow
    expect(t.lookup(ICMP, B, A, 7, 0)).toBe(g * 2 + 1);
  });

  it("forEach visits every live flow once, in slot order", () => {
    const t = new FlowTable({ max: 6, timeouts: T });
    for (let p = 1; p <= 5; p++) t.create(UDP, A, B, p, 53, B, A, 53, p, 0);
    t.remove(1);
    t.remove(3);
    const seen: number[] = [];
    t.forEach((f) => seen.push(f));
    expect(seen).toEqual([0, 2, 4]);
  });

  it("the constructor takes 1 to 4194304 flows and positive timeouts, and says which is bad", () => {
    for (const bad of [0, -1, 1.5, NaN, 2 ** 22 + 1]) {
      expect(() => new FlowTable({ max: bad, timeouts: T }), String(bad)).toThrow(`conntrack max must be a whole number of flows from 1 to 4194304, not ${bad}`);
    }
    for (const bad of [0, -5, NaN, Infinity]) {
      expect(() => new FlowTable({ max: 1, timeouts: { ...T, udpStream: bad } })).toThrow(`conntrack timeout udpStream must be a positive number of seconds, not ${bad}`);
    }
    for (const bad of [0, -1, 1.5, NaN, 2 ** 22 + 1]) {
      expect(() => new FlowTable({ max: 4, timeouts: T, owners: bad }), String(bad)).toThrow(`conntrack owners must be a whole number from 1 to 4194304, not ${bad}`);
    }
    for (const bad of [0, 1.5, NaN, 5]) {
      expect(() => new FlowTable({ max: 4, timeouts: T, quota: bad }), String(bad)).toThrow(`conntrack max per pod must be a whole number of flows from 1 to the table's 4, not ${bad}`);
    }
    const t = new FlowTable({ max: DEFAULT_MAX_FLOWS, timeouts: DEFAULT_TIMEOUTS });
    expect(t.capacity).toBe(65536);
    expect([t.owners, t.quota]).toEqual([1, 65536]);
    // The switch's default quota: a quarter of the table, at least one flow.
    expect([defaultQuota(DEFAULT_MAX_FLOWS), defaultQuota(64), defaultQuota(5), defaultQuota(1)]).toEqual([16384, 16, 2, 1]);
    expect(t.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(DEFAULT_TIMEOUTS).toEqual({ tcpNew: 120, tcpEstablished: 86400, tcpClosing: 120, udp: 30, udpStream: 120, icmp: 30, other: 600 });
  });

  it("the timeouts are its own copy: changing the object passed in later changes nothing", () => {
    const mine = { ...T };
    const t = new FlowTable({ max: 1, timeouts: mine });
    mine.udp = 999;
    const f = t.create(UDP, A, B, 1, 2, B, A, 2, 1, 0);
    expect(t.expires[f]).toBe(4);
    expect(t.timeouts.udp).toBe(4);
  });
});

describe("FlowTable hash", () => {
  /** The most keys in one bucket when these tuples are all keyed (white-box, through bucketOf). */
  function longestChain(t: FlowTable, tuples: Tuple[]): number {
    const n = new Map<number, number>();
    for (const tu of tuples) n.set(bucketOf(t, tu), (n.get(bucketOf(t, tu)) ?? 0) + 1);
    return Math.max(...n.values());
  }
  const vary = (i: number): Tuple[] => [
    [i & 0xff, A, B, 1000, 80],
    [TCP, (A + i) >>> 0, B, 1000, 80],
    [TCP, (HIGH + (i << 20)) >>> 0, B, 1000, 80], // the high bits of an address
    [TCP, A, (B + i) >>> 0, 1000, 80],
    [TCP, A, B, 1000 + i, 80],
    [TCP, A, B, 1000, 80 + i],
  ];

  it("spreads tuples that differ in one field only: no bucket holds more than a few", () => {
    // 1024 flows have 2048 buckets: 1024 tuples (256 for the protocol) land in about 79% as many
    // different ones (2048 buckets * (1 - e^-0.5)); with 1024 buckets it would be 63%.
    const t = new FlowTable({ max: 1024, timeouts: T, seed: 7 });
    const sets = Array.from({ length: 6 }, (_, field) => Array.from({ length: field === 0 ? 256 : 1024 }, (_, i) => vary(i)[field]));
    for (const [field, tuples] of sets.entries()) {
      expect(longestChain(t, tuples), `field ${field}`).toBeLessThanOrEqual(6);
      expect(new Set(tuples.map((tu) => bucketOf(t, tu))).size, `field ${field}`).toBeGreaterThan(tuples.length * 0.72);
    }
  });

  it("the seed changes where tuples land", () => {
    const a = new FlowTable({ max: 64, timeouts: T, seed: 1 });
    const b = new FlowTable({ max: 64, timeouts: T, seed: 2 });
    const tuples = Array.from({ length: 64 }, (_, i) => vary(i)[4]);
    const moved = tuples.filter((tu) => bucketOf(a, tu) !== bucketOf(b, tu)).length;
    expect(moved).toBeGreaterThan(48);
  });
});

describe("FlowTable state machine", () => {
  function flow(proto: number) {
    const t = new FlowTable({ max: 2, timeouts: T });
    const f = t.create(proto, A, B, 40000, 80, B, A, 80, 40000, 1000);
    const at = (d: number, flags: number, now: number) => {
      t.seen(f, d, flags, 64, now);
      return [t.state[f], t.expires[f]];
    };
    return { t, f, at };
  }

  it("TCP: New until a reply, then Established; FIN or RST either way → Closing", () => {
    const { t, f, at } = flow(TCP);
    expect([t.state[f], t.expires[f]]).toEqual([FlowState.New, 1005]);
    expect(at(ORIG, SYN, 1000)).toEqual([FlowState.New, 1005]);
    expect(at(ORIG, SYN, 1001)).toEqual([FlowState.New, 1006]); // a retransmitted SYN
    expect(at(REPLY, SYN | ACK, 1002)).toEqual([FlowState.Established, 1052]);
    expect(at(ORIG, ACK, 1003)).toEqual([FlowState.Established, 1053]);
    expect(at(ORIG, PSH | ACK, 1004)).toEqual([FlowState.Established, 1054]);
    expect(at(REPLY, FIN | ACK, 1010)).toEqual([FlowState.Closing, 1013]);
    expect(at(ORIG, ACK, 1011)).toEqual([FlowState.Closing, 1014]); // stays closing
    expect(at(REPLY, ACK, 1012)).toEqual([FlowState.Closing, 1015]);
    expect(at(ORIG, FIN | ACK, 1012)).toEqual([FlowState.Closing, 1015]);
  });

  it("TCP: an RST on a new flow closes it; so does a FIN from the original side", () => {
    const r = flow(TCP);
    expect(r.at(ORIG, SYN, 1000)).toEqual([FlowState.New, 1005]);
    expect(r.at(REPLY, RST | ACK, 1001)).toEqual([FlowState.Closing, 1004]); // refused
    const f = flow(TCP);
    f.at(REPLY, SYN | ACK, 1000);
    expect(f.at(ORIG, FIN, 1001)).toEqual([FlowState.Closing, 1004]);
    const g = flow(TCP);
    g.at(REPLY, ACK, 1000);
    expect(g.at(ORIG, RST, 1001)).toEqual([FlowState.Closing, 1004]);
  });

  it("TCP: a SYN without ACK from the original side reopens a closing flow (the port reused); nothing else does", () => {
    const { at } = flow(TCP);
    at(REPLY, SYN | ACK, 1000);
    at(ORIG, RST, 1001);
    expect(at(ORIG, SYN | ACK, 1002)).toEqual([FlowState.Closing, 1005]);
    expect(at(REPLY, SYN, 1002)).toEqual([FlowState.Closing, 1005]);
    expect(at(ORIG, SYN | FIN, 1002)).toEqual([FlowState.Closing, 1005]);
    expect(at(ORIG, SYN | RST, 1002)).toEqual([FlowState.Closing, 1005]);
    expect(at(ORIG, SYN | PSH, 1003)).toEqual([FlowState.New, 1008]);
    expect(at(ORIG, ACK, 1004)).toEqual([FlowState.New, 1009]);
    expect(at(REPLY, SYN | ACK, 1005)).toEqual([FlowState.Established, 1055]);
  });

  it("TCP: a SYN from the original side does not reset an established flow", () => {
    const { at } = flow(TCP);
    at(REPLY, ACK, 1000);
    expect(at(ORIG, SYN, 1001)).toEqual([FlowState.Established, 1051]);
  });

  it("UDP: New (udp timeout) until a reply, then Established (udpStream); flags mean nothing", () => {
    const { t, f, at } = flow(UDP);
    expect([t.state[f], t.expires[f]]).toEqual([FlowState.New, 1004]);
    expect(at(ORIG, 0, 1001)).toEqual([FlowState.New, 1005]);
    expect(at(ORIG, FIN | RST, 1002)).toEqual([FlowState.New, 1006]);
    expect(at(REPLY, 0, 1003)).toEqual([FlowState.Established, 1023]);
    expect(at(ORIG, RST, 1004)).toEqual([FlowState.Established, 1024]);
  });

  it("ICMP: the icmp timeout in every state; Established once a reply is seen", () => {
    const { t, f, at } = flow(ICMP);
    expect([t.state[f], t.expires[f]]).toEqual([FlowState.New, 1002]);
    expect(at(ORIG, 0, 1001)).toEqual([FlowState.New, 1003]);
    expect(at(REPLY, FIN, 1002)).toEqual([FlowState.Established, 1004]);
    expect(at(ORIG, 0, 1003)).toEqual([FlowState.Established, 1005]);
  });

  it("other protocols: the `other` timeout; Established once a reply is seen", () => {
    const { t, f, at } = flow(GRE);
    expect([t.state[f], t.expires[f]]).toEqual([FlowState.New, 1010]);
    expect(at(ORIG, RST, 1001)).toEqual([FlowState.New, 1011]);
    expect(at(REPLY, 0, 1002)).toEqual([FlowState.Established, 1012]);
  });

  it("the direction is the low bit of a key, as lookup gives it", () => {
    const { t, f } = flow(UDP);
    const k = t.lookup(UDP, B, A, 80, 40000);
    t.seen(f, k & 1, 0, 10, 1001);
    expect([t.state[f], t.packets[f * 2 + 1]]).toEqual([FlowState.Established, 1]);
  });
});

describe("FlowTable sweep", () => {
  /** A table of 10 flows, all live; flows 1, 2, 5, 8 and 9 expire at 10, the rest at 100. */
  function table() {
    const t = new FlowTable({ max: 10, timeouts: { ...T, udp: 100 } });
    for (let p = 0; p < 10; p++) {
      const f = t.create(UDP, A, B, p, 53, B, A, 53, p, 0);
      expect(f).toBe(p);
      if ([1, 2, 5, 8, 9].includes(f)) t.expires[f] = 10;
    }
    return t;
  }

  it("looks at `budget` slots from where it stopped, wrapping, and says how many it removed", () => {
    const t = table();
    const gone: number[] = [];
    const cb = (f: number) => gone.push(f);
    expect(t.sweep(10, 3, cb)).toBe(2); // slots 0-2
    expect(gone).toEqual([1, 2]);
    expect(t.sweep(10, 3, cb)).toBe(1); // slots 3-5
    expect(t.sweep(10, 3, cb)).toBe(1); // slots 6-8
    expect(gone).toEqual([1, 2, 5, 8]);
    t.expires[0] = 10;
    t.expires[3] = 10;
    expect(t.sweep(10, 3, cb)).toBe(2); // slots 9, 0, 1: wrapped
    expect(gone).toEqual([1, 2, 5, 8, 9, 0]);
    expect(t.sweep(10, 2, cb)).toBe(1); // slots 2, 3
    expect(t.count).toBe(3);
    expect(t.isLive(3)).toBe(false);
  });

  it("removes a flow whose expiry equals now, not one a moment later", () => {
    const t = table();
    expect(t.sweep(9.999, 10)).toBe(0);
    expect(t.sweep(10, 10)).toBe(5);
    expect(t.count).toBe(5);
  });

  it("a budget larger than the table looks at each slot once; zero, negative or NaN looks at none", () => {
    const t = table();
    const gone: number[] = [];
    expect(t.sweep(10, 0, (f) => gone.push(f))).toBe(0);
    expect(t.sweep(10, -3, (f) => gone.push(f))).toBe(0);
    expect(t.sweep(10, NaN, (f) => gone.push(f))).toBe(0);
    expect(t.sweep(10, 25, (f) => gone.push(f))).toBe(5);
    expect(gone).toEqual([1, 2, 5, 8, 9]);
    t.expires[4] = 20;
    expect(t.sweep(20, 7)).toBe(1); // a full circle ends where it began: slots 0-6
  });

  it("calls onExpired while the flow is still readable, and copes with the callback removing it", () => {
    const t = table();
    const got: [number, boolean, number][] = [];
    t.sweep(10, 3, (f) => {
      got.push([f, t.isLive(f), t.lookup(UDP, A, B, f, 53)]);
      t.remove(f);
    });
    expect(got).toEqual([[1, true, 2], [2, true, 4]]);
    expect(t.count).toBe(8);
    expect(t.lookup(UDP, A, B, 1, 53)).toBe(-1);
  });

  it("an empty table sweeps nothing", () => {
    const t = new FlowTable({ max: 4, timeouts: T });
    expect(t.sweep(1e9, 100)).toBe(0);
  });
});

describe("parseTimeouts", () => {
  it("changes the named timeouts of the defaults and leaves the rest", () => {
    expect(parseTimeouts("tcp-established=3600,udp=30")).toEqual({ ...DEFAULT_TIMEOUTS, tcpEstablished: 3600, udp: 30 });
    expect(parseTimeouts(" udp-stream = 90 , icmp=5 ")).toEqual({ ...DEFAULT_TIMEOUTS, udpStream: 90, icmp: 5 });
    expect(parseTimeouts("tcp-new=1,tcp-established=2,tcp-closing=3,udp=4,udp-stream=5,icmp=6,other=2147483647"))
      .toEqual({ tcpNew: 1, tcpEstablished: 2, tcpClosing: 3, udp: 4, udpStream: 5, icmp: 6, other: 2147483647 });
    expect(parseTimeouts("other=0600")).toEqual({ ...DEFAULT_TIMEOUTS, other: 600 });
  });

  it("an empty text changes nothing; the result is a new object", () => {
    const a = parseTimeouts("");
    expect(a).toEqual(DEFAULT_TIMEOUTS);
    expect(a).not.toBe(DEFAULT_TIMEOUTS);
    expect(parseTimeouts("  ")).toEqual(DEFAULT_TIMEOUTS);
    parseTimeouts("udp=1");
    expect(DEFAULT_TIMEOUTS.udp).toBe(30);
  });

  it("starts from the base given", () => {
    expect(parseTimeouts("icmp=9", T)).toEqual({ ...T, icmp: 9 });
  });

  it("formatTimeouts writes what parseTimeouts reads", () => {
    expect(formatTimeouts(DEFAULT_TIMEOUTS)).toBe("tcp-new=120,tcp-established=86400,tcp-closing=120,udp=30,udp-stream=120,icmp=30,other=600");
    expect(parseTimeouts(formatTimeouts(T), DEFAULT_TIMEOUTS)).toEqual(T);
  });

  const names = "tcp-new, tcp-established, tcp-closing, udp, udp-stream, icmp, other";
  const bad: [string, string][] = [
    ["tcp-est=5", `conntrack timeouts: unknown name "tcp-est" in "tcp-est=5"; the names are ${names}`],
    ["udp=30,tcpEstablished=5", `conntrack timeouts: unknown name "tcpEstablished" in "tcpEstablished=5"; the names are ${names}`],
    ["=5", `conntrack timeouts: unknown name "" in "=5"; the names are ${names}`],
    ["UDP=5", `conntrack timeouts: unknown name "UDP" in "UDP=5"; the names are ${names}`],
    ["udp", `conntrack timeouts: "udp" is not name=seconds (as in udp=30)`],
    ["udp 30", `conntrack timeouts: "udp 30" is not name=seconds (as in udp=30)`],
    ["udp=30,,icmp=5", `conntrack timeouts: empty item in "udp=30,,icmp=5" (expected name=seconds, separated by commas)`],
    ["udp=30,", `conntrack timeouts: empty item in "udp=30," (expected name=seconds, separated by commas)`],
    ["udp=30,udp=40", `conntrack timeouts: "udp" is given twice`],
    ["udp=0", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "0"`],
    ["udp=-5", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "-5"`],
    ["udp=1.5", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "1.5"`],
    ["udp=", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not ""`],
    ["udp=30s", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "30s"`],
    ["udp=1e3", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "1e3"`],
    ["udp=0x10", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "0x10"`],
    ["udp=2147483648", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "2147483648"`],
    ["udp=5=6", `conntrack timeouts: udp must be a whole number of seconds from 1 to 2147483647, not "5=6"`],
    ["tcp-closing=Infinity", `conntrack timeouts: tcp-closing must be a whole number of seconds from 1 to 2147483647, not "Infinity"`],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      expect(() => parseTimeouts(text)).toThrow(new Error(message));
    });
  }
});

/**
 * The reference: what the table means, written the obvious way. Flows are plain objects by id;
 * keys are tuple strings. The model takes the id the table picks for a new flow, after checking
 * it was free.
 */
interface ModelFlow {
  owner: number;
  proto: number;
  tuples: [Tuple, Tuple];
  state: number;
  expires: number;
  packets: [number, number];
  bytes: [number, number];
}

class ModelTable {
  readonly keys = new Map<string, { flow: number; dir: number }>();
  readonly flows = new Map<number, ModelFlow>();
  private cursor = 0;
  constructor(readonly capacity: number, readonly t: ConntrackTimeouts, readonly owners = 1, readonly quota = capacity) {}

  /** The owner a create counts a flow for: one out of range is the last. */
  ownerOf(owner: number): number {
    return owner >= 0 && owner < this.owners ? Math.trunc(owner) : this.owners - 1;
  }

  /** Live flows of `owner`, counted from scratch. */
  held(owner: number): number {
    let n = 0;
    for (const fl of this.flows.values()) if (fl.owner === owner) n++;
    return n;
  }

  timeout(proto: number, state: number): number {
    if (proto === TCP) return state === FlowState.New ? this.t.tcpNew : state === FlowState.Established ? this.t.tcpEstablished : this.t.tcpClosing;
    if (proto === UDP) return state === FlowState.New ? this.t.udp : this.t.udpStream;
    return proto === ICMP ? this.t.icmp : this.t.other;
  }

  /** What create should return: -2, -1, -3, or "a free id" (null). */
  expectCreate(o: Tuple, r: Tuple, owner = 0): number | null {
    if (String(o) === String(r) || this.keys.has(String(o)) || this.keys.has(String(r))) return -2;
    if (this.flows.size >= this.capacity) return -1;
    if (this.held(this.ownerOf(owner)) >= this.quota) return -3;
    return null;
  }

  create(f: number, o: Tuple, r: Tuple, now: number, owner = 0): void {
    this.flows.set(f, { owner: this.ownerOf(owner), proto: o[0], tuples: [o, r], state: FlowState.New, expires: now + this.timeout(o[0], FlowState.New), packets: [0, 0], bytes: [0, 0] });
    this.keys.set(String(o), { flow: f, dir: ORIG });
    this.keys.set(String(r), { flow: f, dir: REPLY });
  }

  lookup(tu: Tuple): number {
    const k = this.keys.get(String(tu));
    return k ? k.flow * 2 + k.dir : -1;
  }

  setReply(f: number, r: Tuple): boolean {
    const fl = this.flows.get(f);
    if (!fl) return false;
    const k = this.keys.get(String(r));
    if (k) return k.flow === f && k.dir === REPLY;
    this.keys.delete(String(fl.tuples[REPLY]));
    fl.tuples[REPLY] = r;
    this.keys.set(String(r), { flow: f, dir: REPLY });
    return true;
  }

  seen(f: number, d: number, flags: number, bytes: number, now: number): void {
    const fl = this.flows.get(f);
    if (!fl) return;
    fl.packets[d]++;
    fl.bytes[d] += bytes;
    if (fl.proto === TCP) {
      const finOrRst = (flags & FIN) !== 0 || (flags & RST) !== 0;
      const bareSyn = (flags & SYN) !== 0 && (flags & ACK) === 0;
      if (finOrRst) fl.state = FlowState.Closing;
      else if (fl.state === FlowState.Closing && d === ORIG && bareSyn) fl.state = FlowState.New;
      else if (fl.state === FlowState.New && d === REPLY) fl.state = FlowState.Established;
    } else if (d === REPLY) {
      fl.state = FlowState.Established;
    }
    fl.expires = now + this.timeout(fl.proto, fl.state);
  }

  remove(f: number): void {
    const fl = this.flows.get(f);
    if (!fl) return;
    this.keys.delete(String(fl.tuples[ORIG]));
    this.keys.delete(String(fl.tuples[REPLY]));
    this.flows.delete(f);
  }

  sweep(now: number, budget: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < Math.min(budget, this.capacity); i++) {
      const fl = this.flows.get(this.cursor);
      if (fl && fl.expires <= now) { out.push(this.cursor); this.remove(this.cursor); }
      this.cursor = (this.cursor + 1) % this.capacity;
    }
    return out;
  }
}

describe("FlowTable against a naive model, random operations (three owners, each with a quota of half the table)", () => {
  const OPS = trials(20_000, 3000);
  // A small tuple space, so that duplicates, collisions and re-use happen all the time.
  const PROTOS = [TCP, UDP, ICMP, GRE];
  const ADDRS = [A, B, HIGH];
  const PORTS = [0, 80, 40000, 65535];
  const FLAGS = [0, SYN, SYN | ACK, ACK, FIN | ACK, RST, RST | ACK, SYN | FIN, PSH | ACK];
  const OWNERS = 3;
  // Mostly owners in range; sometimes one out of range (counted as the last), or none given (owner 0).
  const OWNER_CHOICES = [0, 0, 1, 1, 2, 2, -1, 3, 7, 1.5, NaN, undefined];

  for (const max of [1, 7, 16, 64]) {
    for (const seed of [1, 2, 0xf10]) {
      it(`agrees op by op: max ${max}, seed ${seed}`, () => {
        const rnd = prng(seed * 100 + max);
        const pick = <V>(a: readonly V[]): V => a[Math.floor(rnd() * a.length)];
        const randomTuple = (proto = pick(PROTOS)): Tuple => [proto, pick(ADDRS), pick(ADDRS), pick(PORTS), pick(PORTS)];
        const quota = Math.ceil(max / 2);
        const t = new FlowTable({ max, timeouts: T, seed, owners: OWNERS, quota });
        const m = new ModelTable(max, T, OWNERS, quota);
        const tally = { created: 0, full: 0, overQuota: max > 1 ? 0 : 1, outOfRange: 0, removedInCallback: 0, dup: 0, swept: 0, reKeyed: 0, refused: 0, sharedBucket: 0, established: 0, closing: 0, reopened: 0 };
        let now = 0;

        // expect() only on a mismatch: one per comparison would dominate the run time.
        const same = (actual: unknown, expected: unknown, i: number, what: string) => {
          if (actual !== expected) expect(actual, `max ${max}, seed ${seed}, op ${i}: ${what}`).toEqual(expected);
        };

        const check = (i: number, op: string) => {
          same(t.count, m.flows.size, i, `${op}: count`);
          for (let o = -1; o <= OWNERS; o++) same(t.heldBy(o), m.held(o), i, `${op}: heldBy(${o})`);
          for (let f = 0; f < max; f++) {
            const fl = m.flows.get(f);
            same(t.isLive(f), fl !== undefined, i, `${op}: isLive(${f})`);
            if (!fl) continue;
            same(t.owner[f], fl.owner, i, `${op}: owner of ${f}`);
            same(t.proto[f], fl.proto, i, `${op}: proto of ${f}`);
            same(t.state[f], fl.state, i, `${op}: state of ${f}`);
            same(t.expires[f], fl.expires, i, `${op}: expiry of ${f}`);
            for (const d of [ORIG, REPLY]) {
              const k = f * 2 + d;
              const tu = fl.tuples[d];
              if (t.src[k] !== tu[1] || t.dst[k] !== tu[2] || t.sport[k] !== tu[3] || t.dport[k] !== tu[4]) {
                expect(tupleOf(t, k), `max ${max}, seed ${seed}, op ${i}: ${op}: tuple ${k}`).toEqual(tu);
              }
              same(t.packets[k], fl.packets[d], i, `${op}: packets ${k}`);
              same(t.bytes[k], fl.bytes[d], i, `${op}: bytes ${k}`);
              same(t.lookup(...fl.tuples[d]), k, i, `${op}: lookup of key ${k}`);
            }
          }
        };

        for (let i = 0; i < OPS; i++) {
          // Time creeps, slower for bigger tables so that they fill, and now and then leaps past every timeout.
          if (rnd() < 0.2) now += rnd() < 0.97 ? (rnd() * 8) / max : rnd() * 60;
          const r = rnd();
          const live = [...m.flows.keys()];
          // Flow ids: mostly live ones, sometimes any slot or out of range.
          const someFlow = () => (live.length > 0 && rnd() < 0.85 ? pick(live) : Math.floor(rnd() * (max + 2)) - 1);
          let op: string;
          if (r < 0.3) {
            const o = randomTuple();
            // Mostly the inverse (no NAT), sometimes a translated reply.
            const rep: Tuple = rnd() < 0.7 ? [o[0], o[2], o[1], o[4], o[3]] : randomTuple(o[0]);
            const owner = pick(OWNER_CHOICES);
            op = `create ${o} / ${rep} at ${now} for ${owner}`;
            const want = m.expectCreate(o, rep, owner);
            const got = owner === undefined ? t.create(...o, rep[1], rep[2], rep[3], rep[4], now) : t.create(...o, rep[1], rep[2], rep[3], rep[4], now, owner);
            if (want === null) {
              if (!(got >= 0 && got < max && !m.flows.has(got))) expect(got, `op ${i}: ${op}: a free id`).toBe("a free id");
              m.create(got, o, rep, now, owner);
              if (owner !== undefined && m.ownerOf(owner) !== owner) tally.outOfRange++;
              // Either new key in a bucket with another key (its sibling included): a chain to walk.
              const buckets = tally.created % 32 !== 0 ? [] : [...m.keys.keys()].map((key) => bucketOf(t, key.split(",").map(Number) as Tuple));
              if (new Set(buckets).size < buckets.length) tally.sharedBucket++;
              tally.created++;
            } else {
              same(got, want, i, op);
              if (want === -1) tally.full++; else if (want === -3) tally.overQuota++; else tally.dup++;
            }
          } else if (r < 0.45) {
            const tu = randomTuple();
            op = `lookup ${tu}`;
            same(t.lookup(...tu), m.lookup(tu), i, op);
          } else if (r < 0.75) {
            const f = someFlow();
            const d = rnd() < 0.5 ? ORIG : REPLY;
            const flags = rnd() < 0.8 ? pick(FLAGS) : Math.floor(rnd() * 256);
            const bytes = Math.floor(rnd() * 1500);
            op = `seen ${f} dir ${d} flags ${flags} at ${now}`;
            const before = m.flows.get(f)?.state;
            m.seen(f, d, flags, bytes, now);
            t.seen(f, d, flags, bytes, now);
            const after = m.flows.get(f)?.state;
            if (after !== before) {
              if (after === FlowState.Established) tally.established++;
              if (after === FlowState.Closing) tally.closing++;
              if (after === FlowState.New) tally.reopened++;
            }
          } else if (r < 0.82) {
            const f = someFlow();
            // Sometimes a tuple that is a key already (of the flow's protocol, or it is not the same key).
            const proto = m.flows.get(f)?.proto ?? pick(PROTOS);
            const taken = rnd() < 0.3 ? [...m.keys.keys()].map((key) => key.split(",").map(Number) as Tuple).filter((tu) => tu[0] === proto) : [];
            const rep = taken.length > 0 ? pick(taken) : randomTuple(proto);
            op = `setReply ${f} ${rep}`;
            const want = m.setReply(f, rep);
            same(t.setReply(f, ...(rep.slice(1) as [number, number, number, number])), want, i, op);
            if (want) tally.reKeyed++; else tally.refused++;
          } else if (r < 0.9) {
            const f = someFlow();
            op = `remove ${f}`;
            m.remove(f);
            t.remove(f);
          } else {
            const budget = Math.floor(rnd() * (max * 1.5 + 1));
            op = `sweep ${budget} at ${now}`;
            const got: number[] = [];
            const removed = t.sweep(now, budget, (f) => {
              got.push(f);
              same(t.isLive(f), true, i, `${op}: flow ${f} still live in the callback`);
              // The callback may remove the flow itself: it is given back to its owner once.
              if (f % 3 === 0) { t.remove(f); tally.removedInCallback++; }
            });
            const want = m.sweep(now, budget);
            same(removed, want.length, i, `${op}: how many`);
            same(String(got), String(want), i, `${op}: which`);
            tally.swept += removed;
          }
          check(i, op);
        }
        // Every path was taken, or the test proves less than it says.
        for (const [name, n] of Object.entries(tally)) expect(n, name).toBeGreaterThan(0);
      });
    }
  }
});

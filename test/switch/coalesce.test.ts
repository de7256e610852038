// The receive-side TCP coalescer (coalesce.ts): which consecutive segments continue a run, as
// Linux's tcp_gro_receive decides, and the super-frame head and tail `finish` writes for a run.
import { describe, expect, it } from "vitest";
import { COALESCE_MAX_SEGMENTS, TcpCoalescer } from "../../src/switch/coalesce.ts";
import { newTail } from "../../src/switch/frames.ts";
import { HEAD_ROOM, type FrameTail } from "../../src/tunnel/contract.ts";
import { fromHex, put16, put32 } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { TCP_ACK_FLAG, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from "../../src/wire/tcp.ts";
import { prng, trials } from "../support/random.ts";

/** A TCP segment in an IPv4 packet (20 bytes, no options), as plain fields. */
interface Seg {
  tos: number;
  id: number;
  df: boolean;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  /** TCP option bytes (a multiple of 4). */
  options: number[];
  /** Payload length; its bytes are made from `fill`. */
  payload: number;
  fill: number;
}

const TIMESTAMPS = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]; // NOP NOP timestamps
const BASE: Seg = {
  tos: 0x02, id: 0x1234, df: true, ttl: 64, protocol: 6, src: 0x0af40205, dst: 0x0af40103, srcPort: 5201, dstPort: 40000,
  seq: 0x01020304, ack: 77, flags: TCP_ACK_FLAG, window: 500, urgent: 0, options: TIMESTAMPS, payload: 100, fill: 0,
};
/** Bytes before each IPv4 packet in the receive buffer: as a VXLAN header and inner Ethernet would be. */
const ENCAP = 22;
/** Where the first datagram lies in the buffer (odd, so that no offset is an accident). */
const FIRST = 7;

/** A head and a tail for `finish` to write, full of what an earlier frame left in them. */
function dirty(): { head: Uint8Array; tail: FrameTail } {
  const tail = newTail();
  tail.buf = new Uint8Array(1);
  tail.headLen = 999;
  tail.count = 17;
  tail.offs.fill(-1);
  tail.lens.fill(-1);
  return { head: new Uint8Array(HEAD_ROOM).fill(0xff), tail };
}

/** Writes `s` at buf[ip..] (zeros) with a valid IPv4 header checksum; returns the packet's length. */
function emitSeg(s: Seg, buf: Uint8Array, ip: number): number {
  const hl = 20 + s.options.length;
  const total = 20 + hl + s.payload;
  buf[ip] = 0x45;
  buf[ip + 1] = s.tos;
  put16(buf, ip + 2, total);
  put16(buf, ip + 4, s.id);
  put16(buf, ip + 6, s.df ? 0x4000 : 0);
  buf[ip + 8] = s.ttl;
  buf[ip + 9] = s.protocol;
  put16(buf, ip + 10, 0);
  put32(buf, ip + 12, s.src);
  put32(buf, ip + 16, s.dst);
  put16(buf, ip + 10, internetChecksum(buf, ip, 20));
  const tcp = ip + 20;
  put16(buf, tcp, s.srcPort);
  put16(buf, tcp + 2, s.dstPort);
  put32(buf, tcp + 4, s.seq >>> 0);
  put32(buf, tcp + 8, s.ack >>> 0);
  buf[tcp + 12] = (hl / 4) << 4;
  buf[tcp + 13] = s.flags;
  put16(buf, tcp + 14, s.window);
  put16(buf, tcp + 16, 0xdead); // the coalescer does not read it: merge has verified it
  put16(buf, tcp + 18, s.urgent);
  buf.set(s.options, tcp + 20);
  // Payloads that begin differently from segment to segment; none of their bytes has PSH's bit (0x08).
  for (let i = 0; i < Math.min(s.payload, 16); i++) buf[tcp + hl + i] = (s.fill + i * 0x11) & 0xf7;
  return total;
}

/** One datagram of a GRO read, as merge offers it: where its IPv4 header and payload lie, and the datagram's length. */
interface Feed { buf: Uint8Array; ip: number; pay: number; len: number }

/** Lays `segs` out one after another in one receive buffer, each behind ENCAP bytes. */
function layout(segs: Seg[]): { buf: Uint8Array; feeds: Feed[] } {
  const size = segs.reduce((n, s) => n + ENCAP + 40 + s.options.length + s.payload, FIRST + 16);
  const buf = new Uint8Array(size);
  const feeds: Feed[] = [];
  let at = FIRST;
  for (const s of segs) {
    buf.fill(0xee, at, at + ENCAP);
    const len = ENCAP + emitSeg(s, buf, at + ENCAP);
    feeds.push({ buf, ip: at + ENCAP, pay: at + ENCAP + 40 + s.options.length, len });
    at += len;
  }
  return { buf, feeds };
}

/** The segments of a flow after `first`: each at the next sequence number, with the same fields. */
function flow(first: Partial<Seg>, n: number, change: (k: number, s: Seg) => void = () => {}): Seg[] {
  const segs: Seg[] = [];
  let s: Seg = { ...BASE, ...first };
  for (let k = 0; k < n; k++) {
    const next: Seg = { ...s, fill: k * 29 + 3 };
    if (k > 0) {
      next.seq = (s.seq + s.payload) >>> 0;
      next.id = (s.id + 1) & 0xffff;
    }
    change(k, next);
    segs.push(next);
    s = next;
  }
  return segs;
}

/** Starts a run with the first of `segs`, adds the others (which must fit), and asks whether `next` fits. */
function fitsAfter(segs: Seg[], next: Partial<Seg>): boolean {
  const last = segs[segs.length - 1];
  const all = [...segs, { ...last, fill: 0xa5, id: last.id + 1, seq: (last.seq + last.payload) >>> 0, ...next }];
  const { feeds } = layout(all);
  const co = new TcpCoalescer();
  start(co, feeds[0]);
  for (const f of feeds.slice(1, -1)) {
    expect(co.fits(f.buf, f.ip, f.buf)).toBe(true);
    co.add(f.buf, f.ip, f.pay);
  }
  const f = feeds[feeds.length - 1];
  return co.fits(f.buf, f.ip, f.buf);
}

/** Starts a run with the segment of `f`: its headers and its payload in its buffer. */
function start(co: TcpCoalescer, f: Feed): void {
  co.start(f.buf, f.ip, f.buf, f.pay);
}

interface Run { segs: number[]; len: number; head: Uint8Array; offs: number[]; lens: number[] }

/** Feeds datagrams to a coalescer as merge does, finishing each run; the runs, as indices into `feeds`. */
function coalesce(feeds: Feed[], co = new TcpCoalescer()): Run[] {
  const runs: Run[] = [];
  let cur: number[] = [];
  const flush = () => {
    const { head, tail: t } = dirty();
    const len = co.finish(head, t);
    runs.push({ segs: cur, len, head: head.slice(0, t.headLen), offs: Array.from(t.offs.subarray(0, t.count)), lens: Array.from(t.lens.subarray(0, t.count)) });
    cur = [];
  };
  feeds.forEach((f, i) => {
    if (co.count > 0 && !co.fits(f.buf, f.ip, f.buf)) flush();
    if (co.count === 0) start(co, f);
    else co.add(f.buf, f.ip, f.pay);
    cur.push(i);
    if (co.closed) flush();
  });
  if (co.count > 0) flush();
  return runs;
}

describe("which segment continues a run (fits)", () => {
  const first = flow({}, 1);

  it("the flow's next segment, at the next sequence number with the first's payload size, continues the run", () => {
    expect(fitsAfter(first, {})).toBe(true);
    expect(fitsAfter(flow({}, 5), {})).toBe(true);
  });

  it("the IP id, the urgent pointer and the checksums are not compared: every segment has its own", () => {
    expect(fitsAfter(first, { id: 0x9999, urgent: 3 })).toBe(true);
  });

  const differs: [string, Partial<Seg>][] = [
    ["TOS: an ECN CE mark (0x03 after 0x02)", { tos: 0x03 }],
    ["TOS: its DSCP", { tos: 0xba }],
    ["DF (cleared)", { df: false }],
    ["TTL (one less)", { ttl: 63 }],
    ["TTL (one more)", { ttl: 65 }],
    ["protocol (UDP)", { protocol: 17 }],
    ["source port", { srcPort: 5202 }],
    ["source port's high byte", { srcPort: 5201 + 0x100 }],
    ["destination port", { dstPort: 40001 }],
    ["destination port's high byte", { dstPort: 40000 + 0x100 }],
    ["ACK number", { ack: 78 }],
    ["ACK number's high byte", { ack: 77 + 0x1000000 }],
    ["flags: FIN", { flags: TCP_ACK_FLAG | TCP_FIN }],
    ["flags: SYN", { flags: TCP_ACK_FLAG | TCP_SYN }],
    ["flags: RST", { flags: TCP_ACK_FLAG | TCP_RST }],
    ["flags: URG", { flags: TCP_ACK_FLAG | TCP_URG }],
    ["flags: ECE", { flags: TCP_ACK_FLAG | TCP_ECE }],
    ["flags: CWR", { flags: TCP_ACK_FLAG | TCP_CWR }],
    ["flags: no ACK", { flags: 0 }],
    ["window", { window: 501 }],
    ["window's high byte", { window: 500 + 0x100 }],
    ["TCP header length (no options, the payload as long)", { options: [] }],
  ];
  for (let i = 0; i < 4; i++) {
    differs.push([`source address byte ${i}`, { src: (BASE.src ^ (1 << (24 - 8 * i))) >>> 0 }]);
    differs.push([`destination address byte ${i}`, { dst: (BASE.dst ^ (1 << (24 - 8 * i))) >>> 0 }]);
  }
  for (let i = 0; i < TIMESTAMPS.length; i++) {
    const options = TIMESTAMPS.slice();
    options[i] ^= 0x40;
    differs.push([`TCP option byte ${i}`, { options }]);
  }
  for (const [what, next] of differs) {
    it(`a segment that differs from the first in ${what} does not continue the run`, () => {
      expect(fitsAfter(first, next)).toBe(false);
      // Nor after other segments: it is compared with the first.
      expect(fitsAfter(flow({}, 3), next)).toBe(false);
    });
  }

  it("a segment with DF, after a first one without, does not continue the run", () => {
    expect(fitsAfter(flow({ df: false }, 1), {})).toBe(true);
    expect(fitsAfter(flow({ df: false }, 1), { df: true })).toBe(false);
  });

  it("a segment with options, after a first one without, does not continue the run", () => {
    const plain = flow({ options: [] }, 1);
    expect(fitsAfter(plain, {})).toBe(true);
    expect(fitsAfter(plain, { options: TIMESTAMPS })).toBe(false);
    expect(fitsAfter(plain, { options: [1, 1, 1, 1] })).toBe(false);
  });

  it("a segment differing only in PSH continues the run, and ends it", () => {
    expect(fitsAfter(first, { flags: TCP_ACK_FLAG | TCP_PSH })).toBe(true);
    expect(fitsAfter(flow({}, 2, (k, s) => { if (k === 1) s.flags |= TCP_PSH; }), {})).toBe(false);
  });

  it("a first segment with PSH ends its run at once", () => {
    const co = new TcpCoalescer();
    const { feeds } = layout(flow({ flags: TCP_ACK_FLAG | TCP_PSH }, 2));
    start(co, feeds[0]);
    expect(co.closed).toBe(true);
    expect(co.fits(feeds[1].buf, feeds[1].ip, feeds[1].buf)).toBe(false);
  });

  it("a segment at another sequence number (repeated, overlapping, after a gap) does not continue the run", () => {
    const three = flow({}, 3);
    const next = three[2].seq + 100;
    expect(fitsAfter(three, { seq: next })).toBe(true);
    expect(fitsAfter(three, { seq: three[2].seq })).toBe(false); // the last one again
    expect(fitsAfter(three, { seq: three[0].seq })).toBe(false); // the first one again
    expect(fitsAfter(three, { seq: next - 1 })).toBe(false); // overlapping by a byte
    expect(fitsAfter(three, { seq: next + 1 })).toBe(false); // a byte missing
    expect(fitsAfter(three, { seq: next + 100 })).toBe(false); // a segment missing
  });

  it("the sequence numbers may wrap around 2^32 within a run", () => {
    const wrapping = flow({ seq: 0xffffff9c }, 2); // 0xffffff9c + 100 = 2^32
    expect(wrapping[1].seq).toBe(0);
    expect(fitsAfter(wrapping, { seq: 100 })).toBe(true);
  });

  it("a longer payload than the first's does not continue the run; an equal one does and keeps it open", () => {
    expect(fitsAfter(first, { payload: 101 })).toBe(false);
    expect(fitsAfter(first, { payload: 100 })).toBe(true);
    expect(fitsAfter(flow({}, 2), {})).toBe(true);
  });

  it("a shorter payload continues the run and ends it: nothing fits after it", () => {
    expect(fitsAfter(first, { payload: 99 })).toBe(true);
    expect(fitsAfter(first, { payload: 1 })).toBe(true);
    const closing = flow({}, 2, (k, s) => { if (k === 1) s.payload = 99; });
    expect(fitsAfter(closing, {})).toBe(false);
    expect(fitsAfter(closing, { payload: 100 })).toBe(false);
    expect(fitsAfter(closing, { payload: 1 })).toBe(false);
  });

  it("a segment without payload (a pure ACK) does not continue the run", () => {
    expect(fitsAfter(first, { payload: 0 })).toBe(false);
  });

  it("a segment whose payload is in another buffer does not continue the run, even with the same bytes at the same place", () => {
    const { buf, feeds } = layout(flow({}, 2));
    const copy = buf.slice();
    const co = new TcpCoalescer();
    start(co, feeds[0]);
    expect(co.fits(copy, feeds[1].ip, copy)).toBe(false);
    expect(co.fits(buf, feeds[1].ip, copy)).toBe(false);
    expect(co.fits(buf, feeds[1].ip, buf)).toBe(true);
  });

  it("a segment whose headers are elsewhere (a head), its payload in the run's buffer, continues the run", () => {
    const { buf, feeds } = layout(flow({}, 2));
    const head = new Uint8Array(200).fill(0xaa);
    head.set(buf.subarray(feeds[1].ip, feeds[1].pay), 24);
    const co = new TcpCoalescer();
    start(co, feeds[0]);
    expect(co.fits(head, 24, buf)).toBe(true);
  });

  it("nothing fits before a run is started, nor after finish", () => {
    const { feeds } = layout(flow({}, 3));
    const co = new TcpCoalescer();
    expect(co.count).toBe(0);
    expect(co.fits(feeds[0].buf, feeds[0].ip, feeds[0].buf)).toBe(false);
    start(co, feeds[0]);
    co.add(feeds[1].buf, feeds[1].ip, feeds[1].pay);
    const { head, tail } = dirty();
    co.finish(head, tail);
    expect(co.count).toBe(0);
    expect(co.fits(feeds[2].buf, feeds[2].ip, feeds[2].buf)).toBe(false);
  });

  it(`${COALESCE_MAX_SEGMENTS} segments merge at most: the 65th starts a new run`, () => {
    expect(COALESCE_MAX_SEGMENTS).toBe(64);
    const segs = flow({ payload: 10 }, 130);
    const runs = coalesce(layout(segs).feeds);
    expect(runs.map((r) => r.segs.length)).toEqual([64, 64, 2]);
    expect(runs[0].lens).toEqual(new Array(64).fill(10));
    expect(fitsAfter(segs.slice(0, 63), {})).toBe(true);
    expect(fitsAfter(segs.slice(0, 64), {})).toBe(false);
  });

  it("the merged IPv4 packet may be 65535 bytes long, but not one more", () => {
    // 20 + 20 bytes of headers, 46 payloads of 1400 (64400 bytes): 1095 bytes are left.
    const full = flow({ options: [], payload: 1400 }, 46);
    expect(fitsAfter(full, { payload: 1095 })).toBe(true);
    expect(fitsAfter(full, { payload: 1096 })).toBe(false);
    // With options the headers take 12 bytes more.
    const withOptions = flow({ payload: 1400 }, 46);
    expect(fitsAfter(withOptions, { payload: 1083 })).toBe(true);
    expect(fitsAfter(withOptions, { payload: 1084 })).toBe(false);
    // A full-size segment that would pass the limit starts a new run.
    const runs = coalesce(layout(flow({ options: [], payload: 1460 }, 50)).feeds);
    expect(runs.map((r) => r.segs.length)).toEqual([44, 6]); // 40 + 44 * 1460 = 64280; + 1460 > 65535
    expect(runs[0].len).toBe(10 + 14 + 64280);
  });
});

describe("finish: the super-frame's head and tail", () => {
  /**
   * Three segments of 100, 100 and 40 bytes, PSH on the last: the golden case. With `headsApart`,
   * each segment's headers are offered from a head of their own (as tunnel in hands over the
   * later datagrams of a GRO run), the payloads from the read.
   */
  function goldenRun(headsApart = false) {
    const segs = flow({}, 3, (k, s) => { if (k === 2) { s.payload = 40; s.flags |= TCP_PSH; } });
    const { buf, feeds } = layout(segs);
    const heads = new Uint8Array(3 * HEAD_ROOM).fill(0x5a);
    const at = feeds.map((f, k) => {
      if (!headsApart) return { h: buf, ip: f.ip };
      heads.set(buf.subarray(f.ip, f.pay), k * HEAD_ROOM + 24);
      return { h: heads, ip: k * HEAD_ROOM + 24 };
    });
    const co = new TcpCoalescer();
    co.start(at[0].h, at[0].ip, buf, feeds[0].pay);
    for (let k = 1; k < 3; k++) {
      expect(co.fits(at[k].h, at[k].ip, buf)).toBe(true);
      co.add(at[k].h, at[k].ip, feeds[k].pay);
    }
    return { co, buf, feeds };
  }

  const GOLDEN_HEAD = fromHex(
    "01 01 4200 6400 2200 1000" + // NEEDS_CSUM, GSO_TCPV4, hdr_len 66, gso_size 100, csum_start 34, csum_offset 16 (little-endian)
    "000000000000 000000000000 0800" + // MACs left for deliver to write; IPv4
    "4502 0124 1234 4000 4006 0eaf 0af40205 0af40103" + // TOS 0x02, 292 bytes, id 0x1234, DF, TTL 64 as it came, TCP, checksum
    "1451 9c40 01020304 0000004d 8018 01f4 1a06 0000 0101080a 00000007 00000009", // ACK|PSH, pseudo-header sum 0x1a06 (not 0xdead)
  );

  it("writes virtio_net_hdr, Ethernet with no MACs, the first IPv4 header (whole length, new checksum) and TCP header (pseudo-header sum, PSH)", () => {
    const { co } = goldenRun();
    const { head, tail } = dirty();
    const len = co.finish(head, tail);
    expect(tail.headLen).toBe(GOLDEN_HEAD.length);
    expect(Buffer.from(head.subarray(0, tail.headLen)).toString("hex")).toBe(Buffer.from(GOLDEN_HEAD).toString("hex"));
    expect(internetChecksum(head, 24, 20)).toBe(0); // the IPv4 header checksum verifies
    expect(len).toBe(76 + 240);
  });

  it("reads each segment's headers where they are offered, and its payload where it lies: the same super-frame", () => {
    const { co, buf, feeds } = goldenRun(true);
    const { head, tail } = dirty();
    expect(co.finish(head, tail)).toBe(76 + 240);
    expect(Buffer.from(head.subarray(0, tail.headLen)).toString("hex")).toBe(Buffer.from(GOLDEN_HEAD).toString("hex"));
    expect(tail.buf).toBe(buf);
    expect(Array.from(tail.offs.subarray(0, tail.count))).toEqual(feeds.map((f) => f.pay));
  });

  it("a run with 40 bytes of TCP options, the most there can be, has all of them in its head", () => {
    const options = [1, 1, 5, 26, ...Array.from({ length: 24 }, (_, i) => i + 1), ...TIMESTAMPS]; // NOP NOP SACK(3 blocks), NOP NOP timestamps
    const [run] = coalesce(layout(flow({ options, payload: 50 }, 2)).feeds);
    expect(run.segs).toEqual([0, 1]);
    expect(run.head.length).toBe(10 + 14 + 20 + 60);
    expect([run.head[0], run.head[1]]).toEqual([1, 1]); // NEEDS_CSUM, GSO_TCPV4
    expect(run.head[2] | (run.head[3] << 8)).toBe(14 + 20 + 60); // hdr_len
    expect(run.head[24 + 20 + 12]).toBe(0xf0); // data offset: 15 words
    expect(Array.from(run.head.subarray(24 + 40))).toEqual(options);
    expect(run.len).toBe(104 + 100);
  });

  it("points the tail at the payloads where they lie in the receive buffer", () => {
    const { co, buf, feeds } = goldenRun();
    const { head, tail: t } = dirty();
    co.finish(head, t);
    expect(t.buf).toBe(buf);
    expect(t.count).toBe(3);
    expect(Array.from(t.offs.subarray(0, 3))).toEqual(feeds.map((f) => f.ip + 52));
    expect(Array.from(t.lens.subarray(0, 3))).toEqual([100, 100, 40]);
    expect(co.count).toBe(0);
  });

  it("counts the run's segments", () => {
    const { co } = goldenRun();
    expect(co.count).toBe(3);
  });

  it("sets PSH only when the last segment has it", () => {
    const segs = flow({}, 3, (k, s) => { if (k === 2) s.ack = 78; }); // the third starts another run
    const runs = coalesce(layout(segs).feeds);
    expect(runs.map((r) => r.segs)).toEqual([[0, 1], [2]]);
    expect(runs[0].head[24 + 20 + 13]).toBe(TCP_ACK_FLAG);
    const pushed = coalesce(layout(flow({}, 3, (k, s) => { s.flags = k === 1 ? TCP_ACK_FLAG | TCP_PSH : TCP_ACK_FLAG; })).feeds);
    expect(pushed.map((r) => r.segs)).toEqual([[0, 1], [2]]);
    expect(pushed[0].head[24 + 20 + 13]).toBe(TCP_ACK_FLAG | TCP_PSH);
    expect(pushed[1].head[24 + 20 + 13]).toBe(TCP_ACK_FLAG);
  });

  it("a run started after another one counts only its own segments, bytes and length, with its own header length", () => {
    const co = new TcpCoalescer();
    const a = layout(flow({}, 3, (k, s) => { if (k === 2) s.payload = 10; }));
    const [runA] = coalesce(a.feeds, co);
    expect(runA.len).toBe(76 + 210);
    const b = layout(flow({ options: [], payload: 30, ttl: 2, tos: 0, df: false, seq: 5, ack: 6, window: 7, srcPort: 8, dstPort: 9, id: 1 }, 4));
    const runsB = coalesce(b.feeds, co);
    expect(runsB.map((r) => r.segs)).toEqual([[0, 1, 2, 3]]);
    const [runB] = runsB;
    expect(runB.len).toBe(64 + 120);
    expect(runB.lens).toEqual([30, 30, 30, 30]);
    expect(runB.offs).toEqual(b.feeds.map((f) => f.ip + 40));
    expect(Buffer.from(runB.head).toString("hex")).toBe(Buffer.from(fromHex(
      "01 01 3600 1e00 2200 1000" + // hdr_len 54, gso_size 30
      "000000000000 000000000000 0800" +
      "4500 00a0 0001 0000 0206 9f68 0af40205 0af40103" + // TOS 0, 160 bytes, no DF, TTL 2
      "0008 0009 00000005 00000006 5010 0007 1982 0000", // 20-byte header, ACK, pseudo-header sum 0x1982
    )).toString("hex"));
  });
});

describe("random runs against a naive model of tcp_gro_receive's rules", () => {
  /**
   * The runs the header comment's rules make of `segs` (each in buffer `bufs[i]`): a segment
   * continues the run when the run is open (its last was neither shorter than the first nor
   * PSH), holds fewer than 64 segments, lies in the same buffer, the merged IPv4 packet stays
   * within 65535 bytes, the segment carries 1 to first's-payload bytes at the next sequence
   * number, and matches the first in addresses, ports, TOS, DF, TTL, protocol, ACK, flags but
   * PSH, window, header length and options.
   */
  function modelRuns(segs: Seg[], bufs: number[]): number[][] {
    const runs: number[][] = [];
    let run: number[] = [];
    const continues = (j: number): boolean => {
      const f = segs[run[0]];
      const last = segs[run[run.length - 1]];
      const s = segs[j];
      if (last.payload < f.payload || (last.flags & TCP_PSH) !== 0) return false;
      if (run.length >= 64 || bufs[j] !== bufs[run[0]]) return false;
      const merged = 20 + 20 + f.options.length + run.reduce((n, i) => n + segs[i].payload, 0) + s.payload;
      if (s.payload < 1 || s.payload > f.payload || merged > 65535) return false;
      if (s.seq !== (last.seq + last.payload) % 2 ** 32) return false;
      return s.tos === f.tos && s.df === f.df && s.ttl === f.ttl && s.protocol === f.protocol && s.src === f.src && s.dst === f.dst &&
        s.srcPort === f.srcPort && s.dstPort === f.dstPort && s.ack === f.ack && (s.flags | TCP_PSH) === (f.flags | TCP_PSH) &&
        s.window === f.window && s.options.length === f.options.length && s.options.every((o, i) => o === f.options[i]);
    };
    for (let j = 0; j < segs.length; j++) {
      if (run.length > 0 && !continues(j)) { runs.push(run); run = []; }
      run.push(j);
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }

  const FLAG_BITS = [TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK_FLAG, TCP_URG, TCP_ECE, TCP_CWR];
  const OPTION_SETS = [[], TIMESTAMPS, [2, 4, 5, 180], [1, 1, 4, 2, 1, 1, 1, 1]];

  /** A random stream: a flow whose fields change now and then (and stay changed), with the odd gap, PSH, short or long segment. */
  function randomSegs(rnd: () => number, n: number, rate: number): { segs: Seg[]; bufs: number[] } {
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
    let size = rnd() < 0.5 ? int(1, 80) : int(1000, 1460);
    let s: Seg = {
      ...BASE, tos: pick([0, 2, 3, 0xb8]), df: rnd() < 0.8, ttl: int(2, 255), options: pick(OPTION_SETS), payload: size,
      seq: rnd() < 0.3 ? 2 ** 32 - int(1, 3000) : Math.floor(rnd() * 2 ** 32), ack: Math.floor(rnd() * 2 ** 32), window: int(0, 0xffff),
    };
    const segs: Seg[] = [];
    const bufs: number[] = [];
    for (let k = 0; k < n; k++) {
      const t: Seg = { ...s, id: (s.id + 1) & 0xffff, fill: k * 37 + 1, flags: s.flags & ~TCP_PSH, payload: size };
      if (k > 0) t.seq = (s.seq + s.payload) % 2 ** 32;
      let buf = 0;
      if (rnd() < rate) {
        switch (int(0, 21)) {
          case 0: t.tos ^= pick([1, 2, 3, 0x04, 0x80]); break;
          case 1: t.df = !t.df; break;
          case 2: t.ttl = t.ttl === 255 ? 254 : t.ttl + pick([1, -1]); break;
          case 3: t.protocol = t.protocol === 6 ? 17 : 6; break;
          case 4: t.src = (t.src ^ (1 << int(0, 31))) >>> 0; break;
          case 5: t.dst = (t.dst ^ (1 << int(0, 31))) >>> 0; break;
          case 6: t.srcPort ^= 1 << int(0, 15); break;
          case 7: t.dstPort ^= 1 << int(0, 15); break;
          case 8: t.ack = (t.ack ^ (1 << int(0, 31))) >>> 0; break;
          case 9: t.flags ^= pick(FLAG_BITS); break;
          case 10: t.window ^= 1 << int(0, 15); break;
          case 11: if (t.options.length > 0) { t.options = t.options.slice(); t.options[int(0, t.options.length - 1)] ^= 1 << int(0, 7); } break;
          case 12: t.options = pick(OPTION_SETS); break;
          case 13: t.seq = (t.seq - int(1, t.payload + 1) + 2 ** 32) % 2 ** 32; break; // overlapping, or repeated
          case 14: t.seq = (t.seq + int(1, 3000)) % 2 ** 32; break; // a gap
          case 15: t.payload = int(0, size); break; // shorter (or no payload)
          case 16: t.payload = size + int(1, 40); break; // longer
          case 17: t.flags |= TCP_PSH; break;
          case 18: buf = 1; break; // in the other buffer
          case 19: size = rnd() < 0.5 ? int(1, 80) : int(1000, 1460); t.payload = size; break;
          case 20: t.id = int(0, 0xffff); t.urgent = int(0, 0xffff); break; // not compared
          case 21: t.flags |= TCP_PSH; t.payload = int(1, size); break;
        }
      }
      segs.push(t);
      bufs.push(buf);
      s = t;
    }
    return { segs, bufs };
  }

  it("the coalescer makes the same runs as the model, each finished with the model's lengths", () => {
    const rnd = prng(20261124);
    let merged = 0;
    let capped = 0;
    const n = trials(200);
    for (let trial = 0; trial < n; trial++) {
      // Every fourth stream changes rarely: long runs that reach the 64-segment or 64 KB cap.
      const rate = trial % 4 === 0 ? 0.005 : [0.03, 0.15, 0.5][Math.floor(rnd() * 3)];
      const { segs, bufs } = randomSegs(rnd, 1 + Math.floor(rnd() * 160), rate);
      const { buf, feeds } = layout(segs);
      const other = buf.slice(); // the same bytes, in another buffer
      const got = coalesce(feeds.map((f, i) => (bufs[i] ? { ...f, buf: other } : f))).map((r) => ({
        segs: r.segs, lens: r.lens, offs: r.offs, len: r.len,
        headLen: r.head.length, ipLen: (r.head[26] << 8) | r.head[27], gsoSize: r.head[4] | (r.head[5] << 8),
      }));
      const want = modelRuns(segs, bufs).map((run) => {
        const hl = 20 + segs[run[0]].options.length;
        const lens = run.map((i) => segs[i].payload);
        const total = lens.reduce((a, b) => a + b, 0);
        if (run.length === 64 || (run.length > 1 && 20 + hl + total + segs[run[0]].payload > 65535)) capped++;
        if (run.length > 1) merged += run.length;
        return {
          segs: run, lens, offs: run.map((i) => feeds[i].ip + 20 + hl), len: 10 + 14 + 20 + hl + total,
          headLen: 10 + 14 + 20 + hl, ipLen: 20 + hl + total, gsoSize: lens[0],
        };
      });
      expect(got, `trial ${trial}`).toEqual(want);
    }
    expect(merged).toBeGreaterThan(n * 10); // the streams did merge
    expect(capped).toBeGreaterThan(0); // and reached a cap
  });
});

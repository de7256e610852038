// The merge stage (stages/merge.ts) driven directly over a vector of frames: which entries it
// offers to the coalescer, where a run ends, and what it leaves of the ones it refuses.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { buildStages } from "../../src/switch/datapath.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, PENDING, TUNNEL } from "../../src/switch/frames.ts";
import { Merge } from "../../src/switch/stages/merge.ts";
import { SwitchState } from "../../src/switch/state.ts";
import { put16 } from "../../src/wire/bytes.ts";
import { fold, internetChecksum, pseudoHeaderSum, sumWords } from "../../src/wire/checksum.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { ETH_OFF, VNET_F_DATA_VALID } from "../../src/wire/virtio.ts";
import { CollectingSink } from "../support/gather.ts";
import { config, FakeIo, ip, POD_B, VTEP } from "./router-support.ts";

const SRC = "10.244.2.5"; // node 2's pod
const PEER = 1; // node 2
const IP = ETH_OFF + 14;
const PAY = 400;

interface SegOpts { seq: number; payload?: number; flags?: number; options?: number }

/** Headers only: vnet header (zeros), Ethernet, IPv4, TCP for a segment of `payload` bytes; returns the header length. */
function emitHeaders(b: Uint8Array, off: number, s: SegOpts): number {
  const payload = s.payload ?? PAY;
  const hl = 20 + (s.options ?? 0);
  emitEthernet({ dst: VTEP[0], src: VTEP[1], vlans: [], etherType: 0x0800 }, b, off + ETH_OFF);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: SRC, dst: POD_B.ip, payloadLen: hl + payload }, b, off + IP);
  emitTcp({ srcPort: 5201, dstPort: 40000, seq: s.seq, ack: 77, flags: s.flags ?? 0x10, window: 500, checksum: 0, urgent: 0, options: new Uint8Array(hl - 20).fill(1) }, b, off + IP + 20);
  return IP + 20 + hl;
}

function payloadByte(seq: number, k: number): number {
  return (seq + k * 13) & 0xff;
}

/** Sets the TCP checksum of the segment whose headers are at h[off..] and payload at pay[payOff..]. */
function checksum(h: Uint8Array, off: number, headLen: number, pay: Uint8Array, payOff: number, payload: number): void {
  const tcp = off + IP + 20;
  const hl = headLen - IP - 20;
  const sum = fold(sumWords(pay, payOff, payload));
  put16(h, tcp + 16, internetChecksum(h, tcp, hl, pseudoHeaderSum(ip(SRC), ip(POD_B.ip), 6, hl + payload) + sum));
}

/** A contiguous segment at b[off..]; returns its frame length. */
function segment(b: Uint8Array, off: number, s: SegOpts): number {
  const payload = s.payload ?? PAY;
  const headLen = emitHeaders(b, off, s);
  for (let k = 0; k < payload; k++) b[off + headLen + k] = payloadByte(s.seq, k);
  checksum(b, off, headLen, b, off + headLen, payload);
  return headLen + payload;
}

function stateWithPod(): SwitchState {
  const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
  state.cluster!.neighbors.learn(ip(POD_B.ip), 0x0a58, 0x0af40103);
  return state;
}

/** Pushes contiguous segments lying one after another in one buffer (one read, `read`). */
function pushRun(f: Frames, buf: Uint8Array, segs: SegOpts[], read = 1, at = 3): number[] {
  const idx: number[] = [];
  let off = at;
  for (const s of segs) {
    const len = segment(buf, off, s);
    const i = f.push(buf, off, len, TUNNEL, PEER);
    f.reads[i] = read;
    idx.push(i);
    off += len + 5;
  }
  return idx;
}

const seqs = (n: number, first = 1000) => Array.from({ length: n }, (_, k) => ({ seq: first + k * PAY }));

function merged(f: Frames, state: SwitchState) {
  return { outs: Array.from(f.outs.subarray(0, f.count)), coalesced: state.counters.sw(SwitchCounter.Coalesced) };
}

describe("merge stage", () => {
  it("is the receive pipeline's first stage, named merge, when the backend wants merging", () => {
    const io = new FakeIo();
    const stages = buildStages(stateWithPod(), io, { out: new CollectingSink(), segmenting: false, merge: true });
    expect(stages.receive!.names()[0]).toBe("merge");
    expect(new Merge(stateWithPod()).name).toBe("merge");
  });

  it("merges a run of one read into its first entry (the control for the cases below)", () => {
    const state = stateWithPod();
    const f = new Frames(8);
    pushRun(f, new Uint8Array(4096), seqs(3));
    new Merge(state).run(f);
    expect(merged(f, state)).toEqual({ outs: [PENDING, DONE, DONE], coalesced: 3 });
    expect([f.bufs[0] === f.heads[0], f.offs[0], f.tails[0].count, f.lens[0]]).toEqual([true, 0, 3, IP + 40 + 3 * PAY]);
  });

  it("looks at no entry past the vector's count (what a longer earlier batch left there)", () => {
    const state = stateWithPod();
    const f = new Frames(8);
    const buf = new Uint8Array(4096);
    pushRun(f, buf, seqs(3));
    f.clear();
    pushRun(f, buf, seqs(2)); // entry 2 still holds the third segment, undecided
    new Merge(state).run(f);
    expect(merged(f, state)).toEqual({ outs: [PENDING, DONE], coalesced: 2 });
    expect(f.lens[0]).toBe(IP + 40 + 2 * PAY);
    expect(f.outs[2]).toBe(PENDING);
  });

  it("an entry already decided, or one from a TAP port, is not merged and ends the run", () => {
    for (const mark of ["done", "port"] as const) {
      const state = stateWithPod();
      const f = new Frames(8);
      pushRun(f, new Uint8Array(4096), seqs(3));
      if (mark === "done") f.outs[1] = DONE;
      else f.ports[1] = 2;
      new Merge(state).run(f);
      expect(merged(f, state), mark).toEqual({ outs: [PENDING, mark === "done" ? DONE : PENDING, PENDING], coalesced: 0 });
      expect([f.lens[0], f.tails[0].count, f.tails[2].count], mark).toEqual([IP + 40 + PAY, 0, 0]);
      expect(f.bufs[1][f.offs[1]], mark).toBe(0); // not verified here: left as it came
    }
  });

  it("segments of two reads are not merged, even lying in one buffer one after the other", () => {
    const state = stateWithPod();
    const f = new Frames(8);
    const buf = new Uint8Array(4096);
    const [, b] = pushRun(f, buf, seqs(2));
    f.reads[b] = 2;
    new Merge(state).run(f);
    expect(merged(f, state)).toEqual({ outs: [PENDING, PENDING], coalesced: 0 });
    expect([f.bufs[0][f.offs[0]], f.bufs[1][f.offs[1]]]).toEqual([VNET_F_DATA_VALID, VNET_F_DATA_VALID]);
  });

  it("a segment whose virtio_net_hdr asks for offloads already (flags or GSO type) is neither merged nor marked", () => {
    for (const byte of [0, 1]) {
      const state = stateWithPod();
      const f = new Frames(8);
      const buf = new Uint8Array(4096);
      const idx = pushRun(f, buf, seqs(3));
      for (const i of idx) buf[f.offs[i] + byte] = 1;
      new Merge(state).run(f);
      expect(merged(f, state), `byte ${byte}`).toEqual({ outs: [PENDING, PENDING, PENDING], coalesced: 0 });
      expect(idx.map((i) => [buf[f.offs[i]], buf[f.offs[i] + 1]]), `byte ${byte}`).toEqual(Array(3).fill(byte === 0 ? [1, 0] : [0, 1]));
    }
  });

  it("a segment without payload (an ACK with options) is not offered: left unmarked; one with a byte of payload is marked verified", () => {
    for (const payload of [0, 1]) {
      const state = stateWithPod();
      const f = new Frames(8);
      const buf = new Uint8Array(4096);
      const [i] = pushRun(f, buf, [{ seq: 1000, payload, options: 4 }]);
      new Merge(state).run(f);
      expect([buf[f.offs[i]], f.lens[i]], `payload ${payload}`).toEqual([payload ? VNET_F_DATA_VALID : 0, IP + 44 + payload]);
    }
  });

  describe("a segment in a head and a tail (a later datagram of a GRO run)", () => {
    /** Segments with their headers in heads (at offset 4) and their payloads in one receive buffer. */
    function tailRun(f: Frames, segs: SegOpts[], pieces?: (k: number) => number[]): { pay: Uint8Array; heads: Uint8Array[] } {
      const pay = new Uint8Array(4096);
      const heads: Uint8Array[] = [];
      let at = 9;
      for (const s of segs) {
        const head = new Uint8Array(200);
        const headLen = emitHeaders(head, 4, s);
        for (let k = 0; k < PAY; k++) pay[at + k] = payloadByte(s.seq, k);
        checksum(head, 4, headLen, pay, at, PAY);
        const i = f.push(head, 4, headLen + PAY, TUNNEL, PEER);
        f.reads[i] = 1;
        const t = f.tails[i];
        const lens = pieces?.(i) ?? [PAY];
        t.buf = pay;
        t.headLen = headLen;
        t.count = lens.length;
        lens.forEach((n, k) => { t.offs[k] = at; t.lens[k] = n; });
        heads.push(head);
        at += PAY + 30;
      }
      return { pay, heads };
    }

    it("is merged, its payload where it lies, wherever its head starts", () => {
      const state = stateWithPod();
      const f = new Frames(8);
      const { pay } = tailRun(f, seqs(3));
      new Merge(state).run(f);
      expect(merged(f, state)).toEqual({ outs: [PENDING, DONE, DONE], coalesced: 3 });
      expect([f.tails[0].buf === pay, f.tails[0].count, Array.from(f.tails[0].offs.subarray(0, 3))]).toEqual([true, 3, [9, 439, 869]]);
    });

    it("is not offered when its tail is in more than one piece, even if the first holds the whole payload", () => {
      const state = stateWithPod();
      const f = new Frames(8);
      const { heads } = tailRun(f, seqs(3), () => [PAY, 0]);
      new Merge(state).run(f);
      expect(merged(f, state)).toEqual({ outs: [PENDING, PENDING, PENDING], coalesced: 0 });
      expect(heads.map((h) => h[4])).toEqual([0, 0, 0]);
      expect(f.tails.slice(0, 3).map((t) => t.count)).toEqual([2, 2, 2]);
    });
  });
});

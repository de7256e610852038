import { describe, expect, it } from "vitest";
import { IOVEC_LEN, Iovecs, putPtr } from "../../src/io/iovec.ts";
import { FakeLibc } from "../support/fake-libc.ts";

/** Entry k of an iovec array as the kernel reads it: base and length, 64-bit little-endian. */
function entry(iov: Iovecs, k: number): { base: number; len: number } {
  const dv = new DataView(iov.mem.buffer, iov.mem.byteOffset);
  const u64 = (o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 2 ** 32;
  return { base: u64(k * IOVEC_LEN), len: u64(k * IOVEC_LEN + 8) };
}

/** The bytes entry k points at, found through the fake libc's addresses. */
function pointed(libc: FakeLibc, iov: Iovecs, k: number): Uint8Array {
  const e = entry(iov, k);
  return libc.memory(e.base, e.len);
}

describe("putPtr", () => {
  it("writes a 64-bit value little-endian from a number, high word included", () => {
    const b = new Uint8Array(10).fill(0xee);
    putPtr(new DataView(b.buffer), 1, 0x1_2345_6789);
    expect([...b]).toEqual([0xee, 0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0, 0xee]);
    putPtr(new DataView(b.buffer), 1, 2 ** 53 - 1);
    expect([...b.subarray(1, 9)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]);
  });
});

describe("Iovecs", () => {
  it("starts empty, in memory of its own (at least 128 bytes, 16 an entry) whose address it knows", () => {
    const libc = new FakeLibc();
    const small = new Iovecs(libc, 2);
    expect([small.count, small.total, small.capacity]).toEqual([0, 0, 2]);
    expect(small.mem.length).toBe(128);
    expect(small.address).toBe(libc.addressOf(small.mem));
    expect(new Iovecs(libc, 64).mem.length).toBe(64 * IOVEC_LEN);
  });

  it("add writes each piece's address and length in order, and counts pieces and bytes", () => {
    const libc = new FakeLibc();
    const iov = new Iovecs(libc, 4);
    const slots = new Uint8Array(4096).map((_, i) => i);
    const slot = slots.subarray(1024, 2048); // a view with its own offset
    const head = Uint8Array.from({ length: 200 }, (_, i) => 255 - i);
    iov.add(head, 10, 50);
    iov.add(slot, 3, 700);
    iov.add(head, 0, 0);
    expect([iov.count, iov.total]).toEqual([3, 750]);
    expect(entry(iov, 0)).toEqual({ base: libc.addressOf(head) + 10, len: 50 });
    expect(entry(iov, 1)).toEqual({ base: libc.addressOf(slots) + 1027, len: 700 });
    expect(entry(iov, 2)).toEqual({ base: libc.addressOf(head), len: 0 });
    expect(pointed(libc, iov, 0)).toEqual(head.subarray(10, 60));
    expect(pointed(libc, iov, 1)).toEqual(slot.subarray(3, 703));
  });

  it("reset starts again from the first entry, with nothing counted", () => {
    const libc = new FakeLibc();
    const iov = new Iovecs(libc, 2);
    const a = new Uint8Array(256), b = new Uint8Array(256);
    iov.add(a, 0, 100);
    iov.add(a, 100, 100);
    iov.reset();
    expect([iov.count, iov.total]).toEqual([0, 0]);
    iov.add(b, 5, 7);
    expect([iov.count, iov.total]).toEqual([1, 7]);
    expect(entry(iov, 0)).toEqual({ base: libc.addressOf(b) + 5, len: 7 });
  });

  it("refuses a piece beyond its capacity and keeps what it had", () => {
    const iov = new Iovecs(new FakeLibc(), 2);
    const a = new Uint8Array(256);
    iov.add(a, 0, 1);
    iov.add(a, 1, 2);
    expect(() => iov.add(a, 3, 4)).toThrow(new RangeError("iovec array full"));
    expect([iov.count, iov.total]).toEqual([2, 3]);
  });

  it("pieces from many buffers, in any order, each point into its own buffer", () => {
    // Addresses are remembered for the last two buffers: a third, and returns to older ones,
    // must still find the right one.
    const libc = new FakeLibc();
    const bufs = [0, 1, 2, 3].map((k) => new Uint8Array(512).fill(k + 1));
    const order = [0, 1, 0, 2, 1, 0, 3, 3, 2, 0, 1, 2];
    const iov = new Iovecs(libc, order.length);
    order.forEach((k, i) => iov.add(bufs[k], i, 10 + i));
    order.forEach((k, i) => {
      expect(entry(iov, i).base, `piece ${i}`).toBe(libc.addressOf(bufs[k]) + i);
      expect(pointed(libc, iov, i).every((x) => x === k + 1), `piece ${i}`).toBe(true);
    });
  });

  it("asks libc for a buffer's address once while pieces alternate between two buffers", () => {
    const libc = new FakeLibc();
    const iov = new Iovecs(libc, 16);
    const asked: Uint8Array[] = [];
    const addressOf = libc.addressOf.bind(libc);
    libc.addressOf = (b) => (asked.push(b), addressOf(b));
    const head = new Uint8Array(256), slot = new Uint8Array(256), other = new Uint8Array(256);
    for (let k = 0; k < 3; k++) { iov.add(head, k, 1); iov.add(slot, k, 1); }
    expect(asked).toEqual([head, slot]);
    iov.add(other, 0, 1); // a third buffer: the oldest of the two is forgotten
    iov.add(slot, 0, 1);
    iov.add(head, 0, 1);
    expect(asked).toEqual([head, slot, other, head]);
  });

  it("asks once for all the views of one buffer: the slots and heads of a batch, at their own offsets", () => {
    const libc = new FakeLibc();
    const iov = new Iovecs(libc, 16);
    let asked = 0;
    const addressOf = libc.addressOf.bind(libc);
    libc.addressOf = (b) => (asked++, addressOf(b));
    const mem = new Uint8Array(4096);
    const slots = [0, 1, 2, 3].map((i) => mem.subarray(i * 1024, (i + 1) * 1024));
    slots.forEach((slot, i) => iov.add(slot, 10 + i, 5));
    expect(asked).toBe(1);
    slots.forEach((_, i) => expect(entry(iov, i)).toEqual({ base: libc.addressOf(mem) + i * 1024 + 10 + i, len: 5 }));
  });
});

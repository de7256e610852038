import { describe, expect, it } from "vitest";
import { CpuError, cpuMask, MAX_CPU, parseCpuList, pinThread } from "../../src/io/cpu.ts";
import type { Libc } from "../../src/io/libc.ts";

describe("cpu lists (Cpus_allowed_list)", () => {
  it("reads single CPUs, ranges and their mix", () => {
    expect(parseCpuList("0")).toEqual([0]);
    expect(parseCpuList("0-1\n")).toEqual([0, 1]);
    expect(parseCpuList("0-2,5,7-8")).toEqual([0, 1, 2, 5, 7, 8]);
  });

  it("refuses what is not a list, in words", () => {
    expect(() => parseCpuList("0-1,x")).toThrow(CpuError);
    expect(() => parseCpuList("")).toThrow('cannot read the CPU list ""');
  });
});

describe("cpu masks", () => {
  it("sets the one bit of the CPU, in a cpu_set_t of 1024 bits", () => {
    const m = cpuMask(0);
    expect(m.length).toBe(128);
    expect([...m].filter((b) => b !== 0)).toEqual([1]);
    const n = cpuMask(10);
    expect(n[1]).toBe(0b100);
    expect(n.reduce((a, b) => a + b, 0)).toBe(4);
    expect(cpuMask(MAX_CPU)[127]).toBe(0x80);
  });

  it("refuses numbers that are no CPU", () => {
    for (const bad of [-1, 1.5, MAX_CPU + 1, NaN]) expect(() => cpuMask(bad)).toThrow(CpuError);
  });
});

describe("pinning", () => {
  // Only the two calls pinning makes; the rest of Libc is not reached.
  const fake = (result: number, errno: number) => {
    const calls: { pid: number; size: number; mask: Uint8Array }[] = [];
    const libc = { schedSetaffinity: (pid: number, size: number, mask: Uint8Array) => (calls.push({ pid, size, mask }), result), errno: () => errno } as unknown as Libc;
    return { libc, calls };
  };

  it("pins the calling thread (pid 0) with the CPU's mask", () => {
    const { libc, calls } = fake(0, 0);
    pinThread(libc, 3);
    expect(calls).toHaveLength(1);
    expect(calls[0].pid).toBe(0);
    expect(calls[0].size).toBe(128);
    expect(calls[0].mask).toEqual(cpuMask(3));
  });

  it("says why the kernel refused", () => {
    expect(() => pinThread(fake(-1, 22).libc, 7)).toThrow("cannot pin the datapath to CPU 7: no such CPU, or not one this process may use");
    expect(() => pinThread(fake(-1, 1).libc, 0)).toThrow("cannot pin the datapath to CPU 0: EPERM: operation not permitted");
  });
});

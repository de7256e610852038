// The bench's CPU arithmetic: /proc/stat and /proc/<pid>/stat read, windows, cores per Gbit/s.
import { describe, expect, it } from "vitest";
import {
  BUSY_FIELDS, busyTicks, coresPerGbit, cpuWindow, machineBusySeconds, parsePidStat, parseProcStat, processesBusySeconds, udpGbps, type ProcStatCpu,
} from "../../src/bench/cpu.ts";
import { BenchError } from "../../src/bench/figures.ts";

// /proc/stat of the 2-core development VM (2026-12-03), the first lines; the second sample is
// the first plus user 150, nice 2, system 80, idle 30, iowait 5, irq 1, softirq 40, steal 20 ticks.
const STAT_0 = `cpu  4115750 68066 1573059 9277035 9873 0 322698 170801 0 0
cpu0 2059598 33715 762273 4638688 1837 0 190233 82713 0 0
cpu1 2056151 34350 810785 4638347 8036 0 132464 88087 0 0
intr 188145610 0 0 0 0 0 0 0 0
ctxt 290437711
btime 1764720000
`;
const STAT_1 = `cpu  4115900 68068 1573139 9277065 9878 1 322738 170821 0 0
cpu0 2059670 33716 762313 4638703 1839 1 190253 82723 0 0
cpu1 2056230 34352 810826 4638362 8039 0 132485 88098 0 0
intr 188145990 0 0 0 0 0 0 0 0
`;

// /proc/<pid>/stat of a `cat` (utime 7, stime 3 put in fields 14 and 15), and of a process whose
// name has spaces and parentheses in it.
const PID_STAT = "3673 (cat) R 3671 3671 22926 0 -1 4194304 99 0 0 0 7 3 0 0 20 0 1 0 7880980 3133440 383 18446744073709551615 94162071830528 0";
const ODD_NAME = "4100 (node (sw) ) x) S 1 4100 4100 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 11 0 100 1000000 20000 0";

describe("/proc/stat", () => {
  it("reads the aggregate cpu line, not a CPU's own, and counts user + nice + system + irq + softirq", () => {
    const c = parseProcStat(STAT_0);
    expect(c).toEqual({ user: 4115750, nice: 68066, system: 1573059, idle: 9277035, iowait: 9873, irq: 0, softirq: 322698, steal: 170801, guest: 0, guestNice: 0 });
    expect(busyTicks(c)).toBe(4115750 + 68066 + 1573059 + 0 + 322698);
    expect([...BUSY_FIELDS]).toEqual(["user", "nice", "system", "irq", "softirq"]);
    // 150 + 2 + 80 + 1 + 40 ticks: idle, iowait and steal left out
    expect(machineBusySeconds(c, parseProcStat(STAT_1))).toBeCloseTo(2.73, 12);
  });

  it("an older kernel's shorter line: the missing fields are 0", () => {
    expect(parseProcStat("cpu  10 20 30 40\n")).toEqual({ user: 10, nice: 20, system: 30, idle: 40, iowait: 0, irq: 0, softirq: 0, steal: 0, guest: 0, guestNice: 0 });
  });

  it("bad text: a message naming what is wrong", () => {
    expect(() => parseProcStat("cpu0 1 2 3 4\n")).toThrow(new BenchError('/proc/stat has no "cpu" line'));
    expect(() => parseProcStat("cpu  1 2 3\n")).toThrow(/3 fields, not at least 4/);
    expect(() => parseProcStat("cpu  1 2 x 4\n")).toThrow(new BenchError('/proc/stat\'s "cpu" line: system is "x", not a count of ticks'));
    expect(() => parseProcStat("cpu  1 2 3 4 5 6 -7\n")).toThrow(/softirq is "-7"/);
  });

  it("counters that went back (a sample out of order) give 0, not a negative cost", () => {
    expect(machineBusySeconds(parseProcStat(STAT_1), parseProcStat(STAT_0))).toBe(0);
  });

  it("randomized: busy seconds between two samples are the sum of the five fields' deltas over 100", () => {
    const names: (keyof ProcStatCpu)[] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guestNice"];
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    for (let trial = 0; trial < 2000; trial++) {
      const fields = 4 + rnd(7);
      const a = names.map((_, i) => (i < fields ? rnd(1e9) : 0));
      const b = a.map((x, i) => (i < fields ? x + rnd(100_000) : 0));
      const cpus = 1 + rnd(4);
      const text = (v: number[]) => [`cpu  ${v.slice(0, fields).join(" ")}`, ...Array.from({ length: cpus }, (_, i) => `cpu${i} ${v.slice(0, fields).map((x) => Math.floor(x / cpus)).join(" ")}`), "ctxt 1"].join("\n");
      let naive = 0;
      for (const f of ["user", "nice", "system", "irq", "softirq"]) naive += b[names.indexOf(f as keyof ProcStatCpu)] - a[names.indexOf(f as keyof ProcStatCpu)];
      expect(machineBusySeconds(parseProcStat(text(a)), parseProcStat(text(b)))).toBeCloseTo(naive / 100, 9);
    }
  });
});

describe("/proc/<pid>/stat", () => {
  it("utime + stime in ticks, whatever the command name holds", () => {
    expect(parsePidStat(PID_STAT)).toBe(10);
    expect(parsePidStat(ODD_NAME)).toBe(1234 + 567);
  });

  it("bad text: a message naming the fields", () => {
    expect(() => parsePidStat("123 cat R")).toThrow(/no "\)"/);
    expect(() => parsePidStat("123 (cat) R 1 2 3")).toThrow(/utime and stime \(fields 14 and 15\) are missing and missing/);
    expect(() => parsePidStat("3673 (cat) R 3671 3671 22926 0 -1 4194304 99 0 0 0 x 3")).toThrow(/are "x" and "3"/);
  });

  it("a set of processes: what each spent since the first sample, a new one since it started, a gone one not at all", () => {
    const before = new Map([[10, 100], [11, 50], [12, 70]]);
    const after = new Map([[10, 160], [11, 50], [13, 25]]); // 12 is gone, 13 is new (a restarted switch)
    expect(processesBusySeconds(before, after)).toBeCloseTo((60 + 0 + 25) / 100, 12);
    expect(processesBusySeconds(new Map([[10, 100]]), new Map([[10, 90]]))).toBe(0); // never negative
  });

  it("randomized: against a naive sum over the pids of the second sample", () => {
    let seed = 11;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    for (let trial = 0; trial < 1000; trial++) {
      const before = new Map<number, number>();
      const after = new Map<number, number>();
      for (let pid = 1; pid < 2 + rnd(12); pid++) {
        const had = rnd(4) > 0;
        const has = rnd(4) > 0;
        const t = rnd(10_000);
        if (had) before.set(pid, t);
        if (has) after.set(pid, (had ? t : 0) + rnd(500));
      }
      let naive = 0;
      for (const pid of after.keys()) naive += after.get(pid)! - (before.get(pid) ?? 0);
      expect(processesBusySeconds(before, after)).toBeCloseTo(naive / 100, 9);
    }
  });
});

describe("cores per Gbit/s", () => {
  const s = (atMs: number, stat: string, sw: [number, number][] | null) => ({ machine: parseProcStat(stat), switches: sw && new Map(sw), atMs });

  it("a window: its seconds, the machine's CPU-seconds, the switches'", () => {
    const w = cpuWindow(s(1_000, STAT_0, [[5, 100]]), s(3_100, STAT_1, [[5, 184]]));
    expect(w.seconds).toBeCloseTo(2.1, 12);
    expect(w.machineCpuSeconds).toBeCloseTo(2.73, 12);
    expect(w.switchCpuSeconds).toBeCloseTo(0.84, 12);
    // 2.73 CPU-s over 2.1 s is 1.3 cores; at 6.5 Gbit/s, 0.2 cores per Gbit/s; the switches 0.4 of 6.5
    const c = coresPerGbit(w, 6.5);
    expect(c.machine).toBeCloseTo(0.2, 12);
    expect(c.switches).toBeCloseTo(0.4 / 6.5, 12);
  });

  it("a kernel setup has no switches' share; no throughput or no time gives no figure", () => {
    const w = cpuWindow(s(0, STAT_0, null), s(2_000, STAT_1, null));
    expect(w.switchCpuSeconds).toBeNull();
    expect(coresPerGbit(w, 2).switches).toBeNull();
    expect(coresPerGbit(w, 2).machine).toBeCloseTo(2.73 / 2 / 2, 12);
    expect(coresPerGbit(w, 0)).toEqual({ machine: null, switches: null });
    expect(coresPerGbit(w, null)).toEqual({ machine: null, switches: null });
    expect(coresPerGbit(cpuWindow(s(5, STAT_0, null), s(5, STAT_1, null)), 3)).toEqual({ machine: null, switches: null });
  });

  it("UDP: delivered datagrams per second as payload Gbit/s", () => {
    expect(udpGbps(100_000, 1400)).toBeCloseTo(1.12, 12);
    expect(udpGbps(0, 1400)).toBe(0);
  });
});

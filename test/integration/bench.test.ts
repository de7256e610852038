// tapnet bench, as small as it goes: the reference and one tapnet setup, one round of 1-second
// tests, once and with --repeat 2. Checks the JSON's shape and that every figure is a positive
// number; never how fast anything is (a benchmark is not a test). Nothing of the bench's labs is
// left afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { allowedCpus } from "../../src/io/cpu.ts";
import { netnsList, REPO, TAPNET, tapnet, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = uniquePrefix("bench");
const labs = [`${prefix}-kvxlan`, `${prefix}-udp`];
const tmp = mkdtempSync(join(tmpdir(), "tapnet-it-bench-"));

afterAll(async () => {
  for (const p of labs) await tapnet(["lab", "down", "--prefix", p]);
  rmSync(tmp, { recursive: true, force: true });
});

describe("tapnet bench", () => {
  it("measures kernel-vxlan and tapnet-udp, prints one JSON object, writes the SVG, removes its labs", async () => {
    const svg = join(tmp, "bench.svg");
    const r = await tapnet(["bench", "--quick", "--setups", "kernel-vxlan,tapnet-udp", "--seconds", "1", "--rounds", "1", "--json", "--svg", svg, "--prefix", prefix], { timeoutMs: 120_000 });
    expect(r.stderr, r.stderr).toContain("round 1/1, tapnet-udp: ping-pong latency");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j).sort()).toEqual(["command", "date", "durationSeconds", "failures", "machine", "medians", "offloads", "ratios", "reference", "results", "rounds", "seconds", "setups", "spreads", "switchCpus", "targets"].sort());
    // the tapnet lab's switches, pinned one CPU per node as the lab does by default
    const cpus = allowedCpus();
    expect(j.switchCpus).toEqual(cpus.length > 1 ? [cpus[0], cpus[1]] : []);
    expect(j.setups).toEqual(["kernel-vxlan", "tapnet-udp"]);
    expect(j.command).toContain("tapnet bench --quick --setups kernel-vxlan,tapnet-udp");
    expect(j.machine.nproc).toBeGreaterThan(0);
    expect(Array.isArray(j.offloads)).toBe(true);
    expect(j.failures).toEqual([]);
    const positive = ["tcp_cross_1", "tcp_cross_4", "tcp_same_1", "udp1400_kpps", "udp64_kpps", "rtt_p50", "rtt_p99"];
    for (const setup of j.setups) {
      expect(j.results[setup]).toHaveLength(1);
      const f = j.results[setup][0].figures;
      for (const k of positive) {
        expect(typeof f[k], `${setup} ${k}`).toBe("number");
        expect(f[k], `${setup} ${k}`).toBeGreaterThan(0);
      }
      for (const k of ["udp1400_loss", "udp64_loss"]) expect(f[k]).toBeGreaterThanOrEqual(0);
      // the rate search: the full-rate run, then up to 3 probes; the figure is the best delivered
      // at ≤ 1% loss among them (0 if none passed), so it may be 0 but is always a number
      const search = j.results[setup][0].udpSearch as { offeredPps: number | null; pps: number; lossPercent: number }[];
      // kpps back to pps: equal but for the last bit of the float (64862.584185183405 against ...41).
      expect(search[0], setup).toMatchObject({ offeredPps: null, pps: expect.closeTo(f.udp1400_kpps * 1000, 6), lossPercent: f.udp1400_loss });
      expect(search.length, setup).toBe(f.udp1400_loss <= 1 ? 1 : 4);
      for (const x of search.slice(1)) expect(x.offeredPps, setup).toBeGreaterThan(0);
      const passing = search.filter((x) => x.lossPercent <= 1).map((x) => x.pps / 1000);
      expect(f.udp1400_kpps_1pct, setup).toBeCloseTo(passing.length ? Math.max(...passing) : 0, 9);
      expect(f.rtt_p99).toBeGreaterThanOrEqual(f.rtt_p50);
      expect(j.medians[setup].tcp_cross_1).toBe(f.tcp_cross_1);
      expect(j.spreads[setup].tcp_cross_1).toEqual([f.tcp_cross_1, f.tcp_cross_1]);
    }
    // CPU per Gbit/s for every throughput test, the whole machine's; the switches' part only where there are switches
    const costs = [["cpu_tcp_cross_1", "swcpu_tcp_cross_1"], ["cpu_tcp_cross_4", "swcpu_tcp_cross_4"], ["cpu_tcp_same_1", "swcpu_tcp_same_1"], ["cpu_udp1400", "swcpu_udp1400"]];
    for (const [machine, switches] of costs) {
      for (const setup of j.setups) expect(j.results[setup][0].figures[machine], `${setup} ${machine}`).toBeGreaterThan(0);
      expect(j.results["kernel-vxlan"][0].figures[switches], switches).toBeNull();
      const tap = j.results["tapnet-udp"][0].figures;
      expect(tap[switches], switches).toBeGreaterThan(0);
      expect(tap[switches], switches).toBeLessThanOrEqual(tap[machine]);
    }
    expect(j.ratios["tapnet-udp"].cpu_tcp_cross_1).toBeCloseTo(j.medians["tapnet-udp"].cpu_tcp_cross_1 / j.medians["kernel-vxlan"].cpu_tcp_cross_1, 9);
    expect(j.results["kernel-vxlan"][0].figures.switch_cpu).toBeNull();
    expect(j.results["kernel-vxlan"][0].figures.switch_mem).toBeNull();
    expect(j.results["tapnet-udp"][0].figures.switch_cpu).toBeGreaterThan(0);
    expect(j.results["tapnet-udp"][0].figures.switch_mem).toBeGreaterThan(0);
    // per round trip, the switches' wakeups (each switch is woken at least once per frame it
    // carries, unless a frame finds it awake) and their wait for a CPU; none for a kernel setup
    expect(j.results["kernel-vxlan"][0].figures.rtt_wakeups).toBeNull();
    expect(j.results["kernel-vxlan"][0].figures.rtt_wait).toBeNull();
    expect(j.results["tapnet-udp"][0].figures.rtt_wakeups).toBeGreaterThan(0.5);
    expect(j.results["tapnet-udp"][0].figures.rtt_wakeups).toBeLessThan(50);
    expect(j.results["tapnet-udp"][0].figures.rtt_wait).toBeGreaterThanOrEqual(0);
    expect(j.ratios["kernel-vxlan"].tcp_cross_1).toBe(1);
    expect(j.ratios["tapnet-udp"].tcp_cross_1).toBeCloseTo(j.medians["tapnet-udp"].tcp_cross_1 / j.medians["kernel-vxlan"].tcp_cross_1, 9);
    expect(j.targets.setup).toBe("tapnet-udp");
    expect(j.targets.rows).toHaveLength(8);
    expect(j.targets.rows[5]).toMatchObject({ label: "CPU per Gbit/s, cross node, 1 stream", ceiling: null });
    expect(j.targets.rows[3].label).toBe("UDP 1400 B delivered pps, loss ≤ 1%");
    expect(readFileSync(svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    // nothing left: no namespace of the bench's labs, no journal
    expect(netnsList().filter((n) => n.startsWith(prefix))).toEqual([]);
    for (const p of labs) expect(existsSync(`/run/tapnet/${p}`)).toBe(false);
  });

  it("--repeat 2: the whole bench twice, each run's report kept, ratio spreads and targets held k of 2", async () => {
    const r = await tapnet(["bench", "--setups", "kernel-vxlan,tapnet-udp", "--seconds", "1", "--rounds", "1", "--repeat", "2", "--json", "--prefix", prefix], { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("run 2/2: round 1/1, tapnet-udp: ping-pong latency");
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j).sort()).toEqual(["command", "date", "durationSeconds", "figures", "needed", "ratios", "reference", "referenceFigures", "repeat", "runs", "setups", "targets"].sort());
    expect(j).toMatchObject({ repeat: 2, needed: 2, setups: ["kernel-vxlan", "tapnet-udp"], reference: "kernel-vxlan" });
    expect(j.runs).toHaveLength(2);
    for (const run of j.runs) expect(run.results["tapnet-udp"]).toHaveLength(1);
    const ratios = j.runs.map((run: { ratios: Record<string, Record<string, number>> }) => run.ratios["tapnet-udp"].tcp_cross_1);
    expect(j.ratios["tapnet-udp"].tcp_cross_1).toMatchObject({ min: Math.min(...ratios), max: Math.max(...ratios), n: 2 });
    expect(j.referenceFigures.tcp_cross_1.n).toBe(2);
    const wakeups = j.runs.map((run: { medians: Record<string, Record<string, number>> }) => run.medians["tapnet-udp"].rtt_wakeups);
    expect(j.figures["tapnet-udp"].rtt_wakeups).toMatchObject({ min: Math.min(...wakeups), max: Math.max(...wakeups), n: 2 });
    expect(j.targets.rows).toHaveLength(8);
    for (const row of j.targets.rows) {
      expect(row.values).toHaveLength(2);
      expect(row.meetsFloor).toBe(row.floorHeld === 2);
      expect(row.meetsTarget).toBe(row.targetHeld === 2);
    }
    expect(netnsList().filter((n) => n.startsWith(prefix))).toEqual([]);
    for (const p of labs) expect(existsSync(`/run/tapnet/${p}`)).toBe(false);
  }, 300_000);

  it("removes its labs when interrupted while it measures (SIGINT), and exits 1", async () => {
    const child = spawn(process.execPath, [TAPNET, "bench", "--setups", "kernel-vxlan,tapnet-udp", "--seconds", "5", "--rounds", "1", "--prefix", prefix], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      await waitFor(() => stderr.includes("round 1/1, kernel-vxlan: TCP across nodes, 4 streams") || child.exitCode !== null, 60_000, "the bench to measure");
      expect(netnsList().filter((n) => n.startsWith(prefix)).length).toBeGreaterThan(10);
      child.kill("SIGINT");
      expect(await closed, stderr).toBe(1);
      expect(stderr).toContain("tapnet: interrupted; the bench's labs were removed");
      expect(netnsList().filter((n) => n.startsWith(prefix))).toEqual([]);
      for (const p of labs) expect(existsSync(`/run/tapnet/${p}`)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("refuses an unknown setup with exit status 2, before building anything", async () => {
    const r = await tapnet(["bench", "--setups", "kernel-vxlan,nope", "--prefix", prefix]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`tapnet: --setups: unknown setup "nope" (known: ${["kernel-vxlan", "host-gw"].join(", ")}, ${r.stderr.match(/tapnet-[a-z0-9]+(\+policy|\+insecure)?/g)!.join(", ")}, and tapnet-<backend>+policy for every backend)`);
    expect(r.stderr).toContain("tapnet-tapnet+policy");
    expect(netnsList().filter((n) => n.startsWith(prefix))).toEqual([]);
  });
});

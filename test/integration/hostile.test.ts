// The hostile-input script and the soak at a tiny size (10^3 datagrams and frames; one minute),
// run as `npm run hostile` and `npm run soak` run them: on real labs, which they remove.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { HostileReport } from "../../src/bench/hostile-report.ts";
import type { SoakReport } from "../../src/bench/soak.ts";
import { netnsList, REPO, runCmd, tapnet, uniquePrefix } from "./helpers.ts";

const base = process.env.TAPNET_HOSTILE_TEST_PREFIX;
const hostilePrefix = base ? `${base}-h` : uniquePrefix("hostile");
const soakPrefix = base ? `${base}-s` : uniquePrefix("soak");
const dir = mkdtempSync(join(tmpdir(), "tapnet-hostile-"));
const script = (args: string[], timeoutMs: number) => runCmd(process.execPath, [join(REPO, "scripts/run.mjs"), ...args], { timeoutMs });

afterAll(async () => {
  for (const p of [hostilePrefix, soakPrefix]) await tapnet(["lab", "down", "--prefix", p]);
  rmSync(dir, { recursive: true, force: true });
});

describe("npm run hostile, 10^3 of each", () => {
  it("attacks node1's switch from the underlay and from a pod; the switch survives, drops what it must, and the lab is gone after", async () => {
    const out = join(dir, "hostile.json");
    const r = await script(["hostile", "--datagrams", "1000", "--frames", "1000", "--prefix", hostilePrefix, "--out", out], 170_000);
    const report = JSON.parse(readFileSync(out, "utf8")) as HostileReport;
    expect(r.stdout).toContain("verdict:");
    expect(report.senders.tunnel.count).toBe(1000);
    expect(report.senders.tunnel.sent).toBe(1000);
    expect(report.senders.pod.count).toBe(1000);
    expect(report.senders.pod.sent + report.senders.pod.refused).toBe(1000);
    // The switch read the datagrams and the frames, and counted drops of both.
    expect(report.kernel.udpDelivered).toBeGreaterThan(500);
    const drops = report.counters.filter((c) => c.node === "node1" && c.counter.startsWith("drop_"));
    expect(drops.some((c) => c.row === "tunnel")).toBe(true);
    expect(drops.some((c) => c.row === "pod node1-pod2")).toBe(true);
    expect(drops.filter((c) => c.row === "tunnel").reduce((a, c) => a + c.delta, 0)).toBeGreaterThan(300);
    // No crash, fds flat, memory bounded, forwarding after, the TCP stream alive.
    const failed = report.verdict.checks.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`);
    expect(failed).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.ping.sent).toBeGreaterThan(20);
    expect(netnsList().filter((n) => n.startsWith(hostilePrefix))).toEqual([]);
  }, 180_000);
});

describe("npm run soak, one minute", () => {
  it("samples both switches, churns pods, keeps TCP and ping going, and writes its JSON", async () => {
    const out = join(dir, "soak.json");
    const r = await script(["soak", "--minutes", "1", "--sample-seconds", "10", "--churn-seconds", "3", "--tcp-rate", "500M", "--prefix", soakPrefix, "--out", out], 170_000);
    const report = JSON.parse(readFileSync(out, "utf8")) as SoakReport;
    expect(r.stdout).toMatch(/min\s+node1 RSS MB\s+node1 heaps MB\s+node1 fds\s+node2 RSS MB\s+node2 heaps MB\s+node2 fds/);
    const nodes = new Set(report.samples.map((s) => s.node));
    expect([...nodes].sort()).toEqual(["node1", "node2"]);
    expect(report.samples.length).toBeGreaterThanOrEqual(2 * 6);
    expect(report.samples.every((s) => s.rssKb > 10_000 && s.fds > 5)).toBe(true);
    expect(report.churn.cycles).toBeGreaterThanOrEqual(8);
    expect(report.tcp.bytes).toBeGreaterThan(0);
    expect(report.ping.sent).toBeGreaterThan(200);
    const failed = report.verdict.checks.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`);
    expect(failed).toEqual([]);
    expect(r.code).toBe(0);
    expect(netnsList().filter((n) => n.startsWith(soakPrefix))).toEqual([]);
  }, 180_000);
});

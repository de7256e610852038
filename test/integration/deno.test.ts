// The same switches, run by Deno: pod-to-pod traffic through them, across nodes on the tapnet
// backend (its recvmsg passes raw pointers from Deno.UnsafePointer).
import { readFileSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { allowedCpus } from "../../src/io/cpu.ts";
import { cleanupTestLabs, journal, netnsList, tapnet, threadCpus, uniquePrefix } from "./helpers.ts";

const prefix = uniquePrefix("deno");

afterAll(async () => {
  await cleanupTestLabs();
});

it("a lab whose switches run on Deno forwards between pods, across nodes (tapnet backend) and to the nodes", async () => {
  const up = await tapnet(["lab", "up", "--runtime", "deno", "--nodes", "2", "--pods", "1", "--backend", "tapnet", "--prefix", prefix]);
  expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
  const log = readFileSync(`/run/tapnet/${prefix}/node1.log`, "utf8");
  expect(log).toMatch(/"switch ready".*"runtime":"deno /);
  // Deno's sched_setaffinity: each node's datapath thread on a CPU of its own, round-robin.
  const cpus = allowedCpus();
  if (cpus.length > 1) {
    const nodes = journal(prefix)!.nodes;
    expect(nodes.map((n) => n.cpu)).toEqual([cpus[0], cpus[1]]);
    for (const n of nodes) expect(threadCpus(n.pid).filter((l) => l === String(n.cpu))).toHaveLength(1);
  }
  const check = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
  const res = JSON.parse(check.stdout);
  expect(res.results.filter((r: { ok: boolean }) => !r.ok)).toEqual([]);
  expect(res.results.some((r: { from: string; to: string; test: string }) => r.from === "node1-pod1" && r.to === "node2-pod1" && r.test === "tcp")).toBe(true);
  const made = journal(prefix)!.namespaces;
  expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
  expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
});

// The same switch, run by Deno: pod-to-pod traffic through it.
import { readFileSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { cleanupTestLabs, journal, netnsList, tapnet, uniquePrefix } from "./helpers.ts";

const prefix = uniquePrefix("deno");

afterAll(async () => {
  await cleanupTestLabs();
});

it("a lab whose switch runs on Deno forwards between pods and to the node", async () => {
  const up = await tapnet(["lab", "up", "--runtime", "deno", "--pods", "2", "--prefix", prefix]);
  expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
  const log = readFileSync(`/run/tapnet/${prefix}/node1.log`, "utf8");
  expect(log).toMatch(/"switch ready".*"runtime":"deno /);
  const check = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
  const res = JSON.parse(check.stdout);
  expect(res.results.filter((r: { ok: boolean }) => !r.ok)).toEqual([]);
  expect(res.results.some((r: { from: string; to: string; test: string }) => r.from === "node1-pod1" && r.to === "node1-pod2" && r.test === "tcp")).toBe(true);
  const made = journal(prefix)!.namespaces;
  expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
  expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
});

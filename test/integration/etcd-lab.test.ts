// A lab on etcd whose etcd goes away during traffic: the pods keep talking (the datapath forwards
// on what it had), the switches say they lost the store and found it again, and what is applied
// once etcd is back takes effect. Then a bad manifest is refused and the store is unchanged.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupTestLabs, ping, runCmd, tapnet, uniquePrefix } from "./helpers.ts";

const prefix = uniquePrefix("etcdlab");

interface Status { nodes: { name: string; podCidr: string }[]; pods: { name: string; netns: string; node: string; ip: string }[] }

async function status(): Promise<Status> {
  const r = await tapnet(["lab", "status", "--json", "--prefix", prefix]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a lab on etcd, etcd stopped and started during traffic", () => {
  beforeAll(async () => {
    const r = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--store", "etcd", "--lease-ttl", "6", "--prefix", prefix]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });

  afterAll(async () => {
    await cleanupTestLabs();
  });

  it("keeps forwarding while etcd is down, and applies what comes after it is back", async () => {
    const s = await status();
    const [a, b] = [s.pods.find((p) => p.node === "node1")!, s.pods.find((p) => p.node === "node2")!];
    // 12 s of pings, 10 a second, across the outage.
    const pinging = ping(a.netns, b.ip, ["-q", "-i", "0.1", "-W", "1", "-c", "120"]);
    await sleep(1_500);
    const stop = await tapnet(["lab", "etcd", "stop", "--prefix", prefix]);
    expect(stop.code, stop.stderr).toBe(0);
    const down = await tapnet(["get", "pods", "-A", "--prefix", prefix]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/etcd/);
    await sleep(4_000);
    const start = await tapnet(["lab", "etcd", "start", "--prefix", prefix]);
    expect(start.code, start.stderr).toBe(0);
    const pings = await pinging;
    expect(pings.sent, pings.out).toBe(120);
    expect(pings.received, pings.out).toBe(120);

    // The switches noticed, and came back to it.
    const log = readFileSync(`/run/tapnet/${prefix}/node1.log`, "utf8");
    expect(log).toMatch(/store connection lost/);
    expect(log).toMatch(/store connection restored/);

    // A pod applied now is made on node2 and reachable from node1's pod.
    const manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: late\nspec:\n  nodeName: node2\n  containers:\n    - name: late\n";
    const applied = await runCmd("sh", ["-c", `printf '%s' "$0" | node bin/tapnet.mjs apply -f - --prefix ${prefix}`, manifest]);
    expect(applied.stdout.trim(), applied.stderr).toBe("pod/late created");
    let ip = "";
    for (let i = 0; i < 50 && !ip; i++) {
      const r = await tapnet(["get", "pods", "late", "-o", "json", "--prefix", prefix]);
      ip = r.code === 0 ? JSON.parse(r.stdout).status?.podIP ?? "" : "";
      if (!ip) await sleep(200);
    }
    expect(ip).toMatch(/^10\.244\.\d+\.\d+$/);
    const reach = await runCmd("ip", ["netns", "exec", a.netns, "ping", "-c", "2", "-W", "2", ip]);
    expect(reach.code, reach.stdout).toBe(0);
  });

  it("refuses a bad manifest and leaves the store as it was", async () => {
    const before = await tapnet(["get", "pods", "-A", "-o", "json", "--prefix", prefix]);
    const bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  nodeName: node1\n  containers:\n    - name: c\n      ports:\n        - containerPort: 70000\n";
    const r = await runCmd("sh", ["-c", `printf '%s' "$0" | node bin/tapnet.mjs apply -f - --prefix ${prefix}`, bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("spec.containers[0].ports[0].containerPort");
    const after = await tapnet(["get", "pods", "-A", "-o", "json", "--prefix", prefix]);
    expect(after.stdout).toBe(before.stdout);
  });
});

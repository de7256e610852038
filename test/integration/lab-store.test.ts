// A lab on a real etcd, with no pod CIDR in any config: three nodes lease distinct subnets and
// pass lab check; a fourth joins and the others reach its pods with no restart and no loss
// between them; a node restarted within the TTL keeps its subnet; nodes stopped for longer
// than the TTL leave the others' maps, and come back with their subnets; lab down leaves
// nothing (no namespace, no etcd, no switch, no directory).
// TAPNET_LAB_PREFIX names the lab instead of the usual test prefix (to keep clear of other labs).
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cidrContains, cidrInside, parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";
import { UNDERLAY_BRIDGE_MAC } from "../../src/lab/plan.ts";
import { netnsList, pidAlive, runCmd, sh, tapnet, uniquePrefix } from "./helpers.ts";

const prefix = process.env.TAPNET_LAB_PREFIX ?? uniquePrefix("store");
const TTL = 4;
const P = ["--prefix", prefix];

interface Journal {
  namespaces: string[];
  nodes: { name: string; netns: string; address: string; podCidr: string; gateway: string; pid: number }[];
  pods: { name: string; netns: string; node: string; ip: string }[];
  store: { type: string; url: string; leaseTtl: number; etcdPid: number; etcdDataDir: string };
}
const journal = (): Journal => JSON.parse(readFileSync(`/run/tapnet/${prefix}/lab.json`, "utf8"));
const node = (name: string) => journal().nodes.find((n) => n.name === name)!;
const pod = (name: string) => journal().pods.find((p) => p.name === name)!;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;

async function ok(args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await tapnet([...args, ...P], { timeoutMs });
  if (r.code !== 0) throw new Error(`tapnet ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** One ping, up to `tries` times: a pod reaches another. */
async function reaches(fromPod: string, toPod: string, tries = 10): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    const r = await runCmd("ip", ["netns", "exec", pod(fromPod).netns, "ping", "-c", "1", "-W", "1", "-q", pod(toPod).ip]);
    if (r.code === 0) return true;
  }
  return false;
}

/** The pod CIDRs node1's kernel routes to its switch: its map of the other nodes. */
/** The pod CIDRs a node's kernel routes to tapnet0, its own and the service CIDR's route left out. */
function routedFrom(name: string): string[] {
  return sh("ip", ["-n", node(name).netns, "-4", "route", "show", "dev", "tapnet0"]).split("\n").map((l) => l.split(" ")[0])
    .filter((d) => d.includes("/") && d !== node(name).podCidr && d !== "10.96.0.0/12");
}

/** The other nodes' pod CIDRs in a switch's own map, as `lab status` reports it. */
async function mapOf(name: string): Promise<string[]> {
  const s = JSON.parse((await tapnet(["lab", "status", "--json", ...P])).stdout);
  return (s.switches[name].nodes as { name: string; podCidr: string }[]).filter((n) => n.name !== name).map((n) => n.podCidr).sort();
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

describe("lab on the etcd store", () => {
  let etcdPid = 0;
  const pids = new Map<string, number>();

  beforeAll(async () => {
    await ok(["lab", "up", "--nodes", "3", "--pods", "1", "--store", "etcd", "--lease-ttl", String(TTL)], 150_000);
    etcdPid = journal().store.etcdPid;
    for (const n of journal().nodes) pids.set(n.name, n.pid);
  }, 180_000);

  afterAll(async () => {
    await tapnet(["lab", "down", ...P]);
  });

  it("leases three distinct subnets of the cluster CIDR, with none in the config", async () => {
    const j = journal();
    expect(j.store).toMatchObject({ type: "etcd", url: "etcd://192.168.56.2:2379", leaseTtl: TTL });
    expect(etcdPid).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${etcdPid}/cmdline`, "utf8")).toContain(`--data-dir=/run/tapnet/${prefix}/etcd`);
    expect(readFileSync(`/run/tapnet/${prefix}/cluster.yaml`, "utf8")).toMatch(/^nodes: \[\]$/m);
    const cidrs = j.nodes.map((n) => n.podCidr);
    expect(new Set(cidrs).size).toBe(3);
    for (const c of cidrs) {
      expect(cidrInside(cidr(c), cidr("10.244.0.0/16"))).toBe(true);
      expect(c).not.toBe("10.244.0.0/24"); // subnet 0 is never given
    }
    for (const p of j.pods) expect(cidrContains(cidr(node(p.node).podCidr), parseIpv4Address(p.ip)!)).toBe(true);
    // status says what each switch leased, as the journal does; every node routes to the others
    const s = JSON.parse(await ok(["lab", "status", "--json"]));
    expect(s.nodes.map((n: { podCidr: string }) => n.podCidr)).toEqual(cidrs);
    for (const n of j.nodes) {
      const others = cidrs.filter((c) => c !== n.podCidr).sort();
      expect(routedFrom(n.name).sort()).toEqual(others);
      expect(await mapOf(n.name)).toEqual(others);
    }
  });

  it("passes lab check", async () => {
    const r = await tapnet(["lab", "check", "--json", "--bytes", "300000", ...P], { timeoutMs: 170_000 });
    const res = JSON.parse(r.stdout);
    expect(res.results.filter((x: { ok: boolean }) => !x.ok)).toEqual([]);
    expect(res.passed).toBeGreaterThan(40);
    expect(r.code).toBe(0);
  });

  it("a node add that fails takes back what it made", async () => {
    const squatter = `${prefix}-node4-pod1`;
    sh("ip", ["netns", "add", squatter]);
    try {
      const r = await tapnet(["lab", "node", "add", "--pods", "1", ...P]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`network namespace ${squatter} already exists`);
      expect(journal().nodes.map((n) => n.name)).toEqual(["node1", "node2", "node3"]);
      expect(journal().namespaces).not.toContain(`${prefix}-node4`);
      expect(netnsList()).not.toContain(`${prefix}-node4`);
    } finally {
      sh("ip", ["netns", "del", squatter]);
    }
  });

  it("a fourth node joins: the others reach its pod, with no restart and no ping lost between them", async () => {
    // br0 keeps the MAC it was made with: a bridge's own follows its ports' lowest, and a change
    // left every node's ARP entry for etcd stale, so that their leases all expired at once.
    const br0Mac = () => JSON.parse(sh("ip", ["-n", `${prefix}-underlay`, "-j", "link", "show", "br0"]))[0].address;
    expect(br0Mac()).toBe(UNDERLAY_BRIDGE_MAC);
    const ping = runCmd("ip", ["netns", "exec", pod("node1-pod1").netns, "ping", "-c", "150", "-i", "0.1", "-q", pod("node2-pod1").ip], { timeoutMs: 60_000 });
    const out = await ok(["lab", "node", "add", "--pods", "1"]);
    const during = await ping;
    expect(out).toContain("node4 joined");
    expect(during.stdout).toMatch(/150 packets transmitted, 150 received, 0% packet loss/);
    const n4 = node("node4");
    expect(n4.address).toBe("192.168.56.14");
    expect(br0Mac()).toBe(UNDERLAY_BRIDGE_MAC);
    expect(n4.pid).toBeGreaterThan(0);
    expect(journal().nodes.filter((n) => n.podCidr === n4.podCidr)).toHaveLength(1);
    for (const n of ["node1", "node2", "node3"]) expect(node(n).pid).toBe(pids.get(n));
    for (const [, pid] of pids) expect(pidAlive(pid)).toBe(true);
    expect(await reaches("node1-pod1", "node4-pod1")).toBe(true);
    expect(await reaches("node4-pod1", "node3-pod1")).toBe(true);
    pids.set("node4", n4.pid);
  });

  it("refuses to start a running node, or to stop one the lab does not have", async () => {
    const stopped = await tapnet(["lab", "node", "start", "node1", ...P]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("node1's switch is running already");
    const none = await tapnet(["lab", "node", "stop", "node9", ...P]);
    expect(none.stderr).toContain('has no node "node9"');
  });

  it("a node restarted within the TTL keeps its subnet and its pod's address", async () => {
    const before = node("node3");
    const ip = pod("node3-pod1").ip;
    await ok(["lab", "node", "stop", "node3"]);
    expect(node("node3").pid).toBe(0);
    expect(pidAlive(before.pid)).toBe(false);
    expect(netnsList()).toContain(before.netns);
    await ok(["lab", "node", "start", "node3"]);
    expect(node("node3").podCidr).toBe(before.podCidr);
    expect(node("node3").pid).not.toBe(before.pid);
    expect(pod("node3-pod1").ip).toBe(ip);
    expect(await reaches("node1-pod1", "node3-pod1")).toBe(true);
  });

  it("nodes stopped for longer than the TTL leave the others' maps, and come back with their subnets", async () => {
    const had2 = node("node2").podCidr;
    const had4 = node("node4").podCidr;
    await ok(["lab", "node", "stop", "node4"]);
    await ok(["lab", "node", "stop", "node2"]);
    // both leases run out; node1 then routes to node3 alone
    const waited = await until(() => !routedFrom("node1").includes(had4) && !routedFrom("node1").includes(had2), (TTL + 8) * 1000, "node2's and node4's subnets to leave node1's routes");
    expect(routedFrom("node1")).toEqual([node("node3").podCidr]);
    expect(await mapOf("node1")).toEqual([node("node3").podCidr]);
    expect(await mapOf("node3")).toEqual([node("node1").podCidr]);
    expect(waited).toBeGreaterThan(0);
    // node4 first: the lowest free subnet is node2's, yet it gets its own back
    await ok(["lab", "node", "start", "node4"]);
    expect(node("node4").podCidr).toBe(had4);
    await ok(["lab", "node", "start", "node2"]);
    expect(node("node2").podCidr).toBe(had2);
    await until(() => routedFrom("node1").length === 3, 10_000, "node1 to route to three nodes again");
    expect(await mapOf("node1")).toEqual([had2, node("node3").podCidr, had4].sort());
    expect(await reaches("node1-pod1", "node4-pod1")).toBe(true);
    expect(await reaches("node4-pod1", "node2-pod1")).toBe(true);
  });

  it("lab down leaves nothing: no namespace, no etcd, no switch, no directory", async () => {
    const switchPids = journal().nodes.map((n) => n.pid);
    await ok(["lab", "down"]);
    expect(netnsList().filter((ns) => ns.startsWith(`${prefix}-`))).toEqual([]);
    expect(pidAlive(etcdPid)).toBe(false);
    for (const pid of switchPids) expect(pidAlive(pid)).toBe(false);
    expect(existsSync(`/run/tapnet/${prefix}`)).toBe(false);
  });
});

describe("lab node on a file-store lab", () => {
  const file = `${prefix}f`;

  afterAll(async () => {
    await tapnet(["lab", "down", "--prefix", file]);
  });

  it("refuses to add a node, saying why", async () => {
    const up = await tapnet(["lab", "up", "--nodes", "1", "--pods", "0", "--prefix", file]);
    expect(up.code).toBe(0);
    expect(JSON.parse(readFileSync(`/run/tapnet/${file}/lab.json`, "utf8")).store).toEqual({ type: "file", url: `file:/run/tapnet/${file}/store` });
    const r = await tapnet(["lab", "node", "add", "--prefix", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("nodes of a file-store lab are fixed by its cluster.yaml; use --store etcd");
    expect(JSON.parse(readFileSync(`/run/tapnet/${file}/lab.json`, "utf8")).nodes).toHaveLength(1);
  });
});

/**
 * vm/provision.sh's other way to make a node (`npm run test:vm`): `--store etcd://…` and no
 * static map. An etcd runs in the underlay's namespace at 192.168.56.2:2379, as a cluster's
 * etcd would on the private network; two booted Debian 12 machines (machines.ts) are
 * provisioned with only its address and their own, and each leases a pod CIDR there. Then:
 * each switch knows the other node from etcd, pods on different nodes ping each other and move
 * TCP, `tapnet check` on node1 finds node2's pods in the store with no --to and moves TCP to their
 * iperf3 servers, and `systemctl stop tapnet` leaves each node as it was. Everything is removed at the end, also when a step fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startEtcd, stopEtcd } from "../../src/lab/etcd-server.ts";
import { boot, destroy, ensureRoot, inside, plan, type Cluster } from "./machines.ts";
import { must, ping, pods, snapshot, tcp } from "./steps.ts";

const cluster: Cluster = plan(`vm-e${process.pid % 100000}`, 2);
const [m1, m2] = cluster.machines;
const SECRET = "vm-etcd-test-secret-" + "fedcba9876543210".repeat(2);
const STORE = "etcd://192.168.56.2:2379";
const dataDir = mkdtempSync(join(tmpdir(), "vm-etcd-"));
let etcdPid = 0;
const baseline = new Map<string, string>();

async function tearDown(): Promise<string[]> {
  const problems = await destroy(cluster).catch((e: Error) => [e.message]);
  if (etcdPid) await stopEtcd(etcdPid).catch((e: Error) => problems.push(`etcd: ${e.message}`));
  etcdPid = 0;
  rmSync(dataDir, { recursive: true, force: true });
  return problems;
}

beforeAll(async () => {
  try {
    const root = await ensureRoot();
    await boot(cluster, root, { underlayAddress: "192.168.56.2/24" });
    etcdPid = (await startEtcd({ name: "vm", dataDir: join(dataDir, "data"), clientUrl: "http://192.168.56.2:2379", peerUrl: "http://192.168.56.2:2380", netns: cluster.underlay, logFile: join(dataDir, "etcd.log") })).pid;
    for (const m of cluster.machines) baseline.set(m.name, await snapshot(m));
    const runs = await Promise.all(cluster.machines.map((m) => inside(m, `sh /opt/tapnet-src/vm/provision.sh --src /opt/tapnet-src --node ${m.hostname} --store ${STORE} --address ${m.address} --no-apt`, { timeoutMs: 300_000, env: { TAPNET_SECRET: SECRET } })));
    runs.forEach((r, i) => {
      if (r.code !== 0) throw new Error(`provision.sh on ${cluster.machines[i].hostname} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    });
  } catch (e) {
    await tearDown();
    throw e;
  }
}, 900_000);

afterAll(async () => {
  expect((await tearDown()).join("\n")).toBe("");
}, 60_000);

describe("VM provisioning onto etcd, on booted Debian 12 machines", () => {
  test("each node leases a pod CIDR from etcd and learns the other there; its config lists no node", async () => {
    const cidrs: string[] = [];
    for (const m of cluster.machines) {
      expect(await must(m, "cat /etc/tapnet/cluster.yaml")).toContain("\nnodes: []\n");
      expect(await must(m, "cat /etc/tapnet/tapnet.env")).toContain(`TAPNET_OPTS=--netns-prefix tapnet- --store ${STORE} --address ${m.address}`);
      const s = JSON.parse(await must(m, "tapnet status --json")) as { node: { podCidr: string }; nodes: { name: string; address: string }[]; store: { description: string } };
      cidrs.push(s.node.podCidr);
      expect(s.store.description).toContain("192.168.56.2:2379");
      expect(s.nodes.map((n) => `${n.name}=${n.address}`).sort()).toEqual(["node1=192.168.56.11", "node2=192.168.56.12"]);
    }
    expect(cidrs.sort()).toEqual(["10.244.1.0/24", "10.244.2.0/24"]);
  });

  test("pods on different nodes ping each other and move TCP; tapnet check finds the other node's pods in the store", async () => {
    const [a1, a2] = await pods(m1);
    const [b1, b2] = await pods(m2);
    await ping(m1, a1, b1.ip);
    await ping(m2, b2, a2.ip);
    await tcp(m2, b1, m1, a1);
    // No --to: node2's two pods come from etcd. Pings: 2 + 4 here, 2 × 4 from pods to node2
    // (address, gateway, pods), 3 from the node to node2's gateway and pods; 3 TCP here, and 4
    // to node2's demo pods (labelled app=tapnet-demo in the store), whose servers saw node1's pods.
    const check = await inside(m1, "tapnet check --bytes 1000000", { timeoutMs: 120_000 });
    expect(check.stdout, check.stderr).toContain("\n24 passed, 0 failed");
    expect(check.stdout).toContain(`node2/node2-demo1  ping  ok`);
    expect(check.stdout).toMatch(new RegExp(`${a1.name} +node2/node2-demo2 +tcp +ok .*server saw ${a1.ip.replaceAll(".", "\\.")}\n`));
    expect(check.stdout).toMatch(new RegExp(`${a2.name} +node2/node2-demo1 +tcp +ok .*server saw ${a2.ip.replaceAll(".", "\\.")}\n`));
  });

  test("systemctl stop tapnet leaves the node as it was", async () => {
    for (const m of [m2, m1]) {
      await must(m, "systemctl stop tapnet", 60_000);
      expect(await snapshot(m)).toBe(baseline.get(m.name));
    }
  });
});

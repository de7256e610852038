// The whole single-node lab, on Node: up, status, check, 50 MB of TCP, down; nothing left behind.
import { existsSync, readFileSync } from "node:fs";
import { rpcCall } from "../../src/node/rpc.ts";
import { SWITCH_V8_FLAGS } from "../../src/lab/plan.ts";
import { allowedCpus } from "../../src/io/cpu.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupTestLabs, iperf, journal, netnsList, pidAlive, sh, tapnet, threadCpus, uniquePrefix } from "./helpers.ts";

const prefix = uniquePrefix("lab");

describe("lab on one node with three pods", () => {
  let made: string[] = [];
  let switchPid = 0;

  beforeAll(async () => {
    const r = await tapnet(["lab", "up", "--nodes", "1", "--pods", "3", "--prefix", prefix]);
    expect(r.stderr + r.stdout).toContain(`lab ${prefix} is up`);
    expect(r.code).toBe(0);
    made = journal(prefix)!.namespaces;
    switchPid = journal(prefix)!.nodes[0].pid;
  });

  afterAll(async () => {
    await cleanupTestLabs();
  });

  it("status --json has the documented shape", async () => {
    const r = await tapnet(["lab", "status", "--json", "--prefix", prefix]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.nodes).toHaveLength(1);
    expect(Object.keys(s.nodes[0]).sort()).toEqual(["address", "gateway", "name", "netns", "pid", "podCidr", "socket"]);
    expect(s.nodes[0]).toMatchObject({ name: "node1", netns: `${prefix}-node1`, podCidr: "10.244.1.0/24", gateway: "10.244.1.1", pid: switchPid });
    expect(s.pods).toHaveLength(3);
    for (const p of s.pods) {
      expect(Object.keys(p).sort()).toEqual(["ifname", "ip", "mac", "name", "netns", "node"]);
      expect(p.ip).toMatch(/^10\.244\.1\.\d+$/);
      expect(p.ifname).toBe("eth0");
      // the address inside the namespace is the one reported
      expect(sh("ip", ["-n", p.netns, "-4", "-o", "addr", "show", "dev", "eth0"])).toContain(`${p.ip}/24`);
      expect(sh("ip", ["-n", p.netns, "link", "show", "eth0"])).toContain(p.mac);
    }
    expect(new Set(s.pods.map((p: { ip: string }) => p.ip)).size).toBe(3);
  });

  it("pins the switch's datapath thread, and only it, to the first CPU (on a machine of 2 or more)", () => {
    const cpus = allowedCpus();
    const threads = threadCpus(switchPid);
    const pinned = threads.filter((l) => l === String(cpus[0]));
    if (cpus.length > 1) {
      expect(journal(prefix)!.nodes[0].cpu).toBe(cpus[0]);
      expect(pinned).toHaveLength(1);
      expect(threads.length).toBeGreaterThan(1); // the control thread and the runtime's are left alone
    } else {
      expect(journal(prefix)!.nodes[0].cpu).toBeUndefined();
    }
  });

  it("lab check passes: pods ping each other and the node, TCP flows, servers see clients' own addresses", async () => {
    const r = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
    const res = JSON.parse(r.stdout);
    expect(res.results.filter((x: { ok: boolean }) => !x.ok)).toEqual([]);
    // pod pairs 6 pings + 3 TCP; pod and node 6 pings + 6 TCP; pod to the outside 3 pings + 3 TCP
    expect(res.passed).toBe(6 + 3 + 6 + 6 + 3 + 3);
    expect(r.code).toBe(0);
  });

  it("moves 50 MB of TCP between two pods with iperf3", async () => {
    const { client, server } = await iperf(`${prefix}-node1-pod1`, `${prefix}-node1-pod3`, "10.244.1.4", "50M");
    expect(client.end.sum_sent.bytes).toBeGreaterThanOrEqual(50 * 1024 * 1024);
    expect(server.start.connected[0].remote_host).toBe("10.244.1.2");
  });

  it("runs the switch with its young generation fixed (SWITCH_V8_FLAGS), the same in both threads after traffic", async () => {
    const s = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
    const st = await rpcCall<{ memory: { rss: number; control: { young: number }; datapath: { young: number } } }>(s.nodes[0].socket, "status");
    // V8 left alone starts the control thread's at twice the worker's and grows it from there.
    expect(st.memory.control.young).toBeGreaterThan(0);
    expect(st.memory.control.young).toBe(st.memory.datapath.young);
    expect(readFileSync(`/proc/${switchPid}/cmdline`, "utf8").split("\0")).toEqual(expect.arrayContaining(SWITCH_V8_FLAGS));
  });

  it("status shows every pod's MAC learned on that pod's port, and counts the traffic", async () => {
    const s = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
    const sw = s.switches.node1;
    for (const pod of s.pods) {
      const entry = sw.fdb.find((e: { mac: string }) => e.mac === pod.mac);
      expect(entry, `FDB entry for ${pod.name}`).toBeDefined();
      expect(entry.pod).toBe(pod.name);
      const port = sw.ports.find((p: { port: number }) => p.port === entry.port);
      expect(port.pod).toBe(pod.name);
    }
    const pod1 = sw.ports.find((p: { pod?: string }) => p.pod === "node1-pod1");
    expect(pod1.counters.rx_bytes).toBeGreaterThan(50 * 1024 * 1024);
    const human = await tapnet(["lab", "status", "--prefix", prefix]);
    expect(human.stdout).toMatch(/node1-pod1 .* node1 port \d+/);
  });

  it("refuses a second lab with the same prefix, naming the way out", async () => {
    const r = await tapnet(["lab", "up", "--prefix", prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`a lab named ${prefix} is already up`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("lab down removes every namespace, device and process; a second down is a no-op", async () => {
    const r = await tapnet(["lab", "down", "--prefix", prefix]);
    expect(r.code).toBe(0);
    const left = netnsList().filter((n) => made.includes(n));
    expect(left).toEqual([]);
    expect(made.length).toBe(1 + 1 + 1 + 3); // underlay, node, outside, pods
    expect(pidAlive(switchPid)).toBe(false);
    expect(existsSync(`/run/tapnet/${prefix}`)).toBe(false);
    const again = await tapnet(["lab", "down", "--prefix", prefix]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("nothing to do");
  });
});

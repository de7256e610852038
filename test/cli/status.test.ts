/**
 * `tapnet status` as a user runs it, against a stand-in switch: a control socket served here
 * answering `status` with a fixed answer in the shape of node/node-status.ts. The printed
 * status word for word, --json, --quiet, --wait for a switch that starts late, and the errors.
 * No namespaces or devices.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { bytes, drops, type NodeStatusAnswer } from "../../src/cli/commands/status.ts";
import { captureCli } from "./cli-support.ts";

const io = captureCli("tapnet-cli-status-");
const cli = io.cli;

function answer(): NodeStatusAnswer {
  return {
    node: { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24", gateway: "10.244.1.1", gatewayMac: "0a:58:0a:f4:01:01", podMtu: 1500, backend: "tapnet", pid: 4242, runtime: "node 20.20.2" },
    pods: [
      { name: "node1-demo1", namespace: "default", netns: "tapnet-default-node1-demo1", ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", ifname: "eth0", port: 1 },
      { name: "web", namespace: "shop", netns: "/run/netns/cni-1", ip: "10.244.1.3", mac: "0a:58:0a:f4:01:03", ifname: "eth0", port: -1 },
    ],
    nodes: [
      { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" },
      { name: "node2", address: "192.168.56.12", podCidr: "10.244.2.0/24" },
    ],
    store: { description: "file /var/lib/tapnet/store", cluster: "default" },
    ports: [
      { port: 0, ifname: "tapnet0", role: "gateway", counters: { rx_frames: 1, rx_bytes: 98, tx_frames: 0, tx_bytes: 0, drop_too_short: 0 } },
      { port: 1, ifname: "tap1", role: "pod", pod: "node1-demo1", counters: { rx_frames: 12, rx_bytes: 2048, tx_frames: 10, tx_bytes: 3 * 1048576, drop_ipv4_bad_checksum: 2 } },
    ],
    fdb: [{}, {}, {}],
    counters: { routed: 7, delivered: 6, icmp_sent: 0, flows_active: 2, fdb_full: 0 },
    tunnel: { rx_frames: 6, rx_bytes: 600, tx_frames: 7, tx_bytes: 5000, drop_auth_failed: 1 },
    memory: { rss: 150 * 1048576, datapathThread: { cpuMs: 5213.4, waitMs: 812.3, slices: 48211, sleeps: 40210, preempted: 311 } },
  };
}

describe("tapnet status", () => {
  it("prints the node, its pods with their ports' traffic, its peers, the tunnel and every drop", async () => {
    const sock = join(io.dir, "node1.sock");
    await io.serve(sock, { status: () => answer() });
    expect(await cli("status", "--control", sock)).toBe(0);
    expect(io.stdout).toBe([
      "node node1: address 192.168.56.11, pod CIDR 10.244.1.0/24, gateway 10.244.1.1 (tapnet0), backend tapnet, pod MTU 1500",
      "switch: pid 4242 on node 20.20.2, 150 MB resident; store file /var/lib/tapnet/store, cluster default",
      "datapath thread: 5.2 s of CPU, 0.8 s waiting for one; woken 40210 times, preempted 311",
      "",
      "pods: 2",
      "NAMESPACE  POD          IP          MAC                NETNS                       PORT  RX           TX",
      "default    node1-demo1  10.244.1.2  0a:58:0a:f4:01:02  tapnet-default-node1-demo1  1     12 (2.0 KB)  10 (3.0 MB)",
      "shop       web          10.244.1.3  0a:58:0a:f4:01:03  /run/netns/cni-1            -     0 (0 B)      0 (0 B)",
      "",
      "peers: 1 other node",
      "NODE   ADDRESS        POD CIDR",
      "node2  192.168.56.12  10.244.2.0/24",
      "",
      "tunnel: 6 datagrams in (600 B), 7 out (4.9 KB)",
      "forwarding: routed 7, delivered 6, ICMP errors sent 0, flows active 2, MACs learned 3",
      "drops: node1-demo1 ipv4_bad_checksum=2, tunnel auth_failed=1",
      "",
    ].join("\n"));
  });

  it("says so when the node is alone, and when nothing was dropped", async () => {
    const sock = join(io.dir, "solo.sock");
    const a = answer();
    a.nodes = a.nodes.slice(0, 1);
    delete a.tunnel;
    a.ports[1].counters.drop_ipv4_bad_checksum = 0;
    await io.serve(sock, { status: () => a });
    expect(await cli("status", "--control", sock)).toBe(0);
    expect(io.stdout).toContain("\npeers: 0 other nodes\n\ntunnel: none (no other node)\n");
    expect(io.stdout).toContain("\ndrops: none\n");
  });

  it("--json prints the switch's whole answer; --quiet prints nothing", async () => {
    const sock = join(io.dir, "node1.sock");
    await io.serve(sock, { status: () => answer() });
    expect(await cli("status", "--control", sock, "--json")).toBe(0);
    expect(JSON.parse(io.stdout)).toEqual(answer());
    expect(await cli("status", "--control", sock, "--quiet")).toBe(0);
    expect(io.stdout).toBe("");
  });

  it("fails at once when no switch answers, and --wait waits for one that starts late", async () => {
    const sock = join(io.dir, "late.sock");
    expect(await cli("status", "--control", sock)).toBe(1);
    expect(io.stderr).toBe(`tapnet: cannot reach the switch at ${sock}: no switch is running there\n`);
    const t0 = Date.now();
    setTimeout(() => void io.serve(sock, { status: () => answer() }), 600);
    expect(await cli("status", "--control", sock, "--wait", "10", "--quiet")).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
  });

  it("--wait gives up after its time, with the switch's error", async () => {
    const sock = join(io.dir, "never.sock");
    const t0 = Date.now();
    expect(await cli("status", "--control", sock, "--wait", "1")).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
    expect(io.stderr).toContain("no switch is running there");
  });

  it("refuses a bad --wait and a bad --node as usage errors", async () => {
    expect(await cli("status", "--wait", "soon")).toBe(2);
    expect(io.stderr).toMatch(/^tapnet: --wait/);
    expect(await cli("status", "--node", "../x")).toBe(2);
    expect(io.stderr).toContain('--node "../x"');
  });
});

describe("status helpers", () => {
  it("bytes: B below 1 KiB, one decimal below 10 units, whole numbers above", () => {
    expect([0, 1023, 1024, 1536, 10 * 1024, 1048575, 1048576, 5 * 1024 ** 4, 5000 * 1024 ** 4].map(bytes))
      .toEqual(["0 B", "1023 B", "1.0 KB", "1.5 KB", "10 KB", "1024 KB", "1.0 MB", "5.0 TB", "5000 TB"]);
  });

  it("drops: only counters that are not zero, named by pod or device", () => {
    const a = answer();
    a.ports[0].counters.drop_too_short = 3;
    a.counters.fdb_full = 9;
    expect(drops(a)).toBe("tapnet0 too_short=3, node1-demo1 ipv4_bad_checksum=2, tunnel auth_failed=1, fdb_full=9");
  });
});

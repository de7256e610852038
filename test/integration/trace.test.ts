// `tapnet trace` on a real 2-node lab (tapnet backend, sealed): a ping across nodes is followed
// through both switches both ways, a ping on one node through its bridge, a ping to an address
// no node has to the ICMP error the switch sends back; --json gives the same hops, --pcapng the
// same for tshark; the switches are disarmed afterwards; bad pods are refused. And `tapnet
// capture` of the same lab's underlay and of a pod's eth0.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcCall } from "../../src/node/rpc.ts";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCmd, tapnet, uniquePrefix } from "./helpers.ts";

const prefix = uniquePrefix("trace");
const hops = (text: string) => text.split("\n").filter((l) => /^\s+\+\d+ µs/.test(l)).map((l) => l.trim().split(/\s+/).slice(2, 4).join(" "));
/**
 * The hops of each node in their order. Each switch stamps its records with its own process's
 * wall clock, so two switches' hops close together may interleave either way (the journey's
 * order across nodes is only as good as those clocks); one switch's order is exact.
 */
const perNode = (list: string[]) => {
  const out: Record<string, string[]> = {};
  for (const h of list) (out[h.split(" ")[0]] ??= []).push(h.split(" ")[1]);
  return out;
};

describe("tapnet trace", { timeout: 180_000 }, () => {
  beforeAll(async () => {
    const r = await tapnet(["lab", "up", "--prefix", prefix], { timeoutMs: 170_000 });
    expect(r.code, r.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await tapnet(["lab", "down", "--prefix", prefix]);
  }, 60_000);

  it("follows a ping across nodes through both switches, both ways, with the TTL each router takes", async () => {
    const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("ping: 1 of 1 answered");
    expect(perNode(hops(r.stdout))).toEqual({
      node1: ["read", "route", "tunnel-out", "deliver", "port-out"],
      node2: ["deliver", "port-out", "read", "route", "tunnel-out"],
    });
    expect(r.stdout).toMatch(/node1 +route +to node2: leaves this node through the tunnel/);
    expect(r.stdout).toContain("TTL 64 → 63 (a router's hop)");
    expect(r.stdout).toMatch(/IPv4 +10\.244\.1\.2 → 10\.244\.2\.2, TTL 62 /); // as node2's pod gets it
    expect(r.stdout).toMatch(/Ethernet +\S+ \(node2's gateway, tapnet0\) → \S+ \(node2-pod1\)/);
    expect(r.stdout).toMatch(/node2 +port-out +written to port \d+ \(node2-pod1\): the pod reads it/);
  });

  it("follows a ping on one node through its bridge, and gives the same hops as JSON", async () => {
    const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node1-pod2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(hops(r.stdout)).toEqual(["node1 read", "node1 bridge", "node1 port-out", "node1 read", "node1 bridge", "node1 port-out"]);
    const j = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node1-pod2", "--json"]);
    expect(j.code, j.stderr).toBe(0);
    const parsed = JSON.parse(j.stdout) as { hops: { node: string; stage: string }[]; switches: { node: string; records: unknown[] }[] };
    expect(parsed.hops.map((h) => `${h.node} ${h.stage}`)).toEqual(hops(r.stdout));
    expect(parsed.switches.map((s) => s.node)).toEqual(["node1", "node2"]);
    expect(parsed.switches[1].records).toEqual([]);
  });

  it("writes the journey as pcapng that tshark reads: an interface per place, the hops' comments, one packet id per packet", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tapnet-trace-"));
    try {
      const file = join(dir, "trace.pcapng");
      const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--pcapng", file]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe(`wrote ${file}: 10 packets, one interface per place they were seen\n`);
      const t = await runCmd("tshark", ["-r", file, "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name", "-e", "frame.packet_id", "-e", "ip.ttl", "-e", "icmp.type", "-e", "frame.comment"]);
      expect(t.code, t.stderr).toBe(0);
      const rows = t.stdout.trim().split("\n").map((l) => l.split("|"));
      expect(rows.map((x) => x[0])).toEqual([
        "node1/tap:node1-pod1", "node1/route", "node1/tunnel-out", "node2/deliver", "node2/tap:node2-pod1",
        "node2/tap:node2-pod1", "node2/route", "node2/tunnel-out", "node1/deliver", "node1/tap:node1-pod1",
      ]);
      expect(rows.map((x) => x[1])).toEqual(["1", "1", "1", "1", "1", "2", "2", "2", "2", "2"]);
      expect(rows.map((x) => x[2])).toEqual(["64", "63", "63", "62", "62", "64", "63", "63", "62", "62"]);
      expect(rows.map((x) => x[3])).toEqual(["8", "8", "8", "8", "8", "0", "0", "0", "0", "0"]);
      expect(rows[1][4]).toBe("route: to node2: leaves this node through the tunnel,TTL 64 → 63 (a router's hop)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("follows a TCP probe: the SYN across, and the RST of a port nobody listens on back", async () => {
    const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--proto", "tcp", "--port", "7777"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("TCP to port 7777, 1 connection");
    expect(r.stdout).toContain("tcp: 0 of 1 connected");
    expect(perNode(hops(r.stdout))).toEqual({
      node1: ["read", "route", "tunnel-out", "deliver", "port-out"],
      node2: ["deliver", "port-out", "read", "route", "tunnel-out"],
    });
    expect(r.stdout).toMatch(/TCP +\d+ → 7777 \[SYN\]/);
    expect(r.stdout).toMatch(/TCP +7777 → \d+ \[ACK,RST\]/);
    const bad = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--proto", "udp"]);
    expect([bad.code, bad.stderr]).toEqual([2, "tapnet: --proto udp needs --port P, the destination port\n"]);
  });

  it("shows the ICMP error a switch answers with for an address no node has", async () => {
    const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "10.244.200.9"]);
    expect(r.code, r.stderr).toBe(0);
    expect(hops(r.stdout)).toEqual(["node1 read", "node1 route", "node1 gateway", "node1 port-out"]);
    expect(r.stdout).toContain("answered here: an ICMP error goes back to the sender");
    expect(r.stdout).toContain("replaced: the switch answers with an ICMP destination unreachable from 10.244.1.1, quoting the packet");
  });

  it("tapnet capture: a node's underlay (the tunnel's datagrams) and a pod's eth0, as pcapng tshark reads", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tapnet-capture-"));
    const ping = spawn("ip", ["netns", "exec", `${prefix}-node1-pod1`, "ping", "-c", "300", "-i", "0.1", "10.244.2.2"], { stdio: "ignore" });
    try {
      const u = join(dir, "underlay.pcapng");
      const r = await tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "underlay", "-w", u, "--seconds", "2"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("capturing on node1's underlay (eth0) for 2 s");
      const t = await runCmd("tshark", ["-r", u, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport"]);
      expect(t.code, t.stderr).toBe(0);
      const rows = new Set(t.stdout.trim().split("\n"));
      expect(rows).toContain("192.168.56.11\t192.168.56.12\t8287");
      expect(rows).toContain("192.168.56.12\t192.168.56.11\t8287");
      const pf = join(dir, "pod.pcapng");
      const q = await tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "port:node1-pod1", "-w", pf, "--count", "4", "--seconds", "5"]);
      expect(q.code, q.stderr).toBe(0);
      const t2 = await runCmd("tshark", ["-r", pf, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type"]);
      expect(t2.stdout.trim().split("\n").length).toBe(4);
      expect(t2.stdout).toContain("10.244.1.2\t10.244.2.2\t8");
      expect(t2.stdout).toContain("10.244.2.2\t10.244.1.2\t0");
    } finally {
      ping.kill();
      rmSync(dir, { recursive: true, force: true });
    }
    const bad = await tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "eth9"]);
    expect([bad.code, bad.stderr]).toEqual([2, 'tapnet: --where must be underlay or port:POD, not "eth9"\n']);
    const nopod = await tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "port:nosuch"]);
    expect([nopod.code, nopod.stderr]).toEqual([2, "tapnet: --where port:nosuch: node1 has no pod nosuch (it has: node1-pod1, node1-pod2)\n"]);
    const which = await tapnet(["capture", "--prefix", prefix, "--where", "underlay"]);
    expect([which.code, which.stderr]).toEqual([2, "tapnet: --node picks the node to capture on (the lab has node1, node2)\n"]);
  });

  it("leaves every switch disarmed, and refuses pods that are not there", async () => {
    for (const n of ["node1", "node2"]) {
      const ctl = `/run/tapnet/${prefix}/${n}.sock`;
      expect(await rpcCall(ctl, "trace.read", {})).toEqual({ node: n, records: [], lost: 0 });
    }
    const bad = await tapnet(["trace", "--prefix", prefix, "--from", "nosuch", "--to", "node2-pod1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("tapnet: --from nosuch: no such pod on node1, node2 (tapnet pod list shows them)\n");
    const bad2 = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "web"]);
    expect(bad2.code).toBe(2);
    expect(bad2.stderr).toBe("tapnet: --to web: neither a pod on node1, node2 nor an IPv4 address\n");
  });
});

// The wire-compatible backends: the same journey, the receiving switch merging first.
for (const backend of ["udp", "vxlan"] as const) {
  describe(`tapnet trace, ${backend} backend`, { timeout: 180_000 }, () => {
    const p = uniquePrefix(`tr${backend}`);
    beforeAll(async () => {
      const r = await tapnet(["lab", "up", "--prefix", p, "--backend", backend], { timeoutMs: 170_000 });
      expect(r.code, r.stderr).toBe(0);
    }, 180_000);
    afterAll(async () => {
      await tapnet(["lab", "down", "--prefix", p]);
    }, 60_000);

    it("follows a ping across nodes, both ways", async () => {
      const r = await tapnet(["trace", "--prefix", p, "--from", "node1-pod1", "--to", "node2-pod1"]);
      expect(r.code, r.stderr).toBe(0);
      expect(perNode(hops(r.stdout))).toEqual({
        node1: ["read", "route", "tunnel-out", "merge", "deliver", "port-out"],
        node2: ["merge", "deliver", "port-out", "read", "route", "tunnel-out"],
      });
      expect(r.stdout).toMatch(/node2 +merge +in from node1, over the tunnel/);
    });
  });
}

// The checks of `tapnet trace` on a real 2-node lab of each backend (tapnet, sealed; flannel's
// udp; VXLAN), run by trace.test.ts against the lab it shares with the follow, web and dissector
// checks (trace-lab.ts). They apply a namespace of their own (tr: a pod behind a Service on each
// node, a pod whose ingress a NetworkPolicy denies on node2, one whose egress one denies on
// node1) and delete it afterwards, waiting until no switch has its pods. On each backend, the
// hop list (node, stage) of every path a packet may take is checked against the path it must
// take, with the verdicts named: a ping across nodes through both switches and the underlay
// datagram between them (its backend's header explained), a ping on one node through its
// bridge, TCP to a ClusterIP of each Service (the translation and the reply's reverse), pings a policy
// drops (policy_denied_ingress on the far switch, policy_denied_egress on the near one), a ping
// to an address no node has (refused: cluster_unreachable, the ICMP error back), a ping to the
// lab's outside (handed to the node's kernel through tapnet0, its masquerade named, the reply
// back through it). On the tapnet lab also: --json gives the same hops, --pcapng the same for
// tshark (the underlay on an interface of its own), TCP's SYN and RST, the switches disarmed
// afterwards, bad pods refused, and `tapnet capture` of the underlay and of a pod's eth0.
import { afterAll, beforeAll, expect, it } from "vitest";
import { rpcCall } from "../../src/node/rpc.ts";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCmd, tapnet } from "./helpers.ts";
import { manifests, waitForPods } from "./netpol-support.ts";
import { switchSockets, type SharedLab } from "./trace-lab.ts";

const hops = (text: string) => text.split("\n").filter((l) => /^\s+\+\d+ µs/.test(l)).map((l) => l.trim().split(/\s+/).slice(2, 4).join(" "));
/**
 * The hops of each node in their order. A switch records a hop after its stage ran, so the far
 * switch's first hop may be stamped before the sender's tunnel-out (and without one clock for
 * both, on Deno, hops close together may interleave either way); one switch's order is exact.
 */
const perNode = (list: string[]) => {
  const out: Record<string, string[]> = {};
  for (const h of list) (out[h.split(" ")[0]] ??= []).push(h.split(" ")[1]);
  return out;
};


/** A Service whose endpoint is on node2 (tr/web), and one whose endpoint is on node1 (tr/near). */
const SERVICE_IP = "10.96.77.10";
const NEAR_IP = "10.96.77.11";
const OBJECTS = [
  { apiVersion: "v1", kind: "Namespace", metadata: { name: "tr" } },
  ...([["web", "node2"], ["locked", "node2"], ["jailed", "node1"], ["near", "node1"]] as const).map(([name, node]) => ({
    apiVersion: "v1", kind: "Pod", metadata: { namespace: "tr", name, labels: { app: name } }, spec: { nodeName: node, containers: [{ name: "c", image: "pause" }] },
  })),
  { apiVersion: "v1", kind: "Service", metadata: { namespace: "tr", name: "web" }, spec: { clusterIP: SERVICE_IP, selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] } },
  { apiVersion: "v1", kind: "Service", metadata: { namespace: "tr", name: "near" }, spec: { clusterIP: NEAR_IP, selector: { app: "near" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] } },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: "tr", name: "deny-in" }, spec: { podSelector: { matchLabels: { app: "locked" } }, policyTypes: ["Ingress"] } },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: "tr", name: "deny-out" }, spec: { podSelector: { matchLabels: { app: "jailed" } }, policyTypes: ["Egress"] } },
];

/** What each backend's underlay hop says of its port and header. */
const UNDERLAY: Record<string, RegExp[]> = {
  tapnet: [/UDP 8287 is tapnet's own format/, /tapnet header +version 1, flags 0, frame id .*, frame length \d+ B/, /sealed +the cluster has a secret/],
  udp: [/UDP 8285 is flannel's udp backend/, /no tunnel header: the UDP payload is the pod's IPv4 packet itself/],
  vxlan: [/UDP 8472 is VXLAN as flannel sets it up/, /VXLAN +flags 0x08 \(I: the VNI is valid\), VNI 1 /, /Inner Ethernet +\S+ \(node1's VTEP\) → \S+ \(node2's VTEP\)/],
};

/** Registers the trace checks in the calling describe, against `lab`. */
export function traceChecks(lab: SharedLab): void {
  const { backend, prefix } = lab;
  /** The receiving switch merges first on the wire-compatible backends. */
  const M = backend === "tapnet" ? [] : ["merge"];
  let web = "";
  let near = "";
  const trace = async (args: string[]) => {
    const r = await tapnet(["trace", "--prefix", prefix, ...args]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  /** Traces until `want` is in the output (a policy or Service takes effect a moment after apply), at most 10 s. */
  const traceUntil = async (args: string[], want: RegExp) => {
    const t0 = Date.now();
    for (;;) {
      const out = await trace(args);
      if (want.test(out) || Date.now() - t0 > 10_000) return out;
    }
  };

  let netns: string[] = [];
  beforeAll(async () => {
    await manifests(prefix, "apply", OBJECTS);
    const pods = await waitForPods(prefix, ["tr/web", "tr/locked", "tr/jailed", "tr/near"]);
    web = pods.get("tr/web")!.ip;
    near = pods.get("tr/near")!.ip;
    netns = [...pods.values()].filter((p) => p.namespace === "tr").map((p) => p.netns);
  }, 60_000);
  // The lab as it was for the checks after these: the namespace deleted, its pods gone from the switches.
  afterAll(async () => {
    await manifests(prefix, "delete", OBJECTS);
    const t0 = Date.now();
    for (;;) {
      const said = await Promise.all(switchSockets(lab).map((sock) => rpcCall<{ pods: { namespace?: string }[] }>(sock, "status", {})));
      if (!said.some((st) => st.pods.some((p) => p.namespace === "tr")) && !netns.some((n) => existsSync(`/run/netns/${n}`))) break;
      if (Date.now() - t0 > 30_000) throw new Error(`the tr namespace's pods are still on the switches or their namespaces still there 30 s after tapnet delete`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 60_000);

  it("follows a ping across nodes through both switches and the underlay datagram between them, both ways", async () => {
    const out = await trace(["--from", "node1-pod1", "--to", "node2-pod1"]);
    expect(out).toContain("ping: 1 of 1 answered");
    expect(perNode(hops(out))).toEqual({
      node1: ["read", "route", "tunnel-out", "underlay", ...M, "deliver", "port-out"],
      node2: [...M, "deliver", "port-out", "read", "route", "tunnel-out", "underlay"],
    });
    expect(out).toMatch(/node1 +route +to node2: leaves this node through the tunnel/);
    expect(out).toContain("TTL 64 → 63 (a router's hop)");
    if (backend === "tapnet") {
      expect(out).toMatch(/IPv4 +10\.244\.1\.2 → 10\.244\.2\.2, TTL 62 /); // as node2's pod gets it
      expect(out).toMatch(/Ethernet +\S+ \(node2's gateway, tapnet0\) → \S+ \(node2-pod1\)/);
    } else {
      // merge takes the frame from the datagram, deliver routes it to the pod.
      const eth = backend === "udp" ? "Ethernet header written: \\S+ \\(node2's gateway, tapnet0\\) → \\S+ \\(node2-pod1\\)"
        : "source MAC \\S+ \\(node1's VTEP\\) → \\S+ \\(node2's gateway, tapnet0\\)\\n.*destination MAC \\S+ \\(node2's VTEP\\) → \\S+ \\(node2-pod1\\)";
      expect(out).toMatch(new RegExp(`node2 +deliver +to port \\d+ \\(node2-pod1\\)\\n.*TTL 62\\n.*${eth}\\n.*TTL 63 → 62 \\(a router's hop\\)`));
      if (backend === "udp") expect(out).toContain("Ethernet        none yet: flannel's udp carries the IPv4 packet alone, and deliver writes this header");
    }
    expect(out).toMatch(/node2 +port-out +written to port \d+ \(node2-pod1\): the pod reads it/);
    expect(out).toMatch(/node1 +underlay +on the wire to node2: 192\.168\.56\.11:\d+ → 192\.168\.56\.12:\d+ UDP/);
    expect(out).toMatch(/Outer IPv4 +192\.168\.56\.11 → 192\.168\.56\.12, protocol 17 \(UDP\), TTL 64, \d+ B: .*the node's kernel writes this header \(shown as built from the switch socket's addresses/);
    for (const re of UNDERLAY[backend]) expect(out).toMatch(re);
    expect(out).toMatch(/bytes: virtio_net_hdr 0-9 · Ethernet 10-23 · IPv4 24-43 · ICMP 44-51 · data 52-/);
  });

  it("follows a ping on one node through its bridge", async () => {
    expect(hops(await trace(["--from", "node1-pod1", "--to", "node1-pod2"]))).toEqual(["node1 read", "node1 bridge", "node1 port-out", "node1 read", "node1 bridge", "node1 port-out"]);
  });

  it("names the Service's translation where conntrack makes it, and the reply's reverse translation", async () => {
    const out = await traceUntil(["--from", "node1-pod1", "--to", SERVICE_IP, "--proto", "tcp", "--port", "80"], /reverse translation/);
    expect(perNode(hops(out))).toEqual({
      node1: ["read", "conntrack", "route", "tunnel-out", "underlay", ...M, "deliver", "conntrack", "port-out"],
      node2: [...M, "deliver", "port-out", "read", "route", "tunnel-out", "underlay"],
    });
    expect(out).toContain(`node1    conntrack      service translation: ${SERVICE_IP}:80 → ${web}:8080 (tr/web:http): kube-proxy's DNAT, done in the switch's conntrack`);
    expect(out).toContain(`node1    conntrack      reverse translation: the reply's source ${web}:8080 → ${SERVICE_IP}:80, the Service's address the client asked for`);
    expect(out).toMatch(/TCP +\d+ → 8080 \[SYN\]/); // as the endpoint gets it
    // An endpoint on the same node: conntrack translates, route takes it to the pod's port.
    const local = await traceUntil(["--from", "node1-pod1", "--to", NEAR_IP, "--proto", "tcp", "--port", "80"], /reverse translation/);
    expect(hops(local)).toEqual(["node1 read", "node1 conntrack", "node1 route", "node1 port-out", "node1 read", "node1 conntrack", "node1 bridge", "node1 port-out"]);
    expect(local).toContain(`node1    conntrack      service translation: ${NEAR_IP}:80 → ${near}:8080 (tr/near:http)`);
    expect(local).toContain(`node1    conntrack      reverse translation: the reply's source ${near}:8080 → ${NEAR_IP}:80`);
  });

  it("names the stage and the drop reason where a NetworkPolicy drops a ping: ingress on the far switch, egress on the near one", async () => {
    const inbound = await traceUntil(["--from", "node1-pod1", "--to", "tr/locked"], /policy_denied_ingress/);
    expect(perNode(hops(inbound))).toEqual({ node1: ["read", "route", "tunnel-out", "underlay"], node2: [...M, "deliver", "conntrack"] });
    expect(inbound).toContain("node2    conntrack      dropped: policy_denied_ingress (a NetworkPolicy isolates the destination pod for ingress and none of its rules allows this flow)");
    const outbound = await traceUntil(["--from", "tr/jailed", "--to", "node2-pod1"], /policy_denied_egress/);
    expect(hops(outbound)).toEqual(["node1 read", "node1 conntrack"]);
    expect(outbound).toContain("node1    conntrack      dropped: policy_denied_egress (a NetworkPolicy isolates the source pod for egress and none of its rules allows this flow)");
  });

  it("names the refusal for an address no node has, and follows the ICMP error the switch sends back in its place", async () => {
    const out = await trace(["--from", "node1-pod1", "--to", "10.244.200.9"]);
    expect(hops(out)).toEqual(["node1 read", "node1 route", "node1 gateway", "node1 port-out"]);
    expect(out).toContain("node1    route          refused: cluster_unreachable (no node owns this cluster address); the gateway answers with an ICMP error");
    expect(out).toContain("node1    gateway        the ICMP error, made in the frame's place, goes back to port 1 (node1-pod1)");
    expect(out).toContain("replaced: the switch answers with an ICMP destination unreachable from 10.244.1.1, quoting the packet");
  });

  it("hands a ping to the outside to the node's kernel through tapnet0, names its masquerade, and follows the reply back", async () => {
    const out = await trace(["--from", "node1-pod1", "--to", "203.0.113.2"]);
    expect(out).toContain("ping: 1 of 1 answered");
    expect(hops(out)).toEqual(["node1 read", "node1 bridge", "node1 port-out", "node1 read", "node1 bridge", "node1 port-out"]);
    expect(out).toContain("node1    port-out       handed to node1's kernel through tapnet0: beyond the cluster, the kernel routes it on");
    expect(out).toContain(`node1's kernel masquerades it: nft table ip tapnet, chain postrouting, "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 ip daddr != { 192.168.56.11, 192.168.56.12 } masquerade"`);
    expect(out).toContain("node1    read           in from node1's kernel through tapnet0: from beyond the cluster, the masquerade undone (for 10.244.1.2 again)");
    // The address it becomes: node1's own route to the outside (trace.egress), as the kernel chose it.
    expect(out).toMatch(/source 10\.244\.1\.2 becomes 203\.0\.113\.1 \(node1's \S+\)/);
  });

  if (backend !== "tapnet") return;

  it("gives the same hops as JSON", async () => {
    const text = await trace(["--from", "node1-pod1", "--to", "node1-pod2"]);
    const j = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node1-pod2", "--json"]);
    expect(j.code, j.stderr).toBe(0);
    const parsed = JSON.parse(j.stdout) as { hops: { node: string; stage: string }[]; switches: { node: string; records: unknown[] }[] };
    expect(parsed.hops.map((h) => `${h.node} ${h.stage}`)).toEqual(hops(text));
    expect(parsed.switches.map((s) => s.node)).toEqual(["node1", "node2"]);
    expect(parsed.switches[1].records).toEqual([]);
  });

  it("writes the journey as pcapng that tshark reads: an interface per place, the underlay's raw IPv4 among them, the hops' comments, one packet id per packet", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tapnet-trace-"));
    try {
      const file = join(dir, "trace.pcapng");
      const r = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--pcapng", file]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`wrote ${file}: 12 packets, one interface per place they were seen\n`);
      const t = await runCmd("tshark", ["-r", file, "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name", "-e", "frame.packet_id", "-e", "ip.ttl", "-e", "icmp.type", "-e", "udp.dstport", "-e", "frame.comment"]);
      expect(t.code, t.stderr).toBe(0);
      const rows = t.stdout.trim().split("\n").map((l) => l.split("|"));
      expect(rows.map((x) => x[0])).toEqual([
        "node1/tap:node1-pod1", "node1/route", "node1/tunnel-out", "node1/underlay", "node2/deliver", "node2/tap:node2-pod1",
        "node2/tap:node2-pod1", "node2/route", "node2/tunnel-out", "node2/underlay", "node1/deliver", "node1/tap:node1-pod1",
      ]);
      expect(rows.map((x) => x[1])).toEqual(["1", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", "2"]);
      // The underlay: the outer IPv4 header (tshark needs the Lua dissector to read on into the tapnet format).
      expect(rows.map((x) => x[2])).toEqual(["64", "63", "63", "64", "62", "62", "64", "63", "63", "64", "62", "62"]);
      expect(rows.map((x) => x[3])).toEqual(["8", "8", "8", "", "8", "8", "0", "0", "0", "", "0", "0"]);
      expect(rows[3][4]).toBe("8287");
      expect(rows[1][5]).toBe("route: to node2: leaves this node through the tunnel,TTL 64 → 63 (a router's hop)");
      expect(rows[3][5]).toMatch(/^underlay: on the wire to node2: 192\.168\.56\.11:8287 → 192\.168\.56\.12:8287 UDP, tapnet, sealed, \d+ B,Outer IPv4 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("follows a TCP probe: the SYN across, and the RST of a port nobody listens on back", async () => {
    const out = await trace(["--from", "node1-pod1", "--to", "node2-pod1", "--proto", "tcp", "--port", "7777"]);
    expect(out).toContain("TCP to port 7777, 1 connection");
    expect(out).toContain("tcp: 0 of 1 connected");
    expect(perNode(hops(out))).toEqual({
      node1: ["read", "route", "tunnel-out", "underlay", "deliver", "port-out"],
      node2: ["deliver", "port-out", "read", "route", "tunnel-out", "underlay"],
    });
    expect(out).toMatch(/TCP +\d+ → 7777 \[SYN\]/);
    expect(out).toMatch(/TCP +7777 → \d+ \[ACK,RST\]/);
    const bad = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--proto", "udp"]);
    expect([bad.code, bad.stderr]).toEqual([2, "tapnet: --proto udp needs --port P, the destination port\n"]);
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
    // The refusals all at once: each is a command of its own, and most of its time is Node starting.
    const [bad, nopod, which] = await Promise.all([
      tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "eth9"]),
      tapnet(["capture", "--prefix", prefix, "--node", "node1", "--where", "port:nosuch"]),
      tapnet(["capture", "--prefix", prefix, "--where", "underlay"]),
    ]);
    expect([bad.code, bad.stderr]).toEqual([2, 'tapnet: --where must be underlay or port:POD, not "eth9"\n']);
    expect([nopod.code, nopod.stderr]).toEqual([2, "tapnet: --where port:nosuch: node1 has no pod nosuch (it has: node1-pod1, node1-pod2, jailed, near)\n"]);
    expect([which.code, which.stderr]).toEqual([2, "tapnet: --node picks the node to capture on (the lab has node1, node2)\n"]);
  });

  it("leaves every switch disarmed, and refuses pods that are not there", async () => {
    for (const n of ["node1", "node2"]) {
      const ctl = `/run/tapnet/${prefix}/${n}.sock`;
      expect(await rpcCall(ctl, "trace.read", {})).toEqual({ node: n, records: [], lost: 0, armed: 0 });
    }
    const [bad, bad2] = await Promise.all([
      tapnet(["trace", "--prefix", prefix, "--from", "nosuch", "--to", "node2-pod1"]),
      tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "nosuch"]),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("tapnet: --from nosuch: no such pod on node1, node2 (tapnet pod list shows them)\n");
    expect(bad2.code).toBe(2);
    expect(bad2.stderr).toBe("tapnet: --to nosuch: neither a pod on node1, node2 nor an IPv4 address\n");
  });
}

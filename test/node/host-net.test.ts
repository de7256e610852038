// The node's kernel as the node list changes: the ip lines that add and remove remote nodes'
// routes and neighbours and route the service CIDR (golden), the masquerade and NodePort rules'
// nft script and iptables chain, and what HostNet.update and setNodePorts run, in order, as
// nodes join, change and leave and NodePorts come and go (the system's tools replaced by a
// recorder; nothing here touches a kernel, but `nft -c` checks the scripts in a throwaway
// network namespace where nft is installed).
import { execFileSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { ClusterConfig, NodeConfig } from "../../src/node/config.ts";
import { parseCidr, type Cidr } from "../../src/wire/cidr.ts";
import { parseIpv4Address } from "../../src/wire/ipv4.ts";

/** Every command run: the tool, its arguments, and what it was given on stdin. */
const ran: { cmd: string; args: string[]; input?: string }[] = [];
let installed = new Set(["nft"]);
/** Commands (by "cmd arg0") that fail. */
let failing = new Set<string>();

vi.mock("../../src/node/exec.ts", async (importOriginal) => {
  const run = async (cmd: string, args: string[], opts: { input?: string } = {}) => {
    ran.push({ cmd, args, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    if (failing.has(`${cmd} ${args[0]}`)) throw new Error(`${cmd} failed`);
    return "";
  };
  return {
    ...(await importOriginal<typeof import("../../src/node/exec.ts")>()),
    run,
    ipBatch: (lines: string[]) => run("ip", ["-batch", "-"], { input: lines.join("\n") + "\n" }),
    which: (cmd: string) => (installed.has(cmd) ? `/usr/sbin/${cmd}` : undefined),
  };
});

const { HostNet, iptablesRules, nftScript, nodeAddresses, routeChanges, serviceRoute, sortNodePorts } = await import("../../src/node/host-net.ts");
type NodePort = import("../../src/node/host-net.ts").NodePort;

const cidr = (s: string) => parseCidr(s) as Cidr;
const node = (i: number, mac = `0e:00:c0:a8:38:0${i}`): NodeConfig => ({ name: `node${i}`, address: parseIpv4Address(`192.168.56.1${i}`)!, podCidr: cidr(`10.244.${i}.0/24`), vtepMac: mac });
const [N1, N2, N3, N4] = [1, 2, 3, 4].map((i) => node(i));
const CONFIG: ClusterConfig = { clusterCidr: cidr("10.244.0.0/16"), serviceCidr: cidr("10.96.0.0/12"), nodeSubnetPrefix: 24, mtu: 1500, podMtu: 1500, backend: { type: "tapnet", port: 8287, vni: 1 }, nodes: [N1, N2] };
const warn = vi.fn();
const log = { info: () => {}, warn, error: () => {} } as never;
/** Node1's service route: via 10.96.0.0, whose neighbour is tapnet0's own MAC (0a:58 + 10.244.1.1). */
const SERVICE_ROUTE = [
  "neigh replace 10.96.0.0 lladdr 0a:58:0a:f4:01:01 dev tapnet0 nud permanent",
  "route replace 10.96.0.0/12 via 10.96.0.0 dev tapnet0 onlink",
];

beforeEach(() => {
  ran.length = 0;
  installed = new Set(["nft"]);
  failing = new Set();
  warn.mockClear();
});

describe("serviceRoute", () => {
  it("routes the service CIDR via its network address onlink, that address's neighbour the gateway MAC (lower case)", () => {
    expect(serviceRoute(cidr("10.96.0.0/12"), "0A:58:0A:F4:01:01", "tapnet0")).toEqual(SERVICE_ROUTE);
    expect(serviceRoute(cidr("172.20.0.0/16"), "0a:58:0a:f4:02:01", "gw0")).toEqual([
      "neigh replace 172.20.0.0 lladdr 0a:58:0a:f4:02:01 dev gw0 nud permanent", "route replace 172.20.0.0/16 via 172.20.0.0 dev gw0 onlink",
    ]);
  });
});

describe("routeChanges", () => {
  it("adds a route and a permanent neighbour for each remote node, none for this one", () => {
    expect(routeChanges([], [N1, N2, N3], "node1", "tapnet0")).toEqual({
      del: [],
      add: [
        "neigh replace 10.244.2.0 lladdr 0e:00:c0:a8:38:02 dev tapnet0 nud permanent",
        "route replace 10.244.2.0/24 via 10.244.2.0 dev tapnet0 onlink",
        "neigh replace 10.244.3.0 lladdr 0e:00:c0:a8:38:03 dev tapnet0 nud permanent",
        "route replace 10.244.3.0/24 via 10.244.3.0 dev tapnet0 onlink",
      ],
    });
  });

  it("removes the route and neighbour of a node gone, adds a new one's, leaves the rest alone, whatever the order", () => {
    expect(routeChanges([N1, N2, N3], [N4, N3, N1], "node1", "tapnet0")).toEqual({
      del: ["route del 10.244.2.0/24 via 10.244.2.0 dev tapnet0", "neigh del 10.244.2.0 dev tapnet0"],
      add: ["neigh replace 10.244.4.0 lladdr 0e:00:c0:a8:38:04 dev tapnet0 nud permanent", "route replace 10.244.4.0/24 via 10.244.4.0 dev tapnet0 onlink"],
    });
  });

  it("a pod CIDR taken over by another node (another VTEP MAC) is replaced, not removed; the same list is no change", () => {
    const other = { ...node(5), podCidr: N2.podCidr };
    expect(routeChanges([N1, N2], [N1, other], "node1", "tapnet0")).toEqual({
      del: [],
      add: ["neigh replace 10.244.2.0 lladdr 0e:00:c0:a8:38:05 dev tapnet0 nud permanent", "route replace 10.244.2.0/24 via 10.244.2.0 dev tapnet0 onlink"],
    });
    expect(routeChanges([N1, N2], [N2, { ...N1 }], "node1", "tapnet0")).toEqual({ del: [], add: [] });
    expect(routeChanges([N1, N2], [N1, { ...N2, vtepMac: N2.vtepMac.toUpperCase() }], "node1", "tapnet0")).toEqual({ del: [], add: [] });
  });
});

describe("the masquerade rule", () => {
  it("leaves the cluster and every node's address alone, in address order", () => {
    const addrs = nodeAddresses([N3, N1, N2]);
    expect(addrs).toEqual(["192.168.56.11", "192.168.56.12", "192.168.56.13"]);
    expect(nftScript("10.244.0.0/16", addrs)).toBe([
      "table ip tapnet",
      "delete table ip tapnet",
      "table ip tapnet {",
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      "    ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 ip daddr != { 192.168.56.11, 192.168.56.12, 192.168.56.13 } masquerade",
      "  }",
      "}",
      "",
    ].join("\n"));
    expect(iptablesRules("10.244.0.0/16", addrs.slice(0, 2))).toEqual([
      ["-d", "10.244.0.0/16", "-j", "RETURN"], ["-d", "192.168.56.11", "-j", "RETURN"], ["-d", "192.168.56.12", "-j", "RETURN"], ["-j", "MASQUERADE"],
    ]);
  });
});

describe("HostNet.update", () => {
  const nft = (addrs: string[]) => ({ cmd: "nft", args: ["-f", "-"], input: nftScript("10.244.0.0/16", addrs) });
  const batch = (lines: string[]) => ({ cmd: "ip", args: ["-batch", "-"], input: lines.join("\n") + "\n" });

  it("nft: a node joins (routes, then the table replaced), its MAC changes (routes only), it leaves (removed, table replaced), the same list again (nothing)", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2]);
    expect(ran).toEqual([batch([...SERVICE_ROUTE, ...routeChanges([], [N2], "node1", "tapnet0").add]), nft(["192.168.56.11", "192.168.56.12"])]);
    expect(h.masquerade).toBe("nft");

    ran.length = 0;
    await h.update([N1, N2, N3]);
    expect(ran).toEqual([batch(routeChanges([], [N3], "node1", "tapnet0").add), nft(["192.168.56.11", "192.168.56.12", "192.168.56.13"])]);

    ran.length = 0;
    await h.update([N1, N2, { ...N3, vtepMac: "0e:00:00:00:00:33" }]);
    expect(ran).toEqual([batch([
      "neigh replace 10.244.3.0 lladdr 0e:00:00:00:00:33 dev tapnet0 nud permanent", "route replace 10.244.3.0/24 via 10.244.3.0 dev tapnet0 onlink",
    ])]);

    ran.length = 0;
    await h.update([N1, N2]);
    expect(ran).toEqual([
      { cmd: "ip", args: ["-force", "-batch", "-"], input: "route del 10.244.3.0/24 via 10.244.3.0 dev tapnet0\nneigh del 10.244.3.0 dev tapnet0\n" },
      nft(["192.168.56.11", "192.168.56.12"]),
    ]);
    expect(h.nodes).toEqual([N1, N2]);

    ran.length = 0;
    await h.update([N2, N1]);
    expect(ran).toEqual([]);
  });

  it("a route already gone when its node leaves is only logged; the rest goes on", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2, N3]);
    failing.add("ip -force");
    ran.length = 0;
    await h.update([N1, N2]);
    expect(ran.map((r) => r.cmd)).toEqual(["ip", "nft"]);
    expect(h.nodes).toEqual([N1, N2]);
  });

  it("iptables, where there is no nft: the chain made once and hooked once, then rebuilt in place when the addresses change", async () => {
    installed = new Set(["iptables"]);
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    const ipt = (...a: string[]) => ({ cmd: "iptables", args: ["-w", "-t", "nat", ...a] });
    await h.update([N1, N2]);
    expect(ran.slice(1)).toEqual([
      ipt("-D", "POSTROUTING", "-s", "10.244.0.0/16", "-j", "TAPNET-MASQ"), ipt("-F", "TAPNET-MASQ"), ipt("-X", "TAPNET-MASQ"),
      ipt("-N", "TAPNET-MASQ"),
      ...iptablesRules("10.244.0.0/16", ["192.168.56.11", "192.168.56.12"]).map((r) => ipt("-A", "TAPNET-MASQ", ...r)),
      ipt("-A", "POSTROUTING", "-s", "10.244.0.0/16", "-j", "TAPNET-MASQ"),
    ]);
    expect(h.masquerade).toBe("iptables");
    ran.length = 0;
    await h.update([N1, N2, N3]);
    expect(ran.slice(1)).toEqual([
      ipt("-F", "TAPNET-MASQ"),
      ...iptablesRules("10.244.0.0/16", ["192.168.56.11", "192.168.56.12", "192.168.56.13"]).map((r) => ipt("-A", "TAPNET-MASQ", ...r)),
    ]);
  });

  it("tearDown removes the table and forgets the nodes: a later update writes routes and table again", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update(CONFIG.nodes);
    const first = [...ran];
    await h.tearDown();
    expect(ran.at(-1)).toEqual({ cmd: "nft", args: ["delete", "table", "ip", "tapnet"] });
    expect(h.nodes).toEqual([]);
    ran.length = 0;
    await h.update(CONFIG.nodes);
    expect(ran).toEqual(first);
  });
});

const tcp = (nodePort: number, clusterIp: string, port: number): NodePort => ({ protocol: "tcp", nodePort, clusterIp, port });
const udp = (nodePort: number, clusterIp: string, port: number): NodePort => ({ protocol: "udp", nodePort, clusterIp, port });

describe("NodePort rules", () => {
  it("sortNodePorts: by protocol then port, the first of two on one port kept, the bad ones apart", () => {
    const bad = [tcp(0, "10.96.0.1", 80), udp(30001, "10.96.0.300", 53), tcp(30002, "10.96.0.1", 65536), { ...tcp(30003, "10.96.0.1", 1), protocol: "sctp" } as never];
    expect(sortNodePorts([udp(30053, "10.96.0.10", 53), tcp(30443, "10.96.0.2", 443), bad[0], tcp(30080, "10.96.0.1", 80), tcp(30443, "10.96.0.3", 8443), ...bad.slice(1)])).toEqual({
      ok: [tcp(30080, "10.96.0.1", 80), tcp(30443, "10.96.0.2", 443), udp(30053, "10.96.0.10", 53)],
      bad,
    });
  });

  it("nftScript: prerouting and output chains at dstnat, one DNAT per port, loopback left alone on output; none without ports", () => {
    const ports = sortNodePorts([udp(30053, "10.96.0.10", 53), tcp(30080, "10.96.0.1", 80)]).ok;
    expect(nftScript("10.244.0.0/16", ["192.168.56.11"], ports)).toBe([
      "table ip tapnet",
      "delete table ip tapnet",
      "table ip tapnet {",
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      "    ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 ip daddr != { 192.168.56.11 } masquerade",
      "  }",
      "  chain prerouting {",
      "    type nat hook prerouting priority dstnat; policy accept;",
      "    fib daddr type local tcp dport 30080 dnat to 10.96.0.1:80",
      "    fib daddr type local udp dport 30053 dnat to 10.96.0.10:53",
      "  }",
      "  chain output {",
      "    type nat hook output priority -100; policy accept;",
      "    ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 30080 dnat to 10.96.0.1:80",
      "    ip daddr != 127.0.0.0/8 fib daddr type local udp dport 30053 dnat to 10.96.0.10:53",
      "  }",
      "}",
      "",
    ].join("\n"));
    expect(nftScript("10.244.0.0/16", ["192.168.56.11"], [])).toBe(nftScript("10.244.0.0/16", ["192.168.56.11"]));
    expect(nftScript("10.244.0.0/16", ["192.168.56.11"])).not.toMatch(/prerouting|output/);
  });

  // nft's own check of the scripts (parse and kernel validation, nothing applied), in a network
  // namespace of its own that goes when nft exits: catches what a golden text cannot, such as
  // nft 1.0.6 refusing `priority dstnat` on the output hook.
  const hasNft = (process.env.PATH ?? "").split(":").some((d) => { try { accessSync(`${d}/nft`, constants.X_OK); return true; } catch { return false; } });
  it.skipIf(!hasNft || process.getuid?.() !== 0)("the kernel's nft accepts the scripts, and refuses a broken one (nft -c in a throwaway namespace)", () => {
    const check = (script: string) => execFileSync("unshare", ["-n", "nft", "-c", "-f", "-"], { input: script, stdio: ["pipe", "pipe", "pipe"] });
    const many = Array.from({ length: 50 }, (_, i) => (i % 2 ? udp : tcp)(30000 + i, `10.96.${i}.1`, 1 + i));
    for (const ports of [[], [tcp(30080, "10.96.0.1", 80)], sortNodePorts(many).ok]) {
      expect(() => check(nftScript("10.244.0.0/16", ["192.168.56.11", "192.168.56.12"], ports))).not.toThrow();
    }
    expect(() => check(nftScript("10.244.0.0/16", ["192.168.56.11"], [tcp(70000, "10.96.0.1", 80)]))).toThrow();
  });

  const nft = (addrs: string[], ports: NodePort[] = []) => ({ cmd: "nft", args: ["-f", "-"], input: nftScript("10.244.0.0/16", addrs, ports) });
  const TWO = ["192.168.56.11", "192.168.56.12"];

  it("setNodePorts before the first update: kept, and written with the masquerade rule in the one table", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80)]);
    expect(ran).toEqual([]);
    await h.update([N1, N2]);
    expect(ran.at(-1)).toEqual(nft(TWO, [tcp(30080, "10.96.0.1", 80)]));
    ran.length = 0;
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80)]);
    expect(ran).toEqual([]);
  });

  it("setNodePorts after: the table rewritten only when the ports changed (not for another order), back to none, and again after a failed write", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2]);
    ran.length = 0;
    const ports = [udp(30053, "10.96.0.10", 53), tcp(30080, "10.96.0.1", 80)];
    await h.setNodePorts(ports);
    expect(ran).toEqual([nft(TWO, sortNodePorts(ports).ok)]);
    await h.setNodePorts([...ports].reverse());
    await h.setNodePorts(ports);
    expect(ran).toHaveLength(1);

    // A node joins: the table rewritten with the new addresses, the ports kept.
    await h.update([N1, N2, N3]);
    expect(ran.at(-1)).toEqual(nft([...TWO, "192.168.56.13"], sortNodePorts(ports).ok));

    ran.length = 0;
    await h.setNodePorts([]);
    expect(ran).toEqual([nft([...TWO, "192.168.56.13"])]);

    ran.length = 0;
    failing.add("nft -f");
    await expect(h.setNodePorts(ports)).rejects.toThrow("nft failed");
    failing.clear();
    await h.setNodePorts(ports);
    expect(ran).toHaveLength(2);
    expect(ran[1]).toEqual(nft([...TWO, "192.168.56.13"], sortNodePorts(ports).ok));
  });

  it("bad ports are left out with a warning naming them; the good ones written", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2]);
    ran.length = 0;
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80), tcp(30081, "not-an-address", 80)]);
    expect(ran).toEqual([nft(TWO, [tcp(30080, "10.96.0.1", 80)])]);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining("NodePorts left out"), { nodePorts: ["tcp/30081 -> not-an-address:80"] });
  });

  it("iptables: NodePorts are not written; one warning that they need nft", async () => {
    installed = new Set(["iptables"]);
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2]);
    ran.length = 0;
    await h.setNodePorts([]);
    expect(warn).not.toHaveBeenCalled();
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80)]);
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80), tcp(30081, "10.96.0.1", 81)]);
    expect(ran).toEqual([]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/NodePorts need nft/);
  });

  it("tearDown removes the table, NodePorts and all; the next setUp's update routes the service CIDR again and writes the ports", async () => {
    const h = new HostNet(CONFIG, N1, "tapnet0", log);
    await h.update([N1, N2]);
    await h.setNodePorts([tcp(30080, "10.96.0.1", 80)]);
    ran.length = 0;
    await h.tearDown();
    expect(ran).toEqual([{ cmd: "nft", args: ["delete", "table", "ip", "tapnet"] }]);
    ran.length = 0;
    await h.update([N1, N2]);
    expect(ran[0].input).toContain(SERVICE_ROUTE.join("\n"));
    expect(ran[1]).toEqual(nft(TWO, [tcp(30080, "10.96.0.1", 80)]));
    ran.length = 0;
    await h.update([N1, N2, N3]);
    expect(ran[0].input).not.toContain("10.96.0.0");
  });
});

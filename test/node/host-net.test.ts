// The node's kernel as the node list changes: the ip lines that add and remove remote nodes'
// routes and neighbours (golden), the masquerade rule's nft script and iptables chain, and
// what HostNet.update runs, in order, as nodes join, change and leave (the system's tools
// replaced by a recorder; nothing here touches a kernel).
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

const { HostNet, iptablesRules, nftScript, nodeAddresses, routeChanges } = await import("../../src/node/host-net.ts");

const cidr = (s: string) => parseCidr(s) as Cidr;
const node = (i: number, mac = `0e:00:c0:a8:38:0${i}`): NodeConfig => ({ name: `node${i}`, address: parseIpv4Address(`192.168.56.1${i}`)!, podCidr: cidr(`10.244.${i}.0/24`), vtepMac: mac });
const [N1, N2, N3, N4] = [1, 2, 3, 4].map((i) => node(i));
const CONFIG: ClusterConfig = { clusterCidr: cidr("10.244.0.0/16"), nodeSubnetPrefix: 24, mtu: 1500, podMtu: 1500, backend: { type: "tapnet", port: 8287, vni: 1 }, nodes: [N1, N2] };
const log = { info: () => {}, warn: vi.fn(), error: () => {} } as never;

beforeEach(() => {
  ran.length = 0;
  installed = new Set(["nft"]);
  failing = new Set();
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
    expect(ran).toEqual([batch(routeChanges([], [N2], "node1", "tapnet0").add), nft(["192.168.56.11", "192.168.56.12"])]);
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

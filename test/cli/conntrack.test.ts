/**
 * `tapnet conntrack list` as a user runs it, against stand-in switches: control sockets served
 * here by an RpcServer with the switch's own conntrack methods (node/flow-rpc.ts) over a fixed
 * flow table. Golden lines for every kind of flow (conntrack -L's layout), -o wide and json, one
 * switch and a lab's every switch (a journal written under /run/tapnet/<prefix>, as a lab
 * writes it; one of its switches dead), and every error message. No namespaces or devices.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { switchTargets } from "../../src/cli/commands/cluster-client.ts";
import { conntrackListCommand, formatFlow } from "../../src/cli/commands/conntrack.ts";
import { commandHelp } from "../../src/cli/args.ts";
import { labDir, readLabState } from "../../src/lab/plan.ts";
import type { FlowInfo } from "../../src/switch/conntrack/flow-info.ts";
import { captureCli, flowSwitch } from "./cli-support.ts";

const io = captureCli("tapnet-cli-conntrack-");
const cli = io.cli;

const TCP_TO_SERVICE: FlowInfo = {
  protocol: "tcp", proto: 6, state: "established", expiresIn: 86397,
  original: { src: "10.244.1.2", dst: "10.96.0.10", sport: 40000, dport: 80 },
  reply: { src: "10.244.2.3", dst: "10.244.1.2", sport: 8080, dport: 40000 },
  packets: [3, 2], bytes: [180, 120], service: "default/web:80", verdict: "allowed",
};
const UDP_DENIED: FlowInfo = {
  protocol: "udp", proto: 17, state: "new", expiresIn: 30,
  original: { src: "10.244.1.2", dst: "10.244.2.3", sport: 5353, dport: 53 },
  reply: { src: "10.244.2.3", dst: "10.244.1.2", sport: 53, dport: 5353 },
  packets: [1, 0], bytes: [60, 0], verdict: "denied",
};
const PING: FlowInfo = {
  protocol: "icmp", proto: 1, state: "established", expiresIn: 29,
  original: { src: "10.244.1.2", dst: "10.244.2.3", sport: 77, dport: 8 },
  reply: { src: "10.244.2.3", dst: "10.244.1.2", sport: 77, dport: 0 },
  packets: [4, 4], bytes: [336, 336], verdict: "allowed",
};
const GRE: FlowInfo = {
  protocol: "other", proto: 47, state: "new", expiresIn: 599,
  original: { src: "10.244.1.2", dst: "10.244.2.3", sport: 0, dport: 0 },
  reply: { src: "10.244.2.3", dst: "10.244.1.2", sport: 0, dport: 0 },
  packets: [2, 1], bytes: [200, 100], verdict: "allowed",
};
const CLOSING_HAIRPIN: FlowInfo = {
  protocol: "tcp", proto: 6, state: "closing", expiresIn: 118,
  original: { src: "10.244.1.2", dst: "10.96.0.10", sport: 40001, dport: 80 },
  reply: { src: "10.244.1.2", dst: "10.244.1.1", sport: 8080, dport: 40001 },
  packets: [9, 0], bytes: [900, 0], service: "default/web:80", verdict: "allowed",
};

/** A control socket with a switch's conntrack methods over `flows`. */
const fakeSwitch = (path: string, flows: FlowInfo[]) => flowSwitch(io, path, { flows });

describe("formatFlow", () => {
  it("prints each kind of flow as conntrack -L does, with tapnet's marks", () => {
    expect(formatFlow(TCP_TO_SERVICE)).toBe("tcp      6 86397 ESTABLISHED src=10.244.1.2 dst=10.96.0.10 sport=40000 dport=80 src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [service default/web:80]");
    expect(formatFlow(UDP_DENIED)).toBe("udp      17 30 src=10.244.1.2 dst=10.244.2.3 sport=5353 dport=53 [UNREPLIED] src=10.244.2.3 dst=10.244.1.2 sport=53 dport=5353 [DENIED]");
    expect(formatFlow(PING)).toBe("icmp     1 29 src=10.244.1.2 dst=10.244.2.3 type=8 code=0 id=77 src=10.244.2.3 dst=10.244.1.2 type=0 code=0 id=77");
    expect(formatFlow(GRE)).toBe("unknown  47 599 src=10.244.1.2 dst=10.244.2.3 src=10.244.2.3 dst=10.244.1.2");
    expect(formatFlow(CLOSING_HAIRPIN)).toBe("tcp      6 118 CLOSING src=10.244.1.2 dst=10.96.0.10 sport=40001 dport=80 [UNREPLIED] src=10.244.1.2 dst=10.244.1.1 sport=8080 dport=40001 [service default/web:80]");
  });

  it("adds each direction's packets and bytes with wide", () => {
    expect(formatFlow(TCP_TO_SERVICE, true)).toBe("tcp      6 86397 ESTABLISHED src=10.244.1.2 dst=10.96.0.10 sport=40000 dport=80 packets=3 bytes=180 src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 packets=2 bytes=120 [service default/web:80]");
    expect(formatFlow(UDP_DENIED, true)).toBe("udp      17 30 src=10.244.1.2 dst=10.244.2.3 sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.244.2.3 dst=10.244.1.2 sport=53 dport=5353 packets=0 bytes=0 [DENIED]");
  });
});

describe("conntrack list on one switch", () => {
  it("prints the flows on io.stdout and the count on io.stderr, as conntrack does", async () => {
    const sock = join(io.dir, "node1.sock");
    await fakeSwitch(sock, [TCP_TO_SERVICE, UDP_DENIED, PING]);
    expect(await cli("conntrack", "list", "--control", sock)).toBe(0);
    expect(io.stdout).toBe([formatFlow(TCP_TO_SERVICE), formatFlow(UDP_DENIED), formatFlow(PING)].join("\n") + "\n");
    expect(io.stderr).toBe("tapnet conntrack: 3 flows shown (node1).\n");
    expect(await cli("conntrack", "list", "--control", sock, "-o", "wide")).toBe(0);
    expect(io.stdout.split("\n")[0]).toBe(formatFlow(TCP_TO_SERVICE, true));
    expect(await cli("conntrack", "list", "--control", sock, "-o", "json")).toBe(0);
    expect(JSON.parse(io.stdout)).toEqual([TCP_TO_SERVICE, UDP_DENIED, PING]);
  });

  it("says 0 flows and 1 flow in plain words", async () => {
    const empty = join(io.dir, "empty.sock");
    await fakeSwitch(empty, []);
    expect(await cli("conntrack", "list", "--control", empty)).toBe(0);
    expect(io.stdout).toBe("");
    expect(io.stderr).toBe("tapnet conntrack: 0 flows shown (empty).\n");
    expect(await cli("conntrack", "list", "--control", empty, "-o", "json")).toBe(0);
    expect(JSON.parse(io.stdout)).toEqual([]);
    const one = join(io.dir, "one.sock");
    await fakeSwitch(one, [PING]);
    expect(await cli("conntrack", "list", "--control", one)).toBe(0);
    expect(io.stderr).toBe("tapnet conntrack: 1 flow shown (one).\n");
  });

  it("uses the only switch running here when none is named", () => {
    if (readLabState("tapnet")) return; // a lab tapnet is up on this machine: it would be picked first
    expect(() => switchTargets({ values: {}, positionals: [] }, io.dir)).toThrow(`no lab is up and no switch runs here (no control socket in ${io.dir}): give --control PATH or --node NAME`);
    writeFileSync(join(io.dir, "vm1.sock"), "");
    expect(switchTargets({ values: {}, positionals: [] }, io.dir)).toEqual([{ node: "vm1", path: join(io.dir, "vm1.sock") }]);
    expect(switchTargets({ values: { node: "vm2" }, positionals: [] }, io.dir)).toEqual([{ node: "vm2", path: join(io.dir, "vm2.sock") }]);
    writeFileSync(join(io.dir, "vm2.sock"), "");
    expect(() => switchTargets({ values: {}, positionals: [] }, io.dir)).toThrow("several switches run here (vm1.sock, vm2.sock): say which with --node NAME or --control PATH");
  });
});

describe("conntrack list on a lab", () => {
  const prefix = `cli-conntrack-test-${process.pid}`;
  let made = false;

  beforeEach(() => {
    try {
      mkdirSync(labDir(prefix), { recursive: true });
      made = true;
    } catch {
      made = false; // not root: /run/tapnet is not ours to write (the tests run as root in CI)
    }
  });
  afterEach(() => {
    rmSync(labDir(prefix), { recursive: true, force: true });
  });

  /** A journal with node1 and node2 (live), node3 (its switch gone) and node4 (a plain Linux node). */
  async function lab(): Promise<void> {
    await fakeSwitch(join(io.dir, "node1.sock"), [TCP_TO_SERVICE, PING]);
    await fakeSwitch(join(io.dir, "node2.sock"), [UDP_DENIED]);
    const node = (name: string, control: string) => ({ name, netns: "", address: "", podCidr: "", gateway: "", pid: 1, control, log: "" });
    writeFileSync(join(labDir(prefix), "lab.json"), JSON.stringify({
      prefix, backend: "vxlan", runtime: "node", createdAt: "", namespaces: [], kernelNodes: ["node4"], pods: [],
      nodes: [node("node1", join(io.dir, "node1.sock")), node("node2", join(io.dir, "node2.sock")), node("node3", join(io.dir, "node3.sock")), node("node4", "")],
    }));
  }

  it("lists every switch of the lab, a block each, says which could not be reached, and exits 1", async () => {
    if (!made) return;
    await lab();
    expect(await cli("conntrack", "list", "--prefix", prefix)).toBe(1);
    expect(io.stdout).toBe(`node1:\n${formatFlow(TCP_TO_SERVICE)}\n${formatFlow(PING)}\n\nnode2:\n${formatFlow(UDP_DENIED)}\n`);
    expect(io.stderr).toBe(`tapnet: node3: cannot reach the switch at ${join(io.dir, "node3.sock")}: no switch is running there\ntapnet conntrack: 3 flows shown (node1 2, node2 1).\n`);
    expect(await cli("conntrack", "list", "--prefix", prefix, "-o", "json")).toBe(1);
    expect(JSON.parse(io.stdout)).toEqual([{ node: "node1", ...TCP_TO_SERVICE }, { node: "node1", ...PING }, { node: "node2", ...UDP_DENIED }]);
  });

  it("lists one node of the lab with --node, and names the lab's switches when the node is not one", async () => {
    if (!made) return;
    await lab();
    expect(await cli("conntrack", "list", "--prefix", prefix, "--node", "node2")).toBe(0);
    expect(io.stdout).toBe(`${formatFlow(UDP_DENIED)}\n`);
    expect(io.stderr).toBe("tapnet conntrack: 1 flow shown (node2).\n");
    expect(await cli("conntrack", "list", "--prefix", prefix, "--node", "node9")).toBe(1);
    expect(io.stderr).toBe(`tapnet: the lab ${prefix} has no node node9 (its switches: node1, node2, node3)\n`);
    expect(await cli("conntrack", "list", "--prefix", prefix, "--node", "node4")).toBe(1);
    expect(io.stderr).toBe(`tapnet: node node4 of the lab ${prefix} is a plain Linux node: it runs no switch\n`);
    expect(await cli("conntrack", "list", "--prefix", prefix, "--node", "node3")).toBe(1);
    expect(io.stderr).toBe(`tapnet: cannot reach the switch at ${join(io.dir, "node3.sock")}: no switch is running there\n`);
  });
});

describe("conntrack list: errors and help", () => {
  it.each([
    [["conntrack", "list", "-o", "yaml"], 'tapnet: --output must be one of wide, json, not "yaml"\n'],
    [["conntrack", "list", "--control", "/x.sock", "--node", "n1"], "tapnet: --control and --node each pick the switch: give one of them\n"],
    [["conntrack", "list", "--control", "/x.sock", "--prefix", "lab"], "tapnet: --control and --prefix each pick the switch: give one of them\n"],
    [["conntrack", "list", "extra"], 'tapnet: unexpected argument "extra" (see tapnet conntrack list --help)\n'],
  ])("tapnet %j exits 2 saying so", async (argv, message) => {
    expect(await cli(...argv)).toBe(2);
    expect(io.stderr).toBe(message);
    expect(io.stdout).toBe("");
  });

  it("says when the lab named is not up, when no switch listens, and when a switch has no connection tracking", async () => {
    expect(await cli("conntrack", "list", "--prefix", "cli-conntrack-no-such-lab")).toBe(1);
    expect(io.stderr).toBe("tapnet: no lab cli-conntrack-no-such-lab is up (no journal /run/tapnet/cli-conntrack-no-such-lab/lab.json); start it with tapnet lab up --prefix cli-conntrack-no-such-lab\n");
    expect(await cli("conntrack", "list", "--control", join(io.dir, "none.sock"))).toBe(1);
    expect(io.stderr).toBe(`tapnet: cannot reach the switch at ${join(io.dir, "none.sock")}: no switch is running there\n`);
    const old = join(io.dir, "old.sock");
    await io.serve(old, {});
    expect(await cli("conntrack", "list", "--control", old)).toBe(1);
    expect(io.stderr).toBe(`tapnet: the switch at ${old} has no connection tracking (conntrack.list): is it an older tapnet?\n`);
  });

  it("has help with the line format and examples, and is listed under conntrack", async () => {
    expect(await cli("conntrack", "list", "--help")).toBe(0);
    expect(io.stdout).toBe(commandHelp(conntrackListCommand) + "\n");
    expect(io.stdout).toContain("Usage: tapnet conntrack list [options]");
    expect(io.stdout).toContain("[service default/web:80]");
    expect(io.stdout).toContain("Examples:");
    expect(await cli("conntrack")).toBe(2);
    expect(io.stdout).toContain("Usage: tapnet conntrack <list> [options]");
  });
});

// #13 finding 6, the input faults that need real processes: `tapnet switch` refusing a tunnel the
// kernel will not bind and a control socket in a missing directory, `lab status` as a user who
// cannot read /run/tapnet, and `pod add` into another switch's pod namespace.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { which } from "../../src/node/exec.ts";
import { exited, netnsList, REPO, runCmd, sh, tapnet, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = process.env.TAPNET_LAB_PREFIX ? `${process.env.TAPNET_LAB_PREFIX}-inputs` : uniquePrefix("inputs");
const dir = mkdtempSync(join(tmpdir(), "tapnet-inputs-"));
/** The switches' sockets live in /run/tapnet/<prefix>/, as a lab's do: a directory only root may read. */
const runDir = `/run/tapnet/${prefix}`;
const bareNs = `${prefix}-x`; // a node namespace for switches that must refuse to start
const nodeNs = [`${prefix}-n1`, `${prefix}-n2`];
const podNs = `${prefix}-pa`; // pod pa of switch n1: the namespace switch n2 is asked to take
const freshNs = `${prefix}-mine`; // a namespace of nobody's
const children: ChildProcess[] = [];

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** `tapnet switch ARGS` inside namespace `ns`, to completion (it should refuse to start). */
function switchIn(ns: string, args: string[]) {
  return runCmd("nsenter", [`--net=/run/netns/${ns}`, "--", process.execPath, TAPNET, "switch", ...args], { timeoutMs: 30_000 });
}

function startSwitch(ns: string, args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, "--", process.execPath, TAPNET, "switch", ...args], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  return { child, log: () => log };
}

beforeAll(() => {
  for (const ns of [bareNs, ...nodeNs, freshNs]) sh("ip", ["netns", "add", ns]);
  // lo up, as on any machine: in a namespace with no local address at all, Linux lets a socket bind any address.
  sh("ip", ["-n", bareNs, "link", "set", "lo", "up"]);
});

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGTERM");
      await Promise.race([exited(c), new Promise((r) => setTimeout(r, 10_000))]);
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    }
  }
  for (const ns of [bareNs, ...nodeNs, podNs, freshNs]) if (netnsList().includes(ns)) sh("ip", ["netns", "del", ns]);
  rmSync(dir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe("tapnet switch refuses what it cannot do, in one line, having made nothing", () => {
  // Two nodes, so the switch binds its tunnel to its node's address (one node alone binds any);
  // the udp backend, whose datagrams are not sealed, so the config needs no secret.
  const twoNodes = () => write("two.yaml", "backend: { type: udp, port: 8285 }\nnodes:\n  - name: n1\n    address: 192.0.2.71\n  - name: n2\n    address: 192.0.2.72\n");
  const common = () => ["--config", twoNodes(), "--node", "n1", "--control", join(dir, "x.sock"), "--store", `file:${join(dir, "store-x")}`];

  function expectNothingMade(): void {
    expect(() => sh("ip", ["-n", bareNs, "link", "show", "tapnet0"])).toThrow();
    expect(existsSync(join(dir, "x.sock"))).toBe(false);
  }

  it("names the node's address when it is not on this machine (EADDRNOTAVAIL), exit 1", async () => {
    const r = await switchIn(bareNs, common());
    expect(r.stderr).toBe(`tapnet: node n1's address 192.0.2.71 (nodes[0].address in ${join(dir, "two.yaml")}) is not on this machine: the tunnel cannot bind 192.0.2.71:8285 (EADDRNOTAVAIL)\n`);
    expect(r.code).toBe(1);
    expectNothingMade();
  });

  it("names the port when another program holds it (EADDRINUSE), exit 1", async () => {
    sh("ip", ["-n", bareNs, "addr", "add", "192.0.2.71/32", "dev", "lo"]);
    const holder = spawn("nsenter", [`--net=/run/netns/${bareNs}`, "--", process.execPath, "-e",
      "const s = require('node:dgram').createSocket('udp4'); s.bind(8285, '192.0.2.71', () => console.log('bound'));"], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(holder);
    let out = "";
    holder.stdout!.on("data", (d) => (out += d));
    try {
      await waitFor(() => out.includes("bound"), 10_000, "a program to hold UDP 192.0.2.71:8285");
      const r = await switchIn(bareNs, common());
      expect(r.stderr).toBe(`tapnet: UDP port 8285 (backend.port in ${join(dir, "two.yaml")}) is taken on 192.0.2.71: another switch or program holds it (EADDRINUSE)\n`);
      expect(r.code).toBe(1);
      expectNothingMade();
    } finally {
      holder.kill();
      await exited(holder);
    }
  });

  it("refuses --control in a directory that does not exist, naming it, and makes no directory (exit 2)", async () => {
    const config = write("one.yaml", "nodes:\n  - name: n1\n    address: 192.168.77.1\n");
    const missing = join(dir, "nonexistent", "deeper");
    const r = await switchIn(bareNs, ["--config", config, "--node", "n1", "--control", join(missing, "x.sock"), "--store", `file:${join(dir, "store-x")}`]);
    expect(r.stderr).toBe(`tapnet: --control ${join(missing, "x.sock")}: the directory ${missing} does not exist (make it first, or leave --control out for /run/tapnet/<node>.sock)\n`);
    expect(r.code).toBe(2);
    expect(existsSync(join(dir, "nonexistent"))).toBe(false);
    expectNothingMade();
  });
});

describe("pod add into a namespace that is already another node's pod", () => {
  const control = nodeNs.map((_, i) => `${runDir}/n${i + 1}.sock`);

  beforeAll(async () => {
    // Two switches on this machine, as a lab's nodes are: n1's pods in 10.244.1.0/24, n2's in 10.244.2.0/24.
    const started = [1, 2].map((i) => {
      const config = write(`n${i}.yaml`, `nodes:\n  - name: n${i}\n    address: 192.168.77.${i}\n    podCidr: 10.244.${i}.0/24\n`);
      return startSwitch(nodeNs[i - 1], ["--config", config, "--node", `n${i}`, "--control", control[i - 1], "--store", `file:${join(dir, `store-${i}`)}`]);
    });
    for (const s of started) await waitFor(() => s.log().includes('"switch ready"'), 60_000, "the switches to start");
    const pa = await tapnet(["pod", "add", podNs, "--control", control[0]]);
    expect(pa.code, pa.stderr).toBe(0);
  });

  it("refuses n1's pod namespace on n2's switch, with --netns and another ifname, and adds nothing there", async () => {
    const r = await tapnet(["pod", "add", "evil", "--netns", podNs, "--ifname", "eth1", "--control", control[1]]);
    expect(r.stderr).toBe(`tapnet: namespace ${podNs} is already a pod's or a node's of this cluster (it holds eth0 10.244.1.2, inside the cluster CIDR 10.244.0.0/16): give a namespace of its own\n`);
    expect(r.code).toBe(1);
    expect(() => sh("ip", ["-n", podNs, "link", "show", "eth1"])).toThrow();
    const pods = JSON.parse((await tapnet(["pod", "list", "--json", "--control", control[1]])).stdout);
    expect(pods).toEqual([]);
  });

  it("refuses it by the pod's name too (the namespace defaults to NAME), and n1's node namespace", async () => {
    const byName = await tapnet(["pod", "add", podNs, "--ifname", "eth1", "--control", control[1]]);
    expect(byName.code).toBe(1);
    expect(byName.stderr).toContain(`namespace ${podNs} is already a pod's or a node's`);
    const node = await tapnet(["pod", "add", "evil", "--netns", nodeNs[0], "--control", control[1]]);
    expect(node.code).toBe(1);
    expect(node.stderr).toContain("it holds tapnet0 10.244.1.1");
  });

  it("still attaches a namespace of nobody's, and n1's pod still answers", async () => {
    const ok = await tapnet(["pod", "add", "mine", "--netns", freshNs, "--control", control[1]]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("10.244.2.2");
    sh("ip", ["netns", "exec", nodeNs[0], "ping", "-c", "1", "-W", "2", "10.244.1.2"]);
    expect((await tapnet(["pod", "del", "mine", "--control", control[1]])).code).toBe(0);
  });

  // Before: "no lab named ... is up", hiding that the user cannot read /run/tapnet at all.
  it.skipIf(!which("setpriv"))("lab status as an unprivileged user reports the permission error and fails", async () => {
    expect(existsSync(runDir)).toBe(true);
    const asRoot = await tapnet(["lab", "status", "--prefix", prefix]);
    expect(asRoot.stderr).toContain(`no lab named ${prefix} is up`); // root sees there is no journal
    const r = await runCmd("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, TAPNET, "lab", "status", "--prefix", prefix]);
    expect(r.stderr).toBe(`tapnet: cannot read the lab journal ${runDir}/lab.json: EACCES (/run/tapnet is root's: run tapnet as root)\n`);
    expect(r.code).toBe(1);
  });
});

// The CNI plugin as `tapnet cni install` writes it, driven as libcni drives a plugin (environment,
// config on stdin, result on stdout, exit status; the final result kept and passed back as
// prevResult) against a real switch in a namespace of its own, with real container namespaces,
// chained with Debian's reference plugins (containernetworking-plugins, in /usr/lib/cni).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exited, netnsList, REPO, sh, tapnet, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = process.env.TAPNET_CNI_TEST_PREFIX ?? uniquePrefix("cni");
const nodeNs = `${prefix}-node`;
const dir = mkdtempSync(join(tmpdir(), "tapnet-it-cni-"));
const control = join(dir, "n1.sock");
const store = `file:${join(dir, "store")}`;
const binDir = join(dir, "bin");
const confDir = join(dir, "net.d");
const plugin = join(binDir, "tapnet");
const REFERENCE = "/usr/lib/cni";
const made: string[] = [];

interface Run { code: number; stdout: string; stderr: string; ms: number }

/** Runs a plugin as a runtime does: only the CNI variables in its environment (no PATH), config on stdin. */
function cni(exe: string, env: Record<string, string>, config: unknown): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(exe, [], { env: { CNI_PATH: `${binDir}:${REFERENCE}`, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - t0 }));
    child.stdin.end(JSON.stringify(config));
  });
}

const net = (extra: Record<string, unknown> = {}) => ({ cniVersion: "1.1.0", name: "tapnet", type: "tapnet", socket: control, ...extra });
const attEnv = (command: string, id: string, netns = `/run/netns/${prefix}-${id}`) => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: "eth0" });

/** A container's network namespace, made as a runtime makes one (removed afterwards). */
function container(id: string): string {
  const ns = `${prefix}-${id}`;
  sh("ip", ["netns", "add", ns]);
  made.push(ns);
  return ns;
}

async function storedPods(): Promise<string[]> {
  const r = await tapnet(["get", "pods", "-A", "-o", "json", "--store", store]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).items.map((p: { metadata: { namespace: string; name: string } }) => `${p.metadata.namespace}/${p.metadata.name}`).sort();
}

let sw: ChildProcess | undefined;
let log = "";
async function startSwitch(): Promise<void> {
  log = "";
  sw = spawn("nsenter", [`--net=/run/netns/${nodeNs}`, "--", process.execPath, TAPNET, "switch", "--config", join(dir, "cluster.yaml"), "--node", "n1", "--control", control, "--store", store], {
    cwd: REPO, stdio: ["ignore", "pipe", "pipe"],
  });
  sw.stderr!.on("data", (d) => (log += d));
  await waitFor(() => log.includes('"switch ready"'), 60_000, "the switch to start");
}

describe("the CNI plugin, as a runtime runs it", () => {
  beforeAll(async () => {
    writeFileSync(join(dir, "cluster.yaml"), "nodes:\n  - name: n1\n    address: 192.168.78.1\n    podCidr: 10.244.9.0/24\n");
    sh("ip", ["netns", "add", nodeNs]);
    await startSwitch();
  });

  afterAll(async () => {
    if (sw && sw.exitCode === null) {
      sw.kill("SIGKILL");
      await exited(sw);
    }
    for (const ns of [nodeNs, ...made]) if (netnsList().includes(ns)) sh("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("is installed by tapnet cni install: the plugin and a conflist naming the switch", async () => {
    const r = await tapnet(["cni", "install", "--bin-dir", binDir, "--conf-dir", confDir, "--socket", control, "--dns-server", "10.96.0.10", "--portmap"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`network tapnet: ${confDir}/10-tapnet.conflist (switch ${control})`);
    expect(JSON.parse(readFileSync(join(confDir, "10-tapnet.conflist"), "utf8"))).toEqual({
      cniVersion: "1.1.0", name: "tapnet",
      plugins: [{ type: "tapnet", socket: control, dns: { nameservers: ["10.96.0.10"] } }, { type: "portmap", capabilities: { portMappings: true } }],
    });
    expect(readFileSync(plugin, "utf8").split("\n")[0]).toBe(`#!${process.execPath}`);
    const v = await cni(plugin, { CNI_COMMAND: "VERSION" }, { cniVersion: "1.1.0" });
    expect([v.code, JSON.parse(v.stdout)]).toEqual([0, { cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] }]);
    // Run by a person, with no CNI_COMMAND: what it is on stderr, error 4 on stdout, at once.
    const bare = await cni(plugin, {}, {});
    expect([bare.code, JSON.parse(bare.stdout)]).toEqual([1, { cniVersion: "1.1.0", code: 4, msg: "required environment variables missing: CNI_COMMAND" }]);
    expect(bare.stderr).toContain("CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    // A file of that name that is not tapnet's is left alone.
    writeFileSync(join(dir, "tapnet"), "#!/bin/sh\n");
    const refused = await tapnet(["cni", "install", "--bin-dir", dir, "--conf-dir", confDir, "--socket", control, "--name", "x"]);
    expect([refused.code, refused.stderr]).toEqual([1, `tapnet: ${dir}/tapnet exists and is not tapnet's plugin: not overwriting it\n`]);
    expect(readFileSync(join(dir, "tapnet"), "utf8")).toBe("#!/bin/sh\n");
    expect(existsSync(join(confDir, "10-x.conflist"))).toBe(false);
  });

  it("STATUS: ready while the switch answers, 50 where none does", async () => {
    const ok = await cni(plugin, { CNI_COMMAND: "STATUS" }, net());
    expect([ok.code, ok.stdout], ok.stderr).toEqual([0, ""]);
    const none = await cni(plugin, { CNI_COMMAND: "STATUS" }, net({ socket: join(dir, "none.sock") }));
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout)).toMatchObject({ cniVersion: "1.1.0", code: 50 });
  });

  it("ADD attaches the container; CHECK passes, and fails when its address is gone; DEL frees it, twice", async () => {
    const ns = container("web1");
    const env = { ...attEnv("ADD", "web1"), CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web1;K8S_POD_NAMESPACE=default" };
    const add = await cni(plugin, env, net({ dns: { nameservers: ["10.96.0.10"] } }));
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const result = JSON.parse(add.stdout);
    const ip = result.ips[0].address as string;
    expect(result).toEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mac: expect.stringMatching(/^0a:58:0a:f4:09:[0-9a-f]{2}$/), mtu: 1500, sandbox: `/run/netns/${ns}` }],
      ips: [{ address: expect.stringMatching(/^10\.244\.9\.\d+\/24$/), gateway: "10.244.9.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.9.1" }],
      dns: { nameservers: ["10.96.0.10"] },
    });
    expect(sh("ip", ["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])).toContain(ip);
    sh("ip", ["netns", "exec", ns, "ping", "-c", "1", "-W", "2", "10.244.9.1"]);
    expect(await storedPods()).toContain("default/web1");

    const check = await cni(plugin, attEnv("CHECK", "web1"), net({ prevResult: result }));
    expect([check.code, check.stdout], check.stderr).toEqual([0, ""]);
    sh("ip", ["-n", ns, "addr", "flush", "dev", "eth0"]);
    const broken = await cni(plugin, attEnv("CHECK", "web1"), net({ prevResult: result }));
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ code: 999, msg: `eth0 in /run/netns/${ns} does not hold ${ip} (it has no IPv4 address)` });

    for (let i = 0; i < 2; i++) {
      const del = await cni(plugin, attEnv("DEL", "web1"), net({ prevResult: result }));
      expect([del.code, del.stdout], del.stderr).toEqual([0, ""]);
    }
    expect(await storedPods()).not.toContain("default/web1");
    expect(sh("ip", ["-n", ns, "link"])).not.toContain("eth0");
  });

  it("DEL succeeds when the namespace is gone already", async () => {
    const ns = container("gone1");
    const add = await cni(plugin, attEnv("ADD", "gone1"), net());
    expect(add.code, add.stdout).toBe(0);
    sh("ip", ["netns", "del", ns]);
    const del = await cni(plugin, attEnv("DEL", "gone1"), net());
    expect([del.code, del.stdout]).toEqual([0, ""]);
    expect(await storedPods()).not.toContain("default/gone1");
  });

  it("refuses an interface name taken in the container, leaving nothing behind", async () => {
    const ns = container("taken1");
    sh("ip", ["-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    const before = await storedPods();
    const add = await cni(plugin, attEnv("ADD", "taken1"), net());
    expect(add.code).toBe(1);
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 999, msg: "interface name eth0 is already taken in the container" });
    expect(await storedPods()).toEqual(before);
  });

  it("chains: loopback before it and tuning after it, passing results on; CHECK and DEL with the final result", async () => {
    const ns = container("chain1");
    const env = (cmd: string) => attEnv(cmd, "chain1");
    const v = "1.0.0"; // Debian's reference plugins (1.1.1) speak up to 1.0.0
    const base = { cniVersion: v, name: "chained" };
    const lo = await cni(join(REFERENCE, "loopback"), env("ADD"), { ...base, type: "loopback" });
    expect(lo.code, lo.stdout).toBe(0);
    const mid = await cni(plugin, env("ADD"), { ...base, type: "tapnet", socket: control, prevResult: JSON.parse(lo.stdout) });
    expect(mid.code, mid.stdout).toBe(0);
    const midResult = JSON.parse(mid.stdout);
    expect(midResult.interfaces.map((i: { name: string }) => i.name)).toEqual(["lo", "eth0"]);
    expect(midResult.ips.at(-1)).toMatchObject({ gateway: "10.244.9.1", interface: 1 });
    const tuning = { ...base, type: "tuning", sysctl: { "net.ipv4.conf.eth0.accept_redirects": "0" }, runtimeConfig: { mac: "02:00:00:aa:bb:cc" } };
    const tuned = await cni(join(REFERENCE, "tuning"), env("ADD"), { ...tuning, prevResult: midResult });
    expect(tuned.code, tuned.stdout + tuned.stderr).toBe(0);
    const final = JSON.parse(tuned.stdout);
    expect(final.interfaces[1].mac).toBe("02:00:00:aa:bb:cc");
    expect(sh("ip", ["-n", ns, "link", "show", "eth0"])).toContain("02:00:00:aa:bb:cc");
    // CHECK in order with the final result: tapnet accepts the MAC tuning changed.
    const check = await cni(plugin, env("CHECK"), { ...base, type: "tapnet", socket: control, prevResult: final });
    expect([check.code, check.stdout], check.stderr).toEqual([0, ""]);
    // DEL in reverse order.
    expect((await cni(join(REFERENCE, "tuning"), env("DEL"), { ...tuning, prevResult: final })).code).toBe(0);
    const del = await cni(plugin, env("DEL"), { ...base, type: "tapnet", socket: control, prevResult: final });
    expect([del.code, del.stdout]).toEqual([0, ""]);
    expect((await cni(join(REFERENCE, "loopback"), env("DEL"), { ...base, type: "loopback", prevResult: final })).code).toBe(0);
  });

  it("gives 20 containers added at once 20 distinct addresses, and DELs them all at once", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `many${i}`);
    for (const id of ids) container(id);
    const adds = await Promise.all(ids.map((id) => cni(plugin, attEnv("ADD", id), net({ cniVersion: "0.4.0" }))));
    for (const a of adds) expect(a.code, a.stdout + a.stderr).toBe(0);
    const ips = adds.map((a) => JSON.parse(a.stdout).ips[0]);
    expect(ips[0].version).toBe("4");
    expect(new Set(ips.map((x) => x.address)).size).toBe(20);
    const stored = await storedPods();
    for (const id of ids) expect(stored.some((p) => p.includes(id))).toBe(true);
    const dels = await Promise.all(ids.map((id) => cni(plugin, attEnv("DEL", id), net({ cniVersion: "0.4.0" }))));
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    const after = await storedPods();
    for (const id of ids) expect(after.some((p) => p.includes(id))).toBe(false);
  });

  it("GC removes the attachments not in cni.dev/valid-attachments", async () => {
    const ids = ["gc1", "gc2", "gc3"];
    for (const id of ids) {
      container(id);
      expect((await cni(plugin, attEnv("ADD", id), net())).code).toBe(0);
    }
    const gc = await cni(plugin, { CNI_COMMAND: "GC" }, net({ "cni.dev/valid-attachments": [{ containerID: "gc2", ifname: "eth0" }] }));
    expect([gc.code, gc.stdout], gc.stderr).toEqual([0, ""]);
    expect(gc.stderr).toContain("gc1/eth0");
    const stored = await storedPods();
    expect(stored).toContain("default/gc2");
    expect(stored.filter((p) => /gc[13]/.test(p))).toEqual([]);
    expect(sh("ip", ["-n", `${prefix}-gc1`, "link"])).not.toContain("eth0");
    expect((await cni(plugin, attEnv("DEL", "gc2"), net())).code).toBe(0);
  });

  it("says try again later (11) while the switch is down, and 50 to STATUS", async () => {
    container("down1");
    sw!.kill("SIGKILL");
    await exited(sw!);
    expect(existsSync(control)).toBe(true); // left behind: connection refused
    const add = await cni(plugin, attEnv("ADD", "down1"), net());
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 11, msg: "try again later: the tapnet switch is not running" });
    expect(sh("ip", ["-n", `${prefix}-down1`, "link"])).not.toContain("eth0");
    expect(JSON.parse((await cni(plugin, attEnv("DEL", "down1"), net())).stdout).code).toBe(11);
    expect(JSON.parse((await cni(plugin, { CNI_COMMAND: "STATUS" }, net())).stdout).code).toBe(50);
    await startSwitch();
    const again = await cni(plugin, attEnv("ADD", "down1"), net());
    expect(again.code, again.stdout).toBe(0);
    expect((await cni(plugin, attEnv("DEL", "down1"), net())).code).toBe(0);
  });

  it("is removed by tapnet cni uninstall", async () => {
    const r = await tapnet(["cni", "uninstall", "--bin-dir", binDir, "--conf-dir", confDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(plugin)).toBe(false);
    expect(existsSync(join(confDir, "10-tapnet.conflist"))).toBe(false);
  });
});

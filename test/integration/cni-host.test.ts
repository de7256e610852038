// The switch's side of the CNI plugin: cni.* on a real `tapnet switch`'s control socket, into
// namespaces given by path (/run/netns/x and /proc/PID/ns/net), through restarts.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcCall } from "../../src/node/rpc.ts";
import { exited, netnsList, pidAlive, REPO, runCmd, sh, tapnet, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = process.env.TAPNET_CNI_HOST_PREFIX ?? uniquePrefix("cnih");
const nodeNs = `${prefix}-node`;
const dir = mkdtempSync(join(tmpdir(), "tapnet-it-cnih-"));
const control = join(dir, "n1.sock");
const configPath = join(dir, "cluster.yaml");
const store = `file:${join(dir, "store")}`;
const made: string[] = []; // namespaces this test made
const sleepers: ChildProcess[] = [];
const GW = "10.244.6.1";
/** Namespaces the switch would make for the store's pods (tapnet apply) start with this: none for CNI pods. */
const storeNetns = `${prefix}-store-`;

function netns(tag: string): { name: string; path: string } {
  const name = `${prefix}-${tag}`;
  sh("ip", ["netns", "add", name]);
  made.push(name);
  return { name, path: `/run/netns/${name}` };
}

const call = <T = any>(method: string, params: Record<string, unknown> = {}) => rpcCall<T>(control, method, params);
const fails = (method: string, params: Record<string, unknown>) => call(method, params).then((r) => { throw new Error(`succeeded: ${JSON.stringify(r)}`); }, (e: Error) => e.message);
const expected = (ip: string, sandbox: string, ifname = "eth0") => ({
  ifname, mac: `0a:58:${ip.split(".").map((b) => Number(b).toString(16).padStart(2, "0")).join(":")}`, sandbox, ip, prefix: 24, gateway: GW, mtu: 1500,
});

/** The interface `ifname` in the namespace at `path`: its address, MAC, MTU, state; and lo's state and the default route. */
async function inside(path: string, ifname = "eth0") {
  const links = JSON.parse((await runCmd("nsenter", [`--net=${path}`, "ip", "-j", "addr", "show"])).stdout) as { ifname: string; address: string; mtu: number; flags: string[]; addr_info: { family: string; local: string; prefixlen: number }[] }[];
  const dev = links.find((l) => l.ifname === ifname);
  const lo = links.find((l) => l.ifname === "lo");
  const route = (await runCmd("nsenter", [`--net=${path}`, "ip", "route", "show", "default"])).stdout.trim();
  const v4 = dev?.addr_info.find((a) => a.family === "inet");
  return dev && { mac: dev.address, mtu: dev.mtu, up: dev.flags.includes("UP"), addr: `${v4?.local}/${v4?.prefixlen}`, loUp: lo!.flags.includes("UP"), route, count: links.length };
}

async function pingGateway(path: string): Promise<boolean> {
  return (await runCmd("nsenter", [`--net=${path}`, "ping", "-n", "-c", "1", "-W", "2", GW])).code === 0;
}

async function storedPods(): Promise<any[]> {
  const r = await tapnet(["get", "pods", "-A", "-o", "json", "--store", store]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).items;
}

let sw: ChildProcess | undefined;
let log = "";

async function startSwitch(): Promise<void> {
  const child = spawn("nsenter", [`--net=/run/netns/${nodeNs}`, "--", process.execPath, TAPNET, "switch", "--config", configPath, "--node", "n1", "--control", control, "--store", store, "--netns-prefix", storeNetns], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  sw = child;
  let mine = "";
  child.stderr!.on("data", (d) => { mine += d; log += d; });
  await waitFor(() => mine.includes('"switch ready"') || child.exitCode !== null, 60_000, "the switch to start");
  expect(child.exitCode, log).toBeNull();
}

async function stopSwitch(signal: NodeJS.Signals): Promise<void> {
  sw!.kill(signal);
  await exited(sw!);
}

describe("cni.* on the switch's control socket", () => {
  beforeAll(async () => {
    writeFileSync(configPath, "nodes:\n  - name: n1\n    address: 192.168.76.1\n    podCidr: 10.244.6.0/24\n");
    sh("ip", ["netns", "add", nodeNs]);
    made.push(nodeNs);
    await startSwitch();
  });

  afterAll(async () => {
    if (sw && sw.exitCode === null) await stopSwitch("SIGKILL");
    for (const s of sleepers) if (s.pid && pidAlive(s.pid)) s.kill("SIGKILL");
    for (const ns of [...made, ...netnsList().filter((n) => n.startsWith(storeNetns))]) if (netnsList().includes(ns)) sh("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  const p1 = { name: "", path: "" };

  it("cni.status: ready, the node and its pod CIDR", async () => {
    expect(await call("cni.status")).toEqual({ ready: true, node: "n1", podCidr: "10.244.6.0/24" });
  });

  it("adds into /run/netns/x: the interface, address, MAC, MTU, lo, default route; records the Pod; idempotent", async () => {
    Object.assign(p1, netns("p1"));
    const req = { containerId: "c1aaaaaaaaaaaaaaaa", netns: p1.path, ifname: "eth0", podName: "web" };
    const r = await call("cni.add", req);
    expect(r).toEqual(expected("10.244.6.2", p1.path));
    expect(await inside(p1.path)).toEqual({ mac: r.mac, mtu: 1500, up: true, addr: "10.244.6.2/24", loUp: true, route: `default via ${GW} dev eth0`, count: 2 });
    expect(await pingGateway(p1.path)).toBe(true);
    const pods = await storedPods();
    expect(pods).toHaveLength(1);
    expect(pods[0].metadata).toMatchObject({
      name: "web", namespace: "default",
      annotations: { "tapnet.dev/source": "cni", "tapnet.dev/container-id": req.containerId, "tapnet.dev/netns": p1.path, "tapnet.dev/ifname": "eth0" },
    });
    expect(pods[0].spec.nodeName).toBe("n1");
    expect(pods[0].status).toMatchObject({ podIP: "10.244.6.2", hostIP: "192.168.76.1" });
    // Again: the same answer, nothing more made.
    expect(await call("cni.add", req)).toEqual(r);
    expect((await inside(p1.path))!.count).toBe(2);
    expect((await call("status")).ports).toHaveLength(2);
    const { sandbox: _, ...checked } = r;
    expect(await call("cni.check", { containerId: req.containerId, ifname: "eth0", netns: p1.path })).toStrictEqual(checked);
    // `tapnet pod del` leaves a runtime's pod alone: it goes when its container does.
    await expect(call("pod.del", { name: "web" })).rejects.toThrow("pod web is a container runtime's (CNI): it goes when its container does");
    expect(await storedPods()).toHaveLength(1);
  });

  it("adds into /proc/PID/ns/net of a process in a namespace of its own, recording its pod namespace", async () => {
    const sleeper = spawn("unshare", ["--net", "--", "sleep", "600"], { stdio: "ignore" });
    sleepers.push(sleeper);
    const path = `/proc/${sleeper.pid}/ns/net`;
    await waitFor(() => sh("readlink", [path]) !== sh("readlink", ["/proc/self/ns/net"]), 5_000, "unshare");
    const r = await call("cni.add", { containerId: "c2bbbbbbbbbbbbbbbb", netns: path, ifname: "net0", podName: "Box_1", podNamespace: "team-a" });
    expect(r).toEqual(expected("10.244.6.3", path, "net0"));
    expect(await inside(path, "net0")).toMatchObject({ addr: "10.244.6.3/24", up: true, loUp: true, route: `default via ${GW} dev net0` });
    expect(await pingGateway(path)).toBe(true);
    expect((await storedPods()).map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual(["default/web", "team-a/box-1"]);
    expect((await tapnet(["get", "namespace", "team-a", "--store", store])).code).toBe(0);
    sleeper.kill("SIGKILL");
    await exited(sleeper);
    // Its namespace went with it: the switch forgets the pod and frees its address.
    for (let i = 0; i < 100 && (await storedPods()).length !== 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await storedPods()).map((p) => p.metadata.name)).toEqual(["web"]);
    expect(await fails("cni.check", { containerId: "c2bbbbbbbbbbbbbbbb", ifname: "net0" })).toMatch(/no attachment/);
  });

  it("refuses with the codes: IFNAME_TAKEN, NETNS (not a namespace, gone, the switch's own), and bad parameters; nothing half-made", async () => {
    const ports = (await call("status")).ports.length;
    expect(await fails("cni.add", { containerId: "c3", netns: p1.path, ifname: "eth0" })).toBe(`IFNAME_TAKEN: ${p1.path} already has an interface eth0`);
    expect(await fails("cni.add", { containerId: "c3", netns: "/etc/hostname", ifname: "eth0" })).toBe("NETNS: /etc/hostname is not a network namespace");
    expect(await fails("cni.add", { containerId: "c3", netns: "/proc/self/ns/mnt", ifname: "eth0" })).toBe("NETNS: /proc/self/ns/mnt is not a network namespace");
    expect(await fails("cni.add", { containerId: "c3", netns: `/run/netns/${prefix}-none`, ifname: "eth0" })).toBe(`NETNS: /run/netns/${prefix}-none does not exist`);
    expect(await fails("cni.add", { containerId: "c3", netns: `/run/netns/${nodeNs}`, ifname: "eth9" })).toMatch(/^NETNS: .* is the switch's own network namespace/);
    expect(await fails("cni.add", { containerId: "", netns: p1.path, ifname: "eth1" })).toMatch(/^containerId "" must start with a letter or digit/);
    expect(await fails("cni.add", { containerId: "c3", netns: "netns-x", ifname: "eth1" })).toMatch(/must be the absolute path of a network namespace/);
    expect(await fails("cni.add", { containerId: "c3", netns: p1.path, ifname: "a/b" })).toMatch(/interface name "a\/b"/);
    expect(await fails("cni.check", { containerId: "c3", ifname: "eth0" })).toMatch(/no attachment for container c3/);
    expect((await call("status")).ports).toHaveLength(ports);
    expect((await storedPods()).map((p) => p.metadata.name)).toEqual(["web"]);
    // The address a failed ADD took is free again: the next gets the lowest one after web's.
    const p2 = netns("p2");
    expect((await call("cni.add", { containerId: "c3", netns: p2.path, ifname: "eth0" })).ip).toBe("10.244.6.3");
    expect((await call("cni.del", { containerId: "c3", ifname: "eth0" }))).toEqual({ removed: true });
  });

  it("keeps the address of an interface deleted inside the namespace; CHECK says so; ADD attaches it again", async () => {
    const p3 = netns("p3");
    const r = await call("cni.add", { containerId: "c4", netns: p3.path, ifname: "eth0" });
    sh("ip", ["-n", p3.name, "link", "del", "eth0"]);
    for (let i = 0; i < 100; i++) {
      const m = await fails("cni.check", { containerId: "c4", ifname: "eth0", netns: p3.path }).catch(() => "");
      if (m) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(await fails("cni.check", { containerId: "c4", ifname: "eth0", netns: p3.path })).toMatch(/is gone from/);
    const other = netns("p4");
    expect((await call("cni.add", { containerId: "c5", netns: other.path, ifname: "eth0" })).ip).not.toBe(r.ip);
    expect(await call("cni.add", { containerId: "c4", netns: p3.path, ifname: "eth0" })).toEqual(r);
    expect(await inside(p3.path)).toMatchObject({ addr: `${r.ip}/24`, mac: r.mac });
    expect(await call("cni.del", { containerId: "c4", ifname: "eth0" })).toEqual({ removed: true });
    expect(await call("cni.del", { containerId: "c5", ifname: "eth0" })).toEqual({ removed: true });
  });

  it("cni.del: detaches, frees, forgets; idempotent; succeeds when the namespace is gone", async () => {
    const p5 = netns("p5");
    const r = await call("cni.add", { containerId: "c6", netns: p5.path, ifname: "eth0", podName: "gone-soon" });
    expect(await call("cni.del", { containerId: "c6", ifname: "eth0" })).toEqual({ removed: true });
    expect(await inside(p5.path)).toBeUndefined();
    expect((await storedPods()).map((p) => p.metadata.name)).toEqual(["web"]);
    expect(await call("cni.del", { containerId: "c6", ifname: "eth0" })).toEqual({ removed: false });
    expect(await call("cni.del", { containerId: "never", ifname: "eth0" })).toEqual({ removed: false });
    expect((await call("cni.add", { containerId: "c7", netns: p5.path, ifname: "eth0" })).ip).toBe(r.ip);
    sh("ip", ["netns", "del", p5.name]);
    const del = await call("cni.del", { containerId: "c7", ifname: "eth0" });
    expect(typeof del.removed).toBe("boolean");
    expect((await storedPods()).map((p) => p.metadata.name)).toEqual(["web"]);
    const p6 = netns("p6");
    expect((await call("cni.add", { containerId: "c8", netns: p6.path, ifname: "eth0" })).ip).toBe(r.ip);
    expect(await call("cni.del", { containerId: "c8", ifname: "eth0" })).toEqual({ removed: true });
  });

  it("cni.gc: detaches every attachment not in valid", async () => {
    const ns = ["g1", "g2", "g3"].map(netns);
    for (const [i, n] of ns.entries()) await call("cni.add", { containerId: `gc${i}`, netns: n.path, ifname: "eth0" });
    const r = await call("cni.gc", { valid: [{ containerId: "c1aaaaaaaaaaaaaaaa", ifname: "eth0" }, { containerId: "gc0", ifname: "eth0" }] });
    expect(r.removed.sort((a: any, b: any) => a.containerId.localeCompare(b.containerId))).toEqual([{ containerId: "gc1", ifname: "eth0" }, { containerId: "gc2", ifname: "eth0" }]);
    expect(await inside(ns[1].path)).toBeUndefined();
    expect(await inside(ns[0].path)).toBeDefined();
    expect(await fails("cni.check", { containerId: "gc2", ifname: "eth0" })).toMatch(/no attachment/);
    expect(await call("cni.check", { containerId: "gc0", ifname: "eth0" })).toMatchObject({ ifname: "eth0" });
    expect(await fails("cni.gc", { valid: "all" })).toBe("valid must be a list of {containerId, ifname}");
    expect(await call("cni.gc", { valid: [{ containerId: "c1aaaaaaaaaaaaaaaa", ifname: "eth0" }] })).toEqual({ removed: [{ containerId: "gc0", ifname: "eth0" }] });
  });

  it("20 concurrent ADDs get 20 distinct addresses, all attached; then 20 concurrent DELs", async () => {
    const ns = Array.from({ length: 20 }, (_, i) => netns(`q${i}`));
    const rs = await Promise.all(ns.map((n, i) => call("cni.add", { containerId: `q${i}`, netns: n.path, ifname: "eth0", podName: `q${i}` })));
    const ips = rs.map((r) => r.ip);
    expect(new Set(ips).size).toBe(20);
    expect(ips.every((ip) => /^10\.244\.6\.\d+$/.test(ip) && ip !== "10.244.6.2" && ip !== GW)).toBe(true);
    for (const [i, n] of ns.entries()) expect((await inside(n.path))!.addr).toBe(`${rs[i].ip}/24`);
    expect((await storedPods())).toHaveLength(21);
    expect(await Promise.all(ns.map((_, i) => call("cni.del", { containerId: `q${i}`, ifname: "eth0" })))).toEqual(ns.map(() => ({ removed: true })));
    expect((await storedPods())).toHaveLength(1);
  });

  it("a restart of the switch takes over (after a kill) or re-attaches (after a stop) the pods whose namespace is still there (same ifname, address, MAC) and forgets the others", async () => {
    const gone = netns("r1");
    const rGone = await call("cni.add", { containerId: "r1", netns: gone.path, ifname: "eth0", podName: "gone" });
    const before = await call("cni.check", { containerId: "c1aaaaaaaaaaaaaaaa", ifname: "eth0", netns: p1.path });
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      await stopSwitch(signal);
      // A clean stop takes the TAP with it; a killed switch leaves it, address and all, for the next switch to take over.
      if (signal === "SIGTERM") expect(await inside(p1.path)).toBeUndefined();
      else expect(await inside(p1.path)).toMatchObject({ addr: `${before.ip}/24`, mac: before.mac });
      if (signal === "SIGTERM") {
        expect((await storedPods()).map((p) => p.metadata.name).sort()).toEqual(["gone", "web"]); // kept for the restart
        sh("ip", ["netns", "del", gone.name]);
      }
      await startSwitch();
      expect(await call("cni.check", { containerId: "c1aaaaaaaaaaaaaaaa", ifname: "eth0", netns: p1.path })).toEqual(before);
      expect(await inside(p1.path)).toMatchObject({ addr: `${before.ip}/24`, mac: before.mac, mtu: 1500, up: true, route: `default via ${GW} dev eth0` });
      expect(await pingGateway(p1.path)).toBe(true);
      expect((await storedPods()).map((p) => p.metadata.name)).toEqual(["web"]);
      expect(await fails("cni.check", { containerId: "r1", ifname: "eth0" })).toMatch(/no attachment/);
    }
    // No namespace made for the CNI pod from the store, and its address not handed out again.
    expect(readdirSync("/run/netns").filter((n) => n.startsWith(storeNetns))).toEqual([]);
    const fresh = netns("r2");
    expect((await call("cni.add", { containerId: "r2", netns: fresh.path, ifname: "eth0" })).ip).toBe(rGone.ip);
    expect(await call("cni.del", { containerId: "r2", ifname: "eth0" })).toEqual({ removed: true });
    expect(existsSync(control)).toBe(true);
  });
});

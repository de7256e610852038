// A real container runtime on the pod network: Debian's podman 4.3 runs tapnet's CNI plugin
// (installed with `tapnet cni install`) for containers on two nodes of a lab. The containers
// get addresses from their node's pod CIDR, ping each other and the lab's pods, exchange TCP
// with their own addresses (no NAT); they are pods in `tapnet get pods` and on their switch,
// and `podman rm` takes them away; portmap chained after tapnet publishes a port on the node.
//
// Each node has a podman of its own (test/integration/podman-support.ts): its own storage,
// containers.conf and CNI config directory (each node's conflist names its own switch), run
// inside the node's network namespace, so the plugins run there and portmap's DNAT rules are
// the node's own, reached at the node's address like a hostPort on a real node. Everything
// (containers, images, directories, the lab) is removed afterwards, also when a test fails.
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCmd, TEST_PREFIX, tapnet, uniquePrefix } from "./helpers.ts";
import { busyboxTarball, IMAGE, missingTools, Podman, podmanBase, sweep } from "./podman-support.ts";

const prefix = process.env.TAPNET_LAB_PREFIX ?? uniquePrefix("podman");

interface LabNodeJson { name: string; netns: string; address: string; podCidr: string; gateway: string; socket?: string }
interface LabPodJson { name: string; netns: string; node: string; ip: string }
interface PodJson { metadata: { name: string; namespace: string; annotations?: Record<string, string> }; spec: { nodeName: string }; status?: { podIP?: string } }

/** "10.244.1.0/24" contains "10.244.1.7" (the lab's node CIDRs are /24s). */
const inCidr24 = (ip: string, cidr: string) => cidr.endsWith("/24") && ip.split(".").slice(0, 3).join(".") === cidr.split(".").slice(0, 3).join(".");

describe("podman runs containers on a lab's pod network through tapnet's CNI plugin", () => {
  let nodes: LabNodeJson[] = [];
  let labPods: LabPodJson[] = [];
  let outside: { netns: string; address: string };
  const podmans: Podman[] = [];
  let pm1: Podman;
  let pm2: Podman;
  const ips: Record<string, string> = {};

  const node = (name: string) => nodes.find((n) => n.name === name)!;
  const socketOf = (n: LabNodeJson) => n.socket ?? JSON.parse(readFileSync(`/run/tapnet/${prefix}/lab.json`, "utf8")).nodes.find((x: { name: string }) => x.name === n.name).control as string;

  const getPods = async (): Promise<PodJson[]> => {
    const r = await tapnet(["get", "pods", "-A", "-o", "json", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).items;
  };
  const switchPods = async (n: LabNodeJson): Promise<{ name: string; namespace: string; ip: string; netns: string }[]> => {
    const r = await tapnet(["pod", "list", "--json", "--control", socketOf(n)]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  /** Polls `pred` on the store's pods (a switch writes them a moment after it attached them). */
  const waitForPods = async (pred: (p: PodJson[]) => boolean, what: string): Promise<PodJson[]> => {
    const t0 = Date.now();
    for (;;) {
      const list = await getPods();
      if (pred(list)) return list;
      if (Date.now() - t0 > 10_000) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(list.map((p) => [p.metadata.namespace, p.metadata.name, p.status?.podIP]))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** A TCP request with busybox wget from namespace `netns` (a lab namespace): the body, or the error. */
  const wgetFromNs = (netns: string, url: string) => runCmd("ip", ["netns", "exec", netns, "/bin/busybox", "wget", "-q", "-O", "-", url], { timeoutMs: 10_000 });
  const natRules = async (netns?: string) => {
    const r = await runCmd(netns ? "ip" : "iptables-save", netns ? ["netns", "exec", netns, "iptables-save", "-t", "nat"] : ["-t", "nat"]);
    return r.stdout;
  };

  beforeAll(async () => {
    const missing = missingTools();
    if (missing.length) throw new Error(`the podman test needs Debian packages:${missing.map((m) => ` ${m}`).join("")} (sh scripts/install-deps.sh installs them)`);
    await sweep(TEST_PREFIX);
    const up = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--prefix", prefix], { timeoutMs: 180_000 });
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const st = await tapnet(["lab", "status", "--json", "--prefix", prefix]);
    expect(st.code, st.stderr).toBe(0);
    ({ nodes, pods: labPods, outside } = JSON.parse(st.stdout) as { nodes: LabNodeJson[]; pods: LabPodJson[]; outside: { netns: string; address: string } });

    const base = podmanBase(prefix);
    pm1 = new Podman(join(base, "node1"), node("node1").netns);
    pm2 = new Podman(join(base, "node2"), node("node2").netns);
    podmans.push(pm1, pm2);
    const tarball = join(base, "bb.tar");
    mkdirSync(base, { recursive: true });
    await busyboxTarball(base, tarball);
    for (const [pm, n, extra] of [[pm1, node("node1"), ["--portmap"]], [pm2, node("node2"), []]] as const) {
      await pm.setUp(tarball);
      // podman 4.3 vendors libcni 1.1: it refuses a conflist of 1.1.0 (so does Debian's portmap
      // 1.1.1) and cannot parse a 1.1.0 result; 1.0.0 is the newest both speak.
      const r = await tapnet(["cni", "install", "--bin-dir", pm.binDir, "--conf-dir", pm.networkDir, "--socket", socketOf(n), "--cni-version", "1.0.0", ...extra]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    }
  });

  afterAll(async () => {
    const errors: string[] = [];
    for (const pm of podmans) await pm.destroy().catch((e: Error) => errors.push(e.message));
    const down = await tapnet(["lab", "down", "--prefix", prefix]);
    if (down.code !== 0) errors.push(`lab down: ${down.stderr}`);
    await runCmd("rm", ["-rf", podmanBase(prefix)]);
    if (existsSync(podmanBase(prefix))) errors.push(`${podmanBase(prefix)} is left`);
    if (errors.length) throw new Error(errors.join("\n"));
  });

  it("tapnet cni install writes the plugin and a conflist naming the node's switch, which podman lists", async () => {
    for (const [pm, n] of [[pm1, node("node1")], [pm2, node("node2")]] as const) {
      const list = JSON.parse(readFileSync(join(pm.networkDir, "10-tapnet.conflist"), "utf8"));
      expect(list.name).toBe("tapnet");
      expect(list.cniVersion).toBe("1.0.0");
      expect(list.plugins[0]).toEqual({ type: "tapnet", socket: socketOf(n) });
      expect(statSync(join(pm.binDir, "tapnet")).mode & 0o111).toBe(0o111);
      const nets = await pm.ok(["network", "ls", "--format", "{{.Name}}"]);
      expect(nets.split("\n")).toContain("tapnet");
    }
    const chain = JSON.parse(readFileSync(join(pm1.networkDir, "10-tapnet.conflist"), "utf8")).plugins;
    expect(chain[1]).toEqual({ type: "portmap", capabilities: { portMappings: true } });
  });

  it("containers on two nodes get an address of their node's pod CIDR, a default route via its gateway, lo up", async () => {
    await pm1.ok(["run", "-d", "--name", "pm-a", "--network", "tapnet", IMAGE, "sleep", "3600"]);
    await pm2.ok(["run", "-d", "--name", "pm-b", "--network", "tapnet", IMAGE, "httpd", "-f", "-p", "0.0.0.0:80", "-h", "/www"]);
    ips.a = await pm1.ip("pm-a");
    ips.b = await pm2.ip("pm-b");
    expect(inCidr24(ips.a, node("node1").podCidr), `${ips.a} in ${node("node1").podCidr}`).toBe(true);
    expect(inCidr24(ips.b, node("node2").podCidr), `${ips.b} in ${node("node2").podCidr}`).toBe(true);
    for (const [pm, c, n] of [[pm1, "pm-a", node("node1")], [pm2, "pm-b", node("node2")]] as const) {
      const addr = await pm.ok(["exec", c, "ip", "addr", "show", "eth0"]);
      expect(addr).toContain(`inet ${ips[c.slice(3)]}/24`);
      expect(await pm.ok(["exec", c, "ip", "route"])).toMatch(new RegExp(`^default via ${n.gateway.replace(/\./g, "\\.")} dev eth0`, "m"));
      expect(await pm.ok(["exec", c, "ip", "addr", "show", "lo"])).toContain("inet 127.0.0.1/8");
      // What podman recorded is what the plugin returned: the interface's MAC.
      const mac = await pm.ok(["inspect", "-f", '{{(index .NetworkSettings.Networks "tapnet").MacAddress}}', c]);
      expect(addr).toContain(`link/ether ${mac}`);
    }
  });

  it("the containers ping each other and the lab's pods, and the lab's pods ping them", async () => {
    const pod1 = labPods.find((p) => p.node === "node1")!;
    const pod2 = labPods.find((p) => p.node === "node2")!;
    for (const [pm, c, to] of [[pm1, "pm-a", ips.b], [pm2, "pm-b", ips.a], [pm1, "pm-a", pod1.ip], [pm1, "pm-a", pod2.ip], [pm2, "pm-b", pod1.ip], [pm1, "pm-a", node("node2").gateway]] as const) {
      const r = await pm.run(["exec", c, "ping", "-c", "2", "-i", "0.2", "-W", "2", to]);
      expect(r.code, `${c} -> ${to}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    for (const [pod, to] of [[pod1, ips.a], [pod1, ips.b], [pod2, ips.a]] as const) {
      const r = await runCmd("ip", ["netns", "exec", pod.netns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", to]);
      expect(r.code, `${pod.name} -> ${to}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it("TCP between containers and with the lab's pods: each server sees the client's own address", async () => {
    // pm-b serves its caller's address (REMOTE_ADDR, a CGI of busybox httpd).
    expect(await pm1.ok(["exec", "pm-a", "wget", "-q", "-O", "-", `http://${ips.b}/cgi-bin/ip`])).toBe(ips.a);
    const pod1 = labPods.find((p) => p.node === "node1")!;
    const fromPod = await wgetFromNs(pod1.netns, `http://${ips.b}/cgi-bin/ip`);
    expect(fromPod.stdout.trim(), fromPod.stderr).toBe(pod1.ip);
    // The other way with nc: a server in pm-a, a client in pm-b; what arrived is what was sent.
    await pm1.ok(["exec", "-d", "pm-a", "sh", "-c", "nc -l -p 5000 > /tmp/got"]);
    const token = `tapnet-${process.pid}-${Date.now()}`;
    let sent = false;
    for (let i = 0; i < 50 && !sent; i++) {
      sent = (await pm2.run(["exec", "pm-b", "sh", "-c", `echo ${token} | nc ${ips.a} 5000`])).code === 0;
      if (!sent) await new Promise((r) => setTimeout(r, 100));
    }
    expect(sent, "nc from pm-b to pm-a:5000").toBe(true);
    let got = "";
    for (let i = 0; i < 50 && got !== token; i++) {
      got = (await pm1.run(["exec", "pm-a", "cat", "/tmp/got"])).stdout.trim();
      if (got !== token) await new Promise((r) => setTimeout(r, 100));
    }
    expect(got).toBe(token);
  });

  it("the containers are pods: in tapnet get pods on their node with their address, and on their node's switch", async () => {
    const list = await waitForPods((l) => [ips.a, ips.b].every((ip) => l.some((p) => p.status?.podIP === ip)), "the containers' pods");
    for (const [c, n, pm] of [["pm-a", "node1", pm1], ["pm-b", "node2", pm2]] as const) {
      const pod = list.find((p) => p.status?.podIP === ips[c.slice(3)])!;
      // podman passes the container's name as K8S_POD_NAME.
      expect(pod.metadata.name).toBe(c);
      expect(pod.spec.nodeName).toBe(n);
      const id = await pm.ok(["inspect", "-f", "{{.Id}}", c]);
      expect(Object.values(pod.metadata.annotations ?? {})).toContain(id);
      const onSwitch = await switchPods(node(n));
      expect(onSwitch.map((p) => p.ip)).toContain(ips[c.slice(3)]);
    }
    const wide = await tapnet(["get", "pods", "-A", "-o", "wide", "--prefix", prefix]);
    expect(wide.stdout).toMatch(new RegExp(`\\bpm-a\\b.*\\b${ips.a.replace(/\./g, "\\.")}\\b.*\\bnode1\\b`));
  });

  it("a portmap chained after tapnet publishes a container's port on its node's address (podman run -p)", async () => {
    await pm1.ok(["run", "-d", "--name", "pm-web", "-p", "8080:80", "--network", "tapnet", IMAGE, "httpd", "-f", "-p", "0.0.0.0:80", "-h", "/www"]);
    const web = await pm1.ip("pm-web");
    const id = await pm1.ok(["inspect", "-f", "{{.Id}}", "pm-web"]);
    // The DNAT rules are node1's (podman ran the plugins in node1's namespace), not the host's.
    const rules = await natRules(node("node1").netns);
    expect(rules).toContain(id);
    expect(rules).toContain(`--to-destination ${web}:80`);
    expect(await natRules()).not.toContain(id);
    // Clients beyond node1 reach the container at node1's address:8080 and it sees their own
    // address (node2, the lab's outside); a pod on node1 gets there too, masqueraded by portmap's
    // hairpin rule to the gateway's address.
    const url = `http://${node("node1").address}:8080/cgi-bin/ip`;
    for (let i = 0; i < 20; i++) if ((await wgetFromNs(node("node2").netns, url)).code === 0) break; else await new Promise((r) => setTimeout(r, 100));
    const pod1 = labPods.find((p) => p.node === "node1")!;
    for (const [netns, seen] of [[node("node2").netns, node("node2").address], [outside.netns, outside.address], [pod1.netns, node("node1").gateway]]) {
      const r = await wgetFromNs(netns, url);
      expect(r.stdout.trim(), `${netns} -> ${url}: exit ${r.code} ${r.stderr}`).toBe(seen);
    }
    // Removed with the container: the rules go, and the port no longer answers.
    await pm1.ok(["rm", "-f", "-t", "0", "pm-web"]);
    expect(await natRules(node("node1").netns)).not.toContain(id);
    const after = await wgetFromNs(node("node2").netns, url);
    expect(after.code).not.toBe(0);
  });

  it("podman stop detaches the container (DEL) and podman start attaches it again (ADD)", async () => {
    const sandbox = await pm2.ok(["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "pm-b"]);
    await pm2.ok(["stop", "-t", "0", "pm-b"]);
    expect(existsSync(sandbox), `${sandbox} after stop`).toBe(false);
    expect((await switchPods(node("node2"))).map((p) => p.ip)).not.toContain(ips.b);
    await waitForPods((l) => !l.some((p) => p.metadata.name === "pm-b"), "pm-b gone from the store");
    await pm2.ok(["start", "pm-b"]);
    ips.b = await pm2.ip("pm-b");
    expect(inCidr24(ips.b, node("node2").podCidr), `${ips.b} in ${node("node2").podCidr}`).toBe(true);
    await waitForPods((l) => l.some((p) => p.metadata.name === "pm-b" && p.status?.podIP === ips.b), "pm-b back in the store");
    const pod1 = labPods.find((p) => p.node === "node1")!;
    const r = await wgetFromNs(pod1.netns, `http://${ips.b}/cgi-bin/ip`);
    expect(r.stdout.trim(), r.stderr).toBe(pod1.ip);
  });

  it("podman rm detaches the container: gone from the switch, from tapnet get pods, its namespace deleted", async () => {
    const sandbox = await pm1.ok(["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "pm-a"]);
    const id = await pm1.ok(["inspect", "-f", "{{.Id}}", "pm-a"]);
    const cached = `/var/lib/cni/results/tapnet-${id}-eth0`; // libcni's cache of the ADD's result
    expect(existsSync(sandbox), sandbox).toBe(true);
    expect(existsSync(cached), cached).toBe(true);
    await pm1.ok(["rm", "-f", "-t", "0", "pm-a"]);
    expect(existsSync(sandbox), `${sandbox} after rm`).toBe(false);
    expect(existsSync(cached), `${cached} after rm`).toBe(false);
    expect((await switchPods(node("node1"))).map((p) => p.ip)).not.toContain(ips.a);
    await waitForPods((l) => !l.some((p) => p.status?.podIP === ips.a || p.metadata.name === "pm-a"), "pm-a gone from the store");
    const ping = await pm2.run(["exec", "pm-b", "ping", "-c", "1", "-W", "1", ips.a]);
    expect(ping.code, "pm-a's address answers no more").not.toBe(0);
    // pm-b is still there, and still reachable.
    const still = await runCmd("ip", ["netns", "exec", labPods.find((p) => p.node === "node1")!.netns, "ping", "-n", "-c", "1", "-W", "2", ips.b]);
    expect(still.code, still.stdout).toBe(0);
    // Its address is free again: the next container on node1 may have it, and is on the network.
    await pm1.ok(["run", "-d", "--name", "pm-c", "--network", "tapnet", IMAGE, "sleep", "3600"]);
    const c = await pm1.ip("pm-c");
    expect(inCidr24(c, node("node1").podCidr)).toBe(true);
    const r = await pm1.run(["exec", "pm-c", "ping", "-c", "2", "-W", "2", ips.b]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await pm1.containerIds()).length).toBe(1);
  });
});

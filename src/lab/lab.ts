/**
 * The lab: a whole cluster on one machine, in network namespaces.
 *
 *   <prefix>-underlay     a bridge br0, the "switch" the nodes' VMs would be cabled to
 *   <prefix>-node<i>      a node: eth0 on the underlay (192.168.56.<10+i>), its tapnet switch
 *                         process, and the switch's gateway port tapnet0
 *   <prefix>-node<i>-pod<j>  a pod: eth0 is a TAP held by node i's switch
 *   <prefix>-outside      "the internet": beyond node 1 (ext0 203.0.113.1 - eth0 203.0.113.2),
 *                         the default route of every node; it sees what leaves the cluster
 *                         masqueraded to a node's address
 *
 * With --kernel-node K, node K runs no tapnet: it is a plain Linux node with a bridge, veth
 * pods and a VXLAN device, as flannel's vxlan backend sets one up (kernel-node.ts).
 *
 * The mode builds the same nodes, pods, addresses and underlay other ways, for comparison
 * (`tapnet bench`):
 *   tapnet        every node runs a tapnet switch (but --kernel-node K)
 *   kernel-vxlan  every node is a plain Linux VXLAN node (kernel-node.ts)
 *   host-gw       every node is a plain Linux node routing other nodes' pod CIDRs over the
 *                 underlay, with no encapsulation (host-gw-node.ts): the ceiling
 *
 * Every namespace is written to the lab's journal (plan.ts) before it is created, and every
 * switch's pid as soon as it starts, so `lab down` can remove exactly what was made, by name,
 * even after an `up` that failed half way or a machine that lost the lab's processes. Nothing
 * is matched by pattern.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { allowedCpus } from "../io/cpu.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatCidr } from "../node/cidr.ts";
import { formatClusterConfig } from "../node/config.ts";
import { inNetns, ip, ipBatch, netnsDelete, netnsExists } from "../node/exec.ts";
import { gatewayOf, PodIpam } from "../node/ipam.ts";
import { isAlive, rpcCall } from "../node/rpc.ts";
import { setUpHostGwNode } from "./host-gw-node.ts";
import { addKernelPod, setUpKernelNode } from "./kernel-node.ts";
import {
  checkLabOptions, checkPrefix, labConfig, labDir, LabError, OUTSIDE_ADDRESS, OUTSIDE_NODE_ADDRESS, readLabState, REPO_ROOT, saveLabState,
  switchCommand, UNDERLAY_CIDR_BASE, type LabNode, type LabOptions, type LabPod, type LabState,
} from "./plan.ts";

async function addNetns(state: LabState, name: string, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new LabError("interrupted");
  if (netnsExists(name)) throw new LabError(`network namespace ${name} already exists: another lab or tool is using the prefix ${state.prefix} (choose another --prefix)`);
  state.namespaces.push(name);
  saveLabState(state); // journal first: a crash between these two lines leaves nothing unrecorded
  await ip("netns", "add", name);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForSwitch(node: LabNode, signal?: AbortSignal, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (signal?.aborted) throw new LabError("interrupted");
    if (await isAlive(node.control)) return;
    if (!pidAlive(node.pid)) break;
    await sleep(100);
  }
  const tail = existsSync(node.log) ? readFileSync(node.log, "utf8").trim().split("\n").slice(-5).join("\n  ") : "(no log)";
  throw new LabError(`the switch of ${node.name} ${pidAlive(node.pid) ? "did not answer in time" : "exited"}; its log ${node.log} ends:\n  ${tail}`);
}

async function waitForwarding(pod: LabPod, gateway: string, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    try {
      await inNetns(pod.netns, "ping", ["-c", "1", "-W", "1", "-q", gateway]);
      return;
    } catch (e) {
      last = (e as Error).message;
    }
  }
  throw new LabError(`pod ${pod.name} cannot reach its gateway ${gateway}: ${last}`);
}

export async function labUp(opts: LabOptions): Promise<LabState> {
  const mode = checkLabOptions(opts);
  const kernel = opts.kernelNode;
  const say = opts.progress ?? (() => {});
  const dir = labDir(opts.prefix);
  if (readLabState(opts.prefix)) throw new LabError(`a lab named ${opts.prefix} is already up: see \`tapnet lab status\`, or remove it with \`tapnet lab down${opts.prefix === "tapnet" ? "" : ` --prefix ${opts.prefix}`}\``);
  const tunneled = labConfig(opts.nodes, opts.backend);
  // host-gw carries pods' packets unencapsulated: pods get the underlay's whole MTU.
  const config = mode === "host-gw" ? { ...tunneled, podMtu: tunneled.mtu } : tunneled;
  const cmd = mode === "tapnet" ? switchCommand(opts.runtime) : [];
  const cpus = opts.pin === false ? [] : allowedCpus();
  let switches = 0;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state: LabState = {
    prefix: opts.prefix, backend: opts.backend, mode, runtime: opts.runtime, createdAt: new Date().toISOString(),
    namespaces: [], nodes: [], pods: [], kernelNodes: [],
  };
  saveLabState(state);
  try {
    const configPath = join(dir, "cluster.yaml");
    writeFileSync(configPath, `# written by tapnet lab up\n${toYaml(formatClusterConfig(config))}`);

    const underlay = `${opts.prefix}-underlay`;
    say(`underlay: namespace ${underlay}, bridge br0`);
    await addNetns(state, underlay, opts.signal);
    await ipBatch(["link add br0 type bridge", "link set br0 up", "link set lo up"], underlay);

    for (const [i, n] of config.nodes.entries()) {
      const netns = `${opts.prefix}-${n.name}`;
      await addNetns(state, netns, opts.signal);
      await ip("-n", underlay, "link", "add", n.name, "mtu", String(config.mtu), "type", "veth", "peer", "name", "eth0", "netns", netns);
      await ipBatch([`link set ${n.name} master br0`, `link set ${n.name} up`], underlay);
      await ipBatch([`addr add ${formatIpv4(n.address)}/24 dev eth0`, "link set eth0 up", "link set lo up"], netns);
      const base = { name: n.name, netns, address: formatIpv4(n.address), podCidr: formatCidr(n.podCidr), gateway: formatIpv4(gatewayOf(n.podCidr)) };
      if (mode !== "tapnet" || i + 1 === kernel) {
        if (mode === "host-gw") await setUpHostGwNode(config, n, netns, "eth0");
        else await setUpKernelNode(config, n, netns, "eth0");
        state.nodes.push({ ...base, pid: 0, control: "", log: "" });
        state.kernelNodes.push(n.name);
        saveLabState(state);
        say(`${n.name}: namespace ${netns}, address ${base.address}, pod CIDR ${base.podCidr}, a plain Linux node (${mode === "host-gw" ? "cni0, routes via the underlay" : "cni0, flannel.1"})`);
        continue;
      }
      const control = join(dir, `${n.name}.sock`);
      const log = join(dir, `${n.name}.log`);
      const cpu = cpus.length > 1 ? cpus[switches++ % cpus.length] : undefined;
      const fd = openSync(log, "a");
      // nsenter, not `ip netns exec`: that also gives the process a mount namespace of its own,
      // from which namespaces the switch creates for pods would never show on the host.
      const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", ...cmd, "switch", "--config", configPath, "--node", n.name, "--control", control, ...(cpu === undefined ? [] : ["--cpu", String(cpu)])], {
        detached: true, stdio: ["ignore", fd, fd], cwd: REPO_ROOT,
      });
      closeSync(fd);
      child.unref();
      const node: LabNode = { ...base, pid: child.pid ?? -1, control, log, ...(cpu === undefined ? {} : { cpu }) };
      state.nodes.push(node);
      saveLabState(state);
      say(`${n.name}: namespace ${netns}, address ${node.address}, pod CIDR ${node.podCidr}, switch pid ${node.pid} (${opts.runtime})${cpu === undefined ? "" : `, datapath on CPU ${cpu}`}`);
    }

    // The outside, beyond node 1; every other node's way out is node 1.
    const outside = `${opts.prefix}-outside`;
    const node1 = state.nodes[0];
    await addNetns(state, outside, opts.signal);
    await ip("-n", node1.netns, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", outside);
    await ipBatch([`addr add ${OUTSIDE_NODE_ADDRESS}/24 dev ext0`, "link set ext0 up", `route replace default via ${OUTSIDE_ADDRESS}`], node1.netns);
    await ipBatch([`addr add ${OUTSIDE_ADDRESS}/24 dev eth0`, "link set eth0 up", "link set lo up", `route replace ${UNDERLAY_CIDR_BASE}0/24 via ${OUTSIDE_NODE_ADDRESS}`], outside);
    for (const n of state.nodes.slice(1)) await ip("-n", n.netns, "route", "replace", "default", "via", node1.address);
    state.outside = { netns: outside, address: OUTSIDE_ADDRESS };
    saveLabState(state);
    say(`outside: namespace ${outside}, address ${OUTSIDE_ADDRESS}, reached through ${node1.name}`);

    for (const node of state.nodes) if (node.pid) await waitForSwitch(node, opts.signal);

    for (const [i, node] of state.nodes.entries()) {
      const ipam = new PodIpam(config.nodes[i].podCidr);
      for (let j = 1; j <= opts.pods; j++) {
        const name = `${node.name}-pod${j}`;
        const netns = `${opts.prefix}-${name}`;
        await addNetns(state, netns, opts.signal);
        let pod: LabPod;
        if (node.pid === 0) {
          const addr = ipam.allocate();
          const mac = await addKernelPod(config, config.nodes[i], node.netns, netns, `veth${j}`, addr);
          pod = { name, netns, node: node.name, ip: formatIpv4(addr), mac, ifname: "eth0" };
        } else {
          const rec = await rpcCall<{ ip: string; mac: string; ifname: string }>(node.control, "pod.add", { name, netns });
          pod = { name, netns, node: node.name, ip: rec.ip, mac: rec.mac, ifname: rec.ifname };
        }
        state.pods.push(pod);
        saveLabState(state);
        say(`${name}: namespace ${netns}, ${pod.ifname} ${pod.ip} ${pod.mac}`);
      }
    }
    for (const pod of state.pods) await waitForwarding(pod, state.nodes.find((n) => n.name === pod.node)!.gateway);
    say("forwarding");
    return state;
  } catch (e) {
    say(`lab up failed, removing what it made: ${(e as Error).message.split("\n")[0]}`);
    await labDown(opts.prefix).catch(() => {});
    throw e;
  }
}

/** Is `pid` still the switch this lab started (and not a recycled pid)? */
function isOurSwitch(pid: number, control: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("switch") && cmdline.includes(control);
  } catch {
    return false;
  }
}

/** Removes everything the lab made. Safe to run twice, and when nothing is up. */
export async function labDown(prefix: string, say: (l: string) => void = () => {}): Promise<{ removed: boolean }> {
  checkPrefix(prefix);
  const state = readLabState(prefix);
  if (!state) {
    rmSync(labDir(prefix), { recursive: true, force: true });
    return { removed: false };
  }
  const running = state.nodes.filter((n) => n.pid > 0 && isOurSwitch(n.pid, n.control));
  for (const n of running) {
    try { process.kill(n.pid, "SIGTERM"); } catch { /* gone already */ }
  }
  const t0 = Date.now();
  while (running.some((n) => isOurSwitch(n.pid, n.control)) && Date.now() - t0 < 5_000) await sleep(50);
  for (const n of running) {
    if (isOurSwitch(n.pid, n.control)) {
      say(`${n.name}: switch did not stop on SIGTERM, killing it`);
      try { process.kill(n.pid, "SIGKILL"); } catch { /* gone */ }
    }
  }
  for (const n of running) say(`${n.name}: switch stopped`);
  const failures: string[] = [];
  for (const ns of [...state.namespaces].reverse()) {
    try {
      if (await netnsDelete(ns)) say(`namespace ${ns} deleted`);
    } catch (e) {
      failures.push(`${ns}: ${(e as Error).message}`);
    }
  }
  if (failures.length) throw new LabError(`could not delete: ${failures.join("; ")} (the journal is kept; run lab down again)`);
  rmSync(labDir(prefix), { recursive: true, force: true });
  return { removed: true };
}

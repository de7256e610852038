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
 * The store (--store, plan.ts) is where the switches keep the cluster's state: "file" (the
 * default), a directory in the lab's, every node and pod CIDR in cluster.yaml; or "etcd", a
 * real etcd in the underlay namespace at 192.168.56.2 (lab-etcd.ts), with no node in
 * cluster.yaml: each switch leases its pod CIDR from etcd and learns its peers there, and
 * `lab node add|stop|start` (nodes.ts) change the cluster while it runs.
 *
 * Every namespace is written to the lab's journal (plan.ts) before it is created, and every
 * switch's pid (and the lab's etcd's) as soon as it starts, so `lab down` can remove exactly what was made, by name,
 * even after an `up` that failed half way or a machine that lost the lab's processes. Nothing
 * is matched by pattern. `lab down` also stops any switch running in the lab's namespaces that
 * the lab did not start (reap.ts), before it deletes them.
 *
 * Each switch runs under a supervisor (supervisor.ts) that restarts it within a second of its
 * death; its pods keep their interfaces meanwhile and the new switch takes them over. `lab up`
 * on a lab that is up, with the same shape (mode, backend, store, nodes, pods per node), starts
 * what is not running (a node whose supervisor was killed too, or stopped) and waits until the
 * lab forwards again; with another shape it refuses, as it always did.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { allowedCpus } from "../io/cpu.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { formatCidr } from "../wire/cidr.ts";
import { ip, ipBatch, netnsDelete, which } from "../node/exec.ts";
import { gatewayOf, PodIpam } from "../node/ipam.ts";
import { setUpHostGwNode } from "./host-gw-node.ts";
import { addKernelPod, setUpKernelNode } from "./kernel-node.ts";
import { startLabEtcd, stopLabEtcd } from "./lab-etcd.ts";
import { addNetns, attachPod, cableNode, nodeRunning, spawnSwitch, startNode, stopSwitches, waitForPeers, waitForSwitch, waitForwarding } from "./nodes.ts";
import { stopSwitchesIn } from "./reap.ts";
import {
  checkLabOptions, checkPrefix, labConfig, labConfigFile, labDir, LabError, labStore, OUTSIDE_ADDRESS, podNetnsMade, OUTSIDE_NODE_ADDRESS, readLabState,
  saveLabState, switchCommand, UNDERLAY_BRIDGE_MAC, UNDERLAY_CIDR_BASE, type LabNode, type LabOptions, type LabPod, type LabState,
} from "./plan.ts";

export async function labUp(opts: LabOptions): Promise<LabState> {
  const mode = checkLabOptions(opts);
  const store = opts.store ?? "file";
  const kernel = opts.kernelNode;
  const say = opts.progress ?? (() => {});
  const dir = labDir(opts.prefix);
  const existing = readLabState(opts.prefix);
  if (existing) return labResume(existing, opts, mode);
  const tunneled = labConfig(opts.nodes, opts.backend, opts.insecure);
  // host-gw carries pods' packets unencapsulated: pods get the underlay's whole MTU.
  const config = mode === "host-gw" ? { ...tunneled, podMtu: tunneled.mtu } : tunneled;
  if (mode === "tapnet") switchCommand(opts.runtime); // no such runtime: say so before anything is made
  if (store === "etcd" && !which("etcd")) throw new LabError("--store etcd needs etcd installed (Debian's etcd-server package; scripts/install-deps.sh installs it)");
  const cpus = opts.pin === false ? [] : allowedCpus();
  let switches = 0;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state: LabState = {
    prefix: opts.prefix, backend: opts.backend, mode, runtime: opts.runtime, createdAt: new Date().toISOString(),
    namespaces: [], nodes: [], pods: [], kernelNodes: [], store: labStore(opts.prefix, store, opts.leaseTtl),
  };
  saveLabState(state);
  try {
    writeFileSync(join(dir, "cluster.yaml"), `# written by tapnet lab up\n${toYaml(labConfigFile(config, store))}`);

    const underlay = `${opts.prefix}-underlay`;
    say(`underlay: namespace ${underlay}, bridge br0`);
    await addNetns(state, underlay, opts.signal);
    await ipBatch([`link add br0 address ${UNDERLAY_BRIDGE_MAC} type bridge`, "link set br0 up", "link set lo up"], underlay);
    if (store === "etcd") await startLabEtcd(state, say);

    for (const [i, n] of config.nodes.entries()) {
      const address = formatIpv4(n.address);
      const netns = await cableNode(state, n.name, address, config.mtu, opts.signal);
      // With etcd, a switch's CIDR is what it leases: known once it is ready.
      const leased = store === "etcd";
      const base = { name: n.name, netns, address, podCidr: leased ? "" : formatCidr(n.podCidr), gateway: leased ? "" : formatIpv4(gatewayOf(n.podCidr)) };
      if (mode !== "tapnet" || i + 1 === kernel) {
        if (mode === "host-gw") await setUpHostGwNode(config, n, netns, "eth0");
        else await setUpKernelNode(config, n, netns, "eth0");
        state.nodes.push({ ...base, pid: 0, control: "", log: "" });
        state.kernelNodes.push(n.name);
        saveLabState(state);
        say(`${n.name}: namespace ${netns}, address ${base.address}, pod CIDR ${base.podCidr}, a plain Linux node (${mode === "host-gw" ? "cni0, routes via the underlay" : "cni0, flannel.1"})`);
        continue;
      }
      const cpu = cpus.length > 1 ? cpus[switches++ % cpus.length] : undefined;
      const node: LabNode = { ...base, pid: 0, control: join(dir, `${n.name}.sock`), log: join(dir, `${n.name}.log`), ...(cpu === undefined ? {} : { cpu }) };
      state.nodes.push(node);
      spawnSwitch(state, node);
      saveLabState(state);
      say(`${n.name}: namespace ${netns}, address ${node.address}, ${leased ? "pod CIDR leased from etcd" : `pod CIDR ${node.podCidr}`}, supervisor pid ${node.supervisor} (${opts.runtime})${cpu === undefined ? "" : `, datapath on CPU ${cpu}`}`);
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

    for (const node of state.nodes) {
      if (!node.supervisor) continue;
      await waitForSwitch(node, opts.signal);
      saveLabState(state);
      say(`${node.name}: switch pid ${node.pid}${store === "etcd" ? `, leased pod CIDR ${node.podCidr}` : ""}`);
    }
    await waitForPeers(state);

    for (const [i, node] of state.nodes.entries()) {
      const ipam = new PodIpam(config.nodes[i].podCidr);
      for (let j = 1; j <= opts.pods; j++) {
        const name = `${node.name}-pod${j}`;
        const netns = `${opts.prefix}-${name}`;
        await addNetns(state, netns, opts.signal);
        let pod: LabPod;
        if (state.kernelNodes.includes(node.name)) {
          const addr = ipam.allocate();
          const mac = await addKernelPod(config, config.nodes[i], node.netns, netns, `veth${j}`, addr);
          pod = { name, netns, node: node.name, ip: formatIpv4(addr), mac, ifname: "eth0" };
        } else {
          pod = await attachPod(node, name, netns);
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

/** Removes everything the lab made. Safe to run twice, and when nothing is up. */
export async function labDown(prefix: string, say: (l: string) => void = () => {}): Promise<{ removed: boolean }> {
  checkPrefix(prefix);
  const state = readLabState(prefix);
  if (!state) {
    rmSync(labDir(prefix), { recursive: true, force: true });
    return { removed: false };
  }
  await stopSwitches(state.nodes, say);
  await stopSwitchesIn(state.namespaces, say);
  const failures: string[] = [];
  // etcd after the switches (they would log its loss), before its namespace.
  await stopLabEtcd(state, say).catch((e) => failures.push(`etcd: ${(e as Error).message}`));
  // The pods' namespaces a killed switch left (the journal's own come after: the underlay last).
  const journaled = new Set(state.namespaces);
  const logs = state.nodes.map((n) => { try { return readFileSync(n.log, "utf8"); } catch { return ""; } });
  const left = podNetnsMade(logs).filter((n) => !journaled.has(n) && existsSync(`/run/netns/${n}`));
  for (const ns of [...left, ...[...state.namespaces].reverse()]) {
    try {
      if (await netnsDelete(ns)) say(`namespace ${ns} deleted`);
    } catch (e) {
      failures.push(`${ns}: ${(e as Error).message}`);
    }
  }
  if (failures.length) throw new LabError(`could not remove: ${failures.join("; ")} (the journal is kept; run lab down again)`);
  rmSync(labDir(prefix), { recursive: true, force: true });
  return { removed: true };
}

/**
 * `lab up` on a lab that is up: if it has the shape asked for, whatever of it is not running is
 * started (nodes.ts's startNode: their pods attached again unless the switch took them over),
 * and the lab is waited for until it forwards; otherwise the refusal it always was.
 */
async function labResume(state: LabState, opts: LabOptions, mode: string): Promise<LabState> {
  const say = opts.progress ?? (() => {});
  const store = opts.store ?? "file";
  const podsOf = (n: string) => state.pods.filter((p) => p.node === n).length;
  const same = (state.mode ?? "tapnet") === mode && state.backend === opts.backend && (state.store?.type ?? "file") === store
    && state.nodes.length === opts.nodes && state.nodes.every((n) => podsOf(n.name) === opts.pods)
    && (state.kernelNodes[0] ?? "") === (opts.kernelNode ? `node${opts.kernelNode}` : "")
    && state.nodes.every((n) => existsSync(`/run/netns/${n.netns}`));
  if (!same) throw new LabError(`a lab named ${opts.prefix} is already up: see \`tapnet lab status\`, or remove it with \`tapnet lab down${opts.prefix === "tapnet" ? "" : ` --prefix ${opts.prefix}`}\``);
  for (const node of state.nodes) {
    if (state.kernelNodes.includes(node.name)) continue;
    if (nodeRunning(node)) {
      await waitForSwitch(node, opts.signal);
      saveLabState(state);
      continue;
    }
    say(`${node.name}: its switch is not running: starting it`);
    await startNode(state, node, say);
  }
  await waitForPeers(state);
  for (const pod of state.pods) await waitForwarding(pod, state.nodes.find((n) => n.name === pod.node)!.gateway);
  say(`lab ${opts.prefix} was up already; forwarding`);
  return state;
}

/**
 * A lab's nodes, one at a time: cabling a node's namespace to the underlay, starting its
 * switch and waiting until it is ready, attaching its pods, stopping it; and the commands
 * built from them, `lab node add|stop|start`, which let a lab on the etcd store show a node
 * joining, expiring and coming back:
 *
 *   add    node N+1: namespace <prefix>-node<N+1>, a veth to br0, address 192.168.56.<10+N+1>,
 *          its switch started with the same flags as the others (plan.ts's switchArgs); it
 *          leases a pod CIDR from etcd, and the others learn it from there, with no restart.
 *   stop   SIGTERM to a node's supervisor, which stops its switch (cleanly: the pods are
 *          detached), then waits for it to exit; its namespace and its pods' namespaces stay,
 *          its lease is no longer renewed and expires after the TTL.
 *   start  the supervisor and switch again, as they were started; the switch re-reads its own
 *          lease (the same CIDR, if the lease has not expired and been taken) and its pods are
 *          attached again.
 *
 * Each switch runs under a supervisor (supervisor.ts: a restart within a second of a switch's
 * death, pods and all); the journal keeps the supervisor's pid and the switch's.
 *
 * Every step goes to the journal before it is made or as soon as it is (a new pid, a leased
 * CIDR), as in lab.ts, so `lab down` removes exactly what was made.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { allowedCpus } from "../io/cpu.ts";
import { cidrContains, parseCidr } from "../wire/cidr.ts";
import { parseIpv4Address } from "../wire/ipv4.ts";
import { inNetns, ip, ipBatch, netnsDelete, netnsExists } from "../node/exec.ts";
import { isAlive, rpcCall } from "../node/rpc.ts";
import {
  checkPrefix, labDir, LabError, MAX_LAB_NODES, nodeAddress, readLabState, REPO_ROOT, saveLabState, supervisorCommand, supervisorFile, switchArgs, switchCommand,
  type LabNode, type LabPod, type LabState,
} from "./plan.ts";
import { readSupervisorStatus } from "./supervisor.ts";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Journals a namespace, then creates it; refuses one that exists (another lab's). */
export async function addNetns(state: LabState, name: string, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new LabError("interrupted");
  if (netnsExists(name)) throw new LabError(`network namespace ${name} already exists: another lab or tool is using the prefix ${state.prefix} (choose another --prefix)`);
  state.namespaces.push(name);
  saveLabState(state); // journal first: a crash between these two lines leaves nothing unrecorded
  await ip("netns", "add", name);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Is `pid` still the switch this lab started (and not a recycled pid)? */
export function isOurSwitch(pid: number, control: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("switch") && cmdline.includes(control);
  } catch {
    return false;
  }
}

/** A node's namespace, its veth to br0 (named after the node in the underlay) and its address. */
export async function cableNode(state: LabState, name: string, address: string, mtu: number, signal?: AbortSignal): Promise<string> {
  const netns = `${state.prefix}-${name}`;
  const underlay = `${state.prefix}-underlay`;
  await addNetns(state, netns, signal);
  await ip("-n", underlay, "link", "add", name, "mtu", String(mtu), "type", "veth", "peer", "name", "eth0", "netns", netns);
  await ipBatch([`link set ${name} master br0`, `link set ${name} up`], underlay);
  await ipBatch([`addr add ${address}/24 dev eth0`, "link set eth0 up", "link set lo up"], netns);
  return netns;
}

/**
 * Starts a node's supervisor (supervisor.ts), detached, its output appended to the node's log,
 * and it the node's switch in the node's namespace. Records its pid in `node.supervisor` (the
 * switch's, `node.pid`, is known once the switch answers: waitForSwitch). The switch runs
 * under nsenter, not `ip netns exec`: that also gives the process a mount namespace of its
 * own, from which namespaces the switch creates for pods would never show on the host.
 */
export function spawnSwitch(state: LabState, node: LabNode): void {
  const command = ["nsenter", `--net=/run/netns/${node.netns}`, "--", ...switchCommand(state.runtime), ...switchArgs(state, node)];
  const status = supervisorFile(state.prefix, node.name);
  const fd = openSync(node.log, "a");
  const child = spawn(supervisorCommand()[0], [...supervisorCommand().slice(1), "--node", node.name, "--control", node.control, "--status", status, "--log", node.log, "--", ...command], {
    detached: true, stdio: ["ignore", fd, fd], cwd: REPO_ROOT,
  });
  closeSync(fd);
  child.unref();
  node.supervisor = child.pid ?? -1;
  node.pid = 0;
}

/** Is `pid` still the supervisor this lab started for the node whose control socket is `control`? */
export function isOurSupervisor(pid: number | undefined, control: string): boolean {
  if (!pid || pid < 0) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => /(^|\/)supervise\.(ts|mjs)$/.test(a)) && argv.includes(control); // from the sources or the bundle
  } catch {
    return false;
  }
}

/** The pid of the node's running switch: its supervisor's word if it runs, else the journal's. */
export function liveSwitchPid(state: LabState, node: LabNode): number {
  if (isOurSupervisor(node.supervisor, node.control)) {
    const s = readSupervisorStatus(supervisorFile(state.prefix, node.name));
    if (s && s.pid === node.supervisor) return s.switch;
  }
  return node.pid;
}

interface NodeStatus {
  node?: { podCidr?: string; gateway?: string; pid?: number };
}

/**
 * Waits until a node's switch answers its status with a pod CIDR (with the etcd store, once
 * it has leased one), and writes the CIDR and gateway it reports into `node`.
 */
export async function waitForSwitch(node: LabNode, signal?: AbortSignal, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  let why = "did not answer in time";
  while (Date.now() - t0 < timeoutMs) {
    if (signal?.aborted) throw new LabError("interrupted");
    if (await isAlive(node.control)) {
      const s = await rpcCall<NodeStatus>(node.control, "status", {}, 5_000).catch((e: Error) => ({ error: e.message }));
      const cidr = "node" in s ? s.node?.podCidr : undefined;
      if (cidr && typeof parseCidr(cidr) !== "string" && "node" in s && s.node?.gateway) {
        node.podCidr = cidr;
        node.gateway = s.node.gateway;
        if (s.node.pid) node.pid = s.node.pid;
        return;
      }
      why = "error" in s ? `answered its status with an error: ${s.error}` : "reported no pod CIDR in time";
    }
    const supervised = node.supervisor !== undefined;
    if (supervised ? !isOurSupervisor(node.supervisor, node.control) : !pidAlive(node.pid)) {
      why = supervised ? "exited, and its supervisor gave up" : "exited";
      break;
    }
    await sleep(100);
  }
  const tail = existsSync(node.log) ? readFileSync(node.log, "utf8").trim().split("\n").slice(-5).join("\n  ") : "(no log)";
  throw new LabError(`the switch of ${node.name} ${why}; its log ${node.log} ends:\n  ${tail}`);
}

/** Waits until a pod's packets reach its gateway through its switch. */
export async function waitForwarding(pod: LabPod, gateway: string, timeoutMs = 15_000): Promise<void> {
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

/**
 * Waits until every running switch node knows every other's pod CIDR: in its status's node
 * list (the switch's map) and in its kernel's routes over tapnet0. With the etcd store the
 * switches learn each other from etcd, a moment after they start.
 */
export async function waitForPeers(state: LabState, timeoutMs = 15_000): Promise<void> {
  const running = state.nodes.filter((n) => n.pid > 0 && !state.kernelNodes.includes(n.name));
  const t0 = Date.now();
  let missing: string[] = [];
  do {
    missing = [];
    for (const n of running) {
      const routes = await ip("-n", n.netns, "-4", "route", "show").catch(() => "");
      const s = await rpcCall<{ nodes?: { podCidr: string }[] }>(n.control, "status", {}, 5_000).catch(() => undefined);
      const known = s?.nodes?.map((x) => x.podCidr);
      for (const o of running) {
        if (o === n) continue;
        if (!routes.includes(`${o.podCidr} `)) missing.push(`${n.name} has no route to ${o.name}'s ${o.podCidr}`);
        else if (known && !known.includes(o.podCidr)) missing.push(`${n.name}'s switch does not list ${o.name}'s ${o.podCidr}`);
      }
    }
    if (!missing.length) return;
    await sleep(200);
  } while (Date.now() - t0 < timeoutMs);
  throw new LabError(`the switches did not learn each other in ${timeoutMs / 1000} s: ${missing.join("; ")}`);
}

/** Attaches a pod to a switch node (its `pod.add`), asking for `ipWanted` if it is in the node's CIDR. */
export async function attachPod(node: LabNode, name: string, netns: string, ipWanted?: string): Promise<LabPod> {
  const cidr = parseCidr(node.podCidr);
  const want = ipWanted === undefined ? undefined : parseIpv4Address(ipWanted);
  const inside = want !== undefined && typeof cidr !== "string" && cidrContains(cidr, want);
  const rec = await rpcCall<{ ip: string; mac: string; ifname: string }>(node.control, "pod.add", { name, netns, ...(inside ? { ip: ipWanted } : {}) });
  return { name, netns, node: node.name, ip: rec.ip, mac: rec.mac, ifname: rec.ifname };
}

/**
 * Stops the given nodes' switches: SIGTERM to each supervisor (it stops its standby, then its
 * switch, cleanly), and to a switch running without one (an older journal's, or one whose
 * supervisor was killed); SIGKILL to what is left after 15 s.
 */
export async function stopSwitches(nodes: LabNode[], say: (l: string) => void): Promise<void> {
  const targets = nodes.flatMap((n) => [
    ...(isOurSupervisor(n.supervisor, n.control) ? [{ n, pid: n.supervisor!, what: "supervisor" }] : []),
    ...(n.pid > 0 && isOurSwitch(n.pid, n.control) ? [{ n, pid: n.pid, what: "switch" }] : []),
  ]);
  const alive = (t: { n: LabNode; pid: number; what: string }) => (t.what === "supervisor" ? isOurSupervisor(t.pid, t.n.control) : isOurSwitch(t.pid, t.n.control));
  // The supervisor stops its own switch: signalled first, and alone while it does.
  for (const t of targets.filter((x) => x.what === "supervisor")) {
    try { process.kill(t.pid, "SIGTERM"); } catch { /* gone already */ }
  }
  const t0 = Date.now();
  while (targets.some((t) => t.what === "supervisor" && alive(t)) && Date.now() - t0 < 15_000) await sleep(50);
  for (const t of targets.filter((x) => x.what === "switch" && alive(x))) {
    try { process.kill(t.pid, "SIGTERM"); } catch { /* gone already */ }
  }
  while (targets.some(alive) && Date.now() - t0 < 15_000) await sleep(50);
  for (const t of targets.filter(alive)) {
    say(`${t.n.name}: ${t.what} did not stop on SIGTERM, killing it`);
    try { process.kill(t.pid, "SIGKILL"); } catch { /* gone */ }
  }
  for (const n of new Set(targets.map((t) => t.n))) say(`${n.name}: switch stopped`);
}

function labOf(prefix: string): LabState {
  checkPrefix(prefix);
  const state = readLabState(prefix);
  if (!state) throw new LabError(`no lab named ${prefix} is up (start one with tapnet lab up)`);
  return state;
}

function nodeOf(state: LabState, name: string): LabNode {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new LabError(`lab ${state.prefix} has no node ${JSON.stringify(name)} (it has: ${state.nodes.map((n) => n.name).join(", ")})`);
  if (state.kernelNodes.includes(name)) throw new LabError(`${name} is a plain Linux node: it has no switch to stop or start`);
  return node;
}

export interface NodeAddOptions {
  /** Pods to attach to the new node; default as many as the lab's first node has. */
  pods?: number;
  progress?: (line: string) => void;
}

/** `lab node add`: see the top of this file. */
export async function labNodeAdd(prefix: string, opts: NodeAddOptions = {}): Promise<{ state: LabState; node: LabNode }> {
  const say = opts.progress ?? (() => {});
  const state = labOf(prefix);
  if (state.store?.type !== "etcd") throw new LabError("nodes of a file-store lab are fixed by its cluster.yaml; use --store etcd");
  const count = state.nodes.length + 1;
  if (count > MAX_LAB_NODES) throw new LabError(`lab ${prefix} has ${state.nodes.length} nodes, the most a lab can have`);
  const pods = opts.pods ?? state.pods.filter((p) => p.node === state.nodes[0]?.name).length;
  if (!Number.isInteger(pods) || pods < 0 || pods > 64) throw new LabError("--pods must be 0 to 64");
  const name = `node${count}`;
  const address = nodeAddress(count);
  const made = state.namespaces.length;
  try {
    const netns = await cableNode(state, name, address, await underlayMtu(state));
    const node1 = state.nodes[0];
    if (state.outside && node1) await ip("-n", netns, "route", "replace", "default", "via", node1.address);
    const cpus = state.nodes.some((n) => n.cpu !== undefined) ? allowedCpus() : [];
    const cpu = cpus.length > 1 ? cpus[(count - 1) % cpus.length] : undefined;
    const dir = labDir(prefix);
    const node: LabNode = { name, netns, address, podCidr: "", gateway: "", pid: 0, control: join(dir, `${name}.sock`), log: join(dir, `${name}.log`), ...(cpu === undefined ? {} : { cpu }) };
    state.nodes.push(node);
    saveLabState(state);
    spawnSwitch(state, node);
    saveLabState(state);
    say(`${name}: namespace ${netns}, address ${address}, supervisor pid ${node.supervisor}`);
    await waitForSwitch(node);
    saveLabState(state);
    say(`${name}: switch pid ${node.pid}, leased pod CIDR ${node.podCidr}`);
    for (let j = 1; j <= pods; j++) {
      const podName = `${name}-pod${j}`;
      const podNetns = `${prefix}-${podName}`;
      await addNetns(state, podNetns);
      const pod = await attachPod(node, podName, podNetns);
      state.pods.push(pod);
      saveLabState(state);
      say(`${podName}: namespace ${podNetns}, ${pod.ifname} ${pod.ip} ${pod.mac}`);
    }
    for (const pod of state.pods.filter((p) => p.node === name)) await waitForwarding(pod, node.gateway);
    await waitForPeers(state);
    return { state, node };
  } catch (e) {
    say(`${name} did not join, removing what was made for it: ${(e as Error).message.split("\n")[0]}`);
    await undoNodeAdd(state, name, made, say).catch(() => {});
    throw e;
  }
}

/** Takes back a `node add` that failed: its switch, the namespaces made since `made`, its journal entries. */
async function undoNodeAdd(state: LabState, name: string, made: number, say: (l: string) => void): Promise<void> {
  const node = state.nodes.find((n) => n.name === name);
  if (node) await stopSwitches([node], say);
  const kept = state.namespaces.slice(0, made);
  for (const ns of state.namespaces.slice(made).reverse()) {
    try {
      await netnsDelete(ns);
    } catch {
      kept.push(ns); // lab down tries again
    }
  }
  state.namespaces = kept;
  state.nodes = state.nodes.filter((n) => n.name !== name);
  state.pods = state.pods.filter((p) => p.node !== name);
  saveLabState(state);
}

/** The MTU of the lab's underlay links (node1's eth0), which a new node's link must match. */
async function underlayMtu(state: LabState): Promise<number> {
  const first = state.nodes[0];
  const out = first ? await ip("-n", first.netns, "-o", "link", "show", "eth0").catch(() => "") : "";
  return Number(/ mtu (\d+)/.exec(out)?.[1] ?? 1500);
}

/** `lab node stop NAME`: see the top of this file. */
export async function labNodeStop(prefix: string, name: string, say: (l: string) => void = () => {}): Promise<LabNode> {
  const state = labOf(prefix);
  const node = nodeOf(state, name);
  if (!nodeRunning(node)) {
    if (node.pid > 0) say(`${name}: its switch (pid ${node.pid}) had already exited`);
    else throw new LabError(`${name}'s switch is not running (start it with tapnet lab node start ${name})`);
  } else {
    await stopSwitches([node], say);
  }
  node.pid = 0;
  delete node.supervisor;
  saveLabState(state);
  return node;
}

/** `lab node start NAME`: see the top of this file. Returns the node with the CIDR it got. */
export async function labNodeStart(prefix: string, name: string, say: (l: string) => void = () => {}): Promise<LabNode> {
  const state = labOf(prefix);
  const node = nodeOf(state, name);
  if (nodeRunning(node)) throw new LabError(`${name}'s switch is running already (pid ${liveSwitchPid(state, node)})`);
  await startNode(state, node, say);
  return node;
}

/** Does the node's supervisor, or (an older journal's) its switch, run? */
export function nodeRunning(node: LabNode): boolean {
  return isOurSupervisor(node.supervisor, node.control) || (node.pid > 0 && isOurSwitch(node.pid, node.control));
}

/** Starts a stopped node's supervisor and switch; its pods that the switch does not take over are attached again. */
export async function startNode(state: LabState, node: LabNode, say: (l: string) => void): Promise<void> {
  const name = node.name;
  const before = node.podCidr;
  spawnSwitch(state, node);
  saveLabState(state);
  say(`${name}: supervisor pid ${node.supervisor}`);
  await waitForSwitch(node);
  saveLabState(state);
  say(`${name}: switch pid ${node.pid}, pod CIDR ${node.podCidr}${before && before !== node.podCidr ? ` (it had ${before}: its lease had expired and been taken)` : ""}`);
  // Its pods' namespaces stayed; attach again those the switch has not (it may restore some itself).
  const listed = await rpcCall<Omit<LabPod, "node">[]>(node.control, "pod.list", {}, 5_000);
  for (const [i, pod] of state.pods.entries()) {
    if (pod.node !== name || !netnsExists(pod.netns)) continue;
    const has = listed.find((p) => p.name === pod.name);
    if (has) {
      state.pods[i] = { name: pod.name, netns: has.netns, node: name, ip: has.ip, mac: has.mac, ifname: has.ifname };
      continue;
    }
    state.pods[i] = await attachPod(node, pod.name, pod.netns, pod.ip);
    saveLabState(state);
    say(`${pod.name}: attached again, ${state.pods[i].ip}`);
  }
  for (const pod of state.pods.filter((p) => p.node === name)) await waitForwarding(pod, node.gateway);
  await waitForPeers(state);
}

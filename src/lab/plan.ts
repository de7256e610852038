/**
 * What a lab is before it is built, and what is kept of it once it is: its modes, its options
 * and their checks, its names and addresses, its cluster config, the command that runs a
 * switch, and its journal (/run/tapnet/<prefix>/lab.json), written before each namespace is
 * created and as each switch (or the lab's etcd) starts, so that `lab down` removes exactly
 * what was made.
 *
 * A lab's cluster state lives in a store (the switches' --store): "file", a directory in the
 * lab's own (/run/tapnet/<prefix>/store), with every node and pod CIDR in cluster.yaml; or
 * "etcd", a real etcd in the underlay namespace at 192.168.56.2, with no node in cluster.yaml
 * at all: each switch leases its pod CIDR from etcd and learns the others there, so nodes can
 * be added, stopped and started (nodes.ts). The key prefix's cluster name is the lab's prefix.
 * lab.ts builds and removes labs; status.ts asks a lab's switches how they are.
 *
 * A lab on a backend that seals (tapnet) gets a secret of its own, 32 random bytes in base64,
 * in its cluster.yaml (in /run/tapnet/<prefix>/, a directory only root may enter): its
 * switches seal their datagrams, as a cluster's should. `insecure` builds it in the clear.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundled, Deno, entryUrl, isDeno, REPO_URL } from "../io/runtime.ts";
import { findBackend } from "../tunnel/index.ts";
import { checkClusterConfig, formatClusterConfig, type BackendType, type ClusterConfig } from "../node/config.ts";
import { which } from "../node/exec.ts";

export const LAB_ROOT = "/run/tapnet";
export const UNDERLAY_CIDR_BASE = "192.168.56.";
/** The outside namespace's link to node 1 (TEST-NET-3, RFC 5737: never routed anywhere real). */
export const OUTSIDE_NODE_ADDRESS = "203.0.113.1";
export const OUTSIDE_ADDRESS = "203.0.113.2";
/** The lab's etcd, on br0 in the underlay namespace, next to the nodes (192.168.56.<10+i>). */
export const ETCD_ADDRESS = "192.168.56.2";
/**
 * br0's MAC, set when it is made. A Linux bridge with no MAC of its own takes its ports' lowest,
 * so it changed whenever `lab node add` cabled a node with a lower one; every node's ARP entry
 * for etcd's address on br0 then pointed at a MAC gone, their lease renewals hung for seconds,
 * and every old node's lease expired at once. A MAC set by hand stays.
 */
export const UNDERLAY_BRIDGE_MAC = "02:00:c0:a8:38:02";
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Seconds a node's subnet lease lives without renewal (etcd store): the switch's own default. */
export const DEFAULT_LEASE_TTL = 30;
/** `lab up` makes at most 16 nodes; `lab node add` may grow an etcd lab to this many. */
export const MAX_LAB_NODES = 64;
export const REPO_ROOT = fileURLToPath(REPO_URL);

/** How the lab's nodes are built: see the top of lab.ts. */
export const LAB_MODES = ["tapnet", "kernel-vxlan", "host-gw"] as const;
export type LabMode = (typeof LAB_MODES)[number];

/** Where the lab's cluster state lives: see the top of this file. */
export const LAB_STORES = ["file", "etcd"] as const;
export type LabStoreType = (typeof LAB_STORES)[number];

export interface LabOptions {
  /** Default "tapnet". */
  mode?: LabMode;
  nodes: number;
  pods: number;
  prefix: string;
  backend: BackendType;
  runtime: "node" | "deno";
  /** 1-based index of a node to set up as a plain Linux VXLAN node (vxlan backend only). */
  kernelNode?: number;
  /**
   * Pin each switch's datapath thread to a CPU, spread over the CPUs this process may use
   * (the k-th switch on the k-th CPU, round-robin), as each node on a machine of its own
   * would have its CPU. Default true; nothing is pinned on a machine of one CPU.
   */
  pin?: boolean;
  /** Default "file". */
  store?: LabStoreType;
  /** Send in the clear on a backend that would seal (backend.insecure: true); default false. */
  insecure?: boolean;
  /** The subnet lease's TTL in seconds, etcd store only; default DEFAULT_LEASE_TTL. */
  leaseTtl?: number;
  /** Progress lines for a person; the lab prints nothing itself. */
  progress?: (line: string) => void;
  /** Aborting stops `up` between steps; it then removes what it made. */
  signal?: AbortSignal;
}

export interface LabNode {
  name: string;
  netns: string;
  address: string;
  /** With the etcd store, what the switch leased, as its status said when it was last started. */
  podCidr: string;
  gateway: string;
  /**
   * The switch's pid, as of when the lab last started or saw it started; 0 for a plain Linux node
   * (see kernelNodes) or a node `lab node stop` stopped. After a restart by its supervisor the
   * running switch is another: its supervisor's status file names it (status.ts shows it).
   */
  pid: number;
  /** The pid of the node's supervisor (supervisor.ts), which runs and restarts its switch; absent in journals written before supervisors. */
  supervisor?: number;
  control: string;
  log: string;
  /** The CPU its switch's datapath is pinned to, if it is. */
  cpu?: number;
}

export interface LabPod {
  name: string;
  netns: string;
  node: string;
  ip: string;
  mac: string;
  ifname: string;
}

export interface LabState {
  prefix: string;
  backend: BackendType;
  /** Absent in journals written before modes existed: "tapnet". */
  mode?: LabMode;
  runtime: "node" | "deno";
  createdAt: string;
  /** Namespaces this lab made, in the order they were made. */
  namespaces: string[];
  nodes: LabNode[];
  pods: LabPod[];
  /** Nodes that are plain Linux nodes (VXLAN or host-gw), without a switch (pid 0). */
  kernelNodes: string[];
  outside?: { netns: string; address: string };
  /** Absent in journals written before stores existed: their switches were given no --store. */
  store?: LabStore;
}

export interface LabStore {
  type: LabStoreType;
  /** The switches' --store: file:/run/tapnet/<prefix>/store or etcd://192.168.56.2:2379. */
  url: string;
  /** etcd: the subnet lease's TTL the switches are given, in seconds. */
  leaseTtl?: number;
  /** etcd: the lab's etcd process, recorded as soon as it starts (0 until then). */
  etcdPid?: number;
  /** etcd: its data directory, inside the lab's; also how its process is recognised. */
  etcdDataDir?: string;
  etcdLog?: string;
}

export class LabError extends Error {}

export function labDir(prefix: string): string {
  return join(LAB_ROOT, prefix);
}

export function checkPrefix(prefix: string): void {
  // Namespace names derive from it, and node veths are named in the underlay namespace only.
  // Interface names never derive from it (they are node1, eth0, veth1, ...), so it may be longer
  // than an interface name; 40 leaves room for "-node16-pod64" within the control socket's path.
  if (!/^[a-z][a-z0-9-]{0,39}$/.test(prefix)) throw new LabError(`--prefix ${JSON.stringify(prefix)} must start with a letter and be lower-case letters, digits and '-', at most 40 long`);
}

/** The lab's journal; undefined if there is none. One that cannot be read (EACCES: not root) is a LabError saying why. */
export function readLabState(prefix: string): LabState | undefined {
  const file = join(labDir(prefix), "lab.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new LabError(`cannot read the lab journal ${file}: ${code ?? (e as Error).message}${code === "EACCES" || code === "EPERM" ? ` (${LAB_ROOT} is root's: run tapnet as root)` : ""}`);
  }
  try {
    return JSON.parse(text) as LabState;
  } catch (e) {
    throw new LabError(`the lab journal ${file} is unreadable (${(e as Error).message}); remove the lab's namespaces by hand and delete ${labDir(prefix)}`);
  }
}

/** Writes the journal, atomically: a reader never sees half of one. */
export function saveLabState(s: LabState): void {
  const file = join(labDir(s.prefix), "lab.json");
  writeFileSync(file + ".tmp", JSON.stringify(s, null, 2) + "\n");
  renameSync(file + ".tmp", file);
}

/** Checks labUp's options, before anything is made; returns the mode. */
export function checkLabOptions(opts: LabOptions): LabMode {
  checkPrefix(opts.prefix);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 16) throw new LabError("--nodes must be 1 to 16");
  if (!Number.isInteger(opts.pods) || opts.pods < 0 || opts.pods > 64) throw new LabError("--pods must be 0 to 64");
  const mode = opts.mode ?? "tapnet";
  if (!LAB_MODES.includes(mode)) throw new LabError(`--mode must be one of ${LAB_MODES.join(", ")}, not "${mode}"`);
  const store = opts.store ?? "file";
  if (!LAB_STORES.includes(store)) throw new LabError(`--store must be one of ${LAB_STORES.join(", ")}, not "${store}"`);
  if (store === "etcd" && mode !== "tapnet") throw new LabError(`--store etcd is for --mode tapnet: with --mode ${mode} the nodes are plain Linux nodes, which lease nothing from etcd`);
  if (store === "etcd" && opts.kernelNode !== undefined) throw new LabError("--store etcd cannot have a --kernel-node: a plain Linux node leases no subnet and learns no peers from etcd");
  const ttl = opts.leaseTtl;
  if (ttl !== undefined && (store !== "etcd" || !Number.isInteger(ttl) || ttl < 2 || ttl > 3600)) {
    throw new LabError(store === "etcd" ? "--lease-ttl must be 2 to 3600 seconds" : "--lease-ttl is for --store etcd: the file store's nodes lease nothing");
  }
  if (opts.insecure && (mode !== "tapnet" || !findBackend(opts.backend)?.seals)) throw new LabError(`--insecure is for a backend that seals (tapnet); the ${mode === "tapnet" ? `${opts.backend} backend` : `${mode} mode`} never does`);
  if (mode === "kernel-vxlan" && opts.backend !== "vxlan") throw new LabError("--mode kernel-vxlan needs --backend vxlan: plain Linux nodes speak VXLAN, not flannel's udp");
  const kernel = opts.kernelNode;
  if (kernel !== undefined) {
    if (mode !== "tapnet") throw new LabError(`--kernel-node is for --mode tapnet; with --mode ${mode} no node runs tapnet`);
    if (opts.backend !== "vxlan") throw new LabError("--kernel-node needs --backend vxlan: a plain Linux node speaks VXLAN, not flannel's udp");
    if (!Number.isInteger(kernel) || kernel < 1 || kernel > opts.nodes) throw new LabError(`--kernel-node must be a node number from 1 to ${opts.nodes}`);
  }
  return mode;
}

/** Node i's (1-based) address on the underlay. */
export function nodeAddress(i: number): string {
  return `${UNDERLAY_CIDR_BASE}${10 + i}`;
}

/**
 * The lab's cluster config: nodes on the underlay, pod CIDRs assigned from the default cluster
 * CIDR; on a backend that seals, a new random secret (or, `insecure`, none on purpose).
 */
export function labConfig(nodes: number, backend: BackendType, insecure = false): ClusterConfig {
  const seal = !findBackend(backend)?.seals ? {} : insecure ? { insecure: true } : { secret: randomBytes(32).toString("base64") };
  return checkClusterConfig({
    backend: { type: backend, ...seal },
    nodes: Array.from({ length: nodes }, (_, i) => ({ name: `node${i + 1}`, address: nodeAddress(i + 1) })),
  });
}

/**
 * The cluster config as written for the switches: the file store's lists every node and its
 * pod CIDR; the etcd store's lists none (`nodes: []`), as each switch leases its CIDR and
 * learns the others from etcd.
 */
export function labConfigFile(config: ClusterConfig, store: LabStoreType): Record<string, unknown> {
  const file = formatClusterConfig(config);
  return store === "etcd" ? { ...file, nodes: [] } : file;
}

/** The lab's store, as the journal keeps it, before anything is started. */
export function labStore(prefix: string, store: LabStoreType, leaseTtl = DEFAULT_LEASE_TTL): LabStore {
  if (store === "file") return { type: "file", url: `file:${join(labDir(prefix), "store")}` };
  return {
    type: "etcd", url: `etcd://${ETCD_ADDRESS}:${ETCD_CLIENT_PORT}`, leaseTtl, etcdPid: 0,
    etcdDataDir: join(labDir(prefix), "etcd"), etcdLog: join(labDir(prefix), "etcd.log"),
  };
}

/**
 * The arguments of `tapnet switch` for a node of the lab: the same for `lab up`, `lab node add`
 * and `lab node start`, so a node started again is started as it was.
 */
export function switchArgs(state: LabState, node: Pick<LabNode, "name" | "address" | "control" | "cpu">): string[] {
  const args = ["switch", "--config", join(labDir(state.prefix), "cluster.yaml"), "--node", node.name, "--control", node.control];
  if (node.cpu !== undefined) args.push("--cpu", String(node.cpu));
  const s = state.store;
  if (!s) return args;
  args.push("--store", s.url, "--cluster", state.prefix, "--netns-prefix", `${state.prefix}-`);
  if (s.type === "etcd") args.push("--address", node.address, "--lease-ttl", String(s.leaseTtl ?? DEFAULT_LEASE_TTL));
  return args;
}

/** The status file of a node's supervisor (supervisor.ts). */
export function supervisorFile(prefix: string, node: string): string {
  return join(labDir(prefix), `${node}.supervisor.json`);
}

/**
 * How the lab starts a node's supervisor (src/lab/supervise.ts), on the runtime running this:
 * Node from the bundle this runs from (or through tsx, if this runs from the sources), Deno as it is.
 */
export function supervisorCommand(): string[] {
  const entry = fileURLToPath(entryUrl("src/lab/supervise.ts"));
  if (!isDeno) return bundled ? [process.execPath, entry] : [process.execPath, "--import", "tsx", entry];
  return [Deno.execPath(), "run", "--allow-all", "--quiet", entry];
}

/**
 * The V8 flags a switch runs with (V8 flags hold for every isolate of the process, both its
 * threads): its young generation fixed at 4 MB a semi-space. V8 otherwise starts it at 1 to 2 MB
 * and doubles it, up to 16 MB, when many objects survive a scavenge: an hour's soak showed that
 * as a one-time RSS step of about 17 MB per switch, 40 minutes in. Fixed, the switch's memory
 * does not step. The datapath allocates little per packet (the sealed backend boxes the
 * addresses it hands OpenSSL, a few numbers a datagram), so a small young generation costs it
 * little. And `gc` exposed, for the datapath's full collection every few minutes
 * (datapath-worker.ts): its old generation otherwise fills with what scavenges promoted for an
 * hour or more before V8 collects it. (`--heap-growing-percent=20` was tried too, to hold the
 * old generation closer to what lives in it: an hour's soak crept as much with it as without.)
 */
export const SWITCH_V8_FLAGS = ["--max-semi-space-size=4", "--min-semi-space-size=4", "--expose-gc"];

/** How a switch process is started for the given runtime. */
export function switchCommand(runtime: "node" | "deno"): string[] {
  if (runtime === "node") {
    const nodeBin = isDeno ? which("node") : process.execPath;
    if (!nodeBin) throw new LabError("--runtime node: no node executable found in PATH");
    return [nodeBin, ...SWITCH_V8_FLAGS, join(REPO_ROOT, "bin/tapnet.mjs")];
  }
  const local = join(REPO_ROOT, "node_modules/.bin/deno");
  const deno = existsSync(local) ? local : which("deno");
  if (!deno) throw new LabError("--runtime deno: deno is not installed (npm install adds it to node_modules)");
  return [deno, "run", "--allow-all", "--quiet", `--v8-flags=${SWITCH_V8_FLAGS.join(",")}`, join(REPO_ROOT, "src/cli/main.ts")];
}

/**
 * The network namespaces a lab's switches made for pods and that may still be there: a switch
 * that was killed could not delete them. Read from the switches' logs (JSON lines): every
 * "pod attached" whose namespace the switch made (ownsNetns), by name.
 */
export function podNetnsMade(logs: string[]): string[] {
  const made = new Set<string>();
  for (const text of logs) {
    for (const line of text.split("\n")) {
      if (!line.includes('"pod attached"')) continue;
      try {
        const r = JSON.parse(line) as { msg?: string; netns?: unknown; ownsNetns?: unknown };
        if (r.ownsNetns === true && typeof r.netns === "string") made.add(r.netns);
      } catch {
        // a line cut short by a kill: nothing to take from it
      }
    }
  }
  return [...made];
}

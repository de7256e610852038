/**
 * `tapnet switch`: one node's switch, as it runs on a VM. Its options are checked before
 * anything is made: the control socket's directory must exist (only /run/tapnet, tapnet's own,
 * is made), and a tunnel the kernel will not bind (the node's address is not on this machine,
 * its port is taken) is a one-line error naming the node and the config's field.
 * SIGTERM stops it cleanly (everything it made removed); SIGUSR2 hands the node over to the next
 * switch (agent.ts's handOver) and exits without closing the TAPs, as a crash would.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { NodeAgent } from "../../node/agent.ts";
import { ConfigError, readClusterConfig, type ClusterConfig } from "../../node/config.ts";
import { checkUnderlay } from "../../node/host-net.ts";
import { jsonLogger, type Level } from "../../node/log.ts";
import { preflight } from "../../node/preflight.ts";
import { CONTROL_DIR, defaultControlPath } from "../../node/rpc.ts";
import { allowedCpus, MAX_CPU } from "../../io/cpu.ts";
import { UdpError } from "../../io/udp.ts";
import { cidrContains, formatCidr } from "../../wire/cidr.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";
import { formatIpv4, parseIpv4Address } from "../../wire/ipv4.ts";
import { nodeOption } from "./pod.ts";
import { DEFAULT_MAX_FLOWS, DEFAULT_TIMEOUTS, formatTimeouts, MAX_FLOWS_LIMIT, parseTimeouts } from "../../switch/conntrack/flow-table.ts";

/** Where a node's switch keeps the cluster's objects unless told. */
export const DEFAULT_STORE = "file:/var/lib/tapnet/store";

export const switchCommand: Command = {
  name: "switch",
  summary: "run this node's switch",
  options: {
    config: { type: "string", value: "FILE", help: "the cluster config (YAML or JSON)" },
    node: { type: "string", value: "NAME", help: "which node of the config this is" },
    control: { type: "string", value: "PATH", help: "the control socket", default: "/run/tapnet/<node>.sock" },
    "underlay-dev": { type: "string", value: "DEV", help: "the interface the tunnel uses: checked to hold the node's address, its MTU against the config's" },
    "no-offloads": { type: "boolean", help: "turn off TAP checksum and TSO offloads (every frame at most one MTU)" },
    cpu: { type: "string", value: "N", help: "pin the datapath thread to CPU N (default: not pinned; the scheduler moves it)" },
    "log-level": { type: "string", value: "LEVEL", help: "debug, info, warn or error", default: "info" },
    store: { type: "string", value: "URL", help: "the cluster store: file:DIR (this machine's switches share it) or etcd://HOST:PORT[,HOST:PORT]", default: DEFAULT_STORE },
    cluster: { type: "string", value: "NAME", help: "the cluster's name in the store (its keys are under /tapnet/NAME/)", default: "default" },
    address: { type: "string", value: "ADDR", help: "this node's underlay address, if the config does not list the node (nodes joining through etcd)" },
    "lease-ttl": { type: "string", value: "SECONDS", help: "etcd: the pod CIDR lease's TTL; a node that stops renewing it leaves the others' maps this long after", default: "30" },
    "netns-prefix": { type: "string", value: "P", help: "pods made from the store (tapnet apply) get network namespaces named P<namespace>-<name>", default: "" },
    "conntrack-max": { type: "string", value: "N", help: "the most flows the switch tracks (Services, NetworkPolicy); new flows beyond it are dropped and counted", default: String(DEFAULT_MAX_FLOWS) },
    "conntrack-timeouts": { type: "string", value: "LIST", help: "seconds a flow lives without packets, for the names given (the others keep the defaults above), as tcp-established=3600,udp=30" },
    "conntrack-max-per-pod": { type: "string", value: "N", help: "the most flows one pod's port, the node's tapnet0, or one other node's pods may hold; their new flows beyond it are dropped and counted (conntrack_quota) (default: a quarter of --conntrack-max)" },
  },
  details: [
    "The switch holds the gateway port tapnet0 and the pods' TAP ports, and listens on a control socket for `tapnet pod`",
    "and `tapnet apply/delete/get`. Logs are JSON lines on stderr. SIGTERM or SIGINT stops the switch: its pods are detached",
    "and its devices removed. SIGUSR2 stops it for a restart (tapnet.service's RestartKillSignal): the pods keep their",
    "interfaces, addresses and open connections, tapnet0 its routes, the node its rules, and the next switch takes them over.",
    "",
    "With the file store, the config's nodes are the cluster's. With --store etcd://..., the config's nodes may be empty:",
    "the node leases the lowest free subnet of clusterCidr (the one it had before, if it is still free), and follows the",
    "other nodes as they join and leave. Pods the store puts on this node (spec.nodeName) are attached; deleted, detached.",
    "",
    "The switch is the node's kube-proxy and policy agent: it translates Services' ClusterIPs to their endpoints and",
    "enforces NetworkPolicies, from the store's objects, on tracked connections. The node's kernel routes the serviceCidr",
    "to tapnet0, and opens each NodePort on the node's addresses (nft). Conntrack timeouts by default, in seconds:",
    `${formatTimeouts(DEFAULT_TIMEOUTS)}.`,
    "",
    "Example: tapnet switch --config cluster.yaml --node vm3 --address 192.168.56.13 --store etcd://192.168.56.2:2379",
  ].join("\n"),
  async run(p) {
    if (!p.values.config) throw new UsageError("--config FILE is required (see tapnet switch --help)");
    if (!p.values.node) throw new UsageError("--node NAME is required (see tapnet switch --help)");
    const node = nodeOption(String(p.values.node));
    const controlPath = controlOption(p.values.control === "/run/tapnet/<node>.sock" ? defaultControlPath(node) : String(p.values.control));
    const cpu = p.values.cpu === undefined ? undefined : intOption(p, "cpu", 0, MAX_CPU);
    const cpus = allowedCpus();
    if (cpu !== undefined && cpus.length && !cpus.includes(cpu)) {
      throw new UsageError(`--cpu ${cpu}: this machine lets tapnet use CPU${cpus.length > 1 ? "s" : ""} ${formatCpuList(cpus)}`);
    }
    const max = intOption(p, "conntrack-max", 1, MAX_FLOWS_LIMIT);
    const perPod = p.values["conntrack-max-per-pod"] === undefined ? undefined : intOption(p, "conntrack-max-per-pod", 1, max);
    const conntrack = { max, timeouts: timeoutsOption(p.values["conntrack-timeouts"]), ...(perPod !== undefined ? { maxPerOwner: perPod } : {}) };
    const config = readClusterConfig(String(p.values.config));
    preflight(["root", "tun", "ip"]);
    const level = choiceOption(p, "log-level", ["debug", "info", "warn", "error"] as Level[]);
    const log = jsonLogger({ node }, level);
    if (p.values["underlay-dev"]) await checkUnderlay(String(p.values["underlay-dev"]), config, node, log);
    let address: number | undefined;
    if (p.values.address !== undefined) {
      address = parseIpv4Address(String(p.values.address));
      if (address === undefined) throw new UsageError(`--address ${p.values.address}: not an IPv4 address`);
      if (cidrContains(config.clusterCidr, address)) throw new UsageError(`--address ${p.values.address} is inside clusterCidr ${formatCidr(config.clusterCidr)}: a node's address is its underlay address, outside the pods' addresses`);
    }
    const cluster = String(p.values.cluster);
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(cluster)) throw new UsageError(`--cluster ${JSON.stringify(cluster)}: lower-case letters, digits and '-', 1-63 long`);
    const netnsPrefix = String(p.values["netns-prefix"]);
    if (!/^[A-Za-z0-9_.-]{0,64}$/.test(netnsPrefix)) throw new UsageError(`--netns-prefix ${JSON.stringify(netnsPrefix)}: letters, digits, '_', '.' and '-', at most 64`);
    const store = { url: String(p.values.store), cluster, leaseTtl: intOption(p, "lease-ttl", 2, 86_400), netnsPrefix, ...(address !== undefined ? { address } : {}) };
    let agent: NodeAgent;
    try {
      agent = await NodeAgent.start({ config, nodeName: node, controlPath, log, store, switchOptions: { offloads: !p.values["no-offloads"], conntrack, ...(cpu !== undefined ? { cpu } : {}) } });
    } catch (e) {
      throw e instanceof UdpError ? tunnelError(e, config, node, String(p.values.config), p.values.address) : e;
    }
    const handedOver = await new Promise<boolean>((resolve) => {
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) {
          log.warn("second signal: exiting now", { signal: sig });
          process.exit(1);
        }
        stopping = true;
        const handOver = sig === "SIGUSR2";
        log.info(handOver ? "stopping for a restart: the pods stay" : "stopping", { signal: sig });
        const force = setTimeout(() => { log.error("stop took too long; exiting"); process.exit(1); }, 10_000);
        (handOver ? agent.handOver() : agent.stop()).finally(() => { clearTimeout(force); resolve(handOver); });
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGUSR2", () => stop("SIGUSR2"));
    });
    // After a hand-over the datapath is not stopped: its TAPs must outlive this process, as they
    // do a crash, and the kernel keeps a persistent TAP whose fd is closed by the process's exit.
    if (handedOver) process.exit(0);
    return 0;
  },
};

/**
 * --control PATH, absolute. Its directory must exist: a mistyped path should not leave a tree
 * of directories behind. Under /run/tapnet, tapnet's own, the switch makes what is missing.
 */
export function controlOption(raw: string, ownDir = CONTROL_DIR): string {
  if (raw === "") throw new UsageError("--control needs a path (the control socket to create)");
  const path = resolve(raw);
  const dir = dirname(path);
  if (dir === ownDir || dir.startsWith(`${ownDir}/`)) return path;
  if (!existsSync(dir)) throw new UsageError(`--control ${raw}: the directory ${dir} does not exist (make it first, or leave --control out for ${ownDir}/<node>.sock)`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`--control ${raw}: ${dir} is not a directory`);
  return path;
}

/** The tunnel's socket would not bind: which address or port, where it was given, in one line. */
function tunnelError(e: UdpError, config: ClusterConfig, node: string, file: string, addressOption: unknown): ConfigError {
  const i = config.nodes.findIndex((n) => n.name === node);
  const address = i >= 0 ? formatIpv4(config.nodes[i].address) : String(addressOption);
  const where = i >= 0 ? `nodes[${i}].address in ${file}` : "--address";
  const port = config.backend.port;
  if (e.code === "EADDRNOTAVAIL") return new ConfigError(`node ${node}'s address ${address} (${where}) is not on this machine: the tunnel cannot bind ${address}:${port} (EADDRNOTAVAIL)`);
  if (e.code === "EADDRINUSE") return new ConfigError(`UDP port ${port} (backend.port in ${file}) is taken on ${address}: another switch or program holds it (EADDRINUSE)`);
  return new ConfigError(`the tunnel: ${e.message}`);
}

/** --conntrack-timeouts: the defaults with those given changed; a bad list is a usage error. */
function timeoutsOption(raw: unknown) {
  try {
    return parseTimeouts(raw === undefined ? "" : String(raw));
  } catch (e) {
    throw new UsageError(`--conntrack-timeouts: ${(e as Error).message.replace(/^conntrack timeouts: /, "")}`);
  }
}

/** 0,1,2,5 as "0-2,5". */
function formatCpuList(cpus: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; i++) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    parts.push(j > i ? `${cpus[i]}-${cpus[j]}` : String(cpus[i]));
    i = j;
  }
  return parts.join(",");
}

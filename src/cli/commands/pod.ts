/** `tapnet pod add|del|list`: attach pods to the switch running on this node. */
import { resolve } from "node:path";
import { CONTROL_DIR, controlSockets, defaultControlPath, rpcCall, RpcError } from "../../node/rpc.ts";
import type { PodRecord } from "../../node/agent.ts";
import { UsageError, type Command, type Parsed } from "../args.ts";
import { formatTable } from "../../node/table.ts";

/** --node and --control, which say what switch a command asks (controlPath). */
export const controlOptions = {
  node: { type: "string", value: "NAME", help: "the switch of node NAME (its socket /run/tapnet/NAME.sock)" },
  control: { type: "string", value: "PATH", help: "the switch's control socket (default: the only one in /run/tapnet)" },
} as const;

/** --control PATH, absolute: a relative one that looks like a number ("1.5") is still a path, not a TCP port. */
export function controlSocketOption(raw: string): string {
  if (raw === "") throw new UsageError("--control needs a path (a switch's control socket)");
  return resolve(raw);
}

/** --node NAME as a node's name (it becomes /run/tapnet/NAME.sock: no "", no "../x"). */
export function nodeOption(raw: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(raw)) throw new UsageError(`--node ${JSON.stringify(raw)}: a node's name is lower-case letters, digits and '-', 1-63 long`);
  return raw;
}

/** Which switch to talk to: --control, else --node, else the only socket in /run/tapnet. */
export function controlPath(p: Parsed, dir = CONTROL_DIR): string {
  if (p.values.control !== undefined) return controlSocketOption(String(p.values.control));
  if (p.values.node !== undefined) return defaultControlPath(nodeOption(String(p.values.node)));
  const socks = controlSockets(dir);
  if (socks.length === 1) return `${dir}/${socks[0]}`;
  if (socks.length === 0) throw new RpcError(`no switch is running here (no control socket in ${dir}); start one with tapnet switch, or give --control PATH`);
  throw new UsageError(`several switches run here (${socks.join(", ")}): say which with --node NAME or --control PATH`);
}

const out = (s: string) => process.stdout.write(s + "\n");

export const podAddCommand: Command = {
  name: "pod add",
  positionals: "NAME",
  summary: "attach a pod to this node's switch",
  details: "A network namespace (new, or an existing one with --netns) gets an eth0 on the switch, an address from the node's\npod CIDR and a default route via the gateway.",
  options: {
    ip: { type: "string", value: "ADDR", help: "the pod's address (default: the lowest free one)" },
    netns: { type: "string", value: "NS", help: "attach this existing namespace (default: create one named NAME; it is deleted with the pod)" },
    ifname: { type: "string", value: "IF", help: "the interface name inside the pod", default: "eth0" },
    namespace: { type: "string", short: "n", value: "NS", help: "the pod's Kubernetes namespace, as `tapnet get pods` shows it", default: "default" },
    ...controlOptions,
  },
  async run(p) {
    const name = p.positionals[0];
    if (!name) throw new UsageError("pod add needs a NAME (see tapnet pod add --help)");
    const params: Record<string, unknown> = { name, ifname: p.values.ifname, namespace: p.values.namespace };
    if (p.values.ip) params.ip = p.values.ip;
    if (p.values.netns) params.netns = p.values.netns;
    const rec = await rpcCall<PodRecord>(controlPath(p), "pod.add", params);
    out(`pod ${rec.name}: namespace ${rec.netns}, ${rec.ifname} ${rec.ip} ${rec.mac}, switch port ${rec.port}`);
    return 0;
  },
};

export const podDelCommand: Command = {
  name: "pod del",
  positionals: "NAME",
  summary: "detach a pod",
  details: "Deletes the pod's namespace too if `pod add` created it. Succeeds if there is no such pod.",
  options: { namespace: { type: "string", short: "n", value: "NS", help: "the pod's Kubernetes namespace", default: "default" }, ...controlOptions },
  async run(p) {
    const name = p.positionals[0];
    if (!name) throw new UsageError("pod del needs a NAME (see tapnet pod del --help)");
    const r = await rpcCall<{ removed: boolean }>(controlPath(p), "pod.del", { name, namespace: p.values.namespace });
    out(r.removed ? `pod ${name} detached` : `no pod ${name}; nothing to do`);
    return 0;
  },
};

export const podListCommand: Command = {
  name: "pod list",
  summary: "list the pods on this node's switch",
  options: { json: { type: "boolean", help: "print a JSON array" }, ...controlOptions },
  async run(p) {
    const pods = await rpcCall<PodRecord[]>(controlPath(p), "pod.list");
    if (p.values.json) out(JSON.stringify(pods, null, 2));
    else out(formatTable(["NAMESPACE", "POD", "NETNS", "IFNAME", "IP", "MAC", "PORT"], pods.map((x) => [x.namespace, x.name, x.netns, x.ifname, x.ip, x.mac, String(x.port)])));
    return 0;
  },
};

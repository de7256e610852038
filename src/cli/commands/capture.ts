/**
 * `tapnet capture --node N --where underlay|port:POD [-w FILE]`: a capture of one place of a
 * node, for people who want Wireshark rather than the trace. It runs Wireshark's own capture
 * tool, dumpcap (Debian's tshark package has it), inside the right network namespace, and writes
 * pcapng:
 *   underlay   the node's device that holds its address, where the tunnel's datagrams go, in the
 *              switch's own namespace (found through /proc/<the switch's pid>/ns/net, so it works
 *              for a lab's node and for a real machine alike);
 *   port:POD   the pod's eth0 (its TAP, as the pod sees it), inside the pod's namespace.
 * It stops after --seconds (default 10) or --count packets, whichever comes first; -w - (the
 * default) writes to stdout, for `tapnet capture ... | wireshark -k -i -`.
 */
import { spawn } from "node:child_process";
import type { PodRecord } from "../../node/pod-record.ts";
import { run } from "../../node/exec.ts";
import { intOption, UsageError, type Command } from "../args.ts";
import { callSwitch, switchOptions, switchTargets } from "./cluster-client.ts";

interface Status {
  node: { name: string; address: string; pid: number };
}

/** The device in the namespace at `nsPath` that holds `address`; undefined if none. */
async function deviceWith(nsPath: string, address: string): Promise<string | undefined> {
  const text = await run("nsenter", [`--net=${nsPath}`, "ip", "-o", "-4", "addr", "show"]);
  for (const line of text.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line);
    if (m && m[2] === address) return m[1].replace(/@.*$/, "");
  }
  return undefined;
}

export const captureCommand: Command = {
  name: "capture",
  summary: "capture a node's underlay or a pod's eth0 with dumpcap, as pcapng for Wireshark",
  options: {
    where: { type: "string", value: "PLACE", help: "underlay (the node's device with its address: the tunnel's datagrams) or port:POD (the pod's eth0)" },
    write: { type: "string", short: "w", value: "FILE", help: "the pcapng file; - for stdout", default: "-" },
    seconds: { type: "string", value: "S", help: "stop after S seconds (1 to 3600)", default: "10" },
    count: { type: "string", value: "N", help: "stop after N packets (1 to 10000000)" },
    ...switchOptions,
  },
  details: [
    "Runs dumpcap (from Debian's tshark package) in the node's or the pod's network namespace. The underlay shows the",
    "tunnel's datagrams as they leave and arrive (decode them with tapnet lua-dissector, or the -d flags its --help",
    "gives for vxlan and udp); a pod's eth0 shows its frames as the pod sends and gets them.",
    "",
    "Examples:",
    "  tapnet capture --node node1 --where underlay -w underlay.pcapng --seconds 5",
    "  tapnet capture --node node2 --where port:node2-pod1 --count 20 | tshark -r -",
  ].join("\n"),
  async run(p) {
    const where = p.values.where === undefined ? undefined : String(p.values.where);
    if (where === undefined || !(where === "underlay" || /^port:.+/.test(where))) {
      throw new UsageError(`--where must be underlay or port:POD, not ${where === undefined ? "missing" : JSON.stringify(where)}`);
    }
    const seconds = intOption(p, "seconds", 1, 3600);
    const count = p.values.count === undefined ? undefined : intOption(p, "count", 1, 10_000_000);
    const targets = switchTargets(p);
    if (targets.length !== 1) throw new UsageError(`--node picks the node to capture on (the lab has ${targets.map((t) => t.node).join(", ")})`);
    const t = targets[0];
    let nsPath: string;
    let device: string;
    if (where === "underlay") {
      const st = await callSwitch<Status>(t, "status", {}, "status");
      nsPath = `/proc/${st.node.pid}/ns/net`;
      const d = await deviceWith(nsPath, st.node.address);
      if (!d) throw new UsageError(`node ${st.node.name}: no device holds its address ${st.node.address}`);
      device = d;
    } else {
      const name = where.slice("port:".length);
      const pods = await callSwitch<PodRecord[]>(t, "pod.list", {}, "pods");
      const pod = pods.find((x) => x.name === name || `${x.namespace}/${x.name}` === name);
      if (!pod) throw new UsageError(`--where ${where}: ${t.node} has no pod ${name} (it has: ${pods.map((x) => x.name).join(", ") || "none"})`);
      nsPath = pod.netns.startsWith("/") ? pod.netns : `/run/netns/${pod.netns}`;
      device = pod.ifname;
    }
    const file = String(p.values.write);
    const args = [`--net=${nsPath}`, "dumpcap", "-q", "-n", "-i", device, "-a", `duration:${seconds}`, ...(count !== undefined ? ["-c", String(count)] : []), "-w", file];
    process.stderr.write(`capturing on ${t.node}'s ${where === "underlay" ? `underlay (${device})` : `${where.slice(5)} (${device} in its namespace)`} for ${seconds} s${count !== undefined ? ` or ${count} packets` : ""}\n`);
    const child = spawn("nsenter", args, { stdio: ["ignore", "inherit", "inherit"] });
    return await new Promise<number>((resolve) => {
      child.on("error", (e) => { process.stderr.write(`tapnet: cannot run dumpcap: ${e.message} (apt-get install tshark)\n`); resolve(1); });
      child.on("close", (code) => resolve(code ?? 1));
    });
  },
};

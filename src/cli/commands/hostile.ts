/** `tapnet hostile`: 10^6 hostile tunnel datagrams and 10^6 hostile pod frames at a lab's switch, while good pods keep talking. */
import { writeFileSync } from "node:fs";
import { isDeno } from "../../io/runtime.ts";
import { formatHostile } from "../../bench/hostile-report.ts";
import { runHostile } from "../../bench/hostile.ts";
import { backendNames } from "../../tunnel/index.ts";
import { preflight } from "../../node/preflight.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";
import { interruptible, progressLine } from "./long-run.ts";

export const hostileCommand: Command = {
  name: "hostile",
  summary: "attack a lab's switch with hostile tunnel datagrams and pod frames, and report how it held",
  options: {
    datagrams: { type: "string", value: "N", help: "hostile tunnel datagrams sent at node1's tunnel port from the underlay", default: "1000000" },
    frames: { type: "string", value: "N", help: "hostile frames written from inside node1-pod2", default: "1000000" },
    rate: { type: "string", value: "PPS", help: "items per second per sender; 0: as fast as they go", default: "0" },
    seed: { type: "string", value: "N", help: "the random seed: the same seed sends the same traffic", default: "1" },
    backend: { type: "string", value: "B", help: `the lab's tunnel backend: ${backendNames().join(", ")}`, default: "tapnet" },
    "tcp-rate": { type: "string", value: "RATE", help: "the good TCP stream's rate, as iperf3 -b takes it; 0: as fast as it goes", default: "200M" },
    prefix: { type: "string", value: "NAME", help: "the lab's prefix (removed first if a lab of that name is up)", default: "tapnet-hostile" },
    runtime: { type: "string", value: "RT", help: "what runs the switches and the senders: node or deno", default: isDeno ? "deno" : "node" },
    json: { type: "boolean", help: "print the report as one JSON object" },
    out: { type: "string", value: "FILE", help: "also write the JSON report to FILE" },
    keep: { type: "boolean", help: "leave the lab up afterwards (tapnet lab down --prefix NAME removes it)" },
    "no-pin": { type: "boolean", help: "leave the switches' datapath threads to the scheduler" },
  },
  details: [
    "Builds a lab of 2 nodes with 2 pods each. While a ping (every 50 ms) and a TCP stream (iperf3) run from node2-pod1",
    "to node1-pod1, two senders attack node1's switch at once: from the lab's underlay namespace, a packet socket on br0",
    "sends --datagrams UDP datagrams to node1's tunnel port, their outer source forged (a peer node's, mostly): random",
    "bytes, tiny, truncated, wrong headers (tapnet version, frame length, chunk offset; VXLAN flags, VNI, VTEP MAC; udp's",
    "IP version), tapnet chunks out of order and frames never finished, unknown sources, spoofed inner sources, broken",
    "inner packets and virtio_net_hdrs, and huge ones (IP fragments up to 64 KB); from inside node1-pod2, a packet socket",
    "on eth0 writes --frames frames: random bytes, tiny, random source MACs, spoofed IPs and MACs, ARP storms, bad lengths",
    "and checksums, hostile virtio_net_hdrs (PACKET_VNET_HDR) and 64 KB super-frames.",
    "Reports each switch's pid, resident memory and fds before and after, the good traffic's loss, the counters that rose",
    "(the drops above all), what the kernels dropped before the switch (a full socket buffer, a full TAP queue), and a",
    "verdict: no crash, fds flat, memory bounded, forwarding after, the TCP stream alive. Exit status 1 if it fails.",
    "Removes the lab at the end, also on an error or Ctrl-C (unless --keep). Progress goes to stderr.",
  ].join("\n"),
  async run(p) {
    const datagrams = intOption(p, "datagrams", 0, 1e9);
    const frames = intOption(p, "frames", 0, 1e9);
    const rate = intOption(p, "rate", 0, 1e8);
    const seed = intOption(p, "seed", 0, 2 ** 32 - 1);
    const backend = choiceOption(p, "backend", backendNames());
    const runtime = choiceOption(p, "runtime", ["node", "deno"] as const);
    const tcpRate = String(p.values["tcp-rate"]);
    if (!/^\d+(\.\d+)?[KMG]?$/.test(tcpRate)) throw new UsageError(`--tcp-rate must be a rate as iperf3 -b takes it (200M, 1G, 0), not "${tcpRate}"`);
    preflight(["root", "tun", "nsenter", "ip", "ping", "nft", "iperf3"]);
    const say = progressLine();
    const report = await interruptible("removing the lab", (signal) => runHostile({
      datagrams, frames, rate, seed, backend, runtime, tcpRate: tcpRate === "0" ? undefined : tcpRate,
      prefix: String(p.values.prefix), pin: !p.values["no-pin"], keep: Boolean(p.values.keep),
      command: ["tapnet", "hostile", ...process.argv.slice(process.argv.indexOf("hostile") + 1)].join(" "),
      progress: say.line, signal,
    })).finally(say.done);
    if (p.values.out !== undefined) writeFileSync(String(p.values.out), JSON.stringify(report, null, 2) + "\n");
    process.stdout.write((p.values.json ? JSON.stringify(report, null, 2) : formatHostile(report)) + "\n");
    return report.verdict.pass ? 0 : 1;
  },
};


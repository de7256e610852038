/** `tapnet soak`: an hour of cross-node TCP, ping and pod churn on a lab, its switches' memory and fds sampled. */
import { isDeno } from "../../io/runtime.ts";
import { formatSamples } from "../../bench/soak-report.ts";
import { runSoak } from "../../bench/soak.ts";
import { backendNames } from "../../tunnel/index.ts";
import { preflight } from "../../node/preflight.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";
import { interruptible, progressLine } from "./long-run.ts";

export const soakCommand: Command = {
  name: "soak",
  summary: "run a lab under TCP, ping and pod churn for an hour, sampling its switches' memory and fds",
  options: {
    minutes: { type: "string", value: "N", help: "how long the load runs", default: "60" },
    "sample-seconds": { type: "string", value: "S", help: "seconds between two samples of the switches", default: "60" },
    "churn-seconds": { type: "string", value: "S", help: "seconds between two churn pods (each is added, pinged, deleted)", default: "3" },
    backend: { type: "string", value: "B", help: `the lab's tunnel backend: ${backendNames().join(", ")}`, default: "tapnet" },
    "tcp-rate": { type: "string", value: "RATE", help: "the TCP stream's rate, as iperf3 -b takes it; 0: as fast as it goes", default: "0" },
    out: { type: "string", value: "FILE", help: "where the JSON of samples, figures and verdict goes", default: "tapnet-soak.json" },
    prefix: { type: "string", value: "NAME", help: "the lab's prefix (removed first if a lab of that name is up)", default: "tapnet-soak" },
    runtime: { type: "string", value: "RT", help: "what runs the switches: node or deno", default: isDeno ? "deno" : "node" },
    keep: { type: "boolean", help: "leave the lab up afterwards (tapnet lab down --prefix NAME removes it)" },
    "no-pin": { type: "boolean", help: "leave the switches' datapath threads to the scheduler" },
  },
  details: [
    "Builds a lab of 2 nodes with 2 pods each and loads it for --minutes: one iperf3 TCP stream from node1-pod1 to",
    "node2-pod1 and a ping every 200 ms on the same path, and pod churn: every --churn-seconds a pod is attached to one",
    "node's switch (the nodes in turn, pod.add over its control socket, as tapnet pod add does), pinged from a pod of",
    "the other node, and detached. Every --sample-seconds, between two churn cycles, it samples each switch's pid,",
    "resident memory (VmRSS), the JavaScript heaps of its two threads and open fds. At the end it prints the samples as a table and a verdict, writes the JSON",
    "to --out, and exits 1 if the verdict fails:",
    "  no crash: one pid per switch throughout;",
    "  memory flat: the Theil-Sen slope of each switch's RSS after the first third of the run (V8's warm-up: compiling",
    "    and sizing its heaps), over the run's length, adds at most 4 MB or 5 % of its RSS, whichever is more (not",
    "    judged under 5 minutes: too short to tell); the whole run's slope is printed beside it;",
    "  fds flat: at most 2 apart over the run;",
    "  no ping loss beyond TCP's: no ping lost, or no larger a share than TCP's retransmitted segments;",
    "  TCP throughout: no error, no stall over 2 s; churn: every pod attached, reached and detached.",
    "Removes the lab at the end, also on an error or Ctrl-C (unless --keep). Progress goes to stderr.",
  ].join("\n"),
  async run(p) {
    const minutes = intOption(p, "minutes", 1, 24 * 60);
    const sampleSeconds = intOption(p, "sample-seconds", 1, 3600);
    const churnSeconds = intOption(p, "churn-seconds", 1, 3600);
    const backend = choiceOption(p, "backend", backendNames());
    const runtime = choiceOption(p, "runtime", ["node", "deno"] as const);
    const tcpRate = String(p.values["tcp-rate"]);
    if (!/^\d+(\.\d+)?[KMG]?$/.test(tcpRate)) throw new UsageError(`--tcp-rate must be a rate as iperf3 -b takes it (1G, 200M, 0), not "${tcpRate}"`);
    preflight(["root", "tun", "nsenter", "ip", "ping", "nft", "iperf3"]);
    const say = progressLine();
    const out = String(p.values.out);
    const report = await interruptible("removing the lab", (signal) => runSoak({
      minutes, sampleSeconds, churnSeconds, backend, runtime, tcpRate: tcpRate === "0" ? undefined : tcpRate, out,
      prefix: String(p.values.prefix), pin: !p.values["no-pin"], keep: Boolean(p.values.keep),
      command: ["tapnet", "soak", ...process.argv.slice(process.argv.indexOf("soak") + 1)].join(" "),
      progress: say.line, signal,
    })).finally(say.done);
    const lines = [
      `tapnet soak: lab ${report.lab.prefix} (backend ${report.lab.backend}, ${report.lab.runtime}), ${report.date}, ${(report.seconds / 60).toFixed(1)} min`,
      "",
      formatSamples(report.samples),
      "",
      ...report.verdict.checks.map((c) => `${c.pass ? "PASS" : "FAIL"} ${c.name}: ${c.detail}`),
      `verdict: ${report.verdict.pass ? "PASS" : "FAIL"}; samples and figures in ${out}`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
    return report.verdict.pass ? 0 : 1;
  },
};

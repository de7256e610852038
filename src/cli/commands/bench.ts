/** `tapnet bench`: kernel VXLAN, host-gw and tapnet's backends (one also with a policy load), measured side by side. */
import { writeFileSync } from "node:fs";
import { isDeno } from "../../io/runtime.ts";
import { BenchError } from "../../bench/figures.ts";
import { formatRepeatReport, runRepeated } from "../../bench/repeat.ts";
import { formatReport } from "../../bench/report.ts";
import { runBench } from "../../bench/runner.ts";
import { allSetups, parseSetups } from "../../bench/setups.ts";
import { renderSvg } from "../../bench/svg.ts";
import { preflight } from "../../node/preflight.ts";
import { choiceOption, intOption, UsageError, type Command } from "../args.ts";

const out = (s: string) => process.stdout.write(s + "\n");

export const benchCommand: Command = {
  name: "bench",
  summary: "measure tapnet against the kernel's VXLAN and host-gw, and with a policy load, side by side",
  options: {
    quick: { type: "boolean", help: "a short run: 2 rounds of 2-second tests (well under 5 minutes on 2 cores)" },
    rounds: { type: "string", value: "N", help: "rounds; each round measures every setup in turn (default: 5, or 2 with --quick)" },
    seconds: { type: "string", value: "S", help: "seconds per test (default: 5, or 2 with --quick)" },
    repeat: { type: "string", value: "N", help: "run the whole bench N times in a row (labs built and removed each time; 1 to 20) and report each ratio's spread over the runs (median, min..max) and, per target, in how many runs it was met: it holds when met in at least 80 % of them, rounded up (4 of 5, 8 of 10); --json has every run's report in runs" },
    setups: { type: "string", value: "LIST", help: `comma-separated setups (default: all: ${allSetups().join(",")}); tapnet-<backend>+policy is that setup with 100 Services and 100 NetworkPolicies applied, measured with its twin tapnet-<backend> (added if not listed)` },
    "default-backend": { type: "string", value: "B", help: "the backend checked against the targets, as udp or tapnet-udp (default: the first tapnet-* setup, in the order of tapnet's backends)" },
    json: { type: "boolean", help: "print one JSON object: raw per-round results, medians, spreads, ratios, offloads, targets, and with a +policy setup policyLoad (each figure over its twin's); with --repeat, the spreads over the runs and each run's object in runs" },
    svg: { type: "string", value: "FILE", help: "also write a bar chart of every figure's ratio to kernel-vxlan to FILE (SVG; with --repeat, of the last run)" },
    prefix: { type: "string", value: "NAME", help: "names the labs: NAME-kvxlan, NAME-hostgw, NAME-<backend>, NAME-<backend>-pol", default: "tapnet-bench" },
    runtime: { type: "string", value: "RT", help: "what runs the switches: node or deno", default: isDeno ? "deno" : "node" },
    "no-pin": { type: "boolean", help: "leave the switches' datapath threads to the scheduler (by default each node's is pinned to a CPU of its own, as on separate machines; see tapnet lab up --help)" },
  },
  details: [
    "Builds one lab per setup (2 nodes, 2 pods each, the same addresses and underlay), all up front: kernel-vxlan (plain",
    "Linux nodes, VXLAN as flannel sets it up: the reference), host-gw (routed, no encapsulation: the ceiling) and",
    "tapnet-<backend> for each tapnet backend. Checks offloads with ethtool -k, then runs rounds, each setup in turn:",
    "iperf3 TCP across nodes (1 and 4 streams) and on one node, iperf3 UDP at full rate with 1400 and 64-byte datagrams",
    "(delivered packets per second, loss), then for 1400 B, if the full rate lost over 1%, a search of 3 offered rates",
    "(-b; the first the rate delivered at full rate, then ×1.2 up after a pass, ×0.75 down while none passed, never up to",
    "a rate that failed; iperf3 -w 4M, or net.core.rmem_max if lower, so that the receiving iperf3's socket buffer is",
    "not what drops) for the most delivered at ≤ 1% loss (0 if none; the UDP target is judged on it), sockperf",
    "ping-pong round trips (p50, p99) and, per round trip, the running switches' wakeups and wait for a CPU (every",
    "thread's, from /proc), and the switches' CPU time and peak memory. Each throughput test but UDP 64 B",
    "and the rate search also gives its CPU cost in cores per Gbit/s: the machine's busy time over the iperf3 client's",
    "run (/proc/stat: user + nice + system + irq + softirq of all CPUs; idle, iowait and steal are not ours, guest is",
    "already in user) per second, over the Gbit/s delivered (UDP: 1400-byte payloads delivered), and of it the",
    "switches' part: utime + stime of every thread of both nodes' tapnet processes (each lab supervisor, its switch",
    "and the standby it keeps; n/a for the kernel setups). Prints medians, each as a ratio to kernel-vxlan, with",
    "host-gw (the ceiling) beside it when measured, the spread, and issue 16's targets for the default backend",
    "(with host-gw's ratio beside each).",
    "tapnet-<backend>+policy (by default for the first backend) is the same tapnet lab with a policy load applied before",
    "the first round: 100 Services (ClusterIPs given, 10.96.100.1 on) and 100 NetworkPolicies over the lab's pods, which",
    "isolate the client (egress), the servers (ingress) and an idle pod (default deny) and allow every flow the bench",
    "measures by podSelector, namespaceSelector, ipBlock, named and numbered ports and ranges. The bench checks the load",
    "is in force (the idle pod refused, the client's servers reached) before it measures, and reports each figure of",
    "the +policy setup over its twin's in the same round (median, min..max); cross-node TCP and ping-pong p50 pass",
    "when the load costs at most 10 %. Latency is compared on pairs: after each round the two run ping-pong in",
    "alternating 1-s slices (2 pairs per second of --seconds, at least 4), the ratio a round's median over its pairs;",
    "with pinned switches the pairs' client and server run on their nodes' CPUs too.",
    "Removes every lab at the end, also on an error or Ctrl-C. Progress goes to stderr. A test that fails costs its",
    "figures, not the run; exit status 1 only if the bench itself failed (a test, or the labs): a missed target is a",
    "result, not a failure.",
  ].join("\n"),
  async run(p) {
    const quick = Boolean(p.values.quick);
    if (p.values.rounds === undefined) p.values.rounds = quick ? "2" : "5";
    if (p.values.seconds === undefined) p.values.seconds = quick ? "2" : "5";
    const rounds = intOption(p, "rounds", 1, 100);
    const repeat = p.values.repeat === undefined ? undefined : intOption(p, "repeat", 1, 20);
    const seconds = intOption(p, "seconds", 1, 600);
    const runtime = choiceOption(p, "runtime", ["node", "deno"] as const);
    let setups: string[];
    try {
      setups = p.values.setups === undefined ? allSetups() : parseSetups(String(p.values.setups));
    } catch (e) {
      throw new UsageError(`--setups: ${(e as Error).message}`);
    }
    const named = p.values["default-backend"] === undefined ? undefined : String(p.values["default-backend"]);
    const defaultSetup = named === undefined || named.startsWith("tapnet-") ? named : `tapnet-${named}`;
    if (defaultSetup !== undefined && !(defaultSetup.startsWith("tapnet-") && setups.includes(defaultSetup))) {
      throw new UsageError(`--default-backend must be one of the tapnet setups measured (${setups.filter((s) => s.startsWith("tapnet-")).join(", ") || "none"}), not "${named}"`);
    }
    const tapnetUsed = setups.some((s) => s.startsWith("tapnet-"));
    preflight(["root", ...(tapnetUsed ? ["tun" as const, "nsenter" as const] : []), "ip", "ping", "nft", "iperf3", "sockperf", "ethtool"]);

    const abort = new AbortController();
    const onSignal = () => { process.stderr.write("\ninterrupted: removing the bench's labs\n"); abort.abort(); };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    const tty = process.stderr.isTTY;
    let pending = false;
    const progress = (line: string) => {
      if (tty) {
        process.stderr.write(`\r\x1b[K${line}`);
        pending = true;
      } else process.stderr.write(line + "\n");
    };
    try {
      const opts = {
        setups, rounds, seconds, prefix: String(p.values.prefix), runtime, defaultSetup, pin: !p.values["no-pin"],
        command: ["tapnet", "bench", ...process.argv.slice(process.argv.findIndex((a) => a === "bench") + 1)].join(" "),
        progress, signal: abort.signal,
      };
      let failures: { setup: string; test: string }[];
      if (repeat !== undefined) {
        const report = await runRepeated(opts, repeat);
        if (pending) process.stderr.write("\r\x1b[K");
        if (p.values.svg !== undefined) writeFileSync(String(p.values.svg), renderSvg(report.runs[report.runs.length - 1]));
        out(p.values.json ? JSON.stringify(report, null, 2) : formatRepeatReport(report));
        failures = report.runs.flatMap((r) => r.failures);
      } else {
        const report = await runBench(opts);
        if (pending) process.stderr.write("\r\x1b[K");
        if (p.values.svg !== undefined) writeFileSync(String(p.values.svg), renderSvg(report));
        out(p.values.json ? JSON.stringify(report, null, 2) : formatReport(report));
        failures = report.failures;
      }
      if (failures.length) process.stderr.write(`tapnet: ${failures.length} measurement(s) failed: ${failures.map((f) => `${f.setup} ${f.test}`).join(", ")}\n`);
      return failures.length ? 1 : 0;
    } catch (e) {
      if (pending) process.stderr.write("\n");
      if (abort.signal.aborted) throw new BenchError("interrupted; the bench's labs were removed");
      throw e;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};

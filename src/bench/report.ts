/**
 * The bench's report: what a run returns (machine, setups, every round's figures, the summary,
 * offloads, failures, targets, the policy load's comparisons), and its plain-text form: medians
 * with ratios, spreads, failed measurements, the cost of the policy load and targets, as tables.
 * Columns go reference first, then the ceiling (host-gw) beside it, then the others in order.
 */
import { formatTable } from "../node/table.ts";
import { CPU_UNIT, FIGURES, fmtNumber, type RoundResult } from "./figures.ts";
import { POLICY_MAX_COST, type PolicyComparison } from "./policy-compare.ts";
import type { Summary } from "./statistics.ts";
import { CEILING, type TargetResult } from "./targets.ts";

export interface Machine {
  kernel: string;
  nproc: number;
  cpu: string;
  node: string;
  runtime: string;
}

export interface OffloadFinding {
  setup: string;
  netns: string;
  device: string;
  off: string[];
}

export interface BenchReport {
  date: string;
  command: string;
  machine: Machine;
  rounds: number;
  seconds: number;
  setups: string[];
  reference: string;
  offloads: OffloadFinding[];
  /** Measurements that failed; the command exits 1 if there are any. */
  failures: BenchFailure[];
  results: Record<string, RoundResult[]>;
  medians: Summary["medians"];
  spreads: Summary["spreads"];
  ratios: Summary["ratios"];
  /** The CPUs the tapnet switches' datapaths were pinned to, node by node; empty if they were not. */
  switchCpus: number[];
  /** The tapnet setup the targets are checked for, and the outcome; absent without it or the reference. */
  targets?: { setup: string; rows: TargetResult[] };
  /** With a +policy setup and its twin: how many objects the load had, and each such setup against its twin. */
  policyLoad?: { services: number; policies: number; comparisons: PolicyComparison[] };
  durationSeconds: number;
}


/** A measurement that failed: its figures are null in that round, and the bench exits 1 at the end. */
export interface BenchFailure {
  round: number;
  setup: string;
  test: string;
  error: string;
}

export function formatCell(median: number | null, ratio: number | null, isReference: boolean): string {
  if (median === null) return "n/a";
  if (isReference || ratio === null) return fmtNumber(median);
  return `${fmtNumber(median)} (${ratio.toFixed(2)}×)`;
}

/** The order of a report's columns: the reference, the ceiling beside it, then the rest as measured. */
export function displayOrder(setups: readonly string[], reference: string): string[] {
  const first = [reference, CEILING].filter((s) => setups.includes(s));
  return [...first, ...setups.filter((s) => !first.includes(s))];
}

/** How the CPU figures are taken, and where the ceiling is: said once in every report. */
export function cpuAndCeilingNotes(setups: readonly string[], reference: string): string[] {
  return [
    `CPU per Gbit/s, in ${CPU_UNIT}: the machine's busy time over each throughput test (user + nice + system + irq`,
    "+ softirq of all CPUs, from /proc/stat), per second, over the Gbit/s it delivered; of which the switches: both",
    "nodes' tapnet processes (each lab supervisor, its switch and its standby; utime + stime of all their threads)",
    setups.includes(CEILING) ? `the ceiling, ${CEILING} (routed, no encapsulation), is beside ${reference} in every table`
      : `the ceiling (${CEILING}) was not measured: add it to --setups to see how far ${reference} is from it`,
  ];
}

/** The plain-text report: machine, command, offloads, medians with ratios, spreads, targets. */
export function formatReport(report: BenchReport): string {
  const r = { ...report, setups: displayOrder(report.setups, report.reference) };
  const lines: string[] = [];
  lines.push(`tapnet bench, ${r.date}: ${r.rounds} round(s) of ${r.seconds} s per test, setups interleaved, ${Math.round(r.durationSeconds)} s in all`);
  lines.push(`machine: ${r.machine.kernel}, ${r.machine.nproc} CPUs (${r.machine.cpu}), ${r.machine.runtime}`);
  lines.push(`command: ${r.command}`);
  if (r.setups.some((s) => s.startsWith("tapnet-"))) {
    lines.push(r.switchCpus?.length
      ? `tapnet switches: each node's datapath pinned to a CPU of its own (${r.switchCpus.map((c, i) => `node${i + 1} on CPU ${c}`).join(", ")})`
      : "tapnet switches: datapaths not pinned (left to the scheduler)");
  }
  lines.push("");
  if (r.offloads.length) {
    // One line per set of features that are off, with how many devices of each setup: the
    // same default (veths' GRO) on every setup is one fact, not twenty. --json lists each device.
    lines.push("offloads not on (ethtool -k on the underlay veths and VXLAN devices):");
    const groups = new Map<string, OffloadFinding[]>();
    for (const o of r.offloads) groups.set(o.off.join(", "), [...(groups.get(o.off.join(", ")) ?? []), o]);
    for (const [features, found] of groups) {
      const perSetup = r.setups.map((s) => [s, found.filter((o) => o.setup === s).length] as const).filter(([, n]) => n > 0);
      lines.push(`  ${features}: ${perSetup.map(([s, n]) => `${s} ${n}`).join(", ")} device(s) (e.g. ${found[0].netns} ${found[0].device})`);
    }
  } else {
    lines.push("offloads: all of tx-checksumming, TSO, GSO and GRO are on for the underlay veths and VXLAN devices");
  }
  lines.push("");
  lines.push(...cpuAndCeilingNotes(r.setups, r.reference));
  lines.push("");
  lines.push(`median over rounds (ratio to ${r.reference}'s median)`);
  const rows = FIGURES.map((f) => [`${f.label} (${f.unit}, ${f.better} is better)`, ...r.setups.map((s) => formatCell(r.medians[s]?.[f.key] ?? null, r.ratios[s]?.[f.key] ?? null, s === r.reference))]);
  lines.push(formatTable(["figure", ...r.setups], rows));
  lines.push("");
  lines.push("spread over rounds (min..max)");
  lines.push(formatTable(["figure", ...r.setups], FIGURES.map((f) => [f.label, ...r.setups.map((s) => {
    const sp = r.spreads[s]?.[f.key];
    return sp ? `${fmtNumber(sp[0])}..${fmtNumber(sp[1])}` : "n/a";
  })])));
  if (r.failures.length) {
    lines.push("");
    lines.push(`${r.failures.length} measurement(s) failed (their figures are left out):`);
    for (const x of r.failures) lines.push(`  round ${x.round}, ${x.setup}, ${x.test}: ${x.error}`);
  }
  if (r.policyLoad) lines.push("", ...formatPolicyLoad(r.policyLoad));
  if (r.targets) {
    lines.push("");
    lines.push(`targets (issue 16), for ${r.targets.setup}:`);
    const pf = (b: boolean | null) => (b === null ? "n/a" : b ? "pass" : "FAIL");
    const ceiling = r.targets.rows.some((t) => t.ceiling !== null);
    lines.push(formatTable(["figure", "measured", "floor", "", "target", "", ...(ceiling ? [`ceiling (${CEILING})`] : [])], r.targets.rows.map((t) =>
      [t.label, t.value, t.floor, pf(t.meetsFloor), t.target, pf(t.meetsTarget), ...(ceiling ? [t.ceiling ?? ""] : [])])));
  } else {
    lines.push("");
    lines.push(`targets: not checked (they need ${r.reference} and a tapnet setup)`);
  }
  return lines.join("\n");
}

/** The policy load's section: every compared figure, each +policy setup against its twin. */
export function formatPolicyLoad(p: NonNullable<BenchReport["policyLoad"]>): string[] {
  const pct = Math.round(POLICY_MAX_COST * 100);
  const lines = [
    `policy load: ${p.services} Services and ${p.policies} NetworkPolicies, every measured flow allowed by them`,
    `(each round's figure over its twin's in the same round: median, min..max; judged: at most ${pct} % worse)`,
  ];
  if (p.comparisons.some((c) => c.rows.some((x) => x.paired))) {
    lines.push("(ping-pong: each round's ratio is the median over its pairs of 1-s runs, the two setups back to back, alternating)");
  }
  const rows = FIGURES.filter((f) => p.comparisons[0]?.rows.some((x) => x.figure === f.key)).map((f) => [
    `${f.label} (${f.better} is better)`,
    ...p.comparisons.map((c) => {
      const x = c.rows.find((row) => row.figure === f.key);
      if (!x || x.ratio === null) return "n/a";
      const spread = x.spread ? ` (${x.spread[0].toFixed(2)}..${x.spread[1].toFixed(2)})` : "";
      return `${x.ratio.toFixed(2)}×${spread}${x.pass === null ? "" : x.pass ? " pass" : " FAIL"}`;
    }),
  ]);
  lines.push(formatTable(["figure", ...p.comparisons.map((c) => `${c.setup} / ${c.twin}`)], rows));
  return lines;
}

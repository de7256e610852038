/**
 * What the hostile-input script concludes, from plain facts: which counters of `lab status`
 * rose (the drops above all), the verdict, and the report a person reads. The verdict's checks:
 *
 *   no crash             every switch has the pid (and start time) it had, and answers its status
 *   fds flat             each switch holds at most FD_SLACK more file descriptors than before
 *   memory bounded       each switch's resident memory grew by at most RSS_SLACK_KB: at 10^6
 *                        datagrams and 10^6 frames, under 8 bytes per hostile item
 *   forwarding after     the good pods reach each other and their gateway once it is over
 *                        (at most AFTER_MAX_LOSS of the pings lost)
 *   TCP stream survived  the good pods' TCP connection ran to the end, without an error
 *
 * The good traffic's loss during the attack is a figure, not a check: what a pod may suffer from
 * forged datagrams and spoofed frames is what issue 13's findings change, and the report shows it.
 */
import type { LabStatus, SwitchStatus } from "../lab/status.ts";
import type { SendResult } from "./hostile-send.ts";
import type { PingFigures, TcpFigures } from "./traffic.ts";

export const FD_SLACK = 2;
export const RSS_SLACK_KB = 16 * 1024;
export const AFTER_MAX_LOSS = 0.1;

export interface CounterDelta {
  node: string;
  /** "tunnel", "pod <name>", "port <ifname>" or "switch". */
  row: string;
  counter: string;
  delta: number;
}

function rows(s: SwitchStatus): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  if (s.tunnel) out.set("tunnel", s.tunnel);
  for (const p of s.ports ?? []) out.set(p.pod ? `pod ${p.pod}` : `port ${p.ifname}`, p.counters);
  if (s.counters) out.set("switch", s.counters);
  return out;
}

/** Every counter that rose between two statuses of a lab, node by node, row by row (a counter absent counts 0). */
export function counterDeltas(before: Pick<LabStatus, "switches">, after: Pick<LabStatus, "switches">): CounterDelta[] {
  const out: CounterDelta[] = [];
  for (const [node, a] of Object.entries(after.switches)) {
    const b = before.switches[node];
    if (!("ports" in a)) continue;
    const was = b && "ports" in b ? rows(b) : new Map<string, Record<string, number>>();
    for (const [row, counters] of rows(a)) {
      const prev = was.get(row) ?? {};
      for (const [counter, v] of Object.entries(counters)) {
        if (typeof v !== "number" || counter === "flows_active") continue;
        const delta = v - (prev[counter] ?? 0);
        if (delta > 0) out.push({ node, row, counter, delta });
      }
    }
  }
  return out;
}

export interface SwitchProbe {
  pid: number;
  /** The process's start time (clock ticks since boot): a restarted switch has another. */
  start: number;
  rssKb: number;
  fds: number;
  answered: boolean;
}

export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

export interface HostileFacts {
  switches: { node: string; before: SwitchProbe; after: SwitchProbe }[];
  tcp: TcpFigures;
  /** Pings once it is over: from the remote good pod to the local one, and from the local one to its gateway. */
  after: { what: string; ping: PingFigures }[];
}

export function judgeHostile(f: HostileFacts): { pass: boolean; checks: Check[] } {
  const sw = f.switches;
  const crashed = sw.filter((s) => s.after.pid !== s.before.pid || s.after.start !== s.before.start || !s.after.answered);
  const fds = sw.filter((s) => s.after.fds - s.before.fds > FD_SLACK);
  const mem = sw.filter((s) => s.after.rssKb - s.before.rssKb > RSS_SLACK_KB);
  const lost = f.after.filter((a) => a.ping.sent === 0 || a.ping.lost / a.ping.sent > AFTER_MAX_LOSS);
  const each = (fn: (s: HostileFacts["switches"][number]) => string) => sw.map((s) => `${s.node} ${fn(s)}`).join(", ");
  const checks: Check[] = [
    {
      name: "no crash", pass: crashed.length === 0,
      detail: crashed.length === 0 ? `every switch kept its pid and answered (${each((s) => `pid ${s.after.pid}`)})`
        : crashed.map((s) => `${s.node}: pid ${s.before.pid} → ${s.after.pid || "gone"}${s.after.answered ? "" : ", no answer"}`).join("; "),
    },
    { name: "fds flat", pass: fds.length === 0, detail: `${each((s) => `${s.before.fds} → ${s.after.fds}`)} (at most +${FD_SLACK})` },
    { name: "memory bounded", pass: mem.length === 0, detail: `${each((s) => `${mb(s.before.rssKb)} → ${mb(s.after.rssKb)} MB`)} (at most +${RSS_SLACK_KB / 1024} MB)` },
    {
      name: "forwarding after", pass: lost.length === 0,
      detail: f.after.map((a) => `${a.what}: ${a.ping.received}/${a.ping.sent}`).join(", ") + ` (at most ${AFTER_MAX_LOSS * 100} % lost)`,
    },
    {
      name: "TCP stream survived", pass: !f.tcp.error && f.tcp.bytes > 0,
      detail: f.tcp.error ? `iperf3: ${f.tcp.error}` : `${fmt(f.tcp.gbps, 3)} Gbit/s over ${fmt(f.tcp.seconds, 1)} s, longest stall ${f.tcp.maxStallSeconds} s`,
    },
  ];
  return { pass: checks.every((c) => c.pass), checks };
}

function mb(kb: number): string {
  return fmt(kb / 1024, 1);
}

function fmt(x: number, digits: number): string {
  return x.toFixed(digits);
}

export interface HostileReport {
  date: string;
  command: string;
  lab: { prefix: string; backend: string; runtime: string };
  /** Who attacked whom: the node whose switch takes the datagrams, the pod that writes the frames, the good pods. */
  roles: { node: string; attacker: string; goodLocal: string; goodRemote: string };
  senders: { tunnel: SendResult; pod: SendResult };
  /** What the kernels say: the node's UDP socket (datagrams delivered to the switch, and dropped for a full buffer), the attacking pod's TAP (frames its queue dropped). */
  kernel: { udpDelivered: number; udpBufferDrops: number; tapQueueDrops: number };
  switches: HostileFacts["switches"];
  ping: PingFigures;
  tcp: TcpFigures;
  after: HostileFacts["after"];
  counters: CounterDelta[];
  verdict: { pass: boolean; checks: Check[] };
  seconds: number;
}

/** The report as a person reads it. */
export function formatHostile(r: HostileReport): string {
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const lines: string[] = [];
  lines.push(`tapnet hostile: lab ${r.lab.prefix} (backend ${r.lab.backend}, ${r.lab.runtime}), ${r.date}`);
  lines.push(`  datagrams at ${r.roles.node}'s tunnel port from the underlay, frames from ${r.roles.attacker}; good traffic ${r.roles.goodRemote} → ${r.roles.goodLocal}`);
  lines.push("");
  for (const s of [r.senders.tunnel, r.senders.pod]) {
    const what = s.mode === "tunnel" ? "datagrams" : "frames";
    lines.push(`${what}: ${n(s.count)} offered, ${n(s.sent)} sent, ${n(s.refused)} refused by the sending kernel${Object.keys(s.errors).length ? ` (${Object.entries(s.errors).map(([e, c]) => `${e} ${n(c)}`).join(", ")})` : ""}, in ${s.seconds.toFixed(1)} s (${n(s.count / Math.max(s.seconds, 1e-9))}/s)`);
    lines.push(`  ${Object.entries(s.byKind).map(([k, v]) => `${k} ${n(v.sent)}${v.refused ? ` (+${n(v.refused)} refused)` : ""}`).join(", ")}`);
  }
  lines.push(`kernel: ${n(r.kernel.udpDelivered)} datagrams reached the switch's socket, ${n(r.kernel.udpBufferDrops)} found its buffer full; the attacker's TAP queue dropped ${n(r.kernel.tapQueueDrops)} packets (a super-frame the kernel cut counts each segment)`);
  lines.push("");
  lines.push(`${"switch".padEnd(8)} ${"pid".padStart(8)} ${"RSS before".padStart(11)} ${"RSS after".padStart(10)} ${"fds before".padStart(10)} ${"fds after".padStart(9)}`);
  for (const s of r.switches) {
    lines.push(`${s.node.padEnd(8)} ${String(s.after.pid || "gone").padStart(8)} ${`${mb(s.before.rssKb)} MB`.padStart(11)} ${`${mb(s.after.rssKb)} MB`.padStart(10)} ${String(s.before.fds).padStart(10)} ${String(s.after.fds).padStart(9)}`);
  }
  lines.push("");
  lines.push(`good traffic during the attack: ping ${r.ping.received}/${r.ping.sent} (${r.ping.lossPercent.toFixed(2)} % lost); TCP ${fmt(r.tcp.gbps, 3)} Gbit/s, ${n(r.tcp.retransmits)} retransmits, longest stall ${r.tcp.maxStallSeconds} s${r.tcp.error ? `, error: ${r.tcp.error}` : ""}`);
  lines.push("");
  const drops = r.counters.filter((c) => c.counter.startsWith("drop_"));
  lines.push(`drop counters that rose (${drops.length}):`);
  for (const c of drops) lines.push(`  ${c.node.padEnd(6)} ${c.row.padEnd(16)} ${c.counter.padEnd(28)} +${n(c.delta)}`);
  const other = r.counters.filter((c) => c.row === "switch");
  if (other.length) lines.push(`switch counters that rose: ${other.map((c) => `${c.node} ${c.counter} +${n(c.delta)}`).join(", ")}`);
  lines.push("");
  for (const c of r.verdict.checks) lines.push(`${c.pass ? "PASS" : "FAIL"} ${c.name}: ${c.detail}`);
  lines.push(`verdict: ${r.verdict.pass ? "PASS" : "FAIL"} (${r.seconds.toFixed(0)} s)`);
  return lines.join("\n");
}

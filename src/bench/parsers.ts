/**
 * The tools' output, read into figures: iperf3's JSON reports (TCP and UDP), sockperf
 * ping-pong's percentile lines, and `ethtool -k`'s offload features. Anything unexpected is a
 * one-line BenchError quoting what the tool printed.
 */
import { BenchError } from "./figures.ts";

export interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number; seconds?: number; packets?: number; lost_packets?: number; lost_percent?: number };
    sum_sent?: { retransmits?: number };
  };
}

function parseIperf(json: string): IperfJson {
  let j: IperfJson;
  try {
    j = JSON.parse(json) as IperfJson;
  } catch {
    throw new BenchError(`iperf3 printed no JSON: ${json.trim().slice(0, 160)}`);
  }
  if (j.error) throw new BenchError(`iperf3: ${j.error}`);
  return j;
}

/** An iperf3 -J TCP client report: what the receiver got, in Gbit/s, and the sender's retransmits. */
export function parseIperfTcp(json: string): { gbps: number; retransmits: number } {
  const j = parseIperf(json);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number") throw new BenchError("iperf3's report has no end.sum_received.bits_per_second");
  return { gbps: bps / 1e9, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}

/**
 * An iperf3 -u -J client report: datagrams the receiver got per second, the loss, and datagrams
 * sent per second. In its sum_received, `packets` counts what was sent and `lost_packets` what
 * never arrived.
 */
export function parseIperfUdp(json: string): { pps: number; lossPercent: number; sentPps: number } {
  const j = parseIperf(json);
  const r = j.end?.sum_received;
  if (!r || typeof r.packets !== "number" || typeof r.seconds !== "number" || !(r.seconds > 0)) throw new BenchError("iperf3's report has no end.sum_received packet counts");
  const lost = r.lost_packets ?? 0;
  return { pps: (r.packets - lost) / r.seconds, lossPercent: r.lost_percent ?? (r.packets ? (100 * lost) / r.packets : 0), sentPps: r.packets / r.seconds };
}

/**
 * `sockperf ping-pong` output: its percentile lines (µs; round trips with --full-rtt) over the
 * valid part of the run, how many observations they are of, and the round trips of the whole
 * run, warm-up included ("[Total Run] ... ReceivedMessages=N": every reply received), 0 if it
 * did not say.
 */
export function parseSockperf(text: string): { p50: number; p99: number; observations: number; roundTrips: number } {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const pct = (p: string) => {
    const m = new RegExp(`percentile ${p.replace(".", "\\.")} =\\s*([\\d.]+)`).exec(plain);
    if (!m) throw new BenchError(`sockperf printed no ${p} percentile: ${plain.trim().split("\n").slice(-2).join("; ").slice(0, 200)}`);
    return Number(m[1]);
  };
  const obs = /Total (\d+) observations/.exec(plain);
  const total = /\[Total Run\][^\n]*ReceivedMessages=(\d+)/.exec(plain);
  return { p50: pct("50.000"), p99: pct("99.000"), observations: obs ? Number(obs[1]) : 0, roundTrips: total ? Number(total[1]) : 0 };
}

/** The offload features that matter for a fair comparison, as `ethtool -k` names them. */
export const OFFLOADS = ["tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"] as const;

/** `ethtool -k DEV` output: those of OFFLOADS that are not on ("off", or "off [fixed]"). */
export function offloadsOff(text: string): string[] {
  const off: string[] = [];
  for (const f of OFFLOADS) {
    const m = new RegExp(`^${f}: (.*)$`, "m").exec(text);
    if (m && !m[1].startsWith("on")) off.push(m[1].includes("fixed") ? `${f} (fixed)` : f);
  }
  return off;
}

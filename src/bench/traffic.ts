/**
 * The good traffic that the hostile-input script and the soak keep running between two pods
 * while they do their worst: a ping (every `pingInterval` seconds, one reply awaited a second)
 * and one TCP stream (iperf3, one connection for the whole run, at `tcpRate` or as fast as it
 * goes), and what is read of them at the end: pings lost, the stream's bytes, its TCP
 * retransmits (the loss TCP repaired) and its longest stall (the longest run of 1-second
 * intervals that moved no byte). The parsers are plain functions of the tools' output.
 */
import type { Children, Finished, Started } from "./children.ts";
import { BenchError } from "./figures.ts";

export interface PingFigures {
  sent: number;
  received: number;
  lost: number;
  lossPercent: number;
}

export interface TcpFigures {
  /** The seconds the stream ran, the bytes it sent, their rate. */
  seconds: number;
  bytes: number;
  gbps: number;
  /** TCP segments the sender sent again (lost or late), as iperf3 reads them from the kernel. */
  retransmits: number;
  /** The longest time the stream moved nothing, in seconds (whole intervals of iperf3's -i 1, to 0.01 s). */
  maxStallSeconds: number;
  /** iperf3's error, unless it was only our interrupt. */
  error?: string;
}

/** ping's summary: "N packets transmitted, M received". */
export function parsePing(text: string): PingFigures {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (!m) throw new BenchError(`ping printed no summary: ${text.trim().split("\n").slice(-2).join(" / ") || "(nothing)"}`);
  const sent = Number(m[1]);
  const received = Number(m[2]);
  return { sent, received, lost: sent - received, lossPercent: sent ? ((sent - received) / sent) * 100 : 0 };
}

interface IperfInterval {
  sum?: { seconds?: number; bytes?: number };
}

interface IperfClientJson {
  error?: string;
  intervals?: IperfInterval[];
  end?: { sum_sent?: { seconds?: number; bytes?: number; retransmits?: number } };
}

/** The client's -J output, also when it was interrupted (iperf3 then prints what it has, with an "interrupt" error). */
export function parseIperfStream(text: string): TcpFigures {
  let j: IperfClientJson;
  try {
    j = JSON.parse(text) as IperfClientJson;
  } catch {
    throw new BenchError(`iperf3 printed no JSON: ${text.trim().slice(0, 200) || "(nothing)"}`);
  }
  const intervals = j.intervals ?? [];
  let stall = 0;
  let run = 0;
  let bytes = 0;
  let seconds = 0;
  for (const iv of intervals) {
    const s = iv.sum?.seconds ?? 0;
    const b = iv.sum?.bytes ?? 0;
    bytes += b;
    seconds += s;
    run = b === 0 ? run + s : 0;
    stall = Math.max(stall, run);
  }
  const sent = j.end?.sum_sent;
  if (sent?.bytes) bytes = sent.bytes;
  if (sent?.seconds) seconds = sent.seconds;
  const error = j.error && !/interrupt/i.test(j.error) ? j.error : undefined;
  return {
    seconds, bytes, gbps: seconds > 0 ? (bytes * 8) / seconds / 1e9 : 0,
    retransmits: sent?.retransmits ?? 0, maxStallSeconds: Math.round(stall * 100) / 100, ...(error ? { error } : {}),
  };
}

export interface TrafficEnds {
  client: { netns: string };
  server: { netns: string; ip: string };
}

export interface GoodTraffic {
  /** Ends the ping (and the stream, if it still runs) and reads both. */
  stop(): Promise<{ ping: PingFigures; tcp: TcpFigures }>;
}

/**
 * Starts the ping and the TCP stream from `client` to `server`. The stream runs `seconds` (or
 * until stop), its server on `port`; it is started once the server listens (retried while refused).
 */
export async function startGoodTraffic(children: Children, ends: TrafficEnds, opts: { port: number; seconds: number; tcpRate?: string; pingInterval: number }): Promise<GoodTraffic> {
  const server = children.start(ends.server.netns, "iperf3", ["-s", "-1", "-p", String(opts.port), "-J"]);
  let client: Started | undefined;
  for (let attempt = 0; attempt < 50 && !client; attempt++) {
    const c = children.start(ends.client.netns, "iperf3", ["-c", ends.server.ip, "-p", String(opts.port), "-t", String(opts.seconds), "-i", "1", "-J", "--connect-timeout", "2000", ...(opts.tcpRate ? ["-b", opts.tcpRate] : [])]);
    const early = await Promise.race([c.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500))]);
    if (early === undefined) client = c; // still running: connected
    else if (!/refused/i.test(early.stdout + early.stderr)) throw new BenchError(`iperf3 to ${ends.server.ip}: ${(early.stdout + early.stderr).trim().slice(0, 300)}`);
    else await new Promise((r) => setTimeout(r, 100));
  }
  if (!client) throw new BenchError(`iperf3 server on ${ends.server.ip} never listened`);
  const ping = children.start(ends.client.netns, "ping", ["-n", "-q", "-i", String(opts.pingInterval), "-W", "1", ends.server.ip]);
  const stream = client;
  return {
    async stop() {
      const p: Finished = await children.interrupt(ping);
      const c: Finished = stream.child.exitCode === null ? await children.interrupt(stream) : await stream.done;
      await children.interrupt(server);
      return { ping: parsePing(p.stdout + p.stderr), tcp: parseIperfStream(c.stdout) };
    },
  };
}

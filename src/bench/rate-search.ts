/**
 * The UDP rate search (searchUdpRate): the highest rate a path delivers with at most 1% loss.
 *
 * At full rate (-b 0) every path loses packets: the kernel's
 * VXLAN a few percent, a switch whose sender is not slowed by the path (tapnet's sender-side TAP
 * queue overflows) three quarters. So the figure asked for, "delivered at ≤ 1% loss", is searched
 * for with iperf3 -b (offered rate in payload bits/s = pps × 1400 × 8):
 *   - the full-rate run comes first (delivered D, loss L, sent S); if L ≤ 1% that is the answer
 *     and nothing is probed (the sender cannot offer more);
 *   - otherwise UDP_SEARCH_PROBES (3) probes, each `seconds` long, the same budget for every
 *     setup: the first offers D (what the path carried: its capacity estimate); after that, with
 *     ok the highest offered rate that passed and fail the lowest that failed (S to begin with):
 *     no pass yet: fail × 0.75; else min(ok × 1.2, (ok + fail) / 2), a step up that never
 *     reaches a rate known to fail. So a path that holds ≤ 1% up to C and is offered 4C at full
 *     rate gets C, 1.2C, 1.1C: the answer is within one step (×1.2, or ×0.75 below) of C;
 *   - the figure is the highest delivered rate among the probes with ≤ 1% loss. If none passed
 *     (the lowest offered is 0.56 D) it is 0: the path did not hold 1% at any rate tried, and a
 *     target on it fails rather than being judged on a rate with more loss;
 *   - the probes' iperf3 gets socket buffers of 4 MiB (-w; less if net.core.rmem_max or wmem_max
 *     is lower, as iperf3 refuses a buffer it cannot get): with the default 208 KB the receiving
 *     iperf3 itself drops datagrams (UdpRcvbufErrors in its pod) whenever it is descheduled for a
 *     few ms on a 2-core machine, at any rate: kernel VXLAN lost 3-6% at 21 kpps that way, and 0%
 *     at 21-45 kpps with 4 MiB. The probes measure the path, not the receiver's buffer. The
 *     full-rate runs keep iperf3's defaults, as before.
 * Every round's probes are kept in its RoundResult (udpSearch), so a figure can be traced to them.
 */
import { readFileSync } from "node:fs";

/** How many offered rates the search probes after a full-rate run with more than 1% loss. */
export const UDP_SEARCH_PROBES = 3;

/**
 * The probes' socket buffer size (iperf3 -w, bytes): 4 MiB, or net.core.rmem_max / wmem_max if
 * lower (iperf3 fails when it cannot get the size asked for). `read` reads a /proc/sys file.
 */
export function probeSocketBuffer(read: (file: string) => string = (f) => readFileSync(f, "utf8")): number {
  let size = 4 * 1024 * 1024;
  for (const f of ["/proc/sys/net/core/rmem_max", "/proc/sys/net/core/wmem_max"]) {
    try {
      const v = Number(read(f).trim());
      if (Number.isInteger(v) && v > 0) size = Math.min(size, v);
    } catch { /* unreadable: iperf3 will say if the size is refused */ }
  }
  return size;
}

/** What one UDP run measured: delivered packets/s, loss, and (if known) packets/s sent. */
export interface UdpRun {
  pps: number;
  lossPercent: number;
  sentPps?: number;
}

/** One run of the search: the rate offered (packets/s; null for full rate, -b 0) and its result. */
export interface UdpRateProbe extends UdpRun {
  offeredPps: number | null;
}

export interface RateSearchOptions {
  /** Probes after the full-rate run (default UDP_SEARCH_PROBES). */
  probes?: number;
  /** The loss a rate may have and still count (default 1 %). */
  maxLossPercent?: number;
  /** Step up after a pass (default 1.2) and down after a failure with no pass yet (default 0.75). */
  up?: number;
  down?: number;
}

export interface RateSearchResult {
  /** The highest delivered packets/s of a run with loss ≤ maxLossPercent; 0 if none. */
  pps: number;
  /** The full-rate run first, then each probe in order. */
  probes: UdpRateProbe[];
}

/**
 * The highest rate a path delivers with at most 1% loss, from a full-rate run and at most
 * `probes` runs at offered rates (the module's header says how, and why). `probe(pps)` runs
 * the path at `pps` offered; pure otherwise.
 */
export async function searchUdpRate(full: UdpRun, probe: (offeredPps: number) => Promise<UdpRun>, opts: RateSearchOptions = {}): Promise<RateSearchResult> {
  const budget = opts.probes ?? UDP_SEARCH_PROBES;
  const maxLoss = opts.maxLossPercent ?? 1;
  const up = opts.up ?? 1.2;
  const down = opts.down ?? 0.75;
  const trail: UdpRateProbe[] = [{ offeredPps: null, ...full }];
  if (full.lossPercent <= maxLoss) return { pps: full.pps, probes: trail };
  let best = 0;
  let ok: number | null = null; // the highest offered rate that passed
  let fail = full.sentPps && full.sentPps > 0 ? full.sentPps : Infinity; // the lowest that failed
  let next = full.pps;
  for (let i = 0; i < budget && next > 0 && Number.isFinite(next); i++) {
    const r = await probe(next);
    trail.push({ offeredPps: next, ...r });
    if (r.lossPercent <= maxLoss) {
      best = Math.max(best, r.pps);
      ok = Math.max(ok ?? 0, next);
    } else {
      fail = Math.min(fail, next);
    }
    next = ok === null ? fail * down : Math.min(ok * up, (ok + fail) / 2);
  }
  return { pps: best, probes: trail };
}

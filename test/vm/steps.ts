/**
 * What the boot tests do inside their machines (boot.test.ts, etcd.test.ts): run a command and
 * fail with its output, read a node's pods from its switch, wait for them after a restart, ping
 * and move TCP from a pod (or the machine) with iperf3, and take a snapshot of what provisioning
 * and the switch may change, to compare before and after; name a demo pod's iperf3 unit.
 */
import { expect } from "vitest";
import { inside, type Machine } from "./machines.ts";

export interface Pod { name: string; ip: string; netns: string }

/** Runs `script` in `m`, failing with its output when it fails. */
export async function must(m: Machine, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await inside(m, script, { timeoutMs });
  if (r.code !== 0) throw new Error(`${m.hostname}: ${script}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The node's pods as its switch says (tapnet status --json). */
export async function pods(m: Machine): Promise<Pod[]> {
  const s = JSON.parse(await must(m, "tapnet status --json")) as { pods: Pod[] };
  return s.pods.map(({ name, ip, netns }) => ({ name, ip, netns })).sort((a, b) => a.name.localeCompare(b.name));
}

/** Waits until the node's switch lists `n` pods. */
export async function podsBack(m: Machine, n: number): Promise<Pod[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await inside(m, "tapnet status --json --wait 30");
    const got = r.code === 0 ? (JSON.parse(r.stdout) as { pods: Pod[] }).pods : [];
    if (got.length === n) return pods(m);
    if (Date.now() > deadline) throw new Error(`${m.hostname}: ${got.length} pods, not ${n}, 60 s after its switch started`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function ping(from: Machine, pod: Pod, to: string): Promise<void> {
  await must(from, `ip netns exec ${pod.netns} ping -c 3 -i 0.2 -W 2 -q ${to}`, 30_000);
}

/** `ip netns exec NS` for a pod; nothing for the machine's own namespace. */
const within = (netns: string) => (netns ? `ip netns exec ${netns} ` : "");

/** The port of the test's own iperf3 servers: the demo pods' (tapnet-demo@.service) hold 5201. */
const PORT = 5202;

/**
 * 20 MB of TCP from `client` on `cm` to `server` on `sm` (iperf3, a server of its own on port
 * 5202; a pod, or the machine itself with netns ""); the server must see the client's own
 * address. Returns the client's Mbit/s.
 */
export async function tcp(cm: Machine, client: Pod, sm: Machine, server: Pod): Promise<number> {
  const srv = inside(sm, `${within(server.netns)}iperf3 -s -1 -J --idle-timeout 20 -p ${PORT}`, { timeoutMs: 60_000 });
  const cli = await must(cm, `for i in $(seq 50); do ${within(client.netns)}iperf3 -c ${server.ip} -p ${PORT} -n 20M -J --connect-timeout 1000 >/tmp/iperf.json && ! grep -q '"error"' /tmp/iperf.json && cat /tmp/iperf.json && exit 0; sleep 0.2; done; cat /tmp/iperf.json; exit 1`, 90_000);
  const s = await srv;
  expect(s.code, s.stderr).toBe(0);
  const c = JSON.parse(cli) as { end: { sum_sent: { bytes: number }; sum_received: { bits_per_second: number } } };
  expect(c.end.sum_sent.bytes).toBeGreaterThanOrEqual(20 * 1024 * 1024);
  const seen = (JSON.parse(s.stdout) as { start: { connected: { remote_host: string }[] } }).start.connected[0].remote_host;
  expect(seen).toBe(client.ip);
  return Math.round(c.end.sum_received.bits_per_second / 1e6);
}

/** The systemd unit of the demo pod in namespace `netns` (tapnet-demo@.service), as a shell word. */
export const demoUnit = (netns: string) => `"$(systemd-escape --template tapnet-demo@.service ${netns})"`;

/**
 * What provisioning and the switch may touch, to compare before and after: links, routes, the
 * neighbours tapnet pins, namespaces, the nft ruleset, what is in /run/tapnet. The node's lock
 * file (node-lock.ts) is left out: held by no one once the switch is gone, it stays, as flock
 * files do (removing one races with a switch starting).
 */
export function snapshot(m: Machine): Promise<string> {
  return must(m, "ip -o link show | sed 's/^[0-9]*: //; s/ link\\/.*//; s/<.*//'; echo --; ip -4 route; echo --; ip -4 neigh show nud permanent; echo --; ip netns list; echo --; nft list ruleset; echo --; ls /run/tapnet 2>/dev/null | grep -v '[.]lock$' || true");
}


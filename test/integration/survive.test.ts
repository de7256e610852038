// A dead switch is no longer a dead node (#13, finding 5). The steps: `kill -9` of
// node1's switch in the middle of a cross-node iperf3, with pings going; then `lab up`, a switch
// started by hand, `lab status`, `lab down`. Before: the pods lost eth0 within 1.1 s, `lab up`
// refused, a hand-started switch came back with 0 pods, status showed the dead pid, and `lab
// down` left the hand-started switch running. Now: the TAPs outlive the switch, a supervisor's
// standby takes them over, the TCP connection survives a stall of under 2 s and pings lose at
// most a second's worth. Also on a switch run by hand (no lab): one switch per control socket,
// a killed one's pods taken over by the next, removed by `pod del` or a clean stop.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exited, journal, netnsList, pidAlive, ping, REPO, runCmd, sh, tapnet, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

// A run outside CI (whose setup deletes every tapnet-it- lab) may name its own prefix.
const prefix = process.env.SURVIVE_TEST_PREFIX ?? uniquePrefix("survive");
const pod1 = `${prefix}-node1-pod1`;
const pod2 = `${prefix}-node2-pod1`;

interface Supervision { pid: number; switch: number; standby: number; restarts: number; state: string; lastExit?: { pid: number; how: string } }

/** node1's supervisor's status, if it has one (the code before #13 had none). */
function supervision(): Supervision | undefined {
  const f = `/run/tapnet/${prefix}/node1.supervisor.json`;
  return existsSync(f) ? JSON.parse(readFileSync(f, "utf8")) : undefined;
}

/** Is node1's standby loaded and waiting (node/node-lock.ts's marker names it)? */
function standbyReady(): boolean {
  const s = supervision();
  const f = `/run/tapnet/${prefix}/node1.standby`;
  return !!s?.standby && existsSync(f) && Number(readFileSync(f, "utf8")) === s.standby;
}

/** node1's running switch: its supervisor's word, else the journal's. */
function node1Switch(): number {
  return supervision()?.switch || journal(prefix)!.nodes[0].pid;
}

/** pod's eth0 address, or undefined if it has no eth0. */
function eth0(netns: string): string | undefined {
  try {
    return /inet (\S+)/.exec(sh("ip", ["-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"]))?.[1];
  } catch {
    return undefined;
  }
}

/** The longest run of iperf3 intervals that moved nothing, in seconds. */
function longestStall(intervals: { sum: { seconds: number; bytes: number } }[]): number {
  let run = 0;
  let worst = 0;
  for (const i of intervals) {
    run = i.sum.bytes === 0 ? run + i.sum.seconds : 0;
    worst = Math.max(worst, run);
  }
  return worst;
}

describe("a lab's node survives a kill -9 of its switch", () => {
  const handStarted: ChildProcess[] = [];

  beforeAll(async () => {
    const r = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    // The standby is started a second after the switch answers, and takes some seconds to load.
    await waitFor(standbyReady, 45_000, "node1's standby").catch(() => {}); // (the code before #13 has none)
  });

  afterAll(async () => {
    await tapnet(["lab", "down", "--prefix", prefix]);
    for (const c of handStarted) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  it("keeps the pods' eth0, the TCP connection (a stall under 2 s) and all but a second of pings; the supervisor counts the restart", async () => {
    const server = spawn("ip", ["netns", "exec", pod2, "iperf3", "-s", "-1", "-p", "5213"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const client = runCmd("ip", ["netns", "exec", pod1, "iperf3", "-c", "10.244.2.2", "-p", "5213", "-t", "8", "-i", "0.1", "-J"], { timeoutMs: 40_000 });
      const pings = ping(pod1, "10.244.2.2", ["-i", "0.1", "-c", "80", "-q"]);
      await new Promise((r) => setTimeout(r, 3_000));
      const killed = node1Switch();
      expect(pidAlive(killed)).toBe(true);
      process.kill(killed, "SIGKILL");
      await new Promise((r) => setTimeout(r, 1_100));
      expect(eth0(pod1)).toBe("10.244.1.2/24"); // before #13: "Device "eth0" does not exist."
      const result = JSON.parse((await client).stdout);
      expect(result.error).toBeUndefined();
      const stall = longestStall(result.intervals);
      const after = result.intervals.slice(-20).reduce((a: number, i: { sum: { bytes: number } }) => a + i.sum.bytes, 0);
      console.log(`kill -9 of node1's switch: longest iperf3 stall ${stall.toFixed(1)} s, ${result.end.sum_sent.retransmits} retransmits, ${(await pings).sent - (await pings).received} of ${(await pings).sent} pings lost (every 0.1 s)`);
      expect(after).toBeGreaterThan(0); // the same connection moved data in its last 2 s
      expect(stall).toBeLessThan(2);
      const { sent, received } = await pings;
      expect(sent).toBe(80);
      expect(sent - received).toBeLessThanOrEqual(10);
      const s = supervision()!;
      expect(s).toMatchObject({ state: "running", restarts: 1, lastExit: { pid: killed, how: "killed by SIGKILL" } });
      expect(s.switch).not.toBe(killed);
      expect(pidAlive(s.switch)).toBe(true);
      const status = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
      expect(status.nodes[0].pid).toBe(s.switch);
      expect(status.supervisors.node1).toMatchObject({ restarts: 1, switch: s.switch });
      expect(status.switches.node1.pods.map((p: { name: string }) => p.name)).toEqual(["node1-pod1"]);
    } finally {
      server.kill();
    }
  });

  it("lab up on the lab that is up does not refuse: it waits until it forwards", async () => {
    const r = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`lab ${prefix} is up`);
    const other = await tapnet(["lab", "up", "--nodes", "3", "--pods", "1", "--prefix", prefix]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`a lab named ${prefix} is already up`);
  });

  it("refuses a second switch for the node; with the supervisor gone too, one started by hand takes the pods over, and lab down stops it", async () => {
    const s = supervision()!;
    const args = readFileSync(`/proc/${s.switch}/cmdline`, "utf8").split("\0").filter(Boolean);
    const i = args.indexOf("switch");
    const second = await runCmd("nsenter", [`--net=/run/netns/${prefix}-node1`, "--", process.execPath, TAPNET, ...args.slice(i)]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^tapnet: another switch \\(pid ${s.switch}\\) holds /run/tapnet/${prefix}/node1\\.lock: this node's switch is running already\\n$`));
    for (const pid of [s.pid, s.standby, s.switch]) if (pid) process.kill(pid, "SIGKILL");
    await waitFor(() => !pidAlive(s.switch), 5_000, "the switch to die");
    expect(eth0(pod1)).toBe("10.244.1.2/24");
    const hand = spawn("nsenter", [`--net=/run/netns/${prefix}-node1`, "--", process.execPath, TAPNET, ...args.slice(i)], { cwd: REPO, stdio: "ignore", detached: true });
    handStarted.push(hand);
    const control = `/run/tapnet/${prefix}/node1.sock`;
    let pods: { name: string; ip: string }[] = [];
    for (const t0 = Date.now(); !pods.length && Date.now() - t0 < 60_000;) {
      const r = await tapnet(["pod", "list", "--json", "--control", control]);
      if (r.code === 0) pods = JSON.parse(r.stdout);
      else await new Promise((res) => setTimeout(res, 200));
    }
    expect(pods.map((p) => [p.name, p.ip])).toEqual([["node1-pod1", "10.244.1.2"]]);
    expect((await ping(pod1, "10.244.2.2", ["-c", "3", "-i", "0.2", "-W", "2"])).received).toBeGreaterThan(0);
    const down = await tapnet(["lab", "down", "--prefix", prefix]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout + down.stderr).toContain(`a switch the lab did not start runs in ${prefix}-node1 (pid ${hand.pid})`);
    await waitFor(() => hand.exitCode !== null || hand.signalCode !== null, 5_000, "the hand-started switch to exit");
    expect(netnsList().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  });
});

describe("tapnet switch by hand: one per node, and a killed one's pods taken over by the next", () => {
  const ns = `${prefix}-h`;
  const podNs = `${prefix}-hp`;
  const dir = mkdtempSync(join(tmpdir(), "survive-it-"));
  const control = join(dir, "h1.sock");
  const config = join(dir, "cluster.yaml");
  const store = `file:${join(dir, "store")}`;
  let sw: ChildProcess | undefined;

  const start = async (): Promise<ChildProcess> => {
    let log = "";
    const c = spawn("nsenter", [`--net=/run/netns/${ns}`, "--", process.execPath, TAPNET, "switch", "--config", config, "--node", "h1", "--control", control, "--store", store], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
    c.stderr!.on("data", (d) => (log += d));
    await waitFor(() => log.includes('"switch ready"') || c.exitCode !== null, 60_000, "the switch to start");
    expect(c.exitCode, log).toBeNull();
    return c;
  };

  const pendingNs = `${prefix}-hz`;

  beforeAll(async () => {
    writeFileSync(config, "nodes:\n  - name: h1\n    address: 192.168.78.1\n    podCidr: 10.244.8.0/24\n");
    sh("ip", ["netns", "add", ns]);
    sh("ip", ["netns", "add", podNs]);
    // What a switch killed in the middle of attaching leaves: its pod file's pending entry, the
    // namespace it made, a TAP under its temporary name; and an entry whose namespace is gone.
    sh("ip", ["netns", "add", pendingNs]);
    sh("ip", ["-n", ns, "tuntap", "add", "tnp999x1", "mode", "tap"]);
    const entry = { namespace: "default", ip: "10.244.8.9", mac: "0a:58:0a:f4:08:09", ifname: "eth0", fromStore: false };
    writeFileSync(join(dir, "h1.pods.json"), JSON.stringify({ version: 1, pods: [
      { ...entry, name: "half", netns: pendingNs, ownsNetns: true, pending: "tnp999x1" },
      { ...entry, name: "gone", netns: `${prefix}-nowhere`, ip: "10.244.8.10", mac: "0a:58:0a:f4:08:0a", ownsNetns: false },
    ] }));
    sw = await start();
  });

  it("a new switch removes what a dead one left half made, and drops pods whose namespace is gone", async () => {
    expect(netnsList()).not.toContain(pendingNs);
    expect(() => sh("ip", ["-n", ns, "link", "show", "tnp999x1"])).toThrow();
    expect(JSON.parse((await tapnet(["pod", "list", "--json", "--control", control])).stdout)).toEqual([]);
    expect(JSON.parse(readFileSync(join(dir, "h1.pods.json"), "utf8"))).toEqual({ version: 1, pods: [] });
  });

  afterAll(async () => {
    if (sw && sw.exitCode === null && sw.signalCode === null) {
      sw.kill("SIGKILL");
      await exited(sw);
    }
    for (const n of [ns, podNs, `${prefix}-hq`, pendingNs]) if (netnsList().includes(n)) sh("ip", ["netns", "del", n]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a killed switch's pods keep eth0 and are taken over; pod del and a clean stop remove their TAPs", async () => {
    const add = await tapnet(["pod", "add", "web", "--netns", podNs, "--control", control]);
    expect(add.code, add.stderr).toBe(0);
    const made = await tapnet(["pod", "add", `${prefix}-hq`, "--control", control]); // its namespace the switch's to make
    expect(made.code, made.stderr).toBe(0);
    sw!.kill("SIGKILL");
    await exited(sw!);
    await new Promise((r) => setTimeout(r, 1_100));
    expect(eth0(podNs)).toBe("10.244.8.2/24");
    expect(sh("ip", ["-n", podNs, "-d", "link", "show", "eth0"])).toMatch(/tun type tap .*persist on/);
    sw = await start();
    const list = JSON.parse((await tapnet(["pod", "list", "--json", "--control", control])).stdout);
    expect(list.map((p: { name: string; ip: string; netns: string }) => [p.name, p.ip, p.netns])).toEqual([["web", "10.244.8.2", podNs], [`${prefix}-hq`, "10.244.8.3", `${prefix}-hq`]]);
    expect((await ping(podNs, "10.244.8.1", ["-c", "2", "-i", "0.2", "-W", "2"])).received).toBeGreaterThan(0);
    expect((await tapnet(["pod", "del", "web", "--control", control])).code).toBe(0);
    expect(eth0(podNs)).toBeUndefined(); // pod del removes the TAP, persistent or not
    sw!.kill("SIGTERM");
    expect(await exited(sw!)).toBe(0);
    expect(netnsList()).not.toContain(`${prefix}-hq`); // a clean stop detaches its pods as before
    expect(existsSync(join(dir, "h1.pods.json"))).toBe(false);
    expect(() => sh("ip", ["-n", ns, "link", "show", "tapnet0"])).toThrow();
  });
});

// `tapnet switch` on its own, as on a VM, with pods attached and detached through `tapnet pod`.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exited, netnsList, pidAlive, REPO, runCmd, sh, tapnet, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

const prefix = uniquePrefix("sw");
const nodeNs = `${prefix}-node`;
const userNs = `${prefix}-mine`; // a namespace the user made, attached with --netns
const created = [`${prefix}-a`, `${prefix}-b`];
const dir = mkdtempSync(join(tmpdir(), "tapnet-it-"));
const control = join(dir, "n1.sock");
const configPath = join(dir, "cluster.yaml");
const store = `file:${join(dir, "store")}`;

/** The pods the switch recorded in its store, as namespace/name. */
async function storedPods(): Promise<string[]> {
  const r = await tapnet(["get", "pods", "-A", "-o", "json", "--store", store]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).items.map((p: { metadata: { namespace: string; name: string } }) => `${p.metadata.namespace}/${p.metadata.name}`).sort();
}

function startSwitch(config = configPath): ChildProcess {
  return spawn("nsenter", [`--net=/run/netns/${nodeNs}`, "--", process.execPath, TAPNET, "switch", "--config", config, "--node", "n1", "--control", control, "--store", store], {
    cwd: REPO, stdio: ["ignore", "pipe", "pipe"],
  });
}

describe("tapnet switch with tapnet pod", () => {
  let sw: ChildProcess;
  let log = "";

  beforeAll(async () => {
    writeFileSync(configPath, "nodes:\n  - name: n1\n    address: 192.168.77.1\n    podCidr: 10.244.7.0/24\n");
    sh("ip", ["netns", "add", nodeNs]);
    sh("ip", ["netns", "add", userNs]);
    sw = startSwitch();
    sw.stderr!.on("data", (d) => (log += d));
    await waitFor(() => log.includes('"switch ready"'), 60_000, "the switch to start");
  });

  afterAll(async () => {
    if (sw && sw.exitCode === null) {
      sw.kill("SIGKILL");
      await exited(sw);
    }
    for (const ns of [nodeNs, userNs, ...created]) if (netnsList().includes(ns)) sh("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a config with a fault, naming the field", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "nodes:\n  - name: n1\n    address: 192.168.77.1\n    podCidr: 10.9.0.0/24\n");
    const r = await tapnet(["switch", "--config", bad, "--node", "n1", "--control", join(dir, "bad.sock")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tapnet: nodes\[0\]\.podCidr: 10\.9\.0\.0\/24 is outside clusterCidr 10\.244\.0\.0\/16\n$/);
  });

  it("checks --cpu: a number, and a CPU this machine lets it use", async () => {
    const word = await tapnet(["switch", "--config", configPath, "--node", "n1", "--control", join(dir, "x.sock"), "--cpu", "one"]);
    expect(word.code).toBe(2);
    expect(word.stderr).toContain('--cpu must be a whole number from 0 to 1023, not "one"');
    const none = await tapnet(["switch", "--config", configPath, "--node", "n1", "--control", join(dir, "x.sock"), "--cpu", "1000"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^tapnet: --cpu 1000: this machine lets tapnet use CPUs? [0-9,-]+\n/);
  });

  it("checks --underlay-dev: it must exist and hold the node's address", async () => {
    const missing = await tapnet(["switch", "--config", configPath, "--node", "n1", "--control", join(dir, "x.sock"), "--underlay-dev", "nosuch0"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("tapnet: --underlay-dev nosuch0: no such interface\n");
    const wrong = await tapnet(["switch", "--config", configPath, "--node", "n1", "--control", join(dir, "x.sock"), "--underlay-dev", "lo"]);
    expect(wrong.stderr).toBe("tapnet: --underlay-dev lo does not hold 192.168.77.1, node n1's address in the config\n");
  });

  it("holds the gateway address on tapnet0 in its namespace", () => {
    expect(sh("ip", ["-n", nodeNs, "-4", "-o", "addr", "show", "dev", "tapnet0"])).toContain("10.244.7.1/24");
  });

  it("attaches pods in new and existing namespaces, and they reach each other and the node", async () => {
    const a = await tapnet(["pod", "add", created[0], "--control", control]);
    expect(a.stderr).toBe("");
    expect(a.stdout).toContain("10.244.7.2");
    const b = await tapnet(["pod", "add", created[1], "--ip", "10.244.7.50", "--control", control]);
    expect(b.code).toBe(0);
    const m = await tapnet(["pod", "add", "mine", "--netns", userNs, "--control", control]);
    expect(m.code).toBe(0);
    expect(sh("ip", ["-n", created[1], "-4", "-o", "addr", "show", "dev", "eth0"])).toContain("10.244.7.50/24");
    expect(sh("ip", ["-n", created[0], "route", "show", "default"])).toContain("via 10.244.7.1");
    sh("ip", ["netns", "exec", created[0], "ping", "-c", "2", "-W", "2", "-i", "0.2", "10.244.7.50"]);
    sh("ip", ["netns", "exec", userNs, "ping", "-c", "2", "-W", "2", "-i", "0.2", "10.244.7.1"]);
    sh("ip", ["netns", "exec", nodeNs, "ping", "-c", "2", "-W", "2", "-i", "0.2", "10.244.7.2"]);
    const list = JSON.parse((await tapnet(["pod", "list", "--json", "--control", control])).stdout);
    expect(list.map((p: { name: string }) => p.name).sort()).toEqual([created[0], created[1], "mine"].sort());
    expect(await storedPods()).toEqual([`default/${created[0]}`, `default/${created[1]}`, "default/mine"].sort());
  });

  it("records a pod in the Kubernetes namespace it is told: a name may be taken in another", async () => {
    const none = await tapnet(["pod", "add", "mine", "-n", "team", "--netns", `${prefix}-c`, "--control", control]);
    expect(none.stderr).toContain('namespaces "team" not found');
    const ns = await runCmd("sh", ["-c", `printf 'apiVersion: v1\\nkind: Namespace\\nmetadata: {name: team}\\n' | node ${TAPNET} apply -f - --store ${store}`]);
    expect(ns.stdout.trim(), ns.stderr).toBe("namespace/team created");
    const other = await tapnet(["pod", "add", "mine", "-n", "team", "--netns", `${prefix}-c`, "--control", control]);
    expect(other.code, other.stderr).toBe(0);
    created.push(`${prefix}-c`);
    expect(await storedPods()).toContain("team/mine");
    expect((await tapnet(["pod", "del", "mine", "-n", "team", "--control", control])).stdout).toContain("detached");
    expect(await storedPods()).not.toContain("team/mine");
  });

  it("refuses a taken address, a duplicate pod and a bad name with one-line errors", async () => {
    const dupIp = await tapnet(["pod", "add", "other", "--ip", "10.244.7.50", "--control", control]);
    expect(dupIp.code).toBe(1);
    expect(dupIp.stderr).toBe("tapnet: 10.244.7.50 is already in use\n");
    expect(netnsList()).not.toContain("other"); // nothing half-made is left
    const outside = await tapnet(["pod", "add", "other", "--ip", "10.244.8.5", "--control", control]);
    expect(outside.stderr).toContain("outside this node's pod CIDR 10.244.7.0/24");
    const dup = await tapnet(["pod", "add", created[0], "--control", control]);
    expect(dup.stderr).toContain(`pod ${created[0]} is already attached`);
    const badName = await tapnet(["pod", "add", "Bad_Name", "--control", control]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("pod name");
  });

  it("pod del detaches, deletes only the namespaces it created, and is idempotent", async () => {
    expect((await tapnet(["pod", "del", created[1], "--control", control])).stdout).toContain("detached");
    expect(netnsList()).not.toContain(created[1]);
    expect((await tapnet(["pod", "del", created[1], "--control", control])).stdout).toContain("nothing to do");
    expect((await tapnet(["pod", "del", "mine", "--control", control])).code).toBe(0);
    expect(netnsList()).toContain(userNs); // the user's namespace stays, without its eth0
    expect(() => sh("ip", ["-n", userNs, "link", "show", "eth0"])).toThrow();
    // the freed address is handed out again
    const again = await tapnet(["pod", "add", created[1], "--control", control]);
    expect(again.stdout).toContain("10.244.7.3");
  });

  it("forgets a pod whose namespace was deleted under it", async () => {
    sh("ip", ["netns", "del", created[1]]);
    await waitFor(() => log.includes('"port went down"'), 10_000, "the switch to notice");
    const list = JSON.parse((await tapnet(["pod", "list", "--json", "--control", control])).stdout);
    expect(list.map((p: { name: string }) => p.name)).toEqual([created[0]]);
    expect(await storedPods()).toEqual([`default/${created[0]}`]);
  });

  it("stops on SIGTERM promptly, removing its devices and the namespaces it made", async () => {
    const t0 = Date.now();
    sw.kill("SIGTERM");
    const code = await exited(sw);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(pidAlive(sw.pid!)).toBe(false);
    expect(netnsList()).not.toContain(created[0]);
    expect(() => sh("ip", ["-n", nodeNs, "link", "show", "tapnet0"])).toThrow();
    const r = await runCmd("ls", [control]);
    expect(r.code).not.toBe(0); // the control socket is gone
    expect(log).toContain('"switch stopped"');
    expect(await storedPods()).toEqual([]); // pod add's pods go with their switch
  });
});

/**
 * The labs of the trace, follow, web and dissector integration tests (trace.test.ts runs
 * trace-checks.ts, follow-checks.ts and web-checks.ts; lua-dissector.test.ts), and what those
 * tests do with them.
 *
 * A lab takes seconds to come up and go down, so one lab of 2 nodes serves every check of a
 * backend: shareLab() registers, in the describe that calls it, a beforeAll that brings the lab
 * up and reads its journal, and an afterAll that takes it down (also when a test or the lab up
 * failed). The describes inside run against that one lab, each leaving it as it found it: what
 * one applies it deletes, what it starts it stops. So they do not depend on each other's order.
 *
 * Also here: background processes killed by pid (Background), and the dissector's checks on a
 * lab's underlay (captureUnderlay, tsharkFields), which need a sealed lab and a lab in the clear.
 * TAPNET_LAB_PREFIX=NAME names the labs NAME-<tag> instead of tapnet-it-… (a run beside CI's).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, vi } from "vitest";
import { luaDissectorCommand } from "../../src/cli/commands/lua-dissector.ts";
import type { LabState } from "../../src/lab/plan.ts";
import { exited, runCmd, tapnet, uniquePrefix, waitFor } from "./helpers.ts";

export type Backend = "tapnet" | "udp" | "vxlan";
export const BACKENDS: readonly Backend[] = ["tapnet", "udp", "vxlan"];

export interface SharedLab {
  readonly backend: Backend;
  readonly prefix: string;
  /** The lab's journal, read once it is up. */
  state: LabState;
}

/** A lab's name: NAME-tag with TAPNET_LAB_PREFIX=NAME, else the test prefix's. */
export function labName(tag: string): string {
  return process.env.TAPNET_LAB_PREFIX ? `${process.env.TAPNET_LAB_PREFIX}-${tag}` : uniquePrefix(tag);
}

/**
 * A lab of 2 nodes with 2 pods each on `backend` (sealed, unless `insecure`), up before the
 * calling describe's tests and down after them.
 */
export function shareLab(backend: Backend, opts: { insecure?: boolean } = {}): SharedLab {
  const lab = { backend, prefix: labName(`${backend}${opts.insecure ? "-clear" : ""}`), state: undefined as unknown as LabState };
  beforeAll(async () => {
    const up = await tapnet(["lab", "up", "--prefix", lab.prefix, "--backend", backend, ...(opts.insecure ? ["--insecure"] : [])], { timeoutMs: 170_000 });
    expect(up.code, up.stderr).toBe(0);
    lab.state = JSON.parse(readFileSync(`/run/tapnet/${lab.prefix}/lab.json`, "utf8")) as LabState;
  }, 180_000);
  afterAll(async () => {
    await tapnet(["lab", "down", "--prefix", lab.prefix]);
  }, 60_000);
  return lab;
}

/** The lab's own pod `name` (node1-pod1, ...). */
export function labPod(lab: SharedLab, name: string): LabState["pods"][number] {
  const p = lab.state.pods.find((x) => x.name === name);
  if (!p) throw new Error(`lab ${lab.prefix} has no pod ${name}`);
  return p;
}

/** The switches' control sockets, node by node. */
export const switchSockets = (lab: SharedLab): string[] => lab.state.nodes.map((n) => n.control);

/** Processes a test starts in the background; stopAll() kills each by its pid and waits for it. */
export class Background {
  private children: ChildProcess[] = [];

  start(cmd: string, args: string[]): ChildProcess {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.children.push(c);
    return c;
  }

  async stopAll(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const e = exited(c);
      c.kill("SIGKILL");
      await e;
    }
  }
}

/** What `tapnet lua-dissector` prints, saved in `dir` as a file for tshark's -X lua_script. */
export async function dissectorFile(dir: string): Promise<string> {
  let text = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation(((s: string) => { text += s; return true; }) as typeof process.stdout.write);
  try {
    expect(await luaDissectorCommand.run({ values: {}, positionals: [] })).toBe(0);
  } finally {
    spy.mockRestore();
  }
  const file = join(dir, "tapnet.lua");
  writeFileSync(file, text);
  return file;
}

/** tshark's fields for each packet of `file`, with the dissector, split at tabs; any Lua error fails the test. */
export async function tsharkFields(dir: string, file: string, names: string[], extra: string[] = []): Promise<string[][]> {
  const lua = await dissectorFile(dir);
  const args = ["-X", `lua_script:${lua}`, "-r", file, ...extra];
  const verbose = await runCmd("tshark", [...args, "-V"]);
  expect(verbose.stderr + verbose.stdout).not.toMatch(/Lua Error|lua_script|attempt to/i);
  const r = await runCmd("tshark", [...args, "-T", "fields", ...names.flatMap((n) => ["-e", n])]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.replace(/\n$/, "").split("\n").map((l) => l.split("\t"));
}

/**
 * Captures the lab's underlay (UDP on br0) into a file in `dir` while node1-pod1 pings node2-pod1
 * and sends it 100 KB over TCP; returns the file and the two pods' addresses. With `spread`,
 * node1's underlay device first loses UDP segmentation offload, so the kernel cuts each
 * UDP_SEGMENT send into its datagrams before the bridge sees them (as a NIC would on the wire);
 * its setting is put back afterwards, so the lab is left as it was.
 */
export async function captureUnderlay(lab: SharedLab, dir: string, spread = false): Promise<{ file: string; a: string; b: string }> {
  const prefix = lab.prefix;
  const a = labPod(lab, "node1-pod1").ip;
  const b = labPod(lab, "node2-pod1").ip;
  const file = join(dir, `${prefix}${spread ? "-spread" : ""}.pcap`);
  const bg = new Background();
  const offload = (state: string) => runCmd("ip", ["netns", "exec", `${prefix}-node1`, "ethtool", "-K", "eth0", "tx-udp-segmentation", state]);
  let was = "";
  if (spread) {
    const k = await runCmd("ip", ["netns", "exec", `${prefix}-node1`, "ethtool", "-k", "eth0"]);
    was = /^tx-udp-segmentation: (on|off)/m.exec(k.stdout)?.[1] ?? "";
    expect(was, k.stdout + k.stderr).not.toBe("");
    expect((await offload("off")).code).toBe(0);
  }
  try {
    const dump = bg.start("ip", ["netns", "exec", `${prefix}-underlay`, "tcpdump", "-i", "br0", "--immediate-mode", "-B", "32768", "-U", "-w", file, "udp"]);
    let said = "";
    dump.stderr!.on("data", (d) => (said += d));
    await waitFor(() => said.includes("listening on"), 10_000, "tcpdump");
    const server = bg.start("ip", ["netns", "exec", `${prefix}-node2-pod1`, process.execPath, "-e",
      `require("net").createServer((s)=>{s.resume();s.on("end",()=>s.end())}).listen(7777,()=>console.log("ready"))`]);
    let ready = "";
    server.stdout!.on("data", (d) => (ready += d));
    await waitFor(() => ready.includes("ready"), 10_000, "the TCP server");
    const ping = await runCmd("ip", ["netns", "exec", `${prefix}-node1-pod1`, "ping", "-c", "3", "-i", "0.2", b]);
    expect(ping.code, ping.stdout).toBe(0);
    const client = await runCmd("ip", ["netns", "exec", `${prefix}-node1-pod1`, process.execPath, "-e",
      `const c=require("net").connect(7777,"${b}",()=>c.end(Buffer.alloc(100000,97)));c.on("close",()=>console.log("closed"))`], { timeoutMs: 20_000 });
    expect(client.stdout).toContain("closed");
    await new Promise((r) => setTimeout(r, 300));
    const done = exited(dump);
    dump.kill("SIGINT");
    await done;
  } finally {
    await bg.stopAll();
    if (was) await offload(was);
  }
  return { file, a, b };
}

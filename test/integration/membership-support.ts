/**
 * What the membership test needs beyond helpers.ts: an underlay of its own (namespaces named
 * "<prefix>-..."), and nodes run as fixtures/membership-node.ts in their namespaces, each
 * told its node list on stdin and answering on stdout. Everything made is recorded, so that
 * `destroy` removes it, by pid and by name, also after a failure.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { UNDERLAY_BRIDGE_MAC } from "../../src/lab/plan.ts";
import { REPO, sh } from "./helpers.ts";

const FIXTURE = `${REPO}test/integration/fixtures/membership-node.ts`;

export interface TestNode {
  name: string;
  netns: string;
  podNetns: string;
  address: string;
  child: ChildProcess;
  /** The pod's address, once the node said it is ready. */
  pod?: string;
  /** What the node printed on stderr (its log), for a failure's message. */
  log: string;
  /** Makes `members` the node's node list; resolves with its answer. */
  setMembers(members: string[]): Promise<{ ok?: boolean; error?: string }>;
}

export class Testbed {
  readonly namespaces: string[] = [];
  readonly nodes: TestNode[] = [];
  readonly underlay: string;

  constructor(readonly prefix: string) {
    this.underlay = `${prefix}-ul`;
  }

  private netns(name: string): void {
    this.namespaces.push(name);
    sh("ip", ["netns", "add", name]);
  }

  /** The underlay: a bridge in its own namespace. */
  up(): void {
    this.netns(this.underlay);
    // Its own MAC, as the lab's br0 has (plan.ts): hosts cabled later would otherwise change it.
    sh("ip", ["-n", this.underlay, "link", "add", "br0", "address", UNDERLAY_BRIDGE_MAC, "type", "bridge"]);
    sh("ip", ["-n", this.underlay, "link", "set", "br0", "up"]);
  }

  /** A node's namespace on the underlay at `address`/24, and an empty namespace for its pod. */
  addHost(name: string, address: string): { netns: string; podNetns: string } {
    const netns = `${this.prefix}-${name}`;
    const podNetns = `${this.prefix}-${name}-pod`;
    this.netns(netns);
    this.netns(podNetns);
    sh("ip", ["-n", this.underlay, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    sh("ip", ["-n", this.underlay, "link", "set", name, "master", "br0", "up"]);
    sh("ip", ["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
    sh("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    sh("ip", ["-n", netns, "link", "set", "lo", "up"]);
    return { netns, podNetns };
  }

  /** Starts node `name` (its host made by addHost) with the node list `members`; resolves when its pod is attached. */
  async start(name: string, address: string, configPath: string, members: string[]): Promise<TestNode> {
    const { netns, podNetns } = { netns: `${this.prefix}-${name}`, podNetns: `${this.prefix}-${name}-pod` };
    const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, "--import", "tsx", FIXTURE, configPath, name, members.join(","), podNetns], {
      cwd: REPO, stdio: ["pipe", "pipe", "pipe"],
    });
    const answers: ((a: Record<string, unknown>) => void)[] = [];
    const node: TestNode = {
      name, netns, podNetns, address, child, log: "",
      setMembers: (m) => new Promise((resolve) => {
        answers.push(resolve as (a: Record<string, unknown>) => void);
        child.stdin!.write(JSON.stringify({ members: m }) + "\n");
      }),
    };
    this.nodes.push(node);
    child.stderr!.on("data", (d) => (node.log += d));
    const ready = new Promise<Record<string, unknown>>((resolve) => answers.push(resolve));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const a = JSON.parse(line) as Record<string, unknown>;
      answers.shift()?.(a);
    });
    const exited = new Promise<Record<string, unknown>>((resolve) => child.on("exit", (code) => resolve({ error: `exited with ${code}` })));
    const first = await Promise.race([ready, exited, timeout(60_000)]);
    if (first.error || !first.ready) throw new Error(`node ${name} did not start: ${JSON.stringify(first)}\n${node.log}`);
    node.pod = first.pod as string;
    return node;
  }

  /** Stops every node (end of stdin, then SIGKILL by pid after 5 s) and deletes every namespace made, by name. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      if (n.child.exitCode !== null || n.child.signalCode !== null) return;
      const gone = new Promise((r) => n.child.once("exit", r));
      n.child.stdin!.end();
      if ((await Promise.race([gone, timeout(5_000)])) !== undefined) n.child.kill("SIGKILL");
      await Promise.race([gone, timeout(5_000)]);
    }));
    for (const ns of [...this.namespaces].reverse()) if (existsSync(`/run/netns/${ns}`)) spawnSync("ip", ["netns", "del", ns]);
  }
}

function timeout(ms: number): Promise<Record<string, unknown>> {
  return new Promise((resolve) => setTimeout(() => resolve({ error: `no answer in ${ms} ms` }), ms).unref());
}

/** Writes a cluster config of `nodes` (name, address, pod CIDR) with backend `backend`. */
export function writeConfig(path: string, backend: string, nodes: { name: string; address: string; podCidr: string }[]): void {
  writeFileSync(path, [
    `backend: { type: ${backend}${backend === "tapnet" ? ", secret: membership-test-secret-0123456789abcdef" : ""} }`,
    "nodes:",
    ...nodes.map((n) => `  - { name: ${n.name}, address: ${n.address}, podCidr: ${n.podCidr} }`),
  ].join("\n") + "\n");
}


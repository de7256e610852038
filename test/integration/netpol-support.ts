/**
 * The harness of the NetworkPolicy and Service integration tests (netpol.test.ts,
 * services.test.ts): a 3-node lab whose pods are applied with `tapnet apply`, a server and a
 * prober in each pod, and the 9x9 reachability tables of the Kubernetes e2e network-policy
 * tests, probed with real connections.
 *
 *   - Processes (Proc): a Node script from fixtures/ run in a network namespace with nsenter,
 *     which execs it (so the pid is the script's), talking JSON lines. Each is killed by its pid
 *     in stop(); each also exits when its stdin closes, so a test runner that dies leaves none.
 *   - netpol-server.mjs in a pod answers TCP and UDP on its ports with its name and the
 *     address it saw; netpol-prober.mjs, one per source, makes the connections it is asked for,
 *     all at once, and says what became of each (ok, timeout, refused, ...).
 *   - A probe round asks the nine probers at once for every target at every port/protocol of a
 *     case: a denied connection costs the prober's timeout (1 s), once per round, not per cell.
 *   - waitForTables probes until the tables are the expected ones (policies take effect a
 *     moment after `apply` returns), or until its deadline; the test then compares the last
 *     tables and prints both, with what became of each differing cell.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as toYaml } from "yaml";
import { formatTable, NODE_OF, parseTable, POD_PORTS, PODS, type Probe } from "../cluster/netpol-cases.ts";
import { tapnet } from "./helpers.ts";

export { formatTable, parseTable, PODS, type Probe };

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
export const SERVER = join(FIXTURES, "netpol-server.mjs");
export const PROBER = join(FIXTURES, "netpol-prober.mjs");
/** The TCP port on which netpol-server.mjs echoes what it is sent. */
export const ECHO_PORT = 8080;

export type Protocol = "TCP" | "UDP";
/**
 * A connection to make; with `sport`, from that source port (the same one again is the same
 * flow); with `bytes` (TCP, to ECHO_PORT), that many bytes sent, echoed and checked.
 */
export interface Attempt { ip: string; port: number; protocol: Protocol; sport?: number; bytes?: number }
export interface Reply { pod: string; peer: string; port: number; protocol: Protocol; received?: number }
export interface AttemptResult { status: string; ms: number; reply?: Reply }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fixture script in a network namespace, spoken to in JSON lines. */
export class Proc {
  readonly pid: number;
  private buffered = "";
  private waiting = new Map<number, (v: any) => void>();
  private nextId = 1;
  private stderr = "";
  private exitedWith: string | undefined;
  private readyWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private isReady = false;

  private constructor(readonly what: string, private readonly child: ChildProcess) {
    this.pid = child.pid ?? -1;
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => this.take(d));
    child.stderr!.on("data", (d) => (this.stderr += d));
    child.on("error", (e) => (this.stderr += `${e.message}\n`)); // nsenter missing: "exit" follows
    child.stdin!.on("error", () => {}); // written to as it died: "exit" says so
    child.on("exit", (code, signal) => {
      this.exitedWith = `exited ${signal ?? code}`;
      const e = new Error(`${this.what} ${this.exitedWith}: ${this.stderr.trim()}`);
      this.readyWaiter?.reject(e);
      for (const [, f] of this.waiting) f({ error: e.message });
      this.waiting.clear();
    });
  }

  /** Starts `script ARGS` in network namespace `netns` and waits for its {"ready":true}. */
  static async start(netns: string, script: string, args: string[], what: string, timeoutMs = 15_000): Promise<Proc> {
    if (!existsSync(`/run/netns/${netns}`)) throw new Error(`${what}: no network namespace ${netns}`);
    const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, script, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const p = new Proc(what, child);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} did not say it was ready in ${timeoutMs} ms: ${p.stderr.trim()}`)), timeoutMs);
        p.readyWaiter = { resolve: () => { clearTimeout(timer); resolve(); }, reject: (e) => { clearTimeout(timer); reject(e); } };
        if (p.isReady) p.readyWaiter.resolve();
      });
    } catch (e) {
      await p.stop();
      throw e;
    }
    return p;
  }

  private take(d: string): void {
    this.buffered += d;
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      let msg: any;
      try {
        msg = JSON.parse(line);
      } catch {
        this.stderr += `stray output: ${line}\n`;
        continue;
      }
      if (msg.ready) {
        this.isReady = true;
        this.readyWaiter?.resolve();
      } else if (typeof msg.id === "number") {
        this.waiting.get(msg.id)?.(msg);
        this.waiting.delete(msg.id);
      }
    }
  }

  /** Sends a request and resolves with its answer (or an {error} when the process died). */
  request(body: Record<string, unknown>): Promise<any> {
    if (this.exitedWith) return Promise.resolve({ error: `${this.what} ${this.exitedWith}: ${this.stderr.trim()}` });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(JSON.stringify({ id, ...body }) + "\n");
    });
  }

  /** Kills it by its pid and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.exitedWith || this.pid < 0) return;
    const gone = new Promise((r) => this.child.once("exit", r));
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      return; // gone already
    }
    await gone;
  }
}

/** A prober: connections from one namespace. */
export class Prober {
  private constructor(readonly name: string, private readonly proc: Proc) {}

  static async start(netns: string, name: string): Promise<Prober> {
    return new Prober(name, await Proc.start(netns, PROBER, [], `the prober of ${name}`));
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Makes every attempt (all at once, or one after another with `serial`) and says what became of each. */
  async attempts(list: Attempt[], opts: { timeoutMs?: number; serial?: boolean } = {}): Promise<AttemptResult[]> {
    const r = await this.proc.request({ attempts: list, timeoutMs: opts.timeoutMs ?? 1000, serial: opts.serial ?? false });
    if (r.error) throw new Error(r.error);
    return r.results;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/** A pod as `tapnet get pods -o json` tells it. */
export interface PodInfo { namespace: string; name: string; node: string; ip: string; netns: string; phase?: string }

/** Runs `tapnet ARGS --prefix PREFIX`, throwing with its output when it fails. */
export async function tapnetOk(prefix: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await tapnet([...args, "--prefix", prefix], { timeoutMs });
  if (r.code !== 0) throw new Error(`tapnet ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Writes manifests to a file of their own and runs `tapnet apply -f` (or `delete -f`) on it. */
export async function manifests(prefix: string, verb: "apply" | "delete", objects: unknown[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "tapnet-it-manifests-"));
  try {
    const file = join(dir, "objects.yaml");
    writeFileSync(file, objects.map((o) => toYaml(o)).join("---\n"));
    return await tapnetOk(prefix, [verb, "-f", file, ...(verb === "delete" ? ["--ignore-not-found"] : [])]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function getPods(prefix: string): Promise<PodInfo[]> {
  const items = JSON.parse(await tapnetOk(prefix, ["get", "pods", "-A", "-o", "json"])).items as {
    metadata: { name: string; namespace: string; annotations?: Record<string, string> };
    spec: { nodeName?: string };
    status?: { podIP?: string; phase?: string };
  }[];
  return items.map((p) => ({
    namespace: p.metadata.namespace, name: p.metadata.name, node: p.spec.nodeName ?? "", ip: p.status?.podIP ?? "",
    netns: p.metadata.annotations?.["tapnet.dev/netns"] ?? `${prefix}-${p.metadata.namespace}-${p.metadata.name}`, phase: p.status?.phase,
  }));
}

/** Waits until every named pod ("ns/name") has an address and its network namespace exists. */
export async function waitForPods(prefix: string, names: string[], timeoutMs = 30_000): Promise<Map<string, PodInfo>> {
  const t0 = Date.now();
  for (;;) {
    const pods = new Map((await getPods(prefix)).map((p) => [`${p.namespace}/${p.name}`, p]));
    const missing = names.filter((n) => !pods.get(n)?.ip || !existsSync(`/run/netns/${pods.get(n)!.netns}`));
    if (!missing.length) return pods;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for the pods ${missing.join(", ")} to have an address and a namespace`);
    await sleep(200);
  }
}

/** The lab's journal: its nodes (namespace, address, gateway) and the outside. */
export function labJournal(prefix: string): { nodes: { name: string; netns: string; address: string; gateway: string; podCidr: string }[]; outside?: { netns: string; address: string } } {
  return JSON.parse(readFileSync(`/run/tapnet/${prefix}/lab.json`, "utf8"));
}

/** A Pod manifest: one container with the truth tables' ports, on `node`. */
export function podManifest(namespace: string, name: string, node: string, labels: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { namespace, name, labels },
    spec: { nodeName: node, containers: [{ name: "serve", image: "registry.k8s.io/e2e-test-images/agnhost:2.47", ports: POD_PORTS.map((p) => ({ ...p })) }] },
  };
}

export function namespaceManifest(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/** Waits for every start, also when one fails (so that all that did start are known, to be stopped), then throws the first failure. */
export async function allStarted(starts: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(starts)).find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** Everything a test started, stopped by pid, then the lab, also when the test failed. */
export class Running {
  readonly procs: { stop(): Promise<void> }[] = [];

  add<T extends { stop(): Promise<void> }>(p: T): T {
    this.procs.push(p);
    return p;
  }

  async stop(prefix: string): Promise<void> {
    await Promise.all(this.procs.splice(0).map((p) => p.stop()));
    const r = await tapnet(["lab", "down", "--prefix", prefix]);
    if (r.code !== 0) throw new Error(`lab down --prefix ${prefix} failed: ${r.stderr}`);
  }
}

// ---- The truth tables' lab ----

/** A 3-node lab with namespaces x, y, z and pods a, b, c in each, serving and probing. */
export class TruthLab {
  private readonly running = new Running();
  private readonly probers = new Map<string, Prober>();
  pods = new Map<string, PodInfo>();

  constructor(readonly prefix: string) {}

  /**
   * The namespaces and pods, labelled ns=<name> and pod=<name> but where `namespaceLabels` or
   * `podLabels` (a case's) say otherwise; with `only`, just the ones those name.
   */
  static objects(namespaceLabels: Record<string, Record<string, string>> = {}, podLabels: Record<string, Record<string, string>> = {}, only = false): Record<string, unknown>[] {
    const nss = [...new Set(PODS.map((p) => p.split("/")[0]))].filter((ns) => !only || ns in namespaceLabels);
    return [
      ...nss.map((ns) => namespaceManifest(ns, namespaceLabels[ns] ?? { ns })),
      ...PODS.filter((p) => !only || p in podLabels).map((p) => {
        const [ns, name] = p.split("/");
        return podManifest(ns, name, NODE_OF[name], podLabels[p] ?? { pod: name });
      }),
    ];
  }

  /** The namespaces and pods a case labels otherwise, with its labels or (`back`) with the usual ones again. */
  static relabelled(c: { namespaceLabels?: Record<string, Record<string, string>>; podLabels?: Record<string, Record<string, string>> }, back = false): Record<string, unknown>[] {
    const nsl = c.namespaceLabels ?? {};
    const pl = c.podLabels ?? {};
    if (!back) return TruthLab.objects(nsl, pl, true);
    return TruthLab.objects(
      Object.fromEntries(Object.keys(nsl).map((ns) => [ns, { ns }])),
      Object.fromEntries(Object.keys(pl).map((p) => [p, { pod: p.split("/")[1] }])),
      true,
    );
  }

  async up(): Promise<void> {
    await tapnetOk(this.prefix, ["lab", "up", "--nodes", "3", "--pods", "0"], 150_000);
    await manifests(this.prefix, "apply", TruthLab.objects());
    this.pods = await waitForPods(this.prefix, PODS);
    await allStarted(PODS.map(async (p) => {
      this.running.add(await Proc.start(this.pods.get(p)!.netns, SERVER, [p], `the server of ${p}`));
      this.probers.set(p, this.running.add(await Prober.start(this.pods.get(p)!.netns, p)));
    }));
  }

  async down(): Promise<void> {
    await this.running.stop(this.prefix);
  }

  /** The prober in pod `pod` ("x/a"). */
  prober(pod: string): Prober {
    const p = this.probers.get(pod);
    if (!p) throw new Error(`no prober in ${pod}`);
    return p;
  }

  ipOf = (pod: string): string => {
    const p = this.pods.get(pod);
    if (!p) throw new Error(`no pod ${pod} in the truth tables' lab (it has ${PODS.join(", ")})`);
    return p.ip;
  };

  /**
   * One round: every pod to every pod at every probe's port and protocol, all at once. Per
   * probe, the table (allowed: a reply came from the right pod) and what became of every cell.
   */
  async round(probes: Omit<Probe, "expected">[]): Promise<ProbedTable[]> {
    const attempts: Attempt[] = probes.flatMap((pr) => PODS.map((to) => ({ ip: this.ipOf(to), port: pr.port, protocol: pr.protocol })));
    const byFrom = await Promise.all(PODS.map((from) => this.probers.get(from)!.attempts(attempts)));
    return probes.map((pr, k) => {
      const cells = PODS.map((_, i) => PODS.map((to, j) => {
        const r = byFrom[i][k * PODS.length + j];
        return r.status === "ok" && r.reply?.pod !== to ? { ...r, status: `answered by ${r.reply?.pod}` } : r;
      }));
      return { port: pr.port, protocol: pr.protocol, table: formatTable(cells.map((row) => row.map((r) => r.status === "ok"))), cells };
    });
  }

  /**
   * Probes until the tables are the expected ones, or until `timeoutMs`; resolves with the last
   * round either way, for the test to compare (describeMismatch). Tables that deny something
   * are taken at once: before the policies take effect every pod reaches every other, and a
   * node that has them while another has not yet shows a table with too few denials. Tables that
   * deny nothing look the same before and after: they must hold for three rounds, 300 ms apart.
   */
  async waitForTables(probes: Probe[], timeoutMs = 6_000): Promise<ProbedTable[]> {
    const t0 = Date.now();
    const want = probes.map((p) => formatTable(parseTable(p.expected)));
    const denies = probes.some((p) => parseTable(p.expected).some((row) => row.includes(false)));
    let matched = 0;
    for (;;) {
      const got = await this.round(probes);
      matched = got.every((g, i) => g.table === want[i]) ? matched + 1 : 0;
      if (matched >= (denies ? 1 : 3) || (!matched && Date.now() - t0 > timeoutMs)) return got;
      await sleep(matched ? 300 : 100);
    }
  }
}

export interface ProbedTable { port: number; protocol: Protocol; table: string; cells: AttemptResult[][] }

/** "" when the tables are the expected ones; else both tables, and what became of the cells that differ. */
export function describeMismatch(probes: Probe[], got: ProbedTable[]): string {
  const out: string[] = [];
  probes.forEach((p, k) => {
    const want = parseTable(p.expected);
    if (got[k].table === formatTable(want)) return;
    out.push(`${p.port}/${p.protocol}: expected\n${formatTable(want)}\nprobed\n${got[k].table}`);
    const wrong: string[] = [];
    PODS.forEach((from, i) => PODS.forEach((to, j) => {
      const c = got[k].cells[i][j];
      if ((c.status === "ok") !== want[i][j]) wrong.push(`  ${from} -> ${to}: expected ${want[i][j] ? "allowed" : "denied"}, got ${c.status} in ${c.ms} ms`);
    }));
    out.push(...wrong.slice(0, 12), ...(wrong.length > 12 ? [`  and ${wrong.length - 12} more`] : []));
  });
  return out.join("\n");
}

// The checks of `tapnet web` in a real browser: Debian's chromium, headless, driven by
// puppeteer-core over the DevTools protocol, run by trace.test.ts on the 2-node lab of each
// backend it shares with the trace, follow and dissector checks (trace-lab.ts). The page lists
// the lab's pods (with their addresses and MACs, and each switch's FDB); two clicks on the
// drawing trace a ping between two pods and the page shows every hop the switches recorded (the
// same hops, node by node, as `tapnet trace --json` gives), played on the drawing; on the tapnet
// backend also: a pod added while the page is open appears without a reload, bad requests get a
// 4xx and a message, the same page is served on Deno, a port taken is refused, and Ctrl-C stops
// the server cleanly while a page listens. webListenChecks: a bad --listen, with no lab.
// Chromium and each server are killed by pid after the checks, also when one failed.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { request } from "node:http";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { exited, journal, pidAlive, REPO, TAPNET, tapnet } from "./helpers.ts";
import type { SharedLab } from "./trace-lab.ts";

const CHROMIUM = "/usr/bin/chromium";
// What runs in the page (page.evaluate, waitForFunction): the project's types have no DOM.
declare const document: { querySelector(s: string): { getAttribute(a: string): string | null } | null };
declare const window: Record<string, unknown>;

/** The hops of each node in their order (two switches' clocks may interleave their hops either way; see trace-checks.ts). */
const perNode = (list: { node: string; stage: string }[]) => {
  const out: Record<string, string[]> = {};
  for (const h of list) (out[h.node] ??= []).push(h.stage);
  return out;
};

/** `tapnet web` on any free port of loopback; resolves with it and its address once it listens. */
async function startWeb(prefix: string, runtime: "node" | "deno" = "node"): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const [cmd, ...pre] = runtime === "node" ? [process.execPath, TAPNET] : [`${REPO}node_modules/.bin/deno`, "run", "--allow-all", "--quiet", `${REPO}src/cli/main.ts`];
  const child = spawn(cmd, [...pre, "web", "--prefix", prefix, "--listen", "127.0.0.1:0", "--interval", "300"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  child.stderr!.on("data", (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL"); // by its pid: nothing else is there to stop it
      reject(new Error(`tapnet web printed no address in 60 s: ${out}${err}`));
    }, 60_000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /^tapnet web: (http:\/\/127\.0\.0\.1:\d+\/) \(Ctrl-C stops it\)$/m.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (c) => { clearTimeout(timer); reject(new Error(`tapnet web exited ${c}: ${err}`)); });
  });
  return { child, url, stderr: () => err };
}

/** Stops a server started here: SIGINT, then SIGKILL by its pid if it is still there after 10 s. */
async function stopWeb(child: ChildProcess | undefined): Promise<number | null> {
  if (!child || child.exitCode !== null || child.pid === undefined) return child?.exitCode ?? null;
  child.kill("SIGINT");
  const code = await Promise.race([exited(child), new Promise<"late">((r) => setTimeout(() => r("late"), 10_000))]);
  if (code === "late") {
    if (pidAlive(child.pid)) process.kill(child.pid, "SIGKILL");
    return null;
  }
  return code;
}

/** The pods the page draws, as "namespace/name". */
const drawnPods = (page: Page) => page.$$eval("svg [data-pod]", (gs) => gs.map((g) => g.getAttribute("data-pod")!).sort());

/** Clicks two pods on the drawing and waits for the trace; returns the hops the page lists. */
async function traceByClicks(page: Page, from: string, to: string) {
  await page.click(`[data-pod="${from}"]`);
  await page.click(`[data-pod="${to}"]`);
  await page.waitForSelector('#trace-status:is([data-state="done"], [data-state="error"], [data-state="empty"])', { timeout: 30_000 });
  const status = await page.$eval("#trace-status", (e) => `${e.getAttribute("data-state")}: ${e.textContent}`);
  expect(status).toMatch(/^done: /);
  return page.$$eval(".hop", (ds) => ds.map((d) => ({ node: d.getAttribute("data-node")!, stage: d.getAttribute("data-stage")!, text: d.textContent! })));
}

/** Registers the web checks in the calling describe, against `shared`: a browser and a server of their own. */
export function webChecks(shared: SharedLab): void {
  const { backend, prefix } = shared;
  let browser: Browser | undefined;
  let browserPid: number | undefined;
  let web: Awaited<ReturnType<typeof startWeb>> | undefined;
  let page: Page;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), "chromium is missing: sh scripts/install-deps.sh installs it").toBe(true);
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"], defaultViewport: { width: 1400, height: 900 } });
    browserPid = browser.process()?.pid;
    web = await startWeb(prefix);
    page = await browser.newPage();
    await page.goto(web.url);
  }, 120_000);

  afterAll(async () => {
    await page?.close().catch(() => {});
    await stopWeb(web?.child);
    await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 5_000))]).catch(() => {});
    // puppeteer starts chromium as the leader of a process group of its own: its helpers go with it.
    if (browserPid !== undefined) for (const pid of [-browserPid, browserPid]) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
  }, 60_000);

  it("draws the lab's pods with their addresses and MACs, and each switch's FDB, live", async () => {
    const st = await tapnet(["lab", "status", "--prefix", prefix, "--json"]);
    const lab = JSON.parse(st.stdout) as { pods: { name: string; ip: string; mac: string; node: string }[] };
    expect(lab.pods.length).toBe(4);
    await page.waitForSelector(`[data-pod="default/${lab.pods[3].name}"]`, { timeout: 15_000 });
    expect(await drawnPods(page)).toEqual(lab.pods.map((p) => `default/${p.name}`).sort());
    for (const p of lab.pods) {
      const text = await page.$eval(`[data-pod="default/${p.name}"]`, (g) => g.textContent);
      expect(text).toContain(p.ip);
      expect(text).toContain(p.mac);
      const fdb = await page.$eval(`.node-tables[data-node="${p.node}"] table.fdb`, (t) => t.textContent);
      expect(fdb).toContain(p.mac);
    }
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    expect(await page.$eval("svg", (s) => s.textContent)).toContain(`${backend} backend`);
  });

  it("traces a ping between two pods clicked on the page: every hop, as tapnet trace shows them, played on the drawing", async () => {
    const hops = await traceByClicks(page, "default/node1-pod1", "default/node2-pod1");
    const cli = await tapnet(["trace", "--prefix", prefix, "--from", "node1-pod1", "--to", "node2-pod1", "--json"]);
    expect(cli.code, cli.stderr).toBe(0);
    const want = perNode((JSON.parse(cli.stdout) as { hops: { node: string; stage: string }[] }).hops);
    expect(perNode(hops)).toEqual(want);
    // The path a ping across must take: out of node1-pod1, through both switches and the tunnel, and back.
    expect(want.node1.slice(0, 3)).toEqual(["read", "route", "tunnel-out"]);
    expect(want.node1.slice(-1)).toEqual(["port-out"]);
    expect(want.node2).toEqual(expect.arrayContaining(["deliver", "port-out", "read", "route", "tunnel-out"]));
    // Each hop as the terminal prints it: the time, the node, the stage, what it did; the headers below.
    expect(hops[0].text).toMatch(/^ +\+0 µs {2}node1 {4}read {11}in from port \d+ \(node1-pod1\)\n/);
    expect(hops[0].text).toMatch(/IPv4 +10\.244\.1\.2 → 10\.244\.2\.2, TTL 64/);
    expect(hops.map((h) => h.text).join("\n")).toContain("TTL 64 → 63 (a router's hop)");
    // The packet is played hop by hop to the last, its path drawn behind it.
    await page.waitForSelector(`svg[data-packet-at="${hops.length - 1}"]`, { timeout: 40_000 });
    expect(await page.$eval(".hop.current", (d) => d.getAttribute("data-i"))).toBe(String(hops.length - 1));
    expect(await page.$eval("#packet text", (t) => t.textContent)).toBe(`${hops.length}. ${hops[hops.length - 1].stage}`);
    // A hop clicked puts the packet there: node1 writing the reply to node1-pod1 is at that pod's end of its TAP link.
    const j = hops.map((h) => `${h.node} ${h.stage}`).lastIndexOf("node1 port-out");
    await page.click(`.hop[data-i="${j}"]`);
    await page.waitForSelector(`svg[data-packet-at="${j}"]`);
    const at = await page.$eval("#packet circle", (c) => [Number(c.getAttribute("cx")), Number(c.getAttribute("cy"))]);
    const pod = await page.$eval('[data-pod="default/node1-pod1"] rect', (r) => [Number(r.getAttribute("x")), Number(r.getAttribute("y")) + Number(r.getAttribute("height")) / 2]);
    expect(at).toEqual(pod);
    expect(await page.$$eval("#trail polyline.reply", (l) => l.length)).toBeGreaterThan(0);
  });

  // The rest once, on the default backend: none of it depends on the backend.
  if (backend !== "tapnet") return;

  it("shows a pod added while the page is open, without a reload", async () => {
    const name = `${prefix}-new`;
    const control = (journal(prefix) as unknown as { nodes: { name: string; control: string }[] }).nodes.find((n) => n.name === "node2")!.control;
    await page.evaluate(() => (window.stillHere = true));
    try {
      const add = await tapnet(["pod", "add", name, "--control", control]);
      expect(add.code, add.stderr).toBe(0);
      await page.waitForSelector(`[data-pod="default/${name}"]`, { timeout: 10_000 });
      expect(await page.evaluate(() => window.stillHere)).toBe(true);
      const ip = /eth0 (\S+) /.exec(add.stdout)![1];
      expect(await page.$eval(`[data-pod="default/${name}"]`, (g) => g.textContent)).toContain(ip);
      expect(await page.$eval("#from", (s) => s.textContent)).toContain(`default/${name}`);
    } finally {
      await tapnet(["pod", "del", name, "--control", control]);
    }
    await page.waitForFunction((n) => !document.querySelector(`[data-pod="default/${n}"]`), { timeout: 10_000 }, name);
  });

  it("answers bad requests with a 4xx and a message, and serves on", async () => {
    const base = web!.url;
    const post = (body: string, type = "application/json", headers: Record<string, string> = {}) =>
      fetch(`${base}api/trace`, { method: "POST", headers: { "content-type": type, ...headers }, body });
    const cases: [Promise<Response>, number, RegExp][] = [
      [fetch(`${base}nothing-here`), 404, /^no such page: \/nothing-here/],
      [fetch(`${base}api/trace`), 405, /^\/api\/trace takes POST, not GET$/],
      [fetch(base, { method: "DELETE" }), 405, /^\/ takes GET, not DELETE$/],
      [post("{nope"), 400, /^the body is not JSON/],
      [post("[]"), 400, /^the body must be a JSON object/],
      [post('{"from":"node1-pod1"}'), 400, /^to must be a pod's name/],
      [post('{"from":"node1-pod1","to":"node2-pod1","colour":"red"}'), 400, /^unknown field "colour"/],
      [post('{"from":"node1-pod1","to":"node2-pod1","proto":"sctp"}'), 400, /^proto must be one of icmp, tcp, udp/],
      [post('{"from":"node1-pod1","to":"node2-pod1","proto":"tcp"}'), 400, /^proto tcp needs port/],
      [post('{"from":"node1-pod1","to":"node2-pod1","count":99}'), 400, /^count must be a whole number from 1 to 20, not 99$/],
      [post('{"from":"node1-pod1","to":"10.0.0.1; reboot"}'), 400, /^to: "10\.0\.0\.1; reboot" is neither a pod's name nor an IPv4 address$/],
      [post('{"from":"nobody","to":"node2-pod1"}'), 404, /^from: no pod nobody on node1, node2$/],
      [post("from=a&to=b", "application/x-www-form-urlencoded"), 415, /^a trace request is JSON/],
      [post('{"from":"node1-pod1","to":"node2-pod1"}', "application/json", { origin: "http://evil.example" }), 403, /^a trace request must come from this page/],
      [post("x".repeat(20_000)), 413, /^the body is over 16384 bytes/],
    ];
    for (const [res, status, message] of cases) {
      const r = await res;
      expect([r.status, (await r.json() as { error: string }).error]).toEqual([status, expect.stringMatching(message)]);
    }
    // Another name for this address (DNS rebinding) is refused: the Host header must be an address.
    const rebind = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${base}api/state`, { headers: { host: "evil.example" } }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(rebind.status).toBe(403);
    expect(rebind.body).toContain('not to the name \\"evil.example\\"');
    const ok = await fetch(`${base}api/state`);
    expect(ok.status).toBe(200);
    expect((await ok.json() as { nodes: unknown[] }).nodes.length).toBe(2);
  });

  it("serves the same page on Deno", async () => {
    const deno = await startWeb(prefix, "deno");
    const other = await browser!.newPage();
    try {
      await other.goto(deno.url);
      await other.waitForSelector('#conn[data-state="live"]', { timeout: 15_000 });
      expect(await drawnPods(other)).toEqual(await drawnPods(page));
      expect(await stopWeb(deno.child)).toBe(0);
    } finally {
      await other.close().catch(() => {});
      await stopWeb(deno.child);
    }
  });

  it("refuses a port that is taken, and stops cleanly on Ctrl-C while a page listens", async () => {
    const port = new URL(web!.url).port;
    const taken = await tapnet(["web", "--prefix", prefix, "--listen", `127.0.0.1:${port}`]);
    expect([taken.code, taken.stderr]).toEqual([2, `tapnet: cannot listen on 127.0.0.1:${port}: the port is taken (give another with --listen, or port 0 for any free one)\n`]);
    await page.waitForSelector('#conn[data-state="live"]');
    const code = await stopWeb(web!.child);
    expect(code).toBe(0);
    expect(web!.stderr()).toContain("tapnet web: stopped");
    await page.waitForSelector('#conn[data-state="lost"]', { timeout: 10_000 });
  });
}

/** A bad --listen, refused before any lab is looked at. */
export function webListenChecks(): void {
  it("refuses a bad --listen with a message saying what is wrong", async () => {
    // All at once: each is a command of its own, and most of its time is Node starting.
    await Promise.all([["8080", "no port"], ["example.org:80", '"example.org" is not an IPv4 address'], ["127.0.0.1:99999", "port 99999 is over 65535"], ["127.0.0.1:http", "the port must be a number"]].map(async ([arg, why]) => {
      const r = await tapnet(["web", "--listen", arg]);
      expect([r.code, r.stderr]).toEqual([2, `tapnet: --listen "${arg}": ${why} (write HOST:PORT, such as 127.0.0.1:8080; port 0 takes any free port)\n`]);
    }));
  });
}

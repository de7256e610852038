// Takes docs/web-trace.png, the README's picture of `tapnet web`: a lab of 2 nodes (its own, or
// the one --prefix names, left up), the page in Debian's headless chromium (puppeteer-core), a
// trace from node1-pod1 to node2-pod1 started by clicking the two pods, the packet stopped at
// the hop where it is on the underlay between the nodes, pings between the other two pods meanwhile
// (for the tunnel's rates). As root:
//   node scripts/web-screenshot.mjs [--prefix LAB] [--out FILE]
// Removes what it started (the page's server, chromium, its own lab) also when it fails.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";

const repo = fileURLToPath(new URL("../", import.meta.url));
const tapnet = (...args) => spawnSync(process.execPath, [`${repo}bin/tapnet.mjs`, ...args], { cwd: repo, stdio: ["ignore", "inherit", "inherit"] });
const { values } = parseArgs({ options: { prefix: { type: "string" }, out: { type: "string", default: `${repo}docs/web-trace.png` } } });
const own = values.prefix === undefined;
const prefix = values.prefix ?? "web-shot";

let server, browser, traffic;
try {
  if (own && tapnet("lab", "up", "--prefix", prefix).status !== 0) throw new Error(`lab up --prefix ${prefix} failed`);
  server = spawn(process.execPath, [`${repo}bin/tapnet.mjs`, "web", "--prefix", prefix, "--listen", "127.0.0.1:0"], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = /(http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.on("exit", (c) => reject(new Error(`tapnet web exited (${c})`)));
  });
  // Some traffic between the other two pods, for the tunnel's rates.
  const state = await (await fetch(`${url}api/state`)).json();
  const dst = state.nodes[1]?.pods?.[1];
  const src = state.nodes[0]?.pods?.[1];
  if (src && dst) traffic = spawn("ip", ["netns", "exec", src.netns, "ping", "-q", "-i", "0.05", "-s", "1000", dst.ip], { stdio: "ignore" });
  browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"], headless: true, defaultViewport: { width: 1500, height: 1000 } });
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('[data-pod="default/node2-pod1"]');
  await page.click('[data-pod="default/node1-pod1"]');
  await page.click('[data-pod="default/node2-pod1"]');
  await page.waitForSelector('#trace-status[data-state="done"]', { timeout: 20_000 });
  // Stop the packet on the wire between the nodes: the underlay hop, its outer headers explained.
  await page.evaluate(() => {
    const hops = [...document.querySelectorAll(".hop")];
    const at = hops.find((h) => h.dataset.node === "node1" && h.dataset.stage === "underlay") ?? hops[Math.floor(hops.length / 3)];
    at?.click();
  });
  await new Promise((r) => setTimeout(r, 1500));
  await page.screenshot({ path: values.out, fullPage: false });
  console.log(`wrote ${values.out}`);
} finally {
  const pid = browser?.process()?.pid;
  await browser?.close().catch(() => {});
  // Chromium leads a process group of its own (puppeteer starts it detached): its helpers go with it.
  if (pid) for (const p of [-pid, pid]) try { process.kill(p, "SIGKILL"); } catch {}
  if (traffic?.exitCode === null) traffic.kill();
  if (server?.exitCode === null) server.kill("SIGINT");
  if (own) tapnet("lab", "down", "--prefix", prefix);
}

/**
 * The live page's HTTP server (`tapnet web`), on node:http (Node and Deno alike), no framework:
 *   GET  /             the page (page/index.html), GET /style.css, /app.js, /drawing.js: files
 *                      read once at start and served from memory;
 *   GET  /api/state    the cluster now (state.ts), as JSON;
 *   GET  /api/events   server-sent events: `state` with the cluster every interval, while at
 *                      least one page listens (no page, no polling of the switches);
 *   POST /api/trace    {from, to, proto, port, count} (trace.ts): runs a trace, answers its hops.
 * Anything else is answered 404 or 405 with a line saying why; a bad trace request 400 naming
 * the field; a second trace while one runs 409. A handler that fails answers 500 with the
 * message: the server itself never stops for a request.
 *
 * The page can send probes from the cluster's pods as root, so the server guards what a browser
 * could be tricked into: a Host header must be an address (or localhost, or this machine's name),
 * not some other name pointing here (DNS rebinding); a POST must be JSON (a plain form from
 * another site cannot be) and, if the browser says whose page sent it (Origin), this one's.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { hostname } from "node:os";
import type { AddressInfo } from "node:net";
import { repoUrl } from "../../io/runtime.ts";
import type { SwitchTarget } from "../commands/cluster-client.ts";
import { ClusterSampler, type PageState } from "./state.ts";
import { pageTrace, parseTraceRequest, RequestError } from "./trace.ts";

export interface WebOptions {
  host: string;
  /** 0: any free port (the server's `url` says which). */
  port: number;
  /** The cluster's switches, found again at each use. */
  targets: () => SwitchTarget[];
  /** How often the page's listeners get the cluster, in ms. */
  intervalMs: number;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/drawing.js": { file: "drawing.js", type: "text/javascript; charset=utf-8" },
};
const MAX_BODY = 16 * 1024;
/** A comment line on an idle event stream, so that proxies and the browser see it is alive. */
const KEEPALIVE_MS = 15_000;

/** The page's files, read once: the server answers from memory. */
function readAssets(): Map<string, Uint8Array> {
  return new Map(Object.entries(ASSETS).map(([path, a]) => [path, readFileSync(repoUrl(`src/cli/web/page/${a.file}`))]));
}

/** Is `host` (a Host header's name part) one the page answers to: an address, localhost, this machine? */
export function hostAllowed(host: string): boolean {
  const name = host.replace(/:\d+$/, "").toLowerCase();
  if (/^\[[0-9a-f:.]+\]$/.test(name) || /^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  return name === "localhost" || name === hostname().toLowerCase();
}

export class WebServer {
  private readonly assets = readAssets();
  private readonly sampler: ClusterSampler;
  private readonly streams = new Set<ServerResponse>();
  private timer?: ReturnType<typeof setInterval>;
  private keepalive?: ReturnType<typeof setInterval>;
  private sampling = false;
  /** The trace running, if any: one at a time. */
  private tracing?: Promise<unknown>;
  private closed = false;

  private constructor(private readonly server: Server, private readonly opts: WebOptions) {
    this.sampler = new ClusterSampler(opts.targets);
  }

  /** Listens; rejects with a message a person can act on (port taken, address not here). */
  static async start(opts: WebOptions): Promise<WebServer> {
    const server = createServer();
    const web = new WebServer(server, opts);
    server.on("request", (req, res) => web.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        const where = `${opts.host}:${opts.port}`;
        if (e.code === "EADDRINUSE") reject(new Error(`cannot listen on ${where}: the port is taken (give another with --listen, or port 0 for any free one)`));
        else if (e.code === "EADDRNOTAVAIL") reject(new Error(`cannot listen on ${where}: no interface of this machine has that address`));
        else if (e.code === "EACCES") reject(new Error(`cannot listen on ${where}: ports below 1024 are root's`));
        else reject(new Error(`cannot listen on ${where}: ${e.message}`));
      });
      server.listen(opts.port, opts.host, () => resolve());
    });
    server.on("error", () => {}); // after listening: a failed connection is that connection's
    return web;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}/`;
  }

  /** Stops: ends every event stream, closes the server, waits for a running trace to disarm the switches. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    for (const s of this.streams) s.end();
    this.streams.clear();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections?.();
    await this.tracing?.catch(() => {});
    this.server.closeAllConnections?.();
    await done;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: Error) => this.fail(res, 500, `tapnet web: ${e.message}`));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = req.headers.host ?? "";
    if (!hostAllowed(host)) return this.fail(res, 403, `this page answers to this machine's addresses, not to the name ${JSON.stringify(host)} (a guard against another site's page reaching it)`);
    const path = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    const only = (m: string) => {
      if (method === m) return true;
      res.setHeader("allow", m);
      this.fail(res, 405, `${path} takes ${m}, not ${method}`);
      return false;
    };
    if (Object.hasOwn(ASSETS, path)) {
      if (!only("GET")) return;
      const body = this.assets.get(path)!;
      res.writeHead(200, { "content-type": ASSETS[path].type, "content-length": body.length, "cache-control": "no-cache" });
      res.end(body);
      return;
    }
    if (path === "/api/state") {
      if (only("GET")) this.json(res, 200, await this.sampler.sample());
      return;
    }
    if (path === "/api/events") {
      if (only("GET")) this.listen(req, res);
      return;
    }
    if (path === "/api/trace") {
      if (only("POST")) await this.trace(req, res);
      return;
    }
    this.fail(res, 404, `no such page: ${path} (the page is /; its data /api/state, /api/events, /api/trace)`);
  }

  /** An event stream: the cluster now, then every interval; the stream goes when the browser does. */
  private listen(req: IncomingMessage, res: ServerResponse): void {
    if (this.closed) return this.fail(res, 503, "tapnet web is stopping");
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write("retry: 2000\n\n");
    this.streams.add(res);
    const gone = () => this.streams.delete(res);
    req.on("close", gone);
    res.on("close", gone);
    res.on("error", gone);
    void this.tick();
    this.timer ??= setInterval(() => void this.tick(), this.opts.intervalMs);
    this.keepalive ??= setInterval(() => this.send(": keepalive\n\n"), KEEPALIVE_MS);
  }

  /** One sample sent to every stream; none while another is under way, or when nobody listens. */
  private async tick(): Promise<void> {
    if (this.streams.size === 0) {
      clearInterval(this.timer);
      clearInterval(this.keepalive);
      this.timer = this.keepalive = undefined;
      return;
    }
    if (this.sampling) return;
    this.sampling = true;
    try {
      const state: PageState = await this.sampler.sample();
      this.send(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
    } finally {
      this.sampling = false;
    }
  }

  private send(text: string): void {
    for (const s of this.streams) {
      if (s.destroyed || s.writableEnded) this.streams.delete(s);
      else s.write(text);
    }
  }

  private async trace(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = String(req.headers["content-type"] ?? "");
    if (!/^application\/json\b/i.test(type)) return this.fail(res, 415, `a trace request is JSON: send it with content-type application/json, not ${JSON.stringify(type || "none")}`);
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) return this.fail(res, 403, `a trace request must come from this page, not from ${origin}`);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      if (e instanceof RequestError) return this.fail(res, e.status, e.message);
      return this.fail(res, 400, `the body is not JSON: ${(e as Error).message}`);
    }
    if (this.closed) return this.fail(res, 503, "tapnet web is stopping");
    if (this.tracing) return this.fail(res, 409, "a trace is running: the switches trace one at a time; try again when it ends");
    let run: Promise<unknown> | undefined;
    try {
      const request = parseTraceRequest(body);
      const targets = this.opts.targets();
      run = pageTrace(targets, request);
      this.tracing = run;
      this.json(res, 200, await run);
    } catch (e) {
      if (e instanceof RequestError) return this.fail(res, e.status, e.message);
      return this.fail(res, 502, `the trace failed: ${(e as Error).message}`);
    } finally {
      if (this.tracing === run) this.tracing = undefined;
    }
  }

  private json(res: ServerResponse, status: number, value: unknown): void {
    if (res.headersSent) return;
    const body = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(body);
  }

  private fail(res: ServerResponse, status: number, message: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify({ error: message }));
  }
}

/** A request's body as text; past MAX_BODY bytes a RequestError (413), the rest unread. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new RequestError(`the body is over ${MAX_BODY} bytes: a trace request is a few fields`, 413));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

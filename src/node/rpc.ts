/**
 * The switch's control socket: a Unix stream socket speaking one JSON object a line.
 *   request:  {"method": "pod.add", "params": {...}}
 *   response: {"ok": true, "result": ...}  or  {"ok": false, "error": "what went wrong"}
 * Only root can reach it (the socket is created 0600 in a 0700 directory).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";

/** Where a node's switch puts its control socket unless told otherwise. */
export const CONTROL_DIR = "/run/tapnet";

export function defaultControlPath(node: string): string {
  return `${CONTROL_DIR}/${node}.sock`;
}

/** The control sockets in `dir` (file names), none if there is no such directory. */
export function controlSockets(dir = CONTROL_DIR): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sock")) : [];
}

export type Handler = (params: Record<string, unknown>) => Promise<unknown> | unknown;

export class RpcError extends Error {}

const MAX_LINE = 1 << 20;

export class RpcServer {
  private constructor(private readonly server: Server, readonly path: string) {}

  static async listen(path: string, handlers: Record<string, Handler>): Promise<RpcServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      if (await isAlive(path)) throw new RpcError(`another switch is already listening on ${path}`);
      unlinkSync(path); // left behind by a switch that was killed
    }
    const server = createServer((sock) => serve(sock, handlers));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    return new RpcServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}

function serve(sock: Socket, handlers: Record<string, Handler>): void {
  let buf = "";
  // Answers go out in the order the requests came, whatever order their handlers finish in.
  let queue: Promise<void> = Promise.resolve();
  sock.setEncoding("utf8");
  sock.on("error", () => sock.destroy());
  sock.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      sock.end(JSON.stringify({ ok: false, error: "request too large" }) + "\n");
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const answered = answer(line, handlers);
      queue = queue.then(async () => {
        const r = await answered;
        if (!sock.destroyed) sock.write(JSON.stringify(r) + "\n");
      });
    }
  });
}

async function answer(line: string, handlers: Record<string, Handler>): Promise<unknown> {
  let req: { method?: unknown; params?: unknown };
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: "request is not JSON" };
  }
  const h = typeof req.method === "string" && Object.hasOwn(handlers, req.method) ? handlers[req.method] : undefined;
  if (!h) return { ok: false, error: `unknown method ${JSON.stringify(req.method)} (known: ${Object.keys(handlers).join(", ")})` };
  try {
    const params = typeof req.params === "object" && req.params !== null ? (req.params as Record<string, unknown>) : {};
    return { ok: true, result: (await h(params)) ?? null };
  } catch (e) {
    return { ok: false, error: (e as Error).message ?? String(e) };
  }
}

/** Calls `method` on the switch listening on `path`. */
export function rpcCall<T = unknown>(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    let settled = false;
    const timer = setTimeout(() => { settled = true; sock.destroy(); reject(new RpcError(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(JSON.stringify({ method, params }) + "\n"));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const why = e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "no switch is running there" : e.message;
      reject(new RpcError(`cannot reach the switch at ${path}: ${why}`));
    });
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0 || settled) return;
      settled = true;
      clearTimeout(timer);
      sock.end();
      let r: { ok?: boolean; result?: T; error?: string };
      try {
        r = JSON.parse(buf.slice(0, nl));
      } catch {
        reject(new RpcError(`the switch at ${path} answered something that is not JSON`));
        return;
      }
      if (r.ok) resolve(r.result as T);
      else reject(new RpcError(r.error ?? "failed"));
    });
    sock.on("close", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new RpcError(`the switch at ${path} closed the connection without answering`));
    });
  });
}

/** Does a server answer on `path`? Any answer counts, an error included. */
export async function isAlive(path: string): Promise<boolean> {
  try {
    await rpcCall(path, "ping", {}, 2_000);
    return true;
  } catch (e) {
    return !/no switch is running there|closed the connection|no answer/.test((e as Error).message);
  }
}

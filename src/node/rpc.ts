/**
 * The switch's control socket: a Unix stream socket speaking one JSON object a line.
 *   request:  {"method": "pod.add", "params": {...}, "id": 7}
 *   response: {"ok": true, "result": ..., "id": 7}  or  {"ok": false, "error": "what went wrong", "id": 7}
 * `params` may be left out (it is then {}); `id` is optional, a string of at most 128 characters
 * or an integer, and is sent back in the answer. Answers come in the order of the requests.
 * Only root can reach it (the socket is created 0600 in a 0700 directory).
 *
 * The socket takes bytes from anyone who can open it, so the server trusts none of them:
 *  - a request is checked before its handler runs: a JSON object with only method, params and
 *    id; method a string naming a handler; params an object; nothing nested over 64 deep.
 *    A bad one gets an error answer naming what is wrong, and nothing is called;
 *  - a line over maxLineBytes (1 MiB) is answered with an error and the connection closed, as
 *    soon as the limit is passed: the line is never held whole. The requests before it on the
 *    connection are answered first; those after it are not run;
 *  - whatever a handler throws, or an answer that cannot be written as JSON, is an error answer;
 *  - at most maxConnections (64) connections at once: the next one is told the switch is busy
 *    ("busy": true in the answer) and closed; rpcCall then tries again until its time is up;
 *  - a connection with nothing pending and nothing said for idleTimeoutMs (60 s) is closed;
 *  - one connection has at most 16 requests running at once: past that, or while its answers
 *    are not being read, the server stops reading from it (the client's writes wait).
 * A line is a request only once its newline has come; a last line without one is refused.
 * A connection closed after a refusal lingers (see linger) so that the client reads why.
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

export class RpcError extends Error {
  /** The server turned the connection away because it had too many: worth trying again. */
  busy = false;
}

export interface RpcListenOptions {
  /** Connections served at once; the next one is told the switch is busy and closed. */
  maxConnections?: number;
  /** A connection with no request pending that sends and gets nothing for this long is closed. */
  idleTimeoutMs?: number;
  /** The longest request line, in bytes, its newline not counted. */
  maxLineBytes?: number;
}

export const RPC_DEFAULTS: Required<RpcListenOptions> = { maxConnections: 64, idleTimeoutMs: 60_000, maxLineBytes: 1 << 20 };
const MAX_DEPTH = 64;
const MAX_ID_LENGTH = 128;
const MAX_IN_FLIGHT = 16;
const LINGER_MS = 2_000;
const FIELDS = ["method", "params", "id"];

type Answer = { ok: true; result: unknown; id?: string | number } | { ok: false; error: string; id?: string | number; busy?: true };

export class RpcServer {
  /** The connections served. */
  private readonly conns = new Set<Socket>();
  /** Those turned away, until they are gone. */
  private readonly refused = new Set<Socket>();

  private constructor(private readonly server: Server, readonly path: string) {}

  static async listen(path: string, handlers: Record<string, Handler>, options: RpcListenOptions = {}): Promise<RpcServer> {
    const opts = { ...RPC_DEFAULTS, ...options };
    for (const k of ["maxConnections", "idleTimeoutMs", "maxLineBytes"] as const) {
      if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) throw new RpcError(`${k} must be a positive integer, not ${opts[k]}`);
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      if (await isAlive(path)) throw new RpcError(`another switch is already listening on ${path}`);
      unlinkSync(path); // left behind by a switch that was killed
    }
    // Half-open: a client may send its requests and end its side, and still get the answers.
    const server = createServer({ allowHalfOpen: true });
    const rpc = new RpcServer(server, path);
    server.on("connection", (sock) => rpc.accept(sock, handlers, opts));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    // Failing to accept one connection (out of fds: EMFILE) is that client's loss, not the switch's.
    server.on("error", () => {});
    chmodSync(path, 0o600);
    return rpc;
  }

  /** Connections open now. */
  get connections(): number {
    return this.conns.size;
  }

  private accept(sock: Socket, handlers: Record<string, Handler>, opts: Required<RpcListenOptions>): void {
    sock.on("error", () => sock.destroy());
    if (this.conns.size >= opts.maxConnections) {
      const busy: Answer = { ok: false, error: `the switch is busy: it serves ${opts.maxConnections} connections at once; try again later`, busy: true };
      this.refused.add(sock);
      sock.on("close", () => this.refused.delete(sock));
      sock.on("data", () => {}); // discarded
      linger(sock, encode(busy));
      return;
    }
    this.conns.add(sock);
    sock.on("close", () => this.conns.delete(sock));
    serve(sock, handlers, opts);
  }

  /** Stops listening, closes every connection (answers still pending are lost) and removes the socket file. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.conns, ...this.refused]) s.destroy();
    await closed;
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}

function serve(sock: Socket, handlers: Record<string, Handler>, opts: Required<RpcListenOptions>): void {
  let partial: Buffer[] = []; // the line being received, without its newline
  let partialBytes = 0;
  const waiting: Buffer[] = []; // complete lines not started yet
  let inFlight = 0; // started, not yet answered
  let ended = false; // the client ended its side
  let refused = false;
  // Answers go out in the order the requests came, whatever order their handlers finish in.
  let queue: Promise<void> = Promise.resolve();
  let idle: ReturnType<typeof setTimeout> | undefined;

  const arm = () => {
    if (idle !== undefined) clearTimeout(idle);
    idle = setTimeout(() => {
      idle = undefined;
      if (inFlight > 0 && !refused) arm(); // waiting for a handler is not idle
      else sock.destroy();
    }, opts.idleTimeoutMs);
  };
  const send = (a: Answer) => {
    if (!sock.writable) return;
    arm();
    sock.write(encode(a));
  };
  /** Reads no more; the requests already started are answered first, then this error, then the connection is closed. */
  const refuse = (error: string) => {
    refused = true;
    waiting.length = 0;
    partial = [];
    sock.pause();
    queue = queue.then(() => {
      if (idle !== undefined) clearTimeout(idle);
      idle = undefined;
      sock.resume(); // to discard what the client is still sending (see linger)
      linger(sock, encode({ ok: false, error }));
    });
  };
  /** Starts waiting lines while there is room, reads more only when all are started, ends when all is said. */
  const pump = () => {
    while (waiting.length > 0 && inFlight < MAX_IN_FLIGHT) {
      const answered = answer(waiting.shift()!.toString("utf8"), handlers);
      inFlight++;
      queue = queue.then(async () => {
        send(await answered);
        inFlight--;
        pump();
      }).catch(() => { sock.destroy(); });
    }
    if (sock.destroyed || refused) return;
    if (ended && waiting.length === 0 && inFlight === 0) {
      if (partialBytes > 0) refuse("the last request has no newline at its end: not done");
      else sock.end(() => sock.destroy());
      return;
    }
    if (waiting.length === 0 && inFlight < MAX_IN_FLIGHT && !sock.writableNeedDrain) sock.resume();
    else sock.pause();
  };

  arm();
  sock.on("drain", pump);
  sock.on("close", () => {
    if (idle !== undefined) clearTimeout(idle);
    waiting.length = 0; // nobody is there to read their answers
  });
  sock.on("end", () => {
    ended = true;
    pump();
  });
  sock.on("data", (chunk: Buffer) => {
    if (refused) return;
    arm();
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf(10, start)) >= 0) {
      if (partialBytes + nl - start > opts.maxLineBytes) return refuse(`request line over ${opts.maxLineBytes} bytes: closing`);
      partial.push(chunk.subarray(start, nl));
      waiting.push(partial.length === 1 ? partial[0] : Buffer.concat(partial));
      partial = [];
      partialBytes = 0;
      start = nl + 1;
    }
    if (partialBytes + chunk.length - start > opts.maxLineBytes) return refuse(`request line over ${opts.maxLineBytes} bytes: closing`);
    if (start < chunk.length) {
      partial.push(chunk.subarray(start));
      partialBytes += chunk.length - start;
    }
    pump();
  });
}

/**
 * Sends a last answer and closes the connection the way web servers do after refusing a request
 * (nginx's lingering close): our side ends at once, what the client still sends is read and
 * thrown away for up to LINGER_MS, then the connection goes. Closed at once, a client still
 * writing would get EPIPE and never read why.
 */
function linger(sock: Socket, last: string): void {
  if (!sock.writable) {
    sock.destroy();
    return;
  }
  const timer = setTimeout(() => sock.destroy(), LINGER_MS);
  const done = () => (sock.writableFinished ? sock.destroy() : sock.once("finish", () => sock.destroy()));
  sock.on("close", () => clearTimeout(timer));
  if (sock.readableEnded) done();
  else sock.on("end", done);
  sock.end(last);
}

function encode(a: Answer): string {
  try {
    return JSON.stringify(a) + "\n";
  } catch (e) {
    const error = `the answer cannot be written as JSON: ${errorText(e)}`;
    return JSON.stringify(a.id === undefined ? { ok: false, error } : { ok: false, error, id: a.id }) + "\n";
  }
}

/** What the answer says of a value it refuses: its type, or the value itself if short. */
function shown(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function errorText(e: unknown): string {
  try {
    if (e instanceof Error) return typeof e.message === "string" && e.message ? e.message : e.name;
    if (typeof e === "string") return e;
    return `the handler threw ${shown(e)}`;
  } catch {
    return "the handler threw something that cannot be shown";
  }
}

/** Is `v` nested deeper than `max` lists and objects? Iterative: a deep value cannot overflow the stack here. */
function tooDeep(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (typeof x !== "object" || x === null) continue;
    if (depth > max) return true;
    for (const y of Array.isArray(x) ? x : Object.values(x)) if (typeof y === "object" && y !== null) stack.push([y, depth + 1]);
  }
  return false;
}

/** Checks a request line; the handler and its params, or the answer refusing it. */
function check(line: string, handlers: Record<string, Handler>): { handler: Handler; params: Record<string, unknown>; id?: string | number } | Answer {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: "request is not JSON" };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req)) {
    return { ok: false, error: `a request is a JSON object such as {"method": "status"}, not ${shown(req)}` };
  }
  const r = req as Record<string, unknown>;
  const id = r.id;
  if (id !== undefined && !(typeof id === "string" && id.length <= MAX_ID_LENGTH) && !Number.isSafeInteger(id)) {
    return { ok: false, error: `id must be a string of at most ${MAX_ID_LENGTH} characters or an integer, not ${shown(id)}` };
  }
  const refuse = (error: string): Answer => (id === undefined ? { ok: false, error } : { ok: false, error, id: id as string | number });
  const extra = Object.keys(r).find((k) => !FIELDS.includes(k));
  if (extra !== undefined) return refuse(`request has an unknown field ${shown(extra)} (a request has method, params and id)`);
  if (r.method === undefined) return refuse(`request has no method (known: ${Object.keys(handlers).join(", ")})`);
  if (typeof r.method !== "string") return refuse(`method must be a string, not ${shown(r.method)}`);
  if (!Object.hasOwn(handlers, r.method)) return refuse(`unknown method ${shown(r.method)} (known: ${Object.keys(handlers).join(", ")})`);
  const params = r.params ?? {};
  if (r.params === null || typeof params !== "object" || Array.isArray(params)) return refuse(`params must be an object, not ${shown(r.params)}`);
  if (tooDeep(params, MAX_DEPTH)) return refuse(`params are nested more than ${MAX_DEPTH} deep`);
  return { handler: handlers[r.method], params: params as Record<string, unknown>, ...(id === undefined ? {} : { id: id as string | number }) };
}

async function answer(line: string, handlers: Record<string, Handler>): Promise<Answer> {
  const req = check(line, handlers);
  if ("ok" in req) return req;
  const withId = <A extends Answer>(a: A): A => (req.id === undefined ? a : { ...a, id: req.id });
  try {
    return withId({ ok: true, result: (await req.handler(req.params)) ?? null });
  } catch (e) {
    return withId({ ok: false, error: errorText(e) });
  }
}

/**
 * Calls `method` on the switch listening on `path`. A switch busy with other connections (or
 * with a full listen backlog: EAGAIN) is asked again, a little later each time, until
 * `timeoutMs` is up.
 */
export async function rpcCall<T = unknown>(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    try {
      return await callOnce<T>(path, method, params, Math.max(1, deadline - Date.now()), timeoutMs);
    } catch (e) {
      if (!(e instanceof RpcError && e.busy) || Date.now() + pause >= deadline) throw e;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function callOnce<T>(path: string, method: string, params: Record<string, unknown>, leftMs: number, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let buf = "";
    let settled = false;
    const timer = setTimeout(() => { settled = true; sock.destroy(); reject(new RpcError(`no answer from ${path} within ${timeoutMs} ms`)); }, leftMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(JSON.stringify({ method, params }) + "\n"));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const why = e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "no switch is running there" : e.message;
      const err = new RpcError(`cannot reach the switch at ${path}: ${why}`);
      // A Unix socket's listen backlog is full: the switch is alive and busy accepting; ask again.
      err.busy = e.code === "EAGAIN";
      reject(err);
    });
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0 || settled) return;
      settled = true;
      clearTimeout(timer);
      sock.end();
      let r: { ok?: boolean; result?: T; error?: string; busy?: boolean };
      try {
        r = JSON.parse(buf.slice(0, nl));
      } catch {
        reject(new RpcError(`the switch at ${path} answered something that is not JSON`));
        return;
      }
      if (r.ok) {
        resolve(r.result as T);
        return;
      }
      const e = new RpcError(r.error ?? "failed");
      e.busy = r.busy === true;
      reject(e);
    });
    sock.on("close", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new RpcError(`the switch at ${path} closed the connection without answering`));
    });
  });
}

/** Does a server answer on `path`? Any answer counts, an error included (a busy one too). */
export async function isAlive(path: string): Promise<boolean> {
  try {
    await callOnce(path, "ping", {}, 2_000, 2_000);
    return true;
  } catch (e) {
    return !/no switch is running there|closed the connection|no answer/.test((e as Error).message);
  }
}

/**
 * The transport under EtcdKv: etcd v3's JSON gateway (grpc-gateway in front of the gRPC API)
 * spoken with the global fetch, so the same code runs on Node and Deno with no dependency.
 * Every call is a POST of a JSON body to http://host:port/v3/<service>/<method>. In the JSON,
 * keys and values are base64, int64 fields are decimal strings, and fields at their zero value
 * are left out (a missing "deleted" is 0, a missing "succeeded" is false, a missing event
 * "type" is PUT). Errors come back as a non-2xx status with {error, message, code}, code the
 * gRPC status code.
 *
 * Endpoints are tried in turn: the one that last answered first, the next one when a
 * connection fails. A write is sent to another endpoint only when the first could not be
 * reached at all (refused, unreachable); after a timeout it may have been applied, so the
 * caller gets the error instead. Every request has a deadline, and every error names the
 * endpoint and what failed: "etcd http://192.168.56.2:2379: connection refused".
 */
import { Buffer } from "node:buffer";
import { KvError } from "./kv.ts";

/** gRPC status codes the gateway returns that tapnet tells apart. */
export const GRPC = { NOT_FOUND: 5, FAILED_PRECONDITION: 9, UNAVAILABLE: 14 } as const;

/** An error etcd answered with: `grpcCode` is its gRPC status code (0 if it sent none). */
export class EtcdError extends KvError {
  constructor(message: string, readonly grpcCode: number) {
    super(message);
  }
}

export function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

export function unb64(text: string | undefined): string {
  return text ? Buffer.from(text, "base64").toString("utf8") : "";
}

/**
 * The end of the key range holding every key that starts with `prefix`, base64: the prefix with
 * its last byte below 0xff raised by one (and the bytes after it dropped). An empty prefix, or
 * one of only 0xff bytes, has no such end: the range then runs to the end of the key space,
 * which etcd spells "\0".
 */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]++;
      return end.toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64");
}

/** An int64 field of etcd's JSON (a decimal string, or absent for 0) as a number; throws if it is not exact. */
export function int64(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  const n = typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : typeof value === "number" ? value : NaN;
  if (!Number.isSafeInteger(n)) throw new KvError(`etcd answered ${field} = ${JSON.stringify(value)}: not an integer below 2^53`);
  return n;
}

/** Normalizes "host:port", "http://host:port/" or "https://..." to "http(s)://host:port"; throws on anything else. */
export function parseEndpoint(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KvError(`etcd endpoint "${text}": not an address like http://192.168.56.2:2379`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new KvError(`etcd endpoint "${text}": the scheme must be http or https, not ${url.protocol.slice(0, -1)}`);
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username) throw new KvError(`etcd endpoint "${text}": only a scheme, host and port, like http://192.168.56.2:2379`);
  return `${url.protocol}//${url.host}`;
}

/** Why a fetch failed, in a few words: "connection refused", "timed out after 5000 ms". */
export function describeFailure(err: unknown, timeoutMs: number): { text: string; unreached: boolean } {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError") return { text: `no answer within ${timeoutMs} ms`, unreached: false };
  if (e?.name === "AbortError") return { text: "closed", unreached: false };
  const code = e?.cause?.code ?? "";
  const all = `${code} ${e?.cause?.message ?? ""} ${e?.message ?? ""}`;
  const known: [RegExp, string][] = [
    [/ECONNREFUSED|refused/i, "connection refused"],
    [/EHOSTUNREACH|host is unreachable|no route to host/i, "host unreachable"],
    [/ENETUNREACH|network is unreachable/i, "network unreachable"],
    [/ENOTFOUND|EAI_AGAIN|dns|lookup/i, "host name not found"],
    [/ECONNRESET|reset|UND_ERR_SOCKET|other side closed/i, "connection reset"],
  ];
  for (const [re, text] of known) if (re.test(all)) return { text, unreached: !/reset/.test(text) };
  return { text: (e?.cause?.message ?? e?.message ?? String(err)).trim() || "request failed", unreached: false };
}

export interface CallOptions {
  /** Safe to send again to another endpoint after a timeout or reset (reads, keepalives). */
  idempotent: boolean;
  /** The answer is a stream of {result} objects (lease/keepalive): take the first. */
  stream?: boolean;
}

/** The endpoints of one etcd cluster and the deadline of each request. */
export class EtcdTransport {
  private current = 0;
  private readonly closing = new AbortController();

  constructor(readonly endpoints: string[], readonly timeoutMs: number) {}

  /** The endpoint to try first (the one that last answered). */
  get endpoint(): string {
    return this.endpoints[this.current];
  }

  /** Moves on from `endpoint` after it failed (unless another call already did). */
  failed(endpoint: string): void {
    if (this.endpoints[this.current] === endpoint) this.current = (this.current + 1) % this.endpoints.length;
  }

  /** Aborts every request in flight; later ones fail at once. */
  close(): void {
    this.closing.abort();
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /** A signal that fires on close() or after `ms`. */
  signal(ms = this.timeoutMs): AbortSignal {
    return AbortSignal.any([this.closing.signal, AbortSignal.timeout(ms)]);
  }

  /** POSTs `body` to /v3/`path` on the endpoints in turn; returns the parsed answer. */
  async call(path: string, body: unknown, opts: CallOptions): Promise<Record<string, any>> {
    const reasons: string[] = [];
    for (let tries = 0; tries < this.endpoints.length; tries++) {
      const ep = this.endpoint;
      if (this.closed) throw new KvError(`etcd ${ep}: the client is closed`);
      let text: string;
      let status: number;
      try {
        const res = await fetch(`${ep}/v3/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: this.signal() });
        status = res.status;
        text = opts.stream && res.ok ? await firstLine(res) : await res.text();
      } catch (err) {
        const why = describeFailure(err, this.timeoutMs);
        if (this.closed) throw new KvError(`etcd ${ep}: the client is closed`);
        reasons.push(`etcd ${ep}: ${path}: ${why.text}`);
        this.failed(ep);
        if (why.unreached || opts.idempotent) continue;
        break;
      }
      const answer = parseAnswer(ep, path, status, text);
      if (opts.stream) {
        if (answer.error) throw gatewayError(ep, path, answer.error);
        return answer.result ?? {};
      }
      return answer;
    }
    throw new KvError(reasons.join("; "));
  }
}

/** Reads a streamed answer up to its first newline, then lets the rest go. */
async function firstLine(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (value) text += dec.decode(value, { stream: true });
      const nl = text.indexOf("\n");
      if (nl >= 0) return text.slice(0, nl);
      if (done) return text;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseAnswer(ep: string, path: string, status: number, text: string): Record<string, any> {
  let answer: Record<string, any> | undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) answer = v as Record<string, any>;
  } catch {
    // Not JSON: said below, with the status.
  }
  if (status >= 200 && status < 300 && answer) return answer;
  if (answer && (answer.error !== undefined || answer.message !== undefined)) throw gatewayError(ep, path, answer);
  const hint = status === 404 ? " (the v3 gateway is at /v3/ from etcd 3.4 on; is this etcd older, or not etcd?)" : "";
  throw new EtcdError(`etcd ${ep}: ${path}: HTTP ${status}: ${text.trim().slice(0, 200) || "no body"}${hint}`, 0);
}

function gatewayError(ep: string, path: string, e: Record<string, any>): EtcdError {
  const message = String(e.message ?? e.error ?? "error").replace(/^etcdserver: /, "");
  return new EtcdError(`etcd ${ep}: ${path}: ${message}`, typeof e.code === "number" ? e.code : typeof e.grpc_code === "number" ? e.grpc_code : 0);
}

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CONTROL_DIR, RpcError, RpcServer, controlSockets, defaultControlPath, isAlive, rpcCall, type Handler } from "../../src/node/rpc.ts";

let dir: string;
let servers: RpcServer[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tapnet-rpc-test-"));
  servers = [];
});

afterEach(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(handlers: Record<string, Handler>, path = join(dir, "control.sock")): Promise<RpcServer> {
  const s = await RpcServer.listen(path, handlers);
  servers.push(s);
  return s;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("resolved");
}

/** Writes `text` on a raw connection and resolves with the first `n` answer lines, parsed. */
function raw(path: string, text: string, n: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("error", reject);
    sock.on("connect", () => sock.write(text));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const lines = buf.split("\n").slice(0, -1);
      if (lines.length >= n) {
        sock.destroy();
        resolve(lines.slice(0, n).map((l) => JSON.parse(l)));
      }
    });
    sock.on("close", () => reject(new Error(`connection closed after: ${JSON.stringify(buf)}`)));
  });
}

const handlers: Record<string, Handler> = {
  ping: () => ({ pong: true }),
  echo: (params) => params,
  sum: async (params) => (params.a as number) + (params.b as number),
  nothing: () => undefined,
  fail: () => { throw new Error("pod1 already exists"); },
  failAsync: async () => { throw new Error("no free address left in 10.244.1.0/24"); },
};

describe("RpcServer and rpcCall", () => {
  it("returns a handler's result, sync or async", async () => {
    const s = await listen(handlers);
    expect(await rpcCall(s.path, "ping")).toEqual({ pong: true });
    expect(await rpcCall(s.path, "sum", { a: 2, b: 40 })).toBe(42);
  });

  it("passes the params to the handler", async () => {
    const s = await listen(handlers);
    expect(await rpcCall(s.path, "echo", { pod: "pod1", ip: "10.244.1.2", n: [1, 2] })).toEqual({ pod: "pod1", ip: "10.244.1.2", n: [1, 2] });
  });

  it("answers null for a handler that returns nothing", async () => {
    const s = await listen(handlers);
    expect(await rpcCall(s.path, "nothing")).toBeNull();
  });

  it("turns a handler's error into an RpcError with the handler's message", async () => {
    const s = await listen(handlers);
    const e1 = await rejection(rpcCall(s.path, "fail"));
    expect(e1).toBeInstanceOf(RpcError);
    expect(e1.message).toBe("pod1 already exists");
    const e2 = await rejection(rpcCall(s.path, "failAsync"));
    expect(e2).toBeInstanceOf(RpcError);
    expect(e2.message).toBe("no free address left in 10.244.1.0/24");
  });

  it("keeps serving after a handler fails", async () => {
    const s = await listen(handlers);
    await rejection(rpcCall(s.path, "fail"));
    expect(await rpcCall(s.path, "ping")).toEqual({ pong: true });
  });

  it("refuses an unknown method, listing the known ones", async () => {
    const s = await listen(handlers);
    const e = await rejection(rpcCall(s.path, "pod.nosuch"));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.message).toContain('unknown method "pod.nosuch"');
    expect(e.message).toContain("known: ping, echo, sum, nothing, fail, failAsync");
  });

  it("does not take Object.prototype members for methods", async () => {
    const s = await listen(handlers);
    for (const m of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const e = await rejection(rpcCall(s.path, m));
      expect(e, m).toBeInstanceOf(RpcError);
      expect(e.message, m).toContain("unknown method");
    }
  });

  it("answers a line that is not JSON with an error, and keeps the connection for the next request", async () => {
    const s = await listen(handlers);
    const answers = await raw(s.path, 'hello\n{"method":"ping"}\n', 2);
    expect(answers).toEqual([{ ok: false, error: "request is not JSON" }, { ok: true, result: { pong: true } }]);
  });

  it("treats missing or non-object params as empty", async () => {
    const s = await listen(handlers);
    const answers = await raw(s.path, '{"method":"echo"}\n{"method":"echo","params":5}\n{"method":"echo","params":null}\n', 3);
    expect(answers).toEqual([{ ok: true, result: {} }, { ok: true, result: {} }, { ok: true, result: {} }]);
  });

  it("answers a request whose method is not a string as an unknown method", async () => {
    const s = await listen(handlers);
    const [a] = await raw(s.path, '{"method":5}\n', 1);
    expect(a).toMatchObject({ ok: false });
    expect((a as { error: string }).error).toContain("unknown method 5");
  });

  it("answers two requests on one connection in order", async () => {
    const s = await listen(handlers);
    const answers = await raw(s.path, '{"method":"sum","params":{"a":1,"b":2}}\n{"method":"echo","params":{"x":1}}\n', 2);
    expect(answers).toEqual([{ ok: true, result: 3 }, { ok: true, result: { x: 1 } }]);
  });

  it("answers a request split across writes once its line is complete", async () => {
    const s = await listen(handlers);
    const answers = await new Promise<unknown>((resolve, reject) => {
      const sock = createConnection(s.path);
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("error", reject);
      sock.on("connect", () => {
        sock.write('{"meth');
        setImmediate(() => sock.write('od":"ping"}\n'));
      });
      sock.on("data", (c: string) => {
        buf += c;
        if (buf.includes("\n")) { sock.destroy(); resolve(JSON.parse(buf.split("\n")[0])); }
      });
    });
    expect(answers).toEqual({ ok: true, result: { pong: true } });
  });

  // Once a bug (src/node/rpc.ts serve(): `void answer(line).then(write)`): each line is answered
  // when its handler finishes, not in request order, so a slow request followed by a fast one
  // on the same connection gets the answers swapped, and the protocol has no ids to match them.
  it("answers in request order even when the first handler finishes last", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const s = await listen({
      slow: async () => { await gate; return "slow"; },
      fast: () => { setImmediate(release); return "fast"; },
    });
    const answers = await raw(s.path, '{"method":"slow"}\n{"method":"fast"}\n', 2);
    expect(answers).toEqual([{ ok: true, result: "slow" }, { ok: true, result: "fast" }]);
  });

  it("answers a request line over 1 MiB with an error and closes the connection", async () => {
    const s = await listen(handlers);
    const [a] = await raw(s.path, "x".repeat((1 << 20) + 16), 1);
    expect(a).toEqual({ ok: false, error: "request too large" });
  });

  it("says no switch is running when nothing is at the path", async () => {
    const path = join(dir, "nobody.sock");
    const e = await rejection(rpcCall(path, "ping"));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.message).toContain(path);
    expect(e.message).toContain("no switch is running");
    expect(await isAlive(path)).toBe(false);
  });

  it("creates the socket 0600 in a new directory made 0700", async () => {
    const s = await listen(handlers, join(dir, "run", "tapnet", "node1.sock"));
    expect(statSync(s.path).isSocket()).toBe(true);
    expect(statSync(s.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "run", "tapnet")).mode & 0o777).toBe(0o700);
  });

  it("removes the socket file on close, after which calls find no switch", async () => {
    const s = await RpcServer.listen(join(dir, "control.sock"), handlers);
    expect(existsSync(s.path)).toBe(true);
    await s.close();
    expect(existsSync(s.path)).toBe(false);
    expect((await rejection(rpcCall(s.path, "ping"))).message).toContain("no switch is running");
  });

  it("replaces a leftover plain file at the socket path", async () => {
    const path = join(dir, "control.sock");
    writeFileSync(path, "left over");
    const s = await listen(handlers, path);
    expect(statSync(path).isSocket()).toBe(true);
    expect(await rpcCall(s.path, "ping")).toEqual({ pong: true });
  });

  it("replaces a stale socket left by a killed process", async () => {
    const path = join(dir, "control.sock");
    // A process that listens and is then killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(process.argv[1], () => console.log("ready"))`, path], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.stdout!.on("data", (d: Buffer) => { if (d.toString().includes("ready")) resolve(); });
    });
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGKILL");
    await exited;
    expect(statSync(path).isSocket()).toBe(true);
    expect(await isAlive(path)).toBe(false);

    const s = await listen(handlers, path);
    expect(await rpcCall(s.path, "ping")).toEqual({ pong: true });
  });

  it("refuses a second server on a live path, and the first keeps serving", async () => {
    const first = await listen({ ...handlers, who: () => "first" });
    const e = await rejection(RpcServer.listen(first.path, { who: () => "second", ping: () => "second" }));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.message).toContain("already listening");
    expect(e.message).toContain(first.path);
    expect(await rpcCall(first.path, "who")).toBe("first");
  });

  // Once a bug (src/node/rpc.ts isAlive): a server is judged alive only if its "ping" method
  // succeeds; one that answers (e.g. `unknown method "ping"`) is taken for dead, so a second
  // RpcServer.listen unlinks the live server's socket and takes the path over. (The switch's
  // agent registers ping, so today's switch is not affected.)
  it("refuses a second server on a live path even when the first has no ping method", async () => {
    const first = await listen({ who: () => "first" });
    const e = await rejection(RpcServer.listen(first.path, { who: () => "second" }).then((s) => { servers.push(s); return s; }));
    expect(e).toBeInstanceOf(RpcError);
    expect(await rpcCall(first.path, "who")).toBe("first");
  });
});

describe("isAlive", () => {
  it("is true for a listening server and false once it is closed", async () => {
    const s = await RpcServer.listen(join(dir, "control.sock"), handlers);
    expect(await isAlive(s.path)).toBe(true);
    await s.close();
    expect(await isAlive(s.path)).toBe(false);
  });
});

describe("rpcCall against a broken server", () => {
  async function rawServer(onConnection: (sock: import("node:net").Socket) => void): Promise<string> {
    const { createServer } = await import("node:net");
    const path = join(dir, "broken.sock");
    const server = createServer(onConnection);
    await new Promise<void>((r) => server.listen(path, () => r()));
    servers.push({ close: () => new Promise<void>((r) => server.close(() => r())) } as unknown as RpcServer);
    return path;
  }

  it("rejects, does not crash, when the answer is not JSON", async () => {
    const path = await rawServer((sock) => sock.once("data", () => sock.end("this is not json\n")));
    const e = await rejection(rpcCall(path, "status"));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.message).toContain("not JSON");
  });

  it("rejects at once, naming the cause, when the server closes without answering", async () => {
    const path = await rawServer((sock) => sock.once("data", () => sock.end()));
    const e = await rejection(rpcCall(path, "status", {}, 60_000));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.message).toContain("closed the connection without answering");
  });
});

describe("where control sockets are", () => {
  it("a node's by default in /run/tapnet, named after the node", () => {
    expect(CONTROL_DIR).toBe("/run/tapnet");
    expect(defaultControlPath("node1")).toBe("/run/tapnet/node1.sock");
  });

  it("lists the .sock files of a directory, and none of a directory that is not there", async () => {
    expect(controlSockets(join(dir, "missing"))).toEqual([]);
    expect(controlSockets(dir)).toEqual([]);
    await listen(handlers, join(dir, "node1.sock"));
    writeFileSync(join(dir, "node1.log"), "");
    writeFileSync(join(dir, "lab.json"), "{}");
    await listen(handlers, join(dir, "node2.sock"));
    expect(controlSockets(dir).sort()).toEqual(["node1.sock", "node2.sock"]);
  });
});

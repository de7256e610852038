/**
 * EtcdKv's wire side, against a fake etcd gateway: an HTTP server in this process that answers
 * as etcd 3.4's gateway does (the answers below are copied from a real etcd 3.4.23) and records
 * what it was sent. It checks the JSON sent for each call, how answers and errors are read,
 * deadlines and failover, and the watch stream: lines split across chunks, a stream that ends
 * (lost, then resumed from the next revision), compaction (resync from a list), an error line,
 * a quiet stream whose endpoint restarted, and close(). The real etcd runs in
 * test/integration/etcd.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EtcdKv } from "../../src/cluster/etcd.ts";
import { b64, int64, parseEndpoint, prefixEnd, unb64 } from "../../src/cluster/etcd-http.ts";
import { KvConflict, KvError } from "../../src/cluster/kv.ts";
import { prng, trials } from "../support/random.ts";
import { describeEvents, recorder, waitFor } from "../support/kv-contract.ts";

const HEADER = { cluster_id: "15118495548433857066", member_id: "13668033151171901709", revision: "4", raft_term: "2" };

interface Call {
  path: string;
  body: any;
}
type Handler = (call: Call, res: ServerResponse, req: IncomingMessage) => void;

/** An HTTP server on 127.0.0.1 calling `handler` for each request, with the requests recorded. */
async function fakeGateway(handler: Handler): Promise<{ url: string; calls: Call[]; server: Server; closedStreams: () => number }> {
  const calls: Call[] = [];
  let closed = 0;
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (d) => (text += d));
    req.on("end", () => {
      const call = { path: req.url ?? "", body: text ? JSON.parse(text) : undefined };
      calls.push(call);
      res.on("close", () => closed++);
      handler(call, res, req);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, calls, server, closedStreams: () => closed };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const servers: Server[] = [];
const kvs: EtcdKv[] = [];
async function gateway(handler: Handler) {
  const g = await fakeGateway(handler);
  servers.push(g.server);
  return g;
}
function client(endpoints: string[], opts = {}): EtcdKv {
  const kv = new EtcdKv(endpoints, opts);
  kvs.push(kv);
  return kv;
}
afterEach(async () => {
  for (const kv of kvs.splice(0)) await kv.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe("etcd JSON helpers", () => {
  it("computes the end of a prefix's key range (golden)", () => {
    expect(unb64(prefixEnd("/tapnet/"))).toBe("/tapnet0");
    expect(unb64(prefixEnd("a"))).toBe("b");
    expect(prefixEnd("")).toBe("AA==");
    // "ÿ" is C3 BF in UTF-8: the last byte goes up to C0.
    expect(Buffer.from(prefixEnd("/ÿ"), "base64")).toEqual(Buffer.from([0x2f, 0xc3, 0xc0]));
  });

  it("round-trips any text through base64", () => {
    const rnd = prng(7);
    for (let i = 0; i < trials(500); i++) {
      const s = String.fromCodePoint(...Array.from({ length: Math.floor(rnd() * 12) }, () => Math.floor(rnd() * 0xd7ff)));
      expect(unb64(b64(s))).toBe(s);
    }
  });

  it("reads int64 strings exactly and refuses what a number cannot hold", () => {
    expect([int64("12", "f"), int64(undefined, "f"), int64("-3", "f"), int64(7, "f")]).toEqual([12, 0, -3, 7]);
    expect(() => int64("7587869813372213261", "lease")).toThrow(/lease = "7587869813372213261": not an integer below 2\^53/);
    expect(() => int64("1e3", "f")).toThrow(KvError);
  });

  it("normalizes endpoints and refuses bad ones by name", () => {
    expect(parseEndpoint("192.168.56.2:2379")).toBe("http://192.168.56.2:2379");
    expect(parseEndpoint("http://[::1]:2379/")).toBe("http://[::1]:2379");
    expect(() => parseEndpoint("ftp://h:1")).toThrow('etcd endpoint "ftp://h:1": the scheme must be http or https, not ftp');
    expect(() => parseEndpoint("http://h:1/v3")).toThrow(/only a scheme, host and port/);
    expect(() => new EtcdKv([])).toThrow("etcd: no endpoint given");
  });
});

describe("EtcdKv requests", () => {
  it("sends base64 keys to /v3/kv/range and reads etcd's answer", async () => {
    const g = await gateway((_c, res) => json(res, 200, { header: HEADER, kvs: [{ key: "YQ==", create_revision: "2", mod_revision: "3", version: "2", value: "MQ==", lease: "77" }], count: "1" }));
    const kv = client([g.url]);
    expect(kv.description).toBe(`etcd ${g.url}`);
    expect(await kv.get("a")).toEqual({ key: "a", value: "1", createRevision: 2, modRevision: 3, lease: 77 });
    expect(g.calls).toEqual([{ path: "/v3/kv/range", body: { key: "YQ==" } }]);
    expect(await kv.list("/p/")).toMatchObject({ revision: 4 });
    expect(g.calls[1]).toEqual({ path: "/v3/kv/range", body: { key: b64("/p/"), range_end: b64("/p0") } });
  });

  it("puts with expect as a txn on the MOD revision, and names the revision in a conflict", async () => {
    let succeed = true;
    const g = await gateway((_c, res) =>
      json(res, 200, succeed
        ? { header: { ...HEADER, revision: "9" }, succeeded: true, responses: [{ response_put: { header: { revision: "9" } } }] }
        : { header: HEADER, responses: [{ response_range: { header: { revision: "4" }, kvs: [{ key: "aw==", create_revision: "2", mod_revision: "4", version: "1", value: "MQ==" }], count: "1" } }] }),
    );
    const kv = client([g.url]);
    expect(await kv.put("k", "v", { expect: 0, lease: 5 })).toBe(9);
    expect(g.calls[0]).toEqual({
      path: "/v3/kv/txn",
      body: {
        compare: [{ key: "aw==", target: "MOD", result: "EQUAL", mod_revision: "0" }],
        success: [{ request_put: { key: "aw==", value: "dg==", lease: "5" } }],
        failure: [{ request_range: { key: "aw==" } }],
      },
    });
    succeed = false;
    await expect(kv.put("k", "v", { expect: 3 })).rejects.toThrow(new KvConflict("k is at revision 4, not at 3"));
    await expect(kv.delete("k", { expect: 0 })).rejects.toThrow(new KvConflict("k is at revision 4, not absent"));
    await expect(kv.put("k", "v", { expect: -1 })).rejects.toThrow(/expect must be a revision/);
  });

  it("reads a delete's count, absent when 0", async () => {
    const answers = [{ header: HEADER, deleted: "1" }, { header: HEADER }];
    const g = await gateway((_c, res) => json(res, 200, answers.shift()));
    const kv = client([g.url]);
    expect([await kv.delete("a"), await kv.delete("a")]).toEqual([true, false]);
    expect(g.calls.map((c) => c.path)).toEqual(["/v3/kv/deleterange", "/v3/kv/deleterange"]);
  });

  it("says what etcd answered: its error, a missing lease, or a path it does not know", async () => {
    const g = await gateway((c, res) => {
      if (c.path === "/v3/kv/put") json(res, 404, { error: "etcdserver: requested lease not found", message: "etcdserver: requested lease not found", code: 5 });
      else if (c.path === "/v3/kv/range") json(res, 503, { error: "etcdserver: no leader", message: "etcdserver: no leader", code: 14 });
      else (res.writeHead(404, { "content-type": "text/plain" }), res.end("Not Found\n"));
    });
    const kv = client([g.url]);
    await expect(kv.put("a", "1", { lease: 42 })).rejects.toThrow(`etcd ${g.url}: put a: lease 42 not found (expired or revoked)`);
    await expect(kv.get("a")).rejects.toThrow(`etcd ${g.url}: kv/range: no leader`);
    await expect(kv.revoke(1)).rejects.toThrow(`etcd ${g.url}: lease/revoke: HTTP 404: Not Found (the v3 gateway is at /v3/ from etcd 3.4 on; is this etcd older, or not etcd?)`);
  });

  it("grants a lease with an id of its own below 2^53, and another if etcd has it", async () => {
    const g = await gateway((c, res) =>
      g.calls.length === 1 ? json(res, 412, { error: "etcdserver: lease already exists", message: "etcdserver: lease already exists", code: 9 }) : json(res, 200, { header: HEADER, ID: c.body.ID, TTL: "2" }),
    );
    const kv = client([g.url]);
    const id = await kv.grant(1);
    expect(g.calls.map((c) => c.body.TTL)).toEqual(["1", "1"]);
    const ids = g.calls.map((c) => Number(c.body.ID));
    expect(ids.every((i) => Number.isSafeInteger(i) && i > 0)).toBe(true);
    expect(ids[0]).not.toBe(ids[1]);
    expect(id).toBe(ids[1]);
    await expect(kv.grant(0)).rejects.toThrow(/a lease TTL is a whole number of seconds, 1 or more, not 0/);
  });

  it("reads keepAlive's first streamed answer, with no TTL meaning expired", async () => {
    const ttls = ['"TTL":"5"', ""];
    const g = await gateway((_c, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`{"result":{"header":${JSON.stringify(HEADER)},"ID":"12345"${ttls.length === 2 ? "," : ""}${ttls.shift()}}}\n`);
      // The stream stays open: the client must not wait for its end.
    });
    const kv = client([g.url], { timeoutMs: 2000 });
    expect(await kv.keepAlive(12345)).toBe(5);
    expect(await kv.keepAlive(12345)).toBe(0);
    expect(g.calls[0]).toEqual({ path: "/v3/lease/keepalive", body: { ID: "12345" } });
  });

  it("times out a silent endpoint with an error naming it, and sends a read (not a write) on to the next", async () => {
    const silent = await gateway(() => {});
    const good = await gateway((c, res) => json(res, 200, c.path === "/v3/kv/range" ? { header: HEADER } : { header: { ...HEADER, revision: "5" } }));
    const kv = client([silent.url, good.url], { timeoutMs: 300 });
    const t0 = Date.now();
    await expect(kv.put("a", "1")).rejects.toThrow(new KvError(`etcd ${silent.url}: kv/put: no answer within 300 ms`));
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(good.calls).toEqual([]);
    // The failed endpoint is now the last choice: the next call goes to the good one first.
    expect(await kv.put("a", "1")).toBe(5);
    const kv2 = client([silent.url, good.url], { timeoutMs: 300 });
    expect(await kv2.get("a")).toBeUndefined();
    expect(good.calls.map((c) => c.path)).toEqual(["/v3/kv/put", "/v3/kv/range"]);
  });

  it("fails at once when nothing listens, naming each endpoint tried", async () => {
    const g = await gateway(() => {});
    const url = g.url;
    await new Promise((r) => g.server.close(r));
    const kv = client([url, url.replace("127.0.0.1", "localhost")], { timeoutMs: 3000 });
    const t0 = Date.now();
    await expect(kv.put("a", "1")).rejects.toThrow(`etcd ${url}: kv/put: connection refused; etcd ${url.replace("127.0.0.1", "localhost")}: kv/put: connection refused`);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

/** A watch answer line, as etcd's gateway writes it. */
function line(result: Record<string, unknown>): string {
  return JSON.stringify({ result: { header: HEADER, ...result } }) + "\n";
}
function ev(type: "PUT" | "DELETE", key: string, rev: number, value = "v") {
  const kv = type === "PUT" ? { key: b64(key), create_revision: String(rev), mod_revision: String(rev), version: "1", value: b64(value) } : { key: b64(key), mod_revision: String(rev) };
  return type === "PUT" ? { kv } : { type, kv };
}

describe("EtcdKv watch", () => {
  let streams: ServerResponse[];
  beforeEach(() => {
    streams = [];
  });
  const open = (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "application/json" });
    streams.push(res);
  };

  it("sends the create request and delivers lines split anyhow across chunks, in order", async () => {
    const g = await gateway((_c, res) => open(res));
    const kv = client([g.url]);
    const w = recorder();
    kv.watch("/p/", 7, w);
    await waitFor("the stream", () => streams.length === 1);
    expect(g.calls[0]).toEqual({ path: "/v3/watch", body: { create_request: { key: b64("/p/"), range_end: b64("/p0"), start_revision: "7" } } });
    const text = line({ created: true }) + line({ events: [ev("PUT", "/p/a", 7), ev("PUT", "/p/b", 8, "ü")] }) + line({ events: [ev("DELETE", "/p/a", 9)] });
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 13) {
      streams[0].write(bytes.subarray(i, i + 13));
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor("three events", () => w.seen.length === 3);
    expect(describeEvents(w.seen)).toEqual(["put /p/a=v @7", "put /p/b=ü @8", "delete /p/a @9"]);
    expect(w.statuses).toEqual([]);
  });

  it("reports a stream that ends as lost, resumes after the last event, and reports restored", async () => {
    const g = await gateway((_c, res) => open(res));
    const kv = client([g.url]);
    const w = recorder();
    kv.watch("/p/", 1, w);
    await waitFor("the stream", () => streams.length === 1);
    streams[0].end(line({ created: true }) + line({ events: [ev("PUT", "/p/a", 5)] }));
    await waitFor("the loss", () => w.statuses.length === 1);
    expect(w.statuses[0]).toBe(`lost: etcd ${g.url}: watch: the stream ended`);
    await waitFor("the second stream", () => streams.length === 2);
    expect(g.calls[1].body.create_request.start_revision).toBe("6");
    streams[1].write(line({ created: true }) + line({ events: [ev("PUT", "/p/b", 6)] }));
    await waitFor("the event after", () => w.seen.length === 2);
    expect(w.statuses[1]).toBe(`restored: etcd ${g.url}: watching from revision 6`);
    // An error line is a loss too; its message is said.
    streams[1].write(JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: "etcdserver: no leader", http_status: "Service Unavailable" } }) + "\n");
    await waitFor("the second loss", () => w.statuses.length === 3);
    expect(w.statuses[2]).toBe(`lost: etcd ${g.url}: watch: etcdserver: no leader`);
    await waitFor("the third stream", () => streams.length === 3);
    expect(g.calls[2].body.create_request.start_revision).toBe("7");
  });

  it("lists again and resyncs when etcd has compacted past the revision", async () => {
    const g = await gateway((c, res) => {
      if (c.path === "/v3/kv/range") return json(res, 200, { header: { ...HEADER, revision: "20" }, kvs: [{ key: b64("/p/a"), create_revision: "3", mod_revision: "12", value: b64("x") }], count: "1" });
      open(res);
      if (streams.length === 1) res.write(line({ created: true }) + line({ canceled: true, compact_revision: "10" }));
      else res.write(line({ created: true }));
    });
    const kv = client([g.url]);
    const lists: string[] = [];
    const w = recorder();
    kv.watch("/p/", 2, { ...w, events: w.events, resync: (l) => lists.push(`${l.revision}: ${l.entries.map((e) => `${e.key}=${e.value}@${e.modRevision}`).join(" ")}`) });
    await waitFor("the resync", () => lists.length === 1 && streams.length === 2);
    expect(lists).toEqual(["20: /p/a=x@12"]);
    expect(g.calls.map((c) => c.path)).toEqual(["/v3/watch", "/v3/kv/range", "/v3/watch"]);
    expect(g.calls[2].body.create_request.start_revision).toBe("21");
    expect(w.statuses).toEqual([]);
  });

  it("drops a quiet stream when a probe finds another raft term, and one whose endpoint stopped answering", async () => {
    let term = "2";
    let rangeStatus = 200;
    const g = await gateway((c, res) => {
      if (c.path === "/v3/kv/range") return json(res, rangeStatus, { header: { ...HEADER, raft_term: term } });
      open(res);
      res.write(JSON.stringify({ result: { header: { ...HEADER, raft_term: term }, created: true } }) + "\n");
    });
    const kv = client([g.url], { probeMs: 100, timeoutMs: 500 });
    const w = recorder();
    kv.watch("/p/", 1, w);
    await new Promise((r) => setTimeout(r, 400));
    expect(streams.length).toBe(1);
    expect(g.calls.filter((c) => c.path === "/v3/kv/range").length).toBeGreaterThan(0);
    term = "3";
    await waitFor("a new stream after the term changed", () => streams.length === 2);
    await new Promise((r) => setTimeout(r, 400));
    expect(streams.length).toBe(2);
    expect(w.statuses).toEqual([]);
    rangeStatus = 500;
    await waitFor("the loss", () => w.statuses.length === 1);
    expect(w.statuses[0]).toBe(`lost: etcd ${g.url}: watch: the endpoint answers HTTP 500`);
  });

  it("closes: the stream is aborted and no new one is opened", async () => {
    const g = await gateway((_c, res) => (open(res), res.write(line({ created: true }))));
    const kv = client([g.url]);
    const w = recorder();
    const watch = kv.watch("/p/", 1, w);
    await waitFor("the stream", () => streams.length === 1);
    watch.close();
    await waitFor("the server to see the stream closed", () => g.closedStreams() === 1);
    streams[0].write(line({ events: [ev("PUT", "/p/a", 2)] }));
    await new Promise((r) => setTimeout(r, 300));
    expect([streams.length, w.seen.length, w.statuses.length]).toEqual([1, 0, 0]);
  });
});

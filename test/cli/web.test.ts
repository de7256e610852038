/**
 * `tapnet web` without a lab: its --listen, its checks of a trace request, the cluster as the
 * page gets it (drops, the tunnel's rates, a restart), the journey cut into hops as the terminal
 * prints it, and the server itself against a stand-in switch (a control socket served here by
 * an RpcServer answering status and pod.list as a switch does): the page and its files, the
 * state, the event stream with live rates, a switch that stops answering, every 4xx, and a
 * close that ends the streams. The browser and a real lab: test/integration/web-checks.ts (run by trace.test.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { join } from "node:path";
import { parseListen } from "../../src/cli/commands/web.ts";
import { formatJourney, type Hop } from "../../src/cli/trace/journey.ts";
import { hostAllowed, WebServer } from "../../src/cli/web/server.ts";
import { dropsOf, tunnelRates, type PageState } from "../../src/cli/web/state.ts";
import { linesPerHop, parseTraceRequest, RequestError, resolveTrace } from "../../src/cli/web/trace.ts";
import type { ClusterPod } from "../../src/cli/trace/run.ts";
import type { RpcServer } from "../../src/node/rpc.ts";
import { captureCli } from "./cli-support.ts";

const io = captureCli("tapnet-cli-web-");

describe("--listen", () => {
  it("takes an IPv4 address or localhost and a port, 0 for any", () => {
    expect(parseListen("127.0.0.1:8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseListen("localhost:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("0.0.0.0:65535")).toEqual({ host: "0.0.0.0", port: 65535 });
  });
  it("refuses anything else, saying why", () => {
    const why = (s: string) => { try { parseListen(s); return "accepted"; } catch (e) { return (e as Error).message; } };
    expect(why("8080")).toBe('--listen "8080": no port (write HOST:PORT, such as 127.0.0.1:8080; port 0 takes any free port)');
    expect(why("127.0.0.1:")).toMatch(/: the port must be a number/);
    expect(why("127.0.0.1:65536")).toMatch(/: port 65536 is over 65535/);
    expect(why("256.0.0.1:80")).toMatch(/: "256.0.0.1" is not an IPv4 address/);
    expect(why("[::1]:80")).toMatch(/: the port must be a number|is not an IPv4 address/);
    expect(why("example.org:80")).toMatch(/"example.org" is not an IPv4 address/);
  });
});

describe("a trace request", () => {
  const bad = (body: unknown) => { try { parseTraceRequest(body); return "accepted"; } catch (e) { return `${(e as RequestError).status} ${(e as Error).message}`; } };
  it("is filled with the defaults of tapnet trace", () => {
    expect(parseTraceRequest({ from: "node1-pod1", to: "blue/web" })).toEqual({ from: "node1-pod1", to: "blue/web", proto: "icmp", port: 0, count: 1 });
    expect(parseTraceRequest({ from: "a", to: "10.0.0.1", proto: "tcp", port: 80, count: 20 })).toEqual({ from: "a", to: "10.0.0.1", proto: "tcp", port: 80, count: 20 });
  });
  it("names the field that is wrong", () => {
    expect(bad(null)).toMatch(/^400 the body must be a JSON object/);
    expect(bad({ from: "a", to: "b", extra: 1 })).toBe('400 unknown field "extra" (the fields are from, to, proto, port, count)');
    expect(bad({ to: "b" })).toBe("400 from must be a pod's name (NAME or NAMESPACE/NAME), not nothing");
    expect(bad({ from: "a", to: 7 })).toBe("400 to must be a pod's name (NAME or NAMESPACE/NAME) or an IPv4 address, not 7");
    expect(bad({ from: "A B", to: "b" })).toBe('400 from: "A B" is not a pod\'s name (NAME or NAMESPACE/NAME)');
    expect(bad({ from: "a", to: "$(reboot)" })).toBe('400 to: "$(reboot)" is neither a pod\'s name nor an IPv4 address');
    expect(bad({ from: "a", to: "b", proto: "sctp" })).toBe('400 proto must be one of icmp, tcp, udp, not "sctp"');
    expect(bad({ from: "a", to: "b", proto: "udp" })).toBe("400 proto udp needs port, the destination port");
    expect(bad({ from: "a", to: "b", port: 80 })).toBe("400 port is for proto tcp or udp: ICMP has no ports");
    expect(bad({ from: "a", to: "b", proto: "tcp", port: 0 })).toBe("400 port must be a whole number from 1 to 65535, not 0");
    expect(bad({ from: "a", to: "b", count: 1.5 })).toBe("400 count must be a whole number from 1 to 20, not 1.5");
  });
  it("finds its pods, or an address, on the cluster", () => {
    const pod = (name: string, namespace: string, ip: string, node: string) => ({ name, namespace, ip, node, netns: name, mac: "", ifname: "eth0", port: 1 }) as unknown as ClusterPod;
    const pods = [pod("web", "blue", "10.244.1.2", "node1"), pod("db", "default", "10.244.2.2", "node2")];
    const req = { from: "blue/web", to: "db", proto: "icmp" as const, port: 0, count: 1 };
    expect(resolveTrace(pods, req, "node1, node2")).toMatchObject({ from: { name: "web" }, toIp: "10.244.2.2", toPod: { name: "db" } });
    expect(resolveTrace(pods, { ...req, to: "203.0.113.2" }, "n")).toEqual({ from: pods[0], toIp: "203.0.113.2", proto: "icmp", port: 0, count: 1 });
    const missing = (r: typeof req) => { try { resolveTrace(pods, r, "node1, node2"); return "found"; } catch (e) { return `${(e as RequestError).status} ${(e as Error).message}`; } };
    expect(missing({ ...req, from: "red/web" })).toBe("404 from: no pod red/web on node1, node2");
    expect(missing({ ...req, to: "cache" })).toBe("404 to: no pod cache on node1, node2");
  });
});

describe("the cluster as the page gets it", () => {
  it("lists every drop counter that is not zero, by where and why", () => {
    const ports: { port: number; ifname: string; role: string; pod?: string; counters: Record<string, number> }[] = [
      { port: 0, ifname: "tapnet0", role: "gateway", counters: { rx_frames: 3, drop_no_route: 2 } },
      { port: 1, ifname: "eth0", role: "pod", pod: "web", counters: { drop_policy_denied_egress: 5, drop_runt: 0 } },
    ];
    expect(dropsOf({ ports, tunnel: { rx_frames: 9, drop_bad_seal: 1 } })).toEqual([
      { where: "tapnet0", reason: "no_route", count: 2 },
      { where: "web", reason: "policy_denied_egress", count: 5 },
      { where: "tunnel", reason: "bad_seal", count: 1 },
    ]);
  });
  it("gives the tunnel's rates per second since the sample before; none at the first, or after a restart", () => {
    const first = tunnelRates({ rx_frames: 10, rx_bytes: 1000, tx_frames: 20, tx_bytes: 3000 }, undefined, 0);
    expect(first).toEqual({ rxFrames: 10, rxBytes: 1000, txFrames: 20, txBytes: 3000, rxBps: null, txBps: null, rxPps: null, txPps: null });
    const next = tunnelRates({ rx_frames: 15, rx_bytes: 1500, tx_frames: 20, tx_bytes: 3000 }, first, 500);
    expect(next).toMatchObject({ rxBps: 1000, rxPps: 10, txBps: 0, txPps: 0 });
    expect(tunnelRates({ rx_frames: 1, rx_bytes: 60, tx_frames: 1, tx_bytes: 60 }, next, 1000)).toMatchObject({ rxBps: null, txBps: null });
  });
});

describe("the journey's lines, a hop each", () => {
  // A ping's first bytes as a switch records them: virtio_net_hdr, Ethernet, IPv4, ICMP.
  const head = "000000000000000000000a580af401010a580af40102080045000054d689400040014b340af401020af402020800054268250001fe69116b00000000";
  const hop = (t: number, stage: string, what: string, more: Partial<Hop> = {}): Hop => ({ t, at: 1e15 + t, head, len: 108, node: "node1", pipeline: "ports", stage, what, changed: [], frame: 3, ...more });
  const hops = [hop(0, "read", "in from port 1 (node1-pod1)", { headers: "10.244.1.2 → 10.244.2.2 ICMP echo request id 1 seq 1, TTL 64" }), hop(145, "route", "to node2", { changed: ["TTL 64 → 63 (a router's hop)"] }), hop(334, "tunnel-out", "sent")];
  it("are the terminal's lines, cut where each hop starts", () => {
    for (const opts of [{}, { color: true }, { bytes: true, color: true }]) {
      const per = linesPerHop(hops, opts);
      expect(per.length).toBe(3);
      expect(per.flat()).toEqual(formatJourney(hops, opts));
      per.forEach((lines, k) => expect(lines[0].replace(/\x1b\[[0-9;]*m/g, "")).toMatch(new RegExp(`^ *\\+${hops[k].t} µs  node1 +${hops[k].stage} `)));
    }
    expect(linesPerHop(hops, {})[1]).toContain(`${"".padStart(36)}TTL 64 → 63 (a router's hop)`);
  });
});

describe("the Host a request names", () => {
  it("is an address, localhost or this machine: not another name for this address", () => {
    for (const h of ["127.0.0.1:8080", "10.1.2.3", "localhost:80", "[::1]:8080"]) expect(hostAllowed(h), h).toBe(true);
    for (const h of ["evil.example:8080", "127.0.0.1.nip.io", "", "localhost.evil.example"]) expect(hostAllowed(h), h).toBe(false);
  });
});

describe("the server, against a stand-in switch", () => {
  let web: WebServer | undefined;
  let sw: RpcServer | undefined;
  afterEach(async () => {
    await web?.close();
    web = undefined;
  });
  const counters = { rx_frames: 0, rx_bytes: 0, tx_frames: 0, tx_bytes: 0 };
  const status = () => ({
    node: { name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24", gateway: "10.244.1.1", gatewayMac: "0a:58:0a:f4:01:01", backend: "vxlan", pid: 42, runtime: "node 20" },
    pods: [{ name: "web", namespace: "blue", netns: "lab-blue-web", ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", ifname: "eth0", port: 1 }],
    nodes: [{ name: "node1", address: "192.168.56.11", podCidr: "10.244.1.0/24" }],
    ports: [{ port: 1, ifname: "eth0", role: "pod", pod: "web", counters: { drop_runt: 1 } }],
    fdb: [{ mac: "0a:58:0a:f4:01:02", port: 1, age: 3, pinned: true, device: "eth0@lab-blue-web", pod: "web" }],
    counters: { routed: 7 },
    tunnel: { ...counters },
  });
  const start = async () => {
    const path = join(io.dir, "node1.sock");
    sw = await io.serve(path, { status, "pod.list": () => status().pods });
    web = await WebServer.start({ host: "127.0.0.1", port: 0, intervalMs: 200, targets: () => [{ node: "node1", path }] });
    return web.url;
  };

  it("serves the page and its files, and the cluster as JSON", async () => {
    const url = await start();
    const page = await fetch(url);
    expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
    const html = await page.text();
    for (const f of ["/style.css", "/app.js"]) expect(html).toContain(f);
    for (const [f, type] of [["style.css", "text/css"], ["app.js", "text/javascript"], ["drawing.js", "text/javascript"]]) {
      const r = await fetch(url + f);
      expect([r.status, r.headers.get("content-type")]).toEqual([200, `${type}; charset=utf-8`]);
    }
    const st = (await (await fetch(`${url}api/state`)).json()) as PageState;
    expect(st.nodes).toEqual([expect.objectContaining({
      name: "node1", backend: "vxlan", gateway: "10.244.1.1",
      pods: [{ name: "web", namespace: "blue", netns: "lab-blue-web", ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", ifname: "eth0", port: 1 }],
      fdb: [{ mac: "0a:58:0a:f4:01:02", port: 1, age: 3, pinned: true, device: "eth0@lab-blue-web", pod: "web" }],
      drops: [{ where: "web", reason: "runt", count: 1 }],
      peers: ["node1"],
    })]);
    expect(st.nodes[0].counters).toMatchObject({ routed: 7, delivered: 0 });
  });

  it("streams the cluster every interval with the tunnel's live rates, says when a switch stops answering, and ends the streams on close", async () => {
    const url = await start();
    const res = await fetch(`${url}api/events`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    const nextState = async (): Promise<PageState> => {
      for (;;) {
        const m = /event: state\ndata: (.*)\n\n/.exec(text);
        if (m) {
          text = text.slice(m.index + m[0].length);
          return JSON.parse(m[1]) as PageState;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("the stream ended");
        text += new TextDecoder().decode(value);
      }
    };
    expect((await nextState()).nodes[0].tunnel?.txBps).toBe(null);
    counters.tx_bytes += 1_000_000;
    counters.tx_frames += 1000;
    const s = await nextState();
    expect(s.nodes[0].tunnel!.txBytes).toBe(1_000_000);
    expect(s.nodes[0].tunnel!.txBps).toBeGreaterThan(1_000_000); // a million bytes in at most a second
    await sw!.close();
    const gone = await nextState();
    expect(gone.nodes).toEqual([{ name: "node1", socket: join(io.dir, "node1.sock"), error: expect.any(String) }]);
    await web!.close();
    web = undefined;
    for (;;) if ((await reader.read()).done) break; // the stream ended with the server
  });

  it("asks the switches only while a page listens: a browser gone is a stream gone", async () => {
    let asked = 0;
    const path = join(io.dir, "node1.sock");
    await io.serve(path, { status: () => (asked++, status()) });
    web = await WebServer.start({ host: "127.0.0.1", port: 0, intervalMs: 200, targets: () => [{ node: "node1", path }] });
    await new Promise((r) => setTimeout(r, 500));
    expect(asked).toBe(0);
    const abort = new AbortController();
    const res = await fetch(`${web.url}api/events`, { signal: abort.signal });
    const reader = res.body!.getReader();
    while (asked < 3) await reader.read();
    abort.abort(); // the browser goes away
    await new Promise((r) => setTimeout(r, 300));
    const then = asked;
    await new Promise((r) => setTimeout(r, 700));
    expect(asked).toBe(then);
    expect((await fetch(`${web.url}api/state`)).status).toBe(200); // and serves on
  });

  it("answers what it does not serve with a 4xx and a message", async () => {
    const url = await start();
    const errorOf = async (r: Promise<Response>) => {
      const res = await r;
      return `${res.status} ${((await res.json()) as { error: string }).error}`;
    };
    const post = (body: string, headers: Record<string, string> = { "content-type": "application/json" }) => fetch(`${url}api/trace`, { method: "POST", headers, body });
    expect(await errorOf(fetch(`${url}x`))).toBe("404 no such page: /x (the page is /; its data /api/state, /api/events, /api/trace)");
    expect(await errorOf(fetch(`${url}api/state`, { method: "POST" }))).toBe("405 /api/state takes GET, not POST");
    expect(await errorOf(post("{"))).toMatch(/^400 the body is not JSON: /);
    expect(await errorOf(post('{"from":"web","to":"db"}'))).toBe("404 to: no pod db on node1");
    expect(await errorOf(post("{}", { "content-type": "text/plain" }))).toBe('415 a trace request is JSON: send it with content-type application/json, not "text/plain"');
    expect(await errorOf(post("{}", { "content-type": "application/json", origin: "http://evil.example" }))).toBe("403 a trace request must come from this page, not from http://evil.example");
    expect(await errorOf(post(" ".repeat(17_000)))).toBe("413 the body is over 16384 bytes: a trace request is a few fields");
    expect((await fetch(`${url}api/state`)).status).toBe(200);
  });
});

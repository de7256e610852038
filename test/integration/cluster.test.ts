// Three nodes, each backend: the whole pod network across nodes, what the underlay carries,
// and garbage thrown at the tunnel port. And a lab where one node is a plain Linux VXLAN node.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseEthernet } from "../../src/wire/ethernet.ts";
import { parseIpv4 } from "../../src/wire/ipv4.ts";
import { parseUdp } from "../../src/wire/udp.ts";
import { parseVxlan } from "../../src/wire/vxlan.ts";
import { tapnetGsoMaxSize } from "../../src/tunnel/tapnet.ts";
import { cleanupTestLabs, iperf, journal, netnsList, pidAlive, runCmd, sh, tapnet, uniquePrefix } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "tapnet-it-cluster-"));

afterAll(async () => {
  await cleanupTestLabs();
  rmSync(tmp, { recursive: true, force: true });
});

/** The frames of a classic pcap file (as tcpdump -w writes it on Ethernet). */
function pcapFrames(file: string): Uint8Array[] {
  const b = new Uint8Array(readFileSync(file));
  const dv = new DataView(b.buffer, b.byteOffset);
  expect(dv.getUint32(0, true)).toBe(0xa1b2c3d4);
  const frames: Uint8Array[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const caplen = dv.getUint32(o + 8, true);
    frames.push(b.subarray(o + 16, o + 16 + caplen));
    o += 16 + caplen;
  }
  return frames;
}

/** Captures `count` datagrams to `port` on the underlay bridge while `traffic` runs. */
async function capture(prefix: string, port: number, count: number, traffic: () => Promise<unknown>): Promise<Uint8Array[]> {
  const file = join(tmp, `${prefix}-${port}.pcap`);
  const dump = spawn("ip", ["netns", "exec", `${prefix}-underlay`, "tcpdump", "-i", "br0", "-nn", "-U", "-c", String(count), "-w", file, "udp", "port", String(port)], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 700)); // tcpdump attaches
  await traffic();
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => dump.kill(), 5_000);
    dump.on("close", () => { clearTimeout(t); resolve(); });
  });
  return pcapFrames(file);
}

/** The outer UDP payload of a captured frame. */
function udpPayload(frame: Uint8Array): { outerSrc: string; payload: Uint8Array } {
  const eth = parseEthernet(frame);
  if (typeof eth === "number") throw new Error(`not Ethernet: ${eth}`);
  const ipr = parseIpv4(frame.subarray(14));
  if (typeof ipr === "number") throw new Error(`not IPv4: ${ipr}`);
  const udp = parseUdp(frame.subarray(14 + 20, 14 + 20 + ipr.payloadLen));
  if (typeof udp === "number") throw new Error(`not UDP: ${udp}`);
  return { outerSrc: ipr.src, payload: udp.payload };
}

function tunnelDrops(status: any, node: string): { rx: number; drops: number } {
  const t = status.switches[node].tunnel;
  return { rx: t.rx_frames, drops: Object.entries(t).filter(([k]) => k.startsWith("drop_")).reduce((a, [, v]) => a + (v as number), 0) };
}

/** Sends `n` random datagrams of 0-200 bytes from namespace `netns` to `to`:`port`. */
function garbage(netns: string, to: string, port: number, n: number) {
  const script = `const d=require("dgram").createSocket("udp4");let i=0;const go=()=>{if(i++>=${n})return d.close();` +
    `const b=Buffer.alloc(Math.floor(Math.random()*200));for(let k=0;k<b.length;k++)b[k]=Math.random()*256;` +
    `if(i%3===0&&b.length>20){b[0]=0x45;b[0+8]=0x08;}d.send(b,${port},"${to}",go);};go();`;
  return runCmd("ip", ["netns", "exec", netns, process.execPath, "-e", script]);
}

for (const backend of ["udp", "vxlan", "tapnet"] as const) {
  describe(`three tapnet nodes, ${backend} backend`, () => {
    const prefix = uniquePrefix(backend);
    const port = { udp: 8285, vxlan: 8472, tapnet: 8287 }[backend];

    it("lab up and lab check: every pod reaches every pod and node, no NAT inside, masquerade to the outside", async () => {
      const up = await tapnet(["lab", "up", "--nodes", "3", "--pods", "2", "--backend", backend, "--prefix", prefix]);
      expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
      const status = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
      expect(status.backend).toBe(backend);
      expect(status.nodes.map((n: { podCidr: string }) => n.podCidr)).toEqual(["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
      const r = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
      const res = JSON.parse(r.stdout);
      expect(res.results.filter((x: { ok: boolean }) => !x.ok)).toEqual([]);
      // 6 pods: 30 pod pings, 36 node-pod pings, 6 to the outside; 15 + 36 + 6 TCP transfers
      expect(res.passed).toBe(30 + 36 + 6 + 15 + 36 + 6);
      const after = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
      expect(after.switches.node1.tunnel.rx_frames).toBeGreaterThan(0); // it did go through the tunnel
      const outside = res.results.filter((x: { to: string; test: string }) => x.to === "outside" && x.test === "tcp");
      expect(outside.find((x: { from: string }) => x.from === "node3-pod1").detail).toContain("server saw 192.168.56.13");
      expect(r.code).toBe(0);
    });

    it("caps TSO super-frames on the pods' interfaces and tapnet0 on the tapnet backend only (one UDP_SEGMENT send a frame)", () => {
      const gso = (netns: string, dev: string) => /gso_max_size (\d+)/.exec(sh("ip", ["-n", netns, "-d", "link", "show", dev]))![1];
      const want = backend === "tapnet" ? String(tapnetGsoMaxSize(1472)) : "65536";
      expect(gso(`${prefix}-node1-pod1`, "eth0")).toBe(want);
      expect(gso(`${prefix}-node1`, "tapnet0")).toBe(want);
    });

    it("moves 100 MB of TCP between pods on different nodes", async () => {
      const { client, server } = await iperf(`${prefix}-node1-pod1`, `${prefix}-node3-pod2`, "10.244.3.3", "100M");
      expect(client.end.sum_sent.bytes).toBeGreaterThanOrEqual(100 * 1024 * 1024);
      expect(server.start.connected[0].remote_host).toBe("10.244.1.2");
    });

    it(`the underlay carries the documented format on port ${port}`, async () => {
      const frames = await capture(prefix, port, 4, () => runCmd("ip", ["netns", "exec", `${prefix}-node1-pod1`, "ping", "-c", "2", "-i", "0.2", "10.244.2.3"]));
      expect(frames.length).toBe(4);
      for (const f of frames) {
        const { outerSrc, payload } = udpPayload(f);
        let inner = payload;
        if (backend === "tapnet") {
          // The lab's cluster has a secret: sealed, version 2 (flags 0, epoch, counter), then the
          // version-1 datagram (12-byte header, a whole small frame: virtio_net_hdr, Ethernet, the
          // 84-byte ICMP echo) encrypted, then GCM's 16-byte tag. Nothing of the pods shows.
          expect(payload[0]).toBe(2);
          expect(payload[1]).toBe(0);
          expect(payload.length).toBe(16 + 12 + 10 + 14 + 84 + 16);
          const hex = Buffer.from(payload).toString("hex");
          for (const a of [[10, 244, 1, 2], [10, 244, 2, 3]]) expect(hex).not.toContain(Buffer.from(a).toString("hex"));
          expect(["192.168.56.11", "192.168.56.12"]).toContain(outerSrc);
          continue;
        } else if (backend === "vxlan") {
          expect(parseVxlan(payload)).toEqual({ vni: 1 });
          expect(Array.from(payload.subarray(0, 8))).toEqual([0x08, 0, 0, 0, 0, 0, 1, 0]);
          const eth = parseEthernet(payload.subarray(8));
          expect(eth).toMatchObject({ etherType: 0x0800 });
          inner = payload.subarray(8 + 14);
        }
        // udp: the payload is the pod's own IPv4 packet, as flannel's udp backend carries it
        const ipr = parseIpv4(inner);
        if (typeof ipr === "number") throw new Error(`inner packet does not parse: ${ipr}`);
        const pair = [ipr.src, ipr.dst].sort();
        expect(pair).toEqual(["10.244.1.2", "10.244.2.3"]);
        expect(["192.168.56.11", "192.168.56.12"]).toContain(outerSrc);
      }
    });

    it("garbage sent to the tunnel port changes nothing but drop counters", async () => {
      const before = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
      // From a stranger on the underlay, and from a real node's address.
      sh("ip", ["-n", `${prefix}-underlay`, "addr", "add", "192.168.56.250/24", "dev", "br0"]);
      expect((await garbage(`${prefix}-underlay`, "192.168.56.11", port, 200)).code).toBe(0);
      expect((await garbage(`${prefix}-node2`, "192.168.56.11", port, 200)).code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      const after = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
      const b = tunnelDrops(before, "node1");
      const a = tunnelDrops(after, "node1");
      expect(a.rx - b.rx).toBe(400);
      expect(a.drops - b.drops).toBe(400);
      expect(after.switches.node1.tunnel.drop_tunnel_unknown_peer - (before.switches.node1.tunnel.drop_tunnel_unknown_peer ?? 0)).toBe(200);
      expect(after.switches.node1.counters.delivered).toBe(before.switches.node1.counters.delivered);
      expect(pidAlive(journal(prefix)!.nodes[0].pid)).toBe(true);
      const r = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
      expect(JSON.parse(r.stdout).failed).toBe(0);
    });

    it("lab down leaves nothing", async () => {
      const made = journal(prefix)!.namespaces;
      expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
      expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
    });
  });
}

describe("a plain Linux VXLAN node among tapnet nodes", () => {
  const prefix = uniquePrefix("mixed");

  it("pods on the kernel node and on tapnet nodes ping and exchange TCP both ways", async () => {
    const up = await tapnet(["lab", "up", "--nodes", "3", "--pods", "2", "--backend", "vxlan", "--kernel-node", "2", "--prefix", prefix]);
    expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
    // node2 really is the kernel's: a vxlan device and a bridge, no switch process
    expect(sh("ip", ["-n", `${prefix}-node2`, "-d", "link", "show", "flannel.1"])).toMatch(/vxlan id 1 .*dstport 8472.*nolearning/s);
    expect(journal(prefix)!.nodes[1].pid).toBe(0);
    const r = await tapnet(["lab", "check", "--json", "--prefix", prefix]);
    const res = JSON.parse(r.stdout);
    expect(res.results.filter((x: { ok: boolean }) => !x.ok)).toEqual([]);
    const both = res.results.filter((x: { from: string; to: string; test: string }) => x.test === "tcp" &&
      ((x.from.startsWith("node1-pod") && x.to.startsWith("node2-pod")) || (x.from.startsWith("node2-pod") && x.to.startsWith("node3-pod"))));
    expect(both.length).toBe(8);
    const made = journal(prefix)!.namespaces;
    expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
    expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
  });
});

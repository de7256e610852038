// The tracer in the datapath loop (over an in-memory libc): the trace command arms it, the frames
// it matches are recorded after every stage of the pipeline they cross, from a pod's port and from
// the tunnel, and traceRead hands the records over once. A filter to a Service port follows the
// connection to its endpoint and back; a record names the drop reason a stage counted, the
// underlay datagram's ends, the Service, and the node kernel's rule's inputs at tapnet0.
import { afterEach, describe, expect, it } from "vitest";
import type { Reply } from "../../src/switch/commands.ts";
import { DONE, TUNNEL } from "../../src/switch/frames.ts";
import type { TraceFilter } from "../../src/switch/trace/tracer.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { closeOpened, FD, setup, TUNNEL_PORT } from "./datapath-support.ts";
import type { NetworkView } from "../../src/cluster/network-view.ts";
import { emitEthernet } from "../../src/wire/ethernet.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { put16 } from "../../src/wire/bytes.ts";
import { fold, pseudoHeaderSum, sumWords } from "../../src/wire/checksum.ts";
import { ADDR, config, GW, GW_MAC, ip, ipFrame, POD_A, VTEP } from "./router-support.ts";

afterEach(closeOpened);

const REMOTE = "10.244.2.5";
const filter = (p: Partial<TraceFilter>): TraceFilter => ({ id: 1, proto: 17, a: 0, b: 0, aPort: 0, bPort: 0, bothWays: true, count: 5, ...p });

/** A TCP SYN as a TAP hands it over, its checksum complete. */
function tcpFrame(src: string, dst: string, sport: number, dport: number, dstMac = GW_MAC): Uint8Array {
  const b = new Uint8Array(ETH_OFF + 14 + 20 + 20);
  emitEthernet({ dst: dstMac, src: POD_A.mac, vlans: [], etherType: 0x0800 }, b, ETH_OFF);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src, dst, payloadLen: 20 }, b, ETH_OFF + 14);
  emitTcp({ srcPort: sport, dstPort: dport, seq: 1, ack: 0, flags: 0x02, window: 100, checksum: 0, urgent: 0, options: new Uint8Array(0) }, b, ETH_OFF + 34);
  put16(b, ETH_OFF + 50, ~fold(sumWords(b, ETH_OFF + 34, 20, pseudoHeaderSum(ip(src), ip(dst), 6, 20))) & 0xffff);
  return b;
}

function traced() {
  const s = setup({ router: config("udp"), noGro: true });
  s.ports(1, true); // the gateway, port 0
  s.libc.tap(FD[1]);
  s.command({ op: "add", port: 1, fd: FD[1], role: "pod", identity: { mac: POD_A.mac, ip: ip(POD_A.ip) } });
  /** Sends a command with an id and runs a round for its answer. */
  const ask = (cmd: Parameters<typeof s.command>[0]): Reply => {
    s.command(cmd);
    s.rounds(1);
    const r = s.replies().filter((x) => "id" in x && x.id === (cmd as { id: number }).id);
    expect(r).toHaveLength(1);
    return r[0];
  };
  return { ...s, ask };
}

describe("Datapath: tracing", () => {
  it("records a pod's frame to another node after every stage of the ports pipeline, and the reply after every stage of the receive pipeline", () => {
    const { libc, ask, rounds } = traced();
    expect(ask({ op: "trace", id: 1, filters: [filter({ a: ip(POD_A.ip), b: ip(REMOTE) })] })).toEqual({ op: "trace", id: 1 });
    libc.tap(FD[1]).reads.push(ipFrame({ src: POD_A.ip, dst: REMOTE }));
    libc.tap(FD[1]).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.2.6" })); // not traced
    rounds(1);
    const reply = ipFrame({ eth: { dst: GW_MAC }, src: REMOTE, dst: POD_A.ip });
    libc.udp.incoming.push({ bytes: reply.subarray(ETH_OFF + 14), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds(1);
    const r = ask({ op: "traceRead", id: 2 });
    if (r.op !== "traceRead") throw new Error(`not a traceRead reply: ${r.op}`);
    expect(r.lost).toBe(0);
    const out = r.records.filter((x) => x.frame === 1);
    expect(out.map((x) => x.stage)).toEqual(["tunnel-in", "validate", "port-security", "conntrack", "route", "gateway", "bridge", "tunnel-out", "port-out"]);
    expect(out.every((x) => x.pipeline === "ports" && x.port === 1)).toBe(true);
    expect(out.find((x) => x.stage === "route")!.out).toBe(-3); // TO_NODE
    expect(out.at(-1)!.out).toBe(DONE); // handed to the tunnel
    const back = r.records.filter((x) => x.frame === 2);
    expect(back.map((x) => x.stage)).toEqual(["deliver", "conntrack", "gateway", "port-out"]);
    expect(back.every((x) => x.pipeline === "receive" && x.port === TUNNEL && x.node === 1)).toBe(true);
    expect(back.find((x) => x.stage === "deliver")!.out).toBe(1); // pod A's port
    expect(r.records.map((x) => x.frame)).not.toContain(3); // the untraced frame
    // Read once; then disarmed, nothing more is recorded.
    const again = ask({ op: "traceRead", id: 3 });
    expect(again).toEqual({ op: "traceRead", id: 3, records: [], lost: 0 });
    expect(ask({ op: "trace", id: 4, filters: [] })).toEqual({ op: "trace", id: 4 });
    libc.tap(FD[1]).reads.push(ipFrame({ src: POD_A.ip, dst: REMOTE }));
    rounds(1);
    expect(ask({ op: "traceRead", id: 5 })).toEqual({ op: "traceRead", id: 5, records: [], lost: 0 });
  });

  it("answers a bad filter with its fault and keeps what was armed", () => {
    const { ask } = traced();
    expect(ask({ op: "trace", id: 1, filters: [filter({ count: 0 })] })).toEqual({ op: "trace", id: 1, error: "trace filter 1: count must be 1 to 1000, not 0" });
    expect(ask({ op: "traceRead", id: 2 })).toEqual({ op: "traceRead", id: 2, records: [], lost: 0 });
  });
});

describe("Datapath: what a trace record says besides the frame", () => {
  const VIP = "10.96.0.10";
  const view: NetworkView = {
    serviceCidr: { network: ip("10.96.0.0"), prefix: 12 }, namespaces: [{ name: "default", labels: {} }], pods: [], nodes: [], policies: [],
    services: [{ namespace: "default", name: "web", clusterIp: ip(VIP), ports: [{ name: "http", protocol: 6, port: 80, endpoints: [{ ip: ip(REMOTE), port: 8080 }] }] }],
  };

  it("follows a connection to a Service to its endpoint on another node and back: the endpoint's frames marked, the Service named, the underlay's ends given", () => {
    const { libc, ask, rounds } = traced();
    expect(ask({ op: "view", id: 1, view })).toEqual({ op: "view", id: 1 });
    expect(ask({ op: "trace", id: 2, filters: [filter({ proto: 6, a: ip(POD_A.ip), b: ip(VIP), bPort: 80 })] })).toEqual({ op: "trace", id: 2 });
    libc.tap(FD[1]).reads.push(tcpFrame(POD_A.ip, VIP, 40000, 80));
    libc.tap(FD[1]).reads.push(tcpFrame(POD_A.ip, "10.244.2.6", 40000, 8080)); // to no endpoint: not traced
    rounds(1);
    // The endpoint's answer, over the tunnel from node2: it never had the ClusterIP in it.
    libc.udp.incoming.push({ bytes: tcpFrame(REMOTE, POD_A.ip, 8080, 40000, GW_MAC).subarray(ETH_OFF + 14), address: ip(ADDR[1]), port: TUNNEL_PORT });
    rounds(1);
    const r = ask({ op: "traceRead", id: 3 });
    if (r.op !== "traceRead") throw new Error(`not a traceRead reply: ${r.op}`);
    const out = r.records.filter((x) => x.frame === 1);
    expect(out.find((x) => x.stage === "conntrack")!.service).toBe("default/web:http");
    expect(out.filter((x) => x.service).map((x) => x.stage)).toEqual(["conntrack"]);
    expect(out.find((x) => x.stage === "tunnel-out")!.underlay).toEqual({
      backend: "udp", src: ADDR[0], dst: ADDR[1], port: TUNNEL_PORT, vni: 1, sealed: false, datagramSize: 1472, vtepSrc: VTEP[0], vtepDst: VTEP[1],
    });
    expect(out.filter((x) => x.underlay).map((x) => x.stage)).toEqual(["tunnel-out"]);
    const back = r.records.filter((x) => x.frame === 2);
    expect(back.map((x) => x.stage)).toEqual(["deliver", "conntrack", "gateway", "port-out"]);
    expect(back[0].underlay).toMatchObject({ src: ADDR[1], dst: ADDR[0], vtepSrc: VTEP[1], vtepDst: VTEP[0] });
    // conntrack gave the reply the Service's address back.
    expect(back[0].head.slice(2 * (ETH_OFF + 14 + 12), 2 * (ETH_OFF + 14 + 16))).toBe("0af40205");
    expect(back[1].head.slice(2 * (ETH_OFF + 14 + 12), 2 * (ETH_OFF + 14 + 16))).toBe("0a60000a");
    expect(r.records.map((x) => x.frame)).not.toContain(3);
  });

  it("names the drop reason the stage counted, and what the node's kernel's rule is made of where a frame comes from tapnet0", () => {
    const { libc, ask, rounds, tap } = traced();
    libc.tap(FD[0]);
    ask({ op: "trace", id: 1, filters: [filter({ a: ip(POD_A.ip), b: ip("10.244.200.9") }), filter({ id: 2, proto: 17, a: ip("203.0.113.2"), b: ip(POD_A.ip) })] });
    tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: "10.244.200.9" }));
    tap(0).reads.push(ipFrame({ eth: { src: GW_MAC, dst: POD_A.mac }, src: "203.0.113.2", dst: POD_A.ip }));
    rounds(1);
    const r = ask({ op: "traceRead", id: 2 });
    if (r.op !== "traceRead") throw new Error(`not a traceRead reply: ${r.op}`);
    const refused = r.records.filter((x) => x.filter === 1);
    expect(refused.map((x) => [x.stage, x.why ?? ""])).toEqual([
      ["tunnel-in", ""], ["validate", ""], ["port-security", ""], ["conntrack", ""], ["route", "cluster_unreachable"],
      ["gateway", "cluster_unreachable"], ["bridge", "cluster_unreachable"], ["tunnel-out", "cluster_unreachable"], ["port-out", "cluster_unreachable"],
    ]);
    expect(refused.find((x) => x.stage === "route")!.out).toBe(-4); // REPLY
    expect(refused.at(-1)!.out).toBe(1); // the ICMP error, back to pod A
    // Too big with DF: refused at route (frag_needed), the ICMP error made in its place and sent back.
    ask({ op: "trace", id: 3, filters: [filter({ id: 3, a: ip(POD_A.ip), b: ip(REMOTE) })] });
    tap(1).reads.push(ipFrame({ src: POD_A.ip, dst: REMOTE, df: true, payloadLen: 1472 }));
    rounds(1);
    const big = ask({ op: "traceRead", id: 4 });
    if (big.op !== "traceRead") throw new Error(`not a traceRead reply: ${big.op}`);
    expect(big.records.map((x) => [x.stage, x.out, x.why ?? ""]).filter(([stage]) => ["route", "gateway", "port-out"].includes(stage as string))).toEqual([
      ["route", -4, "frag_needed"], ["gateway", 1, "frag_needed"], ["port-out", 1, "frag_needed"],
    ]);
    expect(big.records.at(-1)!.head.slice(2 * (ETH_OFF + 14 + 20), 2 * (ETH_OFF + 14 + 22))).toBe("0304"); // ICMP type 3 code 4
    const inbound = r.records.filter((x) => x.filter === 2);
    expect(inbound[0].kernel).toEqual({ cluster: "10.244.0.0/16", nodes: ADDR, gateway: GW, self: ADDR[0] });
    expect(inbound.filter((x) => x.kernel).map((x) => x.stage)).toEqual(["tunnel-in"]);
  });
});

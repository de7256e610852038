// The tracer in the datapath loop (over an in-memory libc): the trace command arms it, the frames
// it matches are recorded after every stage of the pipeline they cross, from a pod's port and from
// the tunnel, and traceRead hands the records over once.
import { afterEach, describe, expect, it } from "vitest";
import type { Reply } from "../../src/switch/commands.ts";
import { DONE, TUNNEL } from "../../src/switch/frames.ts";
import type { TraceFilter } from "../../src/switch/trace/tracer.ts";
import { ETH_OFF } from "../../src/wire/virtio.ts";
import { closeOpened, FD, setup, TUNNEL_PORT } from "./datapath-support.ts";
import { ADDR, config, GW_MAC, ip, ipFrame, POD_A } from "./router-support.ts";

afterEach(closeOpened);

const REMOTE = "10.244.2.5";
const filter = (p: Partial<TraceFilter>): TraceFilter => ({ id: 1, proto: 17, a: 0, b: 0, aPort: 0, bPort: 0, bothWays: true, count: 5, ...p });

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

// node/trace-rpc.ts: the control socket's trace.set and trace.read, over a switch stand-in that
// keeps what it is given (trace-sessions.test.ts has traces at once). Every field of a filter is checked, each fault named.
import { describe, expect, it } from "vitest";
import { parseFilter, traceHandlers, type TraceSource } from "../../src/node/trace-rpc.ts";
import { RpcError } from "../../src/node/rpc.ts";
import type { TraceFilter, TraceRecord } from "../../src/switch/trace/tracer.ts";

function source() {
  const armed: TraceFilter[][] = [];
  const record: TraceRecord = { filter: 1, frame: 1, t: 5, pipeline: "ports", stage: "route", port: 1, node: -1, out: -3, len: 60, head: "00" };
  // A drain, as the tracer's: the record and the loss once.
  let left = [record];
  const sw: TraceSource = {
    trace: async (f) => { armed.push(f); },
    traceRecords: async () => { const records = left; left = []; return { records, lost: records.length ? 2 : 0 }; },
  };
  return { sw, armed, record };
}

describe("trace.set and trace.read", () => {
  it("arms the filters as the tracer takes them, dotted addresses and protocol names read, under ids and a group of the switch's", async () => {
    const { sw, armed, record } = source();
    const h = traceHandlers(sw, "node1");
    expect(await h["trace.set"]({ session: "t-1", filters: [{ id: 9, proto: "icmp", src: "10.244.1.2", dst: "10.244.2.3", sport: 77, bothWays: true, count: 4 }, { proto: 6 }] })).toEqual({ armed: 2 });
    expect(armed).toEqual([[
      { id: 1, proto: 1, a: 0x0af40102, b: 0x0af40203, aPort: 77, bPort: 0, bothWays: true, count: 4, group: 1 },
      { id: 2, proto: 6, a: 0, b: 0, aPort: 0, bPort: 0, bothWays: false, count: 1, group: 1 },
    ]]);
    // The stand-in's record names datapath filter 1: the session's own 9.
    expect(await h["trace.read"]({ session: "t-1" })).toEqual({ node: "node1", records: [{ ...record, filter: 9 }], lost: 2, armed: 2 });
    expect(await h["trace.set"]({ session: "t-1", filters: [] })).toEqual({ armed: 0 });
    expect(armed.at(-1)).toEqual([]);
    expect(await h["trace.read"]({ session: "t-1" })).toEqual({ node: "node1", records: [], lost: 0, armed: 0 });
  });

  it("refuses a session name that is not a short token", async () => {
    const h = traceHandlers(source().sw, "node1");
    await expect(h["trace.set"]({ session: "a b", filters: [] })).rejects.toThrow("trace.set: session must be up to 64 letters, digits or . _ : -, not \"a b\"");
    await expect(h["trace.read"]({ session: 7 })).rejects.toBeInstanceOf(RpcError);
    await expect(h["trace.read"]({ session: "x".repeat(65) })).rejects.toThrow(/session must be up to 64/);
  });

  it("names the fault of a bad request, and arms nothing", async () => {
    const { sw, armed } = source();
    const h = traceHandlers(sw, "node1");
    const fault = (p: Record<string, unknown>) => h["trace.set"](p).then(() => "armed", (e: Error) => (e instanceof RpcError ? e.message : `not an RpcError: ${e}`));
    expect(await fault({})).toBe("trace.set needs filters, a list (empty to stop tracing)");
    expect(await fault({ filters: [{}, {}, {}, {}, {}] })).toBe("trace.set: at most 4 filters at once, not 5");
    expect(await fault({ filters: [7] })).toBe("trace.set: filters[0] must be an object");
    expect(await fault({ filters: [{ prot: "icmp" }] })).toBe('trace.set: filters[0]: unknown field "prot" (the fields are id, proto, src, dst, sport, dport, bothWays, count)');
    expect(await fault({ filters: [{ proto: "sctp" }] })).toBe('trace.set: filters[0].proto must be icmp, tcp, udp or a protocol number, not "sctp"');
    expect(await fault({ filters: [{ proto: 300 }] })).toBe("trace.set: filters[0].proto must be a whole number from 0 to 255, not 300");
    expect(await fault({ filters: [{ src: "10.244.1" }] })).toBe('trace.set: filters[0].src must be an IPv4 address such as "10.244.1.2", not "10.244.1"');
    expect(await fault({ filters: [{ dst: 167772161 }] })).toBe('trace.set: filters[0].dst must be an IPv4 address such as "10.244.1.2", not 167772161');
    expect(await fault({ filters: [{ dport: 65536 }] })).toBe("trace.set: filters[0].dport must be a whole number from 0 to 65535, not 65536");
    expect(await fault({ filters: [{ count: 0 }] })).toBe("trace.set: filters[0].count must be a whole number from 1 to 1000, not 0");
    expect(await fault({ filters: [{ bothWays: "yes" }] })).toBe("trace.set: filters[0].bothWays must be true or false");
    expect(await fault({ filters: [{ proto: "udp" }, { id: -1 }] })).toBe("trace.set: filters[1].id must be a whole number from 0 to 2147483647, not -1");
    expect(armed).toEqual([]);
  });

  it("parseFilter gives each filter its place in the list as id unless it has one", () => {
    expect(parseFilter({}, 3)).toMatchObject({ id: 3, proto: 0, count: 1 });
  });
});

describe("trace.egress", () => {
  it("says the address and device the route to dst leaves by, here; a bad dst is named", async () => {
    const h = traceHandlers({ trace: async () => {}, traceRecords: async () => ({ records: [], lost: 0 }) }, "node1");
    // Loopback: the one route every machine has, and nothing is sent to find it.
    await expect(h["trace.egress"]({ dst: "127.0.0.1" })).resolves.toEqual({ source: "127.0.0.1", dev: "lo" });
    await expect(h["trace.egress"]({ dst: "10.0.0" })).rejects.toThrow(/trace.egress needs dst, an IPv4 address/);
    await expect(h["trace.egress"]({})).rejects.toBeInstanceOf(RpcError);
  });
});

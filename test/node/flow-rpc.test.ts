/**
 * The control socket's conntrack.list and policy.log methods over a switch stand-in that keeps
 * its flows and its log switch as a Switch does: called directly and through a real RpcServer on
 * a socket in a temporary directory (what `tapnet conntrack list` and `tapnet policy log` reach).
 * Bad params get a message naming the field, and leave the switch as it was.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { flowHandlers, type FlowSource } from "../../src/node/flow-rpc.ts";
import { rpcCall, RpcServer } from "../../src/node/rpc.ts";
import type { FlowInfo } from "../../src/switch/conntrack/flow-info.ts";

const FLOW: FlowInfo = {
  protocol: "tcp", proto: 6, state: "established", expiresIn: 86397,
  original: { src: "10.244.1.2", dst: "10.96.0.10", sport: 40000, dport: 80 },
  reply: { src: "10.244.2.3", dst: "10.244.1.2", sport: 8080, dport: 40000 },
  packets: [3, 2], bytes: [180, 120], service: "default/web:80", verdict: "allowed",
};

/** A switch's flows and policy log, as the Switch keeps them. */
class FakeSwitch implements FlowSource {
  table: FlowInfo[] = [FLOW];
  logging = false;
  sets: boolean[] = [];
  async flows(): Promise<FlowInfo[]> {
    return structuredClone(this.table);
  }
  setPolicyLog(on: boolean): void {
    this.sets.push(on);
    this.logging = on;
  }
  get policyLog(): boolean {
    return this.logging;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tapnet-flow-rpc-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("flowHandlers", () => {
  it("lists the switch's flows as it gives them", async () => {
    const sw = new FakeSwitch();
    const h = flowHandlers(sw);
    expect(await h["conntrack.list"]({})).toEqual([FLOW]);
    sw.table = [];
    expect(await h["conntrack.list"]({})).toEqual([]);
  });

  it("turns the policy log on and off, and says how it is when asked with no on", async () => {
    const sw = new FakeSwitch();
    const h = flowHandlers(sw);
    expect(await h["policy.log"]({})).toEqual({ on: false });
    expect(await h["policy.log"]({ on: true })).toEqual({ on: true });
    expect(await h["policy.log"]({})).toEqual({ on: true });
    expect(await h["policy.log"]({ on: false })).toEqual({ on: false });
    expect(sw.sets).toEqual([true, false]);
  });

  it.each([["true"], [1], [null], [{}]])("refuses on: %j, naming the field, and changes nothing", async (on) => {
    const sw = new FakeSwitch();
    await expect(flowHandlers(sw)["policy.log"]({ on })).rejects.toThrow(`policy.log: on must be true or false, not ${JSON.stringify(on)}`);
    expect(sw.sets).toEqual([]);
  });

  it("answers over a control socket", async () => {
    const sw = new FakeSwitch();
    const path = join(dir, "n1.sock");
    const server = await RpcServer.listen(path, flowHandlers(sw));
    try {
      expect(await rpcCall(path, "conntrack.list")).toEqual([FLOW]);
      expect(await rpcCall(path, "policy.log", { on: true })).toEqual({ on: true });
      expect(sw.policyLog).toBe(true);
      await expect(rpcCall(path, "policy.log", { on: "yes" })).rejects.toThrow('on must be true or false, not "yes"');
      expect(sw.policyLog).toBe(true);
    } finally {
      await server.close();
    }
  });
});

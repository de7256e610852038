/**
 * The control socket's methods for the switch's connection tracking (rpc.ts carries them):
 *   conntrack.list {}            → FlowInfo[]: every flow in the switch's table, as it is now
 *   policy.log     {on: boolean} → {on}: start or stop writing denied new flows to the log
 *   policy.log     {}            → {on}: whether it writes them
 * `tapnet conntrack list` and `tapnet policy log` call these. The switch does the work; this
 * file only checks what it is sent, since the socket takes JSON from anyone who can open it.
 */
import type { FlowInfo } from "../switch/conntrack/flow-info.ts";
import { RpcError } from "./rpc.ts";

/** What these methods need of the switch (switch.ts's Switch has it). */
export interface FlowSource {
  flows(): Promise<FlowInfo[]>;
  setPolicyLog(on: boolean): void;
  readonly policyLog: boolean;
}

export function flowHandlers(sw: FlowSource): Record<string, (p: Record<string, unknown>) => Promise<unknown>> {
  return {
    "conntrack.list": async () => sw.flows(),
    "policy.log": async (p) => {
      if (p.on !== undefined) {
        if (typeof p.on !== "boolean") throw new RpcError(`policy.log: on must be true or false, not ${JSON.stringify(p.on)}`);
        sw.setPolicyLog(p.on);
      }
      return { on: sw.policyLog };
    },
  };
}

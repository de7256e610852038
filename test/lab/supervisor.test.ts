// The supervisor's rules, without processes: systemd's start limit (5 within 10 s), how an exit
// is told, its status file read back or refused; and which processes in a lab's namespaces
// `lab down` takes for switches.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeExit, readSupervisorStatus, StartLimit } from "../../src/lab/supervisor.ts";
import { isSwitchCommand } from "../../src/lab/reap.ts";
import { supervisorCommand, supervisorFile } from "../../src/lab/plan.ts";

describe("StartLimit", () => {
  it("allows 5 starts within 10 s, then none until the oldest is 10 s old", () => {
    const l = new StartLimit();
    for (const t of [0, 1000, 2000, 3000, 4000]) expect(l.allow(t)).toBe(true);
    expect(l.allow(9999)).toBe(false);
    expect(l.allow(10_000)).toBe(true); // the start at 0 has left the window
    expect(l.allow(10_500)).toBe(false);
    expect(l.allow(11_000)).toBe(true);
  });

  it("a refused start does not count", () => {
    const l = new StartLimit(2, 100);
    expect([l.allow(0), l.allow(1), l.allow(2), l.allow(3), l.allow(100)]).toEqual([true, true, false, false, true]);
  });
});

describe("the supervisor's status", () => {
  it("tells a kill from an exit", () => {
    expect(describeExit(null, "SIGKILL")).toBe("killed by SIGKILL");
    expect(describeExit(1, null)).toBe("exited with status 1");
  });

  it("reads a status file back, and nothing from one that is missing or not a status", () => {
    const dir = mkdtempSync(join(tmpdir(), "survive-sup-"));
    try {
      const file = join(dir, "node1.supervisor.json");
      expect(readSupervisorStatus(file)).toBeUndefined();
      const s = { pid: 10, node: "node1", state: "running", switch: 11, standby: 12, restarts: 1, updatedAt: "2026-12-03T00:00:00Z" };
      writeFileSync(file, JSON.stringify(s));
      expect(readSupervisorStatus(file)).toEqual(s);
      writeFileSync(file, JSON.stringify({ ...s, switch: "11" }));
      expect(readSupervisorStatus(file)).toBeUndefined();
      writeFileSync(file, "{");
      expect(readSupervisorStatus(file)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lives in the lab's directory; the supervisor runs from the repository's src/lab/supervise.ts", () => {
    expect(supervisorFile("lab1", "node2")).toBe("/run/tapnet/lab1/node2.supervisor.json");
    const cmd = supervisorCommand();
    expect(cmd.at(-1)).toMatch(/\/src\/lab\/supervise\.ts$/);
    expect(cmd.slice(1, 3)).toEqual(["--import", "tsx"]); // on Node
  });
});

describe("isSwitchCommand", () => {
  it("takes tapnet's switch command on Node and on Deno, run by hand or by a supervisor", () => {
    expect(isSwitchCommand(["/usr/bin/node", "/work/main/bin/tapnet.mjs", "switch", "--config", "c.yaml"])).toBe(true);
    expect(isSwitchCommand(["/usr/local/bin/deno", "run", "--allow-all", "/repo/src/cli/main.ts", "switch", "--node", "n1"])).toBe(true);
    expect(isSwitchCommand(["/usr/bin/tapnet", "switch"])).toBe(true);
  });

  it("leaves everything else alone: other tapnet commands, the supervisor, a pod's own programs", () => {
    expect(isSwitchCommand(["node", "bin/tapnet.mjs", "pod", "add", "switch"])).toBe(false); // a pod named switch
    expect(isSwitchCommand(["node", "bin/tapnet.mjs", "lab", "status"])).toBe(false);
    expect(isSwitchCommand(["node", "--import", "tsx", "/repo/src/lab/supervise.ts", "--node", "node1", "--", "nsenter", "--net=/run/netns/x", "--", "node", "bin/tapnet.mjs", "switch"])).toBe(false);
    expect(isSwitchCommand(["iperf3", "-s", "switch"])).toBe(false);
    expect(isSwitchCommand(["/usr/bin/switch", "tapnet.mjs"])).toBe(false);
  });
});

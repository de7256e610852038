import { describe, expect, it } from "vitest";
import { PreflightError, preflight, type Need, type Probe } from "../../src/node/preflight.ts";

/** A machine with everything, less what `missing` names; it records what was asked. */
function fakeProbe(missing: { root?: boolean; tun?: boolean; cmds?: readonly string[] } = {}): Probe & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    uid: () => { asked.push("uid"); return missing.root ? 1000 : 0; },
    canOpen: (path) => { asked.push(`open ${path}`); return !(missing.tun && path === "/dev/net/tun"); },
    which: (cmd) => { asked.push(`which ${cmd}`); return missing.cmds?.includes(cmd) ? undefined : `/usr/bin/${cmd}`; },
  };
}

function preflightError(needs: Need[], probe: Probe): PreflightError {
  try {
    preflight(needs, probe);
  } catch (e) {
    expect(e).toBeInstanceOf(PreflightError);
    return e as PreflightError;
  }
  throw new Error("preflight passed");
}

const ALL: Need[] = ["root", "tun", "ip", "nsenter", "ping", "iperf3"];

describe("preflight", () => {
  it("passes when everything is present, having checked each need", () => {
    const probe = fakeProbe();
    expect(() => preflight(ALL, probe)).not.toThrow();
    expect(probe.asked).toEqual(["uid", "open /dev/net/tun", "which ip", "which nsenter", "which ping", "which iperf3"]);
  });

  it("passes with no needs without probing anything", () => {
    const probe = fakeProbe({ root: true, tun: true, cmds: ["ip", "nsenter", "ping", "iperf3"] });
    expect(() => preflight([], probe)).not.toThrow();
    expect(probe.asked).toEqual([]);
  });

  it.each([
    ["root", { root: true }, [/root/, /sudo/]],
    ["tun", { tun: true }, [/\/dev\/net\/tun/, /modprobe tun/]],
    ["ip", { cmds: ["ip"] }, [/\bip\b.*missing/, /apt-get install iproute2/]],
    ["nsenter", { cmds: ["nsenter"] }, [/\bnsenter\b.*missing/, /apt-get install util-linux/]],
    ["ping", { cmds: ["ping"] }, [/\bping\b.*missing/, /apt-get install iputils-ping/]],
    ["iperf3", { cmds: ["iperf3"] }, [/\biperf3\b.*missing/, /apt-get install iperf3/]],
  ] as const)("a missing %s gives a one-line error naming it and how to get it", (need, missing, patterns) => {
    const err = preflightError(ALL, fakeProbe(missing));
    for (const p of patterns) expect(err.message).toMatch(p);
    expect(err.message).not.toContain("\n");
    // Only the missing need is named: the error is about that one thing.
    expect(preflightError([need], fakeProbe(missing)).message).toBe(err.message);
  });

  it.each([
    ["sockperf", "sockperf"],
    ["ethtool", "ethtool"],
  ] as const)("bench's %s, when missing, is named with its Debian package", (need, pkg) => {
    const err = preflightError(["ip", need], fakeProbe({ cmds: [need] }));
    expect(err.message).toBe(`the ${need} command is missing: install it (apt-get install ${pkg})`);
  });

  it("reports the first missing need in the order the needs are given, and probes no further", () => {
    const everythingMissing = { root: true, tun: true, cmds: ["ip", "nsenter", "ping", "iperf3"] };
    expect(preflightError(ALL, fakeProbe(everythingMissing)).message).toMatch(/root/);
    expect(preflightError(["tun", "root"], fakeProbe(everythingMissing)).message).toMatch(/\/dev\/net\/tun/);
    expect(preflightError(["iperf3", "ip"], fakeProbe(everythingMissing)).message).toMatch(/iperf3/);

    const probe = fakeProbe({ tun: true, cmds: ["ping"] });
    expect(preflightError(ALL, probe).message).toMatch(/\/dev\/net\/tun/);
    expect(probe.asked).toEqual(["uid", "open /dev/net/tun"]);
  });

  it("does not check what is not needed", () => {
    const probe = fakeProbe({ root: true, cmds: ["iperf3"] });
    expect(() => preflight(["tun", "ip", "ping"], probe)).not.toThrow();
    expect(probe.asked).not.toContain("uid");
    expect(probe.asked).not.toContain("which iperf3");
  });
});

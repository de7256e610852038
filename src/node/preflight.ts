/**
 * What tapnet needs from the machine, checked before it touches anything, each failure a
 * one-line message that says what is missing and how to get it.
 */
import { constants, accessSync } from "node:fs";
import { which } from "./exec.ts";

export interface Probe {
  uid(): number;
  canOpen(path: string): boolean;
  which(cmd: string): string | undefined;
}

export const systemProbe: Probe = {
  uid: () => process.getuid?.() ?? -1,
  canOpen: (path) => {
    try { accessSync(path, constants.R_OK | constants.W_OK); return true; } catch { return false; }
  },
  which: (cmd) => which(cmd),
};

export type Need = "root" | "tun" | "ip" | "nsenter" | "ping" | "iperf3" | "nft" | "sockperf" | "ethtool";

const TOOLS: Partial<Record<Need, { cmd: string; pkg: string }>> = {
  ip: { cmd: "ip", pkg: "iproute2" },
  nsenter: { cmd: "nsenter", pkg: "util-linux" },
  ping: { cmd: "ping", pkg: "iputils-ping" },
  iperf3: { cmd: "iperf3", pkg: "iperf3" },
  nft: { cmd: "nft", pkg: "nftables" },
  sockperf: { cmd: "sockperf", pkg: "sockperf" },
  ethtool: { cmd: "ethtool", pkg: "ethtool" },
};

export class PreflightError extends Error {}

/** Throws a PreflightError naming the first thing missing. */
export function preflight(needs: Need[], probe: Probe = systemProbe): void {
  for (const need of needs) {
    if (need === "root") {
      if (probe.uid() !== 0) throw new PreflightError("tapnet must run as root: it creates network namespaces and TAP devices (try sudo)");
    } else if (need === "tun") {
      if (!probe.canOpen("/dev/net/tun")) throw new PreflightError("/dev/net/tun is missing or not accessible: load the tun module (modprobe tun) or run where TUN/TAP devices are allowed");
    } else {
      const t = TOOLS[need]!;
      if (!probe.which(t.cmd)) throw new PreflightError(`the ${t.cmd} command is missing: install it (apt-get install ${t.pkg})`);
    }
  }
}

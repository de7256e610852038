// A lab's secret: every tapnet lab gets its own, in the cluster.yaml its switches read, so a
// lab is sealed as a cluster should be; `insecure` builds one in the clear, on tapnet only.
import { describe, expect, it } from "vitest";
import { checkLabOptions, labConfig, labConfigFile, type LabOptions } from "../../src/lab/plan.ts";
import { checkSealed } from "../../src/node/config.ts";

describe("a lab's secret", () => {
  it("is 32 random bytes in base64, new for each lab, in the config file of either store", () => {
    const a = labConfig(2, "tapnet");
    const b = labConfig(2, "tapnet");
    expect(a.backend.secret).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.backend.secret!, "base64").length).toBe(32);
    expect(b.backend.secret).not.toBe(a.backend.secret);
    for (const store of ["file", "etcd"] as const) expect(labConfigFile(a, store).backend).toEqual({ type: "tapnet", port: 8287, secret: a.backend.secret });
    expect(() => checkSealed(a)).not.toThrow();
  });

  it("is absent on purpose with insecure (backend.insecure: true), and on backends that never seal", () => {
    expect(labConfig(2, "tapnet", true).backend).toEqual({ type: "tapnet", port: 8287, vni: 1, insecure: true });
    expect(labConfig(2, "udp").backend).toEqual({ type: "udp", port: 8285, vni: 1 });
    expect(labConfig(2, "vxlan").backend).toEqual({ type: "vxlan", port: 8472, vni: 1 });
  });

  it("--insecure is for the tapnet mode on a backend that seals", () => {
    const base: LabOptions = { nodes: 2, pods: 1, prefix: "crypto-lab", backend: "tapnet", runtime: "node", insecure: true };
    expect(checkLabOptions(base)).toBe("tapnet");
    expect(() => checkLabOptions({ ...base, backend: "udp" })).toThrow("--insecure is for a backend that seals (tapnet); the udp backend never does");
    expect(() => checkLabOptions({ ...base, backend: "vxlan", mode: "kernel-vxlan" })).toThrow("--insecure is for a backend that seals (tapnet); the kernel-vxlan mode never does");
  });
});

// tapnet bench's setups: their order, labs, prefixes, the +policy twins, and the --setups list.
import { describe, expect, it } from "vitest";
import { BenchError } from "../../src/bench/figures.ts";
import { allSetups, insecureTwin, parseSetups, policyTwin, setupLab, setupPrefix } from "../../src/bench/setups.ts";

describe("setups", () => {
  it("are the reference, the ceiling, then one per backend, in BACKENDS order, the first with its policy twin after it", () => {
    expect(allSetups(["udp", "vxlan"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-udp", "tapnet-udp+policy", "tapnet-vxlan"]);
    expect(allSetups(["fast", "udp"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-fast", "tapnet-fast+policy", "tapnet-udp"]);
  });

  it("map to a lab mode and backend, and +policy to the same lab with the load", () => {
    expect(setupLab("kernel-vxlan")).toEqual({ mode: "kernel-vxlan", backend: "vxlan", policyLoad: false });
    expect(setupLab("host-gw").mode).toBe("host-gw");
    expect(setupLab("tapnet-udp", ["udp", "vxlan"])).toEqual({ mode: "tapnet", backend: "udp", policyLoad: false });
    expect(setupLab("tapnet-vxlan+policy", ["udp", "vxlan"])).toEqual({ mode: "tapnet", backend: "vxlan", policyLoad: true });
    expect(() => setupLab("tapnet-nope", ["udp"])).toThrow(/unknown setup "tapnet-nope" \(known: kernel-vxlan, host-gw, tapnet-udp, tapnet-udp\+policy, and tapnet-<backend>\+policy for every backend\)/);
    expect(() => setupLab("tapnet-nope+policy", ["udp"])).toThrow(/unknown setup "tapnet-nope\+policy"/);
    expect(() => setupLab("kernel-vxlan+policy", ["udp"])).toThrow(/the policy load is for tapnet setups: kernel-vxlan has no switch to enforce it/);
    expect(() => setupLab("host-gw+policy", ["udp"])).toThrow(/host-gw has no switch/);
    expect(() => setupLab("tapnet-udp+policy+policy", ["udp"])).toThrow(BenchError);
  });

  it("a +policy setup's twin is the same setup without the load", () => {
    expect(policyTwin("tapnet-udp+policy")).toBe("tapnet-udp");
    expect(policyTwin("tapnet-udp")).toBeUndefined();
    expect(policyTwin("kernel-vxlan")).toBeUndefined();
  });

  it("get short lab prefixes, and --setups is checked and deduplicated", () => {
    expect(setupPrefix("tapnet-bench", "kernel-vxlan")).toBe("tapnet-bench-kvxlan");
    expect(setupPrefix("tapnet-bench", "host-gw")).toBe("tapnet-bench-hostgw");
    expect(setupPrefix("tapnet-bench", "tapnet-vxlan")).toBe("tapnet-bench-vxlan");
    expect(setupPrefix("tapnet-bench", "tapnet-vxlan+policy")).toBe("tapnet-bench-vxlan-pol");
    expect(new Set(allSetups(["tapnet", "udp", "vxlan"]).map((s) => setupPrefix("p", s))).size).toBe(7);
    expect(parseSetups("kernel-vxlan, tapnet-udp,kernel-vxlan", ["udp"])).toEqual(["kernel-vxlan", "tapnet-udp"]);
    expect(() => parseSetups(",", ["udp"])).toThrow(BenchError);
    expect(() => parseSetups("kernel", ["udp"])).toThrow(/unknown setup "kernel"/);
  });

  it("--setups brings a +policy setup's twin along, right before it, unless it is listed", () => {
    expect(parseSetups("tapnet-udp+policy", ["udp"])).toEqual(["tapnet-udp", "tapnet-udp+policy"]);
    expect(parseSetups("kernel-vxlan,tapnet-vxlan+policy,tapnet-udp+policy", ["udp", "vxlan"])).toEqual(["kernel-vxlan", "tapnet-vxlan", "tapnet-vxlan+policy", "tapnet-udp", "tapnet-udp+policy"]);
    expect(parseSetups("tapnet-udp+policy,kernel-vxlan,tapnet-udp", ["udp"])).toEqual(["tapnet-udp+policy", "kernel-vxlan", "tapnet-udp"]);
    expect(parseSetups("tapnet-udp+policy,tapnet-udp+policy", ["udp"])).toEqual(["tapnet-udp", "tapnet-udp+policy"]);
    expect(() => parseSetups("tapnet-udp,kernel-vxlan+policy", ["udp"])).toThrow(/no switch to enforce it/);
  });

  it("a backend that seals has its insecure twin, the same lab in the clear, right after it", () => {
    expect(allSetups(["tapnet", "udp", "vxlan"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-tapnet", "tapnet-tapnet+insecure", "tapnet-tapnet+policy", "tapnet-udp", "tapnet-vxlan"]);
    expect(allSetups(["udp", "fast"], (b) => b === "fast")).toEqual(["kernel-vxlan", "host-gw", "tapnet-udp", "tapnet-udp+policy", "tapnet-fast", "tapnet-fast+insecure"]);
    expect(setupLab("tapnet-tapnet+insecure")).toEqual({ mode: "tapnet", backend: "tapnet", policyLoad: false, insecure: true });
    expect(setupLab("tapnet-tapnet")).toEqual({ mode: "tapnet", backend: "tapnet", policyLoad: false });
    expect(insecureTwin("tapnet-tapnet+insecure")).toBe("tapnet-tapnet");
    expect(insecureTwin("tapnet-tapnet")).toBeUndefined();
    expect(setupPrefix("tapnet-bench", "tapnet-tapnet+insecure")).toBe("tapnet-bench-tapnet-ins");
    expect(parseSetups("tapnet-tapnet+insecure,tapnet-tapnet")).toEqual(["tapnet-tapnet+insecure", "tapnet-tapnet"]);
    for (const bad of ["tapnet-udp+insecure", "tapnet-nope+insecure", "kernel-vxlan+insecure", "tapnet-tapnet+policy+insecure", "tapnet-tapnet+insecure+insecure"]) {
      expect(() => setupLab(bad), bad).toThrow(`unknown setup "${bad}" (+insecure is for tapnet-<backend> of a backend that seals: tapnet-tapnet)`);
    }
    expect(() => setupLab("tapnet-tapnet+insecure+policy")).toThrow(BenchError);
  });
});

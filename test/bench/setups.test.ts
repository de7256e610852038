// tapnet bench's setups: their order, labs, prefixes, and the --setups list.
import { describe, expect, it } from "vitest";
import { BenchError } from "../../src/bench/figures.ts";
import { allSetups, parseSetups, setupLab, setupPrefix } from "../../src/bench/setups.ts";

describe("setups", () => {
  it("are the reference, the ceiling, then one per backend, in BACKENDS order", () => {
    expect(allSetups(["udp", "vxlan"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-udp", "tapnet-vxlan"]);
    expect(allSetups(["fast", "udp"])).toEqual(["kernel-vxlan", "host-gw", "tapnet-fast", "tapnet-udp"]);
  });

  it("map to a lab mode and backend", () => {
    expect(setupLab("kernel-vxlan")).toEqual({ mode: "kernel-vxlan", backend: "vxlan" });
    expect(setupLab("host-gw").mode).toBe("host-gw");
    expect(setupLab("tapnet-udp", ["udp", "vxlan"])).toEqual({ mode: "tapnet", backend: "udp" });
    expect(() => setupLab("tapnet-nope", ["udp"])).toThrow(/unknown setup "tapnet-nope" \(known: kernel-vxlan, host-gw, tapnet-udp\)/);
  });

  it("get short lab prefixes, and --setups is checked and deduplicated", () => {
    expect(setupPrefix("tapnet-bench", "kernel-vxlan")).toBe("tapnet-bench-kvxlan");
    expect(setupPrefix("tapnet-bench", "host-gw")).toBe("tapnet-bench-hostgw");
    expect(setupPrefix("tapnet-bench", "tapnet-vxlan")).toBe("tapnet-bench-vxlan");
    expect(parseSetups("kernel-vxlan, tapnet-udp,kernel-vxlan", ["udp"])).toEqual(["kernel-vxlan", "tapnet-udp"]);
    expect(() => parseSetups(",", ["udp"])).toThrow(BenchError);
    expect(() => parseSetups("kernel", ["udp"])).toThrow(/unknown setup "kernel"/);
  });
});

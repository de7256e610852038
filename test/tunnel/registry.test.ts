// tunnel/index.ts: the backends' registry, by name.
import { describe, expect, it } from "vitest";
import { backend, backendNames, defaultBackend, findBackend, registerBackend, type BackendInfo } from "../../src/tunnel/index.ts";
import { TapnetBackend, tapnetGsoMaxSize } from "../../src/tunnel/tapnet.ts";
import { UdpBackend } from "../../src/tunnel/udp.ts";
import { VxlanBackend } from "../../src/tunnel/vxlan.ts";
import { testContext } from "../support/tunnel.ts";

describe("the backends' registry", () => {
  it("has tapnet, udp and vxlan, tapnet first: the default", () => {
    expect(backendNames().slice(0, 3)).toEqual(["tapnet", "udp", "vxlan"]);
    expect(defaultBackend()).toBe("tapnet");
  });

  it("gives each backend's port, what its headers cost the pods' MTU, and whether it takes a VNI", () => {
    const info = (name: string) => {
      const b = backend(name);
      return { name: b.name, port: b.port, overhead: b.overhead, vni: b.vni, cap: b.superFrameCap !== undefined };
    };
    expect(["tapnet", "udp", "vxlan"].map(info)).toEqual([
      { name: "tapnet", port: 8287, overhead: 0, vni: false, cap: true },
      { name: "udp", port: 8285, overhead: 28, vni: false, cap: false },
      { name: "vxlan", port: 8472, overhead: 50, vni: true, cap: false },
    ]);
    for (const name of backendNames()) expect(backend(name).about.length, name).toBeGreaterThan(10);
  });

  it("tapnet caps the pods' super-frames at what one UDP_SEGMENT send carries", () => {
    expect(backend("tapnet").superFrameCap).toBe(tapnetGsoMaxSize);
    expect(backend("tapnet").superFrameCap!(1472)).toBe(tapnetGsoMaxSize(1472));
  });

  it("makes each backend from a context", () => {
    const { ctx } = testContext();
    expect(backend("tapnet").create(ctx)).toBeInstanceOf(TapnetBackend);
    expect(backend("udp").create(ctx)).toBeInstanceOf(UdpBackend);
    expect(backend("vxlan").create(ctx)).toBeInstanceOf(VxlanBackend);
    expect(["tapnet", "udp", "vxlan"].map((n) => backend(n).create(ctx).name)).toEqual(["tapnet", "udp", "vxlan"]);
  });

  it("an unknown name: findBackend says undefined, backend throws naming the ones there are", () => {
    expect(findBackend("gre")).toBeUndefined();
    expect(findBackend("UDP")).toBeUndefined();
    expect(() => backend("gre")).toThrow(new Error(`unknown backend "gre" (known: ${backendNames().join(", ")})`));
    expect(() => backend("")).toThrow(/^unknown backend "" \(known: tapnet, udp, vxlan/);
  });

  it("a backend registered later comes after the others, is found by name, and leaves the default alone", () => {
    const extra: BackendInfo = { ...backend("udp"), name: "registry-test", port: 9999, about: "a test's" };
    const before = backendNames();
    registerBackend(extra);
    expect(backendNames()).toEqual([...before, "registry-test"]);
    expect(backend("registry-test")).toBe(extra);
    expect(findBackend("registry-test")).toBe(extra);
    expect(defaultBackend()).toBe("tapnet");
  });

  it("refuses a name registered already, and keeps the first", () => {
    const udp = backend("udp");
    expect(() => registerBackend({ ...udp, port: 1 })).toThrow(new Error("backend udp is registered already"));
    expect(backend("udp")).toBe(udp);
    expect(backend("udp").port).toBe(8285);
  });
});

// The plugin's commands against a switch model listening on a real control socket (the rpc
// protocol of src/node/rpc.ts), with the namespaces described by an in-memory probe.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runPlugin, type PluginDeps } from "../../src/cni/plugin.ts";
import type { NetnsProbe, NsLink } from "../../src/cni/netns.ts";
import { rpcCall, RpcServer } from "../../src/node/rpc.ts";

const dir = mkdtempSync(join(tmpdir(), "tapnet-cni-"));
const socket = join(dir, "n1.sock");

/** The switch as the contract describes it: attachments by containerId/ifname, addresses from 10.244.1.0/24. */
class SwitchModel {
  attached = new Map<string, { ifname: string; mac: string; sandbox: string; ip: string; prefix: number; gateway: string; mtu: number }>();
  calls: { method: string; params: Record<string, unknown> }[] = [];
  failNext = "";
  ready = true;

  handlers(): Record<string, (p: Record<string, unknown>) => unknown> {
    const rec = (method: string, p: Record<string, unknown>) => {
      this.calls.push({ method, params: p });
      if (this.failNext) {
        const m = this.failNext;
        this.failNext = "";
        throw new Error(m);
      }
    };
    return {
      "cni.add": (p) => {
        rec("cni.add", p);
        const key = `${p.containerId}/${p.ifname}`;
        const had = this.attached.get(key);
        if (had) return had;
        const n = this.attached.size + 2;
        const a = { ifname: String(p.ifname), mac: `0a:58:0a:f4:01:${n.toString(16).padStart(2, "0")}`, sandbox: String(p.netns), ip: `10.244.1.${n}`, prefix: 24, gateway: "10.244.1.1", mtu: 1500 };
        this.attached.set(key, a);
        return a;
      },
      "cni.del": (p) => {
        rec("cni.del", p);
        return { removed: this.attached.delete(`${p.containerId}/${p.ifname}`) };
      },
      "cni.check": (p) => {
        rec("cni.check", p);
        const a = this.attached.get(`${p.containerId}/${p.ifname}`);
        if (!a) throw new Error(`no attachment ${p.containerId}/${p.ifname}`);
        return a;
      },
      "cni.gc": (p) => {
        rec("cni.gc", p);
        const valid = new Set((p.valid as { containerId: string; ifname: string }[]).map((v) => `${v.containerId}/${v.ifname}`));
        const removed = [...this.attached.keys()].filter((k) => !valid.has(k));
        for (const k of removed) this.attached.delete(k);
        return { removed: removed.map((k) => ({ containerId: k.split("/")[0], ifname: k.split("/")[1] })) };
      },
      "cni.status": (p) => {
        rec("cni.status", p);
        return { ready: this.ready, node: "n1", podCidr: "10.244.1.0/24" };
      },
    };
  }
}

/** Namespaces as the probe sees them: path → interfaces and default gateways. */
const namespaces = new Map<string, { links: NsLink[]; gateways: string[] }>();
const probe: NetnsProbe = {
  async link(netns, ifname) {
    const ns = namespaces.get(netns);
    if (!ns) throw new Error(`cannot look into ${netns}: No such file or directory`);
    return ns.links.find((l) => l.ifname === ifname);
  },
  async defaultGateways(netns) {
    return namespaces.get(netns)?.gateways ?? [];
  },
};

const model = new SwitchModel();
let server: RpcServer;
const deps: PluginDeps = { call: rpcCall, probe };
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.1.0", name: "tapnet", type: "tapnet", socket, ...extra });
const envOf = (command: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: command, CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/c1", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin", ...extra,
});
const json = (s: string) => JSON.parse(s) as Record<string, unknown>;

beforeAll(async () => {
  server = await RpcServer.listen(socket, model.handlers());
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  model.attached.clear();
  model.calls = [];
  model.ready = true;
  namespaces.clear();
});

describe("VERSION", () => {
  it("lists the versions it speaks, in the version asked", async () => {
    const r = await runPlugin({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}', deps);
    expect([r.code, json(r.stdout)]).toEqual([0, { cniVersion: "1.0.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] }]);
    expect(json((await runPlugin({ CNI_COMMAND: "VERSION" }, "", deps)).stdout).cniVersion).toBe("1.1.0");
  });
});

describe("ADD", () => {
  it("asks the switch with the pod's name and namespace from CNI_ARGS, and prints the result", async () => {
    const r = await runPlugin(envOf("ADD", { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=blue" }), conf({ dns: { nameservers: ["10.96.0.10"] } }), deps);
    expect(r.code, r.stdout).toBe(0);
    expect(model.calls).toEqual([{ method: "cni.add", params: { containerId: "c1", netns: "/run/netns/c1", ifname: "eth0", podName: "web", podNamespace: "blue" } }]);
    expect(json(r.stdout)).toEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:01:02", mtu: 1500, sandbox: "/run/netns/c1" }],
      ips: [{ address: "10.244.1.2/24", gateway: "10.244.1.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
      dns: { nameservers: ["10.96.0.10"] },
    });
  });

  it("answers in the config's version, and appends to a previous plugin's result", async () => {
    const prevResult = { cniVersion: "0.3.1", interfaces: [{ name: "lo0" }], ips: [{ version: "4", address: "127.0.0.2/8", interface: 0 }] };
    const r = await runPlugin(envOf("ADD"), conf({ cniVersion: "0.3.1", prevResult }), deps);
    expect(json(r.stdout)).toEqual({
      cniVersion: "0.3.1",
      interfaces: [{ name: "lo0" }, { name: "eth0", mac: "0a:58:0a:f4:01:02", sandbox: "/run/netns/c1" }],
      ips: [{ version: "4", address: "127.0.0.2/8", interface: 0 }, { version: "4", address: "10.244.1.2/24", gateway: "10.244.1.1", interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
    });
  });

  it("maps the switch's coded refusals to clear errors", async () => {
    const cases: [string, number, string][] = [
      ["EXHAUSTED: no free address in 10.244.1.0/24", 999, "no address left in the node's pod CIDR"],
      ["IFNAME_TAKEN: eth0 exists in /run/netns/c1", 999, "interface name eth0 is already taken in the container"],
      ["NETNS: /run/netns/c1 is not a network namespace", 999, "/run/netns/c1 is not a network namespace (gone?)"],
      ["10.244.1.9 is already in use", 999, "the tapnet switch refused cni.add: 10.244.1.9 is already in use"],
    ];
    for (const [m, code, msg] of cases) {
      model.failNext = m;
      const r = await runPlugin(envOf("ADD"), conf({ cniVersion: "1.0.0" }), deps);
      expect(r.code).toBe(1);
      expect(json(r.stdout)).toMatchObject({ cniVersion: "1.0.0", code, msg });
    }
    model.failNext = "EXHAUSTED: none left";
    expect(json((await runPlugin(envOf("ADD"), conf(), deps)).stdout).details).toBe("EXHAUSTED: none left");
  });

  it("says try again later (11) when no switch runs, or one closes without answering", async () => {
    const none = await runPlugin(envOf("ADD"), conf({ socket: join(dir, "nobody.sock") }), deps);
    expect(none.code).toBe(1);
    expect(json(none.stdout)).toMatchObject({ code: 11, msg: "try again later: the tapnet switch is not running" });
    const rude: Server = createServer((s) => s.destroy());
    const rudePath = join(dir, "rude.sock");
    await new Promise<void>((res) => rude.listen(rudePath, res));
    try {
      expect(json((await runPlugin(envOf("ADD"), conf({ socket: rudePath }), deps)).stdout).code).toBe(11);
    } finally {
      await new Promise((res) => rude.close(res));
    }
  });

  it("refuses bad environment and config with the spec's codes, in the config's version", async () => {
    const noNetns = await runPlugin({ ...envOf("ADD"), CNI_NETNS: "" }, conf({ cniVersion: "0.4.0" }), deps);
    expect(json(noNetns.stdout)).toEqual({ cniVersion: "0.4.0", code: 4, msg: "required environment variables missing: CNI_NETNS", details: "CNI_COMMAND=ADD needs CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME" });
    expect(json((await runPlugin(envOf("ADD"), conf({ socket: undefined }), deps)).stdout)).toMatchObject({ code: 7, msg: "socket: missing" });
    expect(json((await runPlugin(envOf("ADD"), "not json", deps)).stdout)).toMatchObject({ cniVersion: "1.1.0", code: 6 });
    expect(json((await runPlugin(envOf("ADD"), conf({ cniVersion: "0.2.0" }), deps)).stdout)).toMatchObject({ cniVersion: "1.1.0", code: 1 });
    expect(model.calls).toEqual([]);
  });
});

describe("DEL", () => {
  it("frees the attachment, and succeeds again when it is gone or its namespace is", async () => {
    await runPlugin(envOf("ADD"), conf(), deps);
    const first = await runPlugin(envOf("DEL", { CNI_NETNS: "" }), conf(), deps);
    expect([first.code, first.stdout]).toEqual([0, ""]);
    expect(model.attached.size).toBe(0);
    expect(model.calls.at(-1)).toEqual({ method: "cni.del", params: { containerId: "c1", ifname: "eth0" } });
    const again = await runPlugin(envOf("DEL"), conf(), deps);
    expect([again.code, again.stdout]).toEqual([0, ""]);
    expect(again.stderr).toContain("nothing to do");
    model.failNext = "NETNS: /run/netns/c1 is gone";
    expect((await runPlugin(envOf("DEL"), conf(), deps)).code).toBe(0);
  });

  it("says try again later when the switch is not running, and fails on other refusals", async () => {
    expect(json((await runPlugin(envOf("DEL"), conf({ socket: join(dir, "nobody.sock") }), deps)).stdout)).toMatchObject({ code: 11 });
    model.failNext = "store unreachable";
    expect(json((await runPlugin(envOf("DEL"), conf(), deps)).stdout)).toMatchObject({ code: 999, msg: "the tapnet switch refused cni.del: store unreachable" });
  });
});

describe("CHECK", () => {
  async function added(): Promise<Record<string, unknown>> {
    const r = await runPlugin(envOf("ADD"), conf(), deps);
    const res = json(r.stdout);
    namespaces.set("/run/netns/c1", { links: [{ ifname: "eth0", mac: "0A:58:0A:F4:01:02", up: true, addresses: ["10.244.1.2/24"] }], gateways: ["10.244.1.1"] });
    return res;
  }

  it("passes when the switch and the namespace match prevResult", async () => {
    const prevResult = await added();
    const r = await runPlugin(envOf("CHECK"), conf({ prevResult }), deps);
    expect([r.code, r.stdout]).toEqual([0, ""]);
    expect(model.calls.at(-1)).toEqual({ method: "cni.check", params: { containerId: "c1", ifname: "eth0", netns: "/run/netns/c1" } });
  });

  it("fails on each mismatch, naming it", async () => {
    const prevResult = await added();
    const fail = async (pr: unknown) => json((await runPlugin(envOf("CHECK"), conf({ prevResult: pr }), deps)).stdout);
    const ns = namespaces.get("/run/netns/c1")!;
    expect(await fail({ ...prevResult, ips: [{ address: "10.244.1.9/24", gateway: "10.244.1.1", interface: 0 }] }))
      .toMatchObject({ code: 999, msg: "the switch has 10.244.1.2/24 for c1/eth0, prevResult says 10.244.1.9/24" });
    expect(await fail({ ...prevResult, interfaces: [{ name: "eth1", sandbox: "/run/netns/c1" }] })).toMatchObject({ msg: "prevResult has no interface eth0 in /run/netns/c1" });
    ns.links[0].mac = "02:00:00:00:00:99";
    expect(await fail(prevResult)).toMatchObject({ msg: "eth0 in /run/netns/c1 has MAC 02:00:00:00:00:99, prevResult says 0a:58:0a:f4:01:02" });
    ns.links[0].mac = "0a:58:0a:f4:01:02";
    ns.gateways = [];
    expect(await fail(prevResult)).toMatchObject({ msg: "/run/netns/c1 has no default route via 10.244.1.1 (default via none)" });
    ns.gateways = ["10.244.1.1"];
    ns.links[0].addresses = [];
    expect(await fail(prevResult)).toMatchObject({ msg: "eth0 in /run/netns/c1 does not hold 10.244.1.2/24 (it has no IPv4 address)" });
    ns.links[0].up = false;
    expect(await fail(prevResult)).toMatchObject({ msg: "eth0 in /run/netns/c1 is down" });
    ns.links = [];
    expect(await fail(prevResult)).toMatchObject({ msg: "eth0 is missing in /run/netns/c1" });
    namespaces.clear();
    expect(await fail(prevResult)).toMatchObject({ msg: "cannot look into /run/netns/c1: No such file or directory" });
    model.attached.clear();
    expect(await fail(prevResult)).toMatchObject({ code: 999, msg: "the tapnet switch refused cni.check: no attachment c1/eth0" });
  });

  it("needs prevResult and a config version of 0.4.0 or later", async () => {
    expect(json((await runPlugin(envOf("CHECK"), conf(), deps)).stdout)).toMatchObject({ code: 7, msg: "prevResult: missing" });
    expect(json((await runPlugin(envOf("CHECK"), conf({ cniVersion: "0.3.1" }), deps)).stdout)).toMatchObject({ code: 1, msg: "config version does not allow CHECK" });
  });
});

describe("STATUS", () => {
  it("succeeds when the switch is ready, else 50", async () => {
    const r = await runPlugin({ CNI_COMMAND: "STATUS" }, conf(), deps);
    expect([r.code, r.stdout]).toEqual([0, ""]);
    model.ready = false;
    expect(json((await runPlugin({ CNI_COMMAND: "STATUS" }, conf(), deps)).stdout)).toMatchObject({ code: 50, msg: "the plugin is not available: the tapnet switch is not ready" });
    const none = json((await runPlugin({ CNI_COMMAND: "STATUS" }, conf({ socket: join(dir, "nobody.sock") }), deps)).stdout);
    expect(none).toMatchObject({ code: 50, msg: "the plugin is not available: the tapnet switch does not answer" });
    expect(none.details).toContain("nobody.sock");
    expect(json((await runPlugin({ CNI_COMMAND: "STATUS" }, conf({ cniVersion: "1.0.0" }), deps)).stdout)).toMatchObject({ code: 1, msg: "config version does not allow STATUS" });
  });
});

describe("GC", () => {
  it("hands the switch the valid attachments and reports what it removed", async () => {
    for (const id of ["a", "b", "c"]) await runPlugin(envOf("ADD", { CNI_CONTAINERID: id }), conf(), deps);
    const r = await runPlugin({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, conf({ "cni.dev/valid-attachments": [{ containerID: "b", ifname: "eth0" }] }), deps);
    expect([r.code, r.stdout]).toEqual([0, ""]);
    expect(r.stderr).toBe("tapnet: GC removed a/eth0, c/eth0\n");
    expect(model.calls.at(-1)).toEqual({ method: "cni.gc", params: { valid: [{ containerId: "b", ifname: "eth0" }] } });
    expect([...model.attached.keys()]).toEqual(["b/eth0"]);
    expect(json((await runPlugin({ CNI_COMMAND: "GC" }, conf({ cniVersion: "1.0.0" }), deps)).stdout)).toMatchObject({ code: 1, msg: "config version does not allow GC" });
  });
});

// The CNI spec as the plugin reads and writes it: environment, config, prevResult, result shapes per version.
import { describe, expect, it } from "vitest";
import {
  addResult, CniError, CODE, errorResult, parseArgs, parseConfig, parsePrevResult, readEnv, resultFor, versionAtLeast, type Attachment,
} from "../../src/cni/spec.ts";

const att: Attachment = { ifname: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/run/netns/c1", ip: "10.244.1.5", prefix: 24, gateway: "10.244.1.1", mtu: 1500 };
const env = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c0ffee", CNI_NETNS: "/run/netns/c1", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin:/usr/lib/cni" };
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.1.0", name: "tapnet", type: "tapnet", socket: "/run/tapnet/n1.sock", ...extra });

/** The CniError `f` throws; fails if it throws nothing or something else. */
function refusal(f: () => unknown): CniError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("accepted");
}

describe("the environment", () => {
  it("reads what ADD needs, the path and CNI_ARGS", () => {
    const e = readEnv({ ...env, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=blue" });
    expect(e).toEqual({ command: "ADD", containerId: "c0ffee", netns: "/run/netns/c1", ifname: "eth0", path: ["/opt/cni/bin", "/usr/lib/cni"],
      args: { IgnoreUnknown: "1", K8S_POD_NAME: "web", K8S_POD_NAMESPACE: "blue" } });
  });

  it("names every missing variable, per command, with code 4", () => {
    const add = refusal(() => readEnv({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c" }));
    expect([add.code, add.message]).toEqual([4, "required environment variables missing: CNI_NETNS, CNI_IFNAME"]);
    const check = refusal(() => readEnv({ CNI_COMMAND: "CHECK", CNI_NETNS: "/x", CNI_IFNAME: "eth0" }));
    expect(check.message).toBe("required environment variables missing: CNI_CONTAINERID");
    // DEL needs no namespace: it may be gone already.
    expect(readEnv({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c", CNI_IFNAME: "eth0" }).netns).toBe("");
    expect(refusal(() => readEnv({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c" })).message).toBe("required environment variables missing: CNI_IFNAME");
    expect(readEnv({ CNI_COMMAND: "STATUS" }).command).toBe("STATUS");
    expect(readEnv({ CNI_COMMAND: "GC" }).command).toBe("GC");
    expect(refusal(() => readEnv({})).message).toBe("required environment variables missing: CNI_COMMAND");
    const bad = refusal(() => readEnv({ CNI_COMMAND: "ATTACH" }));
    expect([bad.code, bad.message]).toEqual([4, "unknown CNI_COMMAND: ATTACH"]);
  });

  it("refuses container IDs and interface names the spec and Linux refuse", () => {
    for (const id of ["-abc", "a b", "a/b", "ä"]) expect(refusal(() => readEnv({ ...env, CNI_CONTAINERID: id })).code).toBe(4);
    expect(readEnv({ ...env, CNI_CONTAINERID: "A1_b.c-d" }).containerId).toBe("A1_b.c-d");
    for (const name of ["a23456789012345x", ".", "..", "eth/0", "eth:0", "eth 0"]) {
      const e = refusal(() => readEnv({ ...env, CNI_IFNAME: name }));
      expect([e.code, e.message]).toEqual([4, `invalid CNI_IFNAME ${JSON.stringify(name)}`]);
    }
    expect(readEnv({ ...env, CNI_IFNAME: "a23456789012345" }).ifname).toBe("a23456789012345");
  });

  it("reads CNI_ARGS as KEY=VALUE;… and refuses a pair without =", () => {
    expect(parseArgs("A=1;B=x=y;;C=")).toEqual({ A: "1", B: "x=y", C: "" });
    expect(parseArgs("")).toEqual({});
    const e = refusal(() => parseArgs("A=1;junk"));
    expect([e.code, e.message]).toEqual([4, "invalid CNI_ARGS"]);
    expect(e.details).toContain('"junk"');
  });
});

describe("the network config", () => {
  it("reads cniVersion, name, type, socket and dns", () => {
    expect(parseConfig(conf({ dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], domain: "cluster.local", options: ["ndots:5"] } }), "ADD")).toEqual({
      cniVersion: "1.1.0", name: "tapnet", type: "tapnet", socket: "/run/tapnet/n1.sock",
      dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], domain: "cluster.local", options: ["ndots:5"] },
    });
  });

  it("gives each fault its code: 6 not JSON, 1 version, 7 invalid, 2 ipam", () => {
    const cases: [string, number, string][] = [
      ["{", 6, "the network config on stdin is not JSON"],
      ["[1]", 6, "the network config on stdin is not a JSON object"],
      ["", 6, "the network config on stdin is not JSON"],
      [conf({ cniVersion: "0.2.0" }), 1, "incompatible CNI versions"],
      [conf({ cniVersion: "2.0.0" }), 1, "incompatible CNI versions"],
      [conf({ cniVersion: undefined }), 7, "cniVersion: missing"],
      [conf({ name: undefined }), 7, "name: missing"],
      [conf({ name: "-x" }), 7, "name: invalid network name"],
      [conf({ type: undefined }), 7, "type: missing"],
      [conf({ socket: undefined }), 7, "socket: missing"],
      [conf({ socket: "run/x.sock" }), 7, 'socket: "run/x.sock" is not an absolute path'],
      [conf({ dns: ["8.8.8.8"] }), 7, "dns: not an object"],
      [conf({ dns: { nameservers: "8.8.8.8" } }), 7, "dns.nameservers: not a list of strings"],
      [conf({ dns: { domain: 5 } }), 7, "dns.domain: not a string"],
      [conf({ ipam: { type: "host-local" } }), 2, 'unsupported field ipam: {"type":"host-local"}'],
      [conf({ prevResult: { ips: [{ address: "10.1.2.3" }] } }), 7, "prevResult.ips[0].address: not an address in CIDR notation"],
      [conf({ prevResult: { interfaces: [{}] } }), 7, "prevResult.interfaces[0].name: missing"],
      [conf({ prevResult: { ips: [{ address: "10.1.2.3/24", interface: 0 }] } }), 7, "prevResult.ips[0].interface: not an index into interfaces"],
      [conf({ prevResult: { routes: {} } }), 7, "prevResult.routes: not a list of objects"],
    ];
    for (const [text, code, msg] of cases) {
      const e = refusal(() => parseConfig(text, "ADD"));
      expect([e.code, e.message], text).toEqual([code, msg]);
    }
    expect(refusal(() => parseConfig(conf({ cniVersion: "0.2.0" }), "ADD")).details).toBe('config is "0.2.0", plugin supports ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]');
  });

  it("reads GC's valid attachments and refuses malformed ones", () => {
    const c = parseConfig(conf({ "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }] }), "GC");
    expect(c.validAttachments).toEqual([{ containerID: "a", ifname: "eth0" }]);
    expect(parseConfig(conf(), "GC").validAttachments).toEqual([]);
    expect(refusal(() => parseConfig(conf({ "cni.dev/valid-attachments": [{ containerId: "a", ifname: "eth0" }] }), "GC")).message)
      .toBe('cni.dev/valid-attachments[0]: not {"containerID": ..., "ifname": ...}');
  });

  it("reads a prevResult of any version into the 1.1.0 shape, keeping fields it does not know", () => {
    const prev = parsePrevResult({ cniVersion: "0.4.0", interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/x" }],
      ips: [{ version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1", interface: 0 }], routes: [{ dst: "0.0.0.0/0" }], extra: 1 });
    expect(prev).toEqual({ extra: 1, interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/x" }], ips: [{ address: "10.1.0.5/16", gateway: "10.1.0.1", interface: 0 }], routes: [{ dst: "0.0.0.0/0" }] });
    expect(parsePrevResult({})).toEqual({ interfaces: [], ips: [], routes: [] });
  });
});

describe("results in each version's shape (golden JSON)", () => {
  const r = addResult(att, "/run/netns/c1", { nameservers: ["10.96.0.10"] });

  it("1.1.0: the interface's mtu, ips without version", () => {
    expect(JSON.stringify(resultFor("1.1.0", r))).toBe(
      '{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","mtu":1500,"sandbox":"/run/netns/c1"}],' +
      '"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{"nameservers":["10.96.0.10"]}}');
  });

  it("1.0.0: no interface mtu", () => {
    expect(JSON.stringify(resultFor("1.0.0", r))).toBe(
      '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/c1"}],' +
      '"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{"nameservers":["10.96.0.10"]}}');
  });

  it("0.4.0, 0.3.1, 0.3.0: ips with version \"4\"", () => {
    for (const v of ["0.4.0", "0.3.1", "0.3.0"]) {
      expect(JSON.stringify(resultFor(v, r))).toBe(
        `{"cniVersion":"${v}","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/c1"}],` +
        '"ips":[{"version":"4","address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{"nameservers":["10.96.0.10"]}}');
    }
  });

  it("leaves dns out when the config has none, and takes the sandbox from CNI_NETNS", () => {
    const plain = resultFor("1.1.0", addResult({ ...att, sandbox: "/proc/1/ns/net" }, "/run/netns/c1", undefined));
    expect(plain).not.toHaveProperty("dns");
    expect((plain.interfaces as { sandbox: string }[])[0].sandbox).toBe("/run/netns/c1");
  });

  it("after a previous plugin: appends its interface, ip (indexed) and route, keeps the previous dns", () => {
    const prev = parsePrevResult({ interfaces: [{ name: "host0", mac: "02:00:00:00:00:01" }, { name: "net1", mac: "02:00:00:00:00:02", sandbox: "/run/netns/c1" }],
      ips: [{ address: "192.168.9.2/24", interface: 1 }, { address: "fd00::2/64", interface: 1 }], routes: [{ dst: "192.168.0.0/16", mtu: 1400 }], dns: { nameservers: ["1.1.1.1"] } });
    const m = resultFor("0.4.0", addResult(att, "/run/netns/c1", { nameservers: ["10.96.0.10"] }, prev));
    expect(m).toEqual({
      cniVersion: "0.4.0",
      interfaces: [{ name: "host0", mac: "02:00:00:00:00:01" }, { name: "net1", mac: "02:00:00:00:00:02", sandbox: "/run/netns/c1" }, { name: "eth0", mac: att.mac, sandbox: "/run/netns/c1" }],
      ips: [{ version: "4", address: "192.168.9.2/24", interface: 1 }, { version: "6", address: "fd00::2/64", interface: 1 }, { version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 2 }],
      routes: [{ dst: "192.168.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.244.1.1" }],
      dns: { nameservers: ["1.1.1.1"] },
    });
    // A previous result without dns takes the config's.
    expect(resultFor("1.1.0", addResult(att, "/x", { search: ["a"] }, parsePrevResult({}))).dns).toEqual({ search: ["a"] });
  });
});

describe("errors and versions", () => {
  it("writes the spec's error object, details only when there are some", () => {
    expect(errorResult("1.0.0", new CniError(CODE.TRY_AGAIN_LATER, "try again later", "why"))).toEqual({ cniVersion: "1.0.0", code: 11, msg: "try again later", details: "why" });
    expect(JSON.stringify(errorResult("1.1.0", new CniError(7, "bad")))).toBe('{"cniVersion":"1.1.0","code":7,"msg":"bad"}');
  });

  it("orders versions as semver does", () => {
    expect(versionAtLeast("1.1.0", "1.0.0")).toBe(true);
    expect(versionAtLeast("0.4.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("0.3.1", "0.4.0")).toBe(false);
    expect(versionAtLeast("0.10.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("1.0.0", "1.1.0")).toBe(false);
  });
});

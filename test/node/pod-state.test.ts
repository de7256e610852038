// The agent's pod file: what a switch writes for the one that takes its pods over. Written and
// read back whole; anything broken in it (a file cut short, an entry written by hand) is left
// out with a message naming the entry and the field, never thrown and never half-taken.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readPodFile, removePodFile, savedPod, savedPodProblem, writePodFile, type SavedPod } from "../../src/node/pod-state.ts";
import { nodeFiles } from "../../src/node/node-lock.ts";
import { checkPodRequest } from "../../src/node/pod-record.ts";
import { listsDevice } from "../../src/node/adopt.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "survive-pod-state-"));
  dirs.push(d);
  return d;
};
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

const web: SavedPod = { name: "web", namespace: "default", netns: "lab-node1-pod1", ip: "10.244.1.2", mac: "0a:58:0a:f4:01:02", ifname: "eth0", ownsNetns: false, fromStore: false };

describe("the pod file", () => {
  it("reads back what was written, pending marks included; none is an empty list", () => {
    const file = join(tmp(), "node1.pods.json");
    expect(readPodFile(file)).toEqual({ pods: [], problems: [] });
    const db: SavedPod = { ...web, name: "db", namespace: "shop", netns: "shop-db", ip: "10.244.1.3", mac: "0a:58:0a:f4:01:03", ownsNetns: true, fromStore: true, pending: "tnp4242x7" };
    writePodFile(file, [web, db]);
    expect(readPodFile(file)).toEqual({ pods: [web, db], problems: [] });
    expect(JSON.parse(readFileSync(file, "utf8")).version).toBe(1);
    removePodFile(file);
    expect(readPodFile(file)).toEqual({ pods: [], problems: [] });
  });

  it("a record's port is not kept (it means nothing to the next switch)", () => {
    expect(savedPod({ ...web, port: 3 })).toEqual(web);
    expect(savedPod({ ...web, port: 3 }, "tnp1x1")).toEqual({ ...web, pending: "tnp1x1" });
  });

  it("a file that is not JSON, or not version 1, gives no pods and says why", () => {
    const file = join(tmp(), "x.pods.json");
    writeFileSync(file, '{"version": 1, "pods": [');
    const cut = readPodFile(file);
    expect(cut.pods).toEqual([]);
    expect(cut.problems[0]).toMatch(/x\.pods\.json is not JSON .*its pods are not taken over/);
    writeFileSync(file, JSON.stringify({ version: 2, pods: [web] }));
    expect(readPodFile(file).problems).toEqual([`${file} is not a version 1 pod file ({"version": 1, "pods": [...]}): its pods are not taken over`]);
    writeFileSync(file, "[]");
    expect(readPodFile(file).pods).toEqual([]);
  });

  it("leaves out each bad entry, naming it and its field, and keeps the good ones", () => {
    const file = join(tmp(), "y.pods.json");
    const bad: [unknown, string][] = [
      [null, "not an object"],
      [{ ...web, name: "Web_1" }, 'name "Web_1" is not a pod name'],
      [{ ...web, namespace: "" }, 'namespace "" is not a namespace name'],
      [{ ...web, netns: "../etc" }, 'network namespace name "../etc" is not valid'],
      [{ ...web, ip: "10.244.1.300" }, 'ip "10.244.1.300" is not an IPv4 address'],
      [{ ...web, mac: "0A:58:0a:f4:01:02" }, 'mac "0A:58:0a:f4:01:02" is not a MAC address'],
      [{ ...web, ifname: "a/b" }, 'ifname "a/b" is not an interface name'],
      [{ ...web, ownsNetns: "yes" }, "ownsNetns and fromStore must be true or false"],
      [{ ...web, pending: "x".repeat(16) }, `pending "${"x".repeat(16)}" is not an interface name`],
    ];
    for (const [v, why] of bad) expect(savedPodProblem(v)).toBe(why);
    writeFileSync(file, JSON.stringify({ version: 1, pods: [web, ...bad.map(([v]) => v), web] }));
    const r = readPodFile(file);
    expect(r.pods).toEqual([web]);
    expect(r.problems).toHaveLength(bad.length + 1);
    expect(r.problems[0]).toBe(`${file}: pods[1]: not an object`);
    expect(r.problems.at(-1)).toBe(`${file}: pods[${bad.length + 1}]: pod default/web is there twice`);
  });

  it("drops unknown fields of an entry", () => {
    const file = join(tmp(), "z.pods.json");
    writeFileSync(file, JSON.stringify({ version: 1, pods: [{ ...web, port: 4, extra: "x" }] }));
    expect(readPodFile(file).pods).toEqual([web]);
  });
});

describe("the files beside a control socket", () => {
  it("are named after it", () => {
    expect(nodeFiles("/run/tapnet/node1.sock")).toEqual({ lock: "/run/tapnet/node1.lock", pods: "/run/tapnet/node1.pods.json", standby: "/run/tapnet/node1.standby" });
    expect(nodeFiles("/tmp/ctl")).toEqual({ lock: "/tmp/ctl.lock", pods: "/tmp/ctl.pods.json", standby: "/tmp/ctl.standby" });
  });
});

describe("checkPodRequest", () => {
  it("fills the defaults and names the field at fault", () => {
    expect(checkPodRequest({ name: "web" })).toEqual({ name: "web", namespace: "default", netns: "web", ifname: "eth0" });
    expect(() => checkPodRequest({ name: "Web" })).toThrow('pod name "Web" must be');
    expect(() => checkPodRequest({ name: "web", namespace: "A" })).toThrow('namespace "A" must be');
    expect(() => checkPodRequest({ name: "web", netns: ".." })).toThrow('network namespace name ".." is not valid');
    expect(() => checkPodRequest({ name: "web", ifname: "" })).toThrow('interface name "" must be 1-15 characters');
  });
});

describe("listsDevice", () => {
  const dev = "Inter-|   Receive |  Transmit\n face |bytes    packets\n    lo:       0       0\n  eth0: 1234 5\neth10: 1 1\n";
  it("finds an interface of /proc/net/dev by its whole name", () => {
    expect(listsDevice(dev, "eth0")).toBe(true);
    expect(listsDevice(dev, "eth10")).toBe(true);
    expect(listsDevice(dev, "eth1")).toBe(false);
    expect(listsDevice(dev, "th0")).toBe(false);
  });
});

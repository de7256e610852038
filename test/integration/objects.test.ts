// `tapnet apply/get/delete` against a lab: Kubernetes manifests become pods (namespaces, TAPs,
// addresses from their node's CIDR) on the nodes they name, which ping each other; a bad
// manifest is refused whole and changes nothing; delete -f removes the pods and their namespaces.
// On each store: the file store (the default) and etcd.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupTestLabs, journal, netnsList, runCmd, tapnet, uniquePrefix, waitFor } from "./helpers.ts";

const FILE = fileURLToPath(new URL("./fixtures/two-namespaces.yaml", import.meta.url));
const BAD = fileURLToPath(new URL("./fixtures/bad-pod.yaml", import.meta.url));

interface PodJson { metadata: { name: string; namespace: string; annotations?: Record<string, string> }; spec: { nodeName: string }; status?: { podIP?: string; phase?: string } }

for (const store of ["file", "etcd"] as const) {
  const prefix = uniquePrefix(`obj${store}`);

  const pods = async (): Promise<PodJson[]> => {
    const r = await tapnet(["get", "pods", "-A", "-o", "json", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).items;
  };

  const waitForPods = async (pred: (p: PodJson[]) => boolean, what: string, timeoutMs = 10_000): Promise<PodJson[]> => {
    const t0 = Date.now();
    for (;;) {
      const list = await pods();
      if (pred(list)) return list;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(list)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  describe(`tapnet apply, get and delete on a lab, ${store} store`, () => {
    beforeAll(async () => {
      const r = await tapnet(["lab", "up", "--nodes", "2", "--pods", "1", "--store", store, "--prefix", prefix]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    });

    afterAll(async () => {
      await cleanupTestLabs();
    });

    it("lists the lab's own pods (added with pod add) in namespace default", async () => {
      const list = await pods();
      expect(list.map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.spec.nodeName}`).sort())
        .toEqual(["default/node1-pod1@node1", "default/node2-pod1@node2"]);
      for (const p of list) expect(p.status?.podIP).toMatch(/^10\.244\.[12]\.\d+$/);
    });

    it("apply -f creates namespaces and pods on their nodes, which ping each other", async () => {
      const r = await tapnet(["apply", "-f", FILE, "--prefix", prefix]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split("\n")).toEqual(["namespace/blue created", "namespace/green created", "pod/web created", "pod/client created"]);
      const list = await waitForPods((l) => l.filter((p) => p.status?.podIP && p.metadata.namespace !== "default").length === 2, "the applied pods' addresses");
      const web = list.find((p) => p.metadata.name === "web")!;
      const client = list.find((p) => p.metadata.name === "client")!;
      // Each pod's address is in its node's pod CIDR (on etcd, the nodes lease theirs in either order).
      const nodes = JSON.parse((await tapnet(["get", "nodes", "-o", "json", "--prefix", prefix])).stdout).items as { metadata: { name: string }; spec: { podCIDR: string } }[];
      const net24 = (node: string) => nodes.find((n) => n.metadata.name === node)!.spec.podCIDR.replace(/\.0\/24$/, ".");
      expect(web.status!.podIP!.startsWith(net24("node1")), `${web.status!.podIP} in node1's ${net24("node1")}0/24`).toBe(true);
      expect(client.status!.podIP!.startsWith(net24("node2")), `${client.status!.podIP} in node2's ${net24("node2")}0/24`).toBe(true);
      expect(net24("node1")).not.toBe(net24("node2"));
      expect(web.metadata.annotations?.["tapnet.dev/netns"]).toBe(`${prefix}-blue-web`);
      expect(netnsList()).toEqual(expect.arrayContaining([`${prefix}-blue-web`, `${prefix}-green-client`]));
      const there = await runCmd("ip", ["netns", "exec", `${prefix}-blue-web`, "ping", "-c", "2", "-W", "2", client.status!.podIP!]);
      expect(there.code, there.stdout + there.stderr).toBe(0);
      const back = await runCmd("ip", ["netns", "exec", `${prefix}-green-client`, "ping", "-c", "2", "-W", "2", web.status!.podIP!]);
      expect(back.code, back.stdout + back.stderr).toBe(0);

      const wide = await tapnet(["get", "pods", "-A", "-o", "wide", "--prefix", prefix]);
      expect(wide.code).toBe(0);
      const rows = wide.stdout.trim().split("\n").map((l) => l.split(/\s+/));
      expect(rows[0]).toEqual(expect.arrayContaining(["NAMESPACE", "NAME", "IP", "NODE"]));
      const row = (ns: string, name: string) => rows.find((x) => x[0] === ns && x[1] === name);
      expect(row("blue", "web")).toEqual(expect.arrayContaining([web.status!.podIP, "node1"]));
      expect(row("green", "client")).toEqual(expect.arrayContaining([client.status!.podIP, "node2"]));
    });

    it("apply again changes nothing; -n filters; get nodes shows both nodes", async () => {
      const r = await tapnet(["apply", "-f", FILE, "--prefix", prefix]);
      expect(r.stdout.trim().split("\n")).toEqual(["namespace/blue unchanged", "namespace/green unchanged", "pod/web unchanged", "pod/client unchanged"]);
      const blue = await tapnet(["get", "pods", "-n", "blue", "--prefix", prefix]);
      expect(blue.stdout).toContain("web");
      expect(blue.stdout).not.toContain("client");
      const nodes = await tapnet(["get", "nodes", "--prefix", prefix]);
      expect(nodes.stdout).toMatch(/node1\s+Ready/);
      expect(nodes.stdout).toMatch(/node2\s+Ready/);
    });

    it("refuses a bad manifest whole, naming the field, and leaves the store unchanged", async () => {
      const before = await tapnet(["get", "namespaces", "-o", "json", "--prefix", prefix]);
      const r = await tapnet(["apply", "-f", BAD, "--prefix", prefix]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("spec.containers[0].ports[0].protocl");
      const after = await tapnet(["get", "namespaces", "-o", "json", "--prefix", prefix]);
      expect(after.stdout).toBe(before.stdout);
      expect(after.stdout).not.toContain('"red"');
    });

    it("delete -f removes the pods, their network namespaces and the namespaces", async () => {
      const r = await tapnet(["delete", "-f", FILE, "--prefix", prefix]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('pod "web" deleted');
      expect(r.stdout).toContain('namespace "blue" deleted');
      await waitFor(() => !netnsList().some((n) => n === `${prefix}-blue-web` || n === `${prefix}-green-client`), 10_000, "the pods' namespaces to go");
      const list = await pods();
      expect(list.every((p) => p.metadata.namespace === "default")).toBe(true);
      const ns = await tapnet(["get", "namespaces", "-o", "json", "--prefix", prefix]);
      expect(JSON.parse(ns.stdout).items.map((n: { metadata: { name: string } }) => n.metadata.name)).not.toContain("blue");
      const again = await tapnet(["delete", "pod", "web", "-n", "blue", "--prefix", prefix]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('pods "web" not found');
    });

    it("lab down removes the namespaces a killed switch left its applied pods in", async () => {
      expect((await tapnet(["apply", "-f", FILE, "--prefix", prefix])).code).toBe(0);
      await waitFor(() => netnsList().includes(`${prefix}-blue-web`), 10_000, "the applied pod's namespace");
      process.kill(journal(prefix)!.nodes[0].pid, "SIGKILL");
      const down = await tapnet(["lab", "down", "--prefix", prefix]);
      expect(down.code, down.stderr).toBe(0);
      expect(netnsList().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    });
  });
}

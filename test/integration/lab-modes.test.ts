// The lab's other modes, the references `tapnet bench` compares against: every node a plain
// Linux VXLAN node (kernel-vxlan), or a plain Linux node with routes and no encapsulation
// (host-gw). The same two nodes and four pods, and lab check passes; down leaves nothing.
import { afterAll, describe, expect, it } from "vitest";
import { journal, netnsList, sh, tapnet, uniquePrefix } from "./helpers.ts";

const prefixes: string[] = [];

afterAll(async () => {
  // Only this file's labs: other files' labs may be up in parallel runs.
  for (const prefix of prefixes) await tapnet(["lab", "down", "--prefix", prefix]);
});

for (const mode of ["kernel-vxlan", "host-gw"] as const) {
  describe(`lab --mode ${mode}`, () => {
    const prefix = uniquePrefix(mode === "host-gw" ? "hostgw" : "kvxlan");
    prefixes.push(prefix);

    it("builds 2 plain Linux nodes with 2 pods each, passes lab check, and down removes it", async () => {
      try {
        const up = await tapnet(["lab", "up", "--mode", mode, "--nodes", "2", "--pods", "2", "--prefix", prefix]);
        expect(up.stderr + up.stdout).toContain(`lab ${prefix} is up`);
        expect(up.code).toBe(0);
        const status = JSON.parse((await tapnet(["lab", "status", "--json", "--prefix", prefix])).stdout);
        expect(status.mode).toBe(mode);
        expect(status.kernelNodes).toEqual(["node1", "node2"]);
        expect(status.nodes.map((n: { pid: number }) => n.pid)).toEqual([0, 0]);
        expect(status.pods.map((p: { ip: string }) => p.ip)).toEqual(["10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3"]);
        const routes = sh("ip", ["-n", `${prefix}-node1`, "-4", "route", "show", "10.244.2.0/24"]);
        const links = sh("ip", ["-n", `${prefix}-node1`, "-o", "link", "show"]);
        if (mode === "host-gw") {
          expect(routes).toContain("via 192.168.56.12 dev eth0");
          expect(links).not.toContain("vxlan");
        } else {
          expect(routes).toContain("via 10.244.2.0 dev flannel.1 onlink");
        }
        const check = await tapnet(["lab", "check", "--json", "--bytes", "500000", "--prefix", prefix]);
        const r = JSON.parse(check.stdout);
        expect(r.results.filter((x: { ok: boolean }) => !x.ok)).toEqual([]);
        expect(r.ok).toBe(true);
        expect(check.code).toBe(0);
        const made = journal(prefix)!.namespaces;
        expect((await tapnet(["lab", "down", "--prefix", prefix])).code).toBe(0);
        expect(netnsList().filter((n) => made.includes(n))).toEqual([]);
      } finally {
        await tapnet(["lab", "down", "--prefix", prefix]);
      }
    });
  });
}

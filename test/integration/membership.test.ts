// Live membership on real namespaces: three nodes (fixtures/membership-node.ts: a routing
// Switch, tapnet0, HostNet, one pod each) on an underlay of their own. node1 and node2 start
// knowing only each other, node3 knowing all three. While pod1 pings pod2 every 50 ms, node3 is
// added to node1's and node2's node lists (node2's list reordered, its own index moving) with
// no restart: pod1 then reaches pod3, and node1 itself reaches pod3 along the route HostNet
// added, with node3's address left out of its masquerade rule. Then node3 is removed again:
// the route and the address go, pod1 no longer reaches pod3, and the ping between pod1 and
// pod2 has lost nothing across both changes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sh } from "./helpers.ts";
import { Testbed, type TestNode, writeConfig } from "./membership-support.ts";
import { ping } from "./helpers.ts";

const NODES = [1, 2, 3].map((i) => ({ name: `node${i}`, address: `192.168.57.${10 + i}`, podCidr: `10.244.${i}.0/24` }));
const dir = mkdtempSync(join(tmpdir(), "mbr-"));

for (const backend of ["tapnet", "vxlan"] as const) {
  describe(`nodes join and leave a running cluster, ${backend} backend`, () => {
    const bed = new Testbed(`mbr-${(process.pid % 46656).toString(36)}-${backend[0]}`);
    let n1: TestNode;
    let n2: TestNode;
    let n3: TestNode;

    beforeAll(async () => {
      const config = join(dir, `${backend}.yaml`);
      writeConfig(config, backend, NODES);
      bed.up();
      for (const n of NODES) bed.addHost(n.name, n.address);
      [n1, n2, n3] = await Promise.all([
        bed.start("node1", NODES[0].address, config, ["node1", "node2"]),
        bed.start("node2", NODES[1].address, config, ["node1", "node2"]),
        bed.start("node3", NODES[2].address, config, ["node1", "node2", "node3"]),
      ]);
    });

    afterAll(async () => {
      await bed.destroy();
    });

    it("node3 joins and leaves: reached while it is a member, not after; pod1 to pod2 loses no packet throughout", async () => {
      for (let i = 0; i < 50 && (await ping(n1.podNetns, n2.pod!, ["-c", "1", "-W", "1"])).received === 0; i++);
      expect((await ping(n1.podNetns, n3.pod!, ["-c", "1", "-W", "1"])).received).toBe(0); // node1 does not know node3 yet

      const steady = ping(n1.podNetns, n2.pod!, ["-i", "0.05", "-c", "160", "-W", "2"]);
      let pinging = true;
      void steady.then(() => (pinging = false));
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await n1.setMembers(["node1", "node2", "node3"])).toEqual({ ok: true });
      expect(await n2.setMembers(["node1", "node3", "node2"])).toEqual({ ok: true });
      const toPod3 = await ping(n1.podNetns, n3.pod!, ["-c", "3", "-i", "0.2", "-W", "2"]);
      expect(toPod3.received, toPod3.out).toBe(3);
      const fromNode1 = await ping(n1.netns, n3.pod!, ["-c", "2", "-i", "0.2", "-W", "2"]);
      expect(fromNode1.received, fromNode1.out).toBe(2);
      expect((await ping(n2.podNetns, n3.pod!, ["-c", "2", "-i", "0.2", "-W", "2"])).received).toBe(2);
      expect(sh("ip", ["-n", n1.netns, "route", "show", "10.244.3.0/24"])).toContain("via 10.244.3.0 dev tapnet0 onlink");
      expect(sh("ip", ["-n", n1.netns, "neigh", "show", "10.244.3.0", "dev", "tapnet0"])).toContain("PERMANENT");
      expect(sh("ip", ["netns", "exec", n1.netns, "nft", "list", "table", "ip", "tapnet"])).toContain("{ 192.168.57.11, 192.168.57.12, 192.168.57.13 }");

      expect(await n1.setMembers(["node1", "node2"])).toEqual({ ok: true });
      expect(await n2.setMembers(["node2", "node1"])).toEqual({ ok: true });
      expect((await ping(n1.podNetns, n3.pod!, ["-c", "2", "-i", "0.2", "-W", "1"])).received).toBe(0);
      expect(sh("ip", ["-n", n1.netns, "route", "show", "10.244.3.0/24"])).toBe("");
      expect(sh("ip", ["netns", "exec", n1.netns, "nft", "list", "table", "ip", "tapnet"])).toContain("{ 192.168.57.11, 192.168.57.12 }");
      expect(pinging).toBe(true); // both changes came while pod1 pinged pod2
      const r = await steady;
      expect(r.sent, r.out).toBe(160);
      expect(r.received, r.out).toBe(160);
    });
  });
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * `tapnet apply|delete|get` as a user runs them: on a real file store in a temporary directory
 * (--store), and through a switch's control socket served here by an RpcServer whose handlers
 * are the ones a switch has (apply.ts over a store). Output is checked line by line, exit codes
 * (0, 1 when an object failed, 2 for wrong usage), and that refused input leaves the store as it was.
 * Nothing here creates namespaces or devices.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parse, type Parsed } from "../../src/cli/args.ts";
import { clusterConnector } from "../../src/cli/commands/cluster-client.ts";
import { applyCommand, deleteCommand, getCommand, objectsIo, refsFromArgs, type ObjectsCommand } from "../../src/cli/commands/objects.ts";
import { main } from "../../src/cli/main.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { ObjectStore } from "../../src/cluster/store.ts";
import { labDir } from "../../src/lab/plan.ts";
import { objectHandlers } from "../../src/node/object-rpc.ts";
import { rpcCall, RpcServer } from "../../src/node/rpc.ts";
import type { StoreSync } from "../../src/node/store-sync.ts";

let stdout: string;
let stderr: string;
let dir: string;
const NOW = Date.parse("2030-01-01T00:00:00Z");

beforeEach(() => {
  stdout = "";
  stderr = "";
  dir = mkdtempSync(join(tmpdir(), "tapnet-cli-objects-"));
  vi.spyOn(process.stdout, "write").mockImplementation(((s: string) => { stdout += String(s); return true; }) as typeof process.stdout.write);
  vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => { stderr += String(s); return true; }) as typeof process.stderr.write);
  vi.spyOn(objectsIo, "now").mockReturnValue(NOW);
});

afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: blue}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: blue, labels: {app: web}}
spec:
  nodeName: node1
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: db}
spec: {containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: blue}
spec: {podSelector: {}}
`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Runs a command as main does (parse with its positional bound, then run), catching nothing. */
async function run(cmd: ObjectsCommand, argv: string[]): Promise<number> {
  stdout = "";
  stderr = "";
  const p = parse(cmd, argv, cmd.maxPositionals);
  if (p === "help") throw new Error("help");
  return cmd.run(p);
}

/** Runs through main: its error handling and exit codes. */
async function cli(...argv: string[]): Promise<number> {
  stdout = "";
  stderr = "";
  return main(argv);
}

describe("apply, get and delete on a file store (--store)", () => {
  it("creates, reports unchanged and configured, lists, and deletes a file's objects last first", async () => {
    const store = join(dir, "store");
    const f = file("all.yaml", MANIFEST);
    expect(await cli("apply", "-f", f, "--store", store)).toBe(0);
    expect(stdout).toBe("namespace/blue created\npod/web created\npod/db created\nnetworkpolicy.networking.k8s.io/deny created\n");
    expect(await cli("apply", "-f", f, "--store", store)).toBe(0);
    expect(stdout).toBe("namespace/blue unchanged\npod/web unchanged\npod/db unchanged\nnetworkpolicy.networking.k8s.io/deny unchanged\n");
    expect(await cli("apply", "-f", file("web2.yaml", MANIFEST.replace("app: web", "app: web2")), "--store", store)).toBe(0);
    expect(stdout).toContain("pod/web configured\npod/db unchanged");

    expect(await cli("get", "pods", "-A", "--store", store)).toBe(0);
    expect(stdout).toMatch(/^NAMESPACE   NAME   STATUS    AGE\nblue        web    Pending   \d+[smhdy]\S*\ndefault     db     Pending   \d+[smhdy]\S*\n$/);
    expect(await cli("get", "po", "-n", "blue", "-o", "wide", "--store", store)).toBe(0);
    expect(stdout.split("\n")[1]).toMatch(/^web +Pending +\S+ +<none> +node1 +<none>$/);
    expect(await cli("get", "netpol", "--store", store)).toBe(0);
    expect(stdout).toBe("");
    expect(stderr).toBe("No resources found in default namespace.\n");
    expect(await cli("get", "pods", "-o", "name", "--store", store)).toBe(0);
    expect(stdout).toBe("pod/db\n");

    expect(await cli("delete", "-f", f, "--store", store)).toBe(0);
    expect(stdout).toBe('networkpolicy.networking.k8s.io "deny" deleted\npod "db" deleted\npod "web" deleted\nnamespace "blue" deleted\n');
    expect(await cli("get", "ns", "--store", store)).toBe(0);
    expect(stderr).toBe("No resources found\n");
  });

  it("refuses a bad manifest or a missing namespace with 1 and leaves the store as it was", async () => {
    const store = join(dir, "store");
    expect(await cli("apply", "-f", file("a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n"), "--store", store)).toBe(0);
    const listing = async () => { await cli("get", "pods", "-A", "-o", "json", "--store", store); return stdout; };
    const before = await listing();
    expect(await cli("apply", "-f", file("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: c, ports: [{containerPort: 70000}]}]}\n"), "--store", store)).toBe(1);
    expect(stderr).toContain("containerPort");
    expect(stderr).toContain("bad.yaml");
    expect(await cli("apply", "-f", file("ns.yaml", MANIFEST.replace("kind: Namespace\nmetadata: {name: blue}", "kind: Namespace\nmetadata: {name: green}")), "--store", store)).toBe(1);
    expect(stderr).toContain('namespaces "blue" not found');
    expect(stdout).toBe("");
    expect(await listing()).toBe(before);
  });

  it("prints one object asked for by name as itself, and kubectl's NotFound with 1 for a name that is not there", async () => {
    const store = join(dir, "store");
    await cli("apply", "-f", file("all.yaml", MANIFEST), "--store", store);
    expect(await run(getCommand, ["pod", "db", "-o", "json", "--store", store])).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ kind: "Pod", metadata: { name: "db", namespace: "default" } });
    expect(await run(getCommand, ["pods", "db", "nope", "-o", "yaml", "--store", store])).toBe(1);
    expect(stdout).toMatch(/^apiVersion: v1\nkind: List\nitems:\n {2}- apiVersion: v1\n {4}kind: Pod/);
    expect(stderr).toBe('Error from server (NotFound): pods "nope" not found\n');
  });

  it("deletes by KIND NAME... and KIND/NAME, and says which were not found with 1 unless --ignore-not-found", async () => {
    const store = join(dir, "store");
    await cli("apply", "-f", file("all.yaml", MANIFEST), "--store", store);
    expect(await run(deleteCommand, ["pod", "web", "gone", "-n", "blue", "--store", store])).toBe(1);
    expect(stdout).toBe('pod "web" deleted\n');
    expect(stderr).toBe('Error from server (NotFound): pods "gone" not found\n');
    expect(await run(deleteCommand, ["netpol/deny", "po/db", "po/gone", "--ignore-not-found", "-n", "blue", "--store", store])).toBe(0);
    expect(stdout).toBe('networkpolicy.networking.k8s.io "deny" deleted\n');
    expect(stderr).toBe("");
    // -n blue named blue's objects only: the db of default is still there.
    expect(await run(getCommand, ["pods", "db", "--store", store])).toBe(0);
    expect(stdout).toMatch(/^NAME   STATUS    AGE\ndb     Pending   /);
  });

  it("gives a new Service a ClusterIP from --service-cidr (default 10.96.0.0/12), and refuses --service-cidr without --store", async () => {
    const store = join(dir, "store");
    const svc = (name: string) => file(`${name}.yaml`, `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {ports: [{port: 80}]}\n`);
    expect(await cli("apply", "-f", svc("a"), "--store", store)).toBe(0);
    expect(await cli("apply", "-f", svc("b"), "--store", store, "--service-cidr", "172.30.0.0/24")).toBe(0);
    expect(await cli("get", "svc", "--store", store, "-o", "json")).toBe(0);
    const ips = (JSON.parse(stdout).items as { spec: { clusterIP: string } }[]).map((s) => s.spec.clusterIP);
    expect(ips[0]).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    expect(ips[1]).toMatch(/^172\.30\.0\.\d+$/);
    expect(await cli("apply", "-f", svc("c"), "--store", store, "--service-cidr", "172.30.0.1/24")).toBe(2);
    expect(stderr).toBe('tapnet: --service-cidr: "172.30.0.1/24" has host bits set (did you mean 172.30.0.0/24?)\n');
    expect(await cli("apply", "-f", svc("c"), "--store", store, "--service-cidr", "10.0.0.0/8")).toBe(2);
    expect(stderr).toBe("tapnet: --service-cidr: /8 is out of range: from /12 (the largest) to /30\n");
    expect(await cli("apply", "-f", svc("c"), "--node", "n1", "--service-cidr", "10.96.0.0/12")).toBe(2);
    expect(stderr).toContain("--service-cidr goes with --store URL");
  });

  it("reads manifests from stdin, from a directory, and from a comma-separated list", async () => {
    const store = join(dir, "store");
    vi.spyOn(objectsIo, "stdin").mockResolvedValue("apiVersion: v1\nkind: Namespace\nmetadata: {name: red}\n");
    expect(await cli("apply", "-f", "-", "--store", store)).toBe(0);
    expect(stdout).toBe("namespace/red created\n");
    const sub = join(dir, "manifests");
    mkdirSync(sub);
    writeFileSync(join(sub, "b.yml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: red}\nspec: {containers: [{name: c}]}\n");
    writeFileSync(join(sub, "a.json"), JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "a" }, spec: { containers: [{ name: "c" }] } }));
    writeFileSync(join(sub, "notes.txt"), "not a manifest");
    expect(await cli("apply", "-f", sub, "--store", store)).toBe(0);
    expect(stdout).toBe("pod/a created\npod/b created\n");
    const x = file("x.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
    const y = file("y.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: y}\n");
    expect(await cli("apply", "-f", `${x},${y}`, "--store", store)).toBe(0);
    expect(stdout).toBe("namespace/x created\nnamespace/y created\n");
  });
});

describe("usage errors", () => {
  it.each([
    [["apply"], "apply needs -f FILE"],
    [["apply", "-f", "/nonexistent/x.yaml", "--store", "/tmp/none"], "-f /nonexistent/x.yaml: no such file or directory"],
    [["get"], "get needs a KIND"],
    [["get", "widgets"], 'the server doesn\'t have a resource type "widgets"'],
    [["get", "pods", "-A", "-n", "x"], "-A and -n"],
    [["get", "pods", "-o", "table"], "--output must be one of wide, json, yaml, name"],
    [["delete"], "delete needs -f FILE, or KIND NAME..."],
    [["delete", "pods"], "name the objects to delete"],
    [["get", "pods", "--store", "/tmp/x", "--node", "n1"], "--store and --node each pick the cluster"],
    [["get", "pods", "--cluster", "c"], "--cluster NAME goes with --store URL"],
  ])("tapnet %j says %s and exits 2", async (argv, message) => {
    expect(await cli(...argv)).toBe(2);
    expect(stderr).toContain(message);
    expect(stdout).toBe("");
  });

  it("refuses -A with names and -f with names or -n", async () => {
    await expect(run(getCommand, ["pods", "a", "-A"])).rejects.toThrow("across all namespaces");
    await expect(run(deleteCommand, ["pod", "a", "-f", "x.yaml"])).rejects.toThrow("not both");
    await expect(run(deleteCommand, ["-n", "blue", "-f", file("a.yaml", MANIFEST)])).rejects.toThrow("-n is for delete KIND NAME");
  });

  it("reads KIND NAME... and KIND/NAME into refs, in the namespace given or default, none for cluster-wide kinds", () => {
    expect(refsFromArgs(["svc", "a", "b"], "blue")).toEqual([{ kind: "Service", namespace: "blue", name: "a" }, { kind: "Service", namespace: "blue", name: "b" }]);
    expect(refsFromArgs(["ns/blue", "pod/x"], undefined)).toEqual([{ kind: "Namespace", name: "blue" }, { kind: "Pod", namespace: "default", name: "x" }]);
    expect(() => refsFromArgs(["pod", "a/b"], undefined)).toThrow("KIND/NAME");
    expect(() => refsFromArgs(["pod/"], undefined)).toThrow("empty name");
  });

  it("has help with examples for each command", async () => {
    for (const name of ["apply", "delete", "get"]) {
      expect(await cli(name, "--help")).toBe(0);
      expect(stdout).toContain(`Usage: tapnet ${name}`);
      expect(stdout).toContain("Examples:");
      expect(stdout).toContain("--store URL");
    }
  });
});

describe("through a switch's control socket", () => {
  /** A control socket with the handlers a switch has, over a store in memory. */
  async function fakeSwitch(path: string) {
    const store = new ObjectStore(new MemoryKv(), "test");
    // The switch's own object methods (node/object-rpc.ts), over a store in memory.
    const sync = { store, liveNodes: () => undefined, config: { serviceCidr: { network: 0x0a600000, prefix: 12 } } } as unknown as StoreSync;
    const server = await RpcServer.listen(path, { ping: () => ({ node: "n1" }), ...objectHandlers(sync) });
    return { store, server };
  }

  it("applies, gets and deletes through --control", async () => {
    const sock = join(dir, "n1.sock");
    const { store, server } = await fakeSwitch(sock);
    try {
      expect(await cli("apply", "-f", file("all.yaml", MANIFEST), "--control", sock)).toBe(0);
      expect(stdout).toContain("pod/web created");
      expect((await store.list("Pod")).length).toBe(2);
      expect(await cli("get", "pods", "-n", "blue", "--control", sock)).toBe(0);
      expect(stdout).toMatch(/^NAME   STATUS    AGE\nweb    Pending   /);
      expect(await run(getCommand, ["pod", "web", "nope", "-n", "blue", "-o", "name", "--control", sock])).toBe(1);
      expect(await cli("apply", "-f", file("p.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: nowhere}\nspec: {containers: [{name: c}]}\n"), "--control", sock)).toBe(1);
      expect(stderr).toContain('namespaces "nowhere" not found');
      // The switch checks what it is sent again: the socket takes JSON from anyone who can open it.
      await expect(rpcCall(sock, "objects.apply", { objects: [{ apiVersion: "v1", kind: "Pod", metadata: { name: "raw" }, spec: { containers: [{ name: "c", portz: [] }] } }] }))
        .rejects.toThrow("spec.containers[0].portz");
      await expect(rpcCall(sock, "objects.delete", { refs: [{ kind: "Gadget", name: "x" }] })).rejects.toThrow('unknown kind "Gadget"');
      expect(await cli("delete", "ns/blue", "--control", sock)).toBe(0);
      expect(stdout).toBe('namespace "blue" deleted\n');
      expect((await store.list("Pod")).map((p) => p.metadata.name)).toEqual(["db"]);
    } finally {
      await server.close();
    }
  });

  it("uses the only switch of the control directory, and says so plainly when there is none or it keeps no objects", async () => {
    const p: Parsed = { values: {}, positionals: [] };
    await expect(clusterConnector.connect(p, dir)).rejects.toThrow(/no lab is up and no switch runs here \(no control socket in .*\): give --store URL/);
    const server = await RpcServer.listen(join(dir, "old.sock"), { ping: () => ({}) });
    try {
      const c = await clusterConnector.connect(p, dir);
      expect(c.description).toBe(`the switch at ${join(dir, "old.sock")}`);
      await expect(c.client.list("Pod")).rejects.toThrow(/keeps no cluster objects/);
    } finally {
      await server.close();
    }
  });

  it("finds the lab named by --prefix in its journal and uses the first of its switches that answers", async () => {
    const prefix = `cli-objects-test-${process.pid}`;
    const labPath = labDir(prefix);
    try {
      mkdirSync(labPath, { recursive: true });
    } catch {
      return; // not root: /run/tapnet is not ours to write (the test runs as root in CI)
    }
    const live = join(dir, "node2.sock");
    const { store, server } = await fakeSwitch(live);
    try {
      const node = (name: string, control: string) => ({ name, netns: "", address: "", podCidr: "", gateway: "", pid: 1, control, log: "" });
      writeFileSync(join(labPath, "lab.json"), JSON.stringify({ prefix, backend: "tapnet", runtime: "node", createdAt: "", namespaces: [], kernelNodes: [], pods: [],
        nodes: [node("node1", join(dir, "dead.sock")), node("node2", live)] }));
      expect(await cli("apply", "-f", file("a.yaml", MANIFEST), "--prefix", prefix)).toBe(0);
      expect((await store.list("Pod")).length).toBe(2);
      await server.close();
      expect(await cli("get", "pods", "--prefix", prefix)).toBe(1);
      expect(stderr).toContain(`the lab ${prefix} is up but none of its switches answers (${join(dir, "dead.sock")}, ${live})`);
    } finally {
      await server.close();
      rmSync(labPath, { recursive: true, force: true });
    }
  });

  it("says which store could not be reached", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    expect(await cli("get", "pods", "--store", `etcd://127.0.0.1:${port}`)).toBe(1);
    expect(stderr).toMatch(new RegExp(`^tapnet: etcd http://127.0.0.1:${port}.*connection refused`));
  });

  it("says when the lab named by --prefix is not up, and when a socket has no switch", async () => {
    expect(await cli("get", "pods", "--prefix", "cli-test-no-such-lab")).toBe(1);
    expect(stderr).toContain("no lab cli-test-no-such-lab is up");
    expect(await cli("get", "pods", "--control", join(dir, "none.sock"))).toBe(1);
    expect(stderr).toContain("no switch is running there");
  });
});

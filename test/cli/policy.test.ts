/**
 * `tapnet policy log` and `tapnet policy explain` as a user runs them. policy log: against
 * stand-in switches (control sockets served here with the switch's own policy.log method,
 * node/flow-rpc.ts). policy explain: over a store in memory holding a small cluster (namespaces
 * x and y, pods with addresses on two nodes, a default-deny and allow policies, Services), the
 * cluster client replaced by one on that store; the verdicts come from the real view builder and
 * policy engine, the printing is checked line by line, and every error message.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { commandHelp } from "../../src/cli/args.ts";
import { clusterConnector } from "../../src/cli/commands/cluster-client.ts";
import { parsePortArg, policyExplainCommand, policyLogCommand } from "../../src/cli/commands/policy.ts";
import { storeClient } from "../../src/cluster/apply.ts";
import { parseManifests } from "../../src/cluster/manifest.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { ObjectStore } from "../../src/cluster/store.ts";
import { labDir } from "../../src/lab/plan.ts";
import { captureCli, flowSwitch } from "./cli-support.ts";

const io = captureCli("tapnet-cli-policy-");
const cli = io.cli;

describe("policy log", () => {
  /** A switch stand-in whose policy log is `on`, on a control socket. */
  async function fakeSwitch(path: string, on = false) {
    return flowSwitch(io, path, { policyLog: on });
  }

  it("turns a switch's log on and off and says how it is", async () => {
    const sock = join(io.dir, "node1.sock");
    const sw = await fakeSwitch(sock);
    expect(await cli("policy", "log", "status", "--control", sock)).toBe(0);
    expect(io.stdout).toBe("node1: policy log off\n");
    expect(await cli("policy", "log", "on", "--control", sock)).toBe(0);
    expect(io.stdout).toBe("node1: policy log on\n");
    expect(sw.policyLog).toBe(true);
    expect(await cli("policy", "log", "status", "--control", sock)).toBe(0);
    expect(io.stdout).toBe("node1: policy log on\n");
    expect(await cli("policy", "log", "off", "--control", sock)).toBe(0);
    expect(sw.policyLog).toBe(false);
    expect(io.stderr).toBe("");
  });

  it("tells every switch of a lab, says which could not be reached, and exits 1", async () => {
    const prefix = `cli-policy-test-${process.pid}`;
    try {
      mkdirSync(labDir(prefix), { recursive: true });
    } catch {
      return; // not root: /run/tapnet is not ours to write (the tests run as root in CI)
    }
    try {
      const sw1 = await fakeSwitch(join(io.dir, "node1.sock"));
      const sw2 = await fakeSwitch(join(io.dir, "node2.sock"), true);
      const node = (name: string) => ({ name, netns: "", address: "", podCidr: "", gateway: "", pid: 1, control: join(io.dir, `${name}.sock`), log: "" });
      writeFileSync(join(labDir(prefix), "lab.json"), JSON.stringify({ prefix, backend: "tapnet", runtime: "node", createdAt: "", namespaces: [], kernelNodes: [], pods: [], nodes: [node("node1"), node("node2"), node("node3")] }));
      expect(await cli("policy", "log", "status", "--prefix", prefix)).toBe(1);
      expect(io.stdout).toBe("node1: policy log off\nnode2: policy log on\n");
      expect(io.stderr).toBe(`tapnet: node3: cannot reach the switch at ${join(io.dir, "node3.sock")}: no switch is running there\n`);
      expect(await cli("policy", "log", "on", "--prefix", prefix)).toBe(1);
      expect(io.stdout).toBe("node1: policy log on\nnode2: policy log on\n");
      expect([sw1.policyLog, sw2.policyLog]).toEqual([true, true]);
      expect(await cli("policy", "log", "off", "--prefix", prefix, "--node", "node2")).toBe(0);
      expect(io.stdout).toBe("node2: policy log off\n");
      expect([sw1.policyLog, sw2.policyLog]).toEqual([true, false]);
    } finally {
      rmSync(labDir(prefix), { recursive: true, force: true });
    }
  });

  it.each([
    [["policy", "log"], "tapnet: policy log needs on, off or status (see tapnet policy log --help)\n"],
    [["policy", "log", "maybe"], 'tapnet: policy log takes on, off or status, not "maybe"\n'],
    [["policy", "log", "on", "off"], 'tapnet: unexpected argument "off" (see tapnet policy log --help)\n'],
    [["policy", "log", "on", "--control", "/x.sock", "--node", "a"], "tapnet: --control and --node each pick the switch: give one of them\n"],
  ])("tapnet %j exits 2 saying so", async (argv, message) => {
    expect(await cli(...argv)).toBe(2);
    expect(io.stderr).toBe(message);
  });

  it("says when the switch cannot be reached or has no policy log", async () => {
    expect(await cli("policy", "log", "on", "--control", join(io.dir, "none.sock"))).toBe(1);
    expect(io.stderr).toBe(`tapnet: cannot reach the switch at ${join(io.dir, "none.sock")}: no switch is running there\n`);
    const old = join(io.dir, "old.sock");
    await io.serve(old, {});
    expect(await cli("policy", "log", "on", "--control", old)).toBe(1);
    expect(io.stderr).toBe(`tapnet: the switch at ${old} has no policy log (policy.log): is it an older tapnet?\n`);
  });

  it("has help saying where the log goes", async () => {
    expect(await cli("policy", "log", "--help")).toBe(0);
    expect(io.stdout).toBe(commandHelp(policyLogCommand) + "\n");
    expect(io.stdout).toContain("Usage: tapnet policy log on|off|status [options]");
    expect(io.stdout).toContain("/run/tapnet/<lab>/<node>.log");
  });
});

/** The cluster: x/a on node1; y/b and y/c (app=web) on node2; y/p Pending; Services web, empty and dns. */
const CLUSTER = `
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {ns: y}}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
spec: {podCIDR: 10.244.1.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2}
spec: {podCIDR: 10.244.2.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.56.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {nodeName: node1, containers: [{name: c}]}
status: {phase: Running, podIP: 10.244.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {pod: b, app: web}}
spec: {nodeName: node2, containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
status: {phase: Running, podIP: 10.244.2.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: y, labels: {pod: c, app: web}}
spec: {nodeName: node2, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.2.3}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: y}
spec: {nodeName: node2, containers: [{name: c}]}
status: {phase: Pending}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: y}
spec: {clusterIP: 10.96.0.20, selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: y}
spec: {clusterIP: 10.96.0.21, selector: {app: none}, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a, namespace: y}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}}]}, {to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
`;

describe("policy explain on a store", () => {
  it("reads the objects from --store, as apply wrote them", async () => {
    const store = join(io.dir, "store");
    const manifest = join(io.dir, "cluster.yaml");
    writeFileSync(manifest, CLUSTER);
    expect(await cli("apply", "-f", manifest, "--store", store)).toBe(0);
    expect(await cli("policy", "explain", "--from", "x/a", "--to", "y/b", "--port", "80", "--store", store)).toBe(0);
    expect(io.stdout.split("\n")[0]).toBe("ALLOW: x/a (10.244.1.2) to y/b (10.244.2.2) on 80/TCP");
    expect(await cli("policy", "explain", "--from", "x/a", "--to", "y/c", "--port", "80", "--store", store)).toBe(1);
    expect(io.stdout.split("\n")[0]).toBe("DENY: x/a (10.244.1.2) to y/c (10.244.2.3) on 80/TCP");
  });
});

describe("policy explain", () => {
  beforeEach(async () => {
    const store = new ObjectStore(new MemoryKv(), "test");
    for (const o of parseManifests(CLUSTER, "cluster.yaml")) await store.create(o);
    vi.spyOn(clusterConnector, "connect").mockResolvedValue({ client: storeClient(store), description: "a store in memory", close: async () => {} });
  });

  const explain = (from: string, to: string, port: string, ...more: string[]) => cli("policy", "explain", "--from", from, "--to", to, "--port", port, ...more);

  it("allows a flow both sides' rules allow, naming the rules", async () => {
    expect(await explain("x/a", "y/b", "80/tcp")).toBe(0);
    expect(io.stdout).toBe([
      "ALLOW: x/a (10.244.1.2) to y/b (10.244.2.2) on 80/TCP",
      "  egress of x/a: allowed by spec.egress[1] of x/egress-y (isolated by x/egress-y)",
      "    Egress rule 1 of x/egress-y allows traffic to y/b on 80/TCP.",
      "  ingress of y/b: allowed by spec.ingress[0] of y/allow-a (isolated by y/allow-a, y/deny-all)",
      "    Ingress rule 0 of y/allow-a allows traffic from x/a on 80/TCP.",
      "",
    ].join("\n"));
    expect(io.stderr).toBe("");
  });

  it("denies a flow no ingress rule allows, pointing at the rule that matches the peer but not the port", async () => {
    expect(await explain("x/a", "y/b", "81")).toBe(1);
    expect(io.stdout).toBe([
      "DENY: x/a (10.244.1.2) to y/b (10.244.2.2) on 81/TCP",
      "  egress of x/a: allowed by spec.egress[1] of x/egress-y (isolated by x/egress-y)",
      "    Egress rule 1 of x/egress-y allows traffic to y/b on 81/TCP.",
      "  ingress of y/b: denied, no rule allows it (isolated by y/allow-a, y/deny-all)",
      "    y/b is isolated for ingress by y/allow-a, y/deny-all, and no ingress rule of theirs allows traffic from x/a on 81/TCP (ingress rule 0 of y/allow-a matches that peer, but not 81/TCP).",
      "",
    ].join("\n"));
  });

  it("explains an address that is no pod, a pod no policy isolates, and a pod's own node", async () => {
    expect(await explain("203.0.113.2", "y/c", "8080/TCP")).toBe(1);
    expect(io.stdout).toBe([
      "DENY: 203.0.113.2 to y/c (10.244.2.3) on 8080/TCP",
      "  egress of 203.0.113.2: not a pod, no policy applies",
      "    203.0.113.2 is not a pod, so no NetworkPolicy limits its egress.",
      "  ingress of y/c: denied, no rule allows it (isolated by y/deny-all)",
      "    y/c is isolated for ingress by y/deny-all, which has no ingress rules, so all its ingress is denied.",
      "",
    ].join("\n"));
    expect(await explain("y/b", "a", "53/udp")).toBe(1); // "a" is default/a: there is none
    expect(io.stderr).toBe("tapnet: --to default/a: no such pod (tapnet get pods -n default lists them)\n");
    expect(await explain("y/b", "x/a", "53/udp")).toBe(0);
    expect(io.stdout.split("\n").slice(0, 3)).toEqual([
      "ALLOW: y/b (10.244.2.2) to x/a (10.244.1.2) on 53/UDP",
      "  egress of y/b: not isolated (no policy selects it for egress)",
      "    No NetworkPolicy selects y/b for egress, so its egress is not limited.",
    ]);
    expect(await explain("10.244.2.1", "y/c", "8080")).toBe(0);
    expect(io.stdout.split("\n").slice(3, 5)).toEqual([
      "  ingress of y/c: allowed, always (isolated by y/deny-all)",
      "    10.244.2.1 is an address of y/c's own node node2, and traffic between a pod and its node is always allowed.",
    ]);
  });

  it("prints the engine's explanation as JSON with -o json", async () => {
    expect(await explain("x/a", "y/c", "8080", "-o", "json")).toBe(1);
    const x = JSON.parse(io.stdout);
    expect(x).toEqual({
      allowed: false,
      egress: { pod: "x/a", isolated: true, policies: ["x/egress-y"], allowed: true, allowedBy: { policy: "x/egress-y", rule: 1 }, reason: "Egress rule 1 of x/egress-y allows traffic to y/c on 8080/TCP." },
      ingress: { pod: "y/c", isolated: true, policies: ["y/deny-all"], allowed: false, reason: expect.stringContaining("y/c is isolated for ingress by y/deny-all") },
    });
  });

  it("explains a Service's ClusterIP endpoint by endpoint, each on the port its pod serves", async () => {
    expect(await explain("x/a", "10.96.0.20", "80")).toBe(1);
    expect(io.stdout).toBe([
      "10.96.0.20 is the ClusterIP of Service y/web: policy applies to its endpoints, not to the ClusterIP (the switch translates the address before policy sees it).",
      "Its port 80/TCP has 2 ready endpoints; 1 allowed.",
      "",
      "ALLOW: x/a (10.244.1.2) to y/b (10.244.2.2) on 80/TCP",
      "  egress of x/a: allowed by spec.egress[1] of x/egress-y (isolated by x/egress-y)",
      "    Egress rule 1 of x/egress-y allows traffic to y/b on 80/TCP.",
      "  ingress of y/b: allowed by spec.ingress[0] of y/allow-a (isolated by y/allow-a, y/deny-all)",
      "    Ingress rule 0 of y/allow-a allows traffic from x/a on 80/TCP.",
      "",
      "DENY: x/a (10.244.1.2) to y/c (10.244.2.3) on 8080/TCP",
      "  egress of x/a: allowed by spec.egress[1] of x/egress-y (isolated by x/egress-y)",
      "    Egress rule 1 of x/egress-y allows traffic to y/c on 8080/TCP.",
      "  ingress of y/c: denied, no rule allows it (isolated by y/deny-all)",
      "    y/c is isolated for ingress by y/deny-all, which has no ingress rules, so all its ingress is denied.",
      "",
    ].join("\n"));
    expect(await explain("x/a", "10.96.0.20", "80", "-o", "json")).toBe(1);
    const j = JSON.parse(io.stdout);
    expect(j).toMatchObject({ service: "y/web", clusterIP: "10.96.0.20", port: 80, protocol: "TCP" });
    expect(j.endpoints.map((e: { ip: string; port: number; explanation: { allowed: boolean } }) => [e.ip, e.port, e.explanation.allowed])).toEqual([["10.244.2.2", 80, true], ["10.244.2.3", 8080, false]]);
  });

  it("says a Service refuses a port it does not have and a port with no endpoints", async () => {
    expect(await explain("x/a", "10.96.0.20", "443")).toBe(1);
    expect(io.stdout.split("\n")[1]).toBe("Service y/web has no port 443/TCP (it has 80/TCP): the switch refuses the connection.");
    expect(await explain("x/a", "10.96.0.21", "80")).toBe(1);
    expect(io.stdout.split("\n")[1]).toBe("Service y/empty has no ready endpoints for 80/TCP: the switch refuses the connection at once.");
    expect(await explain("x/a", "10.96.0.21", "80", "-o", "json")).toBe(1);
    expect(JSON.parse(io.stdout)).toEqual({ service: "y/empty", clusterIP: "10.96.0.21", port: 80, protocol: "TCP", endpoints: [], refused: "Service y/empty has no ready endpoints for 80/TCP: the switch refuses the connection at once." });
  });

  it("says which pod is unknown or has no address", async () => {
    expect(await explain("x/nope", "y/b", "80")).toBe(1);
    expect(io.stderr).toBe("tapnet: --from x/nope: no such pod (tapnet get pods -n x lists them)\n");
    expect(await explain("x/a", "y/p", "80")).toBe(1);
    expect(io.stderr).toBe("tapnet: --to y/p: the pod has no address (it is Pending): policy applies to running pods with an IP\n");
    expect(io.stdout).toBe("");
  });

  it.each([
    [["--to", "y/b", "--port", "80"], "tapnet: policy explain needs --from (see tapnet policy explain --help)\n"],
    [["--from", "x/a", "--port", "80"], "tapnet: policy explain needs --to (see tapnet policy explain --help)\n"],
    [["--from", "x/a", "--to", "y/b"], "tapnet: policy explain needs --port (see tapnet policy explain --help)\n"],
    [["--from", "x/a", "--to", "y/b", "--port", "http"], 'tapnet: --port must be PORT or PORT/PROTO, PORT from 1 to 65535 and PROTO tcp, udp or sctp, not "http"\n'],
    [["--from", "x/a", "--to", "y/b", "--port", "80/icmp"], 'tapnet: --port must be PORT or PORT/PROTO, PORT from 1 to 65535 and PROTO tcp, udp or sctp, not "80/icmp"\n'],
    [["--from", "x/a", "--to", "y/b", "--port", "80", "-o", "yaml"], 'tapnet: --output must be one of json, not "yaml"\n'],
    [["--from", "x/a/b", "--to", "y/b", "--port", "80"], 'tapnet: --from must be NAMESPACE/POD, POD (in default) or an IPv4 address, not "x/a/b"\n'],
    [["--from", "/a", "--to", "y/b", "--port", "80"], 'tapnet: --from must be NAMESPACE/POD, POD (in default) or an IPv4 address, not "/a"\n'],
  ])("policy explain %j exits 2 saying so", async (argv, message) => {
    expect(await cli("policy", "explain", ...argv)).toBe(2);
    expect(io.stderr).toBe(message);
    expect(io.stdout).toBe("");
  });

  it("reads --port as the port and the protocol number", () => {
    expect(parsePortArg("80")).toEqual({ port: 80, proto: 6 });
    expect(parsePortArg("53/UDP")).toEqual({ port: 53, proto: 17 });
    expect(parsePortArg("3868/sctp")).toEqual({ port: 3868, proto: 132 });
    for (const bad of ["0", "65536", "80/", "/tcp", "80/tcp/x", "-1", ""]) expect(() => parsePortArg(bad), bad).toThrow("--port must be");
  });

  it("has help with examples, and the policy group lists log and explain", async () => {
    expect(await cli("policy", "explain", "--help")).toBe(0);
    expect(io.stdout).toBe(commandHelp(policyExplainCommand) + "\n");
    expect(io.stdout).toContain("Examples:");
    expect(io.stdout).toContain("--port PORT/PROTO");
    expect(await cli("policy")).toBe(2);
    expect(io.stdout).toContain("Usage: tapnet policy <log|explain> [options]");
  });
});

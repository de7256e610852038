// NetworkPolicy on a real 3-node lab: truth tables of the policy engine's unit suite
// (test/cluster/netpol-cases.ts, built as the Kubernetes e2e network-policy tests build theirs),
// probed with real TCP connections and UDP requests between real pods across nodes. Namespaces
// x, y, z labelled ns=<name>; pods a (node1), b (node2), c (node3) in each, labelled pod=<name>,
// serving 80 and 81 on TCP and UDP (netpol-support.ts). For each case: its policies (and its
// labels, if it changes some) applied with `tapnet apply -f`, the tables probed until they hold
// (a policy takes effect a moment after apply returns), compared, and the policies deleted;
// every pod then reaches every other again. Also: a policy applied cuts established UDP flows
// it does not allow (the same source port again is the same flow), and deleted lets them again.
// TAPNET_LAB_PREFIX (+ "-netpol") names the lab instead of the usual test prefix (to keep clear of other labs).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CASES } from "../cluster/netpol-cases.ts";
import { uniquePrefix } from "./helpers.ts";
import { describeMismatch, formatTable, manifests, PODS, TruthLab, type Probe } from "./netpol-support.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prefix = process.env.TAPNET_LAB_PREFIX ? `${process.env.TAPNET_LAB_PREFIX}-netpol` : uniquePrefix("netpol");

/** A dozen of the cases, each field of the API in at least one. */
const PICKED = [
  "default-deny-all", // deny-all, both ways
  "default-deny-egress", // egress, TCP and UDP
  "namespaceSelector peer",
  "podSelector and namespaceSelector in one peer are ANDed",
  "an ipBlock with except", // ipBlock, except, 81/UDP
  "a named port",
  "an endPort range",
  "UDP egress to one namespace",
  "egress denied at the client though the server allows it", // egress and ingress on different nodes
  "stacked policies on ports 80 and 81", // multiple policies
  "deny-all with an allow on top",
  "a pod with an added label", // labels changed by apply
];

const ALL_ALLOWED: Probe[] = ([80, 81] as const).flatMap((port) => (["TCP", "UDP"] as const).map((protocol) => ({ port, protocol, expected: formatTable(PODS.map(() => PODS.map(() => true))) })));

describe("NetworkPolicy truth tables on a 3-node lab", () => {
  const lab = new TruthLab(prefix);

  beforeAll(async () => {
    await lab.up();
  }, 180_000);

  afterAll(async () => {
    await lab.down();
  }, 60_000);

  it("picks cases that are there", () => {
    expect(PICKED.filter((n) => !CASES.some((c) => c.name === n))).toEqual([]);
  });

  it("with no policy every pod reaches every pod, on 80 and 81, TCP and UDP", async () => {
    const got = await lab.waitForTables(ALL_ALLOWED, 15_000);
    expect(describeMismatch(ALL_ALLOWED, got)).toBe("");
  });

  it("a policy applied cuts the established flows it no longer allows; deleted, it lets them again", async () => {
    // UDP flows from y/a to x/b, each from a source port of its own: the same port again is the same flow.
    const flows = [42_001, 42_002, 42_003].map((sport) => ({ ip: lab.ipOf("x/b"), port: 80, protocol: "UDP" as const, sport }));
    const from = lab.prober("y/a");
    expect((await from.attempts(flows)).map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
    const deny = [{ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: "x", name: "it-deny-ingress" }, spec: { podSelector: {} } }];
    await manifests(prefix, "apply", deny);
    try {
      const t0 = Date.now();
      let statuses: string[] = [];
      while (Date.now() - t0 < 5_000) {
        statuses = (await from.attempts(flows, { timeoutMs: 500 })).map((r) => r.status);
        if (statuses.every((s) => s === "timeout")) break;
        await sleep(100);
      }
      expect(statuses).toEqual(["timeout", "timeout", "timeout"]);
    } finally {
      await manifests(prefix, "delete", deny);
    }
    const t1 = Date.now();
    let back: string[] = [];
    while (Date.now() - t1 < 5_000) {
      back = (await from.attempts(flows, { timeoutMs: 500 })).map((r) => r.status);
      if (back.every((s) => s === "ok")) break;
      await sleep(100);
    }
    expect(back).toEqual(["ok", "ok", "ok"]);
  });

  for (const c of CASES.filter((x) => PICKED.includes(x.name))) {
    it(c.name, async () => {
      const policies = c.policies(lab.ipOf);
      const relabelled = TruthLab.relabelled(c);
      await manifests(prefix, "apply", [...relabelled, ...policies]);
      try {
        const got = await lab.waitForTables(c.probes);
        expect(describeMismatch(c.probes, got)).toBe("");
      } finally {
        await manifests(prefix, "delete", policies);
        if (relabelled.length) await manifests(prefix, "apply", TruthLab.relabelled(c, true));
      }
      // The policies deleted, nothing is isolated any more.
      const back = await lab.waitForTables(ALL_ALLOWED);
      expect(describeMismatch(ALL_ALLOWED, back)).toBe("");
    });
  }
});

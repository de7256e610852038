/**
 * The NetworkPolicy truth tables, laid out as Kubernetes' e2e network-policy tests lay out theirs:
 * namespaces x, y and z labelled ns=<name>; pods a, b and c in each, labelled pod=<name>, each
 * serving 80 and 81 on TCP and UDP (container ports serve-80-tcp, serve-80-udp, serve-81-tcp,
 * serve-81-udp); a on node1, b on node2, c on node3.
 *
 * Each case is the policies as a user writes them (raw manifests: validation fills the defaults),
 * and per probe (a port and protocol) the expected 9×9 reachability: rows are the client, columns
 * the server, both in PODS order; "." the connection works, "X" it does not. A connection works
 * when the client's egress and the server's ingress both allow it. A pod always reaches itself.
 * The tables were written from the NetworkPolicy API's semantics, case by case, not by running
 * the engine: test/cluster/policy.test.ts checks the engine against them, and the integration
 * tests probe some of them with real connections on a three-node lab.
 *
 * ipBlock cases get each pod's address from `ipOf`; their blocks are /32s of pod addresses and
 * 0.0.0.0/0, so the tables hold whatever addresses the pods have.
 */

export const NAMESPACES = ["x", "y", "z"];
export const PODS = ["x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"];

/** Each pod's containers' ports, and its node. */
export const POD_PORTS = [
  { name: "serve-80-tcp", containerPort: 80, protocol: "TCP" },
  { name: "serve-80-udp", containerPort: 80, protocol: "UDP" },
  { name: "serve-81-tcp", containerPort: 81, protocol: "TCP" },
  { name: "serve-81-udp", containerPort: 81, protocol: "UDP" },
] as const;
export const NODE_OF: Record<string, string> = { a: "node1", b: "node2", c: "node3" };

export interface Probe {
  port: 80 | 81;
  protocol: "TCP" | "UDP";
  /** 9×9 table text: rows = from, columns = to, in PODS order; "." allowed, "X" denied; the diagonal allowed. */
  expected: string;
}

export interface NetpolCase {
  name: string;
  /** Raw manifests as a user writes them, given each pod's IP (for ipBlock cases). */
  policies: (ipOf: (pod: string) => string) => unknown[];
  /** Replaces ns=<name> for those namespaces. */
  namespaceLabels?: Record<string, Record<string, string>>;
  /** Replaces pod=<name> for those pods ("x/b"). */
  podLabels?: Record<string, Record<string, string>>;
  probes: Probe[];
}

/** A NetworkPolicy manifest. */
function np(namespace: string, name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

/** The /32 block of one address. */
function host(ip: string): string {
  return `${ip}/32`;
}

/**
 * A table's text to rows of booleans (true: allowed). Lines that do not begin with a pod name
 * (blank lines), and a header of pod names, are skipped; there must be one row per pod, in PODS order, each with
 * nine cells of "." or "X" (spaces between them optional) and "." on the diagonal.
 */
export function parseTable(text: string): boolean[][] {
  const rows = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => PODS.includes(l.split(/\s+/)[0]) && !l.split(/\s+/).every((w) => PODS.includes(w)));
  if (rows.length !== PODS.length) throw new Error(`a table needs ${PODS.length} rows, one per pod (${PODS.join(" ")}), not ${rows.length}`);
  return rows.map((line, i) => {
    const [name, ...rest] = line.split(/\s+/);
    if (name !== PODS[i]) throw new Error(`row ${i + 1} must be ${PODS[i]}, not ${name}`);
    const cells = rest.join("");
    if (!/^[.X]{9}$/.test(cells)) throw new Error(`row ${name} must have nine cells of "." or "X", not "${rest.join(" ")}"`);
    if (cells[i] !== ".") throw new Error(`row ${name}: a pod always reaches itself, so its own cell must be "."`);
    return [...cells].map((c) => c === ".");
  });
}

/** Rows of booleans to the text parseTable reads, with a header line. */
export function formatTable(t: boolean[][]): string {
  const lines = [`    ${PODS.join(" ")}`];
  t.forEach((row, i) => lines.push(`${PODS[i]}  ${row.map((c) => (c ? "." : "X")).join("   ")}`));
  return lines.join("\n");
}

export const CASES: NetpolCase[] = [
  {
    name: "default-deny-ingress",
    policies: () => [np("x", "deny-ingress", { podSelector: {}, policyTypes: ["Ingress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "default-deny-ingress with policyTypes left out",
    policies: () => [np("x", "deny-ingress", { podSelector: {} })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "default-deny-egress",
    policies: () => [np("x", "deny-egress", { podSelector: {}, policyTypes: ["Egress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "default-deny-all",
    policies: () => [np("x", "deny-all", { podSelector: {}, policyTypes: ["Ingress", "Egress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an empty egress list adds no Egress type",
    policies: () => [np("x", "deny-ingress", { podSelector: {}, egress: [] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "egress rules with policyTypes left out isolate both ways",
    policies: () => [np("x", "a-to-b", { podSelector: { matchLabels: { pod: "a" } }, egress: [{ to: [{ podSelector: { matchLabels: { pod: "b" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   X   X   X   X   X   X   X
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "allow-all ingress",
    policies: () => [np("x", "allow-all", { podSelector: {}, ingress: [{}] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "allow-all egress on top of deny-all egress",
    policies: () => [
      np("x", "deny-egress", { podSelector: {}, policyTypes: ["Egress"] }),
      np("x", "allow-egress", { podSelector: {}, policyTypes: ["Egress"], egress: [{}] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "podSelector peer",
    policies: () => [np("x", "a-from-b", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an empty podSelector peer is the policy's own namespace",
    policies: () => [np("x", "same-namespace", { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "namespaceSelector peer",
    policies: () => [np("x", "a-from-y", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an empty namespaceSelector is every namespace",
    policies: () => [np("x", "a-from-all", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: {} }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "namespaceSelector with In",
    policies: () => [np("x", "a-from-y-z", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: "ns", operator: "In", values: ["y", "z"] }] } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "podSelector and namespaceSelector in one peer are ANDed",
    policies: () => [
      np("x", "a-from-b-elsewhere", {
        podSelector: { matchLabels: { pod: "a" } },
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: "ns", operator: "NotIn", values: ["x"] }] }, podSelector: { matchLabels: { pod: "b" } } }] }],
      }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "podSelector and namespaceSelector in two peers are ORed",
    policies: () => [
      np("x", "a-from-elsewhere-or-b", {
        podSelector: { matchLabels: { pod: "a" } },
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: "ns", operator: "NotIn", values: ["x"] }] } }, { podSelector: { matchLabels: { pod: "b" } } }] }],
      }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "one pod of another namespace",
    policies: () => [np("x", "a-from-y-a", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } }, podSelector: { matchLabels: { pod: "a" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "namespaceSelector NotIn with podSelector In",
    policies: () => [
      np("x", "a-from-b-c-elsewhere", {
        podSelector: { matchLabels: { pod: "a" } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchExpressions: [{ key: "ns", operator: "NotIn", values: ["x"] }] },
                podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["b", "c"] }] },
              },
            ],
          },
        ],
      }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "podSelector with NotIn",
    policies: () => [np("x", "a-from-not-b", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: "pod", operator: "NotIn", values: ["b"] }] } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "podSelector with Exists",
    policies: () => [np("x", "a-from-clients", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: "role", operator: "Exists" }] } }] }] })],
    podLabels: { "x/b": { pod: "b", role: "client" }, "y/b": { pod: "b", role: "client" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a target podSelector with DoesNotExist",
    policies: () => [np("x", "isolate-non-clients", { podSelector: { matchExpressions: [{ key: "role", operator: "DoesNotExist" }] }, policyTypes: ["Ingress"] })],
    podLabels: { "x/b": { pod: "b", role: "client" }, "y/b": { pod: "b", role: "client" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   X   .   .   .   .   .   .
y/b  X   .   X   .   .   .   .   .   .
y/c  X   .   X   .   .   .   .   .   .
z/a  X   .   X   .   .   .   .   .   .
z/b  X   .   X   .   .   .   .   .   .
z/c  X   .   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "namespaces with the user's labels",
    policies: () => [np("x", "a-from-blue", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }] }] })],
    namespaceLabels: { y: { ns: "y", team: "blue" }, z: { ns: "z", team: "blue" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "the namespace name label is always there",
    policies: () => [np("x", "a-from-y-by-name", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "y" } } }] }] })],
    namespaceLabels: { y: { team: "red" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "egress to namespaces NotIn y by their name label",
    policies: () => [
      np("x", "a-not-to-y", {
        podSelector: { matchLabels: { pod: "a" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["y"] }] } }] }],
      }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   X   X   X   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a policy in y does not isolate x or z",
    policies: () => [np("y", "deny-a", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Ingress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   X   .   .   .   .   .
x/b  .   .   .   X   .   .   .   .   .
x/c  .   .   .   X   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   X   .   .   .   .   .
y/c  .   .   .   X   .   .   .   .   .
z/a  .   .   .   X   .   .   .   .   .
z/b  .   .   .   X   .   .   .   .   .
z/c  .   .   .   X   .   .   .   .   .
` },
    ],
  },
  {
    name: "a namespaceSelector peer does not make a policy apply elsewhere",
    policies: () => [np("z", "from-x", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "x" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   X   X   X
y/b  .   .   .   .   .   .   X   X   X
y/c  .   .   .   .   .   .   X   X   X
z/a  .   .   .   .   .   .   .   X   X
z/b  .   .   .   .   .   .   X   .   X
z/c  .   .   .   .   .   .   X   X   .
` },
    ],
  },
  {
    name: "a numbered port",
    policies: () => [np("x", "a-from-y-on-81", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: 81, protocol: "TCP" }] }] })],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "stacked policies on ports 80 and 81",
    policies: () => [
      np("x", "a-from-y-on-81", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: 81 }] }] }),
      np("x", "a-from-y-on-80", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: 80 }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a named port",
    policies: () => [np("x", "only-81", { podSelector: {}, ingress: [{ ports: [{ port: "serve-81-tcp" }] }] })],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a named UDP port",
    policies: () => [np("x", "a-on-80-udp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ protocol: "UDP", port: "serve-80-udp" }] }] })],
    probes: [
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a named port of another protocol matches nothing",
    policies: () => [np("x", "a-on-80-udp-as-tcp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ port: "serve-80-udp" }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a named port from one namespace",
    policies: () => [np("x", "a-from-y-on-80", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: "serve-80-tcp", protocol: "TCP" }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a named egress port",
    policies: () => [np("x", "egress-on-80", { podSelector: {}, policyTypes: ["Egress"], egress: [{ ports: [{ port: "serve-80-tcp" }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an endPort range",
    policies: () => [np("x", "a-on-81-90", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ port: 81, endPort: 90 }] }] })],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a UDP endPort range",
    policies: () => [np("x", "a-on-1-80-udp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ protocol: "UDP", port: 1, endPort: 80 }] }] })],
    probes: [
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an egress endPort range to one namespace",
    policies: () => [np("x", "b-to-z-on-80-81", { podSelector: { matchLabels: { pod: "b" } }, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: "z" } } }], ports: [{ port: 80, endPort: 81 }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   X   X   X   X   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   X   X   X   X   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   X   X   X   X   X   X   X
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a protocol without a port",
    policies: () => [np("x", "a-on-udp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ protocol: "UDP" }] }] })],
    probes: [
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "SCTP is not TCP",
    policies: () => [
      np("x", "deny-ingress", { podSelector: {}, policyTypes: ["Ingress"] }),
      np("x", "a-on-81-sctp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ protocol: "SCTP", port: 81 }] }] }),
    ],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  X   .   X   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   X   .   .   .   .   .   .
y/b  X   X   X   .   .   .   .   .   .
y/c  X   X   X   .   .   .   .   .   .
z/a  X   X   X   .   .   .   .   .   .
z/b  X   X   X   .   .   .   .   .   .
z/c  X   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a UDP rule does not allow TCP",
    policies: () => [np("x", "a-on-81-udp", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ ports: [{ protocol: "UDP", port: 81 }] }] })],
    probes: [
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "ingress and egress in one policy",
    policies: () => [
      np("x", "a-from-b-to-80", {
        podSelector: { matchLabels: { pod: "a" } },
        policyTypes: ["Egress", "Ingress"],
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }],
        egress: [{ ports: [{ port: 80 }] }],
      }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "egress denied at the client though the server allows it",
    policies: () => [
      np("x", "a-to-y-a", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: "y" } }, podSelector: { matchLabels: { pod: "a" } } }] }] }),
      np("y", "a-from-x-a", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "x" } }, podSelector: { matchLabels: { pod: "a" } } }] }] }),
      np("y", "b-from-x-a", { podSelector: { matchLabels: { pod: "b" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "x" } }, podSelector: { matchLabels: { pod: "a" } } }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   X   X   X   X   X
x/b  .   .   .   X   X   .   .   .   .
x/c  .   .   .   X   X   .   .   .   .
y/a  .   .   .   .   X   .   .   .   .
y/b  .   .   .   X   .   .   .   .   .
y/c  .   .   .   X   X   .   .   .   .
z/a  .   .   .   X   X   .   .   .   .
z/b  .   .   .   X   X   .   .   .   .
z/c  .   .   .   X   X   .   .   .   .
` },
    ],
  },
  {
    name: "ingress and egress are independent",
    policies: () => [
      np("x", "a-egress-all", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{}] }),
      np("x", "a-ingress-none", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Ingress"] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an ipBlock of one pod",
    policies: (ipOf) => [np("x", "a-to-y-b", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: host(ipOf("y/b")) } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   .   X   X   X   X
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an ipBlock with except",
    policies: (ipOf) => [np("x", "a-to-all-but-x-b", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: [host(ipOf("x/b"))] } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an address in except allowed by another policy",
    policies: (ipOf) => [
      np("x", "a-to-all-but-x-b", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: [host(ipOf("x/b"))] } }] }] }),
      np("x", "a-to-x-b", { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: host(ipOf("x/b")) } }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an ingress ipBlock with two excepts",
    policies: (ipOf) => [np("x", "a-from-all-but-two", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ ipBlock: { cidr: "0.0.0.0/0", except: [host(ipOf("y/a")), host(ipOf("z/c"))] } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "ipBlock and namespaceSelector peers are ORed",
    policies: (ipOf) => [np("x", "a-from-y-a-or-z", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ ipBlock: { cidr: host(ipOf("y/a")) } }, { namespaceSelector: { matchLabels: { ns: "z" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "an ipBlock with a port",
    policies: () => [np("x", "b-to-all-on-81", { podSelector: { matchLabels: { pod: "b" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ port: 81 }] }] })],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   X   X   X   X   X   X   X
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "deny-all with an allow on top",
    policies: () => [
      np("x", "deny-all", { podSelector: {}, policyTypes: ["Ingress"] }),
      np("x", "allow-all-to-a", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   .   .   .   .   .   .
x/b  .   .   X   .   .   .   .   .   .
x/c  .   X   .   .   .   .   .   .   .
y/a  .   X   X   .   .   .   .   .   .
y/b  .   X   X   .   .   .   .   .   .
y/c  .   X   X   .   .   .   .   .   .
z/a  .   X   X   .   .   .   .   .   .
z/b  .   X   X   .   .   .   .   .   .
z/c  .   X   X   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "allow-all ingress takes precedence over a port rule",
    policies: () => [
      np("x", "allow-80", { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] }),
      np("x", "allow-all", { podSelector: {}, ingress: [{}] }),
    ],
    probes: [
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "two policies' peers are unioned",
    policies: () => [
      np("x", "a-from-b", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }] }),
      np("x", "a-from-z", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "z" } } }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "egress within the namespace only",
    policies: () => [np("x", "egress-in-x", { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: {} }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   X   X   X   X   X   X
x/b  .   .   .   X   X   X   X   X   X
x/c  .   .   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a policy that selects no pod changes nothing",
    policies: () => [np("x", "nobody", { podSelector: { matchLabels: { pod: "nobody" } }, policyTypes: ["Ingress", "Egress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "from: [] matches every peer",
    policies: () => [np("x", "a-on-80", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [], ports: [{ port: 80 }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  .   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "ports: [] matches every port",
    policies: () => [np("x", "a-from-b", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }], ports: [] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a target podSelector with In",
    policies: () => [np("x", "deny-a-b", { podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["a", "b"] }] }, policyTypes: ["Ingress"] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   X   .   .   .   .   .   .   .
y/a  X   X   .   .   .   .   .   .   .
y/b  X   X   .   .   .   .   .   .   .
y/c  X   X   .   .   .   .   .   .   .
z/a  X   X   .   .   .   .   .   .   .
z/b  X   X   .   .   .   .   .   .   .
z/c  X   X   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a namespaceSelector no namespace matches",
    policies: () => [np("x", "a-from-w", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "w" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a pod with an added label",
    policies: () => [np("x", "a-from-updated-b", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b", pod2: "updated" } } }] }] })],
    podLabels: { "x/b": { pod: "b", pod2: "updated" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  X   .   .   .   .   .   .   .   .
y/b  X   .   .   .   .   .   .   .   .
y/c  X   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "a namespace with an added label",
    policies: () => [np("x", "a-from-updated-ns", { podSelector: { matchLabels: { pod: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: "updated" } } }] }] })],
    namespaceLabels: { y: { ns: "y", ns2: "updated" } },
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  X   .   .   .   .   .   .   .   .
x/c  X   .   .   .   .   .   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  X   .   .   .   .   .   .   .   .
z/b  X   .   .   .   .   .   .   .   .
z/c  X   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "UDP egress to one namespace",
    policies: () => [np("x", "c-to-z-on-80-udp", { podSelector: { matchLabels: { pod: "c" } }, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: "z" } } }], ports: [{ protocol: "UDP", port: 80 }] }] })],
    probes: [
      { port: 80, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   X   .   X   X   X   .   .   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 81, protocol: "UDP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   .   .   .   .   .   .   .   .
x/b  .   .   .   .   .   .   .   .   .
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "egress to one pod label in every namespace",
    policies: () => [np("x", "to-every-c", { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: "c" } } }] }] })],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   .   X   X   .   X   X   .
x/b  X   .   .   X   X   .   X   X   .
x/c  X   X   .   X   X   .   X   X   .
y/a  .   .   .   .   .   .   .   .   .
y/b  .   .   .   .   .   .   .   .   .
y/c  .   .   .   .   .   .   .   .   .
z/a  .   .   .   .   .   .   .   .   .
z/b  .   .   .   .   .   .   .   .   .
z/c  .   .   .   .   .   .   .   .   .
` },
    ],
  },
  {
    name: "default deny everywhere with y allowed to x on 80",
    policies: () => [
      ...["x", "y", "z"].map((ns) => np(ns, "deny-all", { podSelector: {}, policyTypes: ["Ingress", "Egress"] })),
      np("x", "from-y-on-80", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: 80 }] }] }),
      np("y", "to-x-on-80", { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: "x" } } }], ports: [{ port: 80 }] }] }),
    ],
    probes: [
      { port: 80, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  .   .   .   .   X   X   X   X   X
y/b  .   .   .   X   .   X   X   X   X
y/c  .   .   .   X   X   .   X   X   X
z/a  X   X   X   X   X   X   .   X   X
z/b  X   X   X   X   X   X   X   .   X
z/c  X   X   X   X   X   X   X   X   .
` },
      { port: 81, protocol: "TCP", expected: `
    x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a  .   X   X   X   X   X   X   X   X
x/b  X   .   X   X   X   X   X   X   X
x/c  X   X   .   X   X   X   X   X   X
y/a  X   X   X   .   X   X   X   X   X
y/b  X   X   X   X   .   X   X   X   X
y/c  X   X   X   X   X   .   X   X   X
z/a  X   X   X   X   X   X   .   X   X
z/b  X   X   X   X   X   X   X   .   X
z/c  X   X   X   X   X   X   X   X   .
` },
    ],
  },
];

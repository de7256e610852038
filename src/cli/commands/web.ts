/**
 * `tapnet web [--listen 127.0.0.1:8080]`: the live page. Serves a page (cli/web/server.ts) that
 * draws the cluster as its switches say it is (nodes, switches, pods with their addresses and
 * MACs, each switch's FDB, the tunnel's rates, drops), updated every second over server-sent
 * events, and traces a packet between two pods clicked on it, hop by hop, as `tapnet trace`
 * does. The switches are found as `tapnet trace` finds them (--prefix, --node, --control).
 * Runs until Ctrl-C (or SIGTERM), then ends the page's streams and exits 0.
 */
import { parseIpv4Address } from "../../wire/ipv4.ts";
import { intOption, UsageError, type Command } from "../args.ts";
import { WebServer } from "../web/server.ts";
import { switchOptions, switchTargets } from "./cluster-client.ts";

const err = (s: string) => process.stderr.write(s + "\n");

/** `--listen HOST:PORT`: HOST an IPv4 address or localhost, PORT 0 (any free one) to 65535. */
export function parseListen(raw: string): { host: string; port: number } {
  const bad = (why: string) => new UsageError(`--listen ${JSON.stringify(raw)}: ${why} (write HOST:PORT, such as 127.0.0.1:8080; port 0 takes any free port)`);
  const m = /^([^:]*):(\d{1,5})$/.exec(raw);
  if (!m) throw bad(/:/.test(raw) ? "the port must be a number" : "no port");
  const host = m[1] === "localhost" ? "127.0.0.1" : m[1];
  if (parseIpv4Address(host) === undefined) throw bad(`${JSON.stringify(m[1])} is not an IPv4 address`);
  const port = Number(m[2]);
  if (port > 65535) throw bad(`port ${port} is over 65535`);
  return { host, port };
}

export const isLoopback = (host: string) => host.startsWith("127.");

export const webCommand: Command = {
  name: "web",
  summary: "serve a live page of the cluster: nodes, pods, FDBs, tunnels, drops; click two pods to trace a packet",
  options: {
    listen: { type: "string", value: "HOST:PORT", help: "where the page listens: this machine only unless you give another address", default: "127.0.0.1:8080" },
    interval: { type: "string", value: "MS", help: "how often the page gets the cluster, in ms (200 to 60000)", default: "1000" },
    ...switchOptions,
  },
  details: [
    "Open the address it prints in a browser. The page draws each node with its switch, its pods (name, address, MAC,",
    "switch port) and the tunnel between nodes with its rates in each direction, lists each switch's FDB (the MACs",
    "it learned, on which port) and the drops it counted, and updates itself every --interval without reloading",
    "(server-sent events from /api/events). Click a pod, then another (or pick them in the form): the page traces a",
    "packet between them as `tapnet trace` does and moves it along the drawing hop by hop, each hop's headers shown",
    "as the terminal shows them.",
    "",
    "The page sends probes from the cluster's pods as root: it listens on loopback unless --listen says otherwise.",
    "Its data: GET /api/state (the cluster as JSON), GET /api/events, POST /api/trace {from, to, proto, port, count}.",
    "",
    "Examples:",
    "  tapnet web                                   # the lab tapnet, on http://127.0.0.1:8080/",
    "  tapnet web --prefix mylab --listen 127.0.0.1:0",
    "  ssh -L 8080:127.0.0.1:8080 labhost           # from your laptop, to see a remote machine's page",
  ].join("\n"),
  async run(p) {
    const { host, port } = parseListen(String(p.values.listen));
    const intervalMs = intOption(p, "interval", 200, 60_000);
    // The options are checked now: a wrong --node or --prefix is said before anything listens.
    switchTargets(p);
    const web = await WebServer.start({ host, port, intervalMs, targets: () => switchTargets(p) }).catch((e: Error) => {
      throw new UsageError(e.message);
    });
    if (!isLoopback(host)) err(`tapnet web: listening on ${host}, not only on this machine: whoever reaches it sees the cluster and can send probes from its pods`);
    process.stdout.write(`tapnet web: ${web.url} (Ctrl-C stops it)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await web.close();
    err("tapnet web: stopped");
    return 0;
  },
};

/** `tapnet switch`: one node's switch, as it runs on a VM. */
import { readFileSync } from "node:fs";
import { NodeAgent } from "../../control/agent.ts";
import { ConfigError, parseClusterConfig } from "../../control/config.ts";
import { jsonLogger, type Level } from "../../control/log.ts";
import { preflight } from "../../control/preflight.ts";
import { choiceOption, type Command } from "../args.ts";

export function defaultControlPath(node: string): string {
  return `/run/tapnet/${node}.sock`;
}

export const switchCommand: Command = {
  name: "switch",
  summary: "run this node's switch",
  options: {
    config: { type: "string", value: "FILE", help: "the cluster config (YAML or JSON)" },
    node: { type: "string", value: "NAME", help: "which node of the config this is" },
    control: { type: "string", value: "PATH", help: "the control socket", default: "/run/tapnet/<node>.sock" },
    "no-offloads": { type: "boolean", help: "turn off TAP checksum and TSO offloads (every frame at most one MTU)" },
    "log-level": { type: "string", value: "LEVEL", help: "debug, info, warn or error", default: "info" },
  },
  details: "The switch holds the gateway port tapnet0 and the pods' TAP ports, and listens on a control socket for `tapnet pod`.\nLogs are JSON lines on stderr. SIGTERM or SIGINT stops the switch: its pods are detached and its devices removed.",
  async run(p) {
    if (!p.values.config) throw new ConfigError("--config FILE is required (see tapnet switch --help)");
    if (!p.values.node) throw new ConfigError("--node NAME is required (see tapnet switch --help)");
    const file = String(p.values.config);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const config = parseClusterConfig(text, file);
    preflight(["root", "tun", "ip"]);
    const node = String(p.values.node);
    const level = choiceOption(p, "log-level", ["debug", "info", "warn", "error"] as Level[]);
    const log = jsonLogger({ node }, level);
    const controlPath = p.values.control === "/run/tapnet/<node>.sock" ? defaultControlPath(node) : String(p.values.control);
    const agent = await NodeAgent.start({ config, nodeName: node, controlPath, log, switchOptions: { offloads: !p.values["no-offloads"] } });
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) {
          log.warn("second signal: exiting now", { signal: sig });
          process.exit(1);
        }
        stopping = true;
        log.info("stopping", { signal: sig });
        const force = setTimeout(() => { log.error("stop took too long; exiting"); process.exit(1); }, 10_000);
        agent.stop().finally(() => { clearTimeout(force); resolve(); });
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });
    return 0;
  },
};

/**
 * tapnet's command line. Each command lives in commands/ and declares its options; this file
 * finds the command, parses its options, runs it, and turns errors into one-line messages.
 * Exit status: 0 success, 1 failure, 2 wrong usage.
 */
import { readFileSync } from "node:fs";
import { commandHelp, parse, UsageError, type Command } from "./args.ts";
import { benchCommand } from "./commands/bench.ts";
import { cniInstallCommand, cniUninstallCommand } from "./commands/cni.ts";
import { labCheckCommand, labDownCommand, labEtcdStartCommand, labEtcdStopCommand, labNodeAddCommand, labNodeStartCommand, labNodeStopCommand, labStatusCommand, labUpCommand } from "./commands/lab.ts";
import { podAddCommand, podDelCommand, podListCommand } from "./commands/pod.ts";
import { applyCommand, deleteCommand, getCommand } from "./commands/objects.ts";
import { conntrackListCommand } from "./commands/conntrack.ts";
import { policyExplainCommand, policyLogCommand } from "./commands/policy.ts";
import { switchCommand } from "./commands/switch.ts";
import { hostileCommand } from "./commands/hostile.ts";
import { soakCommand } from "./commands/soak.ts";
import { luaDissectorCommand } from "./commands/lua-dissector.ts";
import { traceCommand } from "./commands/trace.ts";
import { captureCommand } from "./commands/capture.ts";
import { statusCommand } from "./commands/status.ts";
import { checkCommand } from "./commands/check.ts";
import { webCommand } from "./commands/web.ts";
import { repoUrl, runtimeName } from "../io/runtime.ts";

export const COMMANDS: Command[] = [
  labUpCommand, labStatusCommand, labCheckCommand, labDownCommand, labNodeAddCommand, labNodeStopCommand, labNodeStartCommand,
  labEtcdStopCommand, labEtcdStartCommand,
  switchCommand, statusCommand, checkCommand, podAddCommand, podDelCommand, podListCommand, benchCommand,
  applyCommand, deleteCommand, getCommand,
  conntrackListCommand, policyLogCommand, policyExplainCommand,
  cniInstallCommand, cniUninstallCommand,
  hostileCommand, soakCommand, traceCommand, captureCommand, luaDissectorCommand, webCommand,
];

/** Errors whose message is the whole story; anything else is a bug and shows its stack. */
const EXPECTED = new Set(["ConfigError", "PreflightError", "LabError", "AgentError", "RpcError", "TapError", "ExecError", "IpamError", "SwitchError", "UsageError", "BenchError", "CpuError", "ApplyError", "ManifestError", "ClusterError", "CniInstallError", "CniBuildError", "UdpError"]);

/**
 * The machine said no to a file or socket (EACCES on /run/tapnet as a user, EROFS, ENOSPC):
 * Node's own message ("EACCES: permission denied, scandir '/run/tapnet'") is the whole story.
 */
function systemError(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof err.code !== "string" || !/^E[A-Z]+$/.test(err.code) || typeof err.syscall !== "string") return undefined;
  const denied = (err.code === "EACCES" || err.code === "EPERM") && process.getuid?.() !== 0;
  return err.message.split("\n")[0] + (denied ? " (tapnet's files and sockets are root's: run it as root)" : "");
}

function version(): string {
  const pkg = JSON.parse(readFileSync(repoUrl("package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export function usage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "tapnet: a userspace pod network: pods are network namespaces, each node's switch holds their TAP devices\nand carries traffic between nodes inside UDP (tapnet's own format, flannel's udp, or VXLAN)",
    "",
    "Usage: tapnet <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    `  ${"version".padEnd(w)}  print the version`,
    "",
    "Run `tapnet <command> --help` for a command's options.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    process.stdout.write(usage() + "\n");
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === "version" || argv[0] === "--version") {
    process.stdout.write(`tapnet ${version()} (${runtimeName})\n`);
    return 0;
  }
  // Longest match: "lab up" before "lab".
  const cmd = COMMANDS.find((c) => c.name.split(" ").every((w, i) => argv[i] === w));
  if (!cmd) {
    // A group ("lab", "lab node"): the most words of argv that begin some commands' names.
    const words = (c: Command) => c.name.split(" ");
    let k = 0;
    while (k < argv.length && COMMANDS.some((c) => words(c).length > k + 1 && argv.slice(0, k + 1).every((w, i) => words(c)[i] === w))) k++;
    const group = COMMANDS.filter((c) => argv.slice(0, k).every((w, i) => words(c)[i] === w));
    if (k > 0 && (argv.length === k || argv[k] === "--help" || argv[k] === "-h")) {
      const next = [...new Set(group.map((c) => words(c)[k]))];
      process.stdout.write(`Usage: tapnet ${argv.slice(0, k).join(" ")} <${next.join("|")}> [options]\n\n` +
        group.map((c) => `  ${c.name}: ${c.summary}`).join("\n") + "\n");
      return argv.length === k ? 2 : 0;
    }
    process.stderr.write(`tapnet: unknown command "${argv.slice(0, k + 1).join(" ")}" (see tapnet --help)\n`);
    return 2;
  }
  const rest = argv.slice(cmd.name.split(" ").length);
  try {
    const parsed = parse(cmd, rest, cmd.maxPositionals ?? (cmd.positionals ? 1 : 0));
    if (parsed === "help") {
      process.stdout.write(commandHelp(cmd) + "\n");
      return 0;
    }
    return await cmd.run(parsed);
  } catch (e) {
    const err = e as Error;
    if (EXPECTED.has(err?.constructor?.name)) {
      process.stderr.write(`tapnet: ${err.message}\n`);
      return err instanceof UsageError ? 2 : 1;
    }
    const system = systemError(e);
    if (system) {
      process.stderr.write(`tapnet: ${system}\n`);
      return 1;
    }
    process.stderr.write(`tapnet: internal error: ${err?.stack ?? String(e)}\n`);
    return 1;
  }
}

const isMain = (() => {
  const entry = process.argv[1] ?? "";
  return entry.endsWith("/cli/main.ts") || entry.endsWith("/bin/tapnet.mjs") || entry.endsWith("/bin/tapnet");
})();
if (isMain) {
  // `tapnet lab status | head` closes the pipe early: stop quietly, as command-line tools do.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
      throw e;
    });
  }
  process.exitCode = await main(process.argv.slice(2));
}

import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { UsageError, commandHelp, type Command } from "../../src/cli/args.ts";
import { labUpCommand } from "../../src/cli/commands/lab.ts";
import { COMMANDS, main, usage } from "../../src/cli/main.ts";
import { ConfigError } from "../../src/node/config.ts";
import { systemProbe } from "../../src/node/preflight.ts";

// Nothing here may create namespaces, devices or switches: every `main` call below either
// prints help or fails in option parsing before a command touches the machine.

let stdout: string;
let stderr: string;

beforeEach(() => {
  stdout = "";
  stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation(((s: string) => { stdout += String(s); return true; }) as typeof process.stdout.write);
  vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => { stderr += String(s); return true; }) as typeof process.stderr.write);
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Makes preflight see a machine with root, /dev/net/tun and every tool, whoever runs the tests. */
function pretendRoot(uid = 0): void {
  vi.spyOn(systemProbe, "uid").mockReturnValue(uid);
  vi.spyOn(systemProbe, "canOpen").mockReturnValue(true);
  vi.spyOn(systemProbe, "which").mockImplementation((cmd) => `/usr/bin/${cmd}`);
}

describe("main: top level", () => {
  it("prints the usage listing every command and returns 2 when given nothing", async () => {
    expect(await main([])).toBe(2);
    expect(stdout).toBe(usage() + "\n");
    for (const c of COMMANDS) expect(stdout).toContain(`  ${c.name}`);
    expect(stdout).toContain("version");
  });

  it.each([["help"], ["--help"], ["-h"]])("prints the usage and returns 0 for %s", async (arg) => {
    expect(await main([arg])).toBe(0);
    expect(stdout).toBe(usage() + "\n");
    expect(stderr).toBe("");
  });

  it.each([["version"], ["--version"]])("prints the package version and the runtime for %s", async (arg) => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await main([arg])).toBe(0);
    expect(stdout).toBe(`tapnet ${pkg.version} (node ${process.versions.node})\n`);
  });

  it("refuses an unknown command with 2, naming it and pointing at --help", async () => {
    expect(await main(["nosuch"])).toBe(2);
    expect(stderr).toBe('tapnet: unknown command "nosuch" (see tapnet --help)\n');
    expect(stdout).toBe("");
  });

  it("refuses an unknown subcommand of a known group, naming both words", async () => {
    expect(await main(["lab", "nosuch"])).toBe(2);
    expect(stderr).toContain('unknown command "lab nosuch"');
    expect(stderr).toContain("--help");
  });

  it("lists a group's commands and returns 2 when given only the group", async () => {
    expect(await main(["lab"])).toBe(2);
    expect(stdout).toContain("Usage: tapnet lab <up|status|check|down|node|etcd> [options]");
    for (const c of COMMANDS.filter((c) => c.name.startsWith("lab "))) expect(stdout).toContain(`  ${c.name}: ${c.summary}`);
    expect(stdout).not.toContain("pod add");
  });

  it("lists a group of three-word commands (lab node), and names three words when the third is unknown", async () => {
    expect(await main(["lab", "node"])).toBe(2);
    expect(stdout).toContain("Usage: tapnet lab node <add|stop|start> [options]");
    expect(stdout).not.toContain("lab up");
    expect(await main(["lab", "node", "nosuch"])).toBe(2);
    expect(stderr).toContain('unknown command "lab node nosuch"');
  });

  it("lists a group's commands and returns 0 for the group's --help", async () => {
    expect(await main(["pod", "--help"])).toBe(0);
    expect(stdout).toContain("Usage: tapnet pod <add|del|list> [options]");
  });
});

describe("main: a command's options", () => {
  it("prints lab up's help and returns 0 for --help and -h", async () => {
    expect(await main(["lab", "up", "--help"])).toBe(0);
    expect(stdout).toBe(commandHelp(labUpCommand) + "\n");
    expect(stdout).toContain("Usage: tapnet lab up [options]");
    expect(stdout).toMatch(/--nodes N\s.*\(default: 2\)/);
    expect(stdout).toMatch(/--backend TYPE\s.*\(default: tapnet\)/);
    expect(stderr).toBe("");
    stdout = "";
    expect(await main(["lab", "up", "-h"])).toBe(0);
    expect(stdout).toBe(commandHelp(labUpCommand) + "\n");
  });

  it("returns 2 for an unknown option, naming it and the command's --help", async () => {
    expect(await main(["lab", "up", "--bogus"])).toBe(2);
    expect(stderr).toMatch(/^tapnet: .*--bogus.*\(see tapnet lab up --help\)\n$/);
  });

  it("returns 2 for an argument a command does not take", async () => {
    expect(await main(["lab", "up", "extra"])).toBe(2);
    expect(stderr).toContain('unexpected argument "extra"');
    stderr = "";
    expect(await main(["pod", "add", "pod1", "pod2"])).toBe(2);
    expect(stderr).toContain('unexpected argument "pod2"');
  });

  it("returns 2 for `lab up --nodes x`, naming --nodes, on a machine that passes preflight", async () => {
    pretendRoot();
    expect(await main(["lab", "up", "--nodes", "x"])).toBe(2);
    expect(stderr).toBe('tapnet: --nodes must be a whole number from 1 to 16, not "x"\n');
  });

  // Once a bug (src/cli/commands/lab.ts labUpCommand.run): preflight(["root", ...]) runs before the
  // options are checked, so without root a wrong --nodes exits 1 with "must run as root"
  // instead of 2 with the usage error that main.ts documents ("2 wrong usage").
  it("returns 2 for `lab up --nodes x` when not root", async () => {
    pretendRoot(1000);
    expect(await main(["lab", "up", "--nodes", "x"])).toBe(2);
  });

  it("shows every command's help with each option, its value name, help and default", async () => {
    for (const c of COMMANDS) {
      stdout = "";
      expect(await main([...c.name.split(" "), "--help"]), c.name).toBe(0);
      const lines = stdout.split("\n");
      for (const [name, o] of Object.entries(c.options)) {
        const line = lines.find((l) => l.replace(/^\s+(-\w, )?/, "").split(" ")[0] === `--${name}`);
        expect(line, `${c.name} --${name}`).toBeDefined();
        if (o.value) expect(line, `${c.name} --${name}`).toContain(`--${name} ${o.value} `);
        expect(line!.endsWith(o.default !== undefined ? `${o.help} (default: ${o.default})` : o.help), `${c.name} --${name}: ${line}`).toBe(true);
      }
    }
  });
});

describe("main: errors from a command", () => {
  const fake = (run: Command["run"]): Command => ({ name: "zz-test run", summary: "a test command", options: {}, run });
  let added: Command | undefined;

  afterEach(() => {
    if (added) COMMANDS.splice(COMMANDS.indexOf(added), 1);
    added = undefined;
  });

  function add(c: Command): void {
    added = c;
    COMMANDS.push(c);
  }

  it("returns the command's own exit status", async () => {
    add(fake(async () => 7));
    expect(await main(["zz-test", "run"])).toBe(7);
  });

  it("prints an expected error as one line and returns 1", async () => {
    add(fake(async () => { throw new ConfigError("nodes[0].address: \"x\" is not an IPv4 address"); }));
    expect(await main(["zz-test", "run"])).toBe(1);
    expect(stderr).toBe('tapnet: nodes[0].address: "x" is not an IPv4 address\n');
  });

  it("returns 2 for a UsageError thrown by the command", async () => {
    add(fake(async () => { throw new UsageError("--pods must be a whole number"); }));
    expect(await main(["zz-test", "run"])).toBe(2);
    expect(stderr).toBe("tapnet: --pods must be a whole number\n");
  });

  it("prints an unexpected error as an internal error with its stack and returns 1", async () => {
    add(fake(async () => { throw new TypeError("cannot read properties of undefined"); }));
    expect(await main(["zz-test", "run"])).toBe(1);
    expect(stderr).toMatch(/^tapnet: internal error: TypeError: cannot read properties of undefined\n\s+at /);
  });
});

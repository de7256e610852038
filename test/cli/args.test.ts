import { describe, expect, it } from "vitest";
import { UsageError, choiceOption, commandHelp, intOption, parse, type Command, type Parsed } from "../../src/cli/args.ts";

const demo: Command = {
  name: "demo run",
  summary: "Run the demo.",
  positionals: "NAME",
  options: {
    nodes: { type: "string", short: "n", value: "N", help: "how many nodes", default: "1" },
    backend: { type: "string", value: "TYPE", help: "udp or vxlan", default: "udp" },
    netns: { type: "string", value: "NS", help: "an existing namespace" },
    json: { type: "boolean", help: "print JSON" },
  },
  details: "More about the demo.",
  run: async () => 0,
};

function usageError(f: () => unknown): UsageError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error("did not throw");
}

function parsed(values: Parsed["values"]): Parsed {
  return { values, positionals: [] };
}

describe("parse", () => {
  it("gives defaults for options not given, and nothing for those without a default", () => {
    expect(parse(demo, [], 1)).toEqual({ values: { nodes: "1", backend: "udp" }, positionals: [] });
  });

  it("reads long, short, --name=value and boolean options and positionals", () => {
    expect(parse(demo, ["pod1", "--nodes", "3", "--backend=vxlan", "--json"], 1)).toEqual({
      values: { nodes: "3", backend: "vxlan", json: true }, positionals: ["pod1"],
    });
    expect((parse(demo, ["-n", "4"], 1) as Parsed).values.nodes).toBe("4");
  });

  it("gives \"help\" for --help and -h, even with other options", () => {
    expect(parse(demo, ["--help"], 1)).toBe("help");
    expect(parse(demo, ["-h"], 1)).toBe("help");
    expect(parse(demo, ["--nodes", "2", "--help"], 1)).toBe("help");
  });

  it("refuses an unknown long option with a UsageError naming it and pointing at --help", () => {
    const err = usageError(() => parse(demo, ["--bogus"], 1));
    expect(err.message).toContain("--bogus");
    expect(err.message).toContain("tapnet demo run --help");
    expect(err.message).not.toContain("\n");
    expect(err.message).not.toMatch(/To specify a positional/);
  });

  it("refuses an unknown short option, naming it", () => {
    const err = usageError(() => parse(demo, ["-x"], 1));
    expect(err.message).toContain("-x");
    expect(err.message).toContain("tapnet demo run --help");
  });

  it("refuses a string option without its value, naming the option", () => {
    const err = usageError(() => parse(demo, ["--nodes"], 1));
    expect(err.message).toContain("--nodes");
    expect(err.message).toContain("--help");
  });

  it("refuses a value given to a boolean option, naming the option", () => {
    const err = usageError(() => parse(demo, ["--json=yes"], 1));
    expect(err.message).toContain("--json");
    expect(err.message).toContain("--help");
  });

  it("refuses more positionals than the command takes, quoting the first extra one", () => {
    const err = usageError(() => parse(demo, ["pod1", "pod2"], 1));
    expect(err.message).toContain('unexpected argument "pod2"');
    expect(err.message).toContain("tapnet demo run --help");
    expect(usageError(() => parse(demo, ["pod1"], 0)).message).toContain('"pod1"');
  });
});

// #13 finding 6: `--cpu -1` said "Option '--cpu' argument is ambiguous" rather than checking the range.
describe("parse: a negative number is a value", () => {
  it.each([["--nodes", "-1"], ["-n", "-1"], ["--nodes", "-0.5"], ["--nodes", "-1e3"], ["--nodes", "-.5"], ["--netns", "-7"]])("takes %s %s as the option and its value", (opt, v) => {
    const name = opt === "-n" ? "nodes" : opt.slice(2);
    expect((parse(demo, ["pod1", opt, v], 1) as Parsed).values[name]).toBe(v);
  });

  it("then lets intOption refuse it with the range, as any other value", () => {
    const p = parse(demo, ["--nodes", "-1"], 1) as Parsed;
    expect(usageError(() => intOption(p, "nodes", 1, 16)).message).toBe('--nodes must be a whole number from 1 to 16, not "-1"');
  });

  it("keeps a negative number after a boolean option, after --, and as a positional, what they were", () => {
    expect(usageError(() => parse(demo, ["--json", "-1"], 1)).message).toMatch(/Unknown option '-1'/);
    expect(parse(demo, ["--", "-1"], 1)).toEqual({ values: { nodes: "1", backend: "udp" }, positionals: ["-1"] });
    expect((parse(demo, ["--nodes", "2", "--", "--nodes", "-1"], 2) as Parsed).positionals).toEqual(["--nodes", "-1"]);
  });

  it("says plainly what to do when the word after an option is another option", () => {
    const err = usageError(() => parse(demo, ["--backend", "--json"], 1));
    expect(err.message).toBe("--backend needs a value, and the word after it starts with '-' (write --backend=VALUE to give such a value) (see tapnet demo run --help)");
    expect(usageError(() => parse(demo, ["-n", "-x"], 1)).message).toMatch(/^-n needs a value/);
  });
});

describe("intOption", () => {
  it("gives the number for a whole number within bounds, the bounds included", () => {
    expect(intOption(parsed({ nodes: "1" }), "nodes", 1, 16)).toBe(1);
    expect(intOption(parsed({ nodes: "16" }), "nodes", 1, 16)).toBe(16);
    expect(intOption(parsed({ pods: "0" }), "pods", 0, 64)).toBe(0);
  });

  it.each(["x", "", "-1", "1.5", "1e3", " 3", "0x10", "0", "17"])("refuses %j, naming the option, the bounds and the value", (raw) => {
    const err = usageError(() => intOption(parsed({ nodes: raw }), "nodes", 1, 16));
    expect(err.message).toContain("--nodes");
    expect(err.message).toContain("from 1 to 16");
    expect(err.message).toContain(`"${raw}"`);
  });
});

describe("choiceOption", () => {
  it("gives a listed choice", () => {
    expect(choiceOption(parsed({ backend: "vxlan" }), "backend", ["udp", "vxlan"])).toBe("vxlan");
  });

  it("refuses anything else, naming the option, the choices and the value", () => {
    for (const raw of ["wireguard", "UDP", ""]) {
      const err = usageError(() => choiceOption(parsed({ backend: raw }), "backend", ["udp", "vxlan"]));
      expect(err.message).toContain("--backend");
      expect(err.message).toContain("udp, vxlan");
      expect(err.message).toContain(`"${raw}"`);
    }
  });
});

describe("commandHelp", () => {
  const help = commandHelp(demo);
  const lines = help.split("\n");

  it("starts with the usage line, then the summary and the details", () => {
    expect(lines[0]).toBe("Usage: tapnet demo run NAME [options]");
    expect(help).toContain("Run the demo.");
    expect(help).toContain("More about the demo.");
    expect(help.indexOf("Run the demo.")).toBeLessThan(help.indexOf("Options:"));
  });

  it("lists every option with its short form, value name, help and default", () => {
    expect(lines.find((l) => l.includes("--nodes"))).toMatch(/^\s+-n, --nodes N\s+how many nodes \(default: 1\)$/);
    expect(lines.find((l) => l.includes("--backend"))).toMatch(/^\s+--backend TYPE\s+udp or vxlan \(default: udp\)$/);
    expect(lines.find((l) => l.includes("--netns"))).toMatch(/^\s+--netns NS\s+an existing namespace$/);
    expect(lines.find((l) => l.includes("--json"))).toMatch(/^\s+--json\s+print JSON$/);
    expect(lines.find((l) => l.includes("--help"))).toMatch(/^\s+-h, --help\s+show this help$/);
  });

  it("lines up the help texts in one column", () => {
    const opts = lines.slice(lines.indexOf("Options:") + 1);
    expect(opts).toHaveLength(5);
    const texts = ["how many nodes", "udp or vxlan", "an existing namespace", "print JSON", "show this help"];
    const cols = texts.map((t) => opts.find((l) => l.includes(t))!.indexOf(t));
    expect(new Set(cols).size).toBe(1);
    // Two spaces after the longest option.
    expect(cols[0]).toBe("  --backend TYPE".length + 2);
  });

  it("leaves [options] out of the usage line of a command without options", () => {
    expect(commandHelp({ ...demo, positionals: undefined, options: {} }).split("\n")[0]).toBe("Usage: tapnet demo run");
  });
});

/**
 * A small layer over node:util's parseArgs (on both runtimes): every command declares its
 * options with help text, gets `--help` for free, and unknown or malformed options become a
 * UsageError naming the option. A negative number after an option is its value (`--cpu -1`), for
 * the command to range-check like any other.
 */
import { parseArgs } from "node:util";

export class UsageError extends Error {}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** Shown as `--name VALUE`. */
  value?: string;
  help: string;
  default?: string;
  /** May be given more than once (`-f a.yaml -f b.yaml`): its value is then a list. */
  multiple?: boolean;
}

export interface Command {
  /** "lab up" */
  name: string;
  summary: string;
  /** Positional arguments in the usage line, e.g. "NAME". */
  positionals?: string;
  /** How many positional arguments it takes: default 1 with `positionals`, else 0. */
  maxPositionals?: number;
  options: Record<string, OptionSpec>;
  /** More lines for --help. */
  details?: string;
  run(args: Parsed): Promise<number>;
}

export interface Parsed {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
}

export function commandHelp(c: Command): string {
  const opts = Object.entries(c.options);
  const lines = [`Usage: tapnet ${c.name}${c.positionals ? ` ${c.positionals}` : ""}${opts.length ? " [options]" : ""}`, "", c.summary];
  if (c.details) lines.push("", c.details);
  lines.push("", "Options:");
  const rows = opts.map(([name, o]) => [`  ${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`, o.help + (o.default !== undefined ? ` (default: ${o.default})` : "")]);
  rows.push(["  -h, --help", "show this help"]);
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [a, b] of rows) lines.push(`${a.padEnd(w)}  ${b}`);
  return lines.join("\n");
}

/** A negative number (-1, -0.5, -1e3): after an option that takes a value, it is that value. */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * parseArgs takes "-1" after `--cpu` for an option and calls the value ambiguous; a negative
 * number is a value (the command then checks its range). Such pairs become `--cpu=-1`.
 */
function joinNegativeValues(c: Command, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") return [...out, ...argv.slice(i)];
    const name = a.startsWith("--") ? a.slice(2) : Object.keys(c.options).find((n) => c.options[n].short !== undefined && a === `-${c.options[n].short}`);
    const spec = name !== undefined && Object.hasOwn(c.options, name) ? c.options[name] : undefined;
    if (spec?.type === "string" && i + 1 < argv.length && NEGATIVE_NUMBER.test(argv[i + 1])) {
      out.push(`--${name}=${argv[++i]}`);
    } else {
      out.push(a);
    }
  }
  return out;
}

export function parse(c: Command, argv: string[], maxPositionals: number): Parsed | "help" {
  const options: Record<string, { type: "string" | "boolean"; short?: string; default?: string; multiple?: boolean }> = { help: { type: "boolean", short: "h" } };
  for (const [name, o] of Object.entries(c.options)) options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.default !== undefined ? { default: o.default } : {}), ...(o.multiple ? { multiple: true } : {}) };
  let r;
  try {
    r = parseArgs({ args: joinNegativeValues(c, argv), options, allowPositionals: true, strict: true });
  } catch (e) {
    const first = (e as Error).message.split("\n")[0];
    // "Option '--prefix' argument is ambiguous.": the word after it starts with '-'.
    const ambiguous = /^Option '(-[^']*)' argument is ambiguous/.exec(first);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} needs a value, and the word after it starts with '-' (write ${ambiguous[1]}=VALUE to give such a value) (see tapnet ${c.name} --help)`);
    throw new UsageError(`${first.replace(/\. To specify a positional.*$/, "")} (see tapnet ${c.name} --help)`);
  }
  if (r.values.help) return "help";
  if (r.positionals.length > maxPositionals) throw new UsageError(`unexpected argument "${r.positionals[maxPositionals]}" (see tapnet ${c.name} --help)`);
  return { values: r.values as Parsed["values"], positionals: r.positionals };
}

/** A whole number option within bounds. */
export function intOption(p: Parsed, name: string, min: number, max: number): number {
  const raw = String(p.values[name]);
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
  return Number(raw);
}

export function choiceOption<T extends string>(p: Parsed, name: string, choices: readonly T[]): T {
  const raw = String(p.values[name]);
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(", ")}, not "${raw}"`);
  return raw as T;
}

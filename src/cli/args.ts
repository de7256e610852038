/**
 * A small layer over node:util's parseArgs (on both runtimes): every command declares its
 * options with help text, gets `--help` for free, and unknown or malformed options become a
 * UsageError naming the option.
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

export function parse(c: Command, argv: string[], maxPositionals: number): Parsed | "help" {
  const options: Record<string, { type: "string" | "boolean"; short?: string; default?: string; multiple?: boolean }> = { help: { type: "boolean", short: "h" } };
  for (const [name, o] of Object.entries(c.options)) options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.default !== undefined ? { default: o.default } : {}), ...(o.multiple ? { multiple: true } : {}) };
  let r;
  try {
    r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0].replace(/\. To specify a positional.*$/, "")} (see tapnet ${c.name} --help)`);
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

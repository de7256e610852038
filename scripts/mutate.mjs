#!/usr/bin/env node
// npm run mutate [-- --since REF] [-- --break N] [-- <stryker options>]
//
// Mutation testing with StrykerJS (stryker.config.json): small behaviour-changing edits are made
// to the datapath's code one at a time (src/wire, src/tunnel, src/switch, and src/node's
// config, ipam and cidr), and the unit tests run against each. A mutant no test notices
// ("survived") is a behaviour the tests do not pin down.
//
// Some mutants change nothing that can be observed (an equivalent mutant: `i < n` and `i !== n`
// in a loop that counts up by one). They are listed in test/mutation/equivalent.json, each with
// its reason, and are left out of the score. An entry stands for one mutant (the file, the
// mutator, the text it replaced and the replacement; no line number, so code may move); one
// that no longer matches a surviving mutant is reported, so the list stays true.
//
//   --since REF   mutate only the files of that set changed since commit REF (and new ones):
//                 a run to make before committing.
//   --break N     exit 1 if the score is below N percent (default: none).
//   --score-only  run nothing: score the last run's report again (after editing the baseline).
// Anything else is passed to Stryker (`--incremental`, `--concurrency 1`, `--mutate FILE:10-40`).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const config = JSON.parse(readFileSync(path.join(root, "stryker.config.json"), "utf8"));
const baselinePath = path.join(root, "test/mutation/equivalent.json");
const reportPath = path.join(root, config.jsonReporter.fileName);

function usage(message) {
  console.error(`mutate: ${message}\nusage: npm run mutate [-- --since REF] [-- --break N] [-- stryker options]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const pass = [];
let since = null;
let breakAt = null;
let scoreOnly = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--help" || a === "-h") {
    console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 19).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
    process.exit(0);
  } else if (a === "--since") {
    since = args[++i] ?? usage("--since needs a commit");
  } else if (a === "--break") {
    breakAt = Number(args[++i]);
    if (!(breakAt >= 0 && breakAt <= 100)) usage("--break needs a percentage (0-100)");
  } else if (a === "--score-only") {
    scoreOnly = true;
  } else pass.push(a);
}

/** Is `file` (relative to the root) one of the configured `mutate` patterns? Only `dir/**\/*.ts` and plain paths occur. */
function inMutateSet(file) {
  return config.mutate.some((p) => (p.endsWith("/**/*.ts") ? file.startsWith(p.slice(0, -"**/*.ts".length)) && file.endsWith(".ts") : file === p));
}

if (since !== null) {
  const git = (...a) => execFileSync("git", a, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n").filter(Boolean);
  try {
    git("rev-parse", "--verify", `${since}^{commit}`);
  } catch {
    usage(`${since} is not a commit`);
  }
  const changed = [...new Set([...git("diff", "--name-only", since), ...git("ls-files", "--others", "--exclude-standard")])]
    .filter((f) => inMutateSet(f) && existsSync(path.join(root, f)));
  if (changed.length === 0) {
    console.log(`mutate: no file of the mutated set changed since ${since}`);
    process.exit(0);
  }
  console.log(`mutate: ${changed.length} file(s) changed since ${since}: ${changed.join(" ")}`);
  pass.push("--mutate", changed.join(","));
}

const started = Date.now();
if (!scoreOnly) {
  const run = spawnSync(path.join(root, "node_modules/.bin/stryker"), ["run", ...pass], { cwd: root, stdio: "inherit" });
  if (run.status !== 0) {
    console.error(`mutate: stryker failed (exit ${run.status ?? run.signal})`);
    process.exit(1);
  }
} else if (!existsSync(reportPath)) {
  usage(`no report to score: ${path.relative(root, reportPath)} is made by a run`);
}
const seconds = Math.round((Date.now() - started) / 1000);

// The score, with the accepted equivalent mutants left out.
const report = JSON.parse(readFileSync(reportPath, "utf8"));
const baseline = JSON.parse(readFileSync(baselinePath, "utf8"));
for (const [i, e] of baseline.entries()) {
  for (const k of ["file", "mutator", "original", "replacement", "reason"]) {
    if (typeof e[k] !== "string" || e[k] === "") throw new Error(`${baselinePath}: entry ${i} has no ${k}`);
  }
}
const used = new Set();

/** The source text a mutant replaced. */
function original(source, loc) {
  const lines = source.split("\n");
  const { start, end } = loc;
  if (start.line === end.line) return lines[start.line - 1].slice(start.column - 1, end.column - 1);
  const parts = [lines[start.line - 1].slice(start.column - 1), ...lines.slice(start.line, end.line - 1), lines[end.line - 1].slice(0, end.column - 1)];
  return parts.join("\n");
}

const groups = new Map(); // folder → counts
const count = (g, k) => {
  if (!groups.has(g)) groups.set(g, { killed: 0, survived: 0, noCoverage: 0, equivalent: 0, static: 0 });
  groups.get(g)[k]++;
};
const survivors = [];
for (const [file, { source, mutants }] of Object.entries(report.files)) {
  const rel = path.relative(root, path.resolve(root, file));
  const group = rel.startsWith("src/node/") ? "src/node (config, ipam, cidr)" : path.dirname(rel);
  for (const m of mutants) {
    const text = original(source, m.location);
    if (m.status === "Killed" || m.status === "Timeout") count(group, "killed");
    else if (m.status === "Ignored") count(group, "static");
    else if (m.status === "Survived" || m.status === "NoCoverage") {
      const i = baseline.findIndex((e, j) => !used.has(j) && e.file === rel && e.mutator === m.mutatorName && e.original === text && e.replacement === m.replacement);
      if (i >= 0) {
        used.add(i);
        count(group, "equivalent");
      } else {
        count(group, m.status === "Survived" ? "survived" : "noCoverage");
        survivors.push(`${rel}:${m.location.start.line}:${m.location.start.column} ${m.status} ${m.mutatorName}: ${JSON.stringify(text)} -> ${JSON.stringify(m.replacement)}`);
      }
    }
  }
}

const pct = (c) => {
  const total = c.killed + c.survived + c.noCoverage;
  return total === 0 ? 100 : (100 * c.killed) / total;
};
const sum = { killed: 0, survived: 0, noCoverage: 0, equivalent: 0, static: 0 };
console.log("\nmutation score, accepted equivalent mutants left out (test/mutation/equivalent.json):");
console.log(`${"".padEnd(34)} ${"score".padStart(7)} ${"killed".padStart(7)} ${"survived".padStart(9)} ${"no cov".padStart(7)} ${"equiv".padStart(6)} ${"static".padStart(7)}`);
for (const [g, c] of [...groups].sort()) {
  for (const k of Object.keys(sum)) sum[k] += c[k];
  console.log(`${g.padEnd(34)} ${pct(c).toFixed(1).padStart(6)}% ${String(c.killed).padStart(7)} ${String(c.survived).padStart(9)} ${String(c.noCoverage).padStart(7)} ${String(c.equivalent).padStart(6)} ${String(c.static).padStart(7)}`);
}
const datapath = { killed: 0, survived: 0, noCoverage: 0 };
for (const [g, c] of groups) if (/^src\/(wire|tunnel|switch)$/.test(g)) for (const k of Object.keys(datapath)) datapath[k] += c[k];
console.log(`${"all".padEnd(34)} ${pct(sum).toFixed(1).padStart(6)}% ${String(sum.killed).padStart(7)} ${String(sum.survived).padStart(9)} ${String(sum.noCoverage).padStart(7)} ${String(sum.equivalent).padStart(6)} ${String(sum.static).padStart(7)}`);
console.log(`src/wire + src/tunnel + src/switch: ${pct(datapath).toFixed(1)}%` + (scoreOnly ? " (the last run's report)" : `; the run took ${Math.floor(seconds / 60)} min ${seconds % 60} s`));
console.log("(static: mutants in module-level code, which every test would have to run again for; not run, as ignoreStatic says)");
if (survivors.length > 0) console.log(`\n${survivors.length} mutant(s) no test caught:\n  ${survivors.join("\n  ")}`);
const stale = baseline.filter((e, i) => !used.has(i) && Object.keys(report.files).some((f) => path.relative(root, path.resolve(root, f)) === e.file));
if (stale.length > 0) {
  console.log(`\n${stale.length} entr(y/ies) of test/mutation/equivalent.json matched no surviving mutant (killed now, or the code moved): remove or update them:`);
  for (const e of stale) console.log(`  ${e.file} ${e.mutator}: ${JSON.stringify(e.original)} -> ${JSON.stringify(e.replacement)}`);
}
if (breakAt !== null && pct(sum) < breakAt) {
  console.error(`mutate: score ${pct(sum).toFixed(1)}% is below --break ${breakAt}%`);
  process.exit(1);
}

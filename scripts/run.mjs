#!/usr/bin/env node
// npm run hostile [-- options] / npm run soak [-- options]: `tapnet hostile` and `tapnet soak`
// (src/cli/commands/hostile.ts, soak.ts), issue 13's long checks, kept out of `npm test`.
// Runs them through the CLI's own main(), adding them to its commands if it does not list them.
import { register } from "tsx/esm/api";
register();
const { COMMANDS, main } = await import("../src/cli/main.ts");
const { hostileCommand } = await import("../src/cli/commands/hostile.ts");
const { soakCommand } = await import("../src/cli/commands/soak.ts");
for (const c of [hostileCommand, soakCommand]) if (!COMMANDS.some((x) => x.name === c.name)) COMMANDS.push(c);
process.exitCode = await main(process.argv.slice(2));

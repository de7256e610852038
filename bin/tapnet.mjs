#!/usr/bin/env node
// tapnet on Node: register tsx so that the TypeScript sources run as they are, then start the CLI.
// (On Deno: deno run --allow-all src/cli/main.ts ...)
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");

/**
 * The lab supervisor's executable (supervisor.ts says what it does):
 *
 *   supervise.ts --node NAME --control SOCKET --status FILE --log FILE -- COMMAND...
 *
 * nodes.ts starts it detached, in the host's namespace, with COMMAND the node's switch command
 * (nsenter into the node's namespace, then `tapnet switch ...`): its command line names the
 * switch and its control socket, as the lab's journal checks before it signals a pid.
 */
import { parseArgs } from "node:util";
import { Supervisor } from "./supervisor.ts";

const dash = process.argv.indexOf("--");
const { values } = parseArgs({
  args: process.argv.slice(2, dash < 0 ? undefined : dash),
  options: { node: { type: "string" }, control: { type: "string" }, status: { type: "string" }, log: { type: "string" } },
});
const command = dash < 0 ? [] : process.argv.slice(dash + 1);
if (!values.node || !values.control || !values.status || !values.log || !command.length) {
  process.stderr.write("usage: supervise.ts --node NAME --control SOCKET --status FILE --log FILE -- COMMAND...\n");
  process.exit(2);
}
const sup = new Supervisor({ node: values.node, control: values.control, statusFile: values.status, log: values.log, command, cwd: process.cwd() });
process.on("SIGTERM", () => sup.stop());
process.on("SIGINT", () => sup.stop());
sup.start();
await sup.done;
process.exit(0);

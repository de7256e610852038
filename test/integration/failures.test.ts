// What a user sees when something is wrong, and that an interrupted `lab up` leaves nothing.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { cleanupTestLabs, exited, journal, netnsList, REPO, runCmd, TAPNET, uniquePrefix, waitFor } from "./helpers.ts";

afterAll(async () => {
  await cleanupTestLabs();
});

it("refuses to run without root, in one line that says why", async () => {
  // setpriv drops to nobody; the lab must not start, and must say what is missing.
  const r = await runCmd("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, TAPNET, "lab", "up", "--prefix", uniquePrefix("nr")]);
  expect(r.stderr).toBe("tapnet: tapnet must run as root: it creates network namespaces and TAP devices (try sudo)\n");
  expect(r.code).toBe(1);
  expect(netnsList().some((n) => n.startsWith(uniquePrefix("nr")))).toBe(false);
});

it("an interrupted lab up removes what it had made", async () => {
  const prefix = uniquePrefix("int");
  const child = spawn(process.execPath, [TAPNET, "lab", "up", "--pods", "12", "--prefix", prefix], { cwd: REPO, stdio: "ignore" });
  await waitFor(() => (journal(prefix)?.namespaces.length ?? 0) >= 4, 60_000, "the lab to be half made");
  const made = journal(prefix)!.namespaces;
  child.kill("SIGINT");
  const code = await exited(child);
  expect(code).not.toBe(0);
  const after = netnsList();
  expect(made.filter((n) => after.includes(n))).toEqual([]);
  expect(after.some((n) => n.startsWith(prefix))).toBe(false);
  expect(existsSync(`/run/tapnet/${prefix}`)).toBe(false);
});

it("lab status and check say plainly that no lab is up", async () => {
  const prefix = uniquePrefix("none");
  for (const cmd of ["status", "check"]) {
    const r = await runCmd(process.execPath, [TAPNET, "lab", cmd, "--prefix", prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`no lab named ${prefix} is up (start one with tapnet lab up)\n`);
  }
});

it("stops quietly when its reader goes away (tapnet ... | head)", async () => {
  const { spawn: spawnChild } = await import("node:child_process");
  const child = spawnChild(process.execPath, [TAPNET, "lab", "up", "--help"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.destroy(); // the reader is gone before the first write
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const code = await exited(child);
  expect(stderr).not.toContain("EPIPE");
  expect(code).toBe(0);
});

/**
 * The VM labs' files, checked by the tools that read them (`npm run test:vm`): shellcheck on the
 * scripts, systemd-analyze verify on the unit, cloud-init's schema on the Multipass user-data,
 * vagrant validate on the Vagrantfile. Each check is also shown to fail on a broken copy, so a
 * tool that says nothing is not taken for a pass. A missing tool fails its test, naming the
 * Debian package to install (shellcheck, systemd, cloud-init, vagrant).
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO } from "./machines.ts";
import { SWITCH_V8_FLAGS } from "../../src/lab/plan.ts";

const scratch = mkdtempSync(join(tmpdir(), "vm-files-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function tool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: opts.cwd ?? REPO, env: opts.env ?? process.env });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`${cmd} is not installed: apt-get install ${cmd === "systemd-analyze" ? "systemd" : cmd}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

describe("the VM labs' files, as their tools read them", () => {
  const scripts = ["vm/provision.sh", "vm/kernel-vxlan.sh", "vm/multipass/launch.sh", "test/vm/make-root.sh"];

  it("shellcheck finds nothing in the scripts, and does find a fault put in one", () => {
    expect(tool("shellcheck", scripts)).toEqual({ code: 0, out: "" });
    const bad = join(scratch, "bad.sh");
    writeFileSync(bad, readFileSync(join(REPO, "vm/provision.sh"), "utf8").replace('dest=/opt/tapnet\n', "dest=/opt/tapnet\nrm -rf $dest/\n"));
    expect(tool("shellcheck", [bad]).code).not.toBe(0);
  });

  /** systemd-analyze verify on a unit, installed in a scratch root with the programs it names. */
  function verify(unit: string, name = "tapnet.service", others: Record<string, string> = {}) {
    const root = mkdtempSync(join(scratch, "root-"));
    for (const dir of ["usr/local/bin", "usr/bin", "usr/sbin", "etc/systemd/system"]) mkdirSync(join(root, dir), { recursive: true });
    for (const exe of ["usr/local/bin/tapnet", "usr/bin/env", "usr/sbin/ip", "usr/bin/iperf3"]) writeFileSync(join(root, exe), "#!/bin/sh\n", { mode: 0o755 });
    cpSync("/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
    writeFileSync(join(root, "etc/systemd/system", name), unit);
    for (const [other, text] of Object.entries(others)) writeFileSync(join(root, "etc/systemd/system", other), text);
    return tool("systemd-analyze", ["verify", `--root=${root}`, `/etc/systemd/system/${name}`]);
  }

  it("systemd-analyze verify has nothing to say of tapnet.service; a wrong setting it names", () => {
    const unit = readFileSync(join(REPO, "vm/tapnet.service"), "utf8");
    expect(verify(unit)).toEqual({ code: 0, out: "" });
    // verify exits 0 on a setting it ignores, so what it prints is the verdict.
    expect(verify(unit.replace(/^KillMode=mixed$/m, "KillMode=gently")).out).toContain("Failed to parse kill mode specification, ignoring: gently");
  });

  it("systemd-analyze verify has nothing to say of tapnet-demo@.service (a template: verify makes an instance)", () => {
    const unit = readFileSync(join(REPO, "vm/tapnet-demo@.service"), "utf8");
    // verify starts instance "i", bound to run-netns-i.mount: on a node, systemd makes that unit
    // from /proc/self/mountinfo once the switch has made namespace i; here a file stands for it.
    const mount = "[Mount]\nWhat=/proc/self/ns/net\nWhere=/run/netns/i\nOptions=bind\n";
    const withMount = (u: string) => verify(u, "tapnet-demo@.service", { "run-netns-i.mount": mount });
    expect(withMount(unit)).toEqual({ code: 0, out: "" });
    expect(withMount(unit.replace("Restart=always", "Restart=sometimes")).out).toContain("Failed to parse service restart specifier, ignoring: sometimes");
    // Its server lives as long as its pod's namespace, and has nothing to do with tapnet.service
    // (a dependency on it would stop or restart the server with a restart of the switch).
    for (const line of ["BindsTo=run-netns-%i.mount", "After=run-netns-%i.mount", "WantedBy=run-netns-%i.mount", "ExecStart=ip netns exec %I iperf3 --server --port 5201", "SuccessExitStatus=1", "Restart=always"]) expect(unit).toContain(`\n${line}\n`);
    expect(unit.split("\n").filter((l) => !l.startsWith("#")).join("\n")).not.toContain("tapnet.service");
  });

  it("the unit stops the switch alone with SIGTERM, for a restart with SIGUSR2 (it keeps the pods), restarts it on failure, and waits for it to answer", () => {
    const unit = readFileSync(join(REPO, "vm/tapnet.service"), "utf8");
    for (const line of ["KillMode=mixed", "KillSignal=SIGTERM", "RestartKillSignal=SIGUSR2", "Restart=on-failure", "WantedBy=multi-user.target", "EnvironmentFile=/etc/tapnet/tapnet.env"]) expect(unit).toContain(`\n${line}\n`);
    // The switch runs with the lab's V8 flags, and no others.
    expect(unit).toContain(`\nExecStart=/usr/bin/env node ${SWITCH_V8_FLAGS.join(" ")} /usr/local/bin/tapnet switch --config /etc/tapnet/cluster.yaml --node \${TAPNET_NODE} --underlay-dev \${TAPNET_UNDERLAY_DEV} $TAPNET_OPTS\n`);
    expect(unit).toMatch(/\nExecStartPost=\/usr\/local\/bin\/tapnet status --node \$\{TAPNET_NODE\} --wait \d+ --quiet\n/);
  });

  it("cloud-init's schema takes the Multipass user-data, whose packages are provision.sh's, and refuses a broken one", () => {
    const userData = join(REPO, "vm/multipass/user-data");
    const r = tool("cloud-init", ["schema", "--config-file", userData]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("Valid cloud-config");
    const listed = [...readFileSync(userData, "utf8").matchAll(/^ {2}- ([a-z0-9.+-]+)$/gm)].map((m) => m[1]);
    expect(listed).toEqual(tool("sh", ["vm/provision.sh", "--print-packages"]).out.trim().split(" "));
    const bad = join(scratch, "user-data");
    writeFileSync(bad, readFileSync(userData, "utf8").replace("package_update: true", "package_update: sometimes"));
    expect(tool("cloud-init", ["schema", "--config-file", bad]).code).not.toBe(0);
  });

  it("vagrant validate takes the Vagrantfile for 1 to 50 nodes and every backend, and refuses a bad setting", () => {
    // A copy of vm/, so that the secret and .vagrant it makes stay out of the project.
    const copy = join(scratch, "project");
    cpSync(join(REPO, "vm"), join(copy, "vm"), { recursive: true });
    const dir = join(copy, "vm/vagrant");
    rmSync(join(dir, ".vagrant"), { recursive: true, force: true });
    rmSync(join(dir, ".tapnet-secret"), { force: true });
    const env = (more: Record<string, string>) => ({ ...process.env, VAGRANT_HOME: join(scratch, "vagrant.d"), ...more });
    const settings: Record<string, string>[] = [{}, { TAPNET_NODES: "1" }, { TAPNET_NODES: "50", TAPNET_BACKEND: "vxlan" }];
    for (const more of settings) {
      const r = tool("vagrant", ["validate"], { cwd: dir, env: env(more) });
      expect(r, JSON.stringify(more)).toMatchObject({ code: 0 });
      expect(r.out).toContain("Vagrantfile validated successfully.");
    }
    expect(readFileSync(join(dir, ".tapnet-secret"), "utf8")).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const status = tool("vagrant", ["status"], { cwd: dir, env: env({ TAPNET_NODES: "3" }) });
    expect(status.out).toMatch(/node1 +not created[\s\S]*node3 +not created/);
    expect(tool("vagrant", ["validate"], { cwd: dir, env: env({ TAPNET_NODES: "0" }) })).toMatchObject({ code: 1, out: expect.stringContaining("TAPNET_NODES=0: a number of nodes from 1 to 50") });
    expect(tool("vagrant", ["validate"], { cwd: dir, env: env({ TAPNET_BACKEND: "gre" }) }).out).toContain("TAPNET_BACKEND=gre: tapnet, udp or vxlan");
    rmSync(join(copy, "vm/provision.sh"));
    expect(tool("vagrant", ["validate"], { cwd: dir, env: env({}) }).out).toContain("`path` for shell provisioner does not exist");
  });
});

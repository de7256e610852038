// What `tapnet cni install|uninstall` write and remove, and how they find the switch's socket.
// (Building and installing the plugin itself runs esbuild: test/integration/cni-plugin.test.ts.)
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PLUGIN_MARK } from "../../src/cni/build.ts";
import { conflist, conflistPath, uninstallCni } from "../../src/cni/install.ts";
import { cniInstallCommand, socketFor } from "../../src/cli/commands/cni.ts";
import { parse, UsageError, type Parsed } from "../../src/cli/args.ts";

const dir = mkdtempSync(join(tmpdir(), "tapnet-cni-install-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const args = (...argv: string[]) => parse(cniInstallCommand, argv, 0) as Parsed;

describe("the conflist", () => {
  it("names the network, the spec version and the switch's socket; dns and portmap when asked", () => {
    expect(conflist({ name: "tapnet", socket: "/run/tapnet/n1.sock", cniVersion: "1.1.0" }))
      .toEqual({ cniVersion: "1.1.0", name: "tapnet", plugins: [{ type: "tapnet", socket: "/run/tapnet/n1.sock" }] });
    expect(conflist({ name: "lab-node2", socket: "/run/tapnet/lab/node2.sock", cniVersion: "1.0.0", dns: { nameservers: ["10.96.0.10"] }, portmap: true })).toEqual({
      cniVersion: "1.0.0", name: "lab-node2",
      plugins: [{ type: "tapnet", socket: "/run/tapnet/lab/node2.sock", dns: { nameservers: ["10.96.0.10"] } }, { type: "portmap", capabilities: { portMappings: true } }],
    });
    expect(conflistPath("/etc/cni/net.d", "tapnet")).toBe("/etc/cni/net.d/10-tapnet.conflist");
  });

  it("refuses a bad name, a relative socket, an unknown version", () => {
    expect(() => conflist({ name: "-x", socket: "/s", cniVersion: "1.1.0" })).toThrow('network name "-x"');
    expect(() => conflist({ name: "x", socket: "s.sock", cniVersion: "1.1.0" })).toThrow('socket "s.sock" is not an absolute path');
    expect(() => conflist({ name: "x", socket: "/s", cniVersion: "0.2.0" })).toThrow('cniVersion "0.2.0"');
  });
});

describe("uninstall", () => {
  const bin = join(dir, "bin");
  const conf = join(dir, "net.d");
  const list = (name: string, type = "tapnet") => writeFileSync(join(conf, `10-${name}.conflist`), JSON.stringify({ cniVersion: "1.1.0", name, plugins: [{ type }] }));
  mkdirSync(bin, { recursive: true });
  mkdirSync(conf, { recursive: true });

  it("removes the network's conflist, and the plugin only when no tapnet network is left", () => {
    writeFileSync(join(bin, "tapnet"), `#!/usr/bin/node\n${PLUGIN_MARK} (built)\n`);
    list("a");
    list("b");
    expect(uninstallCni({ binDir: bin, confDir: conf, name: "a" })).toEqual([join(conf, "10-a.conflist")]);
    expect(existsSync(join(bin, "tapnet"))).toBe(true);
    expect(uninstallCni({ binDir: bin, confDir: conf, name: "b" })).toEqual([join(conf, "10-b.conflist"), join(bin, "tapnet")]);
    expect(uninstallCni({ binDir: bin, confDir: conf, name: "b" })).toEqual([]);
  });

  it("leaves files that are not tapnet's", () => {
    list("c", "bridge");
    expect(() => uninstallCni({ binDir: bin, confDir: conf, name: "c" })).toThrow("is not a tapnet conflist: not removing it");
    writeFileSync(join(bin, "tapnet"), "#!/bin/sh\necho other\n");
    expect(() => uninstallCni({ binDir: bin, confDir: conf, name: "none" })).toThrow("is not tapnet's plugin: not removing it");
    expect(existsSync(join(bin, "tapnet"))).toBe(true);
  });
});

describe("which switch the conflist names", () => {
  it("--socket, else --node's socket in /run/tapnet", () => {
    expect(socketFor(args("--socket", "/x/n.sock"))).toBe("/x/n.sock");
    expect(socketFor(args("--node", "node2"))).toBe("/run/tapnet/node2.sock");
    expect(() => socketFor(args("--socket", "/x", "--node", "n"))).toThrow(UsageError);
  });

  it("else the only switch running here; none or several is a usage error", () => {
    const socks = join(dir, "run");
    mkdirSync(socks);
    expect(() => socketFor(args(), socks)).toThrow(/no switch runs here/);
    writeFileSync(join(socks, "n1.sock"), "");
    expect(socketFor(args(), socks)).toBe(join(socks, "n1.sock"));
    writeFileSync(join(socks, "n2.sock"), "");
    expect(() => socketFor(args(), socks)).toThrow(/several switches run here \(n1.sock, n2.sock\)/);
  });

  it("a lab's node by --prefix and --node, named in the error when there is no such lab", () => {
    expect(() => socketFor(args("--prefix", "no-such-lab-x", "--node", "node1"))).toThrow('no lab "no-such-lab-x" is up');
  });
});

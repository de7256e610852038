// The cluster config's sealing fields: backend.secret, backend.keyFile, backend.insecure, how
// they are refused, and a tapnet cluster refused by `tapnet switch` (readClusterConfig) when it
// has no secret and does not say it wants to be in the clear.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { checkClusterConfig, checkSealed, ConfigError, formatClusterConfig, parseClusterConfig, readClusterConfig } from "../../src/node/config.ts";

const SECRET = "0123456789abcdef0123456789abcdef"; // 32 characters: the least
const nodes = [{ name: "a", address: "192.168.56.11" }, { name: "b", address: "192.168.56.12" }];
const dir = mkdtempSync(join(tmpdir(), "tapnet-crypto-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const refusal = (raw: unknown) => {
  try {
    checkClusterConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  return "accepted";
};

describe("backend.secret and backend.keyFile", () => {
  it("take a secret of 32 to 1024 characters, on one line", () => {
    expect(checkClusterConfig({ backend: { secret: SECRET }, nodes }).backend).toEqual({ type: "tapnet", port: 8287, vni: 1, secret: SECRET });
    expect(refusal({ backend: { secret: SECRET.slice(1) }, nodes })).toBe("backend.secret: is 31 characters: a secret has at least 32 (a random one: openssl rand -base64 32)");
    expect(refusal({ backend: { secret: "x".repeat(1025) }, nodes })).toBe("backend.secret: is 1025 characters: at most 1024");
    expect(refusal({ backend: { secret: `${SECRET}\nmore` }, nodes })).toBe("backend.secret: must be one line");
    expect(refusal({ backend: { secret: 12345 }, nodes })).toBe("backend.secret: must be a string, not 12345");
  });

  it("read the secret from an absolute key file no other user can read, its trailing newline left out", () => {
    const f = join(dir, "secret");
    writeFileSync(f, `${SECRET}\n`, { mode: 0o600 });
    expect(checkClusterConfig({ backend: { keyFile: f }, nodes }).backend).toMatchObject({ secret: SECRET, keyFile: f });
    chmodSync(f, 0o644);
    expect(refusal({ backend: { keyFile: f }, nodes })).toBe(`backend.keyFile: ${f} can be read by every user: chmod 600 it (or 640 for a group)`);
    chmodSync(f, 0o640);
    expect(refusal({ backend: { keyFile: f }, nodes })).toBe("accepted");
    writeFileSync(f, "short\n");
    expect(refusal({ backend: { keyFile: f }, nodes })).toBe(`backend.keyFile: the secret in ${f} is 5 characters: a secret has at least 32 (a random one: openssl rand -base64 32)`);
    expect(refusal({ backend: { keyFile: "secret" }, nodes })).toBe('backend.keyFile: must be an absolute path, not "secret"');
    expect(refusal({ backend: { keyFile: join(dir, "none") }, nodes })).toBe(`backend.keyFile: cannot read ${join(dir, "none")}: ENOENT`);
    expect(refusal({ backend: { keyFile: f, secret: SECRET }, nodes })).toBe("backend.keyFile: give backend.secret or backend.keyFile, not both");
  });

  it("are the sealing backend's only: udp and vxlan are wire-compatible and never seal", () => {
    expect(refusal({ backend: { type: "udp", secret: SECRET }, nodes })).toBe("backend.secret: the udp backend never seals its datagrams (it is wire-compatible with other implementations); only tapnet does");
    expect(refusal({ backend: { type: "vxlan", insecure: true }, nodes })).toMatch(/^backend.insecure: the vxlan backend never seals/);
  });

  it("backend.insecure is true or false, and true cannot go with a secret", () => {
    expect(checkClusterConfig({ backend: { insecure: true }, nodes }).backend).toEqual({ type: "tapnet", port: 8287, vni: 1, insecure: true });
    expect(refusal({ backend: { insecure: "yes" }, nodes })).toBe('backend.insecure: must be true or false, not "yes"');
    expect(refusal({ backend: { insecure: true, secret: SECRET }, nodes })).toBe("backend.insecure: true sends in the clear: it cannot go with a secret");
    expect(checkClusterConfig({ backend: { insecure: false, secret: SECRET }, nodes }).backend.secret).toBe(SECRET);
  });

  it("are written back as given: the key file rather than its secret", () => {
    const f = join(dir, "kept");
    writeFileSync(f, SECRET, { mode: 0o600 });
    for (const b of [{ secret: SECRET }, { keyFile: f }, { insecure: true }, {}]) {
      const c = checkClusterConfig({ backend: b, nodes });
      const written = formatClusterConfig(c);
      expect(written.backend).toEqual({ type: "tapnet", port: 8287, ...b });
      expect(parseClusterConfig(stringifyYaml(written))).toEqual(c);
    }
  });
});

describe("a tapnet cluster without a secret", () => {
  const message = "backend.secret: the tapnet backend seals its datagrams with the cluster's secret, and this config has none: give backend.secret (32 characters or more, the same on every node: openssl rand -base64 32) or backend.keyFile (a file holding it), or set backend.insecure: true to send in the clear";

  it("is refused by tapnet switch (readClusterConfig), word for word, with two nodes or with the nodes left to etcd", () => {
    const f = join(dir, "cluster.yaml");
    writeFileSync(f, "nodes:\n  - { name: a, address: 192.168.56.11 }\n  - { name: b, address: 192.168.56.12 }\n");
    expect(() => readClusterConfig(f)).toThrow(new ConfigError(message));
    writeFileSync(f, "nodes: []\n");
    expect(() => readClusterConfig(f)).toThrow(new ConfigError(message));
  });

  it("is taken with a secret, with backend.insecure: true, on another backend, or with one node (it has no peer)", () => {
    const f = join(dir, "ok.yaml");
    for (const text of [
      `backend: { secret: "${SECRET}" }\nnodes: []\n`,
      "backend: { insecure: true }\nnodes: []\n",
      "backend: { type: udp }\nnodes: []\n",
      "nodes:\n  - { name: a, address: 192.168.56.11 }\n",
    ]) {
      writeFileSync(f, text);
      expect(readClusterConfig(f), text).toEqual(parseClusterConfig(text));
    }
    expect(() => checkSealed(checkClusterConfig({ backend: { insecure: false }, nodes }))).toThrow(new ConfigError(message));
  });
});

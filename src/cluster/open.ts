/**
 * Opens the store a URL names, as `--store` takes it:
 *
 *   file:/dir, file:///dir, /dir           the embedded store in that directory (file-kv.ts)
 *   etcd://host:port[,host:port...]        etcd over its v3 JSON gateway (etcd.ts), over http
 *   http://host:port[,host:port...]        the same; https:// for TLS
 *
 * An etcd endpoint without a port gets etcd's client port, 2379.
 */
import { EtcdKv } from "./etcd.ts";
import { FileKv } from "./file-kv.ts";
import type { Kv } from "./kv.ts";
import { StoreError } from "./store.ts";

export type StoreUrl = { type: "file"; dir: string } | { type: "etcd"; endpoints: string[] };

const FORMS = "file:/DIR, /DIR, etcd://HOST:PORT[,HOST:PORT] or http://HOST:PORT[,HOST:PORT]";

function refuse(url: string, why: string): never {
  throw new StoreError(`store ${JSON.stringify(url)}: ${why} (a store is ${FORMS})`);
}

export function parseStoreUrl(url: string): StoreUrl {
  const u = url.trim();
  if (u.startsWith("/")) return { type: "file", dir: u };
  if (u.startsWith("file:")) {
    // file:/dir and file:///dir (an empty host); file://host/dir names another machine.
    const rest = u.slice("file:".length);
    const dir = rest.startsWith("///") ? rest.slice(2) : rest.startsWith("//") ? undefined : rest;
    if (dir === undefined) refuse(url, "a file store is a directory on this machine (file:///DIR), not on a host");
    if (!dir.startsWith("/")) refuse(url, "the directory must be an absolute path");
    return { type: "file", dir: decodeURIComponent(dir) };
  }
  const m = /^(etcd|https?):\/\/(.*)$/.exec(u);
  if (!m) refuse(url, "not a store URL");
  const scheme = m[1] === "etcd" ? "http" : m[1];
  const endpoints = m[2].split(",").map((hostPort) => {
    const hp = hostPort.trim().replace(new RegExp(`^${scheme}://`), "").replace(/\/$/, "");
    const parts = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(hp);
    if (!parts) refuse(url, `${JSON.stringify(hostPort)} is not HOST or HOST:PORT`);
    const port = Number(parts[2] ?? 2379);
    if (!(port >= 1 && port <= 65535)) refuse(url, `port ${parts[2]} is not 1-65535`);
    return `${scheme}://${parts[1]}:${port}`;
  });
  return { type: "etcd", endpoints };
}

/** The Kv store a URL names (see the header); StoreError for a URL of no known form. */
export function openKv(url: string): Kv {
  const s = parseStoreUrl(url);
  return s.type === "file" ? new FileKv(s.dir) : new EtcdKv(s.endpoints);
}

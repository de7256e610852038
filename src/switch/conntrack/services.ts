/**
 * The Services as the datapath uses them (kube-proxy's table): compiled from a NetworkView's
 * services between rounds, looked up on the first packet of a flow to a ClusterIP. Each
 * service port is a row: its (protocol, ClusterIP, port) key, its endpoints in typed arrays,
 * its sessionAffinity. `pick` chooses an endpoint at random, each with the same weight, or the
 * one a client was sent to last when affinity holds (ClientIP: for affinitySeconds after the
 * client's last new connection, as kube-proxy's `recent` match does).
 *
 * Only TCP and UDP ports are served (tapnet does not track SCTP). Nothing here allocates per
 * packet; a client's first connection to a port with affinity adds one map entry.
 */
import type { NetworkView } from "../../cluster/network-view.ts";
import { formatIpv4, PROTO_TCP, PROTO_UDP } from "../../wire/ipv4.ts";

/** The key of (protocol, ClusterIP, port): exact in a double (under 2^50). */
function key(proto: number, ip: number, port: number): number {
  return (ip * 65536 + port) * 2 + (proto === PROTO_UDP ? 1 : 0);
}

interface Affinity {
  endpoint: number;
  until: number;
}

export class ServiceTable {
  private readonly rows = new Map<number, number>();
  /** Per row: where its endpoints start in epIp/epPort, and how many. */
  private readonly epStart: Int32Array;
  private readonly epCount: Int32Array;
  private readonly epIp: Uint32Array;
  private readonly epPort: Uint16Array;
  /** Per row: affinity timeout in seconds, 0 for none. */
  private readonly affinity: Float64Array;
  private readonly clients: (Map<number, Affinity> | undefined)[];
  /** Per row: "namespace/name:port", for flows and messages. */
  readonly names: string[];
  private readonly cidrNetwork: number;
  private readonly cidrLast: number;

  /** `before`: the table this one replaces; affinities to endpoints that remain are kept. */
  constructor(view: NetworkView | undefined, before?: ServiceTable) {
    const rows: { proto: number; ip: number; port: number; name: string; eps: { ip: number; port: number }[]; affinity: number }[] = [];
    for (const s of view?.services ?? []) {
      for (const p of s.ports) {
        if (p.protocol !== PROTO_TCP && p.protocol !== PROTO_UDP) continue;
        rows.push({ proto: p.protocol, ip: s.clusterIp >>> 0, port: p.port, name: `${s.namespace}/${s.name}:${p.name || p.port}`, eps: p.endpoints, affinity: s.affinitySeconds ?? 0 });
      }
    }
    const n = rows.length;
    const total = rows.reduce((a, r) => a + r.eps.length, 0);
    this.epStart = new Int32Array(n);
    this.epCount = new Int32Array(n);
    this.epIp = new Uint32Array(total);
    this.epPort = new Uint16Array(total);
    this.affinity = new Float64Array(n);
    this.clients = new Array(n).fill(undefined);
    this.names = rows.map((r) => r.name);
    let at = 0;
    rows.forEach((r, i) => {
      this.rows.set(key(r.proto, r.ip, r.port), i);
      this.epStart[i] = at;
      this.epCount[i] = r.eps.length;
      for (const e of r.eps) {
        this.epIp[at] = e.ip;
        this.epPort[at] = e.port;
        at++;
      }
      this.affinity[i] = r.affinity;
      if (r.affinity > 0) this.clients[i] = before?.carryAffinity(r.proto, r.ip, r.port, this, i) ?? new Map();
    });
    const c = view?.serviceCidr;
    this.cidrNetwork = c ? c.network >>> 0 : 1;
    this.cidrLast = c ? this.cidrNetwork + 2 ** (32 - c.prefix) - 1 : 0;
  }

  /** Is `ip` in the service CIDR (traffic to it that matches no row is refused)? */
  inServiceCidr(ip: number): boolean {
    return ip >= this.cidrNetwork && ip <= this.cidrLast;
  }

  /** The row of (proto, ClusterIP, port), or -1. */
  lookup(proto: number, ip: number, port: number): number {
    return this.rows.get(key(proto, ip, port)) ?? -1;
  }

  endpointCount(row: number): number {
    return this.epCount[row];
  }

  /**
   * An endpoint of `row` for `client` (an index into the endpoint arrays: see endpointIp and
   * endpointPort), at random or by affinity; -1 when it has none.
   */
  pick(row: number, client: number, now: number): number {
    const n = this.epCount[row];
    if (n === 0) return -1;
    const start = this.epStart[row];
    const clients = this.clients[row];
    if (clients) {
      const a = clients.get(client);
      if (a && a.until > now && a.endpoint >= start && a.endpoint < start + n) {
        a.until = now + this.affinity[row];
        return a.endpoint;
      }
      const e = start + Math.floor(Math.random() * n);
      if (a) { a.endpoint = e; a.until = now + this.affinity[row]; } else clients.set(client, { endpoint: e, until: now + this.affinity[row] });
      return e;
    }
    return start + Math.floor(Math.random() * n);
  }

  endpointIp(e: number): number {
    return this.epIp[e];
  }

  endpointPort(e: number): number {
    return this.epPort[e];
  }

  /** Is ip:port an endpoint of the row of (proto, ClusterIP, port)? */
  hasEndpoint(proto: number, vip: number, vport: number, ip: number, port: number): boolean {
    const row = this.lookup(proto, vip, vport);
    if (row < 0) return false;
    for (let e = this.epStart[row], end = e + this.epCount[row]; e < end; e++) if (this.epIp[e] === ip && this.epPort[e] === port) return true;
    return false;
  }

  /** The clients of this table's row for (proto, ip, port), re-pointed at the same endpoints in `next`'s row. */
  private carryAffinity(proto: number, ip: number, port: number, next: ServiceTable, nextRow: number): Map<number, Affinity> | undefined {
    const row = this.lookup(proto, ip, port);
    const clients = row >= 0 ? this.clients[row] : undefined;
    if (!clients) return undefined;
    const out = new Map<number, Affinity>();
    const start = next.epStart[nextRow];
    const n = next.epCount[nextRow];
    for (const [client, a] of clients) {
      for (let e = start; e < start + n; e++) {
        if (next.epIp[e] === this.epIp[a.endpoint] && next.epPort[e] === this.epPort[a.endpoint]) { out.set(client, { endpoint: e, until: a.until }); break; }
      }
    }
    return out;
  }

  /** For messages: "10.96.0.10:80/TCP" of a row's key. */
  static describe(proto: number, ip: number, port: number): string {
    return `${formatIpv4(ip)}:${port}/${proto === PROTO_UDP ? "UDP" : "TCP"}`;
  }
}

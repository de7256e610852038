/**
 * Subnet leases and membership (SubnetLeaser, watchMembers) on a MemoryKv whose clock the test
 * drives: lowest free subnet first, restarts, preferred subnets, names held by other machines,
 * exhaustion, expiry, renewal through store outages, a lost subnet, and a randomized race of
 * many nodes on one store with forced interleavings, checked against a naive model.
 */
import { describe, expect, it } from "vitest";
import { KvError, type Kv } from "../../src/cluster/kv.ts";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { leaseKey, parseLeaseKey, parseLeaseValue, parseMember, watchMembers, type Member, type Timers } from "../../src/cluster/members.ts";
import { LeaseError, SubnetLeaser, type SubnetLeaserOptions } from "../../src/cluster/subnet-lease.ts";
import { formatCidr, nthSubnet, subnetCount, type Cidr } from "../../src/wire/cidr.ts";
import { formatIpv4 } from "../../src/wire/ipv4.ts";
import { cidr, ip } from "../support/addresses.ts";
import { prng, trials } from "../support/random.ts";

/** TAPNET_SEED=<n> replays one run; otherwise a fixed seed keeps the suite deterministic. */
const SEED = Number(process.env.TAPNET_SEED ?? 0x1ea5e);

const settle = () => new Promise<void>((r) => setImmediate(r));

/** Timers on a clock the test moves: advance() runs what falls due, in order, letting promises settle. */
class FakeTime {
  now = 0;
  private seq = 0;
  private pending: { at: number; seq: number; fn: () => void }[] = [];
  readonly timers: Timers = {
    setTimeout: (fn, ms) => {
      const t = { at: this.now + ms, seq: this.seq++, fn };
      this.pending.push(t);
      return t;
    },
    clearTimeout: (h) => void (this.pending = this.pending.filter((t) => t !== h)),
  };
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await settle();
      const next = this.pending.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.pending.splice(this.pending.indexOf(next), 1);
      (this.now = next.at), next.fn();
    }
    this.now = end;
    await settle();
  }
}

/** A Kv whose every call fails while `down` (a store out of reach); counts the calls. */
function flaky(inner: Kv) {
  const state = { down: false, calls: new Map<string, number>() };
  const kv = new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        state.calls.set(String(prop), (state.calls.get(String(prop)) ?? 0) + 1);
        if (state.down && prop !== "watch") return Promise.reject(new KvError("connect ECONNREFUSED 127.0.0.1:2379"));
        return v.apply(target, args);
      };
    },
  });
  return { kv, state };
}

/** A Kv that yields a random number of microtasks and macrotasks before and after each call. */
function jittery(inner: Kv, rng: () => number): Kv {
  const yields = async () => {
    for (let n = Math.floor(rng() * 6); n > 0; n--) await (rng() < 0.25 ? settle() : Promise.resolve());
  };
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function" || prop === "watch") return v;
      return async (...args: unknown[]) => (await yields(), Promise.resolve(v.apply(target, args)).finally(yields));
    },
  });
}

function world(clusterCidr = "10.244.0.0/16", subnetPrefix = 24) {
  const time = new FakeTime();
  const mem = new MemoryKv(() => time.now);
  const logs: { level: string; msg: string }[] = [];
  const leaser = (node: string, address: string, extra: Partial<SubnetLeaserOptions> = {}) =>
    new SubnetLeaser({
      kv: mem, cluster: "lab", clusterCidr: cidr(clusterCidr), subnetPrefix, ttlSeconds: 30, node, address: ip(address),
      timers: time.timers, now: () => time.now, log: (level, msg) => logs.push({ level, msg }), ...extra,
    });
  let view: Member[] = [];
  let changes = 0;
  const watch = (kv: Kv = mem) =>
    watchMembers(kv, "lab", (m) => ((view = m), changes++), { timers: time.timers });
  const members = () => view.map((m) => `${m.node}@${formatIpv4(m.address)} ${formatCidr(m.subnet)}`);
  return { time, mem, logs, leaser, watch, members, changes: () => changes };
}

describe("lease keys and values", () => {
  it("writes flannel's key shape and parses it back", () => {
    expect(leaseKey("lab", cidr("10.244.3.0/24"))).toBe("/tapnet/lab/leases/10.244.3.0-24");
    expect(parseLeaseKey("/tapnet/lab/leases/10.244.3.0-24")).toEqual({ cluster: "lab", subnet: cidr("10.244.3.0/24") });
    for (const bad of ["/tapnet/lab/leases/10.244.3.1-24", "/tapnet/lab/leases/10.244.3.0-024", "/tapnet/lab/leases/10.244.3.0-33",
      "/tapnet/lab/leases/10.244.03.0-24", "/tapnet/lab/leases/10.244.3.0", "/tapnet/lab/pods/10.244.3.0-24", "/tapnet/a/b/leases/10.0.0.0-8"]) {
      expect(parseLeaseKey(bad), bad).toBeUndefined();
    }
    expect(() => leaseKey("a/b", cidr("10.0.0.0/8"))).toThrow(/cluster name "a\/b"/);
  });

  it("parses values and says what is wrong with a bad one", () => {
    expect(parseLeaseValue('{"node":"n3","address":"192.168.56.13","vtepMac":"0E-00-00-00-00-03"}')).toEqual({ node: "n3", address: ip("192.168.56.13"), vtepMac: "0e:00:00:00:00:03" });
    expect(parseLeaseValue("{")).toMatch(/not JSON/);
    expect(parseLeaseValue("[1]")).toMatch(/not a JSON object/);
    expect(parseLeaseValue('{"node":"","address":"1.2.3.4"}')).toMatch(/^node:/);
    expect(parseLeaseValue('{"node":"a","address":"1.2.3.400"}')).toMatch(/^address: "1.2.3.400"/);
    expect(parseLeaseValue('{"node":"a","address":"1.2.3.4","vtepMac":7}')).toMatch(/^vtepMac: 7/);
    expect(parseMember({ key: "/tapnet/lab/leases/x", value: "{}", createRevision: 1, modRevision: 1, lease: 0 })).toMatch(/key is not/);
  });

  it("refuses bad options with the option named", () => {
    const { leaser } = world("10.244.0.0/16");
    expect(() => leaser("n", "1.1.1.1", { subnetPrefix: 16 })).toThrow(/subnet prefix \/16 must be longer than the cluster CIDR 10.244.0.0\/16/);
    expect(() => leaser("n", "1.1.1.1", { subnetPrefix: 31 })).toThrow(/at most \/30/);
    expect(() => leaser("n", "1.1.1.1", { ttlSeconds: 0 })).toThrow(/lease TTL 0/);
    expect(() => leaser("", "1.1.1.1")).toThrow(/node name/);
    expect(() => leaser("n", "1.1.1.1", { vtepMac: "0e:00" })).toThrow(/VTEP MAC "0e:00"/);
  });
});

describe("SubnetLeaser.acquire", () => {
  it("gives the lowest free subnet, never subnet 0, in flannel's key with the node's value", async () => {
    const w = world();
    const n1 = w.leaser("node1", "192.168.56.11", { vtepMac: "0E:00:00:00:00:01" });
    expect(formatCidr(await n1.acquire())).toBe("10.244.1.0/24");
    const entry = await w.mem.get("/tapnet/lab/leases/10.244.1.0-24");
    expect(entry?.value).toBe('{"node":"node1","address":"192.168.56.11","vtepMac":"0e:00:00:00:00:01"}');
    expect(entry?.lease).toBe(n1.leaseId);
    expect(formatCidr(await w.leaser("node2", "192.168.56.12").acquire())).toBe("10.244.2.0/24");
    expect(formatCidr(await w.leaser("node3", "192.168.56.13").acquire())).toBe("10.244.3.0/24");
    await w.mem.delete("/tapnet/lab/leases/10.244.2.0-24");
    expect(formatCidr(await w.leaser("node4", "192.168.56.14").acquire())).toBe("10.244.2.0/24");
  });

  it("keeps the subnet when the node restarts within the TTL", async () => {
    const w = world();
    const view = w.watch();
    await view.ready;
    const a = w.leaser("node1", "192.168.56.11");
    await a.acquire();
    await w.leaser("node2", "192.168.56.12").acquire();
    a.start();
    await w.time.advance(12_000);
    await a.stop(); // the switch stops; its lease is kept
    await w.time.advance(20_000);
    const again = w.leaser("node1", "192.168.56.11");
    expect(formatCidr(await again.acquire())).toBe("10.244.1.0/24");
    expect((await w.mem.get(leaseKey("lab", cidr("10.244.1.0/24"))))?.lease).toBe(again.leaseId);
    expect(w.logs.at(-1)?.msg).toMatch(/kept its own lease/);
    again.start();
    await w.time.advance(100_000); // the old lease has expired long ago; the key is on the new one
    expect(w.members()).toEqual(["node1@192.168.56.11 10.244.1.0/24"]); // node2 never renewed
    view.close();
  });

  it("takes its preferred subnet after expiry if it is free, and another one if not", async () => {
    const w = world();
    const [n1, n2, n3] = [1, 2, 3].map((i) => w.leaser(`node${i}`, `192.168.56.1${i}`));
    for (const n of [n1, n2, n3]) await n.acquire();
    n3.start();
    await w.time.advance(40_000); // node1 and node2 expire
    expect((await w.mem.list("/tapnet/lab/leases/")).entries.map((e) => e.key)).toEqual(["/tapnet/lab/leases/10.244.3.0-24"]);
    const n2b = w.leaser("node2", "192.168.56.12", { preferred: cidr("10.244.2.0/24") });
    expect(formatCidr(await n2b.acquire())).toBe("10.244.2.0/24"); // not the lower 10.244.1.0/24
    expect(formatCidr(await w.leaser("node4", "192.168.56.14").acquire())).toBe("10.244.1.0/24");
    const n1b = w.leaser("node1", "192.168.56.11", { preferred: cidr("10.244.1.0/24") });
    expect(formatCidr(await n1b.acquire())).toBe("10.244.4.0/24"); // node4 holds it: never taken
    const n5 = w.leaser("node5", "192.168.56.15", { preferred: cidr("10.244.0.0/24") });
    expect(formatCidr(await n5.acquire())).toBe("10.244.5.0/24");
    expect(w.logs.some((l) => l.level === "warn" && /preferred subnet 10.244.0.0\/24 .* ignored/.test(l.msg))).toBe(true);
    const n6 = w.leaser("node6", "192.168.56.16", { preferred: cidr("10.245.7.0/24") });
    expect(formatCidr(await n6.acquire())).toBe("10.244.6.0/24");
  });

  it("refuses a node name held by another address until that lease expires", async () => {
    const w = world();
    await w.leaser("node1", "192.168.56.11").acquire();
    const twin = w.leaser("node1", "192.168.56.99");
    await expect(twin.acquire()).rejects.toThrow(
      /node name "node1" is held by 192.168.56.11 \(subnet 10.244.1.0\/24\), not this node's 192.168.56.99: are two machines using one name\?/,
    );
    expect((await w.mem.list("/tapnet/lab/")).entries).toHaveLength(1);
    await w.time.advance(31_000);
    expect(formatCidr(await twin.acquire())).toBe("10.244.1.0/24");
  });

  it("says how many subnets there are and who holds them when none is free", async () => {
    const w = world("10.0.0.0/24", 26);
    for (let i = 1; i <= 3; i++) await w.leaser(`node${i}`, `192.168.56.1${i}`).acquire();
    const late = w.leaser("node4", "192.168.56.14");
    await expect(late.acquire()).rejects.toThrow(LeaseError);
    await expect(late.acquire()).rejects.toThrow(
      'no free /26 subnet in 10.0.0.0/24 for node "node4": all 3 are leased (the first, 10.0.0.0/26, is never given): ' +
        "10.0.0.64/26 node1 (192.168.56.11), 10.0.0.128/26 node2 (192.168.56.12), 10.0.0.192/26 node3 (192.168.56.13).",
    );
    await w.mem.put("/tapnet/lab/leases/10.0.0.128-26", "not json");
    await expect(late.acquire()).rejects.toThrow("10.0.0.128/26 (unreadable value)");
    await w.mem.delete("/tapnet/lab/leases/10.0.0.128-26");
    expect(formatCidr(await late.acquire())).toBe("10.0.0.128/26");
  });
});

describe("renewal and membership", () => {
  it("renewal keeps a member; expiry removes it; release removes it at once", async () => {
    const w = world();
    const view = w.watch();
    await view.ready;
    const [n1, n2] = [w.leaser("node1", "192.168.56.11"), w.leaser("node2", "192.168.56.12")];
    for (const n of [n1, n2]) (await n.acquire(), n.start());
    await w.time.advance(300_000);
    expect(w.members()).toEqual(["node1@192.168.56.11 10.244.1.0/24", "node2@192.168.56.12 10.244.2.0/24"]);
    await n2.stop();
    await w.time.advance(25_000);
    expect(w.members()).toHaveLength(2);
    await w.time.advance(10_000);
    expect(w.members()).toEqual(["node1@192.168.56.11 10.244.1.0/24"]);
    await n1.stop({ release: true });
    await settle();
    expect(w.members()).toEqual([]);
    expect(n1.subnet).toBeUndefined();
    view.close();
  });

  it("rides out a store outage: logs once, keeps the node, renews when the store is back", async () => {
    const w = world();
    const { kv, state } = flaky(w.mem);
    const view = w.watch();
    await view.ready;
    const n1 = w.leaser("node1", "192.168.56.11", { kv });
    await n1.acquire();
    n1.start();
    await w.time.advance(10_000);
    const changes = w.changes();
    state.down = true;
    await w.time.advance(25_000); // short of the TTL since the last renewal
    const warns = () => w.logs.filter((l) => l.level === "warn");
    expect(warns().map((l) => l.msg)).toEqual([expect.stringMatching(/cannot renew the lease of 10.244.1.0\/24 on memory: connect ECONNREFUSED.*datapath keeps forwarding/)]);
    expect(state.calls.get("keepAlive")).toBeGreaterThan(4);
    state.down = false;
    await w.time.advance(10_000);
    expect(w.logs.at(-1)).toEqual({ level: "info", msg: "lease of 10.244.1.0/24 renewed: the store is back" });
    expect(w.changes()).toBe(changes); // the member never left
    // An outage longer than the TTL: the key goes, and comes back on the same subnet.
    state.down = true;
    await w.time.advance(60_000);
    w.mem.expire();
    expect(w.members()).toEqual([]);
    state.down = false;
    await w.time.advance(10_000);
    expect(warns().map((l) => l.msg)).toEqual([
      expect.stringMatching(/cannot renew/),
      expect.stringMatching(/cannot renew/),
      expect.stringMatching(/lease of 10.244.1.0\/24 expired .* taking the subnet again/),
    ]);
    expect(w.members()).toEqual(["node1@192.168.56.11 10.244.1.0/24"]);
    await w.time.advance(100_000);
    expect(w.members()).toEqual(["node1@192.168.56.11 10.244.1.0/24"]);
    expect((await w.mem.get(leaseKey("lab", cidr("10.244.1.0/24"))))?.lease).toBe(n1.leaseId);
    await n1.stop();
    view.close();
  });

  it("calls onLost when another node took the subnet while the lease was expired", async () => {
    const w = world();
    const { kv, state } = flaky(w.mem);
    const lost: string[] = [];
    const n1 = w.leaser("node1", "192.168.56.11", { kv, onLost: (why) => lost.push(why) });
    await n1.acquire();
    n1.start();
    state.down = true;
    await w.time.advance(40_000);
    const n2 = w.leaser("node2", "192.168.56.12");
    expect(formatCidr(await n2.acquire())).toBe("10.244.1.0/24");
    n2.start();
    state.down = false;
    await w.time.advance(10_000);
    expect(lost).toEqual([expect.stringMatching(/^subnet 10.244.1.0\/24 was lost: .* node "node2" \(192.168.56.12\) took it meanwhile; .* must stop$/)]);
    expect(n1.subnet).toBeUndefined();
    const calls = state.calls.get("keepAlive");
    await w.time.advance(100_000);
    expect(state.calls.get("keepAlive")).toBe(calls);
    expect((await w.mem.list("/tapnet/lab/leases/")).entries.map((e) => JSON.parse(e.value).node)).toEqual(["node2"]);
  });
});

describe("watchMembers", () => {
  it("skips and counts what does not parse, and lists again on resync", async () => {
    const w = world();
    await w.leaser("node1", "192.168.56.11").acquire();
    await w.mem.put("/tapnet/lab/leases/10.244.9.0-24", '{"node":"x"}');
    let resync: ((l: Awaited<ReturnType<Kv["list"]>>) => void) | undefined;
    const spy = new Proxy(w.mem, {
      get: (t, p) => (p === "watch" ? (prefix: string, from: number, h: Parameters<Kv["watch"]>[2]) => ((resync = h.resync), t.watch(prefix, from, h)) : Reflect.get(t, p, t)),
    });
    const skips: string[] = [];
    const view = watchMembers(spy, "lab", () => {}, { onSkip: (k, why) => skips.push(`${k}: ${why}`) });
    await view.ready;
    await w.mem.put("/tapnet/lab/leases/junk", "{}");
    expect(skips).toEqual(['/tapnet/lab/leases/10.244.9.0-24: address: undefined is not an IPv4 address', "/tapnet/lab/leases/junk: key is not <prefix>/leases/<a.b.c.d>-<prefix length>"]);
    expect(view.skipped()).toBe(2);
    await w.mem.delete("/tapnet/lab/leases/junk");
    expect(view.invalid().map((i) => i.key)).toEqual(["/tapnet/lab/leases/10.244.9.0-24"]);
    let seen: Member[] = [];
    const view2 = watchMembers(spy, "lab", (m) => (seen = m));
    await view2.ready;
    expect(seen.map((m) => m.node)).toEqual(["node1"]);
    await w.mem.put("/tapnet/lab/leases/10.244.0.0-24", '{"node":"node0","address":"10.0.0.1"}');
    expect(seen.map((m) => m.node)).toEqual(["node0", "node1"]);
    view2.close();
    await w.mem.delete("/tapnet/lab/leases/10.244.0.0-24");
    expect(seen.map((m) => m.node)).toEqual(["node0", "node1"]); // closed: no more calls
    resync!(await w.mem.list("/tapnet/lab/leases/")); // the first watch, told to list again
    expect(view.invalid().map((i) => i.key)).toEqual(["/tapnet/lab/leases/10.244.9.0-24"]);
    view.close();
  });

  it("retries the first list while the store is out of reach", async () => {
    const w = world();
    await w.leaser("node1", "192.168.56.11").acquire();
    const { kv, state } = flaky(w.mem);
    state.down = true;
    const status: string[] = [];
    let ready = false;
    const view = watchMembers(kv, "lab", () => {}, { timers: w.time.timers, onStatus: (s) => status.push(s) });
    void view.ready.then(() => (ready = true));
    await w.time.advance(5_000);
    expect([status, ready]).toEqual([["lost"], false]);
    state.down = false;
    await w.time.advance(10_000);
    expect([status, ready]).toEqual([["lost", "restored"], true]);
    view.close();
  });
});

/**
 * One race: holders already in the store (some restart, one name is claimed by an impostor),
 * then `fresh` new nodes all acquiring at once through a Kv that shuffles their calls.
 */
async function race(seed: number, clusterCidr: Cidr, subnetPrefix: number, fresh: number): Promise<void> {
  const rng = prng(seed);
  const w = world(formatCidr(clusterCidr), subnetPrefix);
  const count = subnetCount(clusterCidr, subnetPrefix);
  const holders = new Map<number, string>();
  const nHolders = Math.floor(rng() * Math.min(6, count / 3));
  while (holders.size < nHolders) {
    const i = 1 + Math.floor(rng() * (count - 1));
    if (!holders.has(i)) holders.set(i, `old${holders.size}`);
  }
  const addr = (name: string) => `192.168.${name.startsWith("old") ? 1 : 2}.${Number(name.replace(/\D/g, "")) + 1}`;
  for (const [i, name] of holders) await w.leaser(name, addr(name), { preferred: nthSubnet(clusterCidr, subnetPrefix, i) }).acquire();
  let view: Member[] = [];
  const watch = watchMembers(w.mem, "lab", (m) => (view = m));
  await watch.ready;

  const kv = jittery(w.mem, rng);
  const racers: { name: string; address: string; expect: (r: PromiseSettledResult<Cidr>) => void }[] = [];
  for (const [i, name] of holders) {
    if (rng() < 0.5) racers.push({ name, address: addr(name), expect: (r) => expect(r).toEqual({ status: "fulfilled", value: nthSubnet(clusterCidr, subnetPrefix, i) }) });
    else if (rng() < 0.3) racers.push({ name, address: "10.9.9.9", expect: (r) => expect(r.status === "rejected" && String(r.reason)).toMatch(/is held by/) });
  }
  for (let j = 0; j < fresh; j++) racers.push({ name: `new${j}`, address: addr(`new${j}`), expect: () => {} });
  const shuffled = racers.map((r) => ({ r, key: rng() })).sort((a, b) => a.key - b.key).map((x) => x.r);
  const results = await Promise.allSettled(shuffled.map((r) => w.leaser(r.name, r.address, { kv }).acquire()));

  // The naive model: the new nodes fill the lowest subnets the holders left, up to the end.
  const free = Array.from({ length: count - 1 }, (_, k) => k + 1).filter((i) => !holders.has(i));
  const expected = free.slice(0, Math.min(fresh, free.length)).map((i) => formatCidr(nthSubnet(clusterCidr, subnetPrefix, i)!));
  const got: string[] = [];
  shuffled.forEach((r, k) => {
    const res = results[k];
    r.expect(res);
    if (r.name.startsWith("new") && res.status === "fulfilled") got.push(formatCidr(res.value));
    if (r.name.startsWith("new") && res.status === "rejected") expect(res.reason instanceof LeaseError && res.reason.message).toMatch(/^no free/);
  });
  expect(new Set(got).size, "a subnet given twice").toBe(got.length);
  expect([...got].sort(), `seed ${seed}`).toEqual([...expected].sort());
  const stored = (await w.mem.list("/tapnet/lab/leases/")).entries.map((e) => parseMember(e) as Member);
  expect(stored.filter((m) => m.node.startsWith("new")).map((m) => formatCidr(m.subnet)).sort()).toEqual([...expected].sort());
  expect(stored.filter((m) => m.node.startsWith("old")).map((m) => m.node).sort()).toEqual([...holders.values()].sort());
  expect(view).toEqual(stored.sort((a, b) => a.subnet.network - b.subnet.network));
  watch.close();
}

describe("a randomized race of many nodes", () => {
  it("40 nodes on a /16 of /24s: distinct subnets, the lowest free ones, the watch sees them all", async () => {
    for (let t = 0; t < trials(40, 5); t++) await race(SEED + t, cidr("10.244.0.0/16"), 24, 40);
  });

  it("more nodes than subnets: the rest get a clear exhaustion error", async () => {
    for (let t = 0; t < trials(150, 10); t++) await race(SEED * 7 + t, cidr("10.8.0.0/24"), 28, 12 + (t % 14));
  });
});

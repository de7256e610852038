// The switch's control thread, with its real datapath worker, but no device: the control
// thread's libc is an in-memory one (its TAPs and tunnel socket are fds nobody opened), so the
// worker's real poll() finds those fds closed (POLLNVAL), which is how a port-down is seen here.
import { createRequire } from "node:module";
import { MessagePort } from "node:worker_threads";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Libc } from "../../src/io/libc.ts";
import { TUNSETIFF, TUNSETOFFLOAD, TUNSETPERSIST, TUNSETVNETHDRSZ, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 } from "../../src/io/tap.ts";
import { PORT_COUNTERS, PortCounter } from "../../src/switch/counters.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { SWITCH_DEFAULTS, Switch, SwitchError, type PortInfo } from "../../src/switch/switch.ts";
import { config, ip } from "./router-support.ts";

/** Far above any fd this process may open (its limit is far lower): poll() says POLLNVAL. */
const FIRST_FD = 2_000_000_000;

/** What the control thread asked of its libc. */
const calls: string[] = [];
let nextFd = FIRST_FD;
/** When set, the next TAP "opened" is this fd (one end of a socketpair), not a closed one. */
let nextTapFd: number | undefined;

/**
 * The wake-up eventfd is real (the datapath worker polls it with the real libc), and so are its
 * writes and its close; none of them is among `calls`.
 */
const real = (() => {
  let lib: { eventfd: (i: number, f: number) => number; write: (fd: number, b: Uint8Array, n: number) => number; close: (fd: number) => number } | undefined;
  return () => {
    if (!lib) {
      const l = createRequire(import.meta.url)("koffi").load("libc.so.6");
      lib = { eventfd: l.func("int eventfd(unsigned int initval, int flags)"), write: l.func("long write(int fd, const uint8_t *buf, unsigned long n)"), close: l.func("int close(int fd)") };
    }
    return lib!;
  };
})();
const eventfds = new Set<number>();

const controlLibc = {
  eventfd: (initval: number, flags: number) => { const fd = real().eventfd(initval, flags); eventfds.add(fd); return fd; },
  write: (fd: number, b: Uint8Array, n: number) => { if (!eventfds.has(fd)) throw new Error(`the control thread writes only its eventfd, not fd ${fd}`); return real().write(fd, b, n); },
  open: (path: string) => {
    calls.push(`open ${path}`);
    if (nextTapFd === undefined) return nextFd++;
    const fd = nextTapFd;
    nextTapFd = undefined;
    return fd;
  },
  close: (fd: number) => {
    if (eventfds.delete(fd)) return real().close(fd);
    calls.push(`close ${fd}`);
    return 0;
  },
  ioctlPtr: (fd: number, req: number) => { calls.push(`ioctl ${fd} ${req === TUNSETIFF ? "TUNSETIFF" : req}`); return 0; },
  ioctlInt: (fd: number, req: number, arg: number) => { calls.push(`ioctl ${fd} ${req === TUNSETOFFLOAD ? "TUNSETOFFLOAD" : req} ${arg}`); return 0; },
  socket: () => { calls.push("socket"); return nextFd++; },
  setsockopt: () => 0,
  bind: (fd: number) => { calls.push(`bind ${fd}`); return 0; },
  errno: () => 0,
} as unknown as Libc;

vi.mock("../../src/io/libc.ts", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../src/io/libc.ts")>()),
  loadLibc: async () => controlLibc,
}));

/** The commands the control thread posted to the datapath (other messages, the worker's own, left out). */
let posted: unknown[] = [];
beforeEach(() => {
  calls.length = 0;
  posted = [];
  const post = MessagePort.prototype.postMessage;
  vi.spyOn(MessagePort.prototype, "postMessage").mockImplementation(function (this: MessagePort, ...args: Parameters<MessagePort["postMessage"]>) {
    const m: unknown = args[0];
    if (typeof m === "object" && m !== null && "op" in m) posted.push(m);
    return post.apply(this, args);
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/**
 * A Unix datagram socketpair standing in for a TAP: the datapath reads and writes one end as it
 * would a TAP's fd (a datagram per frame), the test the other. No device, no network.
 */
async function fakeTap() {
  const koffi = (await import("koffi")).default;
  const lib = koffi.load("libc.so.6");
  const socketpair = lib.func("int socketpair(int domain, int type, int protocol, _Out_ int *sv)");
  const write = lib.func("long write(int fd, const uint8_t *buf, unsigned long n)");
  const close = lib.func("int close(int fd)");
  const sv = [0, 0];
  if (socketpair(1 /* AF_UNIX */, 2 /* SOCK_DGRAM */ | 0o4000 /* SOCK_NONBLOCK */, 0, sv) !== 0) throw new Error("socketpair failed");
  return {
    datapathEnd: sv[0],
    send: (b: Uint8Array) => write(sv[1], b, b.length),
    close: () => { close(sv[0]); close(sv[1]); },
  };
}

async function until(ok: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await ok())) await new Promise((r) => setTimeout(r, 20));
}

const ZERO = { rx_frames: 0, rx_bytes: 0, tx_frames: 0, tx_bytes: 0, rx_flooded: 0 };

// Starting a datapath worker takes a second or more (it loads TypeScript and libc), so most
// tests share one switch, and leave it without ports.
describe("Switch", { timeout: 60_000 }, () => {
  let sw: Switch;
  let startCalls: string[] = [];
  beforeAll(async () => {
    nextFd = FIRST_FD;
    calls.length = 0;
    sw = await Switch.start({ maxPorts: 4, batch: 4, offloads: false, fdb: { maxEntries: 16 } as never });
    startCalls = [...calls];
  }, 60_000);
  afterEach(async () => {
    sw.onPortDown(() => {});
    for (const p of sw.ports()) await sw.removePort(p.port);
  });
  afterAll(async () => {
    await sw.stop();
  });

  it("starts its datapath without routing: ready, no ports, an empty FDB, no tunnel counters, nothing opened", async () => {
    expect(startCalls).toEqual([]);
    expect(sw.ports()).toEqual([]);
    expect(await sw.fdb()).toEqual([]);
    expect(sw.tunnelCounters()).toBeUndefined();
    expect(sw.tunnel).toBeUndefined();
  });

  it("setNodes on a switch without routing is refused before the datapath is asked", async () => {
    await expect(sw.setNodes(config("udp").nodes, 0)).rejects.toThrow(
      new SwitchError("this switch does not route between nodes: start it with `routing` to change its nodes"));
    expect(posted).toEqual([]);
  });

  it("reports the heaps of both threads: the datapath's comes from the worker, not from this thread", async () => {
    const h = await sw.heaps();
    for (const t of [h.control, h.datapath]) {
      expect(t.used).toBeGreaterThan(0);
      expect(t.total).toBeGreaterThanOrEqual(t.used);
    }
    // The worker holds its batch's slots (4 of 64 KB and more) outside its heap; this thread does not hold them.
    expect(h.datapath.external).toBeGreaterThanOrEqual(4 * 65536);
    expect(h.datapath.used).not.toBe(h.control.used);
    // The datapath thread's scheduling, read by that thread: it has run and slept in poll().
    expect(h.datapathThread?.cpuMs).toBeGreaterThan(0);
    expect(h.datapathThread?.sleeps).toBeGreaterThan(0);
  });

  it("arms trace filters in the datapath, refusing a bad one with its fault, and reads their records", async () => {
    const f = { id: 3, proto: 1, a: 0, b: 0, aPort: 0, bPort: 0, bothWays: true, count: 2 };
    await expect(sw.trace([{ ...f, count: 0 }])).rejects.toThrow(new SwitchError("trace filter 3: count must be 1 to 1000, not 0"));
    await sw.trace([f]);
    expect(await sw.traceRecords()).toEqual({ records: [], lost: 0 });
    await sw.trace([]);
  });

  it("merges the options given with the defaults, the FDB's too", () => {
    expect(sw.options).toEqual({ ...SWITCH_DEFAULTS, maxPorts: 4, batch: 4, offloads: false, fdb: { ...FDB_DEFAULTS, maxEntries: 16 } });
    expect(sw.counters.maxPorts).toBe(4);
  });

  it("answers requests made together, each with its own answer, under its own id", async () => {
    expect(await Promise.all([sw.fdb(), sw.fdb(), sw.fdb()])).toEqual([[], [], []]);
    const ids = posted.map((m) => (m as { id: number }).id);
    expect(posted).toEqual(ids.map((id) => ({ op: "fdb", id })));
    expect(ids).toEqual([ids[0], ids[0] + 1, ids[0] + 2]);
  });

  it("addTap opens the TAP with the offloads asked for, numbers ports from the lowest free, and tells the datapath", () => {
    const fd = nextFd;
    const gw = sw.addTap("tapnet0", "gateway");
    const pod = sw.addTap("tn-abc", "pod", "default/web");
    expect(gw).toEqual({ port: 0, ifname: "tapnet0", role: "gateway" });
    expect(pod).toEqual({ port: 1, ifname: "tn-abc", role: "pod", pod: "default/web" });
    expect(calls).toEqual([
      "open /dev/net/tun", `ioctl ${fd} TUNSETIFF`, `ioctl ${fd} ${TUNSETVNETHDRSZ}`, `ioctl ${fd} TUNSETOFFLOAD 0`, `ioctl ${fd} ${TUNSETPERSIST} 1`,
      "open /dev/net/tun", `ioctl ${fd + 1} TUNSETIFF`, `ioctl ${fd + 1} ${TUNSETVNETHDRSZ}`, `ioctl ${fd + 1} TUNSETOFFLOAD 0`, `ioctl ${fd + 1} ${TUNSETPERSIST} 1`,
    ]);
    expect(posted).toEqual([
      { op: "add", port: 0, fd, role: "gateway" },
      { op: "add", port: 1, fd: fd + 1, role: "pod" },
    ]);
    expect(sw.ports()).toEqual([{ ...gw, counters: ZERO }, { ...pod, counters: ZERO }]);
  });

  it("a new port starts with its counters cleared", () => {
    sw.counters.v.fill(7);
    const p = sw.addTap("tn-a", "pod");
    expect(sw.counters.portSnapshot(p.port)).toEqual(ZERO);
    expect(sw.counters.portSnapshot(p.port + 1).rx_frames).toBe(7);
    sw.counters.v.fill(0);
  });

  it("refuses a port once every row but the tunnel's is in use", () => {
    sw.addTap("tn-a", "pod");
    sw.addTap("tn-b", "pod");
    sw.addTap("tn-c", "pod");
    expect(() => sw.addTap("tn-d", "pod")).toThrow(new SwitchError("all 3 ports are in use"));
    expect(calls.filter((c) => c.startsWith("open"))).toHaveLength(3);
  });

  it("reports a port whose fd the datapath finds closed to the onPortDown handler, with the port's info", async () => {
    const down = new Promise<[PortInfo, string]>((resolve) => sw.onPortDown((p, reason) => resolve([p, reason])));
    sw.addTap("tn-a", "pod", "default/a");
    sw.relocated(0, "eth0", "tapnet-pod-a");
    expect(await down).toEqual([{ port: 0, ifname: "eth0", netns: "tapnet-pod-a", role: "pod", pod: "default/a" }, "fd closed"]);
  });

  it("relocated records where a port's device went; a port it does not have is ignored", () => {
    sw.addTap("tn-a", "pod");
    sw.relocated(0, "eth0", "ns-a");
    sw.relocated(3, "eth0", "ns-b");
    expect(sw.ports().map(({ counters: _, ...p }) => p)).toEqual([{ port: 0, ifname: "eth0", netns: "ns-a", role: "pod" }]);
  });

  it("removePort waits for the datapath to let go, then closes the fd; the number is free again", async () => {
    const fd = nextFd;
    sw.addTap("tn-a", "pod");
    sw.addTap("tn-b", "pod");
    calls.length = 0;
    posted.length = 0;
    const removed = sw.removePort(0);
    expect(calls).toEqual([]);
    await removed;
    expect(calls).toEqual([`ioctl ${fd} ${TUNSETPERSIST} 0`, `close ${fd}`]); // persistence cleared: the device goes with the fd
    expect(posted).toEqual([{ op: "remove", port: 0, id: expect.any(Number) }]);
    expect(sw.ports().map((p) => p.port)).toEqual([1]);
    expect(sw.addTap("tn-c", "pod").port).toBe(0);
  });

  it("removePort of a port it does not have does nothing", async () => {
    await sw.removePort(2);
    expect(posted).toEqual([]);
    expect(calls).toEqual([]);
  });

  it("a frame read from a port shows in the FDB and the port's counters", async () => {
    const tap = await fakeTap();
    try {
      nextTapFd = tap.datapathEnd;
      sw.addTap("tn-a", "pod");
      const f = new Uint8Array(10 + 60);
      f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x88, 0xb5], 10);
      tap.send(f);
      await until(async () => (await sw.fdb()).length > 0);
      expect((await sw.fdb()).map(({ age: _, ...e }) => e)).toEqual([{ mac: "02:00:00:00:00:0a", port: 0 }]);
      expect(sw.ports()[0].counters).toEqual({ ...ZERO, rx_frames: 1, rx_bytes: 60, rx_flooded: 1 });
      await sw.removePort(0);
    } finally {
      tap.close();
    }
  });

  it("addTap with a pod's identity tells the datapath its MAC and address, and lists them with the port", () => {
    const fd = nextFd;
    const pod = sw.addTap("tn-abc", "pod", "default/web", { mac: "0A:58:0A:F4:01:02", ip: "10.244.1.2" });
    expect(pod).toEqual({ port: 0, ifname: "tn-abc", role: "pod", pod: "default/web", mac: "0a:58:0a:f4:01:02", ip: "10.244.1.2" });
    expect(posted).toEqual([{ op: "add", port: 0, fd, role: "pod", identity: { mac: "0a:58:0a:f4:01:02", ip: ip("10.244.1.2") } }]);
  });

  it.each([
    [{ mac: "0a:58:0a:f4:01", ip: "10.244.1.2" }, 'port identity: mac "0a:58:0a:f4:01" is not a unicast MAC address'],
    [{ mac: "01:00:5e:00:00:01", ip: "10.244.1.2" }, 'port identity: mac "01:00:5e:00:00:01" is not a unicast MAC address'],
    [{ mac: "00:00:00:00:00:00", ip: "10.244.1.2" }, 'port identity: mac "00:00:00:00:00:00" is not a unicast MAC address'],
    [{ mac: 7, ip: "10.244.1.2" }, "port identity: mac 7 is not a unicast MAC address"],
    [{ mac: "0a:58:0a:f4:01:02", ip: "10.244.1.256" }, 'port identity: ip "10.244.1.256" is not a host\'s IPv4 address'],
    [{ mac: "0a:58:0a:f4:01:02", ip: "0.0.0.0" }, 'port identity: ip "0.0.0.0" is not a host\'s IPv4 address'],
    [{ mac: "0a:58:0a:f4:01:02", ip: "255.255.255.255" }, 'port identity: ip "255.255.255.255" is not a host\'s IPv4 address'],
    [{ mac: "0a:58:0a:f4:01:02" }, "port identity: ip undefined is not a host's IPv4 address"],
  ])("addTap refuses the identity %j, naming the field, and opens nothing", (identity, message) => {
    expect(() => sw.addTap("tn-a", "pod", "default/a", identity as never)).toThrow(new SwitchError(message));
    expect(calls).toEqual([]);
    expect(posted).toEqual([]);
  });

  it("addTap refuses a MAC or an address another port already has, naming that port and its pod", () => {
    sw.addTap("tn-a", "pod", "default/a", { mac: "0a:58:0a:f4:01:02", ip: "10.244.1.2" });
    calls.length = 0;
    expect(() => sw.addTap("tn-b", "pod", "default/b", { mac: "0a:58:0a:f4:01:02", ip: "10.244.1.3" }))
      .toThrow(new SwitchError("port identity: mac 0a:58:0a:f4:01:02 is already port 0's (pod default/a)"));
    expect(() => sw.addTap("tn-b", "pod", undefined, { mac: "0a:58:0a:f4:01:03", ip: "10.244.1.2" }))
      .toThrow(new SwitchError("port identity: ip 10.244.1.2 is already port 0's (pod default/a)"));
    expect(calls).toEqual([]);
    expect(sw.addTap("tn-b", "pod", "default/b", { mac: "0a:58:0a:f4:01:03", ip: "10.244.1.3" }).port).toBe(1);
  });

  it("a port with an identity: its MAC is pinned, and a frame from another MAC is a counted drop", async () => {
    const tap = await fakeTap();
    try {
      nextTapFd = tap.datapathEnd;
      sw.addTap("tn-a", "pod", "default/a", { mac: "02:00:00:00:00:0b", ip: "10.244.1.2" });
      const f = new Uint8Array(10 + 60);
      f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x88, 0xb5], 10);
      tap.send(f);
      await until(() => sw.ports()[0].counters.rx_frames === 1);
      expect(sw.ports()[0].counters).toEqual({ ...ZERO, rx_frames: 1, rx_bytes: 60, drop_spoofed_source_mac: 1 });
      expect(await sw.fdb()).toEqual([{ mac: "02:00:00:00:00:0b", port: 0, age: 0, pinned: true }]);
      await sw.removePort(0);
      expect(await sw.fdb()).toEqual([]);
    } finally {
      tap.close();
    }
  });

  it("neighbor() tells the datapath a pod's MAC", async () => {
    sw.neighbor(ip("10.244.1.2"), "0a:58:0a:f4:01:02");
    expect(posted).toEqual([{ op: "neigh", ip: ip("10.244.1.2"), mac: "0a:58:0a:f4:01:02" }]);
    expect(await sw.fdb()).toEqual([]); // the datapath went on to answer what came after
  });
});

describe("Switch.stop", { timeout: 60_000 }, () => {
  it("closes every TAP; a second stop does nothing, and a port cannot be added after", async () => {
    const sw = await Switch.start({ maxPorts: 4, batch: 4, fdb: { ageingSeconds: 60 } as never });
    expect(sw.options.fdb).toEqual({ ...FDB_DEFAULTS, ageingSeconds: 60 });
    const fd = nextFd;
    sw.addTap("tn-a", "pod");
    sw.addTap("tn-b", "pod");
    calls.length = 0;
    await sw.stop();
    expect(calls).toEqual([`ioctl ${fd} ${TUNSETPERSIST} 0`, `close ${fd}`, `ioctl ${fd + 1} ${TUNSETPERSIST} 0`, `close ${fd + 1}`]);
    expect(sw.ports()).toEqual([]);
    await sw.stop();
    expect(calls).toHaveLength(4);
    expect(() => sw.addTap("tn-c", "pod")).toThrow(new SwitchError("switch is stopped"));
  });
});

describe("Switch with routing", { timeout: 60_000 }, () => {
  const routing = { config: config("udp"), address: ip("192.168.56.11"), port: 8472 };

  it("opens the tunnel socket; tunnelCounters() is the tunnel's row of counters; TAPs get offloads by default; stop closes all", async () => {
    const fd = nextFd;
    const sw = await Switch.start({ maxPorts: 4, batch: 4, routing });
    try {
      expect(sw.tunnel).toEqual({ fd, address: ip("192.168.56.11"), port: 8472 });
      expect(calls).toEqual(["socket", `bind ${fd}`]);
      expect(sw.tunnelCounters()).toEqual(ZERO);
      sw.counters.v[3 * PORT_COUNTERS + PortCounter.RxFrames] = 5; // the last row's
      sw.counters.v[2 * PORT_COUNTERS + PortCounter.RxFrames] = 9;
      expect(sw.tunnelCounters()!.rx_frames).toBe(5);
      sw.addTap("tapnet0", "gateway");
      expect(calls).toContain(`ioctl ${fd + 1} TUNSETOFFLOAD ${TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6}`);
    } finally {
      calls.length = 0;
      await sw.stop();
      await sw.stop();
    }
    expect(calls).toEqual([`ioctl ${fd + 1} ${TUNSETPERSIST} 0`, `close ${fd + 1}`, `close ${fd}`]);
  });

  it("hands the tunnel socket to the datapath, which reads it: a datagram from no node is counted and dropped", async () => {
    const tunnel = await fakeTap();
    const socket = controlLibc.socket;
    controlLibc.socket = () => tunnel.datapathEnd;
    try {
      const sw = await Switch.start({ maxPorts: 4, batch: 4, routing });
      try {
        tunnel.send(new Uint8Array(100));
        await until(() => sw.tunnelCounters()!.rx_frames === 1);
        expect(sw.tunnelCounters()).toEqual({ ...ZERO, rx_frames: 1, rx_bytes: 100, drop_tunnel_unknown_peer: 1 });
      } finally {
        await sw.stop();
      }
    } finally {
      controlLibc.socket = socket;
      tunnel.close();
    }
  });

  it("setNodes hands the datapath a new node list and resolves once it is applied; a list it refuses rejects with its message", async () => {
    const sw = await Switch.start({ maxPorts: 4, batch: 4, routing });
    const nodes = config("udp").nodes;
    try {
      await sw.setNodes(nodes.slice(0, 2), 0);
      expect(posted.at(-1)).toEqual({ op: "nodes", id: expect.any(Number), nodes: nodes.slice(0, 2), self: 0 });
      await expect(sw.setNodes([{ ...nodes[0], network: ip("10.244.9.0") }], 0)).rejects.toThrow(new SwitchError(
        "node list refused: nodes[0] (this node, node1): its pod CIDR is 10.244.1.0/24 while the switch runs, not 10.244.9.0/24"));
      await sw.setNodes([nodes[2], nodes[0]], 1);
    } finally {
      await sw.stop();
    }
    await expect(sw.setNodes(nodes, 0)).rejects.toThrow(new SwitchError("switch is stopped"));
  });

  it("a datapath that fails before it is ready rejects start with its message, and the tunnel socket is closed", async () => {
    const fd = nextFd;
    await expect(Switch.start({ maxPorts: 4, batch: 4, routing, cpu: 1000 })).rejects.toThrow(
      new SwitchError("datapath failed: cannot pin the datapath to CPU 1000: no such CPU, or not one this process may use"));
    expect(calls).toEqual(["socket", `bind ${fd}`, `close ${fd}`]);
  });

  it("without routing too, a datapath failing before it is ready rejects start with its message", async () => {
    await expect(Switch.start({ maxPorts: 4, batch: 4, cpu: 1000 })).rejects.toThrow(
      new SwitchError("datapath failed: cannot pin the datapath to CPU 1000: no such CPU, or not one this process may use"));
    expect(calls).toEqual([]);
  });
});

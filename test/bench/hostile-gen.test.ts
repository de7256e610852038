// The hostile-input script's generators: each kind of datagram and frame is what its name says,
// judged by a naive model written here (byte by byte, from the RFCs), not by tapnet's parsers.
import { describe, expect, it } from "vitest";
import { FRAME_KINDS, FRAME_WEIGHTS, FrameGenerator, MAX_FRAME, type PodTarget } from "../../src/bench/hostile-frames.ts";
import { FRAGMENT_PAYLOAD, ipv4, macOf, Rng, writeFragment, type Mac } from "../../src/bench/hostile-packets.ts";
import { MAX_DATAGRAM, MAX_PLAIN_DATAGRAM, TUNNEL_KINDS, TUNNEL_WEIGHTS, TunnelGenerator, type TunnelTarget } from "../../src/bench/hostile-tunnel.ts";

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const macAt = (b: Uint8Array, o: number): Mac => ({ hi: u16(b, o), lo: u32(b, o + 2) });
const sameMac = (a: Mac, b: Mac) => a.hi === b.hi && a.lo === b.lo;

/** RFC 1071, the plain way: the one's-complement sum of 16-bit words folded; a right checksum makes it 0xffff. */
function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** What is wrong with an IPv4 packet that fills `p` exactly, or undefined if it is a whole, unfragmented ICMP, UDP or TCP packet with every checksum right. */
function ipv4Fault(p: Uint8Array): string | undefined {
  if (p.length < 20) return "shorter than a header";
  if (p[0] >> 4 !== 4) return "version";
  const ihl = (p[0] & 15) * 4;
  if (ihl < 20) return "header length under 20";
  if (ihl > p.length) return "header past the packet";
  const total = u16(p, 2);
  if (total !== p.length) return "total length";
  if (onesSum(p, 0, ihl) !== 0xffff) return "header checksum";
  if ((u16(p, 6) & 0x3fff) !== 0) return "a fragment";
  const l4 = p.subarray(ihl);
  const pseudo = onesSum(p, 12, 8) + p[9] + l4.length;
  if (p[9] === 1) return l4.length < 8 ? "ICMP cut short" : onesSum(l4, 0, l4.length) !== 0xffff ? "ICMP checksum" : undefined;
  if (p[9] === 17) {
    if (l4.length < 8) return "UDP cut short";
    if (u16(l4, 4) !== l4.length) return "UDP length";
    return u16(l4, 6) !== 0 && onesSum(l4, 0, l4.length, pseudo) !== 0xffff ? "UDP checksum" : undefined;
  }
  if (p[9] === 6) {
    if (l4.length < 20 || (l4[12] >> 4) * 4 > l4.length) return "TCP cut short";
    return onesSum(l4, 0, l4.length, pseudo) !== 0xffff ? "TCP checksum" : undefined;
  }
  return "protocol";
}

const TARGET = (backend: TunnelTarget["backend"]): TunnelTarget => ({
  backend, vni: 1, address: ipv4("192.168.56.11"), vtepMac: macOf("0e:00:c0:a8:38:0b"), gateway: ipv4("10.244.1.1"), podBase: ipv4("10.244.1.0"),
  pods: [{ ip: ipv4("10.244.1.2"), mac: macOf("0a:58:0a:f4:01:02") }, { ip: ipv4("10.244.1.3"), mac: macOf("0a:58:0a:f4:01:03") }],
  peers: [{ address: ipv4("192.168.56.12"), vtepMac: macOf("0e:00:c0:a8:38:0c"), podBase: ipv4("10.244.2.0") }, { address: ipv4("192.168.56.13"), vtepMac: macOf("0e:00:c0:a8:38:0d"), podBase: ipv4("10.244.3.0") }],
  stranger: ipv4("192.168.56.99"),
});

/** The inner IPv4 packet of a datagram that decapsulates cleanly (a whole frame, an all-zero virtio_net_hdr), or why it does not. */
function decap(t: TunnelTarget, d: Uint8Array): Uint8Array | string {
  if (t.backend === "udp") return d;
  if (t.backend === "vxlan") {
    if (d.length < 22) return "short";
    if (d[0] !== 0x08 || ((d[4] << 16) | (d[5] << 8) | d[6]) !== t.vni) return "vxlan header";
    if (!sameMac(macAt(d, 8), t.vtepMac)) return "not for our VTEP";
    return u16(d, 20) === 0x0800 ? d.subarray(22) : "not IPv4";
  }
  if (d.length < 36 || d[0] !== 1 || u32(d, 4) !== d.length - 12 || u32(d, 8) !== 0) return "not one whole tapnet frame";
  if (d.subarray(12, 22).some((x) => x !== 0)) return "a virtio_net_hdr that asks for something";
  return u16(d, 34) === 0x0800 ? d.subarray(36) : "not IPv4";
}

function draw(gen: TunnelGenerator, n: number): { kind: string; src: number; d: Uint8Array }[] {
  const b = new Uint8Array(MAX_DATAGRAM + 64);
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = gen.next(b, 0);
    if (len !== gen.len) throw new Error(`next() returned ${len}, len says ${gen.len}`);
    out.push({ kind: TUNNEL_KINDS[gen.kind], src: gen.src, d: b.slice(0, len) });
  }
  return out;
}

describe("Rng", () => {
  it("the same seed gives the same numbers, another seed others; int and range stay in bounds", () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const xs = Array.from({ length: 100 }, () => a.u32());
    expect(Array.from({ length: 100 }, () => b.u32())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.u32())).not.toEqual(xs);
    const r = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const x = r.int(10);
      expect(Number.isInteger(x) && x >= 0 && x < 10).toBe(true);
      seen.add(x);
      const y = r.range(3, 5);
      expect(y >= 3 && y <= 5).toBe(true);
    }
    expect(seen.size).toBe(10);
  });

  it("weighted draws follow their weights", () => {
    const r = new Rng(3);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[r.weighted([1, 2, 7], 10)]++;
    expect(counts[0] / 30_000).toBeCloseTo(0.1, 1);
    expect(counts[1] / 30_000).toBeCloseTo(0.2, 1);
    expect(counts[2] / 30_000).toBeCloseTo(0.7, 1);
  });
});

describe.each(["tapnet", "udp", "vxlan"] as const)("tunnel datagrams, %s backend", (backend) => {
  const t = TARGET(backend);
  const items = draw(new TunnelGenerator(new Rng(42), t), 10_000);
  const of = (kind: string) => items.filter((x) => x.kind === kind);
  const peers = t.peers.map((p) => p.address);
  const innerAt = backend === "tapnet" ? 36 : backend === "vxlan" ? 22 : 0;

  it("is the same for the same seed", () => {
    const again = draw(new TunnelGenerator(new Rng(42), t), 300);
    expect(again).toEqual(items.slice(0, 300));
  });

  it("draws every kind about as often as its weight says", () => {
    const total = TUNNEL_WEIGHTS.reduce((a, w) => a + w, 0);
    TUNNEL_KINDS.forEach((k, i) => {
      const share = of(k).length / items.length;
      expect(share).toBeGreaterThan((TUNNEL_WEIGHTS[i] / total) * 0.7);
      expect(share).toBeLessThan((TUNNEL_WEIGHTS[i] / total) * 1.3);
    });
  });

  it("fits one frame unless huge; tiny is under 4 bytes; huge goes up to the largest UDP payload", () => {
    const wrong = items.filter((x) => x.d.length > MAX_DATAGRAM || (x.kind === "huge") !== x.d.length > MAX_PLAIN_DATAGRAM || (x.kind === "tiny" && x.d.length >= 4));
    expect(wrong.map((x) => `${x.kind} ${x.d.length}`)).toEqual([]);
    expect(Math.max(...of("huge").map((x) => x.d.length))).toBeGreaterThan(60_000);
  });

  it("comes from a peer's address, but for unknown_source, which never does", () => {
    expect(items.filter((x) => peers.includes(x.src) !== (x.kind !== "unknown_source")).length).toBe(0);
    expect(new Set(of("unknown_source").map((x) => x.src))).toContain(t.address);
  });

  it("unknown_source and spoofed_inner carry well-formed packets; spoofed sources are mostly foreign to the sending peer", () => {
    const faults = [...of("unknown_source"), ...of("spoofed_inner")].map((x) => {
      const inner = decap(t, x.d);
      return typeof inner === "string" ? inner : ipv4Fault(inner);
    });
    expect(faults.filter((f) => f !== undefined)).toEqual([]);
    const sp = of("spoofed_inner").map((x) => ({ peer: t.peers.find((p) => p.address === x.src)!, src: u32(decap(t, x.d) as Uint8Array, 12) }));
    const foreign = sp.filter((s) => (s.src & 0xffffff00) !== s.peer.podBase);
    expect(foreign.length / sp.length).toBeGreaterThan(0.6);
    const sources = new Set(foreign.map((s) => s.src));
    for (const a of ["10.244.1.2", "10.244.1.1", "192.168.56.11", "198.51.100.7", "0.0.0.0", "255.255.255.255", "127.0.0.1", "10.244.200.5"]) expect(sources).toContain(ipv4(a));
  });

  it("truncated ends before the inner IPv4 header does", () => {
    for (const x of of("truncated")) {
      expect(x.d.length).toBeGreaterThanOrEqual(1);
      if (backend === "udp") expect(typeof decap(t, x.d) === "string" || ipv4Fault(x.d) !== undefined).toBe(true);
      else expect(x.d.length).toBeLessThan(innerAt + 20);
    }
  });

  it("bad_header breaks the backend's header", () => {
    for (const x of of("bad_header")) {
      const d = x.d;
      if (backend === "tapnet") {
        const bad = d[0] !== 1 || u32(d, 4) > 65536 + 128 || u32(d, 8) + d.length - 12 > u32(d, 4);
        expect(bad).toBe(true);
      } else if (backend === "vxlan") {
        expect((d[0] & 0x08) === 0 || ((d[4] << 16) | (d[5] << 8) | d[6]) !== t.vni || !sameMac(macAt(d, 8), t.vtepMac)).toBe(true);
      } else expect(d[0] >> 4).not.toBe(4);
    }
  });

  it("bad_inner wraps a packet with a fault (or, on tapnet, a virtio_net_hdr that asks for something)", () => {
    const faults = new Set<string>();
    for (const x of of("bad_inner")) {
      const inner = decap(t, x.d);
      const fault = typeof inner === "string" ? inner : ipv4Fault(inner);
      expect(fault, `bad_inner ${x.d.length} bytes`).toBeDefined();
      faults.add(fault!);
    }
    for (const f of ["header length under 20", "total length", "header checksum", "a fragment"]) expect(faults).toContain(f);
    if (backend === "tapnet") expect(faults).toContain("a virtio_net_hdr that asks for something");
  });

  it("chunk_mess is never one whole frame on tapnet; elsewhere it is ARP, IPv6, fragments or other destinations", () => {
    for (const x of of("chunk_mess")) {
      if (backend === "tapnet") {
        expect(x.d[0]).toBe(1);
        expect(u32(x.d, 4) !== x.d.length - 12 || u32(x.d, 8) !== 0).toBe(true);
      } else {
        const inner = decap(t, x.d);
        const odd = typeof inner === "string" || ipv4Fault(inner) !== undefined || [0xffffffff, t.podBase + 255, t.podBase + 77, ipv4("224.0.0.1")].includes(u32(inner, 16));
        expect(odd).toBe(true);
      }
    }
  });
});

describe("writeFragment", () => {
  it("cuts a 60 KB datagram into fragments that reassemble to it, each a valid IPv4 header", () => {
    const rng = new Rng(5);
    const whole = new Uint8Array(34 + 60_000);
    rng.fill(whole, 34, 60_000);
    const frame = new Uint8Array(2048);
    const got = new Uint8Array(60_000);
    let at = 0;
    let count = 0;
    const dst = macOf("0e:00:00:00:00:01");
    for (; at < 60_000; at += FRAGMENT_PAYLOAD) {
      const len = writeFragment(frame, whole, at, 60_000, dst, macOf("02:00:00:00:00:02"), ipv4("192.168.56.12"), ipv4("192.168.56.11"), 77);
      const ip = frame.subarray(14, len);
      expect(len).toBeLessThanOrEqual(1514);
      expect(onesSum(ip, 0, 20)).toBe(0xffff);
      expect(u16(ip, 2)).toBe(len - 14);
      expect(u16(ip, 4)).toBe(77);
      const ff = u16(ip, 6);
      expect((ff & 0x1fff) * 8).toBe(at);
      expect((ff & 0x2000) !== 0).toBe(at + FRAGMENT_PAYLOAD < 60_000);
      got.set(ip.subarray(20), at);
      count++;
    }
    expect(count).toBe(Math.ceil(60_000 / FRAGMENT_PAYLOAD));
    expect(got).toEqual(whole.subarray(34));
  });
});

describe("pod frames", () => {
  const t: PodTarget = {
    self: { ip: ipv4("10.244.1.3"), mac: macOf("0a:58:0a:f4:01:03") }, gateway: { ip: ipv4("10.244.1.1"), mac: macOf("0a:58:0a:f4:01:01") },
    neighbours: [{ ip: ipv4("10.244.1.2"), mac: macOf("0a:58:0a:f4:01:02") }, { ip: ipv4("10.244.1.4"), mac: macOf("0a:58:0a:f4:01:04") }],
    remote: [ipv4("10.244.2.2"), ipv4("10.244.2.3")], nodeAddress: ipv4("192.168.56.11"), podBase: ipv4("10.244.1.0"), mtu: 1500,
  };
  const drawFrames = (seed: number, n: number) => {
    const gen = new FrameGenerator(new Rng(seed), t);
    const b = new Uint8Array(MAX_FRAME + 64);
    return Array.from({ length: n }, () => {
      const len = gen.next(b, 0);
      return { kind: FRAME_KINDS[gen.kind], vnet: gen.vnet, f: b.slice(0, len) };
    });
  };
  const items = drawFrames(9, 10_000);
  const of = (kind: string) => items.filter((x) => x.kind === kind);
  const neighbourMacs = t.neighbours.map((n) => n.mac);

  it("is the same for the same seed, and draws every kind about as often as its weight says", () => {
    expect(drawFrames(9, 300)).toEqual(items.slice(0, 300));
    const total = FRAME_WEIGHTS.reduce((a, w) => a + w, 0);
    FRAME_KINDS.forEach((k, i) => {
      const share = of(k).length / items.length;
      expect(share).toBeGreaterThan((FRAME_WEIGHTS[i] / total) * 0.7);
      expect(share).toBeLessThan((FRAME_WEIGHTS[i] / total) * 1.3);
    });
  });

  it("only bad_vnet and huge carry a virtio_net_hdr; every other frame fits the MTU and an Ethernet header", () => {
    for (const x of items) {
      if (x.vnet) expect(["bad_vnet", "huge"]).toContain(x.kind);
      else {
        expect(x.f.length).toBeGreaterThanOrEqual(14);
        expect(x.f.length).toBeLessThanOrEqual(t.mtu + 14);
      }
    }
    expect(of("bad_vnet").every((x) => x.vnet)).toBe(true);
  });

  it("random_mac, spoofed_ip and spoofed_mac are well-formed packets from whom they say", () => {
    for (const x of [...of("random_mac"), ...of("spoofed_ip"), ...of("spoofed_mac")]) {
      expect(u16(x.f, 12)).toBe(0x0800);
      expect(ipv4Fault(x.f.subarray(14)), x.kind).toBeUndefined();
      const src = macAt(x.f, 6);
      if (x.kind === "random_mac") expect(sameMac(src, t.self.mac) || neighbourMacs.some((m) => sameMac(m, src))).toBe(false);
      if (x.kind === "spoofed_ip") {
        expect(sameMac(src, t.self.mac)).toBe(true);
        expect(u32(x.f, 26)).not.toBe(t.self.ip);
      }
      if (x.kind === "spoofed_mac") expect(neighbourMacs.some((m) => sameMac(m, src))).toBe(true);
    }
    const groupSources = of("random_mac").filter((x) => (x.f[6] & 1) === 1).length;
    expect(groupSources).toBeGreaterThan(0);
  });

  it("arp claims the neighbours' and the gateway's addresses, and some of it is malformed", () => {
    const claims = new Set<number>();
    let malformed = 0;
    for (const x of of("arp")) {
      expect(u16(x.f, 12)).toBe(0x0806);
      const a = x.f.subarray(14);
      const ok = a.length >= 28 && u16(a, 0) === 1 && u16(a, 2) === 0x0800 && a[4] === 6 && a[5] === 4 && (u16(a, 6) === 1 || u16(a, 6) === 2);
      if (ok) claims.add(u32(a, 14));
      else malformed++;
    }
    for (const n of t.neighbours) expect(claims).toContain(n.ip);
    expect(claims).toContain(t.gateway.ip);
    expect(malformed).toBeGreaterThan(50);
  });

  it("bad_length frames all have a fault: not IPv4, a VLAN tag cut short, or an IPv4 packet the naive model refuses", () => {
    for (const x of of("bad_length")) {
      const type = u16(x.f, 12);
      const fault = type !== 0x0800 ? `ethertype ${type.toString(16)}` : ipv4Fault(x.f.subarray(14));
      expect(fault, `${x.f.length} bytes`).toBeDefined();
    }
  });

  it("huge is a 64 KB-class TCP super-frame behind a GSO header, or a plain frame of the full MTU", () => {
    let supers = 0;
    for (const x of of("huge")) {
      if (!x.vnet) {
        expect(x.f.length).toBeGreaterThan(t.mtu - 40);
        continue;
      }
      supers++;
      expect(x.f[1]).toBe(1); // GSO_TCPV4
      expect(x.f.length).toBeGreaterThan(t.mtu + 24);
      expect(x.f.length).toBeLessThanOrEqual(MAX_FRAME);
      expect(x.f[10 + 14 + 9]).toBe(6);
    }
    expect(supers).toBeGreaterThan(of("huge").length / 2);
  });
});

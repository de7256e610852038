import { describe, expect, it } from "vitest";
import { IpamError, PodIpam, gatewayOf } from "../../src/node/ipam.ts";
import { formatIpv4 } from "../../src/wire/ipv4.ts";
import { prng, trials } from "../support/random.ts";
import { ip, cidr } from "../support/addresses.ts";

const SEED = Number(process.env.TAPNET_SEED ?? 0x1ba_3);

function ipamError(f: () => unknown): IpamError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(IpamError);
    return e as IpamError;
  }
  throw new Error("did not throw");
}

describe("gatewayOf", () => {
  it("is the network address + 1", () => {
    expect(gatewayOf(cidr("10.244.1.0/24"))).toBe(ip("10.244.1.1"));
    expect(gatewayOf(cidr("10.244.1.4/30"))).toBe(ip("10.244.1.5"));
  });
});

describe("PodIpam", () => {
  it("hands out addresses from network + 2 upward", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    expect([ipam.allocate(), ipam.allocate(), ipam.allocate()].map(formatIpv4)).toEqual(["10.244.1.2", "10.244.1.3", "10.244.1.4"]);
    expect(ipam.inUse).toEqual(["10.244.1.2", "10.244.1.3", "10.244.1.4"]);
  });

  it("hands out every address but the network, the gateway and the broadcast, then reports exhaustion", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    const got = new Set<number>();
    for (let i = 0; i < 253; i++) got.add(ipam.allocate());
    expect(got.size).toBe(253);
    expect(got.has(ip("10.244.1.0"))).toBe(false);
    expect(got.has(ip("10.244.1.1"))).toBe(false);
    expect(got.has(ip("10.244.1.255"))).toBe(false);
    expect(Math.min(...got)).toBe(ip("10.244.1.2"));
    expect(Math.max(...got)).toBe(ip("10.244.1.254"));
    const err = ipamError(() => ipam.allocate());
    expect(err.message).toMatch(/no free address/);
    expect(err.message).toContain("10.244.1.0/24");
  });

  it("has room for exactly one pod in a /30", () => {
    const ipam = new PodIpam(cidr("10.244.1.4/30"));
    expect(formatIpv4(ipam.allocate())).toBe("10.244.1.6");
    expect(ipamError(() => ipam.allocate()).message).toMatch(/no free address/);
  });

  it("after a release, hands out the lowest free address again", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    const [a, b, c] = [ipam.allocate(), ipam.allocate(), ipam.allocate()];
    ipam.release(b);
    expect(ipam.inUse).toEqual([formatIpv4(a), formatIpv4(c)]);
    expect(ipam.allocate()).toBe(b);
    ipam.release(a);
    ipam.release(c);
    expect(ipam.allocate()).toBe(a);
    expect(ipam.allocate()).toBe(c);
  });

  it("frees an address after exhaustion so that it can be handed out again", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/29"));
    const all = Array.from({ length: 5 }, () => ipam.allocate());
    expect(() => ipam.allocate()).toThrow(IpamError);
    ipam.release(all[3]);
    expect(ipam.allocate()).toBe(all[3]);
  });

  it("gives a requested free address and keeps handing out the lowest others", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    expect(ipam.allocate("10.244.1.3")).toBe(ip("10.244.1.3"));
    expect(formatIpv4(ipam.allocate())).toBe("10.244.1.2");
    expect(formatIpv4(ipam.allocate())).toBe("10.244.1.4");
    expect(ipam.allocate("10.244.1.254")).toBe(ip("10.244.1.254"));
  });

  it("gives the first pod address (network + 2) and the last (broadcast - 1) when requested", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    expect(ipam.allocate("10.244.1.2")).toBe(ip("10.244.1.2"));
    expect(ipam.allocate("10.244.1.254")).toBe(ip("10.244.1.254"));
    expect(ipam.inUse).toEqual(["10.244.1.2", "10.244.1.254"]);
  });

  it("refuses each kind of bad request with its own message, word for word", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    ipam.allocate("10.244.1.9");
    expect(ipamError(() => ipam.allocate("pod1")).message).toBe('"pod1" is not an IPv4 address');
    expect(ipamError(() => ipam.allocate("10.244.2.2")).message).toBe("10.244.2.2 is outside this node's pod CIDR 10.244.1.0/24");
    expect(ipamError(() => ipam.allocate("10.244.1.1")).message).toBe("10.244.1.1 is the gateway address");
    expect(ipamError(() => ipam.allocate("10.244.1.0")).message).toBe("10.244.1.0 is the network or broadcast address of 10.244.1.0/24");
    expect(ipamError(() => ipam.allocate("10.244.1.255")).message).toBe("10.244.1.255 is the network or broadcast address of 10.244.1.0/24");
    expect(ipamError(() => ipam.allocate("10.244.1.9")).message).toBe("10.244.1.9 is already in use");
    const full = new PodIpam(cidr("10.244.1.4/30"));
    full.allocate();
    expect(ipamError(() => full.allocate()).message).toBe("no free address left in 10.244.1.4/30");
  });

  it("refuses a requested address that is not an address", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    for (const bad of ["pod1", "10.244.1", "10.244.1.300", "10.244.1.2/24", ""]) {
      const err = ipamError(() => ipam.allocate(bad));
      expect(err.message, bad).toMatch(/not an IPv4 address/);
    }
    expect(ipam.inUse).toEqual([]);
  });

  it("refuses a requested address outside the pod CIDR, naming the CIDR", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    for (const bad of ["10.244.2.2", "10.244.0.255", "192.168.0.2"]) {
      const err = ipamError(() => ipam.allocate(bad));
      expect(err.message, bad).toMatch(/outside/);
      expect(err.message, bad).toContain("10.244.1.0/24");
    }
  });

  it("refuses the gateway, the network and the broadcast address when requested", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    expect(ipamError(() => ipam.allocate("10.244.1.1")).message).toMatch(/gateway/);
    expect(ipamError(() => ipam.allocate("10.244.1.0")).message).toMatch(/network or broadcast/);
    expect(ipamError(() => ipam.allocate("10.244.1.255")).message).toMatch(/network or broadcast/);
    expect(ipam.inUse).toEqual([]);
  });

  it("refuses a requested address already in use", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    ipam.allocate("10.244.1.9");
    expect(ipamError(() => ipam.allocate("10.244.1.9")).message).toMatch(/already in use/);
    const auto = formatIpv4(ipam.allocate());
    expect(ipamError(() => ipam.allocate(auto)).message).toMatch(/already in use/);
  });

  it("ignores the release of an address not in use", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    const a = ipam.allocate();
    ipam.release(ip("10.244.1.77"));
    ipam.release(gatewayOf(ipam.podCidr));
    expect(ipam.inUse).toEqual([formatIpv4(a)]);
  });

  it("lists addresses in use in numeric order, not string order", () => {
    const ipam = new PodIpam(cidr("10.244.1.0/24"));
    for (const a of ["10.244.1.100", "10.244.1.20", "10.244.1.3"]) ipam.allocate(a);
    expect(ipam.inUse).toEqual(["10.244.1.3", "10.244.1.20", "10.244.1.100"]);
  });

  it(`agrees with a naive Set model over random allocate/release sequences (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const pod = cidr("10.244.7.16/28"); // .16 network, .17 gateway, .18-.30 pods, .31 broadcast
    const first = pod.network + 2;
    const last = pod.network + 15 - 1;
    const counts = { auto: 0, requested: 0, refused: 0, released: 0, exhausted: 0 };
    const runs = trials(50, 10);
    for (let run = 0; run < runs; run++) {
      const ipam = new PodIpam(pod);
      const model = new Set<number>();
      for (let step = 0; step < 400; step++) {
        const where = `seed ${SEED}, run ${run}, step ${step}`;
        const r = rnd();
        if (r < 0.4) {
          let want: number | undefined;
          for (let a = first; a <= last; a++) if (!model.has(a)) { want = a; break; }
          if (want === undefined) {
            expect(() => ipam.allocate(), where).toThrow(IpamError);
            counts.exhausted++;
          } else {
            expect(ipam.allocate(), where).toBe(want);
            model.add(want);
            counts.auto++;
          }
        } else if (r < 0.7) {
          // Anywhere from two below the CIDR to two above it, gateway, network and broadcast included.
          const a = pod.network - 2 + Math.floor(rnd() * 20);
          const ok = a >= first && a <= last && !model.has(a);
          if (ok) {
            expect(ipam.allocate(formatIpv4(a)), where).toBe(a);
            model.add(a);
            counts.requested++;
          } else {
            expect(() => ipam.allocate(formatIpv4(a)), `${where}: ${formatIpv4(a)}`).toThrow(IpamError);
            counts.refused++;
          }
        } else {
          const a = pod.network + Math.floor(rnd() * 16);
          ipam.release(a);
          if (model.delete(a)) counts.released++;
        }
        expect(ipam.inUse, where).toEqual([...model].sort((x, y) => x - y).map(formatIpv4));
      }
    }
    for (const [k, v] of Object.entries(counts)) expect(v, k).toBeGreaterThan(runs * 2);
  });
});

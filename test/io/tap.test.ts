// A TAP's life as libc sees it: openTap asks for the device, its vnet header, its offloads and
// its persistence, in that order, each argument as the kernel reads it; closeTap clears the
// persistence before it closes (a TAP removed on purpose goes; one whose process died stays).
import { describe, expect, it } from "vitest";
import {
  closeTap, encodeIfreq, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, openTap, TapError, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6,
  TUNSETIFF, TUNSETOFFLOAD, TUNSETPERSIST, TUNSETVNETHDRSZ,
} from "../../src/io/tap.ts";
import type { Libc } from "../../src/io/libc.ts";

type Call = [string, ...unknown[]];

/** A libc that records the calls openTap and closeTap make; `failOn` makes one ioctl fail with errno 16 (EBUSY). */
function recordingLibc(failOn?: number): { libc: Libc; calls: Call[] } {
  const calls: Call[] = [];
  let errno = 0;
  const libc = {
    open: (path: string, flags: number) => (calls.push(["open", path, flags]), 7),
    close: (fd: number) => (calls.push(["close", fd]), 0),
    ioctlPtr: (fd: number, req: number, arg: Uint8Array) => {
      calls.push(["ioctlPtr", fd, req, [...arg]]);
      if (req === failOn) { errno = 16; return -1; }
      return 0;
    },
    ioctlInt: (fd: number, req: number, arg: number) => {
      calls.push(["ioctlInt", fd, req, arg]);
      if (req === failOn) { errno = 16; return -1; }
      return 0;
    },
    errno: () => errno,
  } as unknown as Libc;
  return { libc, calls };
}

describe("openTap and closeTap", () => {
  it("opens /dev/net/tun, names the TAP, sets the vnet header, the offloads, then persistence", () => {
    const { libc, calls } = recordingLibc();
    const tap = openTap(libc, "tnp12x3", { offloads: true });
    expect(tap).toEqual({ fd: 7, name: "tnp12x3", vnetHdrLen: 10, offloads: true });
    expect(calls).toEqual([
      ["open", "/dev/net/tun", 2 | 0o4000 | 0o2000000],
      ["ioctlPtr", 7, TUNSETIFF, [...encodeIfreq("tnp12x3", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)]],
      ["ioctlPtr", 7, TUNSETVNETHDRSZ, [10, 0, 0, 0]],
      ["ioctlInt", 7, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6],
      ["ioctlInt", 7, TUNSETPERSIST, 1],
    ]);
  });

  it("has the request numbers of linux/if_tun.h (x86-64)", () => {
    expect([TUNSETIFF, TUNSETPERSIST, TUNSETOFFLOAD, TUNSETVNETHDRSZ]).toEqual([0x400454ca, 0x400454cb, 0x400454d0, 0x400454d8]);
    // struct ifreq: the name, NUL-padded in 16 bytes, then the flags (little-endian short)
    expect([...encodeIfreq("eth0", 0x5002).subarray(0, 18)]).toEqual([0x65, 0x74, 0x68, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x50]);
  });

  it("leaves persistence off when asked", () => {
    const { libc, calls } = recordingLibc();
    openTap(libc, "t0", { offloads: false, persist: false });
    expect(calls.filter((c) => c[2] === TUNSETPERSIST)).toEqual([]);
    expect(calls.find((c) => c[2] === TUNSETOFFLOAD)).toEqual(["ioctlInt", 7, TUNSETOFFLOAD, 0]);
  });

  it("a failed TUNSETPERSIST is an error naming it, and closes the fd", () => {
    const { libc, calls } = recordingLibc(TUNSETPERSIST);
    expect(() => openTap(libc, "t0", { offloads: true })).toThrow(new TapError("TUNSETPERSIST for TAP t0: EBUSY: device or resource busy"));
    expect(calls.at(-1)).toEqual(["close", 7]);
  });

  it("closeTap clears persistence first, then closes: the device goes with its last fd", () => {
    const { libc, calls } = recordingLibc();
    closeTap(libc, { fd: 9, name: "eth0", vnetHdrLen: 10, offloads: true });
    expect(calls).toEqual([["ioctlInt", 9, TUNSETPERSIST, 0], ["close", 9]]);
  });

  it("closeTap still closes when the device is gone already (TUNSETPERSIST fails)", () => {
    const { libc, calls } = recordingLibc(TUNSETPERSIST);
    closeTap(libc, { fd: 9, name: "eth0", vnetHdrLen: 10, offloads: true });
    expect(calls.at(-1)).toEqual(["close", 9]);
  });
});

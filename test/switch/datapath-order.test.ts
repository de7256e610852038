// The datapath loop's order between the control thread's commands and the frames read: a
// command that came while the loop waited in poll() is applied before the frames that woke
// it. The case that showed it: a pod just added (`tapnet pod add`, the "add" command with its
// identity) pinged from another node at once. The ping woke the loop before the add was
// applied, found no neighbour entry and was dropped (neigh_unresolved).
import { afterEach, describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { VNET_F_DATA_VALID, ETH_OFF } from "../../src/wire/virtio.ts";
import { closeOpened, FD, setup as datapath, TUNNEL_PORT, TUNNEL_ROW, UDP_FD } from "./datapath-support.ts";
import { ADDR, config, GW_MAC, ip, ipFrame, POD_A, POD_B } from "./router-support.ts";

const GW_FD = FD[0];

afterEach(closeOpened);

/** A routing datapath (udp backend, one datagram per read), its gateway port (0) added. */
function setup() {
  const s = datapath({ router: config("udp"), noGro: true });
  const { libc, counters } = s;
  /** A datagram from node 1's pod 10.244.2.5 to `dst`, waiting on the tunnel socket. */
  const fromNode1 = (dst: string) => {
    libc.udp.incoming.push({ bytes: ipFrame({ src: "10.244.2.5", dst }).subarray(ETH_OFF + 14), address: ip(ADDR[1]), port: TUNNEL_PORT });
  };
  const arpRequests = () => counters.v[counters.switchBase + SwitchCounter.ArpRequests];
  s.ports(1, true);
  return { ...s, fromNode1, arpRequests };
}

/** The frame pod `dst` gets for fromNode1(dst.ip): DATA_VALID, from the gateway MAC, TTL 63. */
function delivered(dst: { ip: string; mac: string }): Uint8Array {
  const f = ipFrame({ eth: { dst: dst.mac, src: GW_MAC }, src: "10.244.2.5", dst: dst.ip, ttl: 63 });
  f[0] = VNET_F_DATA_VALID;
  return f;
}

describe("Datapath: commands that come while it waits, and the frames that wake it", () => {
  it("a pod added while the loop waits has its address pinned before the first packet for it is read", () => {
    const { libc, rounds, fromNode1, drops, arpRequests } = setup();
    rounds(1);
    libc.tap(11);
    fromNode1(POD_A.ip); // the first ping, right after `pod add` returned
    rounds(2, [{ op: "add", port: 1, fd: 11, role: "pod", identity: { mac: POD_A.mac, ip: ip(POD_A.ip) } }]);
    expect(drops(TUNNEL_ROW)).toEqual({});
    expect(arpRequests()).toBe(0);
    expect(libc.tap(11).written).toEqual([delivered(POD_A)]);
  });

  it("churn: a pod removed, then another added on its port with its address while the loop waits: the first packet reaches the new one", () => {
    const { libc, command, replies, rounds, fromNode1, drops, arpRequests } = setup();
    libc.tap(11);
    command({ op: "add", port: 1, fd: 11, role: "pod", identity: { mac: POD_A.mac, ip: ip(POD_A.ip) } });
    fromNode1(POD_A.ip);
    rounds(1);
    expect(libc.tap(11).written).toEqual([delivered(POD_A)]);
    command({ op: "remove", port: 1, id: 9 }); // awaited by the control thread before the address is free again
    rounds(1);
    expect(replies()).toEqual([{ op: "removed", id: 9 }]);
    libc.tap(12); // the new pod's TAP: same port number, same address and MAC (derived from it)
    fromNode1(POD_A.ip);
    rounds(2, [{ op: "add", port: 1, fd: 12, role: "pod", identity: { mac: POD_A.mac, ip: ip(POD_A.ip) } }]);
    expect(drops(TUNNEL_ROW)).toEqual({});
    expect(arpRequests()).toBe(0);
    expect(libc.tap(12).written).toEqual([delivered(POD_A)]);
    expect(libc.tap(11).written.length).toBe(1);
  });

  it("frames waiting when a command comes are read in the round after it is applied, none lost", () => {
    const { libc, rounds, fromNode1, drops } = setup();
    rounds(1);
    libc.tap(11);
    libc.tap(12);
    rounds(1, [{ op: "add", port: 1, fd: 11, role: "pod", identity: { mac: POD_A.mac, ip: ip(POD_A.ip) } }]);
    fromNode1(POD_B.ip);
    fromNode1(POD_A.ip);
    rounds(2, [{ op: "add", port: 2, fd: 12, role: "pod", identity: { mac: POD_B.mac, ip: ip(POD_B.ip) } }]);
    // Each add is applied at the start of the next round; the second one's round polls again.
    expect(libc.polls.map((p) => p.fds)).toEqual([[UDP_FD, GW_FD], [UDP_FD, GW_FD], [UDP_FD, GW_FD, 11], [UDP_FD, GW_FD, 11, 12]]);
    expect(drops(TUNNEL_ROW)).toEqual({});
    expect(libc.tap(11).written).toEqual([delivered(POD_A)]);
    expect(libc.tap(12).written).toEqual([delivered(POD_B)]);
  });
});

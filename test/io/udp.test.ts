import { describe, expect, it } from "vitest";
import { EAGAIN } from "../../src/io/libc.ts";
import {
  enableUdpGro, enableUdpGso, GatherSender, GroReceiver, openUdp, SOCKADDR_IN_LEN, sockaddrAddress, sockaddrIn, sockaddrPort,
  SOL_UDP, UDP_GRO, UDP_SEGMENT, UdpError,
} from "../../src/io/udp.ts";
import { fromHex } from "../../src/wire/bytes.ts";
import { ENOBUFS, FakeLibc } from "../support/fake-libc.ts";
import { prng } from "../support/random.ts";

const A = 0x0a630001, B = 0xc0a80a02;
const PORT = 7777;

describe("struct sockaddr_in", () => {
  it("is family 2 (little-endian), port and address big-endian, then 8 bytes of zero", () => {
    expect(sockaddrIn(A, PORT)).toEqual(fromHex("0200 1e61 0a63 0001 0000 0000 0000 0000"));
    expect(sockaddrIn(0xffffffff, 65535)).toEqual(fromHex("0200 ffff ffff ffff 0000 0000 0000 0000"));
    expect(sockaddrIn(0, 0).length).toBe(SOCKADDR_IN_LEN);
  });

  it("gives back its address (unsigned) and port, for random ones", () => {
    const r = prng(791);
    for (let t = 0; t < 500; t++) {
      const address = Math.floor(r() * 2 ** 32), port = Math.floor(r() * 65536);
      const a = sockaddrIn(address, port);
      expect([sockaddrAddress(a), sockaddrPort(a)]).toEqual([address, port]);
    }
  });
});

/** A libc whose socket() gives the fake UDP socket and whose bind() fails with `bindErrno`. */
class RefusingLibc extends FakeLibc {
  readonly closed: number[] = [];
  private last = 0;
  constructor(private readonly bindErrno: number, private readonly socketErrno = 0) { super(); }
  override socket(): number { this.last = this.socketErrno; return this.socketErrno ? -1 : this.udp.fd; }
  override bind(): number { this.last = this.bindErrno; return -1; }
  override close(...args: unknown[]): number { this.closed.push(args[0] as number); return 0; }
  override errno(): number { return this.last; }
}

// #13 finding 6: the switch's caller tells EADDRNOTAVAIL from EADDRINUSE by the code, not the words.
describe("openUdp refused", () => {
  function refusal(libc: RefusingLibc): UdpError {
    try {
      openUdp(libc, 0xc0000247, 8287);
    } catch (e) {
      expect(e).toBeInstanceOf(UdpError);
      return e as UdpError;
    }
    throw new Error("openUdp did not throw");
  }

  it.each([[99, "EADDRNOTAVAIL", "no such address on this machine"], [98, "EADDRINUSE", "address already in use"], [200, "errno 200", ""]])(
    "carries errno %i's name (%s) in code, says it in one line, and closes the socket", (errno, code, words) => {
      const libc = new RefusingLibc(errno);
      const e = refusal(libc);
      expect(e.code).toBe(code);
      expect(e.message).toBe(`cannot bind UDP 192.0.2.71:8287: ${code}${words ? `: ${words}` : ""}`);
      expect(libc.closed).toEqual([libc.udp.fd]);
    });

  it("carries the code when no socket can be opened at all", () => {
    const e = refusal(new RefusingLibc(0, 24));
    expect([e.code, e.message]).toEqual(["EMFILE", "cannot open a UDP socket: EMFILE: too many open files"]);
  });
});

describe("UDP offload options", () => {
  it("UDP_SEGMENT with the segment size and UDP_GRO on, at level SOL_UDP; false where refused", () => {
    const libc = new FakeLibc();
    const fd = libc.udp.fd;
    expect(enableUdpGso(libc, fd, 1400)).toBe(true);
    expect(enableUdpGro(libc, fd)).toBe(true);
    expect(libc.udp.options).toEqual([
      { level: SOL_UDP, name: UDP_SEGMENT, value: 1400 }, { level: SOL_UDP, name: UDP_GRO, value: 1 },
    ]);
    libc.udp.refused.add(UDP_SEGMENT).add(UDP_GRO);
    expect(enableUdpGso(libc, fd, 1400)).toBe(false);
    expect(enableUdpGro(libc, fd)).toBe(false);
  });
});

describe("GatherSender", () => {
  const peers = [sockaddrIn(A, PORT), sockaddrIn(B, PORT + 1), sockaddrIn(A + 1, PORT + 2)];
  const headers = Uint8Array.from({ length: 256 }, (_, i) => i);
  const slots = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff);

  function sender(segment: boolean) {
    const libc = new FakeLibc();
    return { libc, udp: libc.udp, gather: new GatherSender(libc, libc.udp.fd, peers, 8, segment) };
  }

  it("sends the pieces as they lie in one sendmsg, to the peer chosen by index, with the segment size", () => {
    const { udp, gather } = sender(true);
    gather.add(headers, 16, 50);
    gather.add(slots, 1000, 1400);
    gather.add(headers, 80, 50);
    gather.add(slots, 2400, 700);
    expect(gather.send(1, 1450)).toBe(true);
    expect(udp.sent).toEqual([{
      call: "sendmsg", address: B, port: PORT + 1, segment: 1450, pieces: 4,
      bytes: Uint8Array.from([...headers.subarray(16, 66), ...slots.subarray(1000, 2400), ...headers.subarray(80, 130), ...slots.subarray(2400, 3100)]),
    }]);
  });

  it("starts each send with no pieces, and takes the peer and segment size of each call", () => {
    const { udp, gather } = sender(true);
    gather.add(slots, 0, 100);
    gather.send(2, 100);
    gather.add(headers, 0, 10);
    gather.send(0, 700);
    expect(udp.sent.map((s) => [s.address, s.port, s.pieces, s.bytes.length, s.segment])).toEqual([
      [A + 1, PORT + 2, 1, 100, 100], [A, PORT, 1, 10, 700],
    ]);
    expect(udp.sent[1].bytes).toEqual(headers.subarray(0, 10));
  });

  it("without segmentation, sends no control message", () => {
    const { udp, gather } = sender(false);
    gather.add(slots, 5, 300);
    expect(gather.send(0, 1400)).toBe(true);
    expect(udp.sent.map((s) => [s.address, s.segment, s.bytes.length])).toEqual([[A, 0, 300]]);
  });

  it("says false for a short send or a failed one, and drops the pieces either way", () => {
    const { udp, gather } = sender(true);
    udp.shortSends = true;
    gather.add(slots, 0, 1000);
    expect(gather.send(0, 500)).toBe(false);
    udp.shortSends = false;
    udp.sendErrno = ENOBUFS;
    gather.add(slots, 0, 1000);
    expect(gather.send(0, 500)).toBe(false);
    udp.sendErrno = 0;
    gather.add(headers, 0, 20);
    expect(gather.send(1, 500)).toBe(true);
    expect(udp.sent.map((s) => [s.pieces, s.bytes.length])).toEqual([[1, 1000], [1, 20]]);
  });
});

describe("GroReceiver", () => {
  const slots = new Uint8Array(8192);

  function receiver() {
    const libc = new FakeLibc();
    return { libc, udp: libc.udp, gro: new GroReceiver(libc), at: libc.addressOf(slots) };
  }

  it("reads a run into the memory at the address, with its segment size and sender", () => {
    const { udp, gro, at } = receiver();
    const run = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
    udp.incoming.push({ bytes: run, address: B, port: 4789, gro: 1400 });
    slots.fill(0xee);
    expect(gro.read(udp.fd, at + 100, 4000)).toBe(3000);
    expect(gro.segmentSize).toBe(1400);
    expect(slots.subarray(100, 3100)).toEqual(run);
    expect(slots[99]).toBe(0xee);
    expect(slots[3100]).toBe(0xee);
    expect([sockaddrAddress(gro.from), sockaddrPort(gro.from)]).toEqual([B, 4789]);
  });

  it("a segment size of 0 for a single datagram, a control message of another kind, or a failed read", () => {
    const { libc, udp, gro, at } = receiver();
    udp.incoming.push(
      { bytes: new Uint8Array(900), address: A, port: 1, gro: 300 },
      { bytes: new Uint8Array(60), address: A, port: 1 },
      { bytes: new Uint8Array(900), address: A, port: 1, gro: 300 },
      { bytes: new Uint8Array(60), address: A, port: 1, cmsg: { level: 0, type: 1, value: 300 } }, // IP_TOS
      { bytes: new Uint8Array(900), address: A, port: 1, gro: 300 },
      { bytes: new Uint8Array(60), address: A, port: 1, cmsg: { level: SOL_UDP, type: UDP_SEGMENT, value: 300 } },
      { bytes: new Uint8Array(60), address: A, port: 1, cmsg: { level: 0, type: UDP_GRO, value: 300 } }, // SOL_IP, UDP_GRO's number
    );
    const sizes: number[] = [];
    for (let k = 0; k < 8; k++) {
      gro.read(udp.fd, at, 2000);
      sizes.push(gro.segmentSize);
    }
    expect(sizes).toEqual([300, 0, 300, 0, 300, 0, 0, 0]);
    expect(gro.read(udp.fd, at, 2000)).toBe(-1);
    expect(libc.errno()).toBe(EAGAIN);
  });

  it("reads no more than asked", () => {
    const { udp, gro, at } = receiver();
    udp.incoming.push({ bytes: new Uint8Array(500).fill(7), address: A, port: 1 });
    slots.fill(0);
    expect(gro.read(udp.fd, at, 200)).toBe(200);
    expect(slots.subarray(0, 201).filter((x) => x === 7).length).toBe(200);
  });
});

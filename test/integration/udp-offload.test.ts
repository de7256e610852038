// The tunnel socket's offloads against the real kernel, on loopback: a UDP_SEGMENT send of many
// datagrams arrives at a UDP_GRO socket as one read, and recvmsg tells their size.
import { afterAll, expect, it } from "vitest";
import { loadLibc } from "../../src/io/libc.ts";
import { enableUdpGro, enableUdpGso, GroReceiver, openUdp, SOCKADDR_IN_LEN, sockaddrAddress, sockaddrIn } from "../../src/io/udp.ts";

const LOOPBACK = 0x7f000001;
const fds: number[] = [];

afterAll(async () => {
  const libc = await loadLibc();
  for (const fd of fds) libc.close(fd);
});

it("a GSO send of 10 datagrams is read whole by a GRO socket, which learns their size", async () => {
  const libc = await loadLibc();
  const port = 40000 + (process.pid % 20000);
  const rx = openUdp(libc, LOOPBACK, port);
  const tx = openUdp(libc, LOOPBACK, 0);
  fds.push(rx.fd, tx.fd);
  expect(enableUdpGso(libc, tx.fd, 1000)).toBe(true);
  expect(enableUdpGro(libc, rx.fd)).toBe(true);
  const payload = Uint8Array.from({ length: 9500 }, (_, i) => i & 0xff);
  expect(libc.sendto(tx.fd, payload, 9500, 0, sockaddrIn(LOOPBACK, port), SOCKADDR_IN_LEN)).toBe(9500);
  const gro = new GroReceiver(libc);
  const buf = new Uint8Array(70000);
  let n = -1;
  for (let tries = 0; tries < 100 && n < 0; tries++) {
    n = gro.read(rx.fd, libc.addressOf(buf), buf.length);
    if (n < 0) await new Promise((r) => setTimeout(r, 10));
  }
  expect(n).toBe(9500);
  expect(gro.segmentSize).toBe(1000);
  expect(sockaddrAddress(gro.from)).toBe(LOOPBACK);
  expect(Array.from(buf.subarray(0, 9500))).toEqual(Array.from(payload));
});

it("a datagram no larger than the GSO size leaves alone, and reads with no segment size", async () => {
  const libc = await loadLibc();
  const port = 40000 + ((process.pid + 7) % 20000);
  const rx = openUdp(libc, LOOPBACK, port);
  const tx = openUdp(libc, LOOPBACK, 0);
  fds.push(rx.fd, tx.fd);
  enableUdpGso(libc, tx.fd, 1000);
  enableUdpGro(libc, rx.fd);
  expect(libc.sendto(tx.fd, new Uint8Array(600), 600, 0, sockaddrIn(LOOPBACK, port), SOCKADDR_IN_LEN)).toBe(600);
  const gro = new GroReceiver(libc);
  const buf = new Uint8Array(4096);
  let n = -1;
  for (let tries = 0; tries < 100 && n < 0; tries++) {
    n = gro.read(rx.fd, libc.addressOf(buf), buf.length);
    if (n < 0) await new Promise((r) => setTimeout(r, 10));
  }
  expect(n).toBe(600);
  expect(gro.segmentSize).toBe(0);
});

// A real TCP super-frame from the kernel, cut by wire/gso.ts. A TAP with offloads on is moved
// into namespace tapnet-gso-*, with 10.77.0.1 and a permanent neighbor 10.77.0.2 behind it; a
// node process there connects to 10.77.0.2 and writes 200 KB. This test plays the peer over
// the TAP fd: it answers the SYN with a SYN-ACK, then reads until a GSO_TCPV4 frame arrives.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { afterAll, expect, it } from "vitest";
import { fromHex, get16, get32 } from "../../src/wire/bytes.ts";
import { fold, internetChecksum, pseudoHeaderSum } from "../../src/wire/checksum.ts";
import { emitIpv4, PROTO_TCP } from "../../src/wire/ipv4.ts";
import { segmentToArrays } from "../../src/wire/gso.ts";
import { emitTcp, TCP_ACK_FLAG, TCP_SYN } from "../../src/wire/tcp.ts";
import { GSO_TCPV4, parseVirtioNetHdr, vnetGsoType, type VirtioNetHdr } from "../../src/wire/virtio.ts";
import { loadLibc, type Libc } from "../../src/io/libc.ts";
import { closeTap, openTap, type Tap } from "../../src/io/tap.ts";
import { sh } from "./helpers.ts";

const NAME = `tapnet-gso-${(process.pid % 10000).toString(36)}`; // the namespace and the TAP
let libc: Libc, tap: Tap | undefined, child: ChildProcess | undefined;

afterAll(() => {
  child?.kill("SIGKILL");
  if (tap) closeTap(libc, tap); // a non-persistent TAP goes with its fd
  spawnSync("ip", ["netns", "del", NAME]);
});

it("a kernel TSO super-frame read from a TAP segments into frames whose checksums verify", async () => {
  libc = await loadLibc();
  spawnSync("ip", ["netns", "del", NAME]);
  tap = openTap(libc, NAME, { offloads: true });
  sh("ip", ["netns", "add", NAME]);
  sh("ip", ["link", "set", NAME, "netns", NAME]);
  for (const c of [["addr", "add", "10.77.0.1/24", "dev", NAME], ["link", "set", NAME, "up"],
    ["neigh", "add", "10.77.0.2", "lladdr", "02:00:0a:4d:00:02", "dev", NAME, "nud", "permanent"]]) sh("ip", ["-n", NAME, ...c]);
  child = spawn("ip", ["netns", "exec", NAME, process.execPath, "-e",
    "const s=require('net').connect(7777,'10.77.0.2',()=>s.write(Buffer.alloc(200000,7)));s.on('error',()=>{})"], { stdio: "ignore" });
  const buf = new Uint8Array(70_000);
  const pfd = Uint8Array.of(...new Uint8Array(Int32Array.of(tap.fd).buffer), 1, 0, 0, 0); // POLLIN
  let hdr: VirtioNetHdr | undefined, frame: Uint8Array | undefined;
  for (const deadline = Date.now() + 15_000; !frame && Date.now() < deadline;) {
    if (libc.poll(pfd, 1, 100) <= 0) continue;
    const n = libc.read(tap.fd, buf, buf.length);
    if (n < 10 + 54 || get16(buf, 22) !== 0x0800 || buf[10 + 23] !== PROTO_TCP) continue;
    if (buf[10 + 47] === TCP_SYN) { // answer with a SYN-ACK from 02:00:0a:4d:00:02, MSS 1460
      const out = new Uint8Array(10 + 14 + 20 + 24);
      out.set(buf.subarray(16, 22), 10);
      out.set(fromHex("02000a4d0002 0800"), 16);
      emitIpv4({ tos: 0, id: 0, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: PROTO_TCP,
        src: "10.77.0.2", dst: "10.77.0.1", payloadLen: 24 }, out, 24);
      emitTcp({ srcPort: 7777, dstPort: get16(buf, 44), seq: 1000, ack: (get32(buf, 48) + 1) >>> 0, flags: TCP_SYN | TCP_ACK_FLAG,
        window: 65535, checksum: 0, urgent: 0, options: fromHex("020405b4") }, out, 44);
      const c = internetChecksum(out, 44, 24, pseudoHeaderSum(0x0a4d0002, 0x0a4d0001, PROTO_TCP, 24));
      out[60] = c >> 8; out[61] = c;
      expect(libc.write(tap.fd, out, out.length)).toBe(out.length);
    } else if (vnetGsoType(buf, 0) === GSO_TCPV4) {
      hdr = parseVirtioNetHdr(buf) as VirtioNetHdr;
      frame = buf.slice(10, n);
    }
  }
  expect(frame, "a GSO_TCPV4 frame within 15 s").toBeDefined();
  const f = frame!;
  const payload = f.subarray(14 + 20 + 20, 14 + get16(f, 16)); // no TCP options: the SYN-ACK offered none
  expect(hdr).toMatchObject({ flags: 1, gsoSize: 1460, csumStart: 34, csumOffset: 16 });
  expect(payload.length).toBeGreaterThan(1460);
  // The field holds a folded pseudo-header sum: on Linux 6.18 (tcp_v4_send_check, through tun)
  // with the whole super-frame's TCP length; GSO paths elsewhere leave it without the length.
  // gso.ts recomputes from scratch, so either will do.
  const partial = (len: number) => fold(pseudoHeaderSum(0x0a4d0001, 0x0a4d0002, PROTO_TCP, len));
  expect([partial(get16(f, 16) - 20), partial(0)]).toContain(get16(f, 50));
  const segs = segmentToArrays(f, hdr!.gsoType, hdr!.gsoSize) as Uint8Array[];
  expect(segs).toHaveLength(Math.ceil(payload.length / 1460));
  let sent = 0;
  for (const s of segs) {
    expect(internetChecksum(s, 14, 20)).toBe(0);
    expect(internetChecksum(s, 34, s.length - 34, pseudoHeaderSum(0x0a4d0001, 0x0a4d0002, PROTO_TCP, s.length - 34))).toBe(0);
    expect(get32(s, 38)).toBe((get32(f, 38) + sent) >>> 0);
    expect(s.subarray(54)).toEqual(payload.subarray(sent, sent + s.length - 54));
    sent += s.length - 54;
  }
  expect(sent).toBe(payload.length);
});

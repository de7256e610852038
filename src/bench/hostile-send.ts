/**
 * The hostile-input script's sender: a process of its own, started inside a network namespace
 * (nsenter), that writes hostile traffic on one interface with a packet socket (AF_PACKET,
 * SOCK_RAW: whole Ethernet frames, any source) and prints one JSON line of what it did.
 *
 *   tunnel mode   from the underlay: each of hostile-tunnel.ts's datagrams inside an IPv4/UDP
 *                 frame to the node's MAC, address and tunnel port, its source address forged
 *                 as the generator says; a datagram over one frame goes out as IP fragments.
 *   pod mode      from inside a pod, on its eth0: hostile-frames.ts's frames as they are; those
 *                 with a virtio_net_hdr on a second socket with PACKET_VNET_HDR.
 *
 * A send the kernel refuses (EINVAL: a virtio_net_hdr it will not take, a frame over the MTU) is
 * counted under its kind, not retried; one it has no room for (ENOBUFS, EAGAIN) is retried after
 * a pause, so that every item is offered once. `rate` paces the sends (items per second; 0: as
 * fast as they go). Run as `<runtime> hostile-send.ts '<json of SendJob>'`.
 */
import { encodeIfreq } from "../io/tap.ts";
import { EAGAIN, loadLibc, type Libc } from "../io/libc.ts";
import { put16 } from "../wire/bytes.ts";
import { ETHERTYPE_IPV4 } from "../wire/ethernet.ts";
import { PROTO_UDP } from "../wire/ipv4.ts";
import { FRAME_KINDS, FrameGenerator, MAX_FRAME, type PodTarget } from "./hostile-frames.ts";
import { FRAGMENT_PAYLOAD, macOf, Rng, writeEth, writeFragment, writeIpv4, type Mac } from "./hostile-packets.ts";
import { MAX_DATAGRAM, TUNNEL_KINDS, TunnelGenerator, type TunnelTarget } from "./hostile-tunnel.ts";

export type SendJob =
  | { mode: "tunnel"; device: string; count: number; seed: number; rate: number; dstMac: string; port: number; target: TunnelTarget }
  | { mode: "pod"; device: string; count: number; seed: number; rate: number; target: PodTarget };

export interface SendResult {
  mode: "tunnel" | "pod";
  /** Items offered (datagrams or frames), what the kernel took and what it refused, per kind. */
  count: number;
  sent: number;
  refused: number;
  byKind: Record<string, { sent: number; refused: number }>;
  /** Why the kernel refused, errno name → count; and how often a full queue made us wait. */
  errors: Record<string, number>;
  waits: number;
  /** Ethernet frames written (a huge datagram is many), their bytes, and the seconds it took. */
  frames: number;
  bytes: number;
  seconds: number;
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOL_PACKET = 263;
const PACKET_VNET_HDR = 15;
const SIOCGIFINDEX = 0x8933;
const SIOCGIFHWADDR = 0x8927;
const ENOBUFS = 105;
const ERRNO: Record<number, string> = { 1: "EPERM", 6: "ENXIO", 14: "EFAULT", 19: "ENODEV", 22: "EINVAL", 90: "EMSGSIZE", 100: "ENETDOWN" };

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** A packet socket bound to `device` that receives nothing (protocol 0); with `vnet`, every send starts with a virtio_net_hdr. */
function packetSocket(libc: Libc, device: string, vnet: boolean): { fd: number; mac: Mac } {
  const fd = libc.socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) throw new Error(`packet socket: errno ${libc.errno()}`);
  const ifr = encodeIfreq(device, 0);
  if (libc.ioctlPtr(fd, SIOCGIFINDEX, ifr) < 0) throw new Error(`no interface ${device} here`);
  const ifindex = ifr[16] | (ifr[17] << 8) | (ifr[18] << 16) | (ifr[19] << 24);
  const hw = encodeIfreq(device, 0);
  if (libc.ioctlPtr(fd, SIOCGIFHWADDR, hw) < 0) throw new Error(`no MAC address on ${device}`);
  const mac = { hi: (hw[18] << 8) | hw[19], lo: ((hw[20] << 24) | (hw[21] << 16) | (hw[22] << 8) | hw[23]) >>> 0 };
  const sll = new Uint8Array(20);
  sll[0] = AF_PACKET;
  sll[4] = ifindex & 0xff; sll[5] = (ifindex >> 8) & 0xff; sll[6] = (ifindex >> 16) & 0xff; sll[7] = ifindex >>> 24;
  if (libc.bind(fd, sll, sll.length) < 0) throw new Error(`bind to ${device}: errno ${libc.errno()}`);
  if (vnet && libc.setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, Uint8Array.of(1, 0, 0, 0), 4) < 0) throw new Error(`PACKET_VNET_HDR: errno ${libc.errno()}`);
  return { fd, mac };
}

export async function runSendJob(job: SendJob): Promise<SendResult> {
  const libc = await loadLibc();
  const rng = new Rng(job.seed);
  const plain = packetSocket(libc, job.device, false);
  const kinds: readonly string[] = job.mode === "tunnel" ? TUNNEL_KINDS : FRAME_KINDS;
  const sentBy = new Float64Array(kinds.length);
  const refusedBy = new Float64Array(kinds.length);
  const errors: Record<string, number> = {};
  let waits = 0;
  let frames = 0;
  let bytes = 0;

  /** One write, retried while the kernel has no room; the errno if it refused, else 0. */
  const write = (fd: number, b: Uint8Array, len: number): number => {
    for (let tries = 0; ; tries++) {
      if (libc.write(fd, b, len) >= 0) { frames++; bytes += len; return 0; }
      const e = libc.errno();
      if ((e !== ENOBUFS && e !== EAGAIN) || tries >= 1000) return e;
      waits++;
      sleepMs(1);
    }
  };
  const refuse = (kind: number, e: number) => {
    refusedBy[kind]++;
    const name = ERRNO[e] ?? `errno ${e}`;
    errors[name] = (errors[name] ?? 0) + 1;
  };

  const t0 = performance.now();
  const pace = (i: number) => {
    if (job.rate <= 0 || (i & 63) !== 0) return;
    const ahead = (i / job.rate) * 1000 - (performance.now() - t0);
    if (ahead > 1) sleepMs(ahead);
  };

  if (job.mode === "tunnel") {
    const gen = new TunnelGenerator(rng, job.target);
    const dst = macOf(job.dstMac);
    const whole = new Uint8Array(new ArrayBuffer(42 + MAX_DATAGRAM + 64));
    const frame = new Uint8Array(new ArrayBuffer(2048));
    let id = rng.int(65536);
    for (let i = 0; i < job.count; i++) {
      pace(i);
      const len = gen.next(whole, 42);
      const kind = gen.kind;
      put16(whole, 34, 40000 + (i & 0x3fff)); // UDP: source port, destination, length, no checksum
      put16(whole, 36, job.port);
      put16(whole, 38, 8 + len);
      put16(whole, 40, 0);
      id = (id + 1) & 0xffff;
      const ipPayload = 8 + len;
      let e = 0;
      if (ipPayload <= FRAGMENT_PAYLOAD) {
        writeEth(whole, 0, dst, plain.mac, ETHERTYPE_IPV4);
        writeIpv4(whole, 14, gen.src, job.target.address, PROTO_UDP, ipPayload, 64, id);
        e = write(plain.fd, whole, 34 + ipPayload);
      } else {
        for (let at = 0; at < ipPayload && e === 0; at += FRAGMENT_PAYLOAD) {
          e = write(plain.fd, frame, writeFragment(frame, whole, at, ipPayload, dst, plain.mac, gen.src, job.target.address, id));
        }
      }
      if (e === 0) sentBy[kind]++;
      else refuse(kind, e);
    }
  } else {
    const vnet = packetSocket(libc, job.device, true);
    const gen = new FrameGenerator(rng, job.target);
    const b = new Uint8Array(new ArrayBuffer(MAX_FRAME + 64));
    for (let i = 0; i < job.count; i++) {
      pace(i);
      const len = gen.next(b, 0);
      const e = write(gen.vnet ? vnet.fd : plain.fd, b, len);
      if (e === 0) sentBy[gen.kind]++;
      else refuse(gen.kind, e);
    }
    libc.close(vnet.fd);
  }
  libc.close(plain.fd);
  const byKind: SendResult["byKind"] = {};
  kinds.forEach((k, i) => { byKind[k] = { sent: sentBy[i], refused: refusedBy[i] }; });
  const sent = sentBy.reduce((a, x) => a + x, 0);
  const refused = refusedBy.reduce((a, x) => a + x, 0);
  return { mode: job.mode, count: job.count, sent, refused, byKind, errors, waits, frames, bytes, seconds: (performance.now() - t0) / 1000 };
}

const isMain = (() => {
  const entry = (globalThis as { Deno?: { mainModule?: string } }).Deno?.mainModule ?? `file://${process.argv[1] ?? ""}`;
  return entry.endsWith("/bench/hostile-send.ts");
})();
if (isMain) {
  const arg = (globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? process.argv[2];
  try {
    const result = await runSendJob(JSON.parse(arg ?? "") as SendJob);
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (e) {
    process.stderr.write(`hostile-send: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

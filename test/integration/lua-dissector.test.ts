// The Wireshark dissector of the tapnet backend's format (dissector/tapnet.lua, printed by
// `tapnet lua-dissector`), checked by tshark: first on a pcap made here by hand (one datagram
// of each kind, field by field; malformed ones get an expert info, never a Lua error; frames
// whose chunks are spread over several packets, in order or not; the decode-as flags the
// command's help gives), then on real captures of a lab's underlay in the clear, down to the
// pods' TCP (a frame's chunks put back together when they lie in one captured packet, and when
// the kernel cut them into several before the capture). A sealed lab's underlay, as far as
// epoch, counter and tag: trace.test.ts, on the sealed lab it shares (trace-lab.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DECODE_AS, luaDissectorCommand } from "../../src/cli/commands/lua-dissector.ts";
import { emitEthernet, ETHERTYPE_IPV4 } from "../../src/wire/ethernet.ts";
import { emitIpv4 } from "../../src/wire/ipv4.ts";
import { emitTcp } from "../../src/wire/tcp.ts";
import { emitUdp } from "../../src/wire/udp.ts";
import { emitVxlan } from "../../src/wire/vxlan.ts";
import { emitTapnet } from "../../src/wire/tapnet.ts";
import { writeSealedHeader } from "../../src/wire/sealed.ts";
import { emitVirtioNetHdr, GSO_TCPV4, VNET_F_NEEDS_CSUM } from "../../src/wire/virtio.ts";
import { tapnetBackend } from "../../src/tunnel/tapnet.ts";
import { captureUnderlay, shareLab, tsharkFields } from "./trace-lab.ts";

const dir = mkdtempSync(join(tmpdir(), "lua-dissector-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** tshark's fields for each packet of `file`, with the dissector `tapnet lua-dissector` prints. */
const fields = (file: string, names: string[], extra: string[] = []) => tsharkFields(dir, file, names, extra);

/** A pcap (not pcapng) file of Ethernet frames. */
function pcap(frames: Uint8Array[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const records = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([head, ...records]);
}

/** Ethernet, IPv4, TCP (no payload but `pad` zero bytes) from src:sport to dst:dport. */
function tcpFrame(src: string, dst: string, sport: number, dport: number, pad = 0): Uint8Array {
  const f = new Uint8Array(14 + 20 + 20 + pad);
  emitEthernet({ dst: "0a:58:0a:f4:02:01", src: "0a:58:0a:f4:01:02", vlans: [], etherType: ETHERTYPE_IPV4 }, f, 0);
  emitIpv4({ tos: 0, id: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, src, dst, payloadLen: 20 + pad }, f, 14);
  emitTcp({ srcPort: sport, dstPort: dport, seq: 1000, ack: 0, flags: 0x02, window: 64240, checksum: 0, urgent: 0, options: new Uint8Array(0) }, f, 34);
  return f;
}

/** A TAP frame: a virtio_net_hdr asking for TSO, then `eth`. */
function tapFrame(eth: Uint8Array): Uint8Array {
  const f = new Uint8Array(10 + eth.length);
  emitVirtioNetHdr({ flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 }, f, 0);
  f.set(eth, 10);
  return f;
}

/** The tapnet datagram carrying frame[offset..offset+len) of frame `id`. */
function v1(id: number, frame: Uint8Array, offset: number, len: number): Uint8Array {
  const d = new Uint8Array(12 + len);
  emitTapnet({ frameId: id, frameLen: frame.length, offset, chunk: frame.subarray(offset, offset + len) }, d, 0);
  return d;
}

/** An underlay frame: Ethernet, IPv4 192.168.56.11 -> .12, UDP to `port`, `payload`. */
function underlay(payload: Uint8Array, port = tapnetBackend.port): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + payload.length);
  emitEthernet({ dst: "02:00:00:00:00:12", src: "02:00:00:00:00:11", vlans: [], etherType: ETHERTYPE_IPV4 }, f, 0);
  emitIpv4({ tos: 0, id: 2, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 17, src: "192.168.56.11", dst: "192.168.56.12", payloadLen: 8 + payload.length }, f, 14);
  emitUdp({ srcPort: port, dstPort: port, payload }, f, 34);
  return f;
}

const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

describe("tshark with the dissector, on datagrams made by hand", () => {
  it("is registered on the backend's default port", () => {
    expect(readFileSync(new URL("../../dissector/tapnet.lua", import.meta.url), "utf8")).toContain(`DEFAULT_PORT = ${tapnetBackend.port}\n`);
  });

  it("decodes each kind of datagram field by field, and flags malformed ones", async () => {
    const one = tapFrame(tcpFrame("10.244.1.2", "10.244.2.2", 40000, 80));
    const big = tapFrame(tcpFrame("10.244.1.3", "10.244.2.3", 40001, 8080, 100)); // 164 bytes: two chunks
    const sealed = new Uint8Array(16 + 40 + 16).fill(0xaa);
    writeSealedHeader(sealed, 0, 0x010203040506, 5);
    const file = join(dir, "hand.pcap");
    writeFileSync(file, pcap([
      underlay(v1(7, one, 0, one.length)),
      underlay(cat(v1(8, big, 0, 100), v1(8, big, 100, 64))), // one UDP_SEGMENT send, captured before it was cut
      underlay(v1(9, big, 100, 64)), // a later chunk alone
      underlay(new Uint8Array([1, 0, 0, 7, 0])),
      underlay(new Uint8Array([9, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
      underlay(sealed),
    ]));
    const rows = await fields(file, ["tapnet.version", "tapnet.flags", "tapnet.frame_id", "tapnet.frame_len", "tapnet.offset", "tapnet.vnet.flags",
      "tapnet.vnet.gso_type", "tapnet.vnet.hdr_len", "tapnet.vnet.gso_size", "tapnet.vnet.csum_start", "tapnet.vnet.csum_offset",
      "ip.src", "tcp.srcport", "tcp.dstport", "tapnet.datagrams", "tapnet.continuation", "tapnet.epoch", "tapnet.counter",
      "tapnet.ciphertext_len", "tapnet.tag", "_ws.expert.message", "_ws.col.Info"]);
    expect(rows).toHaveLength(6);
    expect(rows[0].slice(0, 14)).toEqual(["1", "0x00", "7", "64", "0", "0x01", "1", "54", "1448", "34", "16", "192.168.56.11,10.244.1.2", "40000", "80"]);
    expect(rows[0][21]).toMatch(/^tapnet v1: frame 7, chunk 0-64 of 64 \| 40000 → 80 \[SYN\]/);
    expect(rows[1].slice(0, 5)).toEqual(["1,1", "0x00,0x00", "8,8", "164,164", "0,100"]);
    expect(rows[1].slice(11, 16)).toEqual(["192.168.56.11,10.244.1.3", "40001", "8080", "2", expect.any(String)]);
    expect(rows[1][21]).toMatch(/^tapnet v1: frame 8, chunks 0-164 of 164 in 2 datagrams \| 40001 → 8080/);
    expect(rows[2].slice(0, 5)).toEqual(["1", "0x00", "9", "164", "100"]);
    expect(rows[2][11]).toBe("192.168.56.11"); // no inner packet
    expect(rows[2][15]).not.toBe("");
    expect(rows[2][20]).toMatch(/not reassembled/);
    expect(rows[2][21]).toBe("tapnet v1: frame 9, chunk 100-164 of 164");
    expect(rows[3][20]).toMatch(/5 bytes: too short for a tapnet version 1 datagram/);
    expect(rows[4][0]).toBe("9");
    expect(rows[4][20]).toMatch(/Unknown tapnet version 9/);
    expect(rows[5].slice(0, 2)).toEqual(["2", "0x00"]);
    expect(rows[5].slice(16, 20)).toEqual([String(0x010203040506), "5", "40", "aa".repeat(16)]);
    expect(rows[5][11]).toBe("192.168.56.11");
    expect(rows[5][20]).toMatch(/Sealed/);
    expect(rows[5][21]).toBe(`tapnet v2, sealed: epoch ${0x010203040506}, counter 5, 40 bytes of ciphertext`);
  });

  it("puts a frame back together from chunks spread over several packets, in order or not, down to its TCP header", async () => {
    const big = tapFrame(tcpFrame("10.244.1.4", "10.244.2.4", 40002, 9090, 200)); // 264 bytes
    const other = tapFrame(tcpFrame("10.244.1.5", "10.244.2.5", 40003, 9191, 100)); // 164 bytes
    const file = join(dir, "spread.pcap");
    writeFileSync(file, pcap([
      underlay(v1(11, big, 0, 100)),
      underlay(v1(11, big, 100, 100)),
      underlay(v1(12, other, 100, 64)), // frame 12's last chunk first
      underlay(v1(11, big, 200, 64)),
      underlay(v1(12, other, 0, 100)),
      underlay(v1(13, big, 0, 100)), // never finished
    ]));
    const names = ["tapnet.frame_id", "tapnet.reassembled_in", "tapnet.reassembled_from", "ip.src", "tcp.srcport", "tcp.dstport", "tcp.len", "_ws.expert.message", "_ws.col.Info"];
    // Two passes (as Wireshark does when a packet is clicked): the inner packet only where the frame is whole.
    const two = await fields(file, names, ["-2"]);
    expect(two.map((r) => r.slice(0, 7))).toEqual([
      ["11", "4", "", "192.168.56.11", "", "", ""],
      ["11", "4", "", "192.168.56.11", "", "", ""],
      ["12", "5", "", "192.168.56.11", "", "", ""],
      ["11", "", "#1, #2, #4", "192.168.56.11,10.244.1.4", "40002", "9090", "200"],
      ["12", "", "#3, #5", "192.168.56.11,10.244.1.5", "40003", "9191", "100"],
      ["13", "", "", "192.168.56.11,10.244.1.4", "40002", "9090", expect.any(String)],
    ]);
    // (TCP's analysis may call it a retransmission: its first pass saw the first chunk decoded as far as it went.)
    expect(two[3][8]).toMatch(/^tapnet v1: frame 11, chunk 200-264 of 264 \| (\[TCP [^\]]+\] )?40002 → 9090 \[SYN\]/);
    expect(two[5][7]).toMatch(/not whole so far/);
    // One pass (tshark's default): a packet cannot know its frame ends later; its first chunk is decoded as far as it goes.
    const one = await fields(file, names);
    expect(one.map((r) => r.slice(0, 6))).toEqual([
      ["11", "", "", "192.168.56.11,10.244.1.4", "40002", "9090"],
      ["11", "", "", "192.168.56.11", "", ""],
      ["12", "", "", "192.168.56.11", "", ""],
      ["11", "", "#1, #2, #4", "192.168.56.11,10.244.1.4", "40002", "9090"],
      ["12", "", "#3, #5", "192.168.56.11,10.244.1.5", "40003", "9191"],
      ["13", "", "", "192.168.56.11,10.244.1.4", "40002", "9090"],
    ]);
    expect(one[2][7]).toMatch(/not reassembled/);
  });

  it("decodes another port with Decode As, and VXLAN and flannel's udp with the flags the help gives", async () => {
    const inner = tcpFrame("10.244.1.2", "10.244.2.2", 40000, 80);
    const vxlan = new Uint8Array(8 + inner.length);
    emitVxlan({ vni: 1 }, vxlan, 0);
    vxlan.set(inner, 8);
    const port = (b: string) => Number(/udp\.port==(\d+)/.exec(DECODE_AS.find((d) => d.backend === b)!.flag)![1]);
    const file = join(dir, "decode-as.pcap");
    const tap = tapFrame(inner);
    writeFileSync(file, pcap([underlay(vxlan, port("vxlan")), underlay(inner.subarray(14), port("udp")), underlay(v1(3, tap, 0, tap.length), 9999)]));
    const names = ["vxlan.vni", "ip.src", "tcp.dstport", "tapnet.version"];
    expect(await fields(file, names)).toEqual([["", "192.168.56.11", "", ""], ["", "192.168.56.11", "", ""], ["", "192.168.56.11", "", ""]]);
    const flags = [...DECODE_AS.flatMap((d) => d.flag.split(" ")), "-d", "udp.port==9999,tapnet"];
    expect(await fields(file, names, flags)).toEqual([
      ["1", "192.168.56.11,10.244.1.2", "80", ""],
      ["", "192.168.56.11,10.244.1.2", "80", ""],
      ["", "192.168.56.11,10.244.1.2", "80", "1"],
    ]);
  });

  it("says in its help how to install it", () => {
    expect(luaDissectorCommand.details).toContain("tapnet lua-dissector > ~/.local/lib/wireshark/plugins/tapnet.lua");
    expect(luaDissectorCommand.details).toContain("-d udp.port==8472,vxlan");
    expect(luaDissectorCommand.details).toContain("-d udp.port==8285,ip");
  });
});

describe("tshark with the dissector, on a lab's underlay in the clear", () => {
  const lab = shareLab("tapnet", { insecure: true });

  it("decodes the tapnet backend in the clear down to the pods' TCP", async () => {
    const { file, a, b } = await captureUnderlay(lab, dir);
    const rows = await fields(file, ["tapnet.version", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "icmp.type", "tapnet.vnet.gso_type"]);
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) expect(r[0]).toMatch(/^1(,1)*$/);
    const tcp = rows.filter((r) => r[4].split(",").includes("7777"));
    expect(tcp.length).toBeGreaterThan(0);
    for (const r of tcp) expect(r.slice(1, 3)).toEqual([`192.168.56.11,${a}`, `192.168.56.12,${b}`]);
    expect(rows.some((r) => r[3].split(",").includes("7777") && r[1] === `192.168.56.12,${b}`)).toBe(true); // the replies
    expect(rows.some((r) => r[6] === "1")).toBe(true); // a TCPv4 super-frame, as the TAP gave it
    expect(rows.filter((r) => r[5] === "8")).toHaveLength(3);
  });

  it("puts a lab's super-frames back together when the kernel cut them into datagrams before the capture", async () => {
    const { file, a } = await captureUnderlay(lab, dir, true);
    const rows = await fields(file, ["ip.src", "tapnet.datagrams", "tapnet.reassembled_in", "tapnet.reassembled_from", "tcp.dstport", "tcp.len"], ["-2"]);
    const fromNode1 = rows.filter((r) => r[0].startsWith("192.168.56.11"));
    expect(fromNode1.every((r) => r[1] === "")).toBe(true); // one datagram a packet: cut before the bridge
    const whole = fromNode1.filter((r) => r[3] !== "" && r[4] === "7777");
    expect(whole.length).toBeGreaterThan(0);
    expect(whole.some((r) => Number(r[5]) > 1460)).toBe(true); // more TCP payload than a datagram holds: a super-frame, whole
    for (const r of whole) {
      expect(r[0]).toBe(`192.168.56.11,${a}`);
      expect(r[3]).toMatch(/^#\d+(, #\d+)+$/); // from several packets
      expect(Number(r[5])).toBeGreaterThan(0);
      // Each packet it was put together from but the last links to it.
      const ids = r[3].split(", ").map((x) => Number(x.slice(1)));
      for (const n of ids.slice(0, -1)) expect(rows[n - 1][2]).toBe(String(ids[ids.length - 1]));
    }
  });
});

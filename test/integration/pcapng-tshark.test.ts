// pcapng read back by Wireshark: a file with two interfaces (an Ethernet TAP and a raw-IPv4
// underlay), one ICMP echo seen on both with one packet id, comments and directions. tshark must
// read it without a complaint and show each field as written. Skipped only where tshark is absent.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fromHex } from "../../src/wire/bytes.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { LINKTYPE_ETHERNET, LINKTYPE_IPV4, pcapngFile } from "../../src/wire/pcapng.ts";

const hasTshark = spawnSync("tshark", ["--version"]).status === 0;
if (!hasTshark) console.warn("pcapng-tshark: tshark is not installed (apt-get install tshark): skipping the read-back by Wireshark");

/** An ICMP echo request from pod1 (10.244.1.2) to pod3 (10.244.2.3), id 42, seq 1, 56 bytes of data; checksums computed. */
function echoPacket(): Uint8Array {
  const ip = fromHex(`
    45 00 0054 1234 4000 40 01 0000 0af40102 0af40203
    08 00 0000 002a 0001`);
  const p = new Uint8Array(84);
  p.set(ip);
  for (let i = 0; i < 56; i++) p[28 + i] = 0x10 + i;
  const ipSum = internetChecksum(p, 0, 20);
  p[10] = ipSum >> 8;
  p[11] = ipSum & 0xff;
  const icmpSum = internetChecksum(p, 20, 64);
  p[22] = icmpSum >> 8;
  p[23] = icmpSum & 0xff;
  return p;
}

/** The same packet in an Ethernet frame from pod1's MAC to its gateway's. */
function echoFrame(ip: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + ip.length);
  f.set(fromHex("02000af40101 02000af40102 0800"));
  f.set(ip, 14);
  return f;
}

describe.skipIf(!hasTshark)("pcapng read by tshark", () => {
  const dir = mkdtempSync(join(tmpdir(), "pcapng-tshark-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "trace.pcapng");
  const ip = echoPacket();
  const t0 = 1_700_000_000_123_456_789n;
  writeFileSync(file, pcapngFile({ userappl: "tapnet test" }, [
    { linkType: LINKTYPE_ETHERNET, name: "node1/tap:node1-pod1", description: "pod1's TAP on node1", resolution: "ns" },
    { linkType: LINKTYPE_IPV4, name: "node1/underlay", snaplen: 60 },
  ], [
    { interfaceId: 0, timeNs: t0, data: echoFrame(ip), comments: ["pod1 sent it", "echo request to 10.244.2.3"], direction: "inbound", packetId: 7 },
    { interfaceId: 1, timeNs: t0 + 25_000n, data: ip, comments: ["routed to node2"], direction: "outbound", packetId: 7 },
  ]));

  function tshark(args: string[]): { stdout: string; stderr: string } {
    const r = spawnSync("tshark", ["-r", file, ...args], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return { stdout: r.stdout, stderr: r.stderr.replace(/^Running as user "root".*\n/m, "") };
  }

  it("reads the file with no complaint", () => {
    const r = tshark([]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
    expect(r.stdout).toMatch(/10\.244\.1\.2 → 10\.244\.2\.3 +ICMP .*Echo \(ping\) request/);
  });

  it("shows each packet's interface, comments, packet id, direction, time and addresses", () => {
    const fields = ["frame.interface_name", "frame.interface_description", "frame.comment", "frame.packet_id", "frame.packet_flags_direction",
      "frame.time_epoch", "frame.len", "frame.cap_len", "ip.src", "ip.dst", "icmp.type", "icmp.checksum.status"];
    const r = tshark(["-T", "fields", "-E", "separator=|", "-E", "aggregator=;", ...fields.flatMap((f) => ["-e", f])]);
    const rows = r.stdout.trim().split("\n").map((l) => Object.fromEntries(l.split("|").map((v, i) => [fields[i], v])));
    expect(rows).toEqual([
      {
        "frame.interface_name": "node1/tap:node1-pod1", "frame.interface_description": "pod1's TAP on node1",
        "frame.comment": "pod1 sent it;echo request to 10.244.2.3", "frame.packet_id": "7", "frame.packet_flags_direction": "0x00000001",
        "frame.time_epoch": "1700000000.123456789", "frame.len": "98", "frame.cap_len": "98",
        "ip.src": "10.244.1.2", "ip.dst": "10.244.2.3", "icmp.type": "8", "icmp.checksum.status": "1", // good
      },
      {
        // Microseconds on this interface: the time is cut to 6 digits; its snap length cut the packet to 60 bytes.
        // Direction is epb_flags & 3 as tshark prints it: 1 inbound, 2 outbound.
        "frame.interface_name": "node1/underlay", "frame.interface_description": "",
        "frame.comment": "routed to node2", "frame.packet_id": "7", "frame.packet_flags_direction": "0x00000002",
        "frame.time_epoch": "1700000000.123481000", "frame.len": "84", "frame.cap_len": "60",
        "ip.src": "10.244.1.2", "ip.dst": "10.244.2.3", "icmp.type": "8", "icmp.checksum.status": "2", // not checked: cut short
      },
    ]);
  });
});

import { fromHex } from "../../src/wire/bytes.ts";

// Golden VXLAN datagram (the UDP payload), built by hand from RFC 7348 section 5 ("VXLAN Frame
// Format"): flags 0x08 (the I bit, "VNI valid"), 24 reserved bits sent as zero, the 24-bit VNI,
// 8 reserved bits sent as zero; then the inner Ethernet frame as a Linux VXLAN device configured
// like flannel's `flannel.1` (VNI 1, port 8472) sends it: from its own MAC (the sending node's
// VTEP, here 0e:d1:4a:7c:22:31) to the remote VTEP MAC of its permanent neighbour entry
// (5a:36:9f:e0:8b:14), EtherType IPv4, then the routed packet with TTL already decremented: an
// ICMP echo request 10.244.1.2 → 10.244.2.3 from `ping -c 1 -s 16` (ICMP id, sequence and data
// as in the captured echo request of test/wire/ethernet.test.ts; the IPv4 header checksum 0xd443
// computed by hand for TTL 63 and these addresses). The IPv4 packet is 44 bytes, from byte 22.
export const VXLAN_DATAGRAM = fromHex(`
  0800 0000 0000 0100 5a36 9fe0 8b14 0ed1
  4a7c 2231 0800 4500 002c 4ea1 4000 3f01
  d443 0af4 0102 0af4 0203 0800 00c5 0f68
  0001 e5ab 036b 0000 0000 f0ba 0e00 0000
  0000`);

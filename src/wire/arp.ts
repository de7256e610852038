/**
 * ARP for IPv4 over Ethernet (RFC 826): the only kind tapnet reads or writes.
 *
 *   0       2       4    5    6       8
 *   | htype | ptype |hlen|plen| oper  |
 *   | sender MAC (6) | sender IP (4) | target MAC (6) | target IP (4) |   (28 bytes)
 *
 * `writeArpRequest` and `writeArpReply` lay whole frames (Ethernet header and message) for the
 * hot path: MACs as hi/lo pairs (see mac.ts), addresses as numbers, nothing allocated.
 */
import { get16, get32, put16, put32 } from "./bytes.ts";
import { Drop, type DropReason } from "./drop.ts";
import { ETH_DST, ETH_HEADER_LEN, ETH_SRC, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "./ethernet.ts";
import { formatIpv4, parseIpv4Address } from "./ipv4.ts";
import { formatMac, macHi, macLo, parseMac, putMac } from "./mac.ts";

export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OPER = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;
export const ARP_LEN = 28;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
const HTYPE_ETHERNET = 1;

export class ArpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number, len: number): DropReason {
    if (len < ARP_LEN) return Drop.ArpTruncated;
    if (get16(buf, off + ARP_HTYPE) !== HTYPE_ETHERNET || get16(buf, off + ARP_PTYPE) !== ETHERTYPE_IPV4 ||
      buf[off + ARP_HLEN] !== 6 || buf[off + ARP_PLEN] !== 4) return Drop.ArpUnsupported;
    this.buf = buf;
    this.off = off;
    return Drop.None;
  }

  get operation(): number { return get16(this.buf, this.off + ARP_OPER); }
  get senderIp(): number { return get32(this.buf, this.off + ARP_SPA); }
  get targetIp(): number { return get32(this.buf, this.off + ARP_TPA); }
}

export interface ArpRepr {
  operation: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export function parseArp(packet: Uint8Array): ArpRepr | DropReason {
  const v = new ArpView();
  const r = v.wrap(packet, 0, packet.length);
  if (r !== Drop.None) return r;
  return {
    operation: v.operation,
    senderMac: formatMac(packet, ARP_SHA), senderIp: formatIpv4(v.senderIp),
    targetMac: formatMac(packet, ARP_THA), targetIp: formatIpv4(v.targetIp),
  };
}

export function emitArp(repr: ArpRepr, buf: Uint8Array, off: number): number {
  const sha = parseMac(repr.senderMac);
  const tha = parseMac(repr.targetMac);
  const spa = parseIpv4Address(repr.senderIp);
  const tpa = parseIpv4Address(repr.targetIp);
  if (!sha || !tha || spa === undefined || tpa === undefined) throw new Error(`bad ARP ${JSON.stringify(repr)}`);
  put16(buf, off + ARP_HTYPE, HTYPE_ETHERNET);
  put16(buf, off + ARP_PTYPE, ETHERTYPE_IPV4);
  buf[off + ARP_HLEN] = 6;
  buf[off + ARP_PLEN] = 4;
  put16(buf, off + ARP_OPER, repr.operation);
  buf.set(sha, off + ARP_SHA);
  put32(buf, off + ARP_SPA, spa);
  buf.set(tha, off + ARP_THA);
  put32(buf, off + ARP_TPA, tpa);
  return ARP_LEN;
}

/**
 * Writes at buf[ethOff..] a broadcast ARP request from `senderHi`:`senderLo` (Ethernet source
 * and sender MAC) at `senderIp`, asking for `targetIp` (target MAC zero). Returns 42, the
 * bytes written: the Ethernet header and the message, no padding.
 */
export function writeArpRequest(buf: Uint8Array, ethOff: number, senderHi: number, senderLo: number,
  senderIp: number, targetIp: number): number {
  putMac(buf, ethOff + ETH_DST, 0xffff, 0xffffffff);
  putMac(buf, ethOff + ETH_SRC, senderHi, senderLo);
  put16(buf, ethOff + ETH_TYPE, ETHERTYPE_ARP);
  const a = ethOff + ETH_HEADER_LEN;
  put16(buf, a + ARP_HTYPE, HTYPE_ETHERNET);
  put16(buf, a + ARP_PTYPE, ETHERTYPE_IPV4);
  buf[a + ARP_HLEN] = 6;
  buf[a + ARP_PLEN] = 4;
  put16(buf, a + ARP_OPER, ARP_REQUEST);
  putMac(buf, a + ARP_SHA, senderHi, senderLo);
  put32(buf, a + ARP_SPA, senderIp);
  putMac(buf, a + ARP_THA, 0, 0);
  put32(buf, a + ARP_TPA, targetIp);
  return ETH_HEADER_LEN + ARP_LEN;
}

/**
 * Writes at buf[ethOff..] the reply to the ARP request framed at req[reqEthOff..] (untagged:
 * its message right after the 14-byte Ethernet header, already checked by ArpView): to the
 * asker's MAC, from `senderHi`:`senderLo` at `senderIp`; the target is the asker's MAC and
 * address; hardware and protocol types and lengths are the request's. Everything is read from
 * the request before anything is written, so `buf` may be `req` (in place, or at any other
 * offset). Returns 42, the bytes written.
 */
export function writeArpReply(buf: Uint8Array, ethOff: number, req: Uint8Array, reqEthOff: number,
  senderHi: number, senderLo: number, senderIp: number): number {
  const r = reqEthOff + ETH_HEADER_LEN;
  const types = get32(req, r + ARP_HTYPE); // htype and ptype
  const lens = get16(req, r + ARP_HLEN); // hlen and plen
  const askerHi = macHi(req, r + ARP_SHA);
  const askerLo = macLo(req, r + ARP_SHA);
  const askerIp = get32(req, r + ARP_SPA);
  putMac(buf, ethOff + ETH_DST, askerHi, askerLo);
  putMac(buf, ethOff + ETH_SRC, senderHi, senderLo);
  put16(buf, ethOff + ETH_TYPE, ETHERTYPE_ARP);
  const a = ethOff + ETH_HEADER_LEN;
  put32(buf, a + ARP_HTYPE, types);
  put16(buf, a + ARP_HLEN, lens);
  put16(buf, a + ARP_OPER, ARP_REPLY);
  putMac(buf, a + ARP_SHA, senderHi, senderLo);
  put32(buf, a + ARP_SPA, senderIp);
  putMac(buf, a + ARP_THA, askerHi, askerLo);
  put32(buf, a + ARP_TPA, askerIp);
  return ETH_HEADER_LEN + ARP_LEN;
}

// tunnel out (switch/stages/tunnel-out.ts) driven on its own over a Frames vector, with a
// backend that records what it is handed: which entries go (TO_NODE, the first `count`), what
// a backend's send returning no datagram yet means, and a packet that asks for no checksum work
// going as it is.
import { describe, expect, it } from "vitest";
import { SwitchCounter } from "../../src/switch/counters.ts";
import { FDB_DEFAULTS } from "../../src/switch/fdb.ts";
import { DONE, Frames, TO_NODE } from "../../src/switch/frames.ts";
import { TunnelOut } from "../../src/switch/stages/tunnel-out.ts";
import { SwitchState } from "../../src/switch/state.ts";
import type { TunnelBackend } from "../../src/tunnel/contract.ts";
import { putLe16 } from "../../src/wire/bytes.ts";
import { ETH_OFF, VNET_CSUM_OFFSET, VNET_CSUM_START } from "../../src/wire/virtio.ts";
import { config, ipFrame, POD_A } from "./router-support.ts";

/** A backend that keeps a copy of each frame it is sent; `send` returns `made`. */
class Recording implements TunnelBackend {
  readonly name = "recording";
  readonly recvOff = 0;
  readonly mergeReceived = false;
  sent: { peer: number; bytes: Uint8Array }[] = [];
  constructor(readonly wholeFrames: boolean, private readonly made: number) {}
  send(buf: Uint8Array, off: number, len: number, peer: number): number {
    this.sent.push({ peer, bytes: buf.slice(off, off + len) });
    return this.made;
  }
  sendSegment(): void {
    throw new Error("no super-frame is sent here");
  }
  flush(): void {}
  receive(): number {
    return 0;
  }
}

function make(wholeFrames: boolean, made = 1) {
  const state = SwitchState.make(8, FDB_DEFAULTS, config("udp"));
  const backend = new Recording(wholeFrames, made);
  const out = new TunnelOut(state, backend);
  const f = new Frames(8);
  const routed = (b: Uint8Array, port = 1, node = 2) => {
    const i = f.push(b, 0, b.length, port, node);
    f.outs[i] = TO_NODE;
    return i;
  };
  const drops = (port: number) => Object.keys(state.counters.portSnapshot(port)).filter((k) => k.startsWith("drop_"));
  return { state, backend, out, f, routed, drops, sent: () => state.counters.sw(SwitchCounter.Routed) };
}

const packet = () => ipFrame({ src: POD_A.ip, dst: "10.244.3.4" });

describe("tunnel out", () => {
  it("a whole-frame backend that gathered the frame but made no datagram yet (0) has not failed: routed, no drop", () => {
    const { backend, out, f, routed, drops, sent } = make(true, 0);
    const i = routed(packet());
    out.run(f);
    expect(backend.sent.map((s) => s.peer)).toEqual([2]);
    expect(f.outs[i]).toBe(DONE);
    expect(sent()).toBe(1);
    expect(drops(1)).toEqual([]);
  });

  it("a whole-frame backend's refusal (-1) is a tx error on the in-port, not routed", () => {
    const { out, f, routed, drops, sent } = make(true, -1);
    routed(packet());
    out.run(f);
    expect(sent()).toBe(0);
    expect(drops(1)).toEqual(["drop_tx_error"]);
  });

  it("sends a packet that asks for no checksum work as it is, whatever its virtio_net_hdr's checksum fields hold", () => {
    const { backend, out, f, routed, drops } = make(false);
    const b = packet();
    putLe16(b, VNET_CSUM_START, 34); // the UDP header, were NEEDS_CSUM set
    putLe16(b, VNET_CSUM_OFFSET, 6);
    b[ETH_OFF + 34 + 6] = b[ETH_OFF + 34 + 7] = 0; // sent without a UDP checksum
    const before = b.slice();
    routed(b);
    out.run(f);
    expect(backend.sent.map((s) => s.bytes)).toEqual([before]);
    expect(drops(1)).toEqual([]);
  });

  it("handles the vector's first `count` entries only", () => {
    const { backend, out, f, routed } = make(false);
    routed(packet(), 1, 1);
    const j = routed(packet(), 2, 2);
    f.count = 1;
    out.run(f);
    expect(backend.sent.map((s) => s.peer)).toEqual([1]);
    expect(f.outs[j]).toBe(TO_NODE);
  });
});

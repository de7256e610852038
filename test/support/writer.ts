// An in-memory PortWriter for the switch's stage tests: what port out wrote, where, and how.
import type { PortWriter } from "../../src/switch/stages/port-out.ts";
import type { FrameTail } from "../../src/tunnel/contract.ts";
import { frameBytes } from "./gather.ts";

export interface Written {
  port: number;
  /** The frame as the TAP gets it (head, then the tail's pieces), copied when written. */
  bytes: Uint8Array;
  buf: Uint8Array;
  off: number;
  len: number;
  tail: FrameTail | null;
}

/** Records each write; ports in `failing` refuse theirs (a full queue). */
export class RecordingWriter implements PortWriter {
  readonly written: Written[] = [];
  readonly failing = new Set<number>();

  write(port: number, buf: Uint8Array, off: number, len: number, tail: FrameTail | null): boolean {
    if (this.failing.has(port)) return false;
    this.written.push({ port, bytes: frameBytes(buf.subarray(off), len, tail), buf, off, len, tail });
    return true;
  }

  /** The ports written to, sorted. */
  ports(): number[] {
    return this.written.map((w) => w.port).sort((x, y) => x - y);
  }

  clear(): void {
    this.written.length = 0;
  }
}

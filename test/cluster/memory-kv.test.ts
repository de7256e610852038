/**
 * MemoryKv against the shared Kv contract (test/support/kv-contract.ts), plus what only the
 * memory store has: a clock the test drives, so lease expiry is checked without waiting.
 */
import { describe, expect, it } from "vitest";
import { MemoryKv } from "../../src/cluster/memory-kv.ts";
import { kvContract, recorder } from "../support/kv-contract.ts";

kvContract("MemoryKv", async () => {
  const kv = new MemoryKv();
  return { kv, cleanup: () => kv.close() };
});

describe("MemoryKv on a driven clock", () => {
  it("expires a lease exactly when its TTL has passed since the last keepAlive", async () => {
    let now = 1_000_000;
    const kv = new MemoryKv(() => now);
    const l = await kv.grant(10);
    const r = await kv.put("/a", "1", { lease: l });
    const w = recorder();
    kv.watch("/", r + 1, w);
    now += 9_999;
    expect(await kv.keepAlive(l)).toBe(10);
    now += 9_999;
    expect(await kv.get("/a")).toMatchObject({ lease: l });
    now += 1;
    expect(await kv.get("/a")).toBeUndefined();
    expect(w.seen.map((e) => `${e.type} ${e.entry.key} @${e.entry.modRevision}`)).toEqual([`delete /a @${r + 1}`]);
    expect(await kv.keepAlive(l)).toBe(0);
  });
});

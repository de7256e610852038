import { describe, expect, it } from "vitest";
import { DROP_NAMES, DROP_REASON_COUNT, Drop } from "../../src/wire/drop.ts";

/** "Ipv4BadHeaderLen" → "ipv4_bad_header_len": the counter name a reason's key should have. */
function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? "" : "_") + c.toLowerCase());
}

describe("drop reasons", () => {
  it("are numbered 0, 1, 2, … in the order they are declared, None first", () => {
    expect(Object.values(Drop)).toEqual(Object.keys(Drop).map((_, i) => i));
    expect(Drop.None).toBe(0);
  });

  it("each has exactly one counter name, the snake_case of its key, at its number", () => {
    expect(DROP_REASON_COUNT).toBe(Object.keys(Drop).length);
    expect(DROP_NAMES).toHaveLength(DROP_REASON_COUNT);
    for (const [key, reason] of Object.entries(Drop)) expect(DROP_NAMES[reason], key).toBe(snakeCase(key));
  });

  it("the counter names users see in stats keep their spelling", () => {
    // A few names pinned by hand, independent of the snake_case rule above.
    expect(DROP_NAMES[Drop.None]).toBe("none");
    expect(DROP_NAMES[Drop.EthRunt]).toBe("eth_runt");
    expect(DROP_NAMES[Drop.Ipv4BadTotalLen]).toBe("ipv4_bad_total_len");
    expect(DROP_NAMES[Drop.VnetHdrTruncated]).toBe("vnet_hdr_truncated");
    expect(DROP_NAMES[Drop.TapnetIncomplete]).toBe("tapnet_incomplete");
    expect(new Set(DROP_NAMES).size).toBe(DROP_NAMES.length);
  });
});

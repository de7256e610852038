// `tapnet trace`, `trace --follow`, `tapnet web` and the Wireshark dissector on real labs: one
// lab of 2 nodes per backend (tapnet, sealed; flannel's udp; VXLAN), shared by all the checks of
// that backend, since a lab takes seconds to come up and go down (trace-lab.ts: up before the
// backend's checks, down after them, also when one failed). What each group checks is said
// where it is written: trace-checks.ts, follow-checks.ts, web-checks.ts; on the sealed lab also
// the dissector on its underlay (the rest of the dissector's checks: lua-dissector.test.ts).
// Each group leaves the lab as it found it, so any of them can run alone (vitest -t).
// TAPNET_LAB_PREFIX=NAME names the labs NAME-<backend> instead of tapnet-it-… (a run beside CI's).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followChecks } from "./follow-checks.ts";
import { traceChecks } from "./trace-checks.ts";
import { BACKENDS, captureUnderlay, shareLab, tsharkFields, type SharedLab } from "./trace-lab.ts";
import { webChecks, webListenChecks } from "./web-checks.ts";

describe("tapnet web, with no lab", () => webListenChecks());

for (const backend of BACKENDS) {
  describe(`a lab of 2 nodes, ${backend} backend`, { timeout: 180_000 }, () => {
    const lab = shareLab(backend);
    describe("tapnet trace", () => traceChecks(lab));
    describe("tapnet trace --follow", () => followChecks(lab));
    describe("tapnet web", () => webChecks(lab));
    if (backend === "tapnet") describe("tshark with the dissector, on the sealed lab's underlay", () => sealedUnderlayChecks(lab));
  });
}

/** The dissector on a capture of a sealed lab's underlay (lua-dissector.test.ts has the lab in the clear). */
function sealedUnderlayChecks(lab: SharedLab): void {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "lua-dissector-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("shows a sealed lab's datagrams as version 2, with epoch and counter, and no inner packet", async () => {
    const { file } = await captureUnderlay(lab, dir);
    const rows = await tsharkFields(dir, file, ["tapnet.version", "tapnet.epoch", "tapnet.counter", "tapnet.tag", "ip.src", "tcp.srcport"]);
    expect(rows.length).toBeGreaterThan(5);
    // The tunnel's datagrams (an ICMP error quoting one, if the kernel sent any, is not the tunnel's).
    const datagrams = rows.filter((r) => r[0] !== "" && !r[4].includes(","));
    expect(datagrams.length).toBeGreaterThan(5);
    for (const r of datagrams) {
      expect(r[0]).toMatch(/^2(,2)*$/);
      expect(r[1]).toMatch(/^\d+(,\d+)*$/);
      expect(r[2]).toMatch(/^\d+(,\d+)*$/);
      expect(r[3]).toMatch(/^[0-9a-f]{32}(,[0-9a-f]{32})*$/);
      expect(r[4]).toMatch(/^192\.168\.56\.1[12]$/);
      expect(r[5]).toBe("");
    }
  });
}

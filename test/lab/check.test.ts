/**
 * judgeServedTransfer: how `tapnet check` reads an iperf3 client's report of TCP to a server it
 * did not start (another node's demo pod), the server's own view brought back by
 * --get-server-output. The reports are iperf3 3.12's (Debian 12), trimmed to the fields read,
 * with loopback's addresses changed to two pods' (10.244.1.2 the client, 10.244.2.2 the server).
 * The far side runs in text mode (tapnet-demo@.service) or JSON (-J): both are read.
 */
import { describe, expect, it } from "vitest";
import { judgeServedTransfer } from "../../src/lab/check.ts";

const SERVER_TEXT = {
  start: { connected: [{ socket: 5, local_host: "10.244.1.2", local_port: 49324, remote_host: "10.244.2.2", remote_port: 5201 }] },
  end: { sum_sent: { bytes: 131072 }, sum_received: { bits_per_second: 7231558621 } },
  server_output_text: "Accepted connection from 10.244.1.2, port 49310\n[  5] local 10.244.2.2 port 5201 connected to 10.244.1.2 port 49324\n[ ID] Interval           Transfer     Bitrate\n[  5]   0.00-0.00   sec   128 KBytes  7.23 Gbits/sec                  \n- - - - - - - - - - - - - - - - - - - - - - - - -\n[ ID] Interval           Transfer     Bitrate\n[  5]   0.00-0.00   sec   128 KBytes  7.23 Gbits/sec                  receiver\n",
};

const SERVER_JSON = {
  start: { connected: [{ socket: 5, local_host: "10.244.1.2", local_port: 56292, remote_host: "10.244.2.2", remote_port: 5201 }] },
  end: { sum_sent: { bytes: 131072 }, sum_received: { bits_per_second: 0 } },
  server_output_json: { start: { connected: [{ socket: 5, local_host: "10.244.2.2", local_port: 5201, remote_host: "10.244.1.2", remote_port: 56292 }] } },
};

const REFUSED = { start: { connected: [] }, error: "unable to connect to server: Connection refused" };
const BUSY = { start: { connected: [] }, error: "the server is busy running a test. try again later" };

const judge = (report: unknown, bytes = 100_000, expect = ["10.244.1.2"]) => judgeServedTransfer(typeof report === "string" ? report : JSON.stringify(report), bytes, expect);

describe("judgeServedTransfer: TCP to a server already there, judged by its own report", () => {
  it("passes when every byte was sent and the server saw the client's own address, from its text or its JSON", () => {
    expect(judge(SERVER_TEXT)).toEqual({ ok: true, detail: "7232 Mbit/s, server saw 10.244.1.2" });
    expect(judge(SERVER_JSON)).toEqual({ ok: true, detail: "0 Mbit/s, server saw 10.244.1.2" });
  });

  it("fails when the server saw another address (a NAT on the way), naming both", () => {
    const natted = { ...SERVER_TEXT, server_output_text: SERVER_TEXT.server_output_text.replaceAll("10.244.1.2", "192.168.56.11") };
    expect(judge(natted)).toEqual({ ok: false, detail: "server saw 192.168.56.11, not 10.244.1.2" });
    expect(judge(SERVER_JSON, 100_000, ["10.244.1.3", "10.244.1.1"])).toEqual({ ok: false, detail: "server saw 10.244.1.2, not 10.244.1.3 or 10.244.1.1" });
  });

  it("fails when fewer bytes were sent than asked, or the count is not a number", () => {
    expect(judge(SERVER_TEXT, 200_000)).toEqual({ ok: false, detail: "only 131072 of 200000 bytes were sent" });
    expect(judge({ ...SERVER_TEXT, end: { sum_sent: { bytes: "999999" } } })).toEqual({ ok: false, detail: "only 0 of 100000 bytes were sent" });
  });

  it("gives iperf3's own error: refused, busy (the caller tries those again)", () => {
    expect(judge(REFUSED)).toEqual({ ok: false, detail: "unable to connect to server: Connection refused" });
    expect(judge(BUSY)).toEqual({ ok: false, detail: "the server is busy running a test. try again later" });
  });

  it("fails, never passes, when the server's report is missing or says no address", () => {
    const { server_output_text: _, ...none } = SERVER_TEXT;
    expect(judge(none)).toEqual({ ok: false, detail: "the server's report (--get-server-output) does not say whom it saw" });
    expect(judge({ ...SERVER_TEXT, server_output_text: "Accepted connection from 10.244.1.2, port 49310\n" }).ok).toBe(false);
    expect(judge({ ...SERVER_JSON, server_output_json: { start: { connected: [] } } }).ok).toBe(false);
  });

  it("never throws on output that is not a report, and passes none of it", () => {
    const junk = ["", "iperf3: error - unable to connect", "null", "[]", "5", '"x"', "{}", '{"end":5}', '{"end":{"sum_sent":{"bytes":"999999"}},"server_output_text":"connected to 10.244.1.2 port 1"}', '{"error":{"no":1}}', JSON.stringify(SERVER_TEXT).slice(0, 120)];
    // And random cuts and byte flips of a good report.
    const good = JSON.stringify(SERVER_TEXT);
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let i = 0; i < 300; i++) {
      const at = rand(good.length);
      junk.push(i % 2 ? good.slice(0, at) : good.slice(0, at) + String.fromCharCode(32 + rand(90)) + good.slice(at + 1));
    }
    for (const j of junk) {
      const v = judgeServedTransfer(j, 100_000, ["10.244.1.2"]);
      expect(typeof v.detail).toBe("string");
      // A flipped byte may leave a whole, true report (in a field not read): only those pass.
      if (v.ok) expect(v.detail).toMatch(/server saw 10\.244\.1\.2$/);
    }
  });
});

/** What `tapnet hostile` and `tapnet soak` share: progress on stderr (one line rewritten on a terminal) and Ctrl-C that cleans up. */
import { BenchError } from "../../bench/figures.ts";

/** Progress lines on stderr: on a terminal one line, rewritten; else a line each. */
export function progressLine(): { line: (s: string) => void; done: () => void } {
  const tty = process.stderr.isTTY;
  let pending = false;
  return {
    line(s: string) {
      if (tty) {
        process.stderr.write(`\r\x1b[K${s}`);
        pending = true;
      } else process.stderr.write(s + "\n");
    },
    done() {
      if (pending) process.stderr.write("\r\x1b[K");
      pending = false;
    },
  };
}

/** Runs `body` with a signal that SIGINT or SIGTERM aborts; an aborted run ends in a BenchError saying what was cleaned up. */
export async function interruptible<T>(cleanup: string, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSignal = () => { process.stderr.write(`\ninterrupted: ${cleanup}\n`); abort.abort(); };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await body(abort.signal);
  } catch (e) {
    if (abort.signal.aborted) throw new BenchError(`interrupted; ${cleanup} done`);
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * Structured logs: one JSON object a line on stderr, so that a switch's log can be read by a
 * person and by jq alike. `quiet` loggers are for tests and commands whose output is a table.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function jsonLogger(
  base: Record<string, unknown> = {},
  min: Level = "info",
  write: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < ORDER[min]) return;
    const head = { time: new Date().toISOString(), level, msg };
    // time, level and msg come first and cannot be overridden by a field of the same name.
    write(JSON.stringify(Object.assign({}, head, base, fields, head)));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => jsonLogger({ ...base, ...fields }, min, write),
  };
}

export const silentLogger: Logger = jsonLogger({}, "error", () => {});

/** Leveled log lines on stderr: "2026-01-01T00:00:00.000Z info message". */
import { LOG_LEVELS, type LogLevel } from './config.js';

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const max = LOG_LEVELS.indexOf(level);
  const at =
    (l: LogLevel) =>
    (msg: string): void => {
      if (LOG_LEVELS.indexOf(l) <= max) write(`${new Date().toISOString()} ${l} ${msg}\n`);
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

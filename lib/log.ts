/**
 * Structured logging (pino, JSON lines on stderr). `-log.level` picks debug, info, warn or error.
 */
import pino from "pino";

/** The logger type used across lib/. */
export type Logger = pino.Logger;

/** Levels accepted by `-log.level`. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** Creates the process logger, writing synchronously to stderr so nothing is lost on exit. */
export function createLogger(component: string, level: string): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
}

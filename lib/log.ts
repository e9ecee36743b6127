/**
 * Logging with pino on stderr: JSON lines for machines, or lines a person reads (pino-pretty) on a
 * terminal. `-log.level` picks debug, info, warn or error; `-log.format` picks text, json, or auto
 * (text when stderr is a terminal, JSON otherwise: journald, Kubernetes, files).
 */
import pino from "pino";
import pretty from "pino-pretty";
import type { FlagSpec } from "./cli/flags.ts";

/** The logger type used across lib/. */
export type Logger = pino.Logger;

/** Levels accepted by `-log.level`. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** Formats accepted by `-log.format`. */
export const LOG_FORMATS = ["auto", "text", "json"] as const;

/** The logging flags, shared by server and agent (docs/flags.md). */
export const LOG_FLAGS: FlagSpec[] = [
  { name: "log.level", kind: "string", default: "info", choices: [...LOG_LEVELS], help: "log level: debug, info, warn, error" },
  { name: "log.format", kind: "string", default: "auto", choices: [...LOG_FORMATS], help: "text (for people), json (for machines), or auto: text on a terminal, JSON otherwise" },
];

/** Creates the process logger, writing synchronously to stderr so nothing is lost on exit. */
export function createLogger(component: string, level: string, format: (typeof LOG_FORMATS)[number] = "json"): Logger {
  const opts = { level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime };
  const text = format === "text" || (format === "auto" && process.stderr.isTTY === true);
  if (!text) return pino(opts, pino.destination({ dest: 2, sync: true }));
  return pino(opts, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", singleLine: true }));
}

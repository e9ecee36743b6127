/**
 * Go-style durations ("15ms", "1m30s", "2h", "1d") as used by every flag and config field.
 * Parsing is delegated to the `parse-duration` package; this module only enforces the strict
 * grammar ProberMesh documents (units ms s m h d, combinations allowed, no spaces, no bare numbers).
 */
import parseDurationLib from "parse-duration";

const STRICT = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

/**
 * Parses a duration string into milliseconds.
 * @param text e.g. "15s", "1m30s", "250ms", "1.5h"
 * @returns milliseconds (a float for sub-millisecond parts)
 * @throws Error naming the text when it is not a valid duration
 */
export function parseDurationMs(text: string): number {
  const t = text.trim();
  if (!STRICT.test(t)) {
    throw new Error(`invalid duration "${text}" (use units ms s m h d, e.g. 15s, 1m30s)`);
  }
  const ms = parseDurationLib(t, "ms");
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    throw new Error(`invalid duration "${text}"`);
  }
  return ms;
}

/** Formats milliseconds as the shortest Go-style duration ("15s", "1m30s", "250ms"). */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return "0s";
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join("");
}

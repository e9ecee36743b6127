/**
 * What every kind's result has in common (target_region, time, duration_seconds) and how the
 * server checks it. Used by the kinds' server halves (lib/probes/<kind>/ingest.ts).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Upper bound for any duration field, seconds: nothing a probe measures takes an hour. */
export const MAX_SECONDS = 3600;

/** True for a finite duration in [0, MAX_SECONDS] seconds. */
export const seconds = (v: number) => Number.isFinite(v) && v >= 0 && v <= MAX_SECONDS;

/** The fields every result message has. */
export interface CommonResult {
  targetRegion: string;
  time?: Timestamp;
  durationSeconds: number;
}

/** Checks the common fields. @returns "" or why the result is unusable */
export function checkCommon(r: CommonResult): string {
  if (!r.targetRegion || r.targetRegion.length > 256) return "target_region must be 1..256 characters";
  if (!r.time) return "time is missing";
  if (!seconds(r.durationSeconds)) return "duration_seconds out of range";
  return "";
}

/**
 * When the result's round ended, unix milliseconds on the agent's clock: time + duration_seconds
 * (agents before 0.2 send no duration: the round's start). NaN without a time.
 */
export function roundEndMs(r: CommonResult): number {
  return (r.time ? timestampMs(r.time) : NaN) + r.durationSeconds * 1000;
}

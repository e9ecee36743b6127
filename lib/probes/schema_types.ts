/** zod building blocks shared by the kinds' probe-file module schemas (lib/probes/<kind>/kind.ts). */
import { z } from "zod";
import { parseDurationMs } from "../cli/duration.ts";

/** A positive duration string ("15ms", "5s", "1m30s"). */
export const durationString = z.string().refine((s) => {
  try {
    return parseDurationMs(s) > 0;
  } catch {
    return false;
  }
}, "must be a positive duration such as 15ms, 5s or 1m30s");

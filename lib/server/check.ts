/**
 * `./server -check.config`: validates the files the server would load (the probe file and the web
 * config) without starting anything, like `promtool check config` and blackbox_exporter's
 * `--config.check`. Every error is reported, each as `file:line: reason` where the file format
 * has lines (the probe file); the web config reports `file: key: reason`.
 */
import { loadWebConfig } from "./auth/web_config.ts";
import { ConfigError, loadProbeFile } from "../targets/config.ts";
import { PROBER_TYPES } from "../probes/kind.ts";

/** What a check found: `ok` false when anything is wrong; `lines` to print (errors, warnings, then a summary). */
export interface CheckOutcome {
  ok: boolean;
  lines: string[];
}

/**
 * Checks the probe file (if given) and the web config (if given).
 * @param probeFile -server.probe.file ("" = none)
 * @param webConfigFile -server.web.config.file ("" = none)
 */
export function checkConfig(probeFile: string, webConfigFile: string): CheckOutcome {
  const lines: string[] = [];
  let ok = true;
  if (!probeFile && !webConfigFile) return { ok: true, lines: ["nothing to check: give -server.probe.file and/or -server.web.config.file"] };
  if (probeFile) {
    try {
      const f = loadProbeFile(probeFile);
      for (const w of f.warnings ?? []) lines.push(`${probeFile}: warning: ${w}`);
      const counts = PROBER_TYPES.map((t) => [t, f.blocks.filter((b) => b.proberType === t).reduce((n, b) => n + b.targets.length, 0)] as const).filter(([, n]) => n > 0);
      lines.push(`${probeFile}: OK: ${f.blocks.length} block(s)${counts.length ? `, targets: ${counts.map(([t, n]) => `${t} ${n}`).join(", ")}` : ""}`);
    } catch (e) {
      ok = false;
      lines.push(...(e instanceof ConfigError ? e.errors : [(e as Error).message]));
    }
  }
  if (webConfigFile) {
    try {
      loadWebConfig(webConfigFile);
      lines.push(`${webConfigFile}: OK`);
    } catch (e) {
      ok = false;
      lines.push((e as Error).message);
    }
  }
  return { ok, lines };
}

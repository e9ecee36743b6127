/**
 * The probe list file (`-server.probe.file`, SPEC.md "Probe list file"): YAML parsed by `yaml`,
 * validated by `zod`, every error reported as `file:line: reason`.
 */
import { isIP } from "node:net";
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Node } from "yaml";
import { z } from "zod";
import { dirname } from "node:path";
import { parseDurationMs } from "../cli/duration.ts";
import { httpModuleSchema, ModuleError, resolveHttpModule, type HttpModuleConfig } from "./http_module.ts";
import { durationString } from "./schema_types.ts";

export { HTTP_DEFAULT_TIMEOUT_MS, type HttpModuleConfig } from "./http_module.ts";

/** ICMP module defaults (SPEC.md): 64 echoes, 15 ms apart, 64-byte payload, 5 s per-packet timeout. */
export const ICMP_DEFAULTS = { packetCount: 64, intervalMs: 15, payloadSize: 64, timeoutMs: 5000 } as const;

/** Resolved ICMP module; all durations in milliseconds. */
export interface IcmpModuleConfig {
  packetCount: number;
  intervalMs: number;
  payloadSize: number;
  timeoutMs: number;
}

/** One `prober_configs` entry after validation. `region` is the TARGET region. */
export type ProbeBlock =
  | { proberType: "icmp"; region: string; targets: string[]; icmp: IcmpModuleConfig }
  | { proberType: "http"; region: string; targets: string[]; http: HttpModuleConfig };

/** A whole validated file. */
export interface ProbeFile {
  blocks: ProbeBlock[];
}

/** A config error carrying `file:line: reason`. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const icmpSchema = z.strictObject({
  packet_count: z.int().min(1).max(10_000).optional(),
  interval: durationString.optional(),
  payload_size: z.int().min(16).max(65_000).optional(),
  timeout: durationString.optional(),
});

const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$/;

/** True for an IPv4/IPv6 literal or a syntactically valid host name. */
export function isHostOrIp(s: string): boolean {
  return isIP(s) !== 0 || (HOSTNAME.test(s) && !/^[0-9.]+$/.test(s));
}

/**
 * Normalises an HTTP target: a bare host gets `http://` (as ProberMesh did).
 * @returns the absolute URL, or null when it is not an http(s) URL with a valid host.
 */
export function normaliseHttpTarget(s: string): string | null {
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(s) ? s : `http://${s}`;
  try {
    const u = new URL(withScheme);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    const host = u.hostname.replace(/^\[|\]$/g, "");
    return isHostOrIp(host) ? withScheme : null;
  } catch {
    return null;
  }
}

const blockSchema = z
  .strictObject({
    prober_type: z.enum(["http", "icmp"]),
    region: z.string().min(1, "must not be empty"),
    http: httpModuleSchema.optional(),
    icmp: icmpSchema.optional(),
    targets: z.array(z.string().min(1)).min(1, "must list at least one target"),
  })
  .superRefine((b, ctx) => {
    if (b.prober_type === "icmp" && b.http) ctx.addIssue({ code: "custom", path: ["http"], message: "an icmp block cannot have an http module" });
    if (b.prober_type === "http" && b.icmp) ctx.addIssue({ code: "custom", path: ["icmp"], message: "an http block cannot have an icmp module" });
    b.targets.forEach((t, i) => {
      const ok = b.prober_type === "icmp" ? isHostOrIp(t) : normaliseHttpTarget(t) !== null;
      if (!ok) ctx.addIssue({ code: "custom", path: ["targets", i], message: `"${t}" is not a valid ${b.prober_type === "icmp" ? "IP address or host name" : "http(s) URL"}` });
    });
  });

const fileSchema = z.strictObject({ prober_configs: z.array(blockSchema) });

function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, path: PropertyKey[], unknownKey?: string): number {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true) as Node | undefined;
    if (!node && n > 0) continue;
    const target = node ?? doc.contents;
    if (unknownKey && n === path.length && isMap(target)) {
      const pair = target.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === unknownKey);
      const k = pair?.key as Node | undefined;
      if (k?.range) return lc.linePos(k.range[0]).line;
    }
    if (target?.range) return lc.linePos(target.range[0]).line;
  }
  return 1;
}

/**
 * Parses and validates probe-file text.
 * @param text YAML text
 * @param file name used in error messages
 * @throws ConfigError `file:line: reason` for syntax errors, unknown keys, wrong types, bad
 *   addresses, bad durations and duplicate region+prober_type blocks.
 */
export function parseProbeFile(text: string, file: string): ProbeFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
    throw new ConfigError(`${file}:${line}: YAML syntax error: ${e.message.split("\n")[0]}`);
  }
  const data = doc.toJS() ?? { prober_configs: [] };
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    // A misspelt key also makes a required key "missing": report the misspelling, it is the cause.
    const issue = parsed.error.issues.find((i) => i.code === "unrecognized_keys") ?? parsed.error.issues[0]!;
    const unknown = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const line = lineOf(doc, lc, issue.path, unknown);
    const where = issue.path.length ? issue.path.join(".") : "file";
    const msg = unknown ? `unknown key "${unknown}"` : `${where}: ${issue.message}`;
    throw new ConfigError(`${file}:${line}: ${msg}`);
  }
  const seen = new Set<string>();
  const blocks: ProbeBlock[] = parsed.data.prober_configs.map((b, i) => {
    const key = `${b.region}\u0000${b.prober_type}`;
    if (seen.has(key)) {
      const line = lineOf(doc, lc, ["prober_configs", i]);
      throw new ConfigError(`${file}:${line}: duplicate block for region "${b.region}" and prober_type ${b.prober_type} (merge their targets into one block)`);
    }
    seen.add(key);
    const targets = [...new Set(b.targets.map((t) => (b.prober_type === "http" ? normaliseHttpTarget(t)! : t)))];
    if (b.prober_type === "icmp") {
      const m = b.icmp ?? {};
      return {
        proberType: "icmp",
        region: b.region,
        targets,
        icmp: {
          packetCount: m.packet_count ?? ICMP_DEFAULTS.packetCount,
          intervalMs: m.interval ? parseDurationMs(m.interval) : ICMP_DEFAULTS.intervalMs,
          payloadSize: m.payload_size ?? ICMP_DEFAULTS.payloadSize,
          timeoutMs: m.timeout ? parseDurationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs,
        },
      };
    }
    let http: HttpModuleConfig;
    try {
      http = resolveHttpModule(b.http ?? {}, dirname(file));
    } catch (e) {
      if (!(e instanceof ModuleError)) throw e;
      const line = lineOf(doc, lc, ["prober_configs", i, "http", ...e.path]);
      throw new ConfigError(`${file}:${line}: prober_configs.${i}.http.${e.path.join(".")}: ${e.message}`);
    }
    return { proberType: "http", region: b.region, targets, http };
  });
  return { blocks };
}

/** Reads and validates a probe file from disk. @throws ConfigError (including unreadable file). */
export function loadProbeFile(path: string): ProbeFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseProbeFile(text, path);
}

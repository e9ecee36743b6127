/**
 * The probe list file (`-server.probe.file`, docs/configuration.md): YAML parsed by `yaml`,
 * validated by `zod` with each kind's module schema from the registry (lib/probes/kinds.ts), every
 * error reported as `file:line: reason`. Modules come out as the protobuf messages agents receive.
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Node } from "yaml";
import { z } from "zod";
import { PROBER_TYPES, type ModuleOf, type ProberType } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";

/** One `prober_configs` entry after validation. `region` is the TARGET region; targets are canonical and de-duplicated. */
export type ProbeBlock = { [K in ProberType]: { proberType: K; region: string; targets: string[]; module: ModuleOf<K> } }[ProberType];

/** A whole validated file. */
export interface ProbeFile {
  blocks: ProbeBlock[];
}

/** A config error carrying `file:line: reason`. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The file's schema; module keys (`icmp:`, `http:`) and target syntax come from the kinds. */
function fileSchema(baseDir: string) {
  const moduleKeys = Object.fromEntries(PROBER_TYPES.map((t) => [t, PROBE_KINDS[t].moduleSchema(baseDir).optional()])) as { [K in ProberType]: z.ZodOptional<z.ZodType<ModuleOf<K>, unknown>> };
  const block = z
    .strictObject({
      prober_type: z.enum(PROBER_TYPES),
      region: z.string().min(1, "must not be empty"),
      targets: z.array(z.string().min(1)).min(1, "must list at least one target"),
      ...moduleKeys,
    })
    .superRefine((b, ctx) => {
      for (const t of PROBER_TYPES) {
        if (t !== b.prober_type && b[t] !== undefined) ctx.addIssue({ code: "custom", path: [t], message: `a ${b.prober_type} block cannot have an ${t} module` });
      }
      const kind = PROBE_KINDS[b.prober_type];
      b.targets.forEach((t, i) => {
        if (kind.normaliseTarget(t) === null) ctx.addIssue({ code: "custom", path: ["targets", i], message: `"${t}" is not a valid ${kind.targetDescription}` });
      });
    });
  return z.strictObject({ prober_configs: z.array(block) });
}

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
  const parsed = fileSchema(dirname(file)).safeParse(data);
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
  const blocks = parsed.data.prober_configs.map((b, i): ProbeBlock => {
    const key = `${b.region}\u0000${b.prober_type}`;
    if (seen.has(key)) {
      const line = lineOf(doc, lc, ["prober_configs", i]);
      throw new ConfigError(`${file}:${line}: duplicate block for region "${b.region}" and prober_type ${b.prober_type} (merge their targets into one block)`);
    }
    seen.add(key);
    const kind = PROBE_KINDS[b.prober_type];
    const targets = [...new Set(b.targets.map((t) => kind.normaliseTarget(t)!))];
    return { proberType: b.prober_type, region: b.region, targets, module: b[b.prober_type] ?? kind.defaultModule() } as ProbeBlock;
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

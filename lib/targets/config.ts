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
import { MESH_KIND, MESH_MERGED_KINDS, PROBE_KINDS } from "../probes/kinds.ts";
import { BLACKBOX_ONLY_PROBERS, modulesSchema } from "./modules.ts";

/** One `prober_configs` entry after validation. `region` is the TARGET region; targets are canonical and de-duplicated. */
export type ProbeBlock = { [K in ProberType]: { proberType: K; region: string; targets: string[]; module: ModuleOf<K> } }[ProberType];

/** A whole validated file. */
export interface ProbeFile {
  blocks: ProbeBlock[];
  /** What is accepted but not used (modules of blackbox probers ProberMesh does not run). */
  warnings?: string[];
}

/** A config error carrying `file:line: reason`. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /**
   * @param message the first error, `file:line: reason`
   * @param errors every error found, each `file:line: reason` (-check.config prints them all)
   */
  constructor(message: string, readonly errors: string[] = [message]) {
    super(message);
  }
}

/** The file's schema; module keys (`icmp:`, `http:` ...), target syntax and `modules:` come from the kinds. */
function fileSchema(baseDir: string) {
  const moduleKeys = Object.fromEntries(PROBER_TYPES.map((t) => [t, PROBE_KINDS[t].moduleSchema(baseDir).optional()])) as { [K in ProberType]: z.ZodOptional<z.ZodType<ModuleOf<K>, unknown>> };
  const block = z
    .strictObject({
      prober_type: z.enum(PROBER_TYPES).optional(),
      region: z.string().min(1, "must not be empty"),
      module: z.string().min(1).optional(),
      targets: z.array(z.string().min(1)).default([]),
      ...moduleKeys,
    })
    .superRefine((b, ctx) => {
      if (!b.prober_type && !b.module) ctx.addIssue({ code: "custom", path: ["prober_type"], message: "is required (or name a module with module:)" });
      for (const t of PROBER_TYPES) {
        if (b[t] === undefined) continue;
        if (b.module) ctx.addIssue({ code: "custom", path: [t], message: `give the module inline (${t}:) or by name (module: ${b.module}), not both` });
        else if (t !== b.prober_type) ctx.addIssue({ code: "custom", path: [t], message: `a ${b.prober_type} block cannot have an ${t} module` });
      }
    });
  return z
    .strictObject({ modules: modulesSchema(baseDir).optional(), prober_configs: z.array(block).optional() })
    .transform((f, ctx) => {
      const modules = f.modules ?? {};
      const blocks = (f.prober_configs ?? []).flatMap((b, i): ProbeBlock[] => {
        let type = b.prober_type;
        let module: ModuleOf<ProberType> | undefined = type ? b[type] : undefined;
        if (b.module) {
          const named = Object.hasOwn(modules, b.module) ? modules[b.module] : undefined;
          if (!named) {
            ctx.addIssue({ code: "custom", path: ["prober_configs", i, "module"], message: `no module "${b.module}" in modules:` });
            return [];
          }
          if (!named.module) {
            ctx.addIssue({ code: "custom", path: ["prober_configs", i, "module"], message: `module "${b.module}" uses blackbox_exporter's ${named.prober} prober, which ProberMesh does not run: ${BLACKBOX_ONLY_PROBERS[named.prober as keyof typeof BLACKBOX_ONLY_PROBERS]}` });
            return [];
          }
          if (type && type !== named.prober) {
            ctx.addIssue({ code: "custom", path: ["prober_configs", i, "prober_type"], message: `is ${type} but module "${b.module}" has prober ${named.prober}` });
            return [];
          }
          type = named.prober;
          module = named.module;
        }
        const kind = PROBE_KINDS[type!];
        if (b.targets.length === 0 && !(MESH_MERGED_KINDS as readonly string[]).includes(type!)) {
          ctx.addIssue({ code: "custom", path: ["prober_configs", i, "targets"], message: `must list at least one target (only ${MESH_MERGED_KINDS.join(" and ")} blocks, whose targets discovery adds, may have none)` });
          return [];
        }
        const bad = b.targets.findIndex((t) => kind.normaliseTarget(t) === null);
        if (bad >= 0) {
          ctx.addIssue({ code: "custom", path: ["prober_configs", i, "targets", bad], message: `"${b.targets[bad]}" is not a valid ${kind.targetDescription}` });
          return [];
        }
        const targets = [...new Set(b.targets.map((t) => kind.normaliseTarget(t)!))];
        return [{ proberType: type!, region: b.region, targets, module: module ?? kind.defaultModule() } as ProbeBlock];
      });
      const warnings = Object.entries(modules).flatMap(([name, m]) => (m.module ? [] : [`module "${name}": blackbox_exporter's ${m.prober} prober is not run by ProberMesh (${BLACKBOX_ONLY_PROBERS[m.prober as keyof typeof BLACKBOX_ONLY_PROBERS]})`]));
      return { blocks, warnings };
    });
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
    // A key that is missing (a required option) is reported at the key of the section that lacks
    // it (`dns:`), not at the first line inside that section.
    if (n < path.length && n > 0) {
      const parent = doc.getIn(path.slice(0, n - 1) as (string | number)[], true) as Node | undefined;
      const pair = isMap(parent) ? parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === path[n - 1]) : undefined;
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
  const data = doc.toJS() ?? {};
  const parsed = fileSchema(dirname(file)).safeParse(data);
  const errors: string[] = [];
  if (!parsed.success) {
    // A misspelt key also makes a required key "missing": report the misspelling first, it is the cause.
    const issues = [...parsed.error.issues].sort((a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"));
    for (const issue of issues) {
      for (const unknown of issue.code === "unrecognized_keys" ? issue.keys : [undefined]) {
        const line = lineOf(doc, lc, issue.path, unknown);
        const where = issue.path.length ? issue.path.join(".") : "file";
        errors.push(`${file}:${line}: ${unknown ? `unknown key "${unknown}"` : `${where}: ${issue.message}`}`);
      }
    }
    throw new ConfigError(errors[0]!, [...new Set(errors)]);
  }
  const { blocks, warnings } = parsed.data;
  // A merged mesh kind's block of a region (icmp, udp) also gives the module of that region's
  // agents: one per region. Other kinds may have several blocks per region (several modules), but
  // a target once per kind and region.
  const perRegion = (t: string) => t === MESH_KIND || t === "udp";
  const seen = new Set<string>();
  (data.prober_configs ?? []).forEach((_: unknown, i: number) => {
    const b = blocks[i];
    if (!b) return;
    const keys = perRegion(b.proberType) ? [`${b.region}\u0000${b.proberType}`] : b.targets.map((t) => `${b.region}\u0000${b.proberType}\u0000${t}`);
    const dup = keys.find((k) => seen.has(k));
    if (dup !== undefined) {
      const line = lineOf(doc, lc, ["prober_configs", i]);
      errors.push(perRegion(b.proberType)
        ? `${file}:${line}: duplicate block for region "${b.region}" and prober_type ${b.proberType} (merge their targets into one block)`
        : `${file}:${line}: target "${dup.split("\u0000")[2]}" of region "${b.region}" is listed twice for prober_type ${b.proberType} (its series would collide)`);
    }
    keys.forEach((k) => seen.add(k));
  });
  if (errors.length) throw new ConfigError(errors[0]!, errors);
  return { blocks, warnings };
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

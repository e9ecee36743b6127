/**
 * blackbox_exporter's `modules:` in the probe file: a blackbox.yml's modules copied as they are
 * (`prober`, module-level `timeout`, and the prober's section), each validated by the kind's own
 * module schema from the registry, so that `module: <name>` in a prober_configs block can use
 * them. blackbox keeps `timeout` beside the section; ProberMesh's sections (`http:`, `tcp:` ...)
 * hold it inside, so it is moved in before validation.
 *
 * Sections of every kind ProberMesh supports are validated even when the module's prober is
 * another (blackbox unmarshals, and so validates, every section present). blackbox probers
 * ProberMesh does not run (BLACKBOX_ONLY_PROBERS) are accepted and reported as warnings; a block
 * that uses such a module is an error.
 */
import { z } from "zod";
import { PROBER_TYPES, type ModuleOf, type ProberType } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { durationString } from "../probes/schema_types.ts";

/** blackbox_exporter probers that ProberMesh does not run, with why (docs/configuration.md). */
export const BLACKBOX_ONLY_PROBERS = {
  unix: "probes a unix socket on the exporter's own host; an agent's host is not where the service runs",
  websocket: "not implemented yet",
} as const;

/** One validated module: its kind and protobuf module, or the blackbox prober ProberMesh does not run. */
export type NamedModule = { [K in ProberType]: { prober: K; module: ModuleOf<K> } }[ProberType] | { prober: keyof typeof BLACKBOX_ONLY_PROBERS; module?: undefined };

const isProberType = (s: string): s is ProberType => (PROBER_TYPES as readonly string[]).includes(s);
const isBlackboxOnly = (s: string): s is keyof typeof BLACKBOX_ONLY_PROBERS => Object.hasOwn(BLACKBOX_ONLY_PROBERS, s);

/** A section given as `http:` with nothing after it (YAML null) is an empty section, as in blackbox. */
const section = z.union([z.null(), z.record(z.string(), z.unknown())]).optional();

/**
 * The `modules:` map's schema: module name -> NamedModule. Issues carry the path inside the
 * module (`[name, "http", "method"]`, or `[name, "timeout"]` for the module-level timeout).
 */
export function modulesSchema(baseDir: string) {
  const sections = Object.fromEntries([...PROBER_TYPES, ...Object.keys(BLACKBOX_ONLY_PROBERS)].map((k) => [k, section]));
  const entry = z
    .strictObject({ prober: z.string(), timeout: durationString.optional(), ...sections })
    .transform((m, ctx): NamedModule => {
      const prober = m.prober;
      if (!isProberType(prober) && !isBlackboxOnly(prober)) {
        ctx.addIssue({ code: "custom", path: ["prober"], message: `prober '${prober}' is not valid` });
        return z.NEVER;
      }
      let out: NamedModule | undefined = isBlackboxOnly(prober) ? { prober } : undefined;
      for (const k of PROBER_TYPES) {
        const body = (m as Record<string, unknown>)[k] as Record<string, unknown> | null | undefined;
        if (body === undefined && k !== prober) continue;
        const keys: Record<string, unknown> = { ...(body ?? {}) };
        if (m.timeout !== undefined) {
          if (keys.timeout !== undefined) ctx.addIssue({ code: "custom", path: [k, "timeout"], message: "timeout is given at the module level; give it once" });
          keys.timeout = m.timeout;
        }
        const parsed = PROBE_KINDS[k].moduleSchema(baseDir).safeParse(keys);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            const path = issue.path[0] === "timeout" && m.timeout !== undefined ? ["timeout"] : [k, ...issue.path];
            ctx.addIssue({ ...issue, path } as Parameters<typeof ctx.addIssue>[0]);
          }
          continue;
        }
        if (k === prober) out = { prober: k, module: parsed.data } as NamedModule;
      }
      return out ?? z.NEVER;
    });
  return z.record(z.string().min(1), entry);
}

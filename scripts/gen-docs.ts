/**
 * Regenerates the lists in docs/ from the code that defines them, so each is written once: flags
 * (lib/server/flags.ts, lib/agent/flags.ts), metrics (the MetricSpecs every kind and the server
 * declare), failed_reason values (lib/probes/http/failed_reason.ts), reject reasons, and the probe
 * file's module options (the kinds' zod schemas and their descriptions).
 *
 *   npm run docs          rewrites the generated blocks in docs/*.md, docs/kinds/*.md and the
 *                         per-check-kind rules in deploy/prometheus (rules and their unit tests)
 *
 * A generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` (in YAML:
 * `# generated:NAME` and `# /generated:NAME`); the text around it is hand-written.
 * tests/docs_fresh.test.ts fails when a block is stale.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { z } from "zod";
import { AGENT_FLAGS } from "../lib/agent/flags.ts";
import type { FlagSpec } from "../lib/cli/flags.ts";
import { REJECT_REASONS, serverMetrics } from "../lib/metrics/server.ts";
import { SERVER_LABEL_VALUES } from "../lib/server/server.ts";
import { SeriesStore } from "../lib/metrics/series.ts";
import { PROBER_TYPES } from "../lib/probes/kind.ts";
import { MESH_FLOW_KINDS, PROBE_KINDS } from "../lib/probes/kinds.ts";
import { SERVER_FLAGS } from "../lib/server/flags.ts";
import { CHECK_KINDS, SERVER_KINDS, createIngests } from "../lib/server/kinds.ts";
import { checkRules, checkRuleTests, flowRules, flowRuleTests, incidentRules, incidentRuleTests } from "./gen-rules.ts";
import { SCOPES, THRESHOLDS, THRESHOLD_REASONS } from "../lib/localiser/model.ts";
import { incidentMetrics } from "../lib/server/incidents.ts";

const root = new URL("..", import.meta.url).pathname;
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function flagTable(flags: FlagSpec[]): string {
  const rows = flags.map((f) => {
    const names = [`\`-${f.name}\``, ...(f.aliases ?? []).map((a) => `\`-${a}\``)].join(", ");
    const extra = [f.choices ? `one of ${f.choices.map((c) => `\`${c}\``).join(", ")}` : "", f.min !== undefined ? `at least ${f.kind === "duration" ? `${f.min}ms` : f.min}` : ""].filter(Boolean).join("; ");
    return `| ${names} | ${f.kind} | \`${f.default === "" ? '""' : f.default}\` | ${cell(f.help)}${extra ? ` (${extra})` : ""} |`;
  });
  return ["| flag | kind | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

function metricsTable(): string {
  const store = new SeriesStore(1);
  serverMetrics(store, SERVER_LABEL_VALUES);
  createIngests(store);
  incidentMetrics(store);
  const rows = store.specs.map((m) => `| \`${m.name}\` | ${m.type} | ${m.labelNames.map((l) => `\`${l}\``).join(", ") || "—"} | ${cell(m.help)}${m.doc ? ` ${cell(m.doc)}` : ""}${m.expires === false ? " Never expires." : ""} |`);
  return ["| name | type | labels | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

function keyTable(shape: Record<string, z.ZodType>): string {
  // An optional key's description may sit on the schema it wraps (tlsConfigKeys.optional()).
  const describe = (v: z.ZodType): string => v.description ?? ("unwrap" in v && typeof v.unwrap === "function" ? describe(v.unwrap() as z.ZodType) : "");
  const rows = Object.entries(shape).map(([k, v]) => `| \`${k}\` | ${cell(describe(v))} |`);
  return ["| key | meaning |", "|---|---|", ...rows].join("\n");
}

const reasonTable = (docs: Record<string, string>) => ["| value | meaning |", "|---|---|", ...Object.entries(docs).map(([k, v]) => `| \`${k}\` | ${cell(v)} |`)].join("\n");

/** The generated blocks by name. */
export function generatedBlocks(): Record<string, string> {
  return {
    "flags-server": flagTable(SERVER_FLAGS),
    "flags-agent": flagTable(AGENT_FLAGS),
    metrics: metricsTable(),
    ...Object.fromEntries(PROBER_TYPES.flatMap((t) => { const r = PROBE_KINDS[t].failedReasons; return r ? [[`${t}-failed-reasons`, reasonTable(r)]] : []; })),
    "reject-reasons": reasonTable(REJECT_REASONS),
    ...Object.fromEntries(PROBER_TYPES.map((t) => [`${t}-module`, keyTable(PROBE_KINDS[t].keys.shape)])),
    "check-recording-rules": checkRules(CHECK_KINDS.map((k) => SERVER_KINDS[k].spec)).recording,
    "check-alert-rules": checkRules(CHECK_KINDS.map((k) => SERVER_KINDS[k].spec)).alerts,
    "check-rule-tests": checkRuleTests(CHECK_KINDS.map((k) => SERVER_KINDS[k].spec)),
    "flow-recording-rules": flowRules(MESH_FLOW_KINDS).recording,
    "flow-alert-rules": flowRules(MESH_FLOW_KINDS).alerts,
    "flow-rule-tests": flowRuleTests(MESH_FLOW_KINDS),
    "incident-alert-rules": incidentRules(SCOPES),
    "incident-rule-tests": incidentRuleTests(SCOPES),
    "incident-scopes": reasonTable(SCOPES),
    "localiser-thresholds": ["| threshold | value | why |", "|---|---|---|", ...Object.entries(THRESHOLDS).map(([k, v]) => `| \`${k}\` | ${v} | ${cell(THRESHOLD_REASONS[k as keyof typeof THRESHOLDS])} |`)].join("\n"),
  };
}

/**
 * Renders docs/*.md with fresh generated blocks. @returns file path -> [current text, fresh text]
 * @throws Error when a file names a block that does not exist
 */
export function renderDocs(): Map<string, [string, string]> {
  const blocks = generatedBlocks();
  const out = new Map<string, [string, string]>();
  const block = (path: string, name: string) => {
    if (!(name in blocks)) throw new Error(`${path}: unknown generated block "${name}"`);
    return blocks[name]!;
  };
  const md = /(<!-- generated:([a-z-]+) -->)[\s\S]*?(<!-- \/generated:\2 -->)/g;
  for (const dir of ["docs", "docs/kinds"]) {
    for (const name of existsSync(`${root}${dir}`) ? readdirSync(`${root}${dir}`).filter((f) => f.endsWith(".md")).sort() : []) {
      const path = `${root}${dir}/${name}`;
      const text = readFileSync(path, "utf8");
      out.set(path, [text, text.replace(md, (_, open: string, b: string, close: string) => `${open}\n${block(path, b)}\n${close}`)]);
    }
  }
  // YAML (the rules and their tests): a block's lines are indented like its opening marker.
  const yml = /(([ ]*)# generated:([a-z-]+))\n[\s\S]*?([ ]*# \/generated:\3)/g;
  for (const f of ["deploy/prometheus/probermesh.rules.yml", "deploy/prometheus/probermesh.rules.test.yml"]) {
    const path = `${root}${f}`;
    const text = readFileSync(path, "utf8");
    out.set(path, [text, text.replace(yml, (_, open: string, indent: string, b: string, close: string) =>
      `${open}\n${block(path, b).split("\n").map((l) => (l ? indent + l : l)).join("\n")}\n${close}`)]);
  }
  return out;
}

if (import.meta.main) {
  for (const [path, [text, fresh]] of renderDocs()) {
    if (text !== fresh) {
      writeFileSync(path, fresh);
      console.log(`updated ${path.slice(root.length)}`);
    }
  }
}

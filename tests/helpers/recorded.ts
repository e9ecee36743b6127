/**
 * Alert-rule tests on series a server really produced: record /metrics scrapes at a steady pace,
 * then turn them into a promtool test file's input_series, one promtool step per scrape (time is
 * stretched: a 1 s scrape can stand for a 15 s step, so `for:` and `rate()` see production's
 * number of points). Nothing is invented: a series absent from a scrape is `_` (no sample), or,
 * once it had been present, `stale`: Prometheus writes a staleness marker when a series
 * disappears from a target it still scrapes, so an ended incident stops firing at once instead of
 * lingering for the 5-minute lookback.
 */
import { parse } from "yaml";
import { readFileSync } from "node:fs";
import type { Sample } from "./procs.ts";

/** One scrape: series selector (labels sorted, instance and job added) -> value. */
export type Step = Map<string, string>;

/** A rule of the rules file, as far as the tests read it. */
export type Rule = { alert?: string; record?: string; expr: string; annotations?: Record<string, string>; labels?: Record<string, string> };

/** Every rule of a rules file. */
export function readRules(path: string): Rule[] {
  return (parse(readFileSync(path, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
}

/** Metric names the rules read (histograms as exposed: _bucket, _sum, _count). */
export function metricsRead(rules: Rule[]): Set<string> {
  return new Set(rules.flatMap((r) => [...r.expr.matchAll(/\bprober_[a-z_]+/g)].map((m) => m[0])));
}

/** Renders an annotation template that uses only {{ $labels.NAME }} (else throws: the test must be taught more). */
export function render(template: string, labels: Record<string, string>): string {
  const out = template.replace(/\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, k: string) => labels[k] ?? "");
  if (out.includes("{{")) throw new Error(`annotation template beyond $labels: ${template}`);
  return out;
}

/** An expected alert of `rule` with `labels`: its static labels added, its annotations rendered. */
export function expectedAlert(rule: Rule, labels: Record<string, string>) {
  const all = { ...labels, ...rule.labels };
  return { exp_labels: all, exp_annotations: Object.fromEntries(Object.entries(rule.annotations ?? {}).map(([k, v]) => [k, render(v, all)])) };
}

/**
 * Records scrapes of `instances` (name -> scrape) every `everyMs` until stop(); only metrics in
 * `wanted`. A scrape that fails counts as empty.
 */
export function recordScrapes(instances: Record<string, () => Promise<Map<string, Sample[]>>>, wanted: Set<string>, everyMs = 1000) {
  const steps: Step[] = [];
  let recording = true;
  const done = (async () => {
    const t0 = Date.now();
    for (let k = 0; recording; k++) {
      const scrapes = await Promise.all(Object.entries(instances).map(async ([name, f]) => [name, await f().catch(() => new Map<string, Sample[]>())] as const));
      const step: Step = new Map();
      for (const [instance, m] of scrapes) {
        for (const [metric, list] of m) {
          if (!wanted.has(metric)) continue;
          for (const s of list) {
            const labels = { ...s.labels, instance, job: "probermesh" };
            step.set(`${metric}{${Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`, s.value);
          }
        }
      }
      steps.push(step);
      await Bun.sleep(Math.max(0, t0 + (k + 1) * everyMs - Date.now()));
    }
  })();
  return {
    /** Steps recorded so far (the index of the next one). */
    now: () => steps.length,
    async stop(): Promise<Step[]> {
      recording = false;
      await done;
      return steps;
    },
  };
}

/** promtool input_series of the recorded steps (see the module's note on `_` and `stale`). */
export function inputSeries(steps: readonly Step[]): { series: string; values: string }[] {
  const all = new Set(steps.flatMap((s) => [...s.keys()]));
  return [...all].sort().map((sel) => {
    let seen = false;
    const values = steps.map((s) => {
      const v = s.get(sel);
      if (v !== undefined) return (seen = true), v;
      return seen ? "stale" : "_";
    });
    return { series: sel, values: values.join(" ") };
  });
}

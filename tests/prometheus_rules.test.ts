/**
 * deploy/prometheus: the recording and alerting rules load (`promtool check rules`), every alert
 * has a unit test that passes (`promtool test rules`), and every metric the rules read is one the
 * server declares (names come from the MetricSpecs, so a renamed metric fails here, not in production).
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { SeriesStore } from "../lib/metrics/series.ts";
import { serverMetrics } from "../lib/metrics/server.ts";
import { incidentMetrics } from "../lib/server/incidents.ts";
import { createIngests } from "../lib/server/kinds.ts";
import { SERVER_LABEL_VALUES } from "../lib/server/server.ts";
import { ROOT, run, skipReason } from "./helpers/procs.ts";

const RULES = `${ROOT}deploy/prometheus/probermesh.rules.yml`;
const TESTS = `${ROOT}deploy/prometheus/probermesh.rules.test.yml`;
const promtool = Bun.which("promtool");
if (!promtool) skipReason("prometheus_rules.test.ts needs promtool (apt-get install prometheus) for the rule checks; the metric-name check runs anyway");

test.skipIf(!promtool)("promtool check rules and promtool test rules pass", async () => {
  const check = await run([promtool!, "check", "rules", RULES]);
  expect(check.stdout + check.stderr).toContain("SUCCESS");
  expect(check.code).toBe(0);
  const t = await run([promtool!, "test", "rules", TESTS]);
  expect(`${t.stdout}${t.stderr}`).toContain("SUCCESS");
  expect(t.code).toBe(0);
}, 120_000);

test("every alert has a unit test, and every metric the rules read is declared by the server", () => {
  const rules = parse(readFileSync(RULES, "utf8")) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  const tests = parse(readFileSync(TESTS, "utf8")) as { tests: { alert_rule_test?: { alertname: string }[] }[] };
  const alerts = rules.groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r) => r.alert!));
  const tested = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)));
  expect(alerts.length).toBeGreaterThanOrEqual(7);
  expect(alerts.filter((a) => !tested.has(a))).toEqual([]);
  const store = new SeriesStore(1);
  serverMetrics(store, SERVER_LABEL_VALUES);
  createIngests(store);
  incidentMetrics(store);
  const declared = new Set(store.specs.flatMap((s) => (s.type === "histogram" ? [`${s.name}_bucket`, `${s.name}_sum`, `${s.name}_count`] : [s.name])));
  const used = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/\bprober_[a-z_]+/g)].map((m) => m[0]))));
  expect([...used].filter((n) => !declared.has(n))).toEqual([]);
});

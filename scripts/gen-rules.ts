/**
 * The Prometheus rules every check kind (http, tcp, dns, grpc: lib/server/kinds.ts CHECK_KINDS)
 * gets, written once here and generated into deploy/prometheus/probermesh.rules.yml and its unit
 * tests by `npm run docs` (scripts/gen-docs.ts), so a new kind cannot be left without them:
 *
 *   probermesh:<kind>_success:ratio_rate5m   success ratio per (source_region, target_region, target_addr), 0..1
 *   ProberMesh<Kind>TargetFailing            success below 90 % for 5 minutes, one alert per failed_reason seen
 *
 * Certificate expiry is one rule for every kind (ProberMeshCertificateExpiringSoon, hand-written).
 */

/** What the rules need of a kind (its PhasedSpec). */
export interface RuleKind {
  kind: string;
  title: string;
}

/** "grpc" -> "Grpc" (alert names are CamelCase). */
const camel = (k: string) => k[0]!.toUpperCase() + k.slice(1);

const BY = "source_region, target_region, target_addr";

/** The recording rules and the alerts, as YAML list items (indented by the caller). */
export function checkRules(kinds: RuleKind[]): { recording: string; alerts: string } {
  const recording = kinds.map(({ kind, title }) => `# ${title} success ratio per source region and target, 0..1 (a target that never failed has no
# failure series: counted as 0 failures).
- record: probermesh:${kind}_success:ratio_rate5m
  expr: |
    1 - (
      (
        sum by (${BY}) (rate(prober_${kind}_probes_failed_total[5m]))
        or
        sum by (${BY}) (rate(prober_${kind}_probes_total[5m])) * 0
      )
      /
      sum by (${BY}) (rate(prober_${kind}_probes_total[5m]))
    )`).join("\n");
  const alerts = kinds.map(({ kind, title }) => `- alert: ProberMesh${camel(kind)}TargetFailing
  # THRESHOLD: success below 90 % for 5 minutes; one alert per failed_reason seen.
  expr: |
    sum by (${BY}, failed_reason) (increase(prober_${kind}_probes_failed_total[5m])) > 0
    and on (${BY})
    probermesh:${kind}_success:ratio_rate5m < 0.9
  for: 5m
  labels: {severity: warning}
  annotations:
    summary: "{{ $labels.target_addr }} from {{ $labels.source_region }} fails: {{ $labels.failed_reason }}"
    description: "${title} probes of {{ $labels.target_addr }} from {{ $labels.source_region }} succeed less than 90 % of the time; recent failures have failed_reason {{ $labels.failed_reason }}."`).join("\n\n");
  return { recording, alerts };
}

/**
 * One promtool unit test per kind: a target failing half of its probes (reason "timeout", which
 * every check kind has) fires the alert; a healthy neighbour does not. The series have the names
 * and labels the server publishes (tests/kinds_e2e.test.ts reads them from a running server).
 */
export function checkRuleTests(kinds: RuleKind[]): string {
  return kinds.map(({ kind, title }) => `- name: ${title} target failing, with its reason (generated)
  interval: 1m
  input_series:
    - series: 'prober_${kind}_probes_total{source_region="a",target_region="t",target_addr="bad:1"}'
      values: '0+60x20'
    - series: 'prober_${kind}_probes_failed_total{source_region="a",target_region="t",target_addr="bad:1",failed_reason="timeout"}'
      values: '0+30x20'
    - series: 'prober_${kind}_probes_total{source_region="a",target_region="t",target_addr="good:1"}'
      values: '0+60x20'
  promql_expr_test:
    - expr: probermesh:${kind}_success:ratio_rate5m
      eval_time: 15m
      exp_samples:
        - labels: 'probermesh:${kind}_success:ratio_rate5m{source_region="a",target_region="t",target_addr="bad:1"}'
          value: 0.5
        - labels: 'probermesh:${kind}_success:ratio_rate5m{source_region="a",target_region="t",target_addr="good:1"}'
          value: 1
  alert_rule_test:
    - alertname: ProberMesh${camel(kind)}TargetFailing
      eval_time: 15m
      exp_alerts:
        - exp_labels: {severity: warning, source_region: a, target_region: t, target_addr: "bad:1", failed_reason: timeout}
          exp_annotations:
            summary: "bad:1 from a fails: timeout"
            description: "${title} probes of bad:1 from a succeed less than 90 % of the time; recent failures have failed_reason timeout."`).join("\n");
}

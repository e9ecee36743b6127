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

/**
 * The rules of the flow-aware mesh kinds (lib/probes/kinds.ts MESH_FLOW_KINDS: udp, tcp), written
 * once here and generated like the check kinds' rules:
 *
 *   ProberMesh<Kind>FlowsLossy   a region pair has a lossy flow (prober_<kind>_flows_lossy > 0) for 10 minutes
 *
 * and for udp, whose counters have ICMP's shape, the loss and RTT recording rules ICMP has; for
 * tcp the connect-loss ratio from its connect counters.
 */
export function flowRules(kinds: readonly string[]): { recording: string; alerts: string } {
  const recording = kinds.filter((k) => k === "udp").map((k) => `# ${k.toUpperCase()} packet loss per region pair over 5 minutes, 0..1, from the weighted counters as for ICMP.
- record: probermesh:${k}_loss:ratio_rate5m
  expr: |
    (
      sum by (source_region, target_region) (rate(prober_${k}_weighted_packets_sent_total[5m]))
      - sum by (source_region, target_region) (rate(prober_${k}_weighted_packets_received_total[5m]))
    )
    / sum by (source_region, target_region) (rate(prober_${k}_weighted_packets_sent_total[5m]))
# ${k.toUpperCase()} RTT percentiles per pair from the histogram (the responder's dwell subtracted), seconds.
- record: probermesh:${k}_rtt_seconds:p50_5m
  expr: histogram_quantile(0.5, sum by (source_region, target_region, le) (rate(prober_${k}_duration_seconds_total_bucket[5m])))
- record: probermesh:${k}_rtt_seconds:p99_5m
  expr: histogram_quantile(0.99, sum by (source_region, target_region, le) (rate(prober_${k}_duration_seconds_total_bucket[5m])))`).concat(kinds.filter((k) => k === "tcp").map((k) => `# Share of the mesh's TCP connects not established by the first SYN per region pair over 5 minutes, 0..1.
- record: probermesh:${k}_connect_loss:ratio_rate5m
  expr: |
    sum by (source_region, target_region) (rate(prober_${k}_connects_dropped_total[5m]))
    / sum by (source_region, target_region) (rate(prober_${k}_connects_total[5m]))`)).join("\n");
  const alerts = kinds.map((k) => `- alert: ProberMesh${camel(k)}FlowsLossy
  # THRESHOLD: one lossy flow (lib/probes/flow/lossy.ts) for 10 minutes. The ECMP / LAG signature:
  # one source port loses while the link's other flows do not (docs/probes.md "Flows lossy").
  expr: max by (source_region, target_region) (prober_${k}_flows_lossy) > 0
  for: 10m
  labels: {severity: warning}
  annotations:
    summary: "{{ $labels.source_region }} -> {{ $labels.target_region }}: {{ $value }} lossy ${k.toUpperCase()} flow(s)"
    description: "Some ${k.toUpperCase()} flows (source ports) from {{ $labels.source_region }} to {{ $labels.target_region }} lose at least half of their ${k === "tcp" ? "connects" : "packets"} while the other flows of the same agents do not: one member of a bundle or one of several equal-cost paths drops. The console's pair view lists the ports and the trace of the lossy flow."`).join("\n\n");
  return { recording, alerts };
}

/** promtool unit tests of flowRules' alerts, on the series the server publishes (tests/flows_e2e.test.ts reads them from a running server). */
export function flowRuleTests(kinds: readonly string[]): string {
  return kinds.map((k) => `- name: ${k.toUpperCase()} flows lossy (generated)
  interval: 1m
  input_series:
    - series: 'prober_${k}_flows_lossy{source_region="a",target_region="t"}'
      values: '0 0 1x15'
    - series: 'prober_${k}_flows_lossy{source_region="a",target_region="u"}'
      values: '0x16'
  alert_rule_test:
    - alertname: ProberMesh${camel(k)}FlowsLossy
      eval_time: 8m
      exp_alerts: []
    - alertname: ProberMesh${camel(k)}FlowsLossy
      eval_time: 14m
      exp_alerts:
        - exp_labels: {severity: warning, source_region: a, target_region: t}
          exp_annotations:
            summary: "a -> t: 1 lossy ${k.toUpperCase()} flow(s)"
            description: "Some ${k.toUpperCase()} flows (source ports) from a to t lose at least half of their ${k === "tcp" ? "connects" : "packets"} while the other flows of the same agents do not: one member of a bundle or one of several equal-cost paths drops. The console's pair view lists the ports and the trace of the lossy flow."`).join("\n");
}

/**
 * The incident alert (docs/alerts.md): one rule per scope of the localiser (lib/localiser/model.ts
 * SCOPES), all named ProberMeshIncident, so each incident pages once, with its subject in the
 * summary and its scope's meaning in the description. `for: 0m`: the localiser already requires
 * THRESHOLDS.openWindows consecutive windows before it opens an incident.
 */
export function incidentRules(scopes: Readonly<Record<string, string>>): string {
  return Object.entries(scopes).map(([scope, meaning]) => `- alert: ProberMeshIncident
  # One alert per incident (scope, subject); the localiser's hysteresis is the "for".
  expr: max by (scope, subject) (prober_incident_active{scope="${scope}"}) == 1
  labels: {severity: page, scope: ${scope}}
  annotations:
    summary: "${scope} {{ $labels.subject }}: incident"
    description: "${yamlText(`The localiser blames ${scope} {{ $labels.subject }}: ${meaning.replace(/\.? Subject: .*$/, "")}. Evidence: GET /api/v1/incidents and the console's \"What is wrong now\".`)}"`).join("\n\n");
}

/** promtool unit tests of incidentRules, on series shaped as the server publishes them (tests/faults/incidents.test.ts records real ones). */
export function incidentRuleTests(scopes: Readonly<Record<string, string>>): string {
  const [scope, meaning] = Object.entries(scopes).find(([s]) => s === "region_ingress")!;
  return `- name: incident pages once, with its subject (generated)
  interval: 1m
  input_series:
    - series: 'prober_incident_active{scope="${scope}",subject="r2",instance="s1:8080",job="probermesh"}'
      values: '_ _ 1x5 stale'
  alert_rule_test:
    - alertname: ProberMeshIncident
      eval_time: 1m
      exp_alerts: []
    - alertname: ProberMeshIncident
      eval_time: 4m
      exp_alerts:
        - exp_labels: {severity: page, scope: ${scope}, subject: r2}
          exp_annotations:
            summary: "${scope} r2: incident"
            description: "${yamlText(`The localiser blames ${scope} r2: ${meaning.replace(/\.? Subject: .*$/, "")}. Evidence: GET /api/v1/incidents and the console's \"What is wrong now\".`)}"
    - alertname: ProberMeshIncident
      eval_time: 9m
      exp_alerts: []`;
}

/** Text for a double-quoted YAML scalar. */
// An incident's series goes when it ends (a staleness marker in Prometheus: `stale` in promtool).
function yamlText(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
}

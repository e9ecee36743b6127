/**
 * ProberMesh's Grafana dashboards as code (Grafana Foundation SDK). `npm run dashboards` writes
 * them to deploy/grafana/dashboards/*.json for provisioning; tests/dashboards.test.ts checks the
 * JSON is fresh and runs every panel query against a real Prometheus scraping a real mesh.
 *
 * Queries use the recording rules of deploy/prometheus/probermesh.rules.yml where one exists, and
 * the cumulative counters otherwise, so they are exact across several servers.
 */
import { StackingConfigBuilder, StackingMode, GraphDrawStyle } from "@grafana/grafana-foundation-sdk/common";
import {
  DashboardBuilder, DatasourceVariableBuilder, QueryVariableBuilder, RowBuilder, ThresholdsConfigBuilder, ThresholdsMode, VariableRefresh, type Dashboard,
} from "@grafana/grafana-foundation-sdk/dashboard";
import { PromQueryFormat } from "@grafana/grafana-foundation-sdk/prometheus";
import { DataqueryBuilder } from "@grafana/grafana-foundation-sdk/prometheus";
import { PanelBuilder as StatPanel } from "@grafana/grafana-foundation-sdk/stat";
import { PanelBuilder as TablePanel } from "@grafana/grafana-foundation-sdk/table";
import { PanelBuilder as TimeseriesPanel } from "@grafana/grafana-foundation-sdk/timeseries";

import { MESH_FLOW_KINDS } from "../../lib/probes/kinds.ts";
import { CHECK_KINDS, SERVER_KINDS, type CheckKind } from "../../lib/server/kinds.ts";

const DS = { type: "prometheus", uid: "${datasource}" };
const q = (expr: string, legend = "") => new DataqueryBuilder().datasource(DS).expr(expr).legendFormat(legend);
const instant = (expr: string) => new DataqueryBuilder().datasource(DS).expr(expr).instant().format(PromQueryFormat.Table);
const datasourceVar = () => new DatasourceVariableBuilder("datasource").label("Prometheus").type("prometheus");
const labelVar = (name: string, metric: string, label: string, multi = true) =>
  new QueryVariableBuilder(name).label(label).datasource(DS).query(`label_values(${metric}, ${name})`).definition(`label_values(${metric}, ${name})`).multi(multi).includeAll(multi).allValue(".*").refresh(VariableRefresh.OnTimeRangeChanged);

/** Description of a panel that has no series while nothing is wrong (the panel test expects none then). */
export const EMPTY_WHEN_HEALTHY = "Empty while nothing is wrong";

/** A region × region matrix: rows source_region, columns target_region, cells colored by thresholds. */
function matrix(title: string, expr: string, unit: string, steps: { value: number | null; color: string }[]) {
  return new TablePanel()
    .title(title)
    .datasource(DS)
    .withTarget(instant(expr))
    .withTransformation({ id: "groupingToMatrix", options: { columnField: "target_region", rowField: "source_region", valueField: "Value" } })
    .unit(unit)
    .thresholds(new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(steps))
    .overrides([{ matcher: { id: "byType", options: "number" }, properties: [{ id: "custom.cellOptions", value: { type: "color-background" } }] }])
    .height(10)
    .span(12);
}

function meshOverview(): Dashboard {
  return new DashboardBuilder("ProberMesh / Mesh overview")
    .uid("probermesh-mesh")
    .tags(["probermesh"])
    .refresh("30s")
    .time({ from: "now-1h", to: "now" })
    .withVariable(datasourceVar())
    .withRow(new RowBuilder("What is wrong now (the localiser's incidents, docs/aggregation.md)"))
    .withPanel(new StatPanel().title("Active incidents").datasource(DS).span(6).withTarget(q("count(max by (scope, subject) (prober_incident_active)) or vector(0)"))
      .thresholds(new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([{ value: null, color: "green" }, { value: 1, color: "red" }])))
    .withPanel(new TablePanel().title("Active incidents: scope and subject").datasource(DS).span(18).height(6)
      .description(`${EMPTY_WHEN_HEALTHY}. Evidence: GET /api/v1/incidents and the console's "What is wrong now".`)
      .withTarget(instant("max by (scope, subject) (prober_incident_active)")))
    .withPanel(new TimeseriesPanel().title("Incidents opened, by scope").datasource(DS).span(24).height(6)
      .withTarget(q("sum by (scope) (increase(prober_incidents_total[$__rate_interval]))", "{{scope}}")))
    .withRow(new RowBuilder("Region × region (rows: source, columns: target)"))
    .withPanel(matrix("Packet loss (5 min)", "probermesh:icmp_loss:ratio_rate5m", "percentunit", [{ value: null, color: "green" }, { value: 0.01, color: "yellow" }, { value: 0.05, color: "red" }]))
    .withPanel(matrix("RTT p50 (5 min)", "probermesh:icmp_rtt_seconds:p50_5m", "s", [{ value: null, color: "green" }, { value: 0.1, color: "yellow" }, { value: 0.3, color: "red" }]))
    .withRow(new RowBuilder("Worst pairs"))
    .withPanel(new TimeseriesPanel().title("Loss, worst 10 pairs").datasource(DS).unit("percentunit").min(0).span(12)
      .withTarget(q("topk(10, probermesh:icmp_loss:ratio_rate5m)", "{{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("RTT p99, worst 10 pairs").datasource(DS).unit("s").min(0).span(12)
      .withTarget(q("topk(10, probermesh:icmp_rtt_seconds:p99_5m)", "{{source_region}} → {{target_region}}")))
    .build();
}

function pair(): Dashboard {
  const sel = 'source_region=~"$source_region", target_region=~"$target_region"';
  return new DashboardBuilder("ProberMesh / Region pair")
    .uid("probermesh-pair")
    .tags(["probermesh"])
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .withVariable(datasourceVar())
    .withVariable(labelVar("source_region", "prober_icmp_packets_sent_total", "Source region"))
    .withVariable(labelVar("target_region", "prober_icmp_packets_sent_total", "Target region"))
    .withPanel(new TimeseriesPanel().title("RTT percentiles (from the histogram)").datasource(DS).unit("s").min(0).span(16).height(9)
      .withTarget(q(`probermesh:icmp_rtt_seconds:p50_5m{${sel}}`, "p50 {{source_region}} → {{target_region}}"))
      .withTarget(q(`probermesh:icmp_rtt_seconds:p90_5m{${sel}}`, "p90 {{source_region}} → {{target_region}}"))
      .withTarget(q(`probermesh:icmp_rtt_seconds:p99_5m{${sel}}`, "p99 {{source_region}} → {{target_region}}")))
    .withPanel(new StatPanel().title("Loss now").datasource(DS).unit("percentunit").span(8).height(9)
      .withTarget(q(`probermesh:icmp_loss:ratio_rate5m{${sel}}`, "{{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("Packet loss").datasource(DS).unit("percentunit").min(0).span(12)
      .withTarget(q(`probermesh:icmp_loss:ratio_rate5m{${sel}}`, "{{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("Jitter (RTT standard deviation)").datasource(DS).unit("s").min(0).span(12)
      .withTarget(q(`max by (source_region, target_region) (prober_icmp_jitter_stddev_seconds{${sel}})`, "{{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("Echo requests sent and replies received per second").datasource(DS).unit("reqps").min(0).span(12)
      .withTarget(q(`sum by (source_region, target_region) (rate(prober_icmp_packets_sent_total{${sel}}[$__rate_interval]))`, "sent {{source_region}} → {{target_region}}"))
      .withTarget(q(`sum by (source_region, target_region) (rate(prober_icmp_packets_received_total{${sel}}[$__rate_interval]))`, "received {{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("Links in error state (re-probed every second; path traced: console / api/v1/paths)").datasource(DS).min(0).span(12)
      .withTarget(q(`sum by (source_region, target_region) (prober_icmp_error_state_links{${sel}})`, "{{source_region}} → {{target_region}}")))
    .withPanel(new TablePanel().title("Agents of the source region").datasource(DS).span(12)
      .withTarget(instant('max by (region, ip, version) (prober_agent_is_alive{region=~"$source_region"})')))
    .build();
}

/**
 * One dashboard per check kind (http, tcp, dns, grpc: CHECK_KINDS), the same panels from the
 * kind's metric family (lib/probes/phased_ingest.ts): phases, success ratio, failures by reason,
 * certificate expiry where the kind speaks TLS, and HTTP's status code.
 */
function checkKind(kind: CheckKind): Dashboard {
  const spec = SERVER_KINDS[kind].spec;
  const sel = 'source_region=~"$source_region", target_addr=~"$target_addr"';
  const m = (suffix: string) => `prober_${kind}_${suffix}`;
  let d = new DashboardBuilder(`ProberMesh / ${spec.title} targets`)
    .uid(`probermesh-${kind}`)
    .tags(["probermesh"])
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .withVariable(datasourceVar())
    .withVariable(labelVar("source_region", m("probes_total"), "Source region"))
    .withVariable(labelVar("target_addr", m("probes_total"), "Target"))
    .withPanel(new TimeseriesPanel().title(`Phases${kind === "http" ? " (httpstat)" : ""}: ${spec.phases.join(", ")}`).datasource(DS).unit("s").min(0).span(24).height(10)
      .drawStyle(GraphDrawStyle.Bars).fillOpacity(80).stacking(new StackingConfigBuilder().mode(StackingMode.Normal))
      .withTarget(q(`avg by (phase) (${m("duration_seconds")}{${sel}})`, "{{phase}}")))
    .withPanel(new TimeseriesPanel().title("Success ratio").datasource(DS).unit("percentunit").min(0).max(1).span(12)
      .withTarget(q(`probermesh:${kind}_success:ratio_rate5m{${sel}}`, "{{source_region}} → {{target_addr}}")))
    .withPanel(new TimeseriesPanel().title("Failures by reason per second").datasource(DS).unit("reqps").min(0).span(12)
      .withTarget(q(`sum by (failed_reason) (rate(${m("probes_failed_total")}{${sel}}[$__rate_interval]))`, "{{failed_reason}}")));
  if (spec.latestValue) d = d.withPanel(new TablePanel().title("Status code (latest window)").datasource(DS).span(12).withTarget(instant(`${spec.latestValue.name}{${sel}}`)));
  if (spec.tls) d = d.withPanel(new StatPanel().title("Certificate expires in (days)").datasource(DS).unit("d").span(12)
    .withTarget(q(`min by (target_addr) ((${m("ssl_earliest_cert_expiry")}{${sel}} - time()) / 86400)`, "{{target_addr}}")));
  return d.build();
}

/**
 * The flow-aware mesh (docs/probes.md "Flows"): UDP loss and RTT next to ICMP's, lossy flows (the
 * ECMP / LAG signature) per pair and kind (MESH_FLOW_KINDS), TCP connect loss and time.
 */
function flows(): Dashboard {
  const sel = 'source_region=~"$source_region", target_region=~"$target_region"';
  let d = new DashboardBuilder("ProberMesh / Flows (UDP and TCP mesh)")
    .uid("probermesh-flows")
    .tags(["probermesh"])
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .withVariable(datasourceVar())
    .withVariable(labelVar("source_region", "prober_udp_packets_sent_total", "Source region"))
    .withVariable(labelVar("target_region", "prober_udp_packets_sent_total", "Target region"))
    .withRow(new RowBuilder("Region × region (rows: source, columns: target)"))
    .withPanel(matrix("UDP packet loss (5 min)", "probermesh:udp_loss:ratio_rate5m", "percentunit", [{ value: null, color: "green" }, { value: 0.01, color: "yellow" }, { value: 0.05, color: "red" }]))
    .withPanel(matrix("Lossy UDP flows (one source port losing alone)", "max by (source_region, target_region) (prober_udp_flows_lossy)", "none", [{ value: null, color: "green" }, { value: 1, color: "red" }]))
    .withRow(new RowBuilder("Pairs"));
  for (const k of MESH_FLOW_KINDS) {
    d = d.withPanel(new TimeseriesPanel().title(`Lossy ${k.toUpperCase()} flows (console: which ports, and their trace)`).datasource(DS).min(0).span(12)
      .withTarget(q(`max by (source_region, target_region) (prober_${k}_flows_lossy{${sel}})`, "{{source_region}} → {{target_region}}")));
  }
  return d
    .withPanel(new TimeseriesPanel().title("RTT p50: UDP (dwell subtracted) and ICMP").datasource(DS).unit("s").min(0).span(12)
      .withTarget(q(`probermesh:udp_rtt_seconds:p50_5m{${sel}}`, "udp {{source_region}} → {{target_region}}"))
      .withTarget(q(`probermesh:icmp_rtt_seconds:p50_5m{${sel}}`, "icmp {{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("Packet loss: UDP and ICMP").datasource(DS).unit("percentunit").min(0).span(12)
      .withTarget(q(`probermesh:udp_loss:ratio_rate5m{${sel}}`, "udp {{source_region}} → {{target_region}}"))
      .withTarget(q(`probermesh:icmp_loss:ratio_rate5m{${sel}}`, "icmp {{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("TCP connect loss (SYN dropped or retransmitted)").datasource(DS).unit("percentunit").min(0).span(12)
      .withTarget(q(`probermesh:tcp_connect_loss:ratio_rate5m{${sel}}`, "{{source_region}} → {{target_region}}")))
    .withPanel(new TimeseriesPanel().title("TCP connect time (kernel SYN → SYN-ACK)").datasource(DS).unit("s").min(0).span(12)
      .withTarget(q(`max by (source_region, target_region) (prober_tcp_connect_duration_seconds{${sel}})`, "{{source_region}} → {{target_region}}")))
    .build();
}

function agents(): Dashboard {
  return new DashboardBuilder("ProberMesh / Agents")
    .uid("probermesh-agents")
    .tags(["probermesh"])
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .withVariable(datasourceVar())
    .withPanel(new StatPanel().title("Agents alive").datasource(DS).span(6).withTarget(q("count(max by (region, ip) (prober_agent_is_alive) == 1)")))
    .withPanel(new StatPanel().title("Agents dead").datasource(DS).span(6).withTarget(q("count(max by (region, ip) (prober_agent_is_alive) == 0) or vector(0)")))
    .withPanel(new StatPanel().title("Regions").datasource(DS).span(6).withTarget(q("count(count by (region) (prober_agent_is_alive))")))
    .withPanel(new StatPanel().title("Results accepted per second").datasource(DS).unit("reqps").span(6).withTarget(q("sum(rate(prober_server_receive_points_total[$__rate_interval]))")))
    .withPanel(new TablePanel().title("Agents: region, IP, version, alive").datasource(DS).span(12).height(12).withTarget(instant("max by (region, ip, version) (prober_agent_is_alive)")))
    .withPanel(new TimeseriesPanel().title("Agents by version").datasource(DS).span(12).height(12).withTarget(q("count by (version) (max by (region, ip, version) (prober_agent_is_alive) == 1)", "{{version}}")))
    // The server's one thread (docs/scale.md "The server's thread"): what RPCs wait there, and how much of it filing takes.
    .withPanel(new TimeseriesPanel().title("Server: event-loop delay p99 (what RPCs wait at the server)").datasource(DS).unit("s").span(6).withTarget(q("histogram_quantile(0.99, sum by (instance, le) (rate(prober_server_event_loop_delay_seconds_bucket[$__rate_interval])))", "{{instance}}")))
    .withPanel(new TimeseriesPanel().title("Server: share of the thread filing pushes and publishing (background lane)").datasource(DS).unit("percentunit").span(6).withTarget(q("rate(prober_server_lane_busy_seconds_total[$__rate_interval])", "{{instance}}")))
    .build();
}

/** Every dashboard by file name. */
export function dashboards(): Record<string, Dashboard> {
  return { "mesh-overview.json": meshOverview(), "pair.json": pair(), "flows.json": flows(), ...Object.fromEntries(CHECK_KINDS.map((k) => [`${k}.json`, checkKind(k)])), "agents.json": agents() };
}

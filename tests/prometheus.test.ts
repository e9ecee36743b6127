/**
 * A real Prometheus (Debian package `prometheus`) scrapes the compiled server of a two-region
 * mesh with targets of every check kind (http, tcp, dns, grpc: each with one target that passes
 * over TLS and one that fails, so every dashboard panel has data), with deploy/prometheus's rules loaded: PromQL returns the mesh's series,
 * the recording rules produce data, and every panel and variable query of every Grafana dashboard
 * (deploy/grafana/dashboards/*.json) runs without error and returns data.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { makeCerts } from "./helpers/certs.ts";
import { startDnsServer, type DnsTestServer } from "./helpers/dns_server.ts";
import { ServingStatus, startHealthServer, type RunningServer } from "./helpers/grpc_server.ts";
import { startTestServers, type TestServers } from "./helpers/http_servers.ts";
import { banner, closedPort, startTcpServer, type TcpTestServer } from "./helpers/tcp_servers.ts";
import { EMPTY_WHEN_HEALTHY } from "../deploy/grafana/dashboards.ts";
import { AGENT_BIN, IS_ROOT, ROOT, SERVER_BIN, freePort, killAll, sharedHostAgentFlags, skipReason, start, waitFor } from "./helpers/procs.ts";

const prometheus = Bun.which("prometheus");
const ok = IS_ROOT && prometheus !== null;
if (!ok) skipReason(`prometheus.test.ts needs root (ICMP) and the prometheus binary (apt-get install prometheus); root=${IS_ROOT} prometheus=${prometheus}`);

describe.skipIf(!ok)("Prometheus scrapes the server", () => {
  let promUrl = "";
  let srv: TestServers;
  let tcpTls: TcpTestServer;
  let dns: DnsTestServer;
  let grpc: RunningServer;
  beforeAll(async () => {
    const [rpc, web, prom] = [await freePort(), await freePort(), await freePort()];
    promUrl = `http://127.0.0.1:${prom}`;
    const dir = mkdtempSync(`${tmpdir()}/pm-prom-`);
    srv = await startTestServers();
    const certs = await makeCerts();
    const pem = { cert: readFileSync(certs.serverCert, "utf8"), key: readFileSync(certs.serverKey, "utf8") };
    tcpTls = await startTcpServer(banner("+OK ready"), { tls: pem });
    dns = await startDnsServer("127.0.0.1", { certs: { cert: certs.serverCert, key: certs.serverKey } });
    grpc = await startHealthServer({ tls: pem, statuses: { "": ServingStatus.SERVING, down: ServingStatus.NOT_SERVING } });
    const closed = await closedPort();
    const ca = `tls_config: {ca_file: "${certs.caFile}"}`;
    writeFileSync(`${dir}/p.yaml`, `prober_configs:
  - prober_type: http
    region: web
    http: {tls_config: {ca_file: "${srv.caFile}"}}
    targets: ["https://localhost:${srv.httpsPort}/ok", "http://127.0.0.1:${srv.httpPort}/500"]
  - prober_type: tcp
    region: web
    tcp: {tls: true, ${ca}}
    targets: ["${tcpTls.target}", "127.0.0.1:${closed}"]
  - prober_type: dns
    region: web
    dns: {query_name: example.com, query_type: A, dns_over_tls: true, transport_protocol: tcp, ${ca}}
    targets: ["127.0.0.1:${dns.tlsPort}", "127.0.0.1:${closed}"]
  - prober_type: grpc
    region: web
    grpc: {tls: true, ${ca}}
    targets: ["127.0.0.1:${grpc.port}", "127.0.0.1:${closed}"]
`);
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s"]);
    for (const [i, [region, ip]] of [["prom-a", "127.0.40.1"], ["prom-b", "127.0.40.2"]].entries()) {
      start([AGENT_BIN, "-region", region!, "-agent.ip", ip!, "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms", ...sharedHostAgentFlags(i)]);
    }
    // The README's scrape config, pointed at the test's port, with a fast scrape interval, and
    // deploy/prometheus's rules loaded.
    writeFileSync(
      `${dir}/prometheus.yml`,
      `global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["${ROOT}deploy/prometheus/probermesh.rules.yml"]
scrape_configs:
  - job_name: prober_mesh
    static_configs: [{targets: ["127.0.0.1:${web}"]}]
    metric_relabel_configs:
      - {source_labels: [__name__], regex: "^prober.*", action: keep}
`,
    );
    start([prometheus!, `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${prom}`]);
    await waitFor("prometheus ready", 30_000, async () => (await fetch(`${promUrl}/-/ready`)).ok);
  }, 60_000);
  afterAll(async () => {
    await killAll();
    srv?.close();
    await Promise.all([tcpTls?.close(), dns?.close(), grpc?.close()]);
  });

  test("PromQL returns loss, RTT and agent liveness for both directions", async () => {
    const query = async (q: string) => {
      const r = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      return r.data.result;
    };
    const loss = await waitFor("loss series in Prometheus", 30_000, async () => {
      const r = await query("prober_icmp_packet_loss_rate");
      return r.length === 2 ? r : undefined;
    });
    expect(loss.map((s) => `${s.metric.source_region}->${s.metric.target_region}`).sort()).toEqual(["prom-a->prom-b", "prom-b->prom-a"]);
    for (const s of loss) expect(s.value[1]).toBe("0");
    const rtt = await query('prober_icmp_duration_seconds{phase="rtt"} > 0');
    expect(rtt).toHaveLength(2);
    const p99 = await waitFor("histogram quantile", 15_000, async () => {
      const r = await query("histogram_quantile(0.99, sum by (le) (rate(prober_icmp_duration_seconds_total_bucket[10s])))");
      return r.length === 1 && Number(r[0]!.value[1]) > 0 ? r : undefined;
    });
    expect(Number(p99[0]!.value[1])).toBeLessThan(0.1); // loopback: sanity only
    expect((await query("sum(prober_agent_is_alive)"))[0]!.value[1]).toBe("2");
  }, 60_000);

  test("deploy/prometheus's recording rules give loss, RTT percentiles and no alert on a healthy mesh", async () => {
    const query = async (q: string) => ((await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    // The recording group runs every 30 s.
    const loss = await waitFor("recorded loss", 60_000, async () => {
      const r = await query("probermesh:icmp_loss:ratio_rate5m");
      return r.length === 2 ? r : undefined;
    });
    for (const s of loss) expect(s.value[1]).toBe("0");
    for (const rule of ["probermesh:icmp_rtt_seconds:p50_5m", "probermesh:icmp_rtt_seconds:p99_5m", "probermesh:icmp_rtt_seconds:mean_5m"]) {
      const r = await query(rule);
      expect({ rule, n: r.length }).toEqual({ rule, n: 2 });
      for (const s of r) expect(Number(s.value[1])).toBeGreaterThan(0);
    }
    const firing = ((await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as { data: { alerts: { labels: { alertname: string }; state: string }[] } }).data.alerts;
    expect(firing.filter((a) => a.state === "firing").map((a) => a.labels.alertname)).toEqual([]);
  }, 90_000);

  test("every panel and variable query of every Grafana dashboard runs and returns data", async () => {
    // A panel that lists what is wrong (active incidents) is empty on this healthy mesh: its query must run, and return nothing.
    const panels: { dashboard: string; title: string; expr: string; healthyEmpty: boolean }[] = [];
    const variables: { dashboard: string; query: string }[] = [];
    for (const name of readdirSync(`${ROOT}deploy/grafana/dashboards`)) {
      const d = JSON.parse(readFileSync(`${ROOT}deploy/grafana/dashboards/${name}`, "utf8")) as {
        panels: { title: string; description?: string; targets?: { expr?: string }[]; panels?: unknown[] }[];
        templating: { list: { type: string; query?: string | { query: string } }[] };
      };
      for (const p of d.panels) for (const t of p.targets ?? []) if (t.expr) panels.push({ dashboard: name, title: p.title, expr: t.expr, healthyEmpty: !!p.description?.startsWith(EMPTY_WHEN_HEALTHY) });
      for (const v of d.templating.list) if (v.type === "query") variables.push({ dashboard: name, query: typeof v.query === "string" ? v.query : v.query!.query });
    }
    expect(panels.length).toBeGreaterThanOrEqual(20);
    // Grafana's variables as a user who picked "All" would have them.
    const expand = (e: string) => e.replace(/\$__rate_interval/g, "1m").replace(/\$(source_region|target_region|target_addr)\b/g, ".*");
    const results = await waitFor("every panel query returns data", 60_000, async () => {
      const out = await Promise.all(panels.map(async (p) => {
        const r = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expand(p.expr))}`)).json()) as { status: string; error?: string; data?: { result: unknown[] } };
        return { ...p, status: r.status, error: r.error ?? "", series: r.data?.result.length ?? 0 };
      }));
      for (const r of out) if (r.status !== "success") throw new Error(`${r.dashboard} / ${r.title}: ${r.error}`);
      return out.every((r) => r.healthyEmpty || r.series > 0) ? out : undefined;
    });
    for (const r of results) expect({ panel: `${r.dashboard} / ${r.title}`, ok: r.status === "success" && (r.healthyEmpty ? r.series === 0 : r.series > 0) }).toEqual({ panel: `${r.dashboard} / ${r.title}`, ok: true });
    expect(results.filter((r) => r.healthyEmpty).map((r) => r.title)).toEqual(["Active incidents: scope and subject"]);
    for (const v of variables) {
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(v.query);
      expect({ query: v.query, form: !!m }).toEqual({ query: v.query, form: true });
      const values = ((await (await fetch(`${promUrl}/api/v1/label/${m![2]}/values?match[]=${m![1]}`)).json()) as { data: string[] }).data;
      expect({ query: v.query, some: values.length > 0 }).toEqual({ query: v.query, some: true });
    }
  }, 120_000);
});

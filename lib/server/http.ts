/**
 * The server's HTTP side (hono): /metrics, /-/healthy, /-/ready, /-/targets, /-/reload (POST,
 * with -server.web.enable-lifecycle) and a web view of the latest ICMP matrix at /. With a web
 * config file, every path needs basic auth when users are configured (docs/security.md).
 */
import { toJson } from "@bufbuild/protobuf";
import { Hono } from "hono";
import type { SeriesStore } from "../metrics/series.ts";
import type { IcmpAggregate } from "../probes/icmp/ingest.ts";
import type { ProbeKind } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { GetTargetPoolResponseSchema } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { ProbeFile } from "../targets/config.ts";
import { apiRoutes, type ApiDeps } from "./api.ts";
import type { BasicAuth } from "./auth/basic_auth.ts";
import type { TargetPool } from "./pool.ts";
import type { AgentRegistry } from "./registry.ts";

/** What the HTTP side reads from the server. */
export interface HttpDeps extends Omit<ApiDeps, "latestIcmp"> {
  store: SeriesStore;
  registry: AgentRegistry;
  pool: TargetPool;
  /** Reloads what SIGHUP reloads; @throws Error with every reason when something could not be reloaded */
  reload(): void;
  /** POST /-/reload is served (-server.web.enable-lifecycle). */
  lifecycle: boolean;
  basicAuth: BasicAuth;
  /** Response headers of the web config (current). */
  headers(): Record<string, string>;
  /** The last published window's ICMP aggregates, for the web view. */
  latestIcmp(): readonly IcmpAggregate[];
  ready(): boolean;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function matrixHtml(aggs: readonly IcmpAggregate[], agents: ReturnType<AgentRegistry["all"]>): string {
  const regions = [...new Set([...aggs.flatMap((a) => [a.sourceRegion, a.targetRegion]), ...agents.map((a) => a.region)])].sort();
  const cell = (s: string, t: string) => {
    const a = aggs.find((x) => x.sourceRegion === s && x.targetRegion === t);
    if (!a) return `<td class="none">–</td>`;
    const hue = a.lossRatio > 0.05 ? 0 : a.lossRatio > 0 ? 40 : 120;
    const rtt = a.rttMean !== undefined ? `${(a.rttMean * 1000).toFixed(2)} ms` : "no reply";
    return `<td style="background:hsl(${hue},60%,85%)">${rtt}<br><small>loss ${(a.lossRatio * 100).toFixed(1)}%</small></td>`;
  };
  const rows = regions.map((s) => `<tr><th>${esc(s)}</th>${regions.map((t) => cell(s, t)).join("")}</tr>`).join("");
  const agentRows = agents.map((a) => `<tr><td>${esc(a.region)}</td><td>${esc(a.ip)}</td><td>${esc(a.hostname)}</td><td>${esc(a.version)}</td><td>${a.alive ? "alive" : "dead"}</td></tr>`).join("");
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="15"><title>ProberMesh</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.4em .7em;text-align:center}.none{color:#aaa}</style></head>
<body><h1>ProberMesh</h1><h2>ICMP mesh (rows: source region, columns: target region; last aggregation window)</h2>
<table><tr><th></th>${regions.map((r) => `<th>${esc(r)}</th>`).join("")}</tr>${rows}</table>
<h2>Agents</h2><table><tr><th>region</th><th>ip</th><th>hostname</th><th>version</th><th>state</th></tr>${agentRows}</table>
<p><a href="/metrics">/metrics</a> · <a href="/-/targets">/-/targets</a></p></body></html>`;
}

/** What a secret is shown as: never its value. */
export const SECRET = "<secret>";

/** The probe file as JSON: blocks with their modules in protobuf JSON form (defaults filled in). */
function fileJson(f: ProbeFile): unknown[] {
  return f.blocks.map((b) => ({
    proberType: b.proberType, region: b.region, targets: b.targets,
    module: (PROBE_KINDS[b.proberType] as ProbeKind<typeof b.proberType>).moduleJson((PROBE_KINDS[b.proberType] as ProbeKind<typeof b.proberType>).redactModule(b.module, SECRET)),
  }));
}

/** Builds the hono app. */
export function httpApp(d: HttpDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    for (const [k, v] of Object.entries(d.headers())) c.header(k, v);
    if (d.basicAuth.enabled) {
      const outcome = await d.basicAuth.check(c.req.header("authorization"));
      if (outcome === "busy") return c.text("too many authentication attempts at once\n", 503, { "Retry-After": "1" });
      if (outcome !== "ok") return c.text("Unauthorized\n", 401, { "WWW-Authenticate": 'Basic realm="ProberMesh", charset="UTF-8"' });
    }
    await next();
  });
  app.get("/metrics", (c) => {
    const chunks = d.store.exposition();
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        const { value, done } = await chunks.next();
        if (done) ctrl.close();
        else ctrl.enqueue(new TextEncoder().encode(value));
      },
    });
    return c.body(body, 200, { "Content-Type": d.store.contentType });
  });
  app.get("/-/healthy", (c) => c.text("ProberMesh server is Healthy.\n"));
  app.get("/-/ready", (c) => (d.ready() ? c.text("ProberMesh server is Ready.\n") : c.text("not ready\n", 503)));
  app.get("/-/targets", (c) => {
    const regions = [...new Set(d.registry.live().map((a) => a.region))].sort();
    const pools: Record<string, unknown> = {};
    for (const r of regions) pools[r] = toJson(GetTargetPoolResponseSchema, d.pool.poolFor(r, "", SECRET));
    return c.json({ discovery: d.pool.discovery, file: fileJson(d.pool.probeFile), agents: d.registry.all(), pools });
  });
  app.post("/-/reload", (c) => {
    if (!d.lifecycle) return c.text("Lifecycle API is not enabled (-server.web.enable-lifecycle); send SIGHUP to reload.\n", 403);
    try {
      d.reload();
      return c.text("reloaded\n");
    } catch (e) {
      return c.text(`${(e as Error).message}\n`, 400);
    }
  });
  apiRoutes(app, d);
  app.get("/", (c) => c.html(matrixHtml(d.latestIcmp(), d.registry.all())));
  return app;
}

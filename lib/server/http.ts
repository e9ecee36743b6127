/**
 * The server's HTTP side (hono): /metrics, /-/healthy, /-/ready, /-/targets, /-/reload (POST,
 * with -server.web.enable-lifecycle), the JSON API /api/v1 and the web console at /. With a web
 * config file, every path needs basic auth when users are configured (docs/security.md).
 */
import { toJson } from "@bufbuild/protobuf";
import { Hono } from "hono";
import type { SeriesStore } from "../metrics/series.ts";
import { PROBER_TYPES, type ProbeKind } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { GetTargetPoolResponseSchema } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { ProbeFile } from "../targets/config.ts";
import { apiRoutes, type ApiDeps } from "./api.ts";
import { CONSOLE_HTML } from "./console.ts";
import type { BasicAuth } from "./auth/basic_auth.ts";
import type { TargetPool } from "./pool.ts";
import type { AgentRegistry } from "./registry.ts";

/** What the HTTP side reads from the server. */
export interface HttpDeps extends ApiDeps {
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
  ready(): boolean;
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

/** Targets /-/targets lists at most over every region's pool (one region or agent: ?region=R[&ip=IP]). */
export const TARGETS_PAGE_MAX = 100_000;

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
    const region = c.req.query("region"), ip = c.req.query("ip");
    // One agent's pool, as it gets it (with peer subsets: its peers), secrets shown as <secret>.
    if (ip !== undefined) {
      if (!region || !d.registry.all().some((a) => a.region === region && a.ip === ip)) return c.json({ error: "no known agent with that region and ip (give both: /-/targets?region=R&ip=IP)" }, 404);
      return c.json({ region, ip, peers_per_region: d.pool.peersPerRegion, pool_version: String(d.pool.versionFor(region, ip)), pool: toJson(GetTargetPoolResponseSchema, d.pool.poolFor(region, ip, SECRET)) });
    }
    const live = [...new Set(d.registry.live().map((a) => a.region))].sort();
    if (region !== undefined) {
      if (!live.includes(region)) return c.json({ error: "no live agent in that region (/-/targets lists the regions)" }, 404);
      return c.json({ region, pool: toJson(GetTargetPoolResponseSchema, d.pool.poolFor(region, "", SECRET)) });
    }
    // Every region's pool is regions × targets: at thousands of agents that is gigabytes, so the
    // pools are listed only up to TARGETS_PAGE_MAX targets in all (one region: ?region=R).
    const pools: Record<string, unknown> = {};
    let listed = 0, omitted = 0;
    for (const r of live) {
      const p = d.pool.poolFor(r, "", SECRET);
      const n = PROBER_TYPES.reduce((k, t) => k + p[t].length, 0);
      if (listed + n > TARGETS_PAGE_MAX) omitted++;
      else (pools[r] = toJson(GetTargetPoolResponseSchema, p)), (listed += n);
    }
    return c.json({
      discovery: d.pool.discovery, peers_per_region: d.pool.peersPerRegion, file: fileJson(d.pool.probeFile), agents: d.registry.all(), pools,
      ...(omitted ? { pools_omitted: `${omitted} regions' pools left out (over ${TARGETS_PAGE_MAX} targets in all): /-/targets?region=R gives one region's, /-/targets?region=R&ip=IP one agent's` } : {}),
    });
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
  app.get("/", (c) => c.html(CONSOLE_HTML));
  return app;
}

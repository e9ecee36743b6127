/**
 * Server wiring: probe file, registry, pools, Connect-RPC listener, aggregation loop and the HTTP
 * side. server.ts only parses flags and calls startServer().
 */
import { randomUUID } from "node:crypto";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AggregationWindows } from "../aggregation/window.ts";
import type { Logger } from "../log.ts";
import { serverMetrics } from "../metrics/server.ts";
import { SeriesStore } from "../metrics/series.ts";
import { PROBER_TYPES, type ProberType } from "../probes/kind.ts";
import { ProberMeshService } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { listenH1H2c, splitHostPort, type Listener } from "../rpc/listen.ts";
import { loadProbeFile, type ProbeFile } from "../targets/config.ts";
import { httpApp } from "./http.ts";
import { createIngests } from "./kinds.ts";
import { TargetPool, type Discovery } from "./pool.ts";
import { AgentRegistry } from "./registry.ts";
import { proberMeshService } from "./service.ts";

/** Server settings (docs/flags.md); durations in milliseconds. */
export interface ServerOptions {
  rpcListenAddr: string;
  httpListenAddr: string;
  probeFile: string;
  discovery: Discovery;
  aggregationIntervalMs: number;
  seriesCacheRatio: number;
  probeSelf: boolean;
  log: Logger;
}

/** A running server. */
export interface RunningServer {
  rpcPort: number;
  httpPort: number;
  close(): Promise<void>;
}

/**
 * Starts the server. @throws ConfigError for a bad probe file, Error when a port cannot be bound.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const file: ProbeFile = o.probeFile ? loadProbeFile(o.probeFile) : { blocks: [] };
  const expireMs = o.seriesCacheRatio * o.aggregationIntervalMs;
  const startedMs = Date.now();
  const store = new SeriesStore(expireMs);
  const metrics = serverMetrics(store, PROBER_TYPES);
  const registry = new AgentRegistry(expireMs, {
    onChange: (e, prev) => {
      metrics.agentChanged(e, prev);
      o.log.info({ region: e.region, ip: e.ip, version: e.version, alive: e.alive }, e.alive ? "agent alive" : "agent dead");
    },
    onForget: (e) => metrics.agentForgotten(e),
  });
  const pool = new TargetPool(file, o.discovery, o.probeSelf, registry);
  const ingests = createIngests(store);
  const windows = new AggregationWindows<ProberType>(o.aggregationIntervalMs, ingests);
  let ready = false;

  const rpcHandler = connectNodeAdapter({
    routes: (router) => router.service(ProberMeshService, proberMeshService({ registry, pool, windows, metrics, aggregationIntervalMs: o.aggregationIntervalMs, deadAfterMs: expireMs, instanceId: randomUUID(), startedMs, log: o.log })),
    readMaxBytes: 64 << 20,
  });
  const rpc: Listener = await listenH1H2c(o.rpcListenAddr, rpcHandler);
  const app = httpApp({
    store, registry, pool, latestIcmp: ingests.icmp.latest, ready: () => ready,
    reload: () => {
      if (!o.probeFile) return;
      pool.replaceFile(loadProbeFile(o.probeFile));
      o.log.info({ file: o.probeFile }, "probe file reloaded");
    },
  });
  const { host, port } = splitHostPort(o.httpListenAddr);
  let web: ReturnType<typeof Bun.serve>;
  try {
    web = Bun.serve({ hostname: host, port, fetch: app.fetch });
  } catch (e) {
    await rpc.close();
    throw e;
  }

  const sweep = setInterval(() => registry.sweep(), Math.min(1000, o.aggregationIntervalMs));
  // Windows are published on a timer aligned to window ends + lateness (docs/aggregation.md).
  let publishTimer: ReturnType<typeof setTimeout>;
  const publish = () => {
    const n = windows.tick();
    const expired = store.expire();
    o.log.debug({ windowsPublished: n, seriesExpired: expired, openWindows: windows.openWindows }, "aggregation tick");
    publishTimer = setTimeout(publish, windows.msUntilNextTick());
  };
  publishTimer = setTimeout(publish, windows.msUntilNextTick());
  ready = true;
  o.log.info({ rpc: `${splitHostPort(o.rpcListenAddr).host}:${rpc.port}`, http: `${host}:${web.port}`, discovery: o.discovery, file: o.probeFile || null, blocks: file.blocks.length }, "server started");
  return {
    rpcPort: rpc.port,
    httpPort: web.port!,
    async close() {
      clearInterval(sweep);
      clearTimeout(publishTimer);
      web.stop(true);
      await rpc.close();
    },
  };
}

/**
 * Server wiring: probe file, registry, pools, Connect-RPC listener, aggregation loop and the HTTP
 * side. server.ts only parses flags and calls startServer().
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { IcmpAggregate } from "../aggregation/aggregate.ts";
import { AggregationWindow } from "../aggregation/window.ts";
import type { Logger } from "../log.ts";
import { ServerMetrics } from "../metrics/metrics.ts";
import { ProberMeshService } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { listenH1H2c, splitHostPort, type Listener } from "../rpc/listen.ts";
import { loadProbeFile, type ProbeFile } from "../targets/config.ts";
import { TargetPool, type Discovery } from "../targets/pool.ts";
import { httpApp } from "./http.ts";
import { AgentRegistry } from "./registry.ts";
import { proberMeshService } from "./service.ts";

/** Server settings (the server flags of SPEC.md); durations in milliseconds. */
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
  const metrics = new ServerMetrics(expireMs);
  const registry = new AgentRegistry(expireMs, {
    onChange: (e, prev) => {
      metrics.agentChanged(e, prev);
      o.log.info({ region: e.region, ip: e.ip, version: e.version, alive: e.alive }, e.alive ? "agent alive" : "agent dead");
    },
    onForget: (e) => metrics.agentForgotten(e),
  });
  const pool = new TargetPool(file, o.discovery, o.probeSelf, registry);
  const window = new AggregationWindow();
  let latestIcmp: IcmpAggregate[] = [];
  let ready = false;

  const rpcHandler = connectNodeAdapter({
    routes: (router) => router.service(ProberMeshService, proberMeshService({ registry, pool, window, metrics, aggregationIntervalMs: o.aggregationIntervalMs, deadAfterMs: expireMs, log: o.log })),
    readMaxBytes: 64 << 20,
  });
  const rpc: Listener = await listenH1H2c(o.rpcListenAddr, rpcHandler);
  const app = httpApp({
    metrics, registry, pool, discovery: o.discovery, latestIcmp: () => latestIcmp, ready: () => ready,
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
  const aggregate = setInterval(() => {
    const { icmp, http } = window.flush();
    metrics.publishIcmp(icmp);
    metrics.publishHttp(http);
    metrics.expire();
    if (icmp.length) latestIcmp = icmp;
    o.log.debug({ icmpPairs: icmp.length, httpTargets: http.length }, "aggregated window");
  }, o.aggregationIntervalMs);
  ready = true;
  o.log.info({ rpc: `${splitHostPort(o.rpcListenAddr).host}:${rpc.port}`, http: `${host}:${web.port}`, discovery: o.discovery, file: o.probeFile || null, blocks: file.blocks.length }, "server started");
  return {
    rpcPort: rpc.port,
    httpPort: web.port!,
    async close() {
      clearInterval(sweep);
      clearInterval(aggregate);
      web.stop(true);
      await rpc.close();
    },
  };
}

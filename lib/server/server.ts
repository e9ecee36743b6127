/**
 * Server wiring: probe file, registry, pools, Connect-RPC listener, aggregation loop and the HTTP
 * side. server.ts only parses flags and calls startServer().
 */
import { randomUUID } from "node:crypto";
import { AggregationWindows } from "../aggregation/window.ts";
import type { Logger } from "../log.ts";
import { serverMetrics, type ServerLabelValues } from "../metrics/server.ts";
import { SeriesStore } from "../metrics/series.ts";
import { PROBER_TYPES, type ProberType } from "../probes/kind.ts";
import { ProberMeshService } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { listenH1H2c, splitHostPort, type Listener } from "../rpc/listen.ts";
import { MAX_RPC_BYTES } from "../rpc/limits.ts";
import { loadProbeFile, type ProbeFile } from "../targets/config.ts";
import type { Steps } from "../steps.ts";
import { BasicAuth } from "./auth/basic_auth.ts";
import { requestContext, rpcGate } from "./auth/gate.ts";
import { AUTH_FAILURE_REASONS } from "./auth/tokens.ts";
import { httpApp } from "./http.ts";
import { CHECK_KINDS, createIngests } from "./kinds.ts";
import { peerKey } from "./peers.ts";
import { TargetPool, poolRegistryEvents, type Discovery } from "./pool.ts";
import { RefetchPacer } from "./refetch.ts";
import { AgentRegistry, REGISTRY_REFUSALS } from "./registry.ts";
import { RedisRegistrySync } from "./registry_redis.ts";
import { BatchDedupe } from "./dedupe.ts";
import { AgentHealthBook } from "./health.ts";
import { MeshHistory } from "./history.ts";
import { MeshKey, meshKeyFromFile } from "./mesh_key.ts";
import { PathStore } from "./paths.ts";
import { checkExposure, Security, type SecurityOptions } from "./security.ts";
import { RAW_PUSH_METHOD } from "./push_raw.ts";
import { rpcHandler } from "./rpc_adapter.ts";
import { Incidents } from "./incidents.ts";
import { Lane, LANE_SLICE_MS, PUSH_QUEUE_MAX_RESULTS, Turns, watchLoopDelay } from "./lane.ts";
import { inferUnreachable } from "./unreachable.ts";
import { proberMeshService } from "./service.ts";

/** Shortest time results about an agent that said goodbye are dropped as target_left, milliseconds. */
const LEFT_GRACE_MIN_MS = 60_000;

/** The label values of the server-wide metrics, from where each list is defined. */
export const SERVER_LABEL_VALUES: ServerLabelValues = { proberTypes: PROBER_TYPES, authFailures: AUTH_FAILURE_REASONS, registryRefusals: REGISTRY_REFUSALS };

/** Server settings (docs/flags.md); durations in milliseconds. */
export interface ServerOptions extends SecurityOptions {
  httpListenAddr: string;
  probeFile: string;
  discovery: Discovery;
  aggregationIntervalMs: number;
  seriesCacheRatio: number;
  probeSelf: boolean;
  /** -server.mesh.peers.per.region: agents of each other region an agent probes (lib/server/peers.ts); 0 = every agent. */
  peersPerRegion?: number;
  /** -server.pool.refetch.rate: agents told per second at most that their pool changed (lib/server/refetch.ts); 0 = no limit. Default 0. */
  refetchRate?: number;
  /** -server.push.queue.max.results: results of pushes waiting at most for the background lane (lib/server/lane.ts). Default PUSH_QUEUE_MAX_RESULTS. */
  pushQueueMaxResults?: number;
  /** The localiser's worker thread (lib/localiser/worker.ts) as a URL; absent: it runs on the server's thread. */
  localiserWorkerUrl?: string;
  /** POST /-/reload is served (-server.web.enable-lifecycle). */
  enableLifecycle: boolean;
  /** How long the web console's per-pair history is kept, milliseconds. */
  historyRetentionMs: number;
  maxAgents: number;
  maxRegions: number;
  /** redis://host:port/db of a shared registry, or "" for the in-process one. */
  registryUrl: string;
  /** A dead agent is forgotten (leaves the pools) this long after it died, milliseconds (-server.agent.forget.after). */
  forgetAfterMs: number;
  /** -server.mesh.key.file, or "" (lib/server/mesh_key.ts). */
  meshKeyFile?: string;
  log: Logger;
}

/** A running server. */
export interface RunningServer {
  rpcPort: number;
  httpPort: number;
  /** The agents' AgentHealth summed per agent since its last take() (lib/server/health.ts). */
  health: AgentHealthBook;
  /** Reloads the probe file, tokens, RPC certificate and web config (SIGHUP). @returns the errors, empty on success */
  reload(): string[];
  close(): Promise<void>;
}

/**
 * Starts the server. @throws StartupRefusal (exit 2) when the RPC port would be exposed without
 * authentication, ConfigError for a bad probe file, Error for a bad security file or a port that
 * cannot be bound.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const exposureWarning = checkExposure(o);
  if (exposureWarning) o.log.warn(exposureWarning);
  const security = new Security(o);
  const meshKey = new MeshKey(o.meshKeyFile ? meshKeyFromFile(o.meshKeyFile) : undefined);
  const file: ProbeFile = o.probeFile ? loadProbeFile(o.probeFile) : { blocks: [] };
  for (const w of file.warnings ?? []) o.log.warn({ file: o.probeFile }, w);
  const expireMs = o.seriesCacheRatio * o.aggregationIntervalMs;
  const startedMs = Date.now();
  // Cumulative series live as long as a silent agent is remembered (docs/metrics.md "Expiry").
  const store = new SeriesStore(expireMs, undefined, Math.max(expireMs, o.forgetAfterMs));
  const metrics = serverMetrics(store, SERVER_LABEL_VALUES);
  let pool: TargetPool | undefined;
  let shared: RedisRegistrySync | undefined;
  const poolEvents = poolRegistryEvents(() => pool);
  const refetch = new RefetchPacer(o.refetchRate ?? 0, o.maxAgents);
  const registry = new AgentRegistry(expireMs, {
    onJoin: poolEvents.onJoin,
    onChange: (e, prev) => {
      metrics.agentChanged(e, prev);
      poolEvents.onChange(e, prev);
      o.log.info({ region: e.region, ip: e.ip, version: e.version, alive: e.alive }, e.alive ? "agent alive" : "agent dead; it stays a mesh target until forgotten (-server.agent.forget.after)");
    },
    onForget: (e, goodbye) => {
      metrics.agentForgotten(e);
      poolEvents.onForget(e, goodbye);
      refetch.forget(peerKey(e.region, e.ip));
      o.log.info({ region: e.region, ip: e.ip }, goodbye ? "agent left (goodbye)" : "agent forgotten");
    },
    onHeartbeat: (e) => shared?.publish(e),
    onGoodbye: (e, atMs) => shared?.publishGoodbye(e, atMs),
  }, undefined, { maxAgents: o.maxAgents, maxRegions: o.maxRegions }, o.forgetAfterMs);
  if (o.registryUrl) {
    shared = new RedisRegistrySync(o.registryUrl, registry, o.log, expireMs, (up) => metrics.registryBackend(up), meshKey, { hooks: metrics.registrySync });
    await shared.start();
  }
  // Goodbyes are remembered long enough for the rounds in flight (a default round lasts ~6 s) and
  // the pushes after them to arrive, and for every agent to be told of the change at the paced rate.
  pool = new TargetPool(file, o.discovery, o.probeSelf, registry, Math.max(expireMs, LEFT_GRACE_MIN_MS) + refetch.spreadMs(o.maxAgents), undefined, o.peersPerRegion ?? 0);
  // What agents say of themselves (AgentHealth), kept for known agents only.
  const health = new AgentHealthBook((region, ip) => registry.isLive(region, ip), o.maxAgents);
  const ingests = createIngests(store);
  const windows = new AggregationWindows<ProberType>(o.aggregationIntervalMs, ingests);
  const history = new MeshHistory(o.historyRetentionMs);
  const paths = new PathStore();
  const incidents = new Incidents({
    icmp: () => ingests.icmp.latest(), udp: () => ingests.udp.latest(), tcpConnect: () => ingests.tcp.latestConnect(),
    agents: () => registry.all(), health: () => health.take(), paths: () => paths.list(),
  }, store, o.aggregationIntervalMs, o.log, o.localiserWorkerUrl);
  // Agent processes remembered for dedupe: a few per registry slot (restarts make new instances).
  const dedupe = new BatchDedupe(4 * o.maxAgents, shared);
  // Pushes and window publishing run here in slices; RPCs are answered between them.
  const lane = new Lane(LANE_SLICE_MS, undefined, metrics.lane);
  const stopLoopDelay = watchLoopDelay(metrics.loopDelay);
  let ready = false;

  const service = proberMeshService({
    registry, pool, refetch, windows, lane, poolTurns: new Turns(), pushQueueMaxResults: o.pushQueueMaxResults ?? PUSH_QUEUE_MAX_RESULTS, paths, dedupe, health, metrics, aggregationIntervalMs: o.aggregationIntervalMs, deadAfterMs: expireMs,
    instanceId: randomUUID(), startedMs, meshKey, authenticated: () => security.tokens !== undefined, log: o.log,
  });
  const connect = rpcHandler({
    routes: (router) => router.service(ProberMeshService, service), readMaxBytes: MAX_RPC_BYTES, contextValues: requestContext,
    // Binary pushes are read with their results left encoded, each decoded when it is filed.
    binaryRoutes: (router) => router.rpc(RAW_PUSH_METHOD, service.pushResults as never),
    log: (msg, err) => o.log.error({ err: String(err) }, msg),
  });
  const rpc: Listener = await listenH1H2c(o.rpcListenAddr, rpcGate(() => security.tokens, (reason) => metrics.authFailed(reason), connect), security.rpcTls);

  const reload = (): string[] => {
    const errors = security.reload();
    if (security.rpcTls) rpc.setTls(security.rpcTls);
    if (o.probeFile) {
      try {
        const next = loadProbeFile(o.probeFile);
        for (const w of next.warnings ?? []) o.log.warn({ file: o.probeFile }, w);
        pool.replaceFile(next);
      } catch (e) {
        errors.push((e as Error).message);
      }
    } else {
      // New tokens may decide which agents get module secrets: every pool counts as changed.
      pool.replaceFile(pool.probeFile);
    }
    if (errors.length) o.log.error({ errors }, "reload incomplete; what failed keeps its previous state");
    else o.log.info({ file: o.probeFile || null, tokens: !!security.tokens, rpcTls: !!security.rpcTls, webConfig: o.webConfigFile || null }, "reloaded");
    return errors;
  };
  const app = httpApp({
    store, registry, pool, latestIcmp: ingests.icmp.latest, latestUdp: ingests.udp.latest, latestTcpConnect: ingests.tcp.latestConnect, latestChecks: () => new Map(CHECK_KINDS.map((k) => [k, ingests[k].latest()])), history, paths, incidents: () => incidents.snapshot(), staleAfterMs: expireMs, ready: () => ready, lifecycle: o.enableLifecycle,
    basicAuth: new BasicAuth(() => security.web.users), headers: () => security.web.headers,
    reload: () => {
      const errors = reload();
      if (errors.length) throw new Error(errors.join("\n"));
    },
  });
  const { host, port } = splitHostPort(o.httpListenAddr);
  let web: ReturnType<typeof Bun.serve>;
  try {
    // The HTTP side only receives tiny requests; idle connections are closed after 30 s.
    web = Bun.serve({ hostname: host, port, fetch: app.fetch, tls: security.web.tls, maxRequestBodySize: 1 << 20, idleTimeout: 30 });
  } catch (e) {
    await rpc.close();
    throw e;
  }

  const sweep = setInterval(() => registry.sweep(), Math.min(1000, o.aggregationIntervalMs));
  // Windows are published on a timer aligned to window ends + lateness (docs/aggregation.md), in the lane.
  let publishTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const publishSteps = function* (): Steps {
    const n = yield* windows.tickSteps();
    if (n > 0) {
      // The direction a silent (cut-off) region cannot report, from the one the others measured.
      const agents = registry.all();
      const icmp = ingests.icmp.latest();
      const icmpInferred = inferUnreachable(icmp, agents);
      ingests.icmp.publishInferred(icmpInferred, icmp[0]?.windowEndMs ?? Date.now());
      // udp: only where ICMP agrees (a crashed agent's responder is silent too, its kernel's echo is not).
      const udp = ingests.udp.latest();
      const cut = new Set(icmpInferred.map((p) => `${p.sourceRegion}\u0000${p.targetRegion}`));
      ingests.udp.publishInferred(inferUnreachable(udp, agents).filter((p) => cut.has(`${p.sourceRegion}\u0000${p.targetRegion}`)), udp[0]?.windowEndMs ?? Date.now());
      history.record(ingests.icmp.latest());
      yield;
      // The localiser reads the window just published (docs/aggregation.md "Incidents").
      const newest = Math.max(...[icmp, udp, ingests.tcp.latestConnect()].map((xs) => xs[0]?.windowEndMs ?? 0));
      if (newest > 0) yield* incidents.runSteps(newest, icmpInferred);
    }
    const expired = store.expire();
    o.log.debug({ windowsPublished: n, seriesExpired: expired, openWindows: windows.openWindows }, "aggregation tick");
  };
  const publish = () => {
    publishTimer = undefined;
    lane.run(publishSteps())
      .catch((err) => o.log.error({ err: String((err as Error)?.stack ?? err) }, "publishing an aggregation window failed"))
      .finally(() => {
        if (!closed) publishTimer = setTimeout(publish, windows.msUntilNextTick());
      });
  };
  publishTimer = setTimeout(publish, windows.msUntilNextTick());
  ready = true;
  o.log.info({
    rpc: `${splitHostPort(o.rpcListenAddr).host}:${rpc.port}`, rpcTls: !!security.rpcTls, mutualTls: !!security.rpcTls?.clientCa, agentTokens: !!security.tokens,
    http: `${host}:${web.port}`, httpTls: !!security.web.tls, basicAuth: security.web.users.size > 0, lifecycle: o.enableLifecycle,
    discovery: o.discovery, file: o.probeFile || null, blocks: file.blocks.length, registry: o.registryUrl ? "redis" : "in-process",
    meshKey: o.meshKeyFile ? "file" : o.registryUrl ? (meshKey.settled ? "shared" : "random until the shared registry answers") : "random",
  }, "server started");
  return {
    rpcPort: rpc.port,
    httpPort: web.port!,
    health,
    reload,
    async close() {
      closed = true;
      stopLoopDelay();
      clearInterval(sweep);
      clearTimeout(publishTimer);
      incidents.close();
      shared?.close();
      web.stop(true);
      await rpc.close();
    },
  };
}

/**
 * Server-wide metrics (docs/metrics.md): agent liveness and health, and what happened to pushed results.
 * Plain data in: agents are {region, ip, version, alive}, kinds are prober_type strings.
 */
import type { SeriesStore } from "./series.ts";

/** An agent as prober_agent_is_alive shows it. */
export interface AgentLabels {
  region: string;
  ip: string;
  version: string;
  alive: boolean;
}

/** Why a pushed result was rejected (label `reason` of prober_server_reject_points_total). */
export const REJECT_REASONS = {
  not_assigned: "its target was not handed to the agent's region (or names an agent that said goodbye or was forgotten)",
  invalid: "its numbers are unusable (out of range, inconsistent, unknown failed_reason), or in a binary push its bytes are not a valid result message",
  target_left: "its target is an agent that said goodbye within the last minute (or ratio x interval, if longer), plus the time -server.pool.refetch.rate takes to tell every agent of the registry's size: a round in flight when it left, or before the prober's next pool fetch; dropped without a warning to the agent, never counted as loss",
  duplicate: "its batch was accepted before, by this or another server sharing the registry (a resend after a lost answer): answered with success, not counted again",
} as const;
export type RejectReason = keyof typeof REJECT_REASONS;

/** Why a server read the whole shared registry (label `reason` of prober_server_registry_full_resyncs_total). */
export const REGISTRY_RESYNC_REASONS = {
  start: "the server started, or reached Redis for the first time",
  redis_restarted: "Redis lost its data (restarted empty, flushed, or its change stream went back or vanished): the server also re-wrote the agents it heard itself",
  behind: "the server fell further behind the change stream than its length (paused, or cut off from Redis while others wrote)",
} as const;
export type RegistryResyncReason = keyof typeof REGISTRY_RESYNC_REASONS;

/** What a GetTargetPool answer carried (label `answer` of prober_server_pool_answers_total). */
export const POOL_ANSWERS = {
  full: "the pool's targets",
  unchanged: "no targets: the request's known_pool_version was still the agent's current pool version (a periodic refresh of an unchanged pool)",
} as const;
export type PoolAnswer = keyof typeof POOL_ANSWERS;

/** Why a push was answered `unavailable` for the agent to send again (label `reason` of prober_server_deferred_pushes_total). */
export const DEFER_REASONS = {
  warm_up: "in the warm-up after a server start, it names agents not yet registered again",
  busy: "the server's background lane already holds -server.push.queue.max.results results of earlier pushes (docs/scale.md \"The server's thread\")",
} as const;
export type DeferReason = keyof typeof DEFER_REASONS;

/** The label values the server-wide metrics pre-declare, each with what it means (defined where they arise). */
export interface ServerLabelValues {
  proberTypes: readonly string[];
  /** Reasons an RPC is refused by authentication (lib/server/auth/tokens.ts). */
  authFailures: Record<string, string>;
  /** Reasons the registry refuses a new agent (lib/server/registry.ts). */
  registryRefusals: Record<string, string>;
}

/** prober_server_event_loop_delay_seconds buckets: 1 ms × 2^k, k = 0..13 (1 ms .. 8.2 s). */
const LOOP_DELAY_BUCKETS = Array.from({ length: 14 }, (_, k) => 0.001 * 2 ** k);

const reasonDoc = (r: Record<string, string>) => Object.entries(r).map(([k, v]) => `\`${k}\` (${v})`).join(", ");

/** Creates the server-wide metrics on `store`. */
export function serverMetrics(store: SeriesStore, values: ServerLabelValues) {
  const { proberTypes } = values;
  const agentAlive = store.gauge({
    name: "prober_agent_is_alive", type: "gauge", labelNames: ["region", "ip", "version"],
    help: "1 while the agent heartbeats, 0 once silent for ratio x aggregation interval.",
    doc: "A dead agent's series stays at 0 for an hour, then goes.", expires: false,
  });
  const receive = store.counter({ name: "prober_server_receive_points_total", type: "counter", labelNames: ["prober_type"], help: "Probe results accepted by the server.", expires: false });
  const reject = store.counter({
    name: "prober_server_reject_points_total", type: "counter", labelNames: ["prober_type", "reason"],
    help: "Probe results rejected by the server, by reason.", doc: `reason: ${reasonDoc(REJECT_REASONS)}.`, expires: false,
  });
  const late = store.counter({
    name: "prober_server_late_points_total", type: "counter", labelNames: ["prober_type"],
    help: "Accepted results whose aggregation window was already published (outage backlog, skewed clock): counted in cumulative series only.", expires: false,
  });
  const receiveTraces = store.counter({ name: "prober_server_receive_traces_total", type: "counter", labelNames: [], help: "Path traces accepted by the server (kept for /api/v1/paths).", expires: false });
  const rejectTraces = store.counter({
    name: "prober_server_reject_traces_total", type: "counter", labelNames: ["reason"],
    help: "Path traces rejected by the server, by reason.", doc: `reason: ${reasonDoc(REJECT_REASONS)}.`, expires: false,
  });
  const deferred = store.counter({
    name: "prober_server_deferred_pushes_total", type: "counter", labelNames: ["reason"],
    help: "Pushes answered `unavailable` for the agent to send again later; agents keep the batch and resend it (nothing is lost or counted twice).",
    doc: `reason: ${reasonDoc(DEFER_REASONS)}.`, expires: false,
  });
  const authFailures = store.counter({
    name: "prober_server_rpc_auth_failures_total", type: "counter", labelNames: ["reason"],
    help: "RPCs refused by agent authentication (unauthenticated or permission_denied).", doc: `reason: ${reasonDoc(values.authFailures)}.`, expires: false,
  });
  const poolAnswers = store.counter({
    name: "prober_server_pool_answers_total", type: "counter", labelNames: ["answer"],
    help: "GetTargetPool answers, by what they carried.", doc: `answer: ${reasonDoc(POOL_ANSWERS)}.`, expires: false,
  });
  const refetchDeferred = store.counter({
    name: "prober_server_pool_refetches_deferred_total", type: "counter", labelNames: [],
    help: "Heartbeat answers that did not yet tell an agent its target pool changed, to pace pool fetches (-server.pool.refetch.rate); it is told at a later heartbeat.", expires: false,
  });
  const registryRefusals = store.counter({
    name: "prober_server_registry_refusals_total", type: "counter", labelNames: ["reason"],
    help: "Heartbeats of new agents refused with resource_exhausted because a registry cap was reached.", doc: `reason: ${reasonDoc(values.registryRefusals)}.`, expires: false,
  });
  const backendUp = store.gauge({
    name: "prober_server_registry_backend_up", type: "gauge", labelNames: [],
    help: "1 while the agent registry's backend is reachable (always 1 for the in-process registry); 0 while a shared Redis registry is away and the server serves from its last view.", expires: false,
  });
  // The shared registry's synchronisation (lib/server/registry_redis.ts); all 0 with the in-process registry.
  const syncEntries = store.counter({
    name: "prober_server_registry_sync_entries_total", type: "counter", labelNames: [],
    help: "Agent entries this server read from the shared registry's change stream (every server's writes, its own included).", expires: false,
  });
  const syncWrites = store.counter({
    name: "prober_server_registry_writes_total", type: "counter", labelNames: [],
    help: "Agent entries this server wrote to the shared registry (hash and change stream): new agents, changed ports or versions and goodbyes at once, heartbeats that only move the last-seen time at most once per refresh period.", expires: false,
  });
  const fullResyncs = store.counter({
    name: "prober_server_registry_full_resyncs_total", type: "counter", labelNames: ["reason"],
    help: "Times this server read the whole shared registry (one HGETALL) instead of following its change stream.", doc: `reason: ${reasonDoc(REGISTRY_RESYNC_REASONS)}.`, expires: false,
  });
  const unstreamed = store.counter({
    name: "prober_server_registry_unstreamed_entries_total", type: "counter", labelNames: [],
    help: "Agent entries a sweep of the shared registry found newer than what the change stream had carried, and put on the stream: written by servers of 0.7 (a rolling upgrade), else 0.", expires: false,
  });
  const droppedPoints = store.counter({
    name: "prober_agent_dropped_points_total", type: "counter", labelNames: ["region"],
    help: "Results agents dropped unsent, by agent region: their outbox was full during a long server outage (-agent.outbox.max.bytes), or a server refused their batch for good; reported with the agents' next accepted push.",
    doc: "Data lost at the source, counted once per batch (batch identity). 0 in a healthy mesh.", expires: false,
  });
  const goodbyes = store.counter({
    name: "prober_server_agent_goodbyes_total", type: "counter", labelNames: [],
    help: "Agents that said goodbye (Deregister, on SIGTERM/SIGINT) and left the pools at once.", expires: false,
  });
  // AgentHealth (docs/protocol.md "Agent health"): what each agent says of itself with its pushes.
  const healthDoc = "From the agent's AgentHealth (agents of 0.7 on; docs/protocol.md \"Agent health\"). Appears with the agent's first push, goes when it is forgotten.";
  const roundsDue = store.counter({
    name: "prober_agent_rounds_due_total", type: "counter", labelNames: ["region", "ip"],
    help: "Regular probe rounds that came due on the agent.",
    doc: `${healthDoc} With rounds late and the loopback control it tells a starved agent (its own loss) from the network's.`, expires: false,
  });
  const roundsLate = store.counter({
    name: "prober_agent_rounds_late_total", type: "counter", labelNames: ["region", "ip"],
    help: "Regular probe rounds that started late on the agent: more than max(100 ms, 10 % of the probe interval) after their planned start, or not at all because the target's previous round was still running.",
    doc: healthDoc, expires: false,
  });
  const loopbackSent = store.counter({
    name: "prober_agent_loopback_packets_sent_total", type: "counter", labelNames: ["region", "ip"],
    help: "Echo requests the agent's loopback control sent to its own 127.0.0.1 (10 per probe interval; no network on the path).",
    doc: `${healthDoc} 0 when the agent cannot send ICMP.`, expires: false,
  });
  const loopbackReceived = store.counter({
    name: "prober_agent_loopback_packets_received_total", type: "counter", labelNames: ["region", "ip"],
    help: "Echo replies the agent's loopback control received in time (1 s): fewer than sent means the agent itself loses packets.",
    doc: healthDoc, expires: false,
  });
  const rejectHealth = store.counter({
    name: "prober_server_reject_health_total", type: "counter", labelNames: [],
    help: "AgentHealth messages ignored as unusable (counts out of range, more late rounds than due, more loopback replies than requests, a lateness not finite or negative); the push's results are still taken.",
    expires: false,
  });
  rejectHealth.inc({}, 0);
  // The server's one thread (lib/server/lane.ts; docs/scale.md "The server's thread").
  const loopDelay = store.histogram({
    name: "prober_server_event_loop_delay_seconds", type: "histogram", labelNames: [], buckets: LOOP_DELAY_BUCKETS, expires: false,
    help: "How late the server's event loop ran a timer set every 100 ms, seconds: what an RPC arriving then waited before the server read it (background lane slices, garbage collection, anything that holds the thread).",
    doc: "histogram_quantile(0.99, rate(prober_server_event_loop_delay_seconds_bucket[5m])) is the p99 wait of heartbeats and pool fetches at the server, beside the network's. Buckets 1 ms × 2^k, k = 0..13.",
  });
  const laneBusy = store.counter({
    name: "prober_server_lane_busy_seconds_total", type: "counter", labelNames: [], expires: false,
    help: "Time the server's thread spent in its background lane (filing pushed results, publishing windows, packing them for the localiser), seconds.",
    doc: "rate() is the share of the thread the lane takes; near 1 the server is saturated and pushes wait (prober_server_lane_queued_results), then are deferred as `busy`.",
  });
  const laneQueued = store.gauge({
    name: "prober_server_lane_queued_results", type: "gauge", labelNames: [], expires: false,
    help: "Results of pushes accepted for filing and waiting in the server's background lane (at most about -server.push.queue.max.results).",
  });
  laneBusy.inc({}, 0);
  laneQueued.set({}, 0);
  const agentHealthSeries = [roundsDue, roundsLate, loopbackSent, loopbackReceived];
  goodbyes.inc({}, 0);
  backendUp.set({}, 1);
  syncEntries.inc({}, 0);
  syncWrites.inc({}, 0);
  unstreamed.inc({}, 0);
  for (const reason of Object.keys(REGISTRY_RESYNC_REASONS)) fullResyncs.inc({ reason }, 0);
  for (const reason of Object.keys(values.authFailures)) authFailures.inc({ reason }, 0);
  for (const reason of Object.keys(values.registryRefusals)) registryRefusals.inc({ reason }, 0);
  for (const t of proberTypes) {
    receive.inc({ prober_type: t }, 0);
    late.inc({ prober_type: t }, 0);
    for (const reason of Object.keys(REJECT_REASONS)) reject.inc({ prober_type: t, reason }, 0);
  }
  for (const reason of Object.keys(DEFER_REASONS)) deferred.inc({ reason }, 0);
  refetchDeferred.inc({}, 0);
  for (const answer of Object.keys(POOL_ANSWERS)) poolAnswers.inc({ answer }, 0);
  receiveTraces.inc({}, 0);
  for (const reason of Object.keys(REJECT_REASONS)) rejectTraces.inc({ reason }, 0);
  return {
    traceAccepted: () => receiveTraces.inc({}),
    traceRejected: (reason: RejectReason, n = 1) => rejectTraces.inc({ reason }, n),
    accepted: (type: string, late_: boolean) => {
      receive.inc({ prober_type: type });
      if (late_) late.inc({ prober_type: type });
    },
    rejected: (type: string, reason: RejectReason, n = 1) => reject.inc({ prober_type: type, reason }, n),
    deferred: (reason: DeferReason) => deferred.inc({ reason }),
    refetchDeferred: () => refetchDeferred.inc({}),
    poolAnswered: (answer: PoolAnswer) => poolAnswers.inc({ answer }),
    agentDropped: (region: string, points: number) => droppedPoints.inc({ region }, points),
    goodbye: () => goodbyes.inc({}),
    authFailed: (reason: string) => authFailures.inc({ reason }),
    registryBackend: (up: boolean) => backendUp.set({}, up ? 1 : 0),
    /** The shared registry's synchronisation (RegistrySyncHooks in lib/server/registry_redis.ts). */
    registrySync: {
      entriesRead: (n: number) => syncEntries.inc({}, n),
      entriesWritten: (n: number) => syncWrites.inc({}, n),
      fullResync: (reason: RegistryResyncReason) => fullResyncs.inc({ reason }),
      unstreamed: (n: number) => unstreamed.inc({}, n),
    },
    registryRefused: (reason: string) => registryRefusals.inc({ reason }),
    /** Reflects an agent's state (removing the label set of its previous version, if given). */
    agentChanged(a: AgentLabels, previous?: AgentLabels) {
      if (previous) agentAlive.remove({ region: previous.region, ip: previous.ip, version: previous.version });
      agentAlive.set({ region: a.region, ip: a.ip, version: a.version }, a.alive ? 1 : 0);
    },
    agentForgotten(a: AgentLabels) {
      agentAlive.remove({ region: a.region, ip: a.ip, version: a.version });
      for (const c of agentHealthSeries) c.remove({ region: a.region, ip: a.ip });
    },
    /** Adds one push's (checked) AgentHealth to the agent's counters. */
    agentHealth(region: string, ip: string, h: { roundsDue: number; roundsLate: number; loopbackSent: number; loopbackReceived: number }) {
      const l = { region, ip };
      roundsDue.inc(l, h.roundsDue);
      roundsLate.inc(l, h.roundsLate);
      loopbackSent.inc(l, h.loopbackSent);
      loopbackReceived.inc(l, h.loopbackReceived);
    },
    /** The background lane's hooks (lib/server/lane.ts LaneHooks). */
    lane: {
      slice: (ms: number) => laneBusy.inc({}, ms / 1000),
      backlog: (results: number) => laneQueued.set({}, results),
    },
    /** One measurement of watchLoopDelay() (lib/server/lane.ts), seconds. */
    loopDelay: (seconds: number) => loopDelay.observe({}, seconds),
    /** An AgentHealth was unusable and ignored. */
    healthRejected: () => rejectHealth.inc({}),
  };
}

export type ServerMetrics = ReturnType<typeof serverMetrics>;

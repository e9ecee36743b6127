/**
 * Agent wiring: register (heartbeat, retried with back-off until the first one succeeds), sync the
 * target pool every sync interval (and at once when the server's pool_version changes), schedule
 * one round per target per probe interval, and push the interval's results once per interval,
 * keeping unsent batches (encoded, bounded in bytes) while the server is down; each push carries
 * the agent's health of its period (late rounds, the loopback control: lib/agent/health.ts). On shutdown
 * (SIGTERM, SIGINT) it pushes what is queued within a deadline and says goodbye (Deregister).
 */
import { randomUUID } from "node:crypto";
import { hostname, networkInterfaces } from "node:os";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import pLimit from "p-limit";
import pRetry from "p-retry";
import type { Logger } from "../log.ts";
import { PROBER_TYPES, type ModuleOf, type ProbeKind, type Prober, type ProberType, type ResultOf, type TargetOf } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { HEARTBEAT_INTERVAL_MS } from "../rpc/heartbeat.ts";
import { type IcmpTarget } from "../rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentSchema, type Agent, type GetTargetPoolResponse, type HeartbeatResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PUSH_SPLIT_BYTES } from "../rpc/limits.ts";
import { VERSION } from "../version.ts";
import { AGENT_KINDS, type Reprobe } from "./kinds.ts";
import { rpcClient, type ClientOptions } from "./client.ts";
import { emptyBatch, Outbox, pointsOf, splitBatch } from "./outbox.ts";
import { Scheduler, type ErrorPolicy, type Job, type RoundReport } from "./scheduler.ts";
import { Tracing } from "./tracing.ts";
import type { TraceOptions } from "../probes/icmp/trace.ts";
import type { PortRange } from "../probes/flow/ports.ts";
import { startListeners } from "./listeners.ts";
import { flowTraceRequests } from "./flow_traces.ts";
import { HealthMeter, LoopbackControl } from "./health.ts";

/** Agent settings (docs/flags.md); durations in milliseconds. */
export interface AgentOptions extends ClientOptions {
  region: string;
  ip: string;
  probeIntervalMs: number;
  syncIntervalMs: number;
  /** Adaptive re-probing (-agent.probe.error.*); budgetPps 0 disables it. */
  error: ErrorPolicy;
  /** Path traces on entering error state: at most one per target per `intervalMs` (0: none). */
  trace: { intervalMs: number } & Partial<TraceOptions>;
  /**
   * The flow mesh: this agent's UDP responder and TCP listener ports (0 = off; -agent.udp.listen.port,
   * -agent.tcp.listen.port), the responder's reply rate, and the flow source port ranges.
   */
  flows: { udpListenPort: number; tcpListenPort: number; responderMaxRate: number; udpFlowPorts: PortRange; tcpFlowPorts: PortRange };
  /** Cap on the encoded bytes of unsent batches (-agent.outbox.max.bytes). */
  outboxMaxBytes: number;
  log: Logger;
}

/** A running agent. */
export interface RunningAgent {
  /** Stops at once: no final push, no goodbye (tests, and a second signal). */
  stop(): void;
  /**
   * Stops probing, pushes what is queued and says goodbye (Deregister), all within `timeoutMs`
   * milliseconds; then stops. Never throws. @returns results left unsent (the server was away)
   */
  shutdown(timeoutMs: number): Promise<number>;
}

/** How often an outbox that drops batches is logged at most, milliseconds. */
const DROP_LOG_MS = 60_000;

/** First non-loopback IPv4 address of this host (docs/flags.md default of -agent.ip), or "". */
export function defaultAgentIp(): string {
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return "";
}

/** The report of every clean round (one object: 10,000 targets make 10,000 rounds an interval). */
const CLEAN_ROUND: RoundReport = Object.freeze({ error: false });

/** A target's job; an ICMP one may start a path trace when a round fails (rate-limited per target). */
type AgentJob = Job & { onFailedRound?: () => void; onFlows?: (r: ResultOf<ProberType>, failed: boolean) => void };

/** Push failures that no retry can fix: the batch is dropped (and logged) so that the queue moves on. */
const BATCH_FATAL = new Set([Code.InvalidArgument, Code.ResourceExhausted, Code.OutOfRange, Code.Unimplemented]);
/** Push failures that need the operator (token, region): logged as errors; batches stay queued. */
const NEEDS_OPERATOR = new Set([Code.Unauthenticated, Code.PermissionDenied]);

/** Starts an agent; resolves once the first heartbeat succeeded. */
export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const log = o.log;
  const client = rpcClient(o, (addr, why) => log.warn({ server: addr, why }, "switched server"));
  /**
   * The mesh key of the last heartbeat answers (HeartbeatResponse.mesh_key): the current one first,
   * then the one it replaced, so probes tagged just before a key change still verify.
   */
  let meshKeys: Uint8Array[] = [];
  const takeMeshKey = (k: Uint8Array) => {
    if (k.length === 0 || (meshKeys[0] && Buffer.from(k).equals(meshKeys[0]))) return;
    if (meshKeys.length > 0) log.info("mesh key changed; the previous one is still accepted");
    meshKeys = [Uint8Array.from(k), ...meshKeys.slice(0, 1)];
  };
  // Listening first: the first heartbeat announces the ports actually bound (0 when off or failed).
  const listeners = startListeners({ udpPort: o.flows.udpListenPort, tcpPort: o.flows.tcpListenPort, udpMaxRate: o.flows.responderMaxRate, keys: () => meshKeys, log });
  const me: Agent = create(AgentSchema, { region: o.region, ip: o.ip, version: VERSION, hostname: hostname(), udpPort: listeners.udpPort, tcpPort: listeners.tcpPort });
  const abort = new AbortController();
  const debug = log.isLevelEnabled("debug");
  const ctx = { udpFlowPorts: o.flows.udpFlowPorts, tcpFlowPorts: o.flows.tcpFlowPorts, meshKey: () => meshKeys[0] };
  const probers = Object.fromEntries(PROBER_TYPES.map((t) => [t, AGENT_KINDS[t].create(ctx)])) as { [K in ProberType]: Prober<K> };
  const ready = new Set<ProberType>();
  for (const t of PROBER_TYPES) {
    const st = probers[t].status();
    if (st.ready) ready.add(t);
    if (st.ready) log.info(st.fields ?? {}, st.message);
    else log.error(st.fields ?? {}, `${st.message}; the other probe types continue`);
  }

  let instanceId = "";
  let poolVersion = 0n;
  /**
   * Server processes seen (their instance_id): with several servers the id alternates at every
   * failover and failback, which is no restart; a restarted server has an id never seen.
   */
  const seenInstances = new Set<string>();
  /** @returns whether a server restarted, and whether its pools changed since the last answer */
  const registered = (r: HeartbeatResponse) => {
    const changed = seenInstances.size > 0 && !seenInstances.has(r.instanceId);
    if (!seenInstances.has(r.instanceId)) {
      if (seenInstances.size >= 16) seenInstances.delete(seenInstances.values().next().value!);
      seenInstances.add(r.instanceId);
    }
    instanceId = r.instanceId;
    takeMeshKey(r.meshKey);
    const poolChanged = r.poolVersion !== 0n && poolVersion !== 0n && r.poolVersion !== poolVersion;
    if (r.poolVersion !== 0n) poolVersion = r.poolVersion;
    return { changed, poolChanged };
  };
  abort.signal.addEventListener("abort", () => listeners.close(), { once: true });
  const first = await pRetry(() => client.heartbeat({ agent: me }), {
    retries: Infinity, minTimeout: 500, maxTimeout: 30_000, signal: abort.signal,
    onFailedAttempt: ({ error, attemptNumber }) => {
      const code = ConnectError.from(error).code;
      if (NEEDS_OPERATOR.has(code)) log.error({ attempt: attemptNumber, err: error.message }, "register refused: check the token (-agent.token.file or PROBER_TOKEN) and the regions it may act for; retrying");
      else log.warn({ attempt: attemptNumber, err: error.message }, "register failed; retrying");
    },
  });
  registered(first);
  const heartbeatMs = first.heartbeatInterval ? durationMs(first.heartbeatInterval) : HEARTBEAT_INTERVAL_MS;
  // Push at least once per server window, so every result reaches its window before it closes (docs/aggregation.md).
  const aggregationMs = first.aggregationInterval ? durationMs(first.aggregationInterval) : o.probeIntervalMs;
  const pushMs = Math.min(o.probeIntervalMs, aggregationMs);
  log.info({ region: o.region, ip: o.ip, server: o.serverAddr, serverVersion: first.serverVersion, heartbeatMs, pushMs }, "registered");

  let batch = emptyBatch();
  // This process's batch identity: the server counts each (instance, sequence) once.
  const outbox = new Outbox({ maxBytes: o.outboxMaxBytes, instanceId: randomUUID() });
  const tracing = o.trace.intervalMs > 0 && o.error.budgetPps > 0 ? new Tracing(o.trace, log, (t) => batch.traces.push(t), () => meshKeys[0]) : undefined;
  const scheduler = new Scheduler(
    o.probeIntervalMs,
    {
      onError: (key, e) => log.error({ target: key, err: String(e) }, "probe crashed"),
      onErrorState(job, entered, { report, forMs, reprobes }) {
        if (entered) log.warn({ target: job.key, ...report?.detail, reprobeEveryMs: o.error.intervalMs }, "target entered error state; re-probing it");
        else log.info({ target: job.key, errorSeconds: Math.round((forMs ?? 0) / 1000), reprobes }, "target left error state");
      },
      onBudgetExhausted: (skipped, inErrorState) =>
        log.warn({ skipped, inErrorState, budgetPps: o.error.budgetPps }, "re-probe budget (-agent.probe.error.budget) exhausted; re-probes skipped"),
    },
    o.error,
    // Each agent's own offsets: agents of a mesh start their rounds to one target at different times.
    `${o.region}/${o.ip}`,
  );
  // The agent's own health, sent with each push: late rounds and the loopback control (one short
  // ICMP round to 127.0.0.1 per probe interval; off, at 0 / 0, when ICMP is unavailable).
  const loopback = new LoopbackControl({ prober: probers.icmp, intervalMs: o.probeIntervalMs, log });
  const health = new HealthMeter(scheduler, loopback);
  // Unlimited kinds (ICMP) skip p-limit: its queue costs promises per round at 10,000 targets.
  type Limit = <T>(f: () => Promise<T>) => Promise<T>;
  const limits = Object.fromEntries(
    PROBER_TYPES.map((t) => [t, AGENT_KINDS[t].concurrency === Infinity ? (f: () => Promise<unknown>) => f() : pLimit(AGENT_KINDS[t].concurrency)]),
  ) as { [K in ProberType]: Limit };

  /** One job per target of one kind: probe, then add the (final) result to the current batch. */
  const kindJobs = <K extends ProberType>(type: K, pool: GetTargetPoolResponse): AgentJob[] => {
    if (!ready.has(type)) return [];
    const kind = PROBE_KINDS[type] as ProbeKind<K>;
    const prober = probers[type] as Prober<K>;
    const jobs: AgentJob[] = [];
    // Targets with equal modules share one module object (a mesh of thousands has one module).
    const modules = new Map<string, ModuleOf<K>>();
    for (const t of pool[type] as TargetOf<K>[]) {
      const address = kind.addressOf(t);
      if (address === o.ip) continue;
      const fingerprint = t.module ? JSON.stringify(kind.moduleJson(t.module as ModuleOf<K>)) : "";
      if (t.module) {
        const shared = modules.get(fingerprint);
        if (shared) (t as { module?: ModuleOf<K> }).module = shared;
        else modules.set(fingerprint, t.module as ModuleOf<K>);
      }
      const reprobe = AGENT_KINDS[type].reprobe as Reprobe<K> | undefined;
      const job: AgentJob = {
        key: `${type}/${t.targetRegion}/${address}`,
        // A changed module restarts the target's job with it.
        fingerprint,
        errorCost: reprobe?.cost(t),
        run: (ctx) =>
          limits[type](async (): Promise<RoundReport | undefined> => {
            const r = await prober.probe(t, abort.signal);
            // A round cut short by shutdown measured nothing: it is not reported (no false loss).
            if (abort.signal.aborted) return undefined;
            if (debug) log.debug({ type, target: address, region: t.targetRegion, errorState: ctx.errorState }, "round done");
            // The schedule the round ran on is part of the result: set before it enters the batch.
            reprobe?.mark(r, ctx.sinceLastMs / o.probeIntervalMs, ctx.errorState);
            // Read `batch` only after the await: push() swaps in a new one every push period.
            (batch[type] as ResultOf<K>[]).push(r);
            const detail = reprobe?.failure(r);
            job.onFlows?.(r, detail !== undefined);
            if (!detail) return CLEAN_ROUND;
            // The path when the loss is happening: on entering error state, and again every
            // -agent.trace.interval while rounds keep failing (Tracing rate-limits per target).
            job.onFailedRound?.();
            return { error: true, detail };
          }),
      };
      if (type === "icmp" && tracing) job.onFailedRound = () => tracing.request(job.key, t as IcmpTarget);
      // The flow kinds: a lossy flow (or, in error state, the worst flow) is traced by its 5-tuple.
      if ((type === "udp" || type === "tcp") && tracing) {
        job.onFlows = (r, failed) => {
          for (const req of flowTraceRequests(type, r as ResultOf<"udp" | "tcp">, failed)) tracing.requestFlow(`${job.key}/${req.sourcePort}`, req);
        };
      }
      jobs.push(job);
    }
    return jobs;
  };

  let syncing = false;
  /**
   * GetTargetPoolResponse.pool_version of the last full, non-partial answer (0: none, or a server
   * before 0.8): sent as known_pool_version, so refreshing an unchanged pool costs a short answer.
   * A partial pool is not kept as known: the full one after the server's warm-up must come.
   */
  let heldPoolVersion = 0n;
  const sync = async () => {
    if (syncing) return;
    syncing = true;
    try {
      const pool = await client.getTargetPool({ agent: me, knownPoolVersion: heldPoolVersion });
      if (pool.unchanged) return;
      heldPoolVersion = pool.partial ? 0n : pool.poolVersion;
      // A partial pool (a server in its warm-up) only adds: targets we probe stay.
      const { started, stopped } = scheduler.sync(PROBER_TYPES.flatMap((t) => kindJobs(t, pool)), pool.partial);
      if (started || stopped) log.info({ ...Object.fromEntries(PROBER_TYPES.map((t) => [t, pool[t].length])), partial: pool.partial, started, stopped }, "target pool updated");
    } catch (e) {
      log.warn({ err: (e as Error).message, targets: scheduler.size }, "target sync failed; keeping the last pool");
    } finally {
      syncing = false;
    }
  };

  /** Heartbeats; a new server instance (a restart) gets our pool requested again at once. @returns success */
  const heartbeat = async (): Promise<boolean> => {
    try {
      const { changed, poolChanged } = registered(await client.heartbeat({ agent: me }));
      if (changed) log.info({ instanceId }, "server restarted; registered again");
      if (changed || poolChanged) void sync();
      return true;
    } catch (e) {
      log.warn({ err: (e as Error).message }, "heartbeat failed");
      return false;
    }
  };

  let pushing: Promise<void> | undefined;
  let lastPushFailed = false;
  let lastDropLogMs = 0;
  /** Queues the current batch and sends the queue, one push at a time. @param timeoutMs per-call deadline (shutdown) */
  const push = (timeoutMs?: number): Promise<void> => {
    const reqs = splitBatch(me, batch, PUSH_SPLIT_BYTES);
    // The period's health rides on its first request, set when queued (as dropped_points): a
    // resend carries the same. A period without results queues nothing; its health waits for the next.
    if (reqs[0]) reqs[0].health = health.take();
    for (const req of reqs) outbox.add(req);
    batch = emptyBatch();
    logDrops();
    if (pushing || outbox.size === 0) return pushing ?? Promise.resolve();
    pushing = sendQueued(timeoutMs).finally(() => (pushing = undefined));
    return pushing;
  };
  /** A full outbox drops its oldest batches: said at most once a minute (the server counts them too). */
  const logDrops = () => {
    if (Date.now() - lastDropLogMs < DROP_LOG_MS) return;
    const d = outbox.takeDropsToLog();
    if (!d) return;
    lastDropLogMs = Date.now();
    log.error({ droppedBatches: d.batches, droppedResults: d.points, queuedBytes: outbox.bytes, maxBytes: o.outboxMaxBytes }, "outbox full (-agent.outbox.max.bytes): oldest unsent results dropped; the server counts them in prober_agent_dropped_points_total");
  };
  const sendQueued = async (timeoutMs?: number) => {
    const opts = timeoutMs === undefined ? undefined : { timeoutMs };
    try {
      // After a failure the server may have restarted without knowing us: register first.
      if (lastPushFailed && !(await heartbeat())) throw new Error("server unreachable");
      const backlog = outbox.size;
      await outbox.flush(async (b) => {
        b.sentTime = timestampNow(); // per attempt: the server derives our clock offset from it
        try {
          const r = await client.pushResults(b, opts);
          if (r.rejected) log.warn({ accepted: r.accepted, rejected: r.rejected, reasons: r.rejectReasons }, "server rejected results");
          if (r.duplicate) log.info({ sequence: String(b.batchSequence) }, "server had this batch already (an earlier answer was lost); not counted twice");
          if (r.instanceId && seenInstances.size > 0 && !seenInstances.has(r.instanceId)) void heartbeat();
        } catch (e) {
          const err = ConnectError.from(e);
          if (!BATCH_FATAL.has(err.code)) throw err;
          // The server will never take this batch: drop it, so the queue behind it moves on, and
          // report its results (and the drops it carried) as lost with the next batch.
          outbox.reportLost(pointsOf(b) + Number(b.droppedPoints));
          log.error({ code: Code[err.code], err: err.rawMessage, ...Object.fromEntries(PROBER_TYPES.map((t) => [t, b[t].length])) }, "server refused a batch for good; dropped it (counted in prober_agent_dropped_points_total with the next batch)");
        }
      });
      if (lastPushFailed) log.info({ batches: backlog }, "push recovered; queued batches delivered");
      lastPushFailed = false;
    } catch (e) {
      lastPushFailed = true;
      const fields = { err: (e as Error).message, queuedBatches: outbox.size, queuedBytes: outbox.bytes, droppedBatches: outbox.droppedBatches };
      if (NEEDS_OPERATOR.has(ConnectError.from(e).code)) log.error(fields, "push refused: check the token (-agent.token.file or PROBER_TOKEN) and the regions it may act for; results kept, probing goes on");
      else log.warn(fields, "push failed; results kept for the next attempt");
    }
  };

  await sync();
  loopback.start();
  const timers = [setInterval(heartbeat, heartbeatMs), setInterval(sync, o.syncIntervalMs), setInterval(() => void push(), pushMs)];
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    abort.abort();
    for (const t of timers) clearInterval(t);
    scheduler.stop();
    loopback.stop();
    tracing?.close();
  };
  const closeProbers = () => {
    for (const t of PROBER_TYPES) probers[t].close();
  };
  return {
    stop() {
      stop();
      closeProbers();
    },
    async shutdown(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const left = () => Math.max(1, deadline - Date.now());
      stop();
      const within = <T>(p: Promise<T>) => Promise.race([p, Bun.sleep(left()).then(() => undefined)]);
      try {
        // A push in flight finishes first; then what the last rounds produced goes too.
        await within(pushing ?? Promise.resolve());
        await within(push(left()));
        const res = await within(client.deregister({ agent: me }, { timeoutMs: left() }).then(() => true, (e) => {
          // A server before 0.4 has no Deregister: the agent is forgotten the old way.
          if (ConnectError.from(e).code !== Code.Unimplemented) log.warn({ err: (e as Error).message }, "goodbye (Deregister) failed; the server keeps this agent as a silent target until -server.agent.forget.after");
          return false;
        }));
        if (res) log.info({ region: o.region, ip: o.ip }, "deregistered");
      } catch (e) {
        log.warn({ err: (e as Error).message }, "shutdown incomplete");
      }
      closeProbers();
      const unsent = outbox.queuedPoints;
      if (unsent > 0) log.warn({ unsentResults: unsent, queuedBatches: outbox.size }, "results left unsent at shutdown (the server did not take them in time)");
      return unsent;
    },
  };
}

/**
 * The server's Connect-RPC implementation of probermesh.v1.ProberMeshService (docs/protocol.md).
 * Pushed results are handled per kind through the registries (lib/probes/kinds.ts,
 * lib/server/kinds.ts): check, assignment, then the aggregation windows.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { isIP } from "node:net";
import type { AggregationWindows } from "../aggregation/window.ts";
import type { Logger } from "../log.ts";
import type { Steps } from "../steps.ts";
import type { RejectReason, ServerMetrics } from "../metrics/server.ts";
import { PROBER_TYPES, type ProbeKind, type ProberType, type ResultOf, type ServerKind } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { roundEndMs } from "../probes/result_common.ts";
import { splitHostPortTarget } from "../probes/host_port.ts";
import { checkPathTrace } from "../probes/icmp/path_check.ts";
import { heartbeatIntervalMs } from "../rpc/heartbeat.ts";
import { isLoopbackHost } from "../rpc/listen.ts";
import { DeregisterResponseSchema, GetTargetPoolResponseSchema, HeartbeatResponseSchema, PushResultsResponseSchema, type Agent, type PathTrace, type ProberMeshService, type PushResultsResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { VERSION } from "../version.ts";
import { kPeer, kToken } from "./auth/gate.ts";
import { regionAllowed } from "./auth/tokens.ts";
import { checkBatchIdentity, type BatchDedupe } from "./dedupe.ts";
import { checkHealth, type AgentHealthBook } from "./health.ts";
import { SERVER_KINDS } from "./kinds.ts";
import type { Lane, Turns } from "./lane.ts";
import type { MeshKey } from "./mesh_key.ts";
import type { PathStore } from "./paths.ts";
import { peerKey } from "./peers.ts";
import { resultAt, type PushIn } from "./push_raw.ts";
import type { TargetPool } from "./pool.ts";
import type { RefetchPacer } from "./refetch.ts";
import { RegistryFull, type AgentRegistry } from "./registry.ts";

/** What the service needs from the server. */
export interface ServiceDeps {
  registry: AgentRegistry;
  pool: TargetPool;
  /** Which pool_version each heartbeat tells (paced refetches, lib/server/refetch.ts). */
  refetch: RefetchPacer;
  windows: AggregationWindows<ProberType>;
  /** Where pushes are filed, in slices between RPCs (lib/server/lane.ts). */
  lane: Lane;
  /** Turns of whole pool answers, a budget of them per visit of the event loop (lib/server/lane.ts). */
  poolTurns: Turns;
  /** Results of pushes queued in the lane at most (-server.push.queue.max.results). */
  pushQueueMaxResults: number;
  /** Latest path traces per (source region, target). */
  paths: PathStore;
  /** Batch identities of accepted pushes (exactly-once). */
  dedupe: BatchDedupe;
  /** The agents' AgentHealth per agent, for the localiser (lib/server/health.ts). */
  health: AgentHealthBook;
  metrics: ServerMetrics;
  aggregationIntervalMs: number;
  /** An agent silent this long is dead (ratio x aggregation interval), milliseconds. */
  deadAfterMs: number;
  /** HeartbeatResponse.mesh_key (lib/server/mesh_key.ts); absent: none sent. */
  meshKey?: MeshKey;
  /** HeartbeatResponse.instance_id of this process. */
  instanceId: string;
  /** When this process started, unix ms: the warm-up lasts deadAfterMs from here. */
  startedMs: number;
  /** True when agents authenticate with tokens (-server.rpc.token.file). */
  authenticated: () => boolean;
  log: Logger;
  now?: () => number;
}

/**
 * dropped_points one push may report at most: an agent at its design limit probes 10,000 targets
 * per interval, so a day of outage is under 10^8; a larger number is hostile or broken and capped.
 */
const MAX_DROPPED_PER_PUSH = 1_000_000_000n;

/** Reject reasons sent back to the agent at most per push (the counts are complete). */
const MAX_REASONS = 5;

/** Checks an Agent message. @returns "" or why it is unusable */
export function checkAgent(a: Agent | undefined): string {
  if (!a) return "agent is missing";
  if (!a.region || a.region.length > 256) return "agent.region must be 1..256 characters";
  if (a.ip && isIP(a.ip) === 0) return `agent.ip "${a.ip.slice(0, 64)}" is not an IP address`;
  if (a.version.length > 64 || a.hostname.length > 256) return "agent.version or agent.hostname too long";
  if (a.udpPort > 65535 || a.tcpPort > 65535) return "agent.udp_port and agent.tcp_port must be 0..65535";
  return "";
}

/** What a path trace traced (PathTrace.kind, "" from agents before 0.6 = icmp), or undefined for an unknown kind. */
export function traceKind(kind: string): "icmp" | "udp" | "tcp" | undefined {
  return kind === "" || kind === "icmp" ? "icmp" : kind === "udp" || kind === "tcp" ? kind : undefined;
}

/** A flow trace names its flow: ports 1..65535, the destination the target's; an icmp trace has none. @returns "" or why not */
function checkTracePorts(type: "icmp" | "udp" | "tcp", t: PathTrace): string {
  if (type === "icmp") return t.sourcePort === 0 && t.destinationPort === 0 ? "" : "an icmp trace has no ports";
  if (t.sourcePort < 1 || t.sourcePort > 65535) return "source_port out of range 1..65535";
  return splitHostPortTarget(t.address)?.port === t.destinationPort ? "" : "destination_port is not the target's port";
}

/** Builds the service implementation. Invalid requests get INVALID_ARGUMENT; nothing throws past it. */
export function proberMeshService(d: ServiceDeps): ServiceImpl<typeof ProberMeshService> {
  const now = d.now ?? (() => Date.now());
  /** A usable agent message whose region the request's token may act for. */
  const requireAgent = (a: Agent | undefined, ctx: HandlerContext) => {
    const why = checkAgent(a);
    if (why) throw new ConnectError(why, Code.InvalidArgument);
    const token = ctx.values.get(kToken);
    if (token && !regionAllowed(token, a!.region)) {
      d.metrics.authFailed("region");
      throw new ConnectError(`this token may not act for region "${a!.region.slice(0, 256)}"`, Code.PermissionDenied);
    }
    return a!;
  };

  /**
   * Restart without loss: for deadAfterMs after a start, the registry may not yet know agents that
   * were live before it (they heartbeat within that time). A push naming such a target (in a
   * result or a path trace) is not rejected but deferred whole (`unavailable`): the agent keeps it
   * and sends it again.
   */
  const inWarmUp = () => now() - d.startedMs < d.deadAfterMs;
  const unverifiableInWarmUp = (a: Agent, req: PushIn): number => {
    if (!inWarmUp()) return 0;
    let n = 0;
    for (const type of PROBER_TYPES) {
      if (!d.pool.mayNameAnAgent(type)) continue;
      const kind = PROBE_KINDS[type] as ProbeKind<typeof type>;
      const list = req[type] as (ResultOf<typeof type> | Uint8Array)[];
      for (let i = 0; i < list.length; i++) {
        const r = resultAt(type, list, i);
        if (r && !d.pool.isAssigned(a.region, type, r.targetRegion, kind.addressOf(r))) n++;
      }
    }
    // Path traces are of mesh targets, which may be agents not registered again yet.
    for (const t of req.traces) {
      const type = traceKind(t.kind);
      if (type && d.pool.mayNameAnAgent(type) && !d.pool.isAssigned(a.region, type, t.targetRegion, t.address)) n++;
    }
    return n;
  };

  /** Checks, assigns and files one kind's results of a push (decoding each, push_raw.ts); a step per result. */
  const acceptKind = function* <K extends ProberType>(type: K, results: (ResultOf<K> | Uint8Array)[], a: Agent, offsetMs: number, res: PushResultsResponse): Steps {
    const kind = PROBE_KINDS[type] as ProbeKind<K>;
    const server = SERVER_KINDS[type] as ServerKind<K>;
    const reject = (reason: RejectReason, detail: string) => {
      res.rejected++;
      d.metrics.rejected(type, reason);
      if (res.rejectReasons.length < MAX_REASONS) res.rejectReasons.push(detail);
    };
    for (let i = 0; i < results.length; i++) {
      const r = resultAt(type, results, i);
      if (!r) {
        reject("invalid", `${type} result ${i}: not a valid ${type} result message`);
        yield;
        continue;
      }
      const address = kind.addressOf(r);
      const bad = server.check(r);
      if (bad) reject("invalid", `${type} ${address.slice(0, 256)}: ${bad}`);
      else if (!d.pool.isAssigned(a.region, type, r.targetRegion, address)) {
        // Rounds in flight when their target said goodbye: dropped quietly, never loss.
        if (d.pool.leftRecently(type, r.targetRegion, address)) d.metrics.rejected(type, "target_left");
        else reject("not_assigned", `${type} ${r.targetRegion.slice(0, 256)}/${address.slice(0, 256)}: not assigned to region ${a.region}`);
      }
      else {
        const inWindow = d.windows.add(type, { sourceRegion: a.region, agentIp: a.ip, result: r }, roundEndMs(r) + offsetMs);
        d.metrics.accepted(type, !inWindow);
        res.accepted++;
      }
      yield;
    }
  };

  /** Checks and keeps the path traces of a push (a trace is of a target of its kind assigned to the agent). */
  const acceptTraces = (req: PushIn, a: Agent, res: PushResultsResponse) => {
    for (const t of req.traces) {
      const type = traceKind(t.kind);
      const bad = type ? checkPathTrace(t) || checkTracePorts(type, t) : `unknown trace kind "${t.kind.slice(0, 16)}"`;
      const reason = bad ? "invalid" : !d.pool.isAssigned(a.region, type!, t.targetRegion, t.address) ? "not_assigned" : "";
      if (reason) {
        d.metrics.traceRejected(reason);
        res.rejected++;
        if (res.rejectReasons.length < MAX_REASONS) res.rejectReasons.push(`trace ${t.address.slice(0, 256)}: ${bad || `not assigned to region ${a.region}`}`);
        continue;
      }
      d.metrics.traceAccepted();
      res.accepted++;
      d.paths.add({ sourceRegion: a.region, agentIp: a.ip, trace: t });
    }
  };

  /**
   * Keeps the AgentHealth of an accepted push (after dedupe: a resent batch's health counts once).
   * An unusable one is ignored and counted; the push's results stand.
   */
  const acceptHealth = (req: PushIn, a: Agent) => {
    const h = req.health;
    if (!h) return; // agents before 0.7: health unknown
    const bad = checkHealth(h);
    if (bad) {
      d.metrics.healthRejected();
      d.log.warn({ region: a.region, ip: a.ip, why: bad }, "ignored the agent's health (AgentHealth) of a push");
      return;
    }
    if (d.health.add(a.region, a.ip, h)) d.metrics.agentHealth(a.region, a.ip, h);
  };

  /** Files a claimed batch: every kind's results (a step per result), its traces, its health and its dropped points. */
  const fileBatch = function* (req: PushIn, a: Agent, offsetMs: number, res: PushResultsResponse): Steps {
    for (const type of PROBER_TYPES) yield* acceptKind(type, req[type] as (ResultOf<typeof type> | Uint8Array)[], a, offsetMs, res);
    acceptTraces(req, a, res);
    acceptHealth(req, a);
    if (req.droppedPoints > 0n) {
      const n = Number(req.droppedPoints > MAX_DROPPED_PER_PUSH ? MAX_DROPPED_PER_PUSH : req.droppedPoints);
      d.metrics.agentDropped(a.region, n);
      d.log.warn({ region: a.region, ip: a.ip, droppedPoints: n }, "agent dropped results unsent: its outbox was full during an outage (-agent.outbox.max.bytes)");
    }
  };

  return {
    heartbeat(req, ctx) {
      const a = requireAgent(req.agent, ctx);
      if (!a.ip) throw new ConnectError("agent.ip is required", Code.InvalidArgument);
      try {
        d.registry.heartbeat(a);
      } catch (e) {
        if (!(e instanceof RegistryFull)) throw e;
        d.metrics.registryRefused(e.reason);
        throw new ConnectError(e.message, Code.ResourceExhausted);
      }
      const current = d.pool.versionFor(a.region, a.ip);
      const poolVersion = d.refetch.version(peerKey(a.region, a.ip), current);
      if (poolVersion !== current) d.metrics.refetchDeferred();
      return create(HeartbeatResponseSchema, {
        serverVersion: VERSION,
        aggregationInterval: durationFromMs(d.aggregationIntervalMs),
        heartbeatInterval: durationFromMs(heartbeatIntervalMs(d.deadAfterMs)),
        instanceId: d.instanceId,
        poolVersion,
        // Reaches only agents past the RPC token gate (every RPC is behind it).
        meshKey: d.meshKey?.current,
      });
    },
    async getTargetPool(req, ctx) {
      const a = requireAgent(req.agent, ctx);
      // Secrets (bearer tokens, passwords) go only to authenticated agents, or to this machine's.
      const withSecrets = d.authenticated() || isLoopbackHost(ctx.values.get(kPeer));
      // Binary answers (agents) carry targets encoded once and kept; JSON ones are built as messages.
      const json = (ctx.requestHeader.get("content-type") ?? "").includes("json");
      // Warm-up: agents may be missing from the pool until they heartbeat again (protocol.md).
      const partialNow = () => inWarmUp() && PROBER_TYPES.some((t) => d.pool.mayNameAnAgent(t));
      const poolVersion = d.pool.versionFor(a.region, a.ip);
      // The agent holds this very pool (its periodic refresh): a short answer.
      if (req.knownPoolVersion !== 0n && req.knownPoolVersion === poolVersion) {
        d.metrics.poolAnswered("unchanged");
        return create(GetTargetPoolResponseSchema, { unchanged: true, poolVersion, partial: partialNow() });
      }
      // A whole pool is milliseconds of work: answers take turns, with the event loop (heartbeats)
      // between turns. The version is read again at the turn: the pool may have changed meanwhile.
      const pool = await d.poolTurns.run(() => {
        const p = (json ? d.pool.poolFor : d.pool.poolWireFor).call(d.pool, a.region, a.ip, withSecrets ? undefined : "");
        p.partial = partialNow();
        p.poolVersion = d.pool.versionFor(a.region, a.ip);
        return p;
      });
      d.metrics.poolAnswered("full");
      return pool;
    },
    async pushResults(req, ctx) {
      const a = requireAgent(req.agent, ctx);
      const badIdentity = checkBatchIdentity(req.agentInstanceId, req.batchSequence);
      if (badIdentity) throw new ConnectError(badIdentity, Code.InvalidArgument);
      // Only a registered agent pushes: a made-up region never reaches a series.
      if (!d.registry.isLive(a.region, a.ip)) throw new ConnectError(`agent ${a.region.slice(0, 256)}/${a.ip.slice(0, 64)} is not registered: heartbeat first`, Code.FailedPrecondition);
      const waiting = unverifiableInWarmUp(a, req);
      if (waiting) {
        d.metrics.deferred("warm_up");
        throw new ConnectError(`server started ${Math.round((now() - d.startedMs) / 1000)} s ago: ${waiting} results name agents that have not registered again yet; send this batch again later`, Code.Unavailable);
      }
      const points = PROBER_TYPES.reduce((n, t) => n + req[t].length, 0) + req.traces.length;
      // Checked before the batch is claimed: a refused batch is sent again and must not read as a duplicate then.
      if (d.lane.backlog > 0 && d.lane.backlog + points > d.pushQueueMaxResults) {
        d.metrics.deferred("busy");
        throw new ConnectError(`server busy: ${d.lane.backlog} results of earlier pushes are waiting to be filed (-server.push.queue.max.results ${d.pushQueueMaxResults}); send this batch again later`, Code.Unavailable);
      }
      const res = create(PushResultsResponseSchema, { instanceId: d.instanceId });
      // The agent's clock offset (server − agent), from when it sent this request; agents before 0.2 send none.
      const sent = req.sentTime ? timestampMs(req.sentTime) : NaN;
      const offsetMs = Number.isFinite(sent) ? now() - sent : 0;
      // Filed in the lane, in slices: heartbeats and pool fetches are answered meanwhile. The
      // batch is claimed when its turn comes, right before filing: a server killed while the
      // batch waits has not claimed it, so the agent's resend counts (here or at another server).
      await d.lane.runAfter(async () => {
        // Last check before counting: a batch accepted before (its answer lost) counts once.
        if (await d.dedupe.claim(req.agentInstanceId, req.batchSequence)) return fileBatch(req, a, offsetMs, res);
        res.duplicate = true;
        return undefined;
      }, points);
      if (res.duplicate) {
        for (const type of PROBER_TYPES) if (req[type].length) d.metrics.rejected(type, "duplicate", req[type].length);
        if (req.traces.length) d.metrics.traceRejected("duplicate", req.traces.length);
        d.log.info({ region: a.region, ip: a.ip, instance: req.agentInstanceId, sequence: String(req.batchSequence) }, "push of a batch accepted before (its answer was lost); not counted again");
        return res;
      }
      if (res.rejected) d.log.warn({ region: a.region, ip: a.ip, rejected: res.rejected, reasons: res.rejectReasons }, "rejected pushed results");
      return res;
    },
    deregister(req, ctx) {
      const a = requireAgent(req.agent, ctx);
      const e = d.registry.goodbye(a.region, a.ip);
      if (e) {
        d.metrics.goodbye();
        d.log.info({ region: a.region, ip: a.ip }, "agent said goodbye; it left the pools");
      }
      return create(DeregisterResponseSchema, {});
    },
  };
}

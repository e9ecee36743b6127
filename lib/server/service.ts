/**
 * The server's Connect-RPC implementation of probermesh.v1.ProberMeshService.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { AggregationWindow } from "../aggregation/window.ts";
import type { ServerMetrics } from "../metrics/metrics.ts";
import { HeartbeatResponseSchema, PushResultsResponseSchema, type ProberMeshService } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { checkAgent, checkHttpResult, checkIcmpResult } from "../rpc/validate.ts";
import type { TargetPool } from "../targets/pool.ts";
import type { Logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { heartbeatIntervalMs } from "../rpc/heartbeat.ts";
import type { AgentRegistry } from "./registry.ts";

/** What the service needs from the server. */
export interface ServiceDeps {
  registry: AgentRegistry;
  pool: TargetPool;
  window: AggregationWindow;
  metrics: ServerMetrics;
  aggregationIntervalMs: number;
  /** An agent silent this long is dead (ratio x aggregation interval), milliseconds. */
  deadAfterMs: number;
  log: Logger;
}

/** Builds the service implementation. Invalid requests get INVALID_ARGUMENT; nothing throws past it. */
export function proberMeshService(d: ServiceDeps): ServiceImpl<typeof ProberMeshService> {
  const requireAgent = (a: Parameters<typeof checkAgent>[0]) => {
    const why = checkAgent(a);
    if (why) throw new ConnectError(why, Code.InvalidArgument);
    return a!;
  };
  return {
    heartbeat(req) {
      const a = requireAgent(req.agent);
      if (!a.ip) throw new ConnectError("agent.ip is required", Code.InvalidArgument);
      d.registry.heartbeat(a);
      return create(HeartbeatResponseSchema, {
        serverVersion: VERSION,
        aggregationInterval: durationFromMs(d.aggregationIntervalMs),
        heartbeatInterval: durationFromMs(heartbeatIntervalMs(d.deadAfterMs)),
      });
    },
    getTargetPool(req) {
      const a = requireAgent(req.agent);
      return d.pool.poolFor(a.region, a.ip);
    },
    pushResults(req) {
      const a = requireAgent(req.agent);
      const res = create(PushResultsResponseSchema, {});
      const reject = (type: string, reason: string, detail: string) => {
        res.rejected++;
        d.metrics.rejectPoints.inc({ prober_type: type, reason });
        if (res.rejectReasons.length < 5) res.rejectReasons.push(detail);
      };
      /** Accepts each result that passes `check` and targets what was assigned to the agent's region. */
      const accept = <R>(type: "icmp" | "http", results: R[], check: (r: R) => string, target: (r: R) => [string, string], add: (r: R) => void) => {
        for (const r of results) {
          const [targetRegion, addr] = target(r);
          const bad = check(r);
          if (bad) reject(type, "invalid", `${type} ${addr}: ${bad}`);
          else if (!d.pool.isAssigned(a.region, type, targetRegion, addr)) reject(type, "not_assigned", `${type} ${targetRegion}/${addr}: not assigned to region ${a.region}`);
          else {
            add(r);
            res.accepted++;
            d.metrics.receivePoints.inc({ prober_type: type });
          }
        }
      };
      accept("icmp", req.icmp, checkIcmpResult, (r) => [r.targetRegion, r.address], (r) => d.window.addIcmp({ sourceRegion: a.region, agentIp: a.ip, result: r }));
      accept("http", req.http, checkHttpResult, (r) => [r.targetRegion, r.url], (r) => d.window.addHttp({ sourceRegion: a.region, agentIp: a.ip, result: r }));
      if (res.rejected) d.log.warn({ region: a.region, ip: a.ip, rejected: res.rejected, reasons: res.rejectReasons }, "rejected pushed results");
      return res;
    },
  };
}

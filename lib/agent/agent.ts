/**
 * Agent wiring: register (heartbeat, retried with back-off until the first one succeeds), sync the
 * target pool every sync interval, schedule one round per target per probe interval, and push the
 * interval's results once per interval, keeping unsent batches while the server is down.
 */
import { hostname, networkInterfaces } from "node:os";
import { create, toJsonString } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pLimit from "p-limit";
import pRetry from "p-retry";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { HEARTBEAT_INTERVAL_MS } from "../rpc/heartbeat.ts";
import type { Logger } from "../log.ts";
import { HttpPhaseProber } from "../probes/http/prober.ts";
import { IcmpEchoProber } from "../probes/icmp/prober.ts";
import {
  AgentSchema, HttpModuleSchema, IcmpModuleSchema, ProberMeshService, PushResultsRequestSchema,
  type Agent, type GetTargetPoolResponse, type HttpResult, type IcmpResult,
} from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { VERSION } from "../version.ts";
import { Outbox } from "./outbox.ts";
import { Scheduler, type Job } from "./scheduler.ts";

/** HTTP probes running at once per agent. */
export const HTTP_CONCURRENCY = 64;

/** Agent settings (the agent flags of SPEC.md); durations in milliseconds. */
export interface AgentOptions {
  region: string;
  serverAddr: string;
  ip: string;
  probeIntervalMs: number;
  syncIntervalMs: number;
  log: Logger;
}

/** A running agent. */
export interface RunningAgent {
  stop(): void;
}

/** First non-loopback IPv4 address of this host (SPEC.md default of -agent.ip), or "". */
export function defaultAgentIp(): string {
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return "";
}

/** "host:port" or a URL to the server's base URL. */
export function serverBaseUrl(addr: string): string {
  return /^https?:\/\//.test(addr) ? addr.replace(/\/+$/, "") : `http://${addr}`;
}

/** Starts an agent; resolves once the first heartbeat succeeded. */
export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const log = o.log;
  const client: Client<typeof ProberMeshService> = createClient(ProberMeshService, createConnectTransport({ baseUrl: serverBaseUrl(o.serverAddr), httpVersion: "1.1", useBinaryFormat: true }));
  const me: Agent = create(AgentSchema, { region: o.region, ip: o.ip, version: VERSION, hostname: hostname() });
  const icmp = new IcmpEchoProber();
  const http = new HttpPhaseProber();
  const httpLimit = pLimit(HTTP_CONCURRENCY);
  const abort = new AbortController();
  const v4 = icmp.engine.describe(false);
  const icmpError = "error" in v4 ? v4.error : "";
  if ("error" in v4) log.error({ reason: v4.error }, "ICMP probes disabled; HTTP probes continue");
  else log.info({ socket: v4.kind, identifier: v4.identifier, rcvbufBytes: v4.rcvbufBytes }, `ICMP through ${v4.kind === "ping" ? "an unprivileged ping socket (SOCK_DGRAM)" : "a raw socket (SOCK_RAW)"}`);

  const first = await pRetry(() => client.heartbeat({ agent: me }), {
    retries: Infinity, minTimeout: 500, maxTimeout: 30_000, signal: abort.signal,
    onFailedAttempt: ({ error, attemptNumber }) => log.warn({ attempt: attemptNumber, err: error.message }, "register failed; retrying"),
  });
  const heartbeatMs = first.heartbeatInterval ? durationMs(first.heartbeatInterval) : HEARTBEAT_INTERVAL_MS;
  log.info({ region: o.region, ip: o.ip, server: o.serverAddr, serverVersion: first.serverVersion, heartbeatMs }, "registered");

  let icmpBatch: IcmpResult[] = [];
  let httpBatch: HttpResult[] = [];
  const outbox = new Outbox();
  const scheduler = new Scheduler(o.probeIntervalMs, (key, e) => log.error({ target: key, err: String(e) }, "probe crashed"));

  const jobsFor = (pool: GetTargetPoolResponse): Job[] => {
    const jobs: Job[] = [];
    if (!icmpError) {
      for (const t of pool.icmp) {
        if (t.address === o.ip) continue;
        jobs.push({ key: `icmp/${t.targetRegion}/${t.address}`, fingerprint: t.module ? toJsonString(IcmpModuleSchema, t.module) : "", run: async () => {
            const r = await icmp.probe(t);
            log.debug({ target: t.address, region: t.targetRegion, sent: r.sent, received: r.received, err: r.error || undefined }, "icmp round");
            icmpBatch.push(r);
          },
        });
      }
    }
    for (const t of pool.http) {
      jobs.push({ key: `http/${t.targetRegion}/${t.url}`, fingerprint: t.module ? toJsonString(HttpModuleSchema, t.module) : "", run: () =>
          httpLimit(async () => {
            // Read httpBatch only after the await: push() swaps in a new array every interval.
            const r = await http.probe(t, abort.signal);
            log.debug({ target: t.url, region: t.targetRegion, success: r.success, reason: r.failedReason || undefined }, "http probe");
            httpBatch.push(r);
          }),
      });
    }
    return jobs;
  };

  let syncing = false;
  const sync = async () => {
    if (syncing) return;
    syncing = true;
    try {
      const pool = await client.getTargetPool({ agent: me });
      const { started, stopped } = scheduler.sync(jobsFor(pool));
      if (started || stopped) log.info({ icmp: pool.icmp.length, http: pool.http.length, started, stopped }, "target pool updated");
    } catch (e) {
      log.warn({ err: (e as Error).message, targets: scheduler.size }, "target sync failed; keeping the last pool");
    } finally {
      syncing = false;
    }
  };

  let pushing = false;
  const push = async () => {
    outbox.add(create(PushResultsRequestSchema, { agent: me, icmp: icmpBatch, http: httpBatch }));
    icmpBatch = [];
    httpBatch = [];
    if (pushing) return;
    pushing = true;
    try {
      await outbox.flush(async (b) => {
        const r = await client.pushResults(b);
        if (r.rejected) log.warn({ accepted: r.accepted, rejected: r.rejected, reasons: r.rejectReasons }, "server rejected results");
      });
    } catch (e) {
      log.warn({ err: (e as Error).message, queuedBatches: outbox.size, droppedBatches: outbox.dropped }, "push failed; results kept for the next attempt");
    } finally {
      pushing = false;
    }
  };

  const heartbeat = async () => {
    try {
      await client.heartbeat({ agent: me });
    } catch (e) {
      log.warn({ err: (e as Error).message }, "heartbeat failed");
    }
  };

  await sync();
  const timers = [setInterval(heartbeat, heartbeatMs), setInterval(sync, o.syncIntervalMs), setInterval(push, o.probeIntervalMs)];
  return {
    stop() {
      abort.abort();
      for (const t of timers) clearInterval(t);
      scheduler.stop();
      icmp.close();
    },
  };
}

/**
 * A fleet of simulated agents for bench/mesh.ts, behaving towards the server as the real agent
 * does (lib/agent/agent.ts): each heartbeats every heartbeat_interval the server answers, fetches
 * GetTargetPool when a heartbeat's pool_version differs from the one it last fetched, and (if
 * told to push) sends one PushResults per aggregation interval, at its own offset in the interval,
 * with one ICMP result per ICMP target of its pool and a batch identity (instance, sequence).
 * They send no packet anywhere: their IPs are strings in 127.100.0.0/14 (bench/sim.ts).
 *
 * The RPCs are Connect unary calls with binary protobuf over HTTP/1.1 (fetch), the protocol the
 * agent's client speaks. Two shortcuts keep the simulator cheap, neither visible to the server:
 * pools are read for their ICMP addresses only (readPool), and a push batch is encoded once per
 * pool, its results stamped 1 s before its sent_time: the server shifts result times by the
 * agent's clock offset (now − sent_time), so a batch sent again later lands in the current window
 * (protocol.md, "sent_time"). Only the small head (agent, batch identity) is encoded per push.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import {
  GetTargetPoolRequestSchema, HeartbeatRequestSchema, HeartbeatResponseSchema, PushResultsRequestSchema, PushResultsResponseSchema, type Agent,
} from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { poolBatch, readPool, type SimPool } from "./sim.ts";

const SERVICE = "probermesh.v1.ProberMeshService";

/** Connection errors met and retried (a kept-alive connection the server closed as it was reused), by unary(). */
export const retried = { count: 0 };

/**
 * One Connect unary call (binary protobuf over HTTP/1.1), tried again once when the connection
 * fails before an answer (the server closes a kept-alive connection idle for 30 s, and fetch may
 * reuse it at that moment; pushes are safe to resend, they carry a batch identity).
 * @returns the answer's bytes; throws on a non-200 answer
 */
export async function unary(baseUrl: string, method: string, body: Uint8Array): Promise<Uint8Array> {
  const call = () => fetch(`${baseUrl}/${SERVICE}/${method}`, { method: "POST", headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, body });
  const res = await call().catch(() => (retried.count++, call()));
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${new TextDecoder().decode(bytes).slice(0, 160)}`);
  return bytes;
}

/** One simulated agent's state. */
export interface SimAgent {
  i: number;
  agent: Agent;
  /** Index of the server it talks to (in Fleet's baseUrls). */
  server: number;
  /** Heartbeats sent. */
  beats: number;
  /** pool_version of its last heartbeat answer; 0n before the first. */
  hbVersion: bigint;
  /** performance.now() of its last heartbeat answer, ms; -1 before the first. */
  hbAt: number;
  /** pool_version it last fetched a pool for. */
  fetchedVersion: bigint;
  fetching: boolean;
  /** Pool fetches completed, and performance.now() of the last one (ms). */
  fetches: number;
  lastFetchAt: number;
  pool?: SimPool;
  timer?: Timer;
  pushTimer?: Timer;
  batch?: { for: SimPool; bytes: Uint8Array; results: number };
  sequence: bigint;
  readonly instanceId: string;
}

/** A latency sample: when the call started (performance.now(), ms) and how long it took, ms. */
export type Sample = [at: number, ms: number];

/** Simulated agents against one or more servers (agent i talks to server i mod servers). */
export class Fleet {
  readonly agents: SimAgent[];
  readonly heartbeats: Sample[] = [];
  readonly poolFetches: Sample[] = [];
  /** Bytes of every pool answer so far. */
  poolBytes = 0;
  readonly pushes: Sample[] = [];
  /** Results accepted and rejected per push, with the push's start time (ms). */
  readonly pushed: [at: number, accepted: number, rejected: number][] = [];
  /** Errors by RPC and first words of the message (at most 32 distinct keys). */
  readonly errors = new Map<string, number>();
  /** The first pool answer fetched and what readPool made of it. */
  firstPool?: { bytes: Uint8Array; pool: SimPool };
  heartbeatMs = 10_000;
  aggregationMs = 15_000;
  private stopped = false;

  /** @param sim every agent that may join (simAgents()), @param targetOf the region and IP of the agent of an index */
  constructor(private readonly baseUrls: string[], sim: Agent[], private readonly targetOf: (i: number) => { region: string; ip: string }) {
    this.agents = sim.map((agent, i) => ({
      i, agent, server: i % baseUrls.length, beats: 0, hbVersion: 0n, hbAt: -1, fetchedVersion: 0n, fetching: false, fetches: 0, lastFetchAt: -1, sequence: 0n, instanceId: randomUUID(),
    }));
  }

  private error(rpc: string, e: unknown) {
    const key = `${rpc}: ${String((e as Error).message ?? e).slice(0, 80)}`;
    if (this.errors.has(key) || this.errors.size < 32) this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }

  /** Registers agent i after `delayMs`, then heartbeats it at the period the server asks. */
  join(i: number, delayMs = 0): void {
    const s = this.agents[i]!;
    s.timer = setTimeout(() => void this.register(s), delayMs);
  }

  /**
   * Heartbeats until one is answered (the agent retries its registration), then every
   * heartbeat_interval on a fixed grid that does not wait for answers (the agent's setInterval).
   * The fleet registers within seconds where real agents start at different times: each agent's
   * grid is shifted by its own share of an interval, so the steady fleet's heartbeats are spread
   * evenly over the interval (not bunched behind a slow answer at registration).
   */
  private async register(s: SimAgent): Promise<void> {
    if (this.stopped) return;
    if (!(await this.beat(s))) {
      s.timer = setTimeout(() => void this.register(s), 500);
      return;
    }
    const grid = performance.now() + ((s.i * 0.6180339887) % 1) * this.heartbeatMs;
    let k = 1;
    const tick = () => {
      if (this.stopped) return;
      void this.beat(s);
      k++;
      s.timer = setTimeout(tick, Math.max(0, grid + k * this.heartbeatMs - performance.now()));
    };
    s.timer = setTimeout(tick, Math.max(0, grid + this.heartbeatMs - performance.now()));
  }

  /** One heartbeat; a changed pool_version (or no pool yet) starts a pool fetch. @returns whether it was answered */
  private async beat(s: SimAgent): Promise<boolean> {
    const t0 = performance.now();
    s.beats++;
    try {
      const r = fromBinary(HeartbeatResponseSchema, await unary(this.baseUrls[s.server]!, "Heartbeat", toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { agent: s.agent }))));
      this.heartbeats.push([t0, performance.now() - t0]);
      if (r.heartbeatInterval) this.heartbeatMs = durationMs(r.heartbeatInterval);
      if (r.aggregationInterval) this.aggregationMs = durationMs(r.aggregationInterval);
      s.hbVersion = r.poolVersion;
      s.hbAt = performance.now();
      if (!s.pool || s.fetchedVersion !== r.poolVersion) void this.fetchPool(s);
      return true;
    } catch (e) {
      this.error("Heartbeat", e);
      return false;
    }
  }

  private async fetchPool(s: SimAgent): Promise<void> {
    if (s.fetching) return; // the next heartbeat asks again, as the agent's sync does
    s.fetching = true;
    const version = s.hbVersion;
    const t0 = performance.now();
    try {
      const bytes = await unary(this.baseUrls[s.server]!, "GetTargetPool", toBinary(GetTargetPoolRequestSchema, create(GetTargetPoolRequestSchema, { agent: s.agent })));
      this.poolFetches.push([t0, performance.now() - t0]);
      this.poolBytes += bytes.length;
      s.pool = readPool(bytes);
      // Kept for bench/mesh.ts to check readPool against the generated decoder.
      this.firstPool ??= { bytes, pool: s.pool };
      s.fetchedVersion = version;
      s.fetches++;
      s.lastFetchAt = performance.now();
    } catch (e) {
      this.error("GetTargetPool", e);
    } finally {
      s.fetching = false;
    }
  }

  /** Agent s's push batch for its current pool: the results' bytes (fields 2 and 4 of PushResultsRequest), cached per pool. */
  private batchOf(s: SimAgent): { bytes: Uint8Array; results: number } {
    if (s.batch && s.batch.for === s.pool) return s.batch;
    const now = Date.now();
    const icmp = poolBatch(Array.from(s.pool!.icmp, this.targetOf));
    for (const r of icmp) r.time = timestampFromMs(now - 1000);
    const bytes = toBinary(PushResultsRequestSchema, create(PushResultsRequestSchema, { icmp, sentTime: timestampFromMs(now) }));
    s.batch = { for: s.pool!, bytes, results: icmp.length };
    return s.batch;
  }

  private async push(s: SimAgent): Promise<void> {
    if (this.stopped || !s.pool) return;
    const batch = this.batchOf(s);
    s.sequence++;
    const head = toBinary(PushResultsRequestSchema, create(PushResultsRequestSchema, { agent: s.agent, agentInstanceId: s.instanceId, batchSequence: s.sequence }));
    const body = new Uint8Array(head.length + batch.bytes.length);
    body.set(head);
    body.set(batch.bytes, head.length);
    const t0 = performance.now();
    this.inFlight++;
    try {
      const r = fromBinary(PushResultsResponseSchema, await unary(this.baseUrls[s.server]!, "PushResults", body));
      this.pushes.push([t0, performance.now() - t0]);
      this.pushed.push([t0, r.accepted, r.rejected]);
    } catch (e) {
      this.error("PushResults", e);
    } finally {
      this.inFlight--;
    }
  }

  /** Pushes sent and not answered yet. */
  inFlight = 0;

  /** Starts pushing for agents `which`: each once per aggregation interval, at offset i / n of it. */
  startPushes(which: readonly number[]): void {
    const n = this.agents.length;
    for (const i of which) {
      const s = this.agents[i]!;
      const t0 = performance.now() + (i / n) * this.aggregationMs;
      let k = 0;
      const tick = () => {
        if (this.stopped || s.pushTimer === undefined) return;
        void this.push(s);
        k++;
        s.pushTimer = setTimeout(tick, Math.max(0, t0 + k * this.aggregationMs - performance.now()));
      };
      s.pushTimer = setTimeout(tick, Math.max(0, t0 - performance.now()));
    }
  }

  /** Stops every agent's pushes (heartbeats go on). */
  stopPushes(): void {
    for (const s of this.agents) {
      clearTimeout(s.pushTimer);
      s.pushTimer = undefined;
    }
  }

  /** Stops everything. */
  stop(): void {
    this.stopped = true;
    this.stopPushes();
    for (const s of this.agents) clearTimeout(s.timer);
  }

  /**
   * Whether agents `which` have all heartbeated since `sinceMs` (performance.now()) and hold the
   * pool of their last heartbeat's version, with no fetch in flight.
   */
  settled(which: readonly SimAgent[], sinceMs: number): boolean {
    return which.every((s) => s.hbAt >= sinceMs && !s.fetching && s.pool !== undefined && s.fetchedVersion === s.hbVersion);
  }
}

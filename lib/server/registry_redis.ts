/**
 * The shared registry (`-server.registry.url redis://host:port/db`, docs/scale.md): several servers
 * share heartbeats, live agents and so the dynamic pools, so an agent may talk to any of them.
 *
 * - Every heartbeat a server receives is written to one Redis hash (field `region\0ip`, value the
 *   entry as JSON with its lastSeenMs and responder ports: a changed port reaches every server's
 *   pools).
 * - Every server reads the hash every second into its local AgentRegistry (observe(): newer
 *   heartbeats win), so pools and assignment checks see agents of every server.
 * - An agent's goodbye (Deregister) is written as a tombstone (the entry with `leftMs`): every
 *   server removes the agent when it reads it; a later heartbeat of the agent overwrites it.
 * - Entries dead for longer than the registry remembers them (-server.agent.forget.after) are
 *   deleted by whichever server sees them.
 * - Batch identities of accepted pushes (exactly-once across servers, docs/protocol.md): one key
 *   per agent process, `probermesh:batch:<agent_instance_id>`, holding the highest batch_sequence
 *   accepted, raised atomically by a script (claimBatch).
 * - If Redis goes away the server keeps serving from its last view plus the heartbeats it receives
 *   itself, logs it once and sets prober_server_registry_backend_up 0; when Redis is back the
 *   server writes what it saw meanwhile and reads again.
 *
 * Bun's built-in Redis client (Bun.RedisClient) speaks to it.
 */
import { RedisClient } from "bun";
import type { Logger } from "../log.ts";
import { meshKeyFromHex, meshKeyHex, randomMeshKey, type MeshKey } from "./mesh_key.ts";
import type { AgentEntry, AgentRecord, AgentRegistry } from "./registry.ts";

/**
 * The mesh key shared by the servers of one registry (lib/server/mesh_key.ts): the first server
 * to start writes a random one with SET NX; every server reads back the one that won. No expiry.
 */
export const REDIS_MESH_KEY = "probermesh:mesh_key";

/** The hash holding every agent (one per database; several meshes use several databases). */
export const REDIS_AGENTS_KEY = "probermesh:agents";

/** How often each server reads the shared registry, milliseconds. */
export const REDIS_POLL_MS = 1000;

/** Stored per agent; `leftMs` marks a goodbye (a tombstone). */
type Stored = AgentRecord & { leftMs?: number };

/** Prefix of the per-agent-process batch keys (one key per agent_instance_id). */
export const REDIS_BATCH_PREFIX = "probermesh:batch:";

/**
 * How long a batch key lives after the agent's last accepted push, milliseconds: longer than any
 * outage an agent's outbox can bridge at its default size (docs/protocol.md), and a week at least.
 */
export const REDIS_BATCH_TTL_MS = 7 * 24 * 3_600_000;

/**
 * Raises the key's high-water mark to ARGV[1] when it is higher, renewing its TTL (ARGV[2] ms).
 * Returns 1 when the batch is new (claimed now), 0 when a batch as high was accepted already.
 * Sequences are compared as decimal strings of equal meaning (uint64): by length, then lexically.
 */
const CLAIM_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
local new = ARGV[1]
if cur and (#cur > #new or (#cur == #new and cur >= new)) then return 0 end
redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
return 1`;

/** Checks a `redis://host:port/db` URL. @throws Error naming the flag */
export function checkRedisUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid value "${url}" for flag -server.registry.url: not a URL (want redis://host:port/db)`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new Error(`invalid value "${url}" for flag -server.registry.url: the scheme must be redis:// or rediss://`);
  if (u.pathname.length > 1 && !/^\/\d+$/.test(u.pathname)) throw new Error(`invalid value "${url}" for flag -server.registry.url: the path must be a database number`);
}

export class RedisRegistrySync {
  private readonly client: RedisClient;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Backend state; undefined before the first poll. */
  private up: boolean | undefined;
  private polling = false;
  private readonly forgetAfterMs: number;
  /** Heartbeats received while Redis was down, written when it is back (latest per agent). */
  private readonly pending = new Map<string, Stored>();

  /**
   * @param onState called with true / false when the backend comes up / goes down (metric and log)
   */
  /**
   * @param meshKey when given and not settled (no key file), the shared key is read into it at
   *   the first successful poll (and written first when Redis has none)
   */
  constructor(url: string, private readonly registry: AgentRegistry, private readonly log: Logger, private readonly deadAfterMs: number, private readonly onState: (up: boolean) => void, private readonly meshKey?: MeshKey) {
    this.forgetAfterMs = registry.forgetAfterMs;
    checkRedisUrl(url);
    this.client = new RedisClient(url, { autoReconnect: true, enableOfflineQueue: false, connectionTimeout: 2000, maxRetries: 1_000_000 });
  }

  /** Connects (without failing the start when Redis is away) and starts polling. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), REDIS_POLL_MS);
  }

  /** Shares a heartbeat this server received. Never throws; a failure marks the backend down. */
  publish(e: AgentEntry): void {
    this.write({ region: e.region, ip: e.ip, version: e.version, hostname: e.hostname, udpPort: e.udpPort, tcpPort: e.tcpPort, firstSeenMs: e.firstSeenMs, lastSeenMs: e.lastSeenMs });
  }

  /** Shares an agent's goodbye (a tombstone every server applies). Never throws. */
  publishGoodbye(e: AgentEntry, atMs: number): void {
    this.write({ region: e.region, ip: e.ip, version: e.version, hostname: e.hostname, firstSeenMs: e.firstSeenMs, lastSeenMs: atMs, leftMs: atMs });
  }

  /**
   * Claims a pushed batch across servers. @returns true when no server accepted it before (it is
   * now claimed), false for a duplicate, undefined when Redis cannot answer (the caller falls back
   * to its own memory)
   */
  async claimBatch(instanceId: string, sequence: bigint): Promise<boolean | undefined> {
    if (!this.up) return undefined;
    try {
      const r = await this.client.send("EVAL", [CLAIM_SCRIPT, "1", `${REDIS_BATCH_PREFIX}${instanceId}`, sequence.toString(), String(REDIS_BATCH_TTL_MS)]);
      return Number(r) === 1;
    } catch (err) {
      this.setUp(false, err);
      return undefined;
    }
  }

  private write(stored: Stored): void {
    const field = `${stored.region}\u0000${stored.ip}`;
    if (!this.up) {
      this.pending.set(field, stored);
      return;
    }
    this.client.send("HSET", [REDIS_AGENTS_KEY, field, JSON.stringify(stored)]).catch((err) => {
      this.pending.set(field, stored);
      this.setUp(false, err);
    });
  }

  private setUp(up: boolean, err?: unknown): void {
    if (up === this.up) return;
    this.up = up;
    if (up) this.log.info("shared registry (Redis) reachable; agents of every server are shared");
    else this.log.error({ err: String(err) }, "shared registry (Redis) unreachable; serving from the last known registry and this server's own heartbeats");
    this.onState(up);
  }

  /** Reads the shared hash into the local registry; writes pending heartbeats first. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (!this.client.connected) await this.client.connect();
      if (this.meshKey && !this.meshKey.settled) await this.shareMeshKey(this.meshKey);
      for (const [field, stored] of this.pending) {
        await this.client.send("HSET", [REDIS_AGENTS_KEY, field, JSON.stringify(stored)]);
        this.pending.delete(field);
      }
      const flat = (await this.client.send("HGETALL", [REDIS_AGENTS_KEY])) as string[] | Record<string, string>;
      const entries = Array.isArray(flat) ? pairs(flat) : Object.entries(flat);
      const now = Date.now();
      const stale: string[] = [];
      for (const [field, json] of entries) {
        let s: Stored;
        try {
          s = JSON.parse(json) as Stored;
        } catch {
          stale.push(field); // not ours: drop it
          continue;
        }
        if (now - s.lastSeenMs > this.deadAfterMs + this.forgetAfterMs) stale.push(field);
        else if (s.leftMs !== undefined) this.registry.remove(s.region, s.ip, s.leftMs);
        else this.registry.observe(s);
      }
      if (stale.length) await this.client.send("HDEL", [REDIS_AGENTS_KEY, ...stale]);
      this.setUp(true);
    } catch (err) {
      this.setUp(false, err);
    } finally {
      this.polling = false;
    }
  }

  /** Writes a random key unless one is stored (SET NX), then adopts the stored one. The key is never logged. */
  private async shareMeshKey(k: MeshKey): Promise<void> {
    await this.client.send("SET", [REDIS_MESH_KEY, meshKeyHex(randomMeshKey()), "NX"]);
    const stored = meshKeyFromHex(await this.client.send("GET", [REDIS_MESH_KEY]));
    if (stored) k.adoptShared(stored);
    else {
      this.log.error(`shared registry: ${REDIS_MESH_KEY} holds no 64-digit hex key; this server hands out its own mesh key (delete the key in Redis to let the servers agree again)`);
      k.adoptShared(k.current); // settled: said once
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.client.close();
  }
}

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

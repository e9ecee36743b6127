/**
 * The shared registry (`-server.registry.url redis://host:port/db`, docs/scale.md): several servers
 * share heartbeats, live agents and so the dynamic pools, so an agent may talk to any of them.
 * Keys and scripts: lib/server/registry_redis_wire.ts.
 *
 * - Writes: what a server hears goes to the hash `probermesh:agents` (the source of truth, read
 *   as it is by servers of 0.7) and to the change stream `probermesh:changes`, in one script. A
 *   new agent, a changed version, hostname or port, and a goodbye (a tombstone: the entry with
 *   `leftMs`) are written at once (batched for up to 50 ms); a heartbeat that only moves
 *   lastSeenMs forward is written once per refresh period (refreshMs(): a quarter of dead-after at
 *   most), and the last one of an agent that falls silent a refresh period after it arrived, so
 *   every server declares a dead agent dead at the moment its own server does.
 * - Reads: every second each server reads the stream from where it stopped (XRANGE, pages of
 *   1,000) into its AgentRegistry: observe() (newer heartbeats win) or remove() for tombstones.
 * - Full resyncs (one HGETALL): at start; when Redis lost its data (the epoch key is gone or
 *   changed, or the stream lost the entry the server read last without anything after it): the
 *   server first re-writes the agents it heard itself; and when it fell behind the trimmed stream.
 * - A sweep, by one server of the fleet at a time (the `probermesh:sweep` lock, 60 s apart, and a
 *   refresh period after a server starts), scans the hash: deletes entries dead for longer than
 *   -server.agent.forget.after, and applies and puts on the stream entries the stream did not carry
 *   (written by servers of 0.7); while any sweep of the last sweep period found some, the next
 *   comes a refresh period later.
 * - Batch identities (claimBatch) and the mesh key: unchanged since 0.7.
 * - If Redis goes away the server keeps serving from its last view plus the heartbeats it receives
 *   itself, logs it once and sets prober_server_registry_backend_up 0; when Redis is back the
 *   server writes what it heard meanwhile and follows the stream again.
 *
 * Bun's built-in Redis client (Bun.RedisClient) speaks to it.
 */
import { randomUUID } from "node:crypto";
import { RedisClient } from "bun";
import type { Logger } from "../log.ts";
import type { RegistryResyncReason } from "../metrics/server.ts";
import { meshKeyFromHex, meshKeyHex, randomMeshKey, type MeshKey } from "./mesh_key.ts";
import type { AgentEntry, AgentRegistry } from "./registry.ts";
import {
  REDIS_AGENTS_KEY, REDIS_CHANGES_KEY, REDIS_EPOCH_KEY, REDIS_OWN_MAX, REDIS_POLL_MS, REDIS_READ_COUNT, REDIS_SCAN_COUNT, REDIS_STREAM_MAXLEN, REDIS_SWEEP_KEY, REDIS_SWEEP_MS, REDIS_UNSTREAMED_KEY,
  REDIS_WRITE_BATCH_MS, REDIS_WRITE_CHUNK, LAST_ID_SCRIPT, WRITE_SCRIPT, entryValue, fieldOf, hashPairs, parseStored, refreshMs, stateDiffers, streamPage, type StreamPage, type Stored,
} from "./registry_redis_wire.ts";

/**
 * The mesh key shared by the servers of one registry (lib/server/mesh_key.ts): the first server
 * to start writes a random one with SET NX; every server reads back the one that won. No expiry.
 */
export const REDIS_MESH_KEY = "probermesh:mesh_key";

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

/** What the synchronisation reports (the server's metrics: prober_server_registry_*). Counts are entries. */
export interface RegistrySyncHooks {
  entriesRead(n: number): void;
  entriesWritten(n: number): void;
  fullResync(reason: RegistryResyncReason): void;
  unstreamed(n: number): void;
}

/** Tuning, mostly for tests; the defaults are the constants of registry_redis_wire.ts. */
export interface RegistrySyncOptions {
  hooks?: RegistrySyncHooks;
  /** Length the change stream is trimmed to (approximately), entries. */
  streamMaxLen?: number;
  /** Time between sweeps of the hash when they find nothing unstreamed, ms. */
  sweepMs?: number;
  /** Stream entries per XRANGE call. */
  readCount?: number;
}

/** An agent this server heard itself: the newest it heard, and the last entry it wrote (or is writing). */
interface Own {
  latest: Stored;
  written?: Stored;
}

/** What following the stream found. */
type Followed = "ok" | "behind" | "lost";

export class RedisRegistrySync {
  private readonly client: RedisClient;
  private timer: ReturnType<typeof setInterval> | undefined;
  private writeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Backend state; undefined before the first poll. */
  private up: boolean | undefined;
  private polling = false;
  private readonly forgetAfterMs: number;
  /** A heartbeat that only moves lastSeenMs is written at most this often per agent, ms. */
  readonly refreshMs: number;
  private readonly streamMaxLen: number;
  private readonly sweepMs: number;
  private readonly readCount: number;
  private readonly hooks: RegistrySyncHooks | undefined;
  /** Agents heard here (bounded: REDIS_OWN_MAX, and pruned once forgotten). */
  private readonly own = new Map<string, Own>();
  /** Fields of `own` to write at the next flush. */
  private readonly queued = new Set<string>();
  /** Fields of `own` whose newest heartbeat waits (coalesced) until it is due. */
  private readonly dirty = new Set<string>();
  /** The epoch key's value this server synchronised under; undefined before the first full resync. */
  private epoch: string | undefined;
  /** ID of the last stream entry read (or the anchor a full resync follows from). */
  private lastId = "0-0";
  private nextSweepMs = 0;
  private nextPruneMs = 0;
  private readonly id = randomUUID();

  /**
   * @param deadAfterMs ratio x aggregation interval, milliseconds
   * @param onState called with true / false when the backend comes up / goes down (metric and log)
   * @param meshKey when given and not settled (no key file), the shared key is read into it at
   *   the first successful poll (and written first when Redis has none)
   */
  constructor(url: string, private readonly registry: AgentRegistry, private readonly log: Logger, private readonly deadAfterMs: number, private readonly onState: (up: boolean) => void, private readonly meshKey?: MeshKey, o: RegistrySyncOptions = {}) {
    this.forgetAfterMs = registry.forgetAfterMs;
    this.refreshMs = refreshMs(deadAfterMs);
    this.streamMaxLen = Math.max(1, o.streamMaxLen ?? REDIS_STREAM_MAXLEN);
    this.sweepMs = o.sweepMs ?? REDIS_SWEEP_MS;
    this.readCount = Math.max(1, o.readCount ?? REDIS_READ_COUNT);
    this.hooks = o.hooks;
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
    const s: Stored = { region: e.region, ip: e.ip, version: e.version, hostname: e.hostname, udpPort: e.udpPort, tcpPort: e.tcpPort, firstSeenMs: e.firstSeenMs, lastSeenMs: e.lastSeenMs, streamed: 1 };
    const f = fieldOf(s);
    const o = this.own.get(f);
    if (!o) {
      this.remember(f, { latest: s });
      this.queue(f);
      return;
    }
    o.latest = s;
    const w = o.written;
    if (!w || stateDiffers(w, s) || s.lastSeenMs - w.lastSeenMs >= this.refreshMs) this.queue(f);
    else this.dirty.add(f);
  }

  /** Shares an agent's goodbye (a tombstone every server applies). Never throws. */
  publishGoodbye(e: AgentEntry, atMs: number): void {
    const s: Stored = { region: e.region, ip: e.ip, version: e.version, hostname: e.hostname, firstSeenMs: e.firstSeenMs, lastSeenMs: atMs, leftMs: atMs, streamed: 1 };
    const f = fieldOf(s);
    const o = this.own.get(f);
    if (o) o.latest = s;
    else this.remember(f, { latest: s });
    this.queue(f);
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

  /** Adds an agent heard here, dropping the oldest when REDIS_OWN_MAX are remembered. */
  private remember(f: string, o: Own): void {
    if (this.own.size >= REDIS_OWN_MAX) {
      const oldest = this.own.keys().next().value!;
      this.forgetOwn(oldest);
    }
    this.own.set(f, o);
  }

  private forgetOwn(f: string): void {
    this.own.delete(f);
    this.queued.delete(f);
    this.dirty.delete(f);
  }

  /** Marks an agent for the next write, which comes within REDIS_WRITE_BATCH_MS while Redis is up. */
  private queue(f: string): void {
    this.queued.add(f);
    this.dirty.delete(f);
    if (this.up && !this.writeTimer) {
      this.writeTimer = setTimeout(() => {
        this.writeTimer = undefined;
        this.writeQueued().catch((err) => this.setUp(false, err));
      }, REDIS_WRITE_BATCH_MS);
    }
  }

  /** Writes every queued agent's newest entry, REDIS_WRITE_CHUNK per script call. @throws on a Redis error (the rest stays queued) */
  private async writeQueued(): Promise<void> {
    while (this.queued.size) {
      const batch: string[] = [];
      for (const f of this.queued) {
        this.queued.delete(f);
        if (!this.own.has(f)) continue;
        batch.push(f);
        if (batch.length >= REDIS_WRITE_CHUNK) break;
      }
      const args = [String(this.streamMaxLen)];
      const sent: Stored[] = [];
      for (const f of batch) {
        const o = this.own.get(f)!;
        o.written = o.latest;
        sent.push(o.latest);
        args.push(f, String(o.latest.lastSeenMs), JSON.stringify(o.latest));
      }
      if (!sent.length) continue;
      let n: number;
      try {
        n = Number(await this.client.send("EVAL", [WRITE_SCRIPT, "2", REDIS_AGENTS_KEY, REDIS_CHANGES_KEY, ...args]));
      } catch (err) {
        for (const f of batch) if (this.own.has(f)) this.queued.add(f);
        throw err;
      }
      this.hooks?.entriesWritten(n);
      // A goodbye, once on the stream, has reached every server: nothing to re-write after a restart.
      for (let i = 0; i < batch.length; i++) {
        const o = this.own.get(batch[i]!);
        if (o && o.latest === sent[i] && sent[i]!.leftMs !== undefined) this.own.delete(batch[i]!);
      }
    }
  }

  private setUp(up: boolean, err?: unknown): void {
    if (up === this.up) return;
    this.up = up;
    if (up) this.log.info("shared registry (Redis) reachable; agents of every server are shared");
    else this.log.error({ err: String(err) }, "shared registry (Redis) unreachable; serving from the last known registry and this server's own heartbeats");
    this.onState(up);
  }

  /** One tick: follows the stream (or resyncs), writes what is due, sweeps when it is this server's turn. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (!this.client.connected) await this.client.connect();
      if (this.meshKey && !this.meshKey.settled) await this.shareMeshKey(this.meshKey);
      if (this.epoch === undefined) await this.resync("start");
      else {
        const [epoch, page] = await Promise.all([this.client.send("GET", [REDIS_EPOCH_KEY]), this.page()]);
        const followed: Followed = epoch !== this.epoch ? "lost" : await this.follow(page);
        if (followed === "lost") await this.redisRestarted();
        else if (followed === "behind") {
          this.log.warn({ streamMaxLen: this.streamMaxLen }, "shared registry: fell behind the change stream; reading the whole registry once");
          await this.resync("behind");
        }
      }
      this.setUp(true);
      const now = Date.now();
      for (const f of this.dirty) {
        const o = this.own.get(f);
        if (!o || o.latest === o.written) this.dirty.delete(f);
        else if (now - o.latest.lastSeenMs >= this.refreshMs) this.queue(f);
      }
      await this.writeQueued();
      if (now >= this.nextPruneMs) this.prune(now);
      if (now >= this.nextSweepMs) await this.sweep();
    } catch (err) {
      this.setUp(false, err);
    } finally {
      this.polling = false;
    }
  }

  /** The stream from the last entry read (included, to check it is still there). */
  private async page(): Promise<StreamPage> {
    return streamPage(await this.client.send("XRANGE", [REDIS_CHANGES_KEY, this.lastId, "+", "COUNT", String(this.readCount + 1)]));
  }

  /** Applies the stream's new entries, page after page while they come full (at most the stream's length). */
  private async follow(first: StreamPage): Promise<Followed> {
    let page = first;
    let read = 0;
    for (let pages = 0; ; pages++) {
      // Trimming only removes the oldest entries: the last one read is still there unless the
      // server fell behind; the stream holds nothing at or after it when it vanished or went back.
      if (!page.length) return "lost";
      if (page[0]![0] !== this.lastId) return "behind";
      page = page.slice(1);
      for (const [id, fields] of page) {
        const s = parseStored(entryValue(fields));
        if (s) this.apply(s);
        this.lastId = id;
      }
      read += page.length;
      if (page.length < this.readCount || pages * this.readCount > this.streamMaxLen) break;
      page = await this.page();
    }
    if (read) this.hooks?.entriesRead(read);
    return "ok";
  }

  /** Applies an entry read from Redis. @returns true when it changed this server's registry */
  private apply(s: Stored): boolean {
    const f = fieldOf(s);
    const o = this.own.get(f);
    // Another server heard the agent since: it is that server's to write now.
    if (o && s.lastSeenMs > o.latest.lastSeenMs) this.forgetOwn(f);
    if (s.leftMs !== undefined) return this.registry.remove(s.region, s.ip, s.leftMs) !== undefined;
    return this.registry.observe(s);
  }

  /** True when an entry is dead for longer than the registry remembers agents: deleted from the hash. */
  private stale(s: Stored, now: number): boolean {
    return now - s.lastSeenMs > this.deadAfterMs + this.forgetAfterMs;
  }

  /** Redis lost its data: re-writes what this server heard itself, then reads the whole hash. */
  private async redisRestarted(): Promise<void> {
    this.log.warn({ agents: this.own.size }, "shared registry: Redis lost its data (restarted or flushed); re-writing the agents this server heard and reading the registry again");
    for (const [f, o] of this.own) {
      o.written = undefined;
      this.queued.add(f);
    }
    this.dirty.clear();
    // The shared mesh key went with the data: written back (unless another server was first), so a
    // server starting now adopts the key the agents already hold instead of making a new one.
    const k = this.meshKey;
    if (k && k.settled && !k.fromFile) await this.client.send("SET", [REDIS_MESH_KEY, meshKeyHex(k.current), "NX"]);
    await this.client.send("SET", [REDIS_EPOCH_KEY, randomUUID(), "NX"]);
    await this.writeQueued();
    await this.resync("redis_restarted");
  }

  /** Reads the whole hash (one HGETALL) and follows the stream from its end at that moment. */
  private async resync(reason: RegistryResyncReason): Promise<void> {
    const t0 = Date.now();
    // In one round trip, in this order: the epoch (written first if none), the stream's last entry, the hash.
    const [, epoch, lastId, flat] = await Promise.all([
      this.client.send("SET", [REDIS_EPOCH_KEY, randomUUID(), "NX"]),
      this.client.send("GET", [REDIS_EPOCH_KEY]),
      this.client.send("EVAL", [LAST_ID_SCRIPT, "1", REDIS_CHANGES_KEY, String(this.streamMaxLen)]),
      this.client.send("HGETALL", [REDIS_AGENTS_KEY]),
    ]);
    const pairs = hashPairs(flat);
    const now = Date.now();
    const drop: string[] = [];
    for (const [field, json] of pairs) {
      const s = parseStored(json);
      if (!s || this.stale(s, now)) drop.push(field); // not ours, or dead for longer than remembered
      else this.apply(s);
    }
    if (drop.length) await this.client.send("HDEL", [REDIS_AGENTS_KEY, ...drop]);
    this.lastId = String(lastId);
    this.epoch = String(epoch);
    // A server that starts looks for servers of 0.7 (a rolling upgrade) a refresh period later.
    this.nextSweepMs = now + (reason === "start" ? this.fastSweepMs() : this.sweepMs);
    this.hooks?.fullResync(reason);
    this.log.info({ reason, entries: pairs.length, deleted: drop.length, ms: Date.now() - t0 }, "shared registry: read the whole registry");
  }

  /**
   * Sweeps the hash when no other server did within the lock's TTL: deletes stale entries, and
   * applies and streams those newer than this server knew (the stream did not carry them).
   */
  private async sweep(): Promise<void> {
    // Every server tries each second; the lock's TTL spaces the sweeps.
    this.nextSweepMs = Date.now() + REDIS_POLL_MS;
    if ((await this.client.send("SET", [REDIS_SWEEP_KEY, this.id, "NX", "PX", String(this.sweepMs)])) !== "OK") return;
    const now = Date.now();
    const drop: string[] = [];
    const news: string[] = [];
    /** Live entries a 0.7 server wrote last (no stream entry): their next heartbeats come by the hash only. */
    let legacy = 0;
    let cursor = "0";
    do {
      const r = (await this.client.send("HSCAN", [REDIS_AGENTS_KEY, cursor, "COUNT", String(REDIS_SCAN_COUNT)])) as [string, unknown];
      cursor = String(r?.[0] ?? "0");
      for (const [field, json] of hashPairs(r?.[1])) {
        const s = parseStored(json);
        if (!s || this.stale(s, now)) drop.push(field);
        else if (this.apply(s)) news.push(json);
        if (s && !s.streamed && s.leftMs === undefined && now - s.lastSeenMs <= this.deadAfterMs) legacy++;
      }
    } while (cursor !== "0");
    if (drop.length) await this.client.send("HDEL", [REDIS_AGENTS_KEY, ...drop]);
    await Promise.all(news.map((v) => this.client.send("XADD", [REDIS_CHANGES_KEY, "MAXLEN", "~", String(this.streamMaxLen), "*", "v", v])));
    // While servers of 0.7 write (any sweep of the last sweep period found their entries new, or
    // live ones they wrote last: a sweep right after their last write finds nothing new), sweep
    // again a refresh period later, so their agents stay alive here.
    if (news.length || legacy) await this.client.send("SET", [REDIS_UNSTREAMED_KEY, String(now), "PX", String(this.sweepMs)]);
    if (news.length || (await this.client.send("EXISTS", [REDIS_UNSTREAMED_KEY])) === 1) {
      await this.client.send("SET", [REDIS_SWEEP_KEY, this.id, "XX", "PX", String(Math.max(REDIS_POLL_MS, this.fastSweepMs() - REDIS_POLL_MS))]);
    }
    this.hooks?.unstreamed(news.length);
    if (news.length || drop.length) this.log.debug({ unstreamed: news.length, deleted: drop.length }, "shared registry: swept");
  }

  /** Time between sweeps while servers of 0.7 write, and from a server's start to its first try, ms. */
  private fastSweepMs(): number {
    return Math.max(REDIS_POLL_MS, this.refreshMs);
  }

  /** Forgets agents heard here that every registry has forgotten by now. */
  private prune(now: number): void {
    this.nextPruneMs = now + REDIS_SWEEP_MS;
    for (const [f, o] of this.own) if (this.stale(o.latest, now)) this.forgetOwn(f);
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
    clearTimeout(this.writeTimer);
    this.client.close();
  }
}

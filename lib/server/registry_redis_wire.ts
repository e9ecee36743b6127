/**
 * What the shared registry keeps in Redis and how it is read and written (docs/scale.md "Several
 * servers: the shared registry"); lib/server/registry_redis.ts drives it.
 *
 * - `probermesh:agents` (hash, field `region\0ip`, value the entry as JSON): the source of truth,
 *   in the format servers of 0.7 read and write (they HGETALL it every second).
 * - `probermesh:changes` (stream, each entry one field `v` = the same JSON): every write of a
 *   server of 0.8 on goes to the hash and the stream in one script, so the two never disagree;
 *   servers follow the stream instead of reading the hash. Trimmed to about REDIS_STREAM_MAXLEN.
 * - `probermesh:epoch` (string, random): written with SET NX by the first server; a server that
 *   finds it gone or changed knows Redis lost its data (restarted empty, or flushed).
 * - `probermesh:sweep` (string with a TTL): whoever sets it (SET NX) scans the hash for stale
 *   entries and for entries the stream did not carry; its TTL spaces the sweeps of all servers.
 * - `probermesh:unstreamed` (string with a TTL of one sweep period): set when a sweep found entries
 *   the stream did not carry (servers of 0.7 write); while it lives, sweeps come faster.
 */
import { heartbeatIntervalMs } from "../rpc/heartbeat.ts";
import type { AgentRecord } from "./registry.ts";

/** The hash holding every agent (one per database; several meshes use several databases). */
export const REDIS_AGENTS_KEY = "probermesh:agents";

/** The change stream: one entry per write to the hash (field `v`: the entry's JSON). */
export const REDIS_CHANGES_KEY = "probermesh:changes";

/** A random value set once (SET NX): gone or different means Redis lost its data. */
export const REDIS_EPOCH_KEY = "probermesh:epoch";

/** The sweep lock: its holder sweeps the hash; its TTL is the time to the next sweep, fleet-wide. */
export const REDIS_SWEEP_KEY = "probermesh:sweep";

/** Lives one sweep period after a sweep found entries the stream did not carry. */
export const REDIS_UNSTREAMED_KEY = "probermesh:unstreamed";

/** How often each server reads the shared registry (the change stream), milliseconds. */
export const REDIS_POLL_MS = 1000;

/**
 * Default length the change stream is trimmed to (approximately: XADD MAXLEN ~), entries. A
 * server that falls further behind than this (paused, cut off from Redis while others write)
 * reads the whole hash once instead. About 250 bytes each in Redis.
 */
export const REDIS_STREAM_MAXLEN = 20_000;

/** Stream entries read per XRANGE call (several calls per poll while the pages come full). */
export const REDIS_READ_COUNT = 1000;

/** Default time between sweeps of the hash (by one server of the fleet), milliseconds. */
export const REDIS_SWEEP_MS = 60_000;

/** Entries written per script call; a heartbeat due for writing waits at most this long to be batched, ms. */
export const REDIS_WRITE_CHUNK = 256;
export const REDIS_WRITE_BATCH_MS = 50;

/** Fields read per HSCAN call of a sweep. */
export const REDIS_SCAN_COUNT = 1000;

/** Agents a server remembers having heard itself (to re-write them after a Redis restart), at most. */
export const REDIS_OWN_MAX = 100_000;

/** Stored per agent; `leftMs` marks a goodbye (a tombstone). */
/**
 * A hash entry. `streamed` (1) marks an entry written by a server of 0.8 or later, with its stream
 * entry; one without it is a 0.7 server's (hash only), which sweeps pick up (registry_redis.ts).
 */
export type Stored = AgentRecord & { leftMs?: number; streamed?: 1 };

/** The hash field of an entry. */
export const fieldOf = (s: Pick<Stored, "region" | "ip">): string => `${s.region}\u0000${s.ip}`;

/**
 * How long a heartbeat that only moves an agent's lastSeenMs forward may go unwritten, ms: a
 * quarter of the dead-after time, and never more than half of what is left of it after one
 * heartbeat period and one poll. Other servers then see a live agent at most heartbeat + refresh
 * + poll old, which stays below dead-after by half that slack (docs/scale.md).
 * @param deadAfterMs ratio x aggregation interval, milliseconds
 */
export function refreshMs(deadAfterMs: number): number {
  const slack = deadAfterMs - heartbeatIntervalMs(deadAfterMs) - REDIS_POLL_MS;
  return Math.max(0, Math.min(deadAfterMs / 4, slack / 2));
}

/** True when the two entries differ in more than their times (a state change: written at once). */
export function stateDiffers(a: Stored, b: Stored): boolean {
  return a.version !== b.version || a.hostname !== b.hostname || (a.udpPort ?? 0) !== (b.udpPort ?? 0) || (a.tcpPort ?? 0) !== (b.tcpPort ?? 0) || (a.leftMs === undefined) !== (b.leftMs === undefined);
}

const isTime = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;

/** Parses a stored entry; undefined when it is not one (not JSON, wrong types): never throws. */
export function parseStored(json: unknown): Stored | undefined {
  if (typeof json !== "string") return undefined;
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof s !== "object" || s === null) return undefined;
  if (typeof s.region !== "string" || typeof s.ip !== "string" || typeof s.version !== "string" || typeof s.hostname !== "string") return undefined;
  if (!isTime(s.lastSeenMs) || !isTime(s.firstSeenMs) || (s.leftMs !== undefined && !isTime(s.leftMs))) return undefined;
  return s as unknown as Stored;
}

/** The shape XRANGE answers with: [[id, [field, value, ...]], ...]. */
export type StreamPage = [string, string[]][];

/** XRANGE's answer, checked (anything else is read as an empty page). */
export function streamPage(r: unknown): StreamPage {
  if (!Array.isArray(r)) return [];
  return r.filter((e): e is [string, string[]] => Array.isArray(e) && typeof e[0] === "string" && Array.isArray(e[1]));
}

/** The `v` value of a stream entry's fields. */
export function entryValue(fields: string[]): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === "v") return fields[i + 1];
  return undefined;
}

/** HGETALL / HSCAN answers as [field, value] pairs (RESP2 flat arrays or RESP3 maps). */
export function hashPairs(r: unknown): [string, string][] {
  if (Array.isArray(r)) {
    const out: [string, string][] = [];
    for (let i = 0; i + 1 < r.length; i += 2) out.push([String(r[i]), String(r[i + 1])]);
    return out;
  }
  return r && typeof r === "object" ? Object.entries(r as Record<string, string>) : [];
}

/**
 * Writes entries to the hash and the stream together. KEYS: hash, stream. ARGV[1]: the stream's
 * MAXLEN (approximate trim), then triples (field, lastSeenMs, JSON). An entry is skipped when the
 * hash holds the same JSON or one with a later lastSeenMs (another server heard the agent since:
 * a server re-writing its agents after a Redis restart never overwrites newer news). Returns the
 * number written.
 */
export const WRITE_SCRIPT = `
local n = 0
for i = 2, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local seen = cur and tonumber(string.match(cur, '"lastSeenMs":(%d+)'))
  if cur ~= ARGV[i + 2] and (not seen or seen <= tonumber(ARGV[i + 1])) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'v', ARGV[i + 2])
    n = n + 1
  end
end
return n`;

/**
 * The stream's last entry ID, the place a full resync follows the stream from. KEYS: stream.
 * ARGV[1]: MAXLEN. An empty (or missing) stream gets an anchor entry (field `anchor`, no agent)
 * first, so there is always an entry whose disappearance tells that a server fell behind.
 */
export const LAST_ID_SCRIPT = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then return last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'anchor', '1')`;

/**
 * The shared registry's incremental synchronisation (lib/server/registry_redis.ts, docs/scale.md)
 * with a real redis-server: two RedisRegistrySync + AgentRegistry pairs (two "servers") on one
 * Redis. What one hears reaches the other through the change stream, not by reading the hash;
 * heartbeats are coalesced without losing the last one; a Redis restart, a server fallen behind
 * the trimmed stream and entries written by a server of 0.7 (the hash only) are recovered.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { RedisClient } from "bun";
import pino from "pino";
import { AgentSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { AgentRegistry } from "../lib/server/registry.ts";
import { MeshKey, meshKeyHex } from "../lib/server/mesh_key.ts";
import { REDIS_MESH_KEY, RedisRegistrySync, type RegistrySyncOptions } from "../lib/server/registry_redis.ts";
import { REDIS_AGENTS_KEY, REDIS_CHANGES_KEY } from "../lib/server/registry_redis_wire.ts";
import { freePort, killAll, run, start, skipReason, waitFor, type Proc } from "./helpers/procs.ts";

const redisBin = Bun.which("redis-server");
if (!redisBin) skipReason("registry_sync.test.ts needs redis-server (apt-get install redis-server)");

/** Dead-after of the test servers (ratio x interval), ms: refresh period 1.5 s, heartbeats due every 2 s. */
const DEAD_AFTER_MS = 6000;
const log = pino({ level: "silent" });

interface Node {
  registry: AgentRegistry;
  sync: RedisRegistrySync;
  read: number;
  written: number;
  unstreamed: number;
  /** Sweeps this node made (it held the lock). */
  sweeps: number;
  resyncs: Record<string, number>;
}

describe.skipIf(!redisBin)("shared registry synchronisation on a real Redis", () => {
  let port = 0;
  let redis: Proc;
  const nodes: Node[] = [];
  const startRedis = () => start([redisBin!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  /** One command on database `db`, from a client of its own (a server of 0.7 writes just like this). */
  const cmd = async (db: number, name: string, ...args: string[]): Promise<unknown> => {
    const c = new RedisClient(`redis://127.0.0.1:${port}/${db}`);
    try {
      return await c.send(name, args);
    } finally {
      c.close();
    }
  };
  const calls = async (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(String(await cmd(0, "INFO", "commandstats")))?.[1] ?? 0);

  /** A "server": its registry and sync on database `db`, counting what the hooks report. */
  async function node(db: number, o: RegistrySyncOptions = {}, meshKey?: MeshKey): Promise<Node> {
    const n = { read: 0, written: 0, unstreamed: 0, sweeps: 0, resyncs: {} as Record<string, number> } as Node;
    n.registry = new AgentRegistry(DEAD_AFTER_MS, { onHeartbeat: (e) => n.sync.publish(e), onGoodbye: (e, t) => n.sync.publishGoodbye(e, t) });
    n.sync = new RedisRegistrySync(`redis://127.0.0.1:${port}/${db}`, n.registry, log, DEAD_AFTER_MS, () => {}, meshKey, {
      ...o,
      hooks: {
        entriesRead: (k) => (n.read += k),
        entriesWritten: (k) => (n.written += k),
        fullResync: (r) => (n.resyncs[r] = (n.resyncs[r] ?? 0) + 1),
        unstreamed: (k) => {
          n.unstreamed += k;
          n.sweeps++;
        },
      },
    });
    await n.sync.start();
    nodes.push(n);
    return n;
  }
  const close = (...ns: Node[]) => ns.forEach((n) => n.sync.close());
  const hb = (n: Node, ip: string, udpPort = 0, region = "ra") => n.registry.heartbeat(create(AgentSchema, { region, ip, version: "0.8.0", hostname: `h-${ip}`, udpPort, tcpPort: 0 }));
  const entry = (n: Node, ip: string) => n.registry.all().find((e) => e.ip === ip);

  beforeAll(async () => {
    port = await freePort();
    redis = startRedis();
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(port), "ping"])).stdout.trim() === "PONG");
  });
  afterAll(async () => {
    close(...nodes);
    await killAll();
  });

  test("a heartbeat, a port change and a goodbye at one server reach the other through the stream; no hash read after the first", async () => {
    const [a, b] = [await node(0), await node(0)];
    expect(a.resyncs).toEqual({ start: 1 });
    // A refresh period after a start, one of them sweeps the hash (for servers of 0.7); then not for a minute.
    await waitFor("the sweep after the start", 10_000, () => a.sweeps + b.sweeps === 1);
    const hgetall = await calls("hgetall");
    const hscan = await calls("hscan");
    hb(a, "10.0.0.1", 7001);
    await waitFor("b sees the agent a heard", 10_000, () => entry(b, "10.0.0.1")?.alive);
    expect(entry(b, "10.0.0.1")!.udpPort).toBe(7001);
    hb(a, "10.0.0.1", 7002);
    await waitFor("b sees the new port", 10_000, () => entry(b, "10.0.0.1")?.udpPort === 7002);
    // Several polls of steady state: new agents at either server, every one seen by the other.
    for (let i = 2; i <= 6; i++) {
      hb(i % 2 ? a : b, `10.0.0.${i}`);
      await waitFor(`agent ${i} seen by both`, 10_000, () => entry(a, `10.0.0.${i}`) && entry(b, `10.0.0.${i}`));
    }
    a.registry.goodbye("ra", "10.0.0.1");
    await waitFor("b removes the agent that left", 10_000, () => !entry(b, "10.0.0.1"));
    expect(await calls("hgetall")).toBe(hgetall);
    expect(await calls("hscan")).toBe(hscan);
    expect(b.read).toBeGreaterThanOrEqual(7);
    expect(b.resyncs).toEqual({ start: 1 });
    expect(a.sweeps + b.sweeps).toBe(1);
    // The hash stays the source of truth (what servers of 0.7 read): the tombstone and the others.
    expect(JSON.parse(String(await cmd(0, "HGET", REDIS_AGENTS_KEY, "ra\u000010.0.0.1"))).leftMs).toBeNumber();
    expect(Number(await cmd(0, "HLEN", REDIS_AGENTS_KEY))).toBe(6);
    close(a, b);
  }, 60_000);

  test("heartbeats that only move the last-seen time are coalesced, and the last one still reaches the other server", async () => {
    const [a, b] = [await node(1), await node(1)];
    hb(a, "10.1.0.1");
    await waitFor("b sees the agent", 10_000, () => entry(b, "10.1.0.1"));
    const written = a.written;
    // 20 heartbeats 150 ms apart (3 s, two refresh periods): a handful of writes, not 20.
    for (let i = 0; i < 20; i++) {
      hb(a, "10.1.0.1");
      await Bun.sleep(150);
    }
    const last = entry(a, "10.1.0.1")!.lastSeenMs;
    await waitFor("b has the last heartbeat", 10_000, () => entry(b, "10.1.0.1")!.lastSeenMs === last);
    expect(a.written - written).toBeGreaterThanOrEqual(2);
    expect(a.written - written).toBeLessThanOrEqual(5);
    expect(entry(b, "10.1.0.1")!.alive).toBe(true);
    close(a, b);
  }, 60_000);

  test("a server fallen behind the trimmed stream reads the whole registry once and misses nothing", async () => {
    const [w, r] = [await node(2, { streamMaxLen: 10 }), await node(2)];
    // 500 new agents at once: the stream keeps about 10 (whole nodes of 100 are trimmed), r's place in it is gone.
    for (let i = 0; i < 500; i++) hb(w, `10.2.${i >> 8}.${i & 255}`, 0, `r${i % 7}`);
    await waitFor("r knows all 500", 15_000, () => r.registry.all().length === 500);
    expect(r.resyncs.behind).toBeGreaterThanOrEqual(1);
    expect(Number(await cmd(2, "XLEN", REDIS_CHANGES_KEY))).toBeLessThan(500);
    close(w, r);
  }, 60_000);

  test("entries written by a 0.7 server (the hash only) are read at the next full resync and at the next sweep; stale and broken ones deleted", async () => {
    const now = Date.now();
    const old = (ip: string, lastSeenMs: number) => JSON.stringify({ region: "rb", ip, version: "0.7.0", hostname: "old", udpPort: 0, tcpPort: 0, firstSeenMs: lastSeenMs, lastSeenMs });
    await cmd(3, "HSET", REDIS_AGENTS_KEY, "rb\u000010.3.0.1", old("10.3.0.1", now), "rb\u000010.3.0.9", old("10.3.0.9", now - 3 * 3_600_000), "rb\u0000junk", "{not json");
    const [a, b] = [await node(3, { sweepMs: 2000 }), await node(3, { sweepMs: 2000 })];
    // At start (a full resync): the 0.7 entry is known, the stale and the broken ones are deleted.
    expect(entry(a, "10.3.0.1")?.alive).toBe(true);
    expect(Number(await cmd(3, "HEXISTS", REDIS_AGENTS_KEY, "rb\u000010.3.0.9"))).toBe(0);
    expect(Number(await cmd(3, "HEXISTS", REDIS_AGENTS_KEY, "rb\u0000junk"))).toBe(0);
    // While running: a 0.7 server's heartbeats (HSET only) reach both at the next sweep.
    const later = Date.now();
    await cmd(3, "HSET", REDIS_AGENTS_KEY, "rb\u000010.3.0.1", old("10.3.0.1", later), "rb\u000010.3.0.2", old("10.3.0.2", later));
    await waitFor("both see the 0.7 heartbeats", 15_000, () => [a, b].every((n) => entry(n, "10.3.0.2") && entry(n, "10.3.0.1")!.lastSeenMs === later));
    expect(a.unstreamed + b.unstreamed).toBeGreaterThanOrEqual(2);
    // A broken stream entry is skipped, not fatal.
    await cmd(3, "XADD", REDIS_CHANGES_KEY, "*", "v", "[1,2");
    hb(a, "10.3.0.3");
    await waitFor("b still follows the stream", 10_000, () => entry(b, "10.3.0.3"));
    close(a, b);
  }, 60_000);

  test("Redis restarted empty: both servers re-write the agents they heard, what came meanwhile too, and resync (redis_restarted); the shared mesh key is written back", async () => {
    const [ka, kb] = [new MeshKey(), new MeshKey()];
    const [a, b] = [await node(4, {}, ka), await node(4, {}, kb)];
    expect(meshKeyHex(kb.current)).toBe(meshKeyHex(ka.current));
    hb(a, "10.4.0.1");
    hb(b, "10.4.0.2");
    await waitFor("both see both", 10_000, () => [a, b].every((n) => entry(n, "10.4.0.1") && entry(n, "10.4.0.2")));
    await redis.kill("SIGKILL");
    await Bun.sleep(1500); // a poll or two with Redis away
    hb(a, "10.4.0.3"); // heard while Redis is away
    redis = startRedis();
    await waitFor("redis ready again", 10_000, async () => (await run(["redis-cli", "-p", String(port), "ping"])).stdout.trim() === "PONG");
    await waitFor("both resynced after the restart", 15_000, () => a.resyncs.redis_restarted && b.resyncs.redis_restarted);
    await waitFor("the hash holds all three again", 15_000, async () => Number(await cmd(4, "HLEN", REDIS_AGENTS_KEY)) === 3);
    await waitFor("b sees the agent a heard while Redis was away", 10_000, () => entry(b, "10.4.0.3"));
    // A server starting now reads the full view and adopts the key the agents hold; the stream works again.
    await waitFor("the mesh key is back in Redis", 10_000, async () => String(await cmd(4, "GET", REDIS_MESH_KEY)) === meshKeyHex(ka.current));
    const kc = new MeshKey();
    const c = await node(4, {}, kc);
    expect(meshKeyHex(kc.current)).toBe(meshKeyHex(ka.current));
    expect(["10.4.0.1", "10.4.0.2", "10.4.0.3"].every((ip) => entry(c, ip))).toBe(true);
    hb(b, "10.4.0.4");
    await waitFor("a and c see b's new agent", 10_000, () => entry(a, "10.4.0.4") && entry(c, "10.4.0.4"));
    expect(c.resyncs).toEqual({ start: 1 });
    close(a, b, c);
  }, 60_000);
});

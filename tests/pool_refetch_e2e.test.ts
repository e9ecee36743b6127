/**
 * Paced pool refetches through the compiled server (-server.pool.refetch.rate,
 * lib/server/refetch.ts): after a join changes every agent's pool, heartbeat answers tell the new
 * pool_version to at most `rate` agents a second and the rest later; everyone converges, the
 * deferrals are counted on /metrics, and GetTargetPool itself always answers the current pool.
 * A refresh naming the version the agent holds (known_pool_version) gets a short `unchanged` answer.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SERVER_BIN, freePort, killAll, samples, scrape, start, waitFor } from "./helpers/procs.ts";

let rpc = 0, web = 0;
const call = async (method: string, agent: { region: string; ip: string }, extra: Record<string, unknown> = {}) => {
  const r = await fetch(`http://127.0.0.1:${rpc}/probermesh.v1.ProberMeshService/${method}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: { ...agent, version: "0.8.0" }, ...extra }),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as { poolVersion?: string; icmp?: { address: string }[]; unchanged?: boolean };
};
const answers = async () => Object.fromEntries(samples(await scrape(`http://127.0.0.1:${web}/metrics`), "prober_server_pool_answers_total").map((s) => [s.labels.answer!, Number(s.value)]));
const AGENTS = Array.from({ length: 6 }, (_, i) => ({ region: `r${i % 3}`, ip: `127.0.93.${i + 1}` }));

beforeAll(async () => {
  [rpc, web] = [await freePort(), await freePort()];
  start([SERVER_BIN, "-server.pool.refetch.rate", "1", "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
});
afterAll(killAll);

test("a join that changes every pool is told to one agent a second at -server.pool.refetch.rate 1; all converge and the deferrals are counted", async () => {
  for (const a of AGENTS) await call("Heartbeat", a);
  // The registrations changed the first ones' pools too: wait until everyone holds the same
  // (full mesh: global) version, then a second for the budget to fill again.
  const before = new Map<string, string>();
  await waitFor("every agent told the version after the registrations", 20_000, async () => {
    for (const a of AGENTS) before.set(a.ip, (await call("Heartbeat", a)).poolVersion!);
    return new Set(before.values()).size === 1;
  });
  await Bun.sleep(1100);
  // A new region joins: every agent's pool now holds it (the full mesh).
  const joiner = { region: "r9", ip: "127.0.93.99" };
  await call("Heartbeat", joiner);
  const changed = async () => (await Promise.all(AGENTS.map(async (a) => (await call("Heartbeat", a)).poolVersion !== before.get(a.ip)))).filter(Boolean).length;
  const first = await changed();
  expect(first).toBeGreaterThanOrEqual(1);
  expect(first).toBeLessThanOrEqual(2);
  // An agent not told yet still gets the current pool when it asks (only the news is paced).
  for (const a of AGENTS) expect((await call("GetTargetPool", a)).icmp!.map((t) => t.address)).toContain(joiner.ip);
  await waitFor("every agent told of the change", 20_000, async () => (await changed()) === AGENTS.length);
  const deferred = Number(samples(await scrape(`http://127.0.0.1:${web}/metrics`), "prober_server_pool_refetches_deferred_total")[0]!.value);
  expect(deferred).toBeGreaterThanOrEqual(AGENTS.length - first);
}, 40_000);

test("known_pool_version: the version held gets `unchanged` without targets; after a change, or with 0, the whole pool", async () => {
  const a = AGENTS[0]!;
  const full = await call("GetTargetPool", a);
  expect(full.icmp!.length).toBeGreaterThan(0);
  expect(BigInt(full.poolVersion!)).toBeGreaterThan(0n);
  const before = await answers();
  const same = await call("GetTargetPool", a, { knownPoolVersion: full.poolVersion });
  expect([same.unchanged, same.icmp ?? [], same.poolVersion]).toEqual([true, [], full.poolVersion]);
  expect((await call("GetTargetPool", a, { knownPoolVersion: "0" })).icmp!.length).toBe(full.icmp!.length);
  expect((await call("GetTargetPool", a, { knownPoolVersion: "12345" })).icmp!.length).toBe(full.icmp!.length);
  const after = await answers();
  expect([after.unchanged! - before.unchanged!, after.full! - before.full!]).toEqual([1, 2]);
  // Another agent joins: the held version is stale, the answer is the new pool.
  await call("Heartbeat", { region: "r8", ip: "127.0.93.98" });
  const next = await call("GetTargetPool", a, { knownPoolVersion: full.poolVersion });
  expect(next.unchanged ?? false).toBe(false);
  expect(next.icmp!.map((t) => t.address)).toContain("127.0.93.98");
  expect(next.poolVersion).not.toBe(full.poolVersion);
});

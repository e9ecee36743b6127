/**
 * Paced pool refetches (lib/server/refetch.ts, -server.pool.refetch.rate): which pool_version a
 * heartbeat answer tells, on a clock the test moves. Through the binary: tests/pool_refetch_e2e.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { REFETCH_BURST_S, RefetchPacer } from "../lib/server/refetch.ts";

const agents = Array.from({ length: 10 }, (_, i) => `r${i % 3}\u000010.0.0.${i}`);

describe("RefetchPacer", () => {
  test("a change reaches at most `rate` agents a second, at most REFETCH_BURST_S seconds' worth at once; the others keep the version they hold until their turn", () => {
    let t = 1_000_000;
    const rate = 10 / REFETCH_BURST_S; // a burst of 10
    const many = Array.from({ length: 100 }, (_, i) => `r${i % 3}\u000010.0.1.${i}`);
    const p = new RefetchPacer(rate, 1000, () => t);
    // First heartbeats: everyone is told the current version at once, whatever the budget.
    for (const a of many) expect(p.version(a, 7n)).toBe(7n);
    // The pools change (a join): heartbeats at the same moment tell a burst's worth, 10 of 100.
    expect(many.map((a) => p.version(a, 8n)).filter((v) => v === 8n)).toHaveLength(10);
    // Heartbeats spread over the next second (as agents' are) tell `rate` more in that second, one by one.
    let toldNext = 0;
    for (const a of many) {
      t += 1000 / many.length;
      if (p.version(a, 8n) === 8n) toldNext++;
    }
    expect(Math.abs(toldNext - rate)).toBeLessThanOrEqual(10);
  });

  test("every agent is told in time; once told, it keeps that version without spending the budget", () => {
    let t = 1_000_000;
    const p = new RefetchPacer(2, 100, () => t);
    for (const a of agents) expect(p.version(a, 7n)).toBe(7n);
    const told = new Set<string>();
    for (let second = 1; second <= 10 && told.size < agents.length; second++) {
      t += 1000;
      for (const a of agents) {
        const v = p.version(a, 8n);
        expect([7n, 8n]).toContain(v);
        if (v === 8n) told.add(a);
      }
    }
    expect(told.size).toBe(agents.length);
    // Once told, an agent keeps being told the same version without spending the budget.
    for (const a of agents) expect(p.version(a, 8n)).toBe(8n);
  });

  test("an idle server tells a single change at once; no limit (0) tells everyone at once", () => {
    let t = 0;
    const p = new RefetchPacer(5, 100, () => t);
    for (const a of agents) p.version(a, 1n);
    t += 60_000;
    expect(p.version(agents[0]!, 2n)).toBe(2n);
    const free = new RefetchPacer(0, 100, () => t);
    for (const a of agents) free.version(a, 1n);
    for (const a of agents) expect(free.version(a, 2n)).toBe(2n);
    expect(free.spreadMs(10_000)).toBe(0);
    expect(p.spreadMs(10_000)).toBe(2_000_000);
  });

  test("a forgotten agent, and one pushed out of the bounded memory, count as first heartbeats", () => {
    const t = 0;
    const p = new RefetchPacer(1, 3, () => t);
    for (const a of agents.slice(0, 3)) p.version(a, 1n);
    expect(p.version(agents[0]!, 2n)).toBe(2n); // the one token of this second
    expect(p.version(agents[1]!, 2n)).toBe(1n); // budget spent: kept at 1
    p.forget(agents[1]!);
    expect(p.version(agents[1]!, 2n)).toBe(2n); // forgotten: first heartbeat again
    // A fourth agent pushes the oldest remembered (agents[2]) out: it is told at once next time.
    expect(p.version(agents[3]!, 2n)).toBe(2n);
    expect(p.version(agents[2]!, 2n)).toBe(2n);
  });
});

/**
 * The agent's scheduler on real timers: error state, re-probes that never overlap, the clear
 * period, and the packet budget. Jobs here are plain functions whose outcome the test decides;
 * assertions are about order and counts, with bounds computed from the time the test measured.
 */
import { expect, test } from "bun:test";
import { Scheduler, type Job, type RoundContext } from "../lib/agent/scheduler.ts";

/** A job that reports an error while `failing()` and records its rounds. */
function job(key: string, failing: () => boolean, opts: { cost?: number; holdMs?: number } = {}) {
  const rounds: RoundContext[] = [];
  let running = 0, maxRunning = 0;
  const j: Job = {
    key, fingerprint: "", errorCost: opts.cost,
    async run(ctx) {
      rounds.push(ctx);
      maxRunning = Math.max(maxRunning, ++running);
      await Bun.sleep(opts.holdMs ?? 1);
      running--;
      return { error: failing() };
    },
  };
  return { j, rounds, maxRunning: () => maxRunning };
}

test("a failing job enters error state, is re-probed without overlap, and leaves after a clean clear period", async () => {
  let failing = true;
  const events: string[] = [];
  // Regular rounds every 1 s; re-probes every 50 ms; each round holds 80 ms (longer than the re-probe interval).
  const s = new Scheduler(1000, { onErrorState: (jb, entered, info) => events.push(`${jb.key} ${entered ? "entered" : `left after ${info.reprobes} re-probes`}`) }, { intervalMs: 50, clearMs: 300, budgetPps: 1e6 });
  const x = job("x", () => failing, { cost: 10, holdMs: 80 });
  s.sync([x.j]);
  try {
    await waitUntil(() => events.length === 1, 3000);
    expect(events).toEqual(["x entered"]);
    expect(s.errorStateCount).toBe(1);
    const before = x.rounds.length;
    await Bun.sleep(600);
    const reprobes = x.rounds.length - before;
    expect(reprobes).toBeGreaterThanOrEqual(3); // ~600 / 80 back to back, far more than regular rounds (1 per s)
    expect(x.maxRunning()).toBe(1); // rounds of one target never overlap
    expect(x.rounds.at(-1)!.errorState).toBe(true);
    expect(x.rounds.at(-1)!.sinceLastMs).toBeLessThan(1000); // a re-probe samples the gap since the previous round
    failing = false;
    await waitUntil(() => events.length === 2, 3000);
    expect(events[1]).toMatch(/^x left after \d+ re-probes$/);
    expect(s.errorStateCount).toBe(0);
    const settled = x.rounds.length;
    await Bun.sleep(400);
    expect(x.rounds.length - settled).toBeLessThanOrEqual(1); // back to regular rounds (1 per s)
  } finally {
    s.stop();
  }
});

test("the budget caps re-probes of all jobs together; a shortage is reported", async () => {
  const shortages: number[] = [];
  const cost = 100, budgetPps = 100; // one re-probe per second for all ten jobs together
  const s = new Scheduler(200, { onBudgetExhausted: (skipped) => shortages.push(skipped) }, { intervalMs: 20, clearMs: 60_000, budgetPps });
  const jobs = Array.from({ length: 10 }, (_, i) => job(`j${i}`, () => true, { cost }));
  const t0 = Date.now();
  s.sync(jobs.map((x) => x.j));
  try {
    await Bun.sleep(1500);
    s.stop();
    const elapsedS = (Date.now() - t0) / 1000;
    const rounds = jobs.reduce((n, x) => n + x.rounds.length, 0);
    // Regular rounds are never limited (one per job per 200 ms); re-probes get what the bucket
    // holds: one second of budget at the start plus the refill over the elapsed time.
    const regularMax = jobs.length * (Math.floor(elapsedS / 0.2) + 1);
    const bucketMax = Math.floor((1 + elapsedS) * (budgetPps / cost));
    expect(rounds).toBeLessThanOrEqual(regularMax + bucketMax);
    // Unlimited, each job would re-probe every 20 ms: ten times that.
    expect(shortages.length).toBeGreaterThanOrEqual(1);
    expect(s.errorStateCount).toBe(0); // stop() leaves nothing in error state
  } finally {
    s.stop();
  }
});

test("a job without errorCost (HTTP) keeps its regular schedule when failing; budget 0 disables re-probing", async () => {
  for (const [cost, budget] of [[undefined, 1000], [10, 0]] as const) {
    const events: boolean[] = [];
    const s = new Scheduler(100, { onErrorState: (_j, entered) => events.push(entered) }, { intervalMs: 10, clearMs: 1000, budgetPps: budget });
    const x = job("h", () => true, { cost });
    s.sync([x.j]);
    await Bun.sleep(450);
    s.stop();
    expect(events).toEqual([]);
    expect(x.rounds.every((r) => !r.errorState)).toBe(true);
    expect(x.rounds.length).toBeLessThanOrEqual(5); // 450 ms / 100 ms
  }
});

async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

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
  // Regular rounds every 60 s, so every round after the first is a re-probe (50 ms apart, each
  // holding 80 ms: longer than the re-probe interval). The key is picked so that its first regular
  // round comes within 200 ms (offsets are a hash of the key).
  const s = new Scheduler(60_000, { onErrorState: (jb, entered, info) => events.push(`${jb.key} ${entered ? "entered" : `left after ${info.reprobes} re-probes`}`) }, { intervalMs: 50, clearMs: 300, budgetPps: 1e6 });
  const key = Array.from({ length: 10_000 }, (_, i) => `x${i}`).find((k) => (s.offsetOf(k) + 60_000 - (Date.now() % 60_000)) % 60_000 < 200)!;
  const x = job(key, () => failing, { cost: 10, holdMs: 80 });
  s.sync([x.j]);
  try {
    await waitUntil(() => events.length === 1, 5000);
    expect(events).toEqual([`${key} entered`]);
    expect(s.errorStateCount).toBe(1);
    await waitUntil(() => x.rounds.length >= 5, 10_000);
    expect(x.maxRunning()).toBe(1); // rounds of one target never overlap
    const reprobes = x.rounds.slice(1);
    expect(reprobes.every((r) => r.errorState)).toBe(true);
    // Each samples the gap since the previous start, far less than the 60 s regular interval.
    expect(reprobes.every((r) => r.sinceLastMs > 0 && r.sinceLastMs < 60_000)).toBe(true);
    failing = false;
    await waitUntil(() => events.length === 2, 5000);
    expect(events[1]).toMatch(new RegExp(`^${key} left after \\d+ re-probes$`));
    expect(s.errorStateCount).toBe(0);
    const settled = x.rounds.length;
    await Bun.sleep(400);
    expect(x.rounds.length).toBe(settled); // no re-probes once out of error state; the next regular round is a minute away
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

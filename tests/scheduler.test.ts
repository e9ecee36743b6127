/**
 * The agent's scheduler: offsets spread over the interval per agent identity and target (agents
 * probe one target at different times), and on real timers: regular rounds on a fixed plan, error
 * state, re-probes that never overlap, the clear period, and the packet budget. Jobs here are
 * plain functions whose outcome the test decides; assertions are about order, counts and the
 * scheduled plan, with bounds computed from the time the test measured. Health (late rounds) is
 * driven by the injectable monotonic clock: a stall is the clock moving while timers did not.
 */
import { expect, test } from "bun:test";
import { lateThresholdMs, Scheduler, type Job, type RoundContext } from "../lib/agent/scheduler.ts";

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
    expect(x.rounds[0]!.plannedMs).toBeDefined(); // a regular round has a planned start, a re-probe none
    expect(reprobes.every((r) => r.plannedMs === undefined)).toBe(true);
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

/**
 * Whether `offsets` in [0, intervalMs) look uniformly spread: chi-square over `bins` equal bins
 * below `maxChi2`, and no gap between neighbours (around the circle) over `maxGap` of the interval.
 */
function spread(offsets: number[], intervalMs: number, bins: number, maxChi2: number, maxGap: number) {
  const counts = new Array<number>(bins).fill(0);
  for (const o of offsets) counts[Math.floor((o / intervalMs) * bins)]!++;
  const expected = offsets.length / bins;
  const chi2 = counts.reduce((x, c) => x + (c - expected) ** 2 / expected, 0);
  const sorted = [...offsets].sort((a, b) => a - b);
  let gap = sorted[0]! + intervalMs - sorted.at(-1)!;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, sorted[i]! - sorted[i - 1]!);
  return { chi2, maxGap: gap / intervalMs, ok: chi2 < maxChi2 && gap / intervalMs < maxGap };
}

test("one target's offsets are spread over the interval across agent identities, and stable per identity", () => {
  const interval = 15_000, key = "icmp/us-east-1/10.20.30.40";
  // Near-identical identities, as a region's agents have (FNV-1a would mix these poorly).
  const ids = Array.from({ length: 100 }, (_, i) => `eu-west-1/10.0.${i >> 4}.${i & 15}`);
  const offsets = ids.map((id) => new Scheduler(interval, {}, undefined, id).offsetOf(key));
  // Uniform random offsets pass both with overwhelming probability: 10 bins (9 degrees of
  // freedom) give chi-square >= 40 with p < 1e-5, and 100 points leave a gap over 20 % of the
  // circle with p < 100 * 0.8^99 = 3e-8.
  const r = spread(offsets, interval, 10, 40, 0.2);
  expect(r).toMatchObject({ ok: true });
  // A key-only offset (what the scheduler did before): every agent at the same millisecond fails.
  expect(spread(ids.map(() => offsets[0]!), interval, 10, 40, 0.2).ok).toBe(false);
  // Six agents of a small mesh: six different offsets.
  expect(new Set(offsets.slice(0, 6)).size).toBe(6);
  // Whole milliseconds inside the interval; the same identity and key give the same offset (a
  // restarted agent keeps its schedule).
  for (const [i, id] of ids.entries()) {
    expect(Number.isInteger(offsets[i]) && offsets[i]! >= 0 && offsets[i]! < interval).toBe(true);
    expect(new Scheduler(interval, {}, undefined, id).offsetOf(key)).toBe(offsets[i]!);
  }
});

test("one agent's targets are spread over the interval", () => {
  const interval = 15_000;
  const s = new Scheduler(interval, {}, undefined, "eu-west-1/10.0.0.1");
  const offsets = Array.from({ length: 1000 }, (_, i) => s.offsetOf(`icmp/us-east-1/10.1.${i >> 8}.${i & 255}`));
  // 20 bins (19 degrees of freedom): chi-square >= 60 with p < 1e-5; 1000 points leave no gap
  // over 3 % of the circle but with p < 1000 * 0.97^999 = 6e-11.
  expect(spread(offsets, interval, 20, 60, 0.03)).toMatchObject({ ok: true });
});

test("two agents run the same target's rounds at their own offsets, each exactly one interval apart", async () => {
  const interval = 200, key = "icmp/r/127.0.0.1";
  const off = (id: string) => new Scheduler(interval, {}, undefined, id).offsetOf(key);
  // Two identities whose offsets are at least a quarter interval apart (found by hashing).
  const a = "r/10.0.0.1";
  const b = Array.from({ length: 100 }, (_, i) => `r/10.0.0.${i + 2}`).find((id) => Math.abs(off(id) - off(a)) >= interval / 4)!;
  const plans = [a, b].map((id) => {
    const planned: number[] = [];
    const s = new Scheduler(interval, {}, undefined, id);
    s.sync([{ key, fingerprint: "", run: async (ctx) => void planned.push(ctx.plannedMs!) }]);
    return { s, planned };
  });
  try {
    await waitUntil(() => plans.every((p) => p.planned.length >= 4), 10_000);
  } finally {
    for (const p of plans) p.s.stop();
  }
  for (const [i, id] of [a, b].entries()) {
    const planned = plans[i]!.planned;
    // Every start on the plan: interval start + this agent's offset, consecutive rounds one interval apart.
    for (const t of planned) expect(t % interval).toBe(off(id));
    for (let k = 1; k < planned.length; k++) expect(planned[k]! - planned[k - 1]!).toBe(interval);
  }
  expect(Math.abs(off(a) - off(b))).toBeGreaterThanOrEqual(interval / 4);
});

test("a wall-clock step (-1 h, then +1 h) neither stalls a target nor fires its rounds back to back; weights stay in (0, 1]", async () => {
  const interval = 100;
  let step = 0;
  const clock = { wallMs: () => Date.now() + step, monoMs: () => performance.now() };
  const rounds: { sinceLastMs: number; at: number }[] = [];
  const s = new Scheduler(interval, {}, undefined, "r/10.0.0.1", clock);
  s.sync([{ key: "icmp/r/127.0.0.1", fingerprint: "", run: async (ctx) => void rounds.push({ sinceLastMs: ctx.sinceLastMs, at: performance.now() }) }]);
  try {
    await waitUntil(() => rounds.length >= 3, 10_000);
    step = -3_600_000; // the wall clock jumps back an hour: the old scheduler waited that hour
    const before = rounds.length;
    await waitUntil(() => rounds.length >= before + 3, 10_000);
    step = 3_600_000; // and forward: the old scheduler fired 36,000 overdue rounds back to back
    const mid = rounds.length;
    await waitUntil(() => rounds.length >= mid + 3, 10_000);
  } finally {
    s.stop();
  }
  // Every round after the first reports a positive share of the interval (the result's sample_weight).
  for (const r of rounds.slice(1)) {
    expect(r.sinceLastMs).toBeGreaterThan(0);
    expect(r.sinceLastMs).toBeLessThanOrEqual(interval);
  }
  // Back-to-back firing shows as many rounds in a short time: count is bounded by elapsed time.
  const elapsed = rounds.at(-1)!.at - rounds[0]!.at;
  expect(rounds.length).toBeLessThanOrEqual(Math.ceil(elapsed / interval) + 2);
});

test("late rounds: after a stall (the monotonic clock moved 1 s while no timer ran) every round that catches up counts as due and late", async () => {
  const interval = 100; // threshold max(100 ms, 10 ms) = 100 ms
  let lag = 0;
  const clock = { wallMs: () => Date.now(), monoMs: () => performance.now() + lag };
  let rounds = 0;
  const s = new Scheduler(interval, {}, undefined, "r/10.0.0.1", clock);
  s.sync([{ key: "icmp/r/127.0.0.1", fingerprint: "", run: async () => void rounds++ }]);
  try {
    await waitUntil(() => rounds >= 2, 10_000);
    s.takeHealth();
    const before = rounds;
    lag = 1000; // as after SIGSTOP/SIGCONT: the clock went on, the process did not
    // Ten rounds were due in that second: they fire back to back, each later than the next.
    await waitUntil(() => rounds >= before + 3, 10_000);
    await Bun.sleep(50);
  } finally {
    s.stop();
  }
  const h = s.takeHealth();
  // The catch-up rounds were 1000, 900, ..., 200 ms late (and more by however late their timers
  // ran): at least nine over the threshold. The largest lateness of a round that started is that of the first, the stall's 1 s
  // (less the millisecond by which a timer may fire before performance.now() reaches its time).
  expect(h.roundsDue).toBeGreaterThanOrEqual(10);
  expect(h.roundsLate).toBeGreaterThanOrEqual(9);
  expect(h.roundsLate).toBeLessThanOrEqual(h.roundsDue);
  expect(h.maxLatenessSeconds).toBeGreaterThanOrEqual(0.99);
  // takeHealth() resets: nothing came due since.
  expect(s.takeHealth()).toEqual({ roundsDue: 0, roundsLate: 0, maxLatenessSeconds: 0 });
});

test("late rounds: a round skipped because the target's previous round still runs is not counted (a lossy target waits out its timeouts; that is not a starved agent)", async () => {
  const interval = 100;
  const x = job("icmp/r/127.0.0.1", () => false, { holdMs: 250 }); // each round holds two more plan slots
  const s = new Scheduler(interval, {}, undefined, "r/10.0.0.1");
  s.sync([x.j]);
  try {
    await waitUntil(() => x.rounds.length >= 3, 10_000);
  } finally {
    s.stop();
  }
  const h = s.takeHealth();
  expect(x.maxRunning()).toBe(1);
  // Only the rounds that started came due; the two slots each round held were skipped, uncounted.
  expect(h.roundsDue).toBe(x.rounds.length);
  expect(h.roundsLate).toBeLessThanOrEqual(h.roundsDue);
});

test("late rounds: a round that fires before its planned monotonic time is due and on time", async () => {
  let lag = 0;
  const clock = { wallMs: () => Date.now(), monoMs: () => performance.now() + lag };
  let rounds = 0;
  const s = new Scheduler(100, {}, undefined, "r/10.0.0.1", clock);
  s.sync([{ key: "icmp/r/127.0.0.1", fingerprint: "", run: async () => void rounds++ }]);
  try {
    await waitUntil(() => rounds >= 1, 10_000);
    lag = -60_000; // the clock reads a minute earlier: the pending round fires 60 s ahead of its plan
    s.takeHealth();
    const before = rounds;
    await waitUntil(() => rounds > before, 10_000);
  } finally {
    s.stop();
  }
  // The one round that fired (the next is planned a minute of this clock away) was on time.
  expect(s.takeHealth()).toEqual({ roundsDue: 1, roundsLate: 0, maxLatenessSeconds: 0 });
});

test("the lateness threshold is max(100 ms, 10 % of the probe interval)", () => {
  expect(lateThresholdMs(100)).toBe(100);
  expect(lateThresholdMs(1000)).toBe(100);
  expect(lateThresholdMs(15_000)).toBe(1500);
});

async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

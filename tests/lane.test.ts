/**
 * The server's background lane (lib/server/lane.ts): jobs run one at a time in arrival order, in
 * slices, and the event loop runs between slices, so a socket read or a timer is served while a
 * long job is still working. Behaviour only: no timing bound (the slice is a clock the test moves).
 */
import { describe, expect, test } from "bun:test";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Lane, Turns } from "../lib/server/lane.ts";
import { drain, type Steps } from "../lib/steps.ts";

/** A job of `n` steps that logs each step as `${name}${i}`; the fake clock moves 1 ms per step. */
function* job(name: string, n: number, log: string[], clock: { t: number }): Steps<string> {
  for (let i = 0; i < n; i++) {
    log.push(`${name}${i}`);
    clock.t += 1;
    yield;
  }
  return `${name} done`;
}

describe("Lane", () => {
  test("runs jobs one at a time in arrival order, in slices of sliceMs, and returns their results", async () => {
    const clock = { t: 0 };
    const lane = new Lane(3, () => clock.t);
    const log: string[] = [];
    const ticks: number[] = [];
    const a = lane.run(job("a", 7, log, clock), 7);
    const b = lane.run(job("b", 2, log, clock), 2);
    expect(lane.backlog).toBe(9);
    expect(log).toEqual([]); // never inside run()
    // A macrotask between slices sees the log grow by one slice at a time.
    let watching = true;
    const watch = () => {
      ticks.push(log.length);
      if (watching) setImmediate(watch);
    };
    setImmediate(watch);
    expect(await Promise.all([a, b])).toEqual(["a done", "b done"]);
    watching = false;
    expect(log).toEqual(["a0", "a1", "a2", "a3", "a4", "a5", "a6", "b0", "b1"]);
    expect(lane.backlog).toBe(0);
    expect(lane.length).toBe(0);
    // 9 steps of 1 ms in slices of 3 ms: at least 3 slices, and timers ran between them.
    expect(lane.slices).toBeGreaterThanOrEqual(3);
    expect([...new Set(ticks.filter((n) => n > 0 && n < 9))]).toEqual([3, 6]);
  });

  test("a backlogged lane's next slice lasts as long as the event loop took in between (5..20 ms here): about half of the thread", async () => {
    const clock = { t: 0 };
    const lane = new Lane(3, () => clock.t, {}, 20);
    const log: string[] = [];
    const done = lane.run(job("e", 100, log, clock));
    // Other work of the loop: 12 ms of "RPCs" at each turn, then 30 ms at one turn.
    const seen: number[] = [];
    let turns = 0, running = true;
    const rpcs = () => {
      seen.push(log.length);
      clock.t += ++turns === 4 ? 30 : 12;
      if (running) setImmediate(rpcs);
    };
    setImmediate(rpcs);
    await done;
    running = false;
    // Slices: 3 steps (nothing waited yet), then 12 per turn, capped at 20 after the 30 ms turn.
    const steps = [...new Set(seen)].filter((n) => n > 0 && n < 100).map((n, i, a) => n - (a[i - 1] ?? 0));
    expect(steps[0]).toBe(3);
    expect(steps.filter((n) => n === 20).length).toBe(1);
    expect(steps.slice(1).every((n) => n === 12 || n === 20)).toBe(true);
  });

  test("runAfter: start() runs when the job reaches the head, the lane waits for it, and undefined means no work", async () => {
    const clock = { t: 0 };
    const lane = new Lane(3, () => clock.t);
    const log: string[] = [];
    let release!: (ok: boolean) => void;
    const a = lane.run(job("a", 4, log, clock));
    const b = lane.runAfter(async () => {
      log.push("b-start");
      const ok = await new Promise<boolean>((r) => (release = r));
      return ok ? job("b", 2, log, clock) : undefined;
    }, 2);
    const c = lane.run(job("c", 1, log, clock));
    expect(await a).toBe("a done");
    await new Promise((r) => setImmediate(r));
    // a finished, b's start() is pending: c waits behind it.
    expect(log).toEqual(["a0", "a1", "a2", "a3", "b-start"]);
    expect(lane.backlog).toBe(2);
    release(true);
    expect(await b).toBe("b done");
    expect(await c).toBe("c done");
    expect(log.slice(5)).toEqual(["b0", "b1", "c0"]);
    // No work: resolves undefined, the next job runs.
    const d = lane.runAfter(async () => undefined, 5);
    const e = lane.run(job("e", 1, log, clock));
    expect([await d, await e]).toEqual([undefined, "e done"]);
    expect(lane.backlog).toBe(0);
  });

  test("a job that throws rejects its own promise; the jobs behind it still run", async () => {
    const lane = new Lane(5);
    const bad = function* (): Steps {
      yield;
      throw new Error("broken batch");
    };
    const log: string[] = [];
    const clock = { t: 0 };
    const [r1, r2] = await Promise.allSettled([lane.run(bad(), 3), lane.run(job("c", 2, log, clock))]);
    expect(r1.status).toBe("rejected");
    expect((r1 as PromiseRejectedResult).reason.message).toBe("broken batch");
    expect(r2).toEqual({ status: "fulfilled", value: "c done" });
    expect(lane.backlog).toBe(0);
  });

  test("an HTTP request that arrives while a long job runs is answered before the job ends", async () => {
    const lane = new Lane(2);
    let steps = 0;
    let jobDone = false;
    // About 2 s of work in steps of ~1 ms (busy-waiting), far longer than a request takes.
    const long = function* (): Steps {
      for (let i = 0; i < 2000; i++) {
        const t = performance.now();
        while (performance.now() - t < 1);
        steps++;
        yield;
      }
      jobDone = true;
    };
    const server = http.createServer((_req, res) => res.end(JSON.stringify({ jobDone, steps })));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const running = lane.run(long());
      await Bun.sleep(20);
      const seen = (await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)).json()) as { jobDone: boolean; steps: number };
      expect(seen.jobDone).toBe(false);
      expect(seen.steps).toBeGreaterThan(0);
      await running;
      expect(jobDone).toBe(true);
    } finally {
      server.close();
    }
  }, 30_000);

  test("drain() runs steps at once and returns the result", () => {
    const clock = { t: 0 };
    const log: string[] = [];
    expect(drain(job("d", 3, log, clock))).toBe("d done");
    expect(log).toEqual(["d0", "d1", "d2"]);
  });
});

describe("Turns", () => {
  test("heavy answers take turns in arrival order, and a socket is served between turns", async () => {
    const turns = new Turns(10);
    let done = 0;
    const order: number[] = [];
    const server = http.createServer((_req, res) => res.end(JSON.stringify({ done })));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      // 300 answers of ~2 ms each, all asking at once (a burst of refetches).
      const answers = Array.from({ length: 300 }, (_, i) =>
        turns.run(() => {
          const t = performance.now();
          while (performance.now() - t < 2);
          order.push(i);
          return ++done;
        }),
      );
      expect(turns.queued).toBe(300);
      const seen = (await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)).json()) as { done: number };
      // Answered before the burst ended: it waited behind some answers, not all of them.
      expect(seen.done).toBeLessThan(300);
      expect(await Promise.all(answers)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(order).toEqual(Array.from({ length: 300 }, (_, i) => i));
      expect(turns.queued).toBe(0);
    } finally {
      server.close();
    }
  }, 30_000);

  test("a turn answers back to back within its budget, and one that throws passes its turn on", async () => {
    let clock = 0;
    const turns = new Turns(10, () => clock);
    // A counter moved by every visit of the event loop: answers of one turn see the same value.
    let tick = 0, ticking = true;
    const loop = () => (tick++, ticking && setImmediate(loop));
    setImmediate(loop);
    const visits: number[] = [];
    // Each answer moves the clock 4 ms: a 10 ms budget runs three per turn (at 0, 4 and 8 ms).
    const answers = Array.from({ length: 7 }, (_, i) =>
      turns.run(() => {
        visits.push(tick);
        clock += 4;
        if (i === 1) throw new Error("bad pool");
        return i;
      }),
    );
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    ticking = false;
    const perTurn = [...new Set(visits)].map((t) => visits.filter((x) => x === t).length);
    expect(perTurn).toEqual([3, 3, 1]);
    expect(turns.queued).toBe(0);
    // The lane is idle again: a later answer gets its own turn.
    expect(await turns.run(() => "later")).toBe("later");
  });
});

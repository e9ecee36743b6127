/**
 * The server's background lane (docs/scale.md "The server's thread"). The server answers every
 * RPC on one JavaScript thread; a heartbeat or pool fetch that arrives while that thread files a
 * push of thousands of results, publishes an aggregation window of 300,000 links or packs one for
 * the localiser waits until that work ends: measured at 5,000 agents, 0.5-1.3 s (README "Mesh
 * at scale"). Work that may wait (pushes, window publishing, the localiser's packing) runs here
 * instead, as Steps (lib/steps.ts), in slices of 5-20 ms (LANE_SLICE_MS, LANE_SLICE_MAX_MS):
 * after each slice the thread returns to the event loop, which reads the sockets and answers the
 * RPCs that arrived (control-plane RPCs never enter the lane), then the lane goes on.
 *
 * Jobs run one at a time in arrival order (FIFO): a push filed after a window's publishing
 * began lands in the next window's bookkeeping only once that publishing ended, as it would
 * have without the lane. The backlog of queued jobs is bounded by the caller (lane.backlog).
 */
import type { Steps } from "../steps.ts";

/** Shortest run of lane work between two visits of the event loop, milliseconds. */
export const LANE_SLICE_MS = 5;
/**
 * Longest run, milliseconds. A lane with work left after a slice gets, at its next one, as long
 * as the event loop took in between (within these bounds): at least about half of the thread
 * while it has a backlog, so pushes are filed at the rate they come even when RPCs keep the loop
 * busy, and never more than this at a time.
 */
export const LANE_SLICE_MAX_MS = 20;

/** Default of -server.push.queue.max.results: pushed results waiting in the lane at most (~3-8 s of filing on the 2-core VM). */
export const PUSH_QUEUE_MAX_RESULTS = 200_000;

interface Job {
  /** The work; undefined until `start` gave it. */
  steps?: Steps<unknown>;
  /** Called when the job reaches the head of the lane; the lane waits for it (runAfter()). */
  start?: () => Promise<Steps<unknown> | undefined>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** What the caller counts against the backlog (e.g. a push's results). */
  weight: number;
}

/** What the lane reports (the server's metrics). */
export interface LaneHooks {
  /** A slice ended after `ms` milliseconds of work. */
  slice?(ms: number): void;
  /** The backlog (sum of queued and running jobs' weights) changed to `weight`. */
  backlog?(weight: number): void;
}

/** Runs Steps in slices between visits of the event loop, one job at a time (FIFO). */
export class Lane {
  private readonly queue: Job[] = [];
  private head = 0;
  private scheduled = false;
  private queuedWeight = 0;
  /** The head job's start() is running: the lane waits for it. */
  private starting = false;
  /** When the last slice that left work behind ended (now()), or -1 when the lane ran dry. */
  private leftWorkAt = -1;
  /** Slices run so far. */
  slices = 0;

  /**
   * @param sliceMs shortest run of work before the lane lets the event loop in, milliseconds
   * @param now monotonic clock, milliseconds
   * @param maxSliceMs longest run (a backlogged lane's slice is as long as the loop took since its last one, within sliceMs..maxSliceMs)
   */
  constructor(readonly sliceMs = LANE_SLICE_MS, private readonly now: () => number = () => performance.now(), private readonly hooks: LaneHooks = {}, readonly maxSliceMs = LANE_SLICE_MAX_MS) {}

  /** Jobs queued or running. */
  get length(): number {
    return this.queue.length - this.head;
  }

  /** Sum of the queued and running jobs' weights (run()'s `weight`). */
  get backlog(): number {
    return this.queuedWeight;
  }

  /**
   * Queues `steps` behind the jobs already queued; they start at a later turn of the event loop,
   * never inside this call. @param weight counted in `backlog` until the job ends
   * @returns the work's result, or its error
   */
  run<T>(steps: Steps<T>, weight = 0): Promise<T> {
    return this.enqueue<T>({ steps }, weight);
  }

  /**
   * Queues a job whose work is decided when it reaches the head of the lane: `start` runs then,
   * and the lane waits for it (nothing else is filed meanwhile), so what it decides (e.g. claiming
   * a push's batch identity) happens right before the work, not seconds before it behind a
   * backlog. `start` giving undefined ends the job with no work.
   * @param weight counted in `backlog` until the job ends
   * @returns the work's result, undefined when there was none, or the error of either
   */
  runAfter<T>(start: () => Promise<Steps<T> | undefined>, weight = 0): Promise<T | undefined> {
    return this.enqueue<T | undefined>({ start }, weight);
  }

  private enqueue<T>(work: Pick<Job, "steps" | "start">, weight: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...work, resolve: resolve as (v: unknown) => void, reject, weight });
      this.queuedWeight += weight;
      if (weight) this.hooks.backlog?.(this.queuedWeight);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.starting) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  /** One slice: steps of the head jobs until the slice is used up or the queue is empty. */
  private readonly pump = (): void => {
    this.scheduled = false;
    const start = this.now();
    const share = this.leftWorkAt >= 0 ? start - this.leftWorkAt : 0;
    const end = start + Math.min(this.maxSliceMs, Math.max(this.sliceMs, share));
    this.slices++;
    try {
      while (this.head < this.queue.length) {
        const job = this.queue[this.head]!;
        if (!job.steps) {
          this.begin(job);
          return; // the lane goes on when start() settles
        }
        let r: IteratorResult<unknown, unknown>;
        try {
          do r = job.steps.next();
          while (!r.done && this.now() < end);
        } catch (e) {
          this.finish(job);
          job.reject(e);
          continue;
        }
        if (!r.done) return; // the slice is used up: the job goes on at the next one
        this.finish(job);
        job.resolve(r.value);
        if (this.now() >= end) return;
      }
    } finally {
      const t = this.now();
      this.hooks.slice?.(t - start);
      this.leftWorkAt = this.head < this.queue.length ? t : -1;
      if (this.head < this.queue.length && !this.starting) this.schedule();
    }
  };

  /** Runs the head job's start(); the lane resumes when it settles. */
  private begin(job: Job): void {
    this.starting = true;
    job.start!().then(
      (steps) => {
        this.starting = false;
        if (steps) job.steps = steps;
        else {
          this.finish(job);
          job.resolve(undefined);
        }
        this.schedule();
      },
      (e) => {
        this.starting = false;
        this.finish(job);
        job.reject(e);
        this.schedule();
      },
    );
  }

  private finish(job: Job): void {
    this.head++;
    this.queuedWeight -= job.weight;
    if (job.weight) this.hooks.backlog?.(this.queuedWeight);
    // Drop finished jobs in chunks, not with a shift() per job.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * Measures how late the event loop runs a timer: every `everyMs` a timer is set, and the time past
 * its due moment is what any RPC arriving then waited before the server could read it (lane
 * slices, garbage collection, anything that holds the thread). Reported in seconds.
 * @returns a function that stops the measuring
 */
export function watchLoopDelay(report: (seconds: number) => void, everyMs = 100, now: () => number = () => performance.now()): () => void {
  let due = now() + everyMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    const t = now();
    report(Math.max(0, t - due) / 1000);
    due = t + everyMs;
    timer = setTimeout(tick, everyMs);
    timer.unref?.();
  };
  timer = setTimeout(tick, everyMs);
  timer.unref?.();
  return () => clearTimeout(timer);
}

/** How long one visit of the event loop answers whole pools back to back at most, milliseconds (Turns). */
export const TURN_BUDGET_MS = 10;

/**
 * Takes turns for heavy answers that must not wait in the lane (a whole pool: milliseconds of
 * encoding each), in arrival order. Agents told of a pool change fetch it in bursts (a join tells
 * up to -server.pool.refetch.rate of them a second), and a burst answered back to back held the
 * thread for its whole length: a heartbeat arriving then waited behind every answer of it. Here
 * answers run back to back for at most `budgetMs` (and at least one), then the thread goes back
 * to the event loop, which reads the sockets and answers what arrived, before the next ones.
 */
export class Turns {
  private readonly waiting: (() => void)[] = [];
  private head = 0;
  /** A turn is running or scheduled. */
  private busy = false;
  private turnStart = 0;

  /** @param budgetMs answers of one visit run for this long at most, ms; @param now clock, ms */
  constructor(private readonly budgetMs = TURN_BUDGET_MS, private readonly now: () => number = () => performance.now()) {}

  /** Answers waiting for their turn. */
  get queued(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Runs `work` at its turn (synchronous: the thread is held while it runs).
   * @returns what `work` returns; rejects with what it throws
   */
  async run<T>(work: () => T): Promise<T> {
    await new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      if (!this.busy) (this.busy = true), setImmediate(this.visit);
    });
    try {
      return work();
    } finally {
      this.done();
    }
  }

  /** A visit of the event loop: the first answer waiting runs. */
  private readonly visit = () => {
    this.turnStart = this.now();
    this.take()();
  };

  private take(): () => void {
    const resolve = this.waiting[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.waiting.length) (this.waiting.splice(0, this.head), (this.head = 0));
    return resolve;
  }

  /** An answer ended: the next one runs now while the budget lasts, else at the next visit. */
  private done(): void {
    if (this.queued === 0) this.busy = false;
    else if (this.now() - this.turnStart < this.budgetMs) this.take()();
    else setImmediate(this.visit);
  }
}

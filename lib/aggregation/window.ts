/**
 * Aggregation windows (docs/aggregation.md "Windows"). Generic over probe kinds: each kind
 * supplies a KindIngest (lib/probes/<kind>/ingest.ts) that counts cumulative series and folds
 * results into per-window accumulators.
 *
 * The rule:
 * - Windows are fixed slices [k·I, (k+1)·I) of wall time, I = -server.aggregation.interval.
 * - A result belongs to the window in which its round ended (the agent's time + duration,
 *   corrected by the agent's clock offset). A round "in the future" counts as ending now.
 * - A window stays open for results until lateness L after its end, then it is published once
 *   to the gauges and closed. L covers one agent push period plus delivery (see latenessMs).
 * - A result whose window is already closed (an outage backlog, a badly skewed clock) goes to the
 *   cumulative series only (counters, histograms) and never into a window's gauges.
 *
 * Memory: one accumulator per open window and kind; at most ceil(L / I) + 2 windows are open.
 *
 * Publishing a window is Steps (lib/steps.ts): the server runs it in slices in its lane
 * (lib/server/lane.ts), since a window of 300,000 links takes about half a second to publish.
 */
import { drain, type Steps } from "../steps.ts";

/** A result as accepted: who sent it and what it says. */
export interface Received<R> {
  sourceRegion: string;
  agentIp: string;
  result: R;
}

/** One window's accumulator of one kind. */
export interface KindWindow<R> {
  add(x: Received<R>): void;
  /**
   * Sets the kind's gauges from this window (called once, when the window closes), a step per
   * region pair; what the kind shows of its last window (e.g. latest()) changes at the last step.
   * @param windowEndMs the window's end, unix ms
   */
  publish(windowEndMs: number): Steps;
}

/** What the window needs from a probe kind on the server. */
export interface KindIngest<R> {
  /** Cumulative series (counters, histograms): every accepted result, at once, in or out of a window. */
  count(x: Received<R>): void;
  openWindow(): KindWindow<R>;
}

/**
 * How long a window stays open after its end, milliseconds: one agent push period (agents push
 * every min(probe interval, aggregation interval)) plus a delivery margin of min(I, 5 s).
 */
export function latenessMs(intervalMs: number): number {
  return intervalMs + Math.min(intervalMs, 5000);
}

/** Open windows of every kind, keyed by window index k (start k·I). */
export class AggregationWindows<K extends string> {
  private readonly open = new Map<number, Map<K, KindWindow<unknown>>>();
  /** Highest window index already published (or skipped): results for it or earlier are late. */
  private closedThrough: number;

  /**
   * @param intervalMs I, milliseconds
   * @param ingests one ingest per kind
   * @param now wall clock, unix milliseconds
   */
  constructor(
    readonly intervalMs: number,
    private readonly ingests: Record<K, KindIngest<unknown>>,
    private readonly now = () => Date.now(),
    readonly allowedLatenessMs = latenessMs(intervalMs),
  ) {
    // At start, windows that would already be published count as closed: a backlog delivered
    // to a fresh server goes to the cumulative series, as it would have on a running one.
    this.closedThrough = this.lastClosable(this.now());
  }

  /** Highest window index whose end + lateness is <= t. */
  private lastClosable(t: number): number {
    return Math.floor((t - this.allowedLatenessMs) / this.intervalMs) - 1;
  }

  /**
   * Files an accepted result.
   * @param endMs when its round ended, unix milliseconds on the server's clock
   * @returns true when it went into an open window, false when it was late (cumulative only)
   */
  add<R>(kind: K, x: Received<R>, endMs: number): boolean {
    const ingest = this.ingests[kind] as KindIngest<R>;
    ingest.count(x);
    const k = Math.floor(Math.min(endMs, this.now()) / this.intervalMs);
    if (!(k > this.closedThrough)) return false; // also false for NaN
    let w = this.open.get(k);
    if (!w) this.open.set(k, (w = new Map()));
    let acc = w.get(kind);
    if (!acc) w.set(kind, (acc = ingest.openWindow()));
    (acc as KindWindow<R>).add(x);
    return true;
  }

  /**
   * Publishes, in order, every open window whose end + lateness has passed, in steps. The windows
   * close when the first step runs: a result for them filed while they are being published is
   * late. @returns windows published
   */
  *tickSteps(): Steps<number> {
    const through = this.lastClosable(this.now());
    const due = [...this.open.keys()].filter((k) => k <= through).sort((a, b) => a - b);
    const windows = due.map((k) => [k, this.open.get(k)!] as const);
    for (const k of due) this.open.delete(k);
    if (through > this.closedThrough) this.closedThrough = through;
    for (const [k, w] of windows) for (const acc of w.values()) yield* acc.publish((k + 1) * this.intervalMs);
    return windows.length;
  }

  /** tickSteps() at once. @returns windows published */
  tick(): number {
    return drain(this.tickSteps());
  }

  /** Milliseconds from now until the next window can be published (for an aligned timer). */
  msUntilNextTick(): number {
    const t = this.now();
    const next = (this.lastClosable(t) + 2) * this.intervalMs + this.allowedLatenessMs;
    return Math.max(1, next - t);
  }

  /** Number of open windows (for tests and logs). */
  get openWindows(): number {
    return this.open.size;
  }
}

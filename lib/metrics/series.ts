/**
 * The server's Prometheus series, with expiry: a gauge's label set
 * not written for `expireAfterMs` (ratio x aggregation interval, -server.series.cache.ratio) is
 * deleted, so a region pair or target that went away leaves /metrics (docs/metrics.md). Counters
 * and histograms (cumulative) live `cumulativeExpireAfterMs` (-server.agent.forget.after): a pair
 * that pauses (its agent failed over to another server, its region cut off and delivering its
 * backlog later) continues its counters instead of restarting them, which rate() would not see. Every
 * metric is declared through a MetricSpec; the specs are also what docs/metrics.md is generated
 * from, so a metric's name, type, labels and help are written once. The families themselves are
 * ours (lib/metrics/family.ts, histogram.ts): one entry per series, rendered in chunks.
 *
 * Plain data only: label values are strings, values numbers (seconds, ratios, counts).
 */
import { Registry } from "prom-client";
import { ValueFamily, type Family } from "./family.ts";
import { BucketHistogram } from "./histogram.ts";

/** A metric's definition (Prometheus naming: base units, `_total` for counters). */
export interface MetricSpec<L extends string = string> {
  name: string;
  type: "gauge" | "counter" | "histogram";
  help: string;
  labelNames: readonly L[];
  /** Histogram bucket upper bounds (seconds). */
  buckets?: readonly number[];
  /** Documentation only: what a label's values are, the unit, how it is computed. */
  doc?: string;
  /** false for series that must never expire (server-wide counters). */
  expires?: boolean;
}

type Labels<L extends string> = Record<L, string>;

/** A gauge whose label sets expire. */
export interface GaugeSeries<L extends string> {
  set(labels: Labels<L>, v: number): void;
  remove(labels: Labels<L>): void;
}

/** A counter whose label sets expire. */
export interface CounterSeries<L extends string> {
  inc(labels: Labels<L>, by?: number): void;
  remove(labels: Labels<L>): void;
}

/** A histogram whose label sets expire. */
export interface HistogramSeries<L extends string> {
  observe(labels: Labels<L>, v: number): void;
  /** Adds per-bucket counts (one per bound, then +Inf) whose observations sum to `sum`. */
  addCounts(labels: Labels<L>, counts: readonly number[], sum: number): void;
  remove(labels: Labels<L>): void;
}

/** The specs and every family (each series keeps its last write time). */
export class SeriesStore {
  readonly specs: MetricSpec[] = [];
  /** Every family in declaration order (the exposition's order), with its spec. */
  private readonly families: { family: Family; spec: MetricSpec }[] = [];

  /**
   * @param expireAfterMs gauge label sets not written for this long are deleted by expire(), milliseconds
   * @param cumulativeExpireAfterMs the same for counters and histograms (at least expireAfterMs), milliseconds
   */
  constructor(private readonly expireAfterMs: number, private readonly now = () => Date.now(), private readonly cumulativeExpireAfterMs = expireAfterMs) {}

  private register<F extends Family>(spec: MetricSpec, family: F): F {
    if (this.specs.some((s) => s.name === spec.name)) throw new Error(`metric ${spec.name} declared twice`);
    this.specs.push(spec);
    this.families.push({ family, spec });
    return family;
  }

  gauge<L extends string>(spec: MetricSpec<L> & { type: "gauge" }): GaugeSeries<L> {
    const g = this.register(spec, new ValueFamily(spec.name, spec.help, "gauge", spec.labelNames, this.now));
    return { set: (l, v) => g.set(l, v), remove: (l) => g.remove(l) };
  }

  counter<L extends string>(spec: MetricSpec<L> & { type: "counter" }): CounterSeries<L> {
    const c = this.register(spec, new ValueFamily(spec.name, spec.help, "counter", spec.labelNames, this.now));
    return { inc: (l, by = 1) => c.inc(l, by), remove: (l) => c.remove(l) };
  }

  histogram<L extends string>(spec: MetricSpec<L> & { type: "histogram" }): HistogramSeries<L> {
    const h = this.register(spec, new BucketHistogram(spec.name, spec.help, spec.buckets ?? [], spec.labelNames, this.now));
    return { observe: (l, v) => h.observe(l, v), addCounts: (l, counts, sum) => h.addCounts(l, counts, sum), remove: (l) => h.remove(l) };
  }

  /** Deletes every label set not written for the expiry time. @returns how many were deleted */
  expire(): number {
    const t = this.now();
    let n = 0;
    for (const { family, spec } of this.families) {
      // Server-wide families (no labels) are about no pair or target: they stay.
      if (spec.expires === false || !spec.labelNames.length) continue;
      n += family.expire(t - (family.type === "gauge" ? this.expireAfterMs : Math.max(this.expireAfterMs, this.cumulativeExpireAfterMs)));
    }
    return n;
  }

  /** Series held, over every family. */
  get size(): number {
    return this.families.reduce((n, f) => n + f.family.size, 0);
  }

  /** The exposition text (Prometheus text format 0.0.4), whole (tests, small registries). */
  async metrics(): Promise<string> {
    let out = "";
    for await (const chunk of this.exposition()) out += chunk;
    return out;
  }

  /**
   * The exposition text in chunks, one metric (or part of a large histogram) at a time, so that a
   * scrape of a large mesh does not hold every sample at once (seen: +280 MB at 300,000 series).
   */
  async *exposition(): AsyncGenerator<string> {
    // A scrape of a large mesh is tens of MB: after every EXPOSITION_SLICE_MS of rendering the
    // thread goes back to the event loop (RPCs, lane slices), not after every part: a scrape
    // that waited a turn per family and chunk took seconds while the lane had a backlog.
    let since = performance.now();
    for (const { family } of this.families) {
      for (const part of family.render()) {
        yield part;
        if (performance.now() - since >= EXPOSITION_SLICE_MS) {
          await nextTurn();
          since = performance.now();
        }
      }
    }
  }

  /** The exposition's content type (Prometheus text format 0.0.4), as prom-client names it. */
  get contentType(): string {
    return Registry.PROMETHEUS_CONTENT_TYPE;
  }
}

/** Rendering between two visits of the event loop during a scrape, milliseconds. */
export const EXPOSITION_SLICE_MS = 5;

/** Resolves at the event loop's next turn (after pending I/O), not in the same one. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

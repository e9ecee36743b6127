/**
 * The server's Prometheus series on a private prom-client Registry, with expiry: a gauge's label set
 * not written for `expireAfterMs` (ratio x aggregation interval, -server.series.cache.ratio) is
 * deleted, so a region pair or target that went away leaves /metrics (docs/metrics.md). Counters
 * and histograms (cumulative) live `cumulativeExpireAfterMs` (-server.agent.forget.after): a pair
 * that pauses (its agent failed over to another server, its region cut off and delivering its
 * backlog later) continues its counters instead of restarting them, which rate() would not see. Every
 * metric is declared through a MetricSpec; the specs are also what docs/metrics.md is generated
 * from, so a metric's name, type, labels and help are written once.
 *
 * Plain data only: label values are strings, values numbers (seconds, ratios, counts).
 */
import { Counter, Gauge, Registry, type LabelValues } from "prom-client";
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

type AnyMetric = Gauge<string> | Counter<string> | BucketHistogram;

/** The registry, the specs, and the last write time of every label set. */
export class SeriesStore {
  readonly registry = new Registry();
  readonly specs: MetricSpec[] = [];
  private readonly touched = new Map<AnyMetric, Map<string, { labels: LabelValues<string>; at: number }>>();
  /** Metrics whose label sets live cumulativeExpireAfterMs (counters, histograms). */
  private readonly cumulative = new Set<AnyMetric>();

  /**
   * @param expireAfterMs gauge label sets not written for this long are deleted by expire(), milliseconds
   * @param cumulativeExpireAfterMs the same for counters and histograms (at least expireAfterMs), milliseconds
   */
  constructor(private readonly expireAfterMs: number, private readonly now = () => Date.now(), private readonly cumulativeExpireAfterMs = expireAfterMs) {}

  private register<L extends string>(spec: MetricSpec<L>): void {
    if (this.specs.some((s) => s.name === spec.name)) throw new Error(`metric ${spec.name} declared twice`);
    this.specs.push(spec as MetricSpec);
  }

  private touch(m: AnyMetric, labels: LabelValues<string>, spec: MetricSpec): void {
    if (spec.expires === false) return;
    let map = this.touched.get(m);
    if (!map) {
      this.touched.set(m, (map = new Map()));
      if (spec.type !== "gauge") this.cumulative.add(m);
    }
    map.set(labelKey(labels), { labels, at: this.now() });
  }

  private untouch(m: AnyMetric, labels: LabelValues<string>): void {
    this.touched.get(m)?.delete(labelKey(labels));
  }

  gauge<L extends string>(spec: MetricSpec<L> & { type: "gauge" }): GaugeSeries<L> {
    this.register(spec);
    const g = new Gauge({ name: spec.name, help: spec.help, labelNames: spec.labelNames, registers: [this.registry] });
    return {
      set: (l, v) => {
        g.set(l, v);
        this.touch(g, l, spec);
      },
      remove: (l) => {
        g.remove(l);
        this.untouch(g, l);
      },
    };
  }

  counter<L extends string>(spec: MetricSpec<L> & { type: "counter" }): CounterSeries<L> {
    this.register(spec);
    const c = new Counter({ name: spec.name, help: spec.help, labelNames: spec.labelNames, registers: [this.registry] });
    return {
      inc: (l, by = 1) => {
        c.inc(l, by);
        this.touch(c, l, spec);
      },
      remove: (l) => {
        c.remove(l);
        this.untouch(c, l);
      },
    };
  }

  histogram<L extends string>(spec: MetricSpec<L> & { type: "histogram" }): HistogramSeries<L> {
    this.register(spec);
    const h = new BucketHistogram(spec.name, spec.help, spec.buckets ?? []);
    this.registry.registerMetric(h as never);
    return {
      observe: (l, v) => {
        h.observe(l, v);
        this.touch(h, l, spec);
      },
      addCounts: (l, counts, sum) => {
        h.addCounts(l, counts, sum);
        this.touch(h, l, spec);
      },
      remove: (l) => {
        h.remove(l);
        this.untouch(h, l);
      },
    };
  }

  /** Deletes every label set not written for the expiry time. @returns how many were deleted */
  expire(): number {
    const t = this.now();
    let n = 0;
    for (const [metric, map] of this.touched) {
      const cutoff = t - (this.cumulative.has(metric) ? Math.max(this.expireAfterMs, this.cumulativeExpireAfterMs) : this.expireAfterMs);
      for (const [k, { labels, at }] of map) {
        if (at < cutoff) {
          metric.remove(labels as Record<string, string>);
          map.delete(k);
          n++;
        }
      }
    }
    return n;
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
    for (const m of this.registry.getMetricsAsArray() as unknown[]) {
      if (m instanceof BucketHistogram) {
        for (const part of m.render()) {
          yield part;
          await nextTurn();
        }
      } else yield `${await this.registry.getSingleMetricAsString((m as { name: string }).name)}\n`;
      // A scrape of a large mesh is tens of MB: RPCs are answered between its parts.
      await nextTurn();
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Resolves at the event loop's next turn (after pending I/O), not in the same one. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Stable key of a label set (label order as given by the caller's object). */
function labelKey(l: LabelValues<string>): string {
  return JSON.stringify(l);
}

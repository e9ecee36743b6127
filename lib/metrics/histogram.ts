/**
 * A Prometheus histogram that takes bucket counts as well as single observations, rendered as
 * prom-client's Histogram is (`_bucket{le}` cumulative, `_sum`, `_count`).
 * prom-client's Histogram only has observe(), which would cost one call per packet; results of
 * agents since 0.2 carry their RTT histogram (IcmpResult.rtt_bucket_counts), added here in O(buckets).
 */
import { TreeFamily, formatValue, type Labels, type SeriesBase } from "./family.ts";

interface Series extends SeriesBase {
  /** Per-bucket (non-cumulative) counts; the last entry is +Inf. */
  counts: number[];
  sum: number;
}

/**
 * A histogram with fixed upper bounds. Series are kept by their label values
 * (lib/metrics/family.ts), rendered in chunks.
 */
export class BucketHistogram extends TreeFamily<Series> {
  readonly type = "histogram";
  private readonly les: string[];

  /**
   * @param bounds ascending upper bounds (the +Inf bucket is added)
   * @param labelNames the labels every series has, in exposition order
   * @param now clock of last-write times, unix ms
   */
  constructor(name: string, help: string, readonly bounds: readonly number[], labelNames: readonly string[] = [], now: () => number = () => Date.now()) {
    super(name, help, labelNames, (text) => ({ text, counts: new Array(bounds.length + 1).fill(0), sum: 0, at: 0 }), now);
    this.les = [...bounds.map((b) => String(b)), "+Inf"];
  }

  private get_(labels: Labels): Series {
    const s = this.series.at(labels);
    s.at = this.now();
    return s;
  }

  /** Index of the bucket `v` falls in (the first bound >= v; the last for +Inf). */
  bucketOf(v: number): number {
    let lo = 0, hi = this.bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v <= this.bounds[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  observe(labels: Labels, v: number): void {
    const s = this.get_(labels);
    s.counts[this.bucketOf(v)]!++;
    s.sum += v;
  }

  /** Adds per-bucket counts (length bounds + 1, the last +Inf) whose values sum to `sum`. */
  addCounts(labels: Labels, counts: readonly number[], sum: number): void {
    const s = this.get_(labels);
    for (let i = 0; i < s.counts.length; i++) s.counts[i]! += counts[i] ?? 0;
    s.sum += sum;
  }

  /** `_bucket{le}` cumulative, then `_sum` and `_count`, straight from the counts. */
  protected format(s: Series): [string, number] {
    const base = s.text;
    const sep = base ? "," : "";
    let out = "", cum = 0;
    for (let i = 0; i < s.counts.length; i++) {
      cum += s.counts[i]!;
      out += `${this.name}_bucket{${base}${sep}le="${this.les[i]}"} ${cum}\n`;
    }
    const braces = base ? `{${base}}` : "";
    out += `${this.name}_sum${braces} ${formatValue(s.sum)}\n${this.name}_count${braces} ${cum}\n`;
    return [out, s.counts.length + 2];
  }
}

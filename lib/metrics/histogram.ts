/**
 * A Prometheus histogram that takes bucket counts as well as single observations, rendered by
 * prom-client's Registry like its own Histogram (`_bucket{le}` cumulative, `_sum`, `_count`).
 * prom-client's Histogram only has observe(), which would cost one call per packet; results of
 * agents since 0.2 carry their RTT histogram (IcmpResult.rtt_bucket_counts), added here in O(buckets).
 */

type Labels = Record<string, string>;

/** Escapes a label value for the text format: backslash, double quote and newline. */
const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

interface Series {
  labels: Labels;
  /** Per-bucket (non-cumulative) counts; the last entry is +Inf. */
  counts: number[];
  sum: number;
}

/** A histogram with fixed upper bounds; registered in a prom-client Registry via registerMetric(). */
export class BucketHistogram {
  readonly type = "histogram";
  private readonly series = new Map<string, Series>();
  private readonly les: string[];

  /** @param bounds ascending upper bounds (the +Inf bucket is added) */
  constructor(readonly name: string, readonly help: string, readonly bounds: readonly number[]) {
    this.les = [...bounds.map((b) => String(b)), "+Inf"];
  }

  private get_(labels: Labels): Series {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels, counts: new Array(this.les.length).fill(0), sum: 0 }));
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

  remove(labels: Labels): void {
    this.series.delete(JSON.stringify(labels));
  }

  reset(): void {
    this.series.clear();
  }

  /**
   * The exposition text (Prometheus text format 0.0.4) in chunks of about `linesPerChunk` lines,
   * rendered straight from the counts: a scrape of a large mesh never holds all of it at once.
   */
  *render(linesPerChunk = 2000): Generator<string> {
    yield `# HELP ${this.name} ${this.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${this.name} histogram\n`;
    let buf: string[] = [];
    for (const s of this.series.values()) {
      const base = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
      const sep = base ? "," : "";
      let cum = 0;
      s.counts.forEach((c, i) => {
        cum += c;
        buf.push(`${this.name}_bucket{${base}${sep}le="${this.les[i]}"} ${cum}`);
      });
      const braces = base ? `{${base}}` : "";
      buf.push(`${this.name}_sum${braces} ${s.sum}`, `${this.name}_count${braces} ${cum}`);
      if (buf.length >= linesPerChunk) {
        yield buf.join("\n") + "\n";
        buf = [];
      }
    }
    if (buf.length) yield buf.join("\n") + "\n";
  }

  /** prom-client's metric interface: the values to render. */
  get() {
    const values: { metricName: string; labels: Labels; value: number }[] = [];
    for (const s of this.series.values()) {
      let cum = 0;
      s.counts.forEach((c, i) => {
        cum += c;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: this.les[i]! }, value: cum });
      });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: cum });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }
}

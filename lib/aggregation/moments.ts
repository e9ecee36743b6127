/**
 * RTT statistics (docs/aggregation.md): count, mean, min, max and population standard deviation
 * of samples, kept as running moments so that rounds and windows merge exactly without keeping
 * the samples. A leaf module: the ICMP prober summarises a round with it, the server's windows
 * merge those summaries with it. All values in the caller's unit (seconds everywhere here).
 */

/** Summary statistics of samples. `stddev` is the population standard deviation (ProberMesh's jitter). */
export interface RttStats {
  n: number;
  min: number;
  mean: number;
  max: number;
  stddev: number;
}

/**
 * Running moments (Welford / Chan et al.'s parallel update): add samples or merge summaries in any
 * order; the result equals the statistics of all the samples together.
 */
export class Moments {
  n = 0;
  mean = 0;
  /** Sum of squared deviations from the mean. */
  private m2 = 0;
  min = Infinity;
  max = -Infinity;

  /** Adds one sample. */
  add(x: number): this {
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    return this;
  }

  /** Merges the summary of `n` samples (population stddev). */
  merge(s: RttStats): this {
    if (s.n <= 0) return this;
    const n = this.n + s.n;
    const d = s.mean - this.mean;
    this.m2 += s.stddev * s.stddev * s.n + (d * d * this.n * s.n) / n;
    this.mean += (d * s.n) / n;
    this.n = n;
    if (s.min < this.min) this.min = s.min;
    if (s.max > this.max) this.max = s.max;
    return this;
  }

  /** Population standard deviation; 0 for fewer than two samples. */
  get stddev(): number {
    return this.n > 1 ? Math.sqrt(Math.max(0, this.m2 / this.n)) : 0;
  }

  /** The statistics so far; all zero when empty. */
  stats(): RttStats {
    return this.n ? { n: this.n, min: this.min, mean: this.mean, max: this.max, stddev: this.stddev } : { n: 0, min: 0, mean: 0, max: 0, stddev: 0 };
  }

  /** Statistics of `samples`. */
  static of(samples: readonly number[]): RttStats {
    const m = new Moments();
    for (const x of samples) m.add(x);
    return m.stats();
  }
}

/**
 * The RTT histogram buckets of the ICMP kind, shared by the agent (IcmpResult.rtt_bucket_counts)
 * and the server (prober_icmp_duration_seconds_total): upper bounds 50 µs × 2^k seconds, k = 0..18
 * (50 µs .. 13.1 s), then +Inf. Written once here.
 */

/** Upper bounds in seconds, ascending. */
export const RTT_BUCKET_BOUNDS: readonly number[] = Array.from({ length: 19 }, (_, k) => 5e-5 * 2 ** k);

/** Entries of rtt_bucket_counts: one per bound, then +Inf. */
export const RTT_BUCKETS = RTT_BUCKET_BOUNDS.length + 1;

/** Bucket of an RTT (seconds): the first bound >= it, or the +Inf entry. */
export function rttBucket(seconds: number): number {
  // Bounds double from 50 µs: the index is ceil(log2(rtt / 50 µs)), corrected at the edges.
  if (!(seconds > RTT_BUCKET_BOUNDS[0]!)) return 0;
  let k = Math.min(RTT_BUCKET_BOUNDS.length, Math.ceil(Math.log2(seconds / 5e-5)));
  while (k > 0 && seconds <= RTT_BUCKET_BOUNDS[k - 1]!) k--;
  while (k < RTT_BUCKET_BOUNDS.length && seconds > RTT_BUCKET_BOUNDS[k]!) k++;
  return k;
}

/** Per-bucket counts of `rtts` (seconds): RTT_BUCKETS entries, the last +Inf. */
export function rttBucketCounts(rtts: readonly number[]): number[] {
  const counts = new Array<number>(RTT_BUCKETS).fill(0);
  for (const r of rtts) counts[rttBucket(r)]!++;
  return counts;
}

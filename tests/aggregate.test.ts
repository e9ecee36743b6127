/**
 * docs/aggregation.md on hand-computed inputs, through the server's real aggregation path
 * (ingests, windows, series store) and read back as exposition text.
 */
import { expect, test } from "bun:test";
import { Moments } from "../lib/aggregation/moments.ts";
import { httpResult, icmpResult, pipeline } from "./helpers/aggregate.ts";
import { samples } from "./helpers/procs.ts";

const PAIR = { source_region: "s", target_region: "t" };
const val = (m: Awaited<ReturnType<ReturnType<typeof pipeline>["scrape"]>>, name: string, labels: Record<string, string> = {}) => {
  const s = samples(m, name, labels);
  return s.length === 1 ? Number(s[0]!.value) : s.length === 0 ? undefined : NaN;
};

test("ICMP: loss = Σlost/Σsent, rtt = mean over packets, jitter = mean of per-(agent,target) stddevs, failed", async () => {
  const p = pipeline();
  const t = p.now();
  const add = (agentIp: string, r: ReturnType<typeof icmpResult>) => p.windows.add("icmp", { sourceRegion: "s", agentIp, result: r }, t);
  add("10.0.0.1", icmpResult("x", 4, [0.001, 0.003], t)); // stddev 0.001
  add("10.0.0.2", icmpResult("x", 4, [0.002, 0.002, 0.002, 0.002], t)); // stddev 0
  add("10.0.0.1", icmpResult("y", 2, [], t)); // 100 % loss: a failure
  add("10.0.0.1", icmpResult("z", 0, [], t, { resolvedIp: "", error: "resolve: ENOTFOUND" })); // resolve failure
  expect(p.closeCurrent()).toBe(1);
  const m = await p.scrape();
  expect(val(m, "prober_icmp_packet_loss_rate", PAIR)).toBeCloseTo(4 / 10, 12);
  expect(val(m, "prober_icmp_duration_seconds", { ...PAIR, phase: "rtt" })).toBeCloseTo(0.012 / 6, 12);
  expect(val(m, "prober_icmp_duration_seconds", { ...PAIR, phase: "min" })).toBe(0.001);
  expect(val(m, "prober_icmp_duration_seconds", { ...PAIR, phase: "max" })).toBe(0.003);
  expect(val(m, "prober_icmp_jitter_stddev_seconds", PAIR)).toBeCloseTo(0.0005, 12);
  expect(val(m, "prober_icmp_failed", PAIR)).toBe(2);
  expect(val(m, "prober_icmp_duration_seconds_total_count", PAIR)).toBe(6);
  expect(val(m, "prober_icmp_packets_sent_total", PAIR)).toBe(10);
  expect(val(m, "prober_icmp_packets_received_total", PAIR)).toBe(6);
});

test("ICMP: two rounds of one (agent, target) in a window merge into the stddev of all their packets", async () => {
  const p = pipeline();
  const t = p.now();
  const a = [0.010, 0.012, 0.011], b = [0.020, 0.030];
  for (const rtts of [a, b]) p.windows.add("icmp", { sourceRegion: "s", agentIp: "10.0.0.1", result: icmpResult("x", 3, rtts, t) }, t);
  p.closeCurrent();
  const m = await p.scrape();
  expect(val(m, "prober_icmp_jitter_stddev_seconds", PAIR)).toBeCloseTo(Moments.of([...a, ...b]).stddev, 12);
  expect(val(m, "prober_icmp_duration_seconds", { ...PAIR, phase: "rtt" })).toBeCloseTo(Moments.of([...a, ...b]).mean, 12);
});

test("honest windows: a pair that received nothing has loss 1 and no rtt/min/max/jitter, not the last good values", async () => {
  const p = pipeline();
  p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 4, [0.001, 0.002, 0.001, 0.002], p.now()) }, p.now());
  p.closeCurrent();
  expect(val(await p.scrape(), "prober_icmp_duration_seconds", { ...PAIR, phase: "rtt" })).toBeCloseTo(0.0015, 12);
  p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 4, [], p.now()) }, p.now());
  p.closeCurrent();
  const m = await p.scrape();
  expect(val(m, "prober_icmp_packet_loss_rate", PAIR)).toBe(1);
  for (const phase of ["rtt", "min", "max"]) expect(val(m, "prober_icmp_duration_seconds", { ...PAIR, phase })).toBeUndefined();
  expect(val(m, "prober_icmp_jitter_stddev_seconds", PAIR)).toBeUndefined();
  expect(val(m, "prober_icmp_duration_seconds_total_count", PAIR)).toBe(4); // cumulative: kept
});

test("HTTP: phases are means over successes, failures by reason, earliest expiry, latest status; no success, no phases", async () => {
  const p = pipeline();
  const T = { source_region: "s", target_region: "t", target_addr: "http://u/" };
  const add = (dt: number, x: Parameters<typeof httpResult>[1]) => p.windows.add("http", { sourceRegion: "s", agentIp: "a", result: httpResult(p.now() + dt, x) }, p.now());
  add(0, { processingSeconds: 0.1, sslEarliestCertExpiry: 2000n });
  add(1, { processingSeconds: 0.3, sslEarliestCertExpiry: 1000n });
  add(3, { success: false, failedReason: "status_code", statusCode: 500, processingSeconds: 9 });
  add(2, { success: false, failedReason: "timeout", statusCode: 0 });
  add(2, { success: false, failedReason: "timeout", statusCode: 0 });
  p.closeCurrent();
  let m = await p.scrape();
  expect(val(m, "prober_http_duration_seconds", { ...T, phase: "processing" })).toBeCloseTo(0.2, 12);
  expect(val(m, "prober_http_failed", { ...T, failed_reason: "status_code" })).toBe(1);
  expect(val(m, "prober_http_failed", { ...T, failed_reason: "timeout" })).toBe(2);
  expect(val(m, "prober_http_ssl_earliest_cert_expiry", T)).toBe(1000);
  expect(val(m, "prober_http_status_code", T)).toBe(500); // the latest by probe time
  expect(val(m, "prober_http_probes_total", T)).toBe(5);
  expect(val(m, "prober_http_probes_failed_total", { ...T, failed_reason: "timeout" })).toBe(2);
  add(0, { success: false, failedReason: "connect", statusCode: 0 });
  p.closeCurrent();
  m = await p.scrape();
  for (const phase of ["resolve", "connect", "tls", "processing", "transfer"]) expect(val(m, "prober_http_duration_seconds", { ...T, phase })).toBeUndefined();
  expect(val(m, "prober_http_failed", { ...T, failed_reason: "timeout" })).toBe(0); // seen before, absent now
  expect(val(m, "prober_http_failed", { ...T, failed_reason: "connect" })).toBe(1);
});

test("windows: a result counts in the window its round ended in while it is open; a backlog goes to cumulative series only", async () => {
  const I = 1000;
  const p = pipeline(I);
  const start = p.now();
  // A result of this window, delivered just before lateness runs out: counted in the window.
  p.advance(I + p.windows.allowedLatenessMs - 1);
  expect(p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 2, [0.001, 0.001], start) }, start)).toBe(true);
  // An hour-old result (an outage backlog): late.
  expect(p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 8, [], start - 3600_000) }, start - 3600_000)).toBe(false);
  p.closeCurrent();
  const m = await p.scrape();
  expect(val(m, "prober_icmp_packet_loss_rate", PAIR)).toBe(0); // the backlog's 100 % loss is not in the window
  expect(val(m, "prober_icmp_packets_sent_total", PAIR)).toBe(10); // but it is in the counters
  // Nothing is published before the window's end + lateness.
  const q = pipeline(I);
  q.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 1, [0.001], q.now()) }, q.now());
  q.advance(I);
  expect(q.windows.tick()).toBe(0);
  expect(val(await q.scrape(), "prober_icmp_packet_loss_rate", PAIR)).toBeUndefined();
  expect(q.closeCurrent()).toBe(1);
  expect(val(await q.scrape(), "prober_icmp_packet_loss_rate", PAIR)).toBe(0);
});

test("Moments: adding samples and merging summaries give the same statistics", () => {
  const xs = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4];
  const merged = new Moments().merge(Moments.of(xs.slice(0, 2))).merge(Moments.of([])).merge(Moments.of(xs.slice(2)));
  const all = Moments.of(xs);
  expect(merged.n).toBe(6);
  expect(merged.mean).toBeCloseTo(all.mean, 14);
  expect(merged.stddev).toBeCloseTo(all.stddev, 14);
  expect([merged.min, merged.max]).toEqual([0.1, 0.9]);
});

test("rtt_bucket_counts (agents since 0.2) and rtts_seconds (0.1) give the same published series", async () => {
  const { rttBucketCounts, rttBucket, RTT_BUCKET_BOUNDS } = await import("../lib/probes/icmp/buckets.ts");
  // Edges: exactly on a bound belongs to that bound's bucket (le is inclusive).
  expect(rttBucket(5e-5)).toBe(0);
  expect(rttBucket(5.0001e-5)).toBe(1);
  expect(rttBucket(RTT_BUCKET_BOUNDS[18]!)).toBe(18);
  expect(rttBucket(100)).toBe(19);
  const rtts = [0.00004, 0.0001, 0.0003, 0.002, 0.002, 0.05, 20];
  const out: string[] = [];
  for (const form of ["rtts", "counts"] as const) {
    const p = pipeline();
    const r = icmpResult("x", 10, rtts, p.now());
    if (form === "counts") {
      r.rttBucketCounts = rttBucketCounts(r.rttsSeconds);
      r.rttsSeconds = [];
    }
    expect(p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: r }, p.now())).toBe(true);
    p.closeCurrent();
    out.push((await p.store.metrics()).split("\n").filter((l) => l.startsWith("prober_icmp")).join("\n"));
  }
  expect(out[1]).toEqual(out[0]!);
  expect(out[0]).toContain('prober_icmp_duration_seconds_total_bucket{source_region="s",target_region="t",le="0.00005"} 1');
  expect(out[0]).toContain('prober_icmp_duration_seconds_total_bucket{source_region="s",target_region="t",le="+Inf"} 7');
});

test("ICMP error-state re-probes count for the time they sample, not their packets; raw counters count every packet, weighted ones as the window", async () => {
  const p = pipeline(15_000);
  const t = p.now();
  const add = (r: ReturnType<typeof icmpResult>) => p.windows.add("icmp", { sourceRegion: "s", agentIp: "10.0.0.1", result: r }, t);
  // A 15 s window: a clean regular round (weight 1), then five lossy re-probes 1 s apart with a
  // 15 s probe interval (weight 1/15 each). Counted per packet it would read 20 / 24 = 83 % loss.
  add(icmpResult("x", 4, [0.001, 0.001, 0.001, 0.001], t, { sampleWeight: 1 }));
  for (let i = 0; i < 5; i++) add(icmpResult("x", 4, [], t, { sampleWeight: 1 / 15, errorState: true }));
  p.closeCurrent();
  const m = await p.scrape();
  const timeWeighted = (5 * 4 / 15) / (4 + (5 * 4) / 15); // 1.33 / 5.33 = 25 %: 5 s of 15 lossy
  expect(val(m, "prober_icmp_packet_loss_rate", PAIR)).toBeCloseTo(timeWeighted, 12);
  expect(val(m, "prober_icmp_error_state_links", PAIR)).toBe(1);
  expect(val(m, "prober_icmp_packets_sent_total", PAIR)).toBe(24);
  expect(val(m, "prober_icmp_packets_received_total", PAIR)).toBe(4);
  const ws = val(m, "prober_icmp_weighted_packets_sent_total", PAIR)!, wr = val(m, "prober_icmp_weighted_packets_received_total", PAIR)!;
  expect(ws).toBeCloseTo(4 + 20 / 15, 9);
  expect(1 - wr / ws).toBeCloseTo(timeWeighted, 9);
});

test("ICMP failed = Σ sample_weight over failed results: failed rounds in regular-round equivalents", async () => {
  const p = pipeline(15_000);
  const t = p.now();
  const add = (agentIp: string, r: ReturnType<typeof icmpResult>) => p.windows.add("icmp", { sourceRegion: "s", agentIp, result: r }, t);
  // One dead target in error state: a regular round that lost everything (w 1 - 12/15: the last
  // re-probe started 12 s before it), then three re-probes that lost everything too (w 4/15 each:
  // back to back, a lossy round lasting about 4 s).
  add("10.0.0.1", icmpResult("x", 4, [], t, { sampleWeight: 3 / 15, errorState: true }));
  for (let i = 0; i < 3; i++) add("10.0.0.1", icmpResult("x", 4, [], t, { sampleWeight: 4 / 15, errorState: true }));
  // Other failures: a resolve error (w 0.5), nothing sent (no socket, w 0.25).
  add("10.0.0.2", icmpResult("y", 0, [], t, { sampleWeight: 0.5, resolvedIp: "", error: "resolve: no answer from the resolver within 5s" }));
  add("10.0.0.2", icmpResult("z", 0, [], t, { sampleWeight: 0.25, error: "no ICMP socket: ..." }));
  // Not failures: partial loss and a clean round, whatever their weight.
  add("10.0.0.2", icmpResult("w", 4, [0.001], t, { sampleWeight: 0.125 }));
  add("10.0.0.3", icmpResult("w", 4, [0.001, 0.001, 0.001, 0.001], t, { sampleWeight: 1 }));
  // Another pair: a failed round of an agent before 0.3 (no sample_weight) counts 1.
  p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("v", 4, [], t, { targetRegion: "u" }) }, t);
  p.closeCurrent();
  const m = await p.scrape();
  // The dead target's 4 failed results are 1 round's worth (3/15 + 3 × 4/15 = 15/15); counted
  // per result the pair would read 4 + 2 = 6.
  expect(val(m, "prober_icmp_failed", PAIR)).toBeCloseTo(1 + 0.5 + 0.25, 12);
  expect(val(m, "prober_icmp_failed", { source_region: "s", target_region: "u" })).toBe(1);
});

test("ICMP results of agents before 0.3 (no sample_weight) weigh 1: loss and weighted counters are Σ lost / Σ sent", async () => {
  const p = pipeline();
  const t = p.now();
  p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("x", 4, [0.001], t) }, t);
  p.windows.add("icmp", { sourceRegion: "s", agentIp: "a", result: icmpResult("y", 8, [0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001], t) }, t);
  p.closeCurrent();
  const m = await p.scrape();
  expect(val(m, "prober_icmp_packet_loss_rate", PAIR)).toBeCloseTo(3 / 12, 12);
  expect(val(m, "prober_icmp_weighted_packets_sent_total", PAIR)).toBe(12);
  expect(val(m, "prober_icmp_weighted_packets_received_total", PAIR)).toBe(9);
});

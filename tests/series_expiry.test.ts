/**
 * Series expiry (docs/metrics.md "Expiry"): gauges go ratio x interval after their last write,
 * counters and histograms only after -server.agent.forget.after, so a pair whose results pause
 * continues its counters instead of restarting them with a backlog rate() would never count.
 */
import { expect, test } from "bun:test";
import { SeriesStore } from "../lib/metrics/series.ts";
import { parseExposition, samples } from "./helpers/procs.ts";

test("a paused pair's gauges expire after ratio x interval, its counters and histogram only after the forget time", async () => {
  let now = 1_000_000;
  const store = new SeriesStore(75_000, () => now, 3_600_000);
  const l = { source_region: "a", target_region: "b" };
  const g = store.gauge({ name: "t_loss", type: "gauge", help: "h", labelNames: ["source_region", "target_region"] });
  const c = store.counter({ name: "t_sent_total", type: "counter", help: "h", labelNames: ["source_region", "target_region"] });
  const h = store.histogram({ name: "t_rtt_seconds", type: "histogram", help: "h", labelNames: ["source_region", "target_region"], buckets: [0.001, 0.01] });
  g.set(l, 1);
  c.inc(l, 64);
  h.addCounts(l, [1, 0, 0], 0.0005);
  const read = async () => parseExposition(await store.metrics());

  now += 80_000; // past ratio x interval: the gauge goes, the cumulative series stay
  expect(store.expire()).toBe(1);
  let m = await read();
  expect(samples(m, "t_loss")).toHaveLength(0);
  expect(samples(m, "t_sent_total", l)[0]?.value).toBe("64");
  expect(samples(m, "t_rtt_seconds_count", l)[0]?.value).toBe("1");

  c.inc(l, 64); // the pair resumes: its counter continues
  m = await read();
  expect(samples(m, "t_sent_total", l)[0]?.value).toBe("128");

  now += 3_600_001; // silent for the forget time: everything goes
  expect(store.expire()).toBe(2);
  m = await read();
  expect(samples(m, "t_sent_total")).toHaveLength(0);
  expect(samples(m, "t_rtt_seconds_count")).toHaveLength(0);
});

/**
 * The server's own metric families (lib/metrics/family.ts, histogram.ts) against prom-client's
 * Gauge, Counter and Histogram as the oracle: the same writes give the same exposition text
 * (escaping, label order, +Inf/NaN, families without labels), in chunks, with expiry.
 */
import { expect, test } from "bun:test";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { LabelTree, ValueFamily } from "../lib/metrics/family.ts";
import { BucketHistogram } from "../lib/metrics/histogram.ts";
import { SeriesStore } from "../lib/metrics/series.ts";

/**
 * Exposition lines with each sample's labels in name order (escapes kept as written), sorted:
 * prom-client writes labels in the caller's order, `le` first, and may order series differently.
 */
const lines = (text: string) =>
  text.split("\n").filter(Boolean).map((line) => {
    if (line.startsWith("#")) return line;
    const m = /^(\S+?)(?:\{(.*)\})? (\S+)$/.exec(line)!;
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}="${x[2]}"`).sort();
    return `${m[1]}{${labels.join(",")}} ${m[3]}`;
  }).sort();
const render = (f: { render(n?: number): Generator<string> }, n?: number) => [...f.render(n)].join("");

const NAMES = ["source_region", "target_region", "reason"] as const;
// Label values that need escaping, unicode, empty, and label objects given in another key order.
const WRITES: [Record<string, string>, number][] = [
  [{ source_region: "eu-west", target_region: "us-east", reason: "timeout" }, 0.25],
  [{ reason: "dns", target_region: 'quo"te', source_region: "back\\slash" }, 3],
  [{ source_region: "new\nline", target_region: "ünï", reason: "" }, 1e-9],
  [{ source_region: "a", target_region: "b", reason: "inf" }, Infinity],
  [{ source_region: "a", target_region: "b", reason: "-inf" }, -Infinity],
  [{ source_region: "a", target_region: "b", reason: "nan" }, NaN],
];

test("a gauge renders as prom-client's Gauge renders the same writes", async () => {
  const reg = new Registry();
  const theirs = new Gauge({ name: "t_gauge", help: 'help with \\ and\nnewline "quoted"', labelNames: NAMES, registers: [reg] });
  const ours = new ValueFamily("t_gauge", 'help with \\ and\nnewline "quoted"', "gauge", NAMES);
  for (const [l, v] of WRITES) (theirs.set(l, v), ours.set(l, v));
  theirs.set(WRITES[0]![0], 7); // overwritten
  ours.set(WRITES[0]![0], 7);
  // prom-client writes NaN as "Nan"; the text format (and ours) says "NaN" (Prometheus reads both).
  expect(lines(render(ours))).toEqual(lines((await reg.metrics()).replace(/ Nan$/m, " NaN")));
  expect(ours.value(WRITES[0]![0])).toBe(7);
});

test("a counter adds up as prom-client's does, refuses negative increments, and starts at 0 without labels", async () => {
  const reg = new Registry();
  const theirs = new Counter({ name: "t_total", help: "h", labelNames: NAMES, registers: [reg] });
  const ours = new ValueFamily("t_total", "h", "counter", NAMES);
  for (const [l, v] of WRITES.slice(0, 3)) for (let k = 0; k < 3; k++) (theirs.inc(l, v), ours.inc(l, v));
  expect(lines(render(ours))).toEqual(lines(await reg.metrics()));
  expect(() => ours.inc(WRITES[0]![0], -1)).toThrow(/cannot be increased/);

  const reg2 = new Registry();
  new Counter({ name: "t_plain_total", help: "h", registers: [reg2] });
  new Gauge({ name: "t_plain", help: "h", registers: [reg2] });
  const c = new ValueFamily("t_plain_total", "h", "counter", []);
  const g = new ValueFamily("t_plain", "h", "gauge", []);
  expect(lines(render(c) + render(g))).toEqual(lines(await reg2.metrics()));
  c.inc({}, 2);
  expect(render(c)).toContain("t_plain_total 2\n");
});

test("a bucket histogram renders as prom-client's Histogram with the same observations", async () => {
  const reg = new Registry();
  const bounds = [0.001, 0.01, 0.1];
  const theirs = new Histogram({ name: "t_rtt_seconds", help: "h", labelNames: NAMES, buckets: bounds, registers: [reg] });
  const ours = new BucketHistogram("t_rtt_seconds", "h", bounds, NAMES);
  for (const [l] of WRITES.slice(0, 3)) for (const v of [0.0005, 0.002, 0.05, 0.5, 0.002]) (theirs.observe(l, v), ours.observe(l, v));
  expect(lines(render(ours))).toEqual(lines(await reg.metrics()));
  // Counts added at once are the same as observed one by one.
  const added = new BucketHistogram("t_rtt_seconds", "h", bounds, NAMES);
  for (const [l] of WRITES.slice(0, 3)) added.addCounts(l, [1, 2, 1, 1], 0.0005 + 0.002 + 0.05 + 0.5 + 0.002);
  expect(lines(render(added))).toEqual(lines(render(ours)));
});

test("rendering comes in chunks of about the lines asked for, and joins to the whole", () => {
  const f = new ValueFamily("t_many", "h", "gauge", ["i"]);
  for (let i = 0; i < 10_001; i++) f.set({ i: String(i) }, i);
  const parts = [...f.render(1000)];
  expect(parts.length).toBe(1 + 11); // HELP/TYPE, then 10 chunks of 1,000 and one of 1
  expect(parts.slice(1, -1).every((p) => p.split("\n").length - 1 === 1000)).toBe(true);
  expect(lines(parts.join(""))).toEqual(lines(render(f, 1e9)));
  const h = new BucketHistogram("t_h", "h", [1, 2], ["i"]);
  for (let i = 0; i < 1000; i++) h.observe({ i: String(i) }, 1.5);
  expect([...h.render(500)].length).toBeGreaterThan(5);
});

test("series expire by their last write; server-wide families (no labels) never do", async () => {
  let now = 1_000;
  const store = new SeriesStore(10_000, () => now, 60_000);
  const g = store.gauge({ name: "t_g", type: "gauge", help: "h", labelNames: ["p"] });
  const plain = store.counter({ name: "t_plain_total", type: "counter", help: "h", labelNames: [] });
  g.set({ p: "old" }, 1);
  plain.inc({}, 1);
  now += 9_000;
  g.set({ p: "new" }, 1);
  now += 2_000; // "old" is 11 s old, "new" 2 s
  expect(store.expire()).toBe(1);
  const text = await store.metrics();
  expect(text).not.toContain('p="old"');
  expect(text).toContain('t_g{p="new"} 1');
  now += 3_600_000;
  expect(store.expire()).toBe(1); // "new"; t_plain_total stays
  expect(await store.metrics()).toContain("t_plain_total 1");
});

test("a label tree finds, deletes and expires series by their values, and drops levels left empty", () => {
  let now = 0;
  const t = new LabelTree<{ text: string; at: number }>(["a", "b", "c"], (text) => ({ text, at: now }));
  for (const a of ["x", "y"]) for (const b of ["1", "2"]) for (const c of ["p", "q"]) t.at({ a, b, c });
  expect(t.size).toBe(8);
  expect(t.at({ a: "x", b: "1", c: "p" })).toBe(t.find({ c: "p", b: "1", a: "x" })!); // the same series whatever the key order
  expect(t.find({ a: "x", b: "1", c: "zz" })).toBeUndefined();
  expect(t.find({ a: "x", b: "1" })?.text).toBeUndefined(); // c missing: another series, not there
  t.at({ a: "x", b: "1" }).text; // ... until written
  expect(t.find({ a: "x", b: "1" })?.text).toBe('a="x",b="1"');
  t.delete({ a: "x", b: "1" });
  t.delete({ a: "nope", b: "1", c: "p" }); // absent: nothing happens
  expect(t.size).toBe(8);
  for (const c of ["p", "q"]) t.delete({ a: "y", b: "2", c });
  expect(t.size).toBe(6);
  expect([...t].map((s) => s.text).sort()).toEqual([
    'a="x",b="1",c="p"', 'a="x",b="1",c="q"', 'a="x",b="2",c="p"', 'a="x",b="2",c="q"', 'a="y",b="1",c="p"', 'a="y",b="1",c="q"',
  ]);
  now = 10;
  t.at({ a: "y", b: "1", c: "p" }).at = now;
  expect(t.expire(5)).toBe(5); // all but the one written at 10
  expect(t.size).toBe(1);
  expect([...t].map((s) => s.text)).toEqual(['a="y",b="1",c="p"']);
  expect(t.expire(11)).toBe(1);
  expect(t.size).toBe(0);
  expect([...t]).toEqual([]);
});

test("a long scrape gives the thread back to the event loop while it renders, and renders everything once", async () => {
  const store = new SeriesStore(60_000);
  const g = store.gauge({ name: "t_pairs", type: "gauge", help: "h", labelNames: ["source_region", "target_region"] });
  for (let s = 0; s < 300; s++) for (let t = 0; t < 300; t++) g.set({ source_region: `r${s}`, target_region: `r${t}` }, s + t);
  // A counter moved by every visit of the event loop: it moves only if the scrape yields.
  let turns = 0, ticking = true;
  const loop = () => (turns++, ticking && setImmediate(loop));
  setImmediate(loop);
  let text = "";
  for await (const part of store.exposition()) text += part;
  ticking = false;
  expect(turns).toBeGreaterThan(1);
  expect(text.split("\n").filter((l) => l.startsWith("t_pairs{")).length).toBe(90_000);
});

/**
 * What the server's metric families share (gauges and counters here, histograms in histogram.ts):
 * series found by their label values, last-write times for expiry, and exposition in chunks.
 *
 * Why not prom-client's Gauge and Counter: at 5,000 agents in 500 regions the server holds
 * hundreds of thousands of region-pair series. prom-client keeps each one as a labels object under
 * a hash string and renders a whole family in one go, formatting every label at every scrape;
 * measured there, one family's rendering held the server's thread for 100-250 ms, and with
 * SeriesStore's own last-write map beside it every series was kept twice. Here each series is
 * found through one map level per label value (LabelTree) and keeps its label text as it appears
 * in the exposition (`a="x",b="y"`, in the family's label order), built once, so a scrape writes
 * it as it is, a few thousand lines at a time.
 */
/** Label values by label name. */
export type Labels = Record<string, string>;

const NEEDS_ESCAPE = /[\\\n"]/;
/** Escapes a label value for the text format (0.0.4): backslash, double quote and newline. */
export const escapeLabel = (v: string) => (NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"') : v);

/** Escapes HELP text: backslash and newline. */
export const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

/**
 * A label set as exposition text, `name="value",...` in `names` order (a label missing from
 * `labels` is left out, as prom-client does): the series' identity.
 */
export function labelText(names: readonly string[], labels: Labels): string {
  let out = "";
  for (const n of names) {
    const v = labels[n];
    if (v !== undefined) out += `${out ? "," : ""}${n}="${escapeLabel(v)}"`;
  }
  return out;
}

/** A sample value as the text format writes it (+Inf, -Inf, NaN). */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

/** Lines per chunk of a family's exposition (the scrape may give the thread back between chunks: SeriesStore.exposition()). */
export const LINES_PER_CHUNK = 2000;

/** A metric family the SeriesStore renders and expires (ValueFamily, BucketHistogram). */
export interface Family {
  readonly name: string;
  readonly type: "gauge" | "counter" | "histogram";
  /** Series (label sets) held. */
  readonly size: number;
  /** The exposition text: the HELP and TYPE lines, then about `linesPerChunk` lines per chunk. */
  render(linesPerChunk?: number): Generator<string>;
  /** Deletes the series last written before `cutoffMs` (unix ms). @returns how many */
  expire(cutoffMs: number): number;
}

/** The HELP and TYPE lines of a family. */
export const header = (name: string, help: string, type: string) => `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;

/** What every series keeps: its label text (the exposition's `{...}` content) and last write, unix ms. */
export interface SeriesBase {
  readonly text: string;
  at: number;
}

type Level = Map<string | undefined, unknown>;

/**
 * Series by label values, one map level per label in the family's order. A write looks its
 * series up by the values it already holds: no key string is built, flattened and hashed per
 * write (measured: most of a result's filing cost when keys were concatenated). The label text
 * is built once, when the series is created.
 */
export class LabelTree<S extends SeriesBase> {
  private readonly root: Level = new Map();
  size = 0;

  /** @param make a new series of label text `text` */
  constructor(private readonly names: readonly string[], private readonly make: (text: string) => S) {}

  /** The series of `labels`, created if missing. */
  at(labels: Labels): S {
    const names = this.names;
    let m = this.root;
    for (let i = 0; i < names.length - 1; i++) {
      const v = labels[names[i]!];
      let next = m.get(v) as Level | undefined;
      if (!next) m.set(v, (next = new Map()));
      m = next;
    }
    const v = names.length ? labels[names[names.length - 1]!] : "";
    let s = m.get(v) as S | undefined;
    if (!s) (m.set(v, (s = this.make(labelText(names, labels)))), this.size++);
    return s;
  }

  /** The series of `labels`, or undefined. */
  find(labels: Labels): S | undefined {
    let m: Level | undefined = this.root;
    for (let i = 0; i < this.names.length - 1 && m; i++) m = m.get(labels[this.names[i]!]) as Level | undefined;
    return m?.get(this.names.length ? labels[this.names[this.names.length - 1]!] : "") as S | undefined;
  }

  /** Deletes the series of `labels` (and levels left empty). */
  delete(labels: Labels): void {
    const path: [Level, string | undefined][] = [];
    let m: Level | undefined = this.root;
    for (let i = 0; i < this.names.length - 1 && m; i++) {
      const v = labels[this.names[i]!];
      path.push([m, v]);
      m = m.get(v) as Level | undefined;
    }
    if (!m?.delete(this.names.length ? labels[this.names[this.names.length - 1]!] : "")) return;
    this.size--;
    for (let i = path.length - 1; i >= 0 && m!.size === 0; i--) {
      m = path[i]![0];
      m.delete(path[i]![1]);
    }
  }

  /** Every series, depth first. */
  *[Symbol.iterator](): Generator<S> {
    yield* this.walk(this.root, this.names.length);
  }

  private *walk(m: Level, depth: number): Generator<S> {
    if (depth <= 1) yield* m.values() as Iterable<S>;
    else for (const next of m.values()) yield* this.walk(next as Level, depth - 1);
  }

  /** Deletes the series last written before `cutoffMs`. @returns how many */
  expire(cutoffMs: number): number {
    return this.prune(this.root, this.names.length, cutoffMs);
  }

  private prune(m: Level, depth: number, cutoffMs: number): number {
    let n = 0;
    for (const [k, x] of m) {
      if (depth <= 1) {
        if ((x as S).at < cutoffMs) (m.delete(k), n++);
      } else {
        n += this.prune(x as Level, depth - 1, cutoffMs);
        if ((x as Level).size === 0) m.delete(k);
      }
    }
    this.size -= depth === this.names.length ? n : 0;
    return n;
  }
}

/**
 * What gauge, counter and histogram families share: the series tree, removal, expiry, and the
 * exposition in chunks of about `linesPerChunk` lines (each kind formats one series).
 */
export abstract class TreeFamily<S extends SeriesBase> implements Family {
  abstract readonly type: "gauge" | "counter" | "histogram";
  protected readonly series: LabelTree<S>;

  /**
   * @param labelNames the labels every series has, in exposition order
   * @param make a new series of label text `text`
   * @param now clock of last-write times, unix ms
   */
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], make: (text: string) => S, protected readonly now: () => number) {
    this.series = new LabelTree(labelNames, make);
  }

  get size(): number {
    return this.series.size;
  }

  remove(labels: Labels): void {
    this.series.delete(labels);
  }

  expire(cutoffMs: number): number {
    return this.series.expire(cutoffMs);
  }

  /** One series' exposition lines (each ending in a newline), and how many lines they are. */
  protected abstract format(s: S): [text: string, lines: number];

  *render(linesPerChunk = LINES_PER_CHUNK): Generator<string> {
    yield header(this.name, this.help, this.type);
    let buf = "", lines = 0;
    for (const s of this.series) {
      const [text, n] = this.format(s);
      buf += text;
      if ((lines += n) >= linesPerChunk) {
        yield buf;
        (buf = ""), (lines = 0);
      }
    }
    if (buf) yield buf;
  }
}

/** One series of a ValueFamily. */
interface Value extends SeriesBase {
  v: number;
}

/** A gauge or counter family: one value per label set (Prometheus text format 0.0.4). */
export class ValueFamily extends TreeFamily<Value> {
  /**
   * @param labelNames the labels every series has, in exposition order
   * @param now clock of last-write times, unix ms
   */
  constructor(name: string, help: string, readonly type: "gauge" | "counter", labelNames: readonly string[], now: () => number = () => Date.now()) {
    super(name, help, labelNames, (text) => ({ text, v: 0, at: 0 }), now);
    // A family without labels shows 0 from the start, as prom-client's do.
    if (!labelNames.length) this.series.at({}).at = now();
  }

  /** Sets a gauge's value. */
  set(labels: Labels, v: number): void {
    const s = this.series.at(labels);
    s.v = v;
    s.at = this.now();
  }

  /** Adds `by` (>= 0) to a counter. @throws Error on a negative or NaN increment, as prom-client does */
  inc(labels: Labels, by = 1): void {
    if (!(by >= 0)) throw new Error(`${this.name}: a counter cannot be increased by ${by}`);
    const s = this.series.at(labels);
    s.v += by;
    s.at = this.now();
  }

  /** The value of a label set, or undefined. */
  value(labels: Labels): number | undefined {
    return this.series.find(labels)?.v;
  }

  protected format(s: Value): [string, number] {
    return [s.text ? `${this.name}{${s.text}} ${formatValue(s.v)}\n` : `${this.name} ${formatValue(s.v)}\n`, 1];
  }
}

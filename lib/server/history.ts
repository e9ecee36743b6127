/**
 * The web console's memory of the mesh (docs/api.md): per region pair, the published windows of the
 * last `-server.web.history.retention` and the latest per-(agent, target) breakdown. Bounded: at
 * most retention / interval points per pair and MAX_PAIRS pairs (the least recently updated go first).
 */
import type { IcmpAggregate, IcmpLink } from "../probes/icmp/ingest.ts";

/** Pairs remembered at most (a full mesh of 140 regions). */
export const MAX_PAIRS = 20_000;

/** One published window of one pair (the aggregate's numbers; seconds and ratios) and when it ended. */
export type PairPoint = Pick<IcmpAggregate, "sent" | "received" | "lossRatio" | "rttMean" | "rttMin" | "rttMax" | "jitter"> & {
  /** Window end, unix ms. */
  timeMs: number;
};

interface PairHistory {
  sourceRegion: string;
  targetRegion: string;
  points: PairPoint[];
  links: IcmpLink[];
}

export class MeshHistory {
  private readonly pairs = new Map<string, PairHistory>();

  /** @param retentionMs how long points are kept, milliseconds */
  constructor(readonly retentionMs: number, private readonly now = () => Date.now()) {}

  /** Records one published window's aggregates. */
  record(aggs: readonly IcmpAggregate[]): void {
    const cutoff = this.now() - this.retentionMs;
    for (const a of aggs) {
      const k = `${a.sourceRegion}\u0000${a.targetRegion}`;
      let h = this.pairs.get(k);
      if (h) this.pairs.delete(k); // re-inserted below: the map's order is least recently updated first
      else h = { sourceRegion: a.sourceRegion, targetRegion: a.targetRegion, points: [], links: [] };
      if (h.points.at(-1)?.timeMs !== a.windowEndMs) {
        h.points.push({ timeMs: a.windowEndMs, sent: a.sent, received: a.received, lossRatio: a.lossRatio, rttMean: a.rttMean, rttMin: a.rttMin, rttMax: a.rttMax, jitter: a.jitter });
      }
      while (h.points.length && h.points[0]!.timeMs < cutoff) h.points.shift();
      h.links = a.links;
      this.pairs.set(k, h);
      if (this.pairs.size > MAX_PAIRS) this.pairs.delete(this.pairs.keys().next().value!);
    }
  }

  /** A pair's points within the retention, oldest first, and its latest links; undefined when unknown. */
  pair(sourceRegion: string, targetRegion: string): { points: PairPoint[]; links: IcmpLink[] } | undefined {
    const h = this.pairs.get(`${sourceRegion}\u0000${targetRegion}`);
    if (!h) return undefined;
    const cutoff = this.now() - this.retentionMs;
    return { points: h.points.filter((p) => p.timeMs >= cutoff), links: h.links };
  }

  /**
   * The pair's baseline RTT: the mean of its windows' mean RTTs within the retention, the latest
   * excluded, seconds; undefined without earlier windows that received anything.
   */
  baselineRtt(sourceRegion: string, targetRegion: string): number | undefined {
    const pts = (this.pair(sourceRegion, targetRegion)?.points ?? []).slice(0, -1).filter((p) => p.rttMean !== undefined);
    return pts.length ? pts.reduce((s, p) => s + p.rttMean!, 0) / pts.length : undefined;
  }
}

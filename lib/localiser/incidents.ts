/**
 * Incidents: explanations that last (docs/aggregation.md "Incidents"). An explanation becomes an
 * incident once the localiser has given it in THRESHOLDS.openWindows consecutive windows, and the
 * incident ends after closeWindows consecutive windows without it (hysteresis: a link at the
 * threshold does not open and close an incident every window). One incident per (scope, subject),
 * a region's region_* scopes counting as one (see key()).
 *
 * Bounded: at most MAX_ACTIVE active incidents (their subjects come from agents' results, which
 * outside input can grow), and the ended ones are kept RECENT_MS, at most MAX_RECENT.
 */
import { THRESHOLDS, type Explanation, type Incident } from "./model.ts";

/** Active incidents at most; explanations beyond are not opened (and counted). */
export const MAX_ACTIVE = 1000;
/** Ended incidents kept, at most, and for how long (ms). */
export const MAX_RECENT = 200;
export const RECENT_MS = 3_600_000;

/** The region scopes: one region's egress, ingress and isolation are one incident. */
const REGION_SCOPES: ReadonlySet<string> = new Set(["region_egress", "region_ingress", "region_isolated"]);

/**
 * An incident's identity: (scope, subject), except that a region's egress, ingress and isolated
 * explanations are one incident, which keeps the scope it opened with (its evidence's direction
 * follows the newest window): the one-way counts lag the round trips at a fault's start and end
 * (a cut region reconnecting reports the cut's spans), and one fault must not page three times.
 */
const key = (e: { scope: string; subject: string }) => (REGION_SCOPES.has(e.scope) ? `region\u0000${e.subject}` : `${e.scope}\u0000${e.subject}`);

const cellKey = (c: { sourceRegion: string; targetRegion: string }) => `${c.sourceRegion}\u0000${c.targetRegion}`;

/**
 * True when explanation `e` is the tail of the active incident `a`: a healed fault leaves its
 * links' horizons one by one (up to THRESHOLDS.horizonWindows windows, lib/localiser/links.ts), so
 * an incident decays into another explanation of some of its links before it is clean (a region
 * into a region pair, a hop whose traces aged into a region pair). The tail is an explanation
 * whose cells all lie in `a`'s cells, in a window that did not show `a` itself, within
 * horizonWindows windows of `a`'s own last one (after that, it is a fault of its own). An
 * explanation in a window that also shows `a` is a fault beside it, never its tail.
 */
function isTail(a: Incident & { sinceOwn: number }, e: Explanation): boolean {
  if (a.sinceOwn < 1 || a.sinceOwn > THRESHOLDS.horizonWindows || !e.evidence.cells.length) return false;
  const cells = new Set(a.evidence.cells.map(cellKey));
  return e.evidence.cells.every((c) => cells.has(cellKey(c)));
}

/** Opens, updates and ends incidents from each window's explanations. */
export class IncidentBook {
  /** Active incidents; missed: consecutive windows without it or its tail; sinceOwn: windows since it was itself explained. */
  private readonly active_ = new Map<string, Incident & { missed: number; sinceOwn: number }>();
  /** Explanations seen in consecutive windows, not yet incidents: first window end, count. */
  private pending = new Map<string, { firstMs: number; count: number }>();
  private readonly recent_: Incident[] = [];
  /** Explanations not opened because MAX_ACTIVE incidents were active. */
  refused = 0;

  /**
   * Takes one window's explanations (call once per published window, in order).
   * @param windowEndMs the window's end, unix ms
   * @returns incidents opened and ended by this window
   */
  update(explanations: readonly Explanation[], windowEndMs: number): { opened: Incident[]; ended: Incident[] } {
    const opened: Incident[] = [], ended: Incident[] = [];
    const seen = new Set<string>();
    const pending = new Map<string, { firstMs: number; count: number }>();
    for (const a of this.active_.values()) a.sinceOwn++;
    const fresh: Explanation[] = [];
    for (const e of explanations) {
      const k = key(e);
      if (seen.has(k)) continue;
      seen.add(k);
      const a = this.active_.get(k);
      if (!a) {
        fresh.push(e);
        continue;
      }
      a.lastSeenMs = windowEndMs;
      a.windows++;
      a.evidence = e.evidence;
      a.regions = e.regions;
      a.missed = 0;
      a.sinceOwn = 0;
    }
    for (const e of fresh) {
      const k = key(e);
      const tailOf = [...this.active_.values()].find((a) => isTail(a, e));
      if (tailOf) {
        // Keeps the incident it is the tail of (its evidence stays the incident's own).
        seen.add(key(tailOf));
        if (tailOf.lastSeenMs < windowEndMs) {
          tailOf.lastSeenMs = windowEndMs;
          tailOf.windows++;
        }
        tailOf.missed = 0;
        continue;
      }
      const p = this.pending.get(k) ?? { firstMs: windowEndMs, count: 0 };
      p.count++;
      if (p.count < THRESHOLDS.openWindows) {
        pending.set(k, p);
        continue;
      }
      if (this.active_.size >= MAX_ACTIVE) {
        this.refused++;
        pending.set(k, p);
        continue;
      }
      const inc = {
        id: `${e.scope}:${e.subject}:${p.firstMs}`, scope: e.scope, subject: e.subject, regions: e.regions, ...(e.address ? { address: e.address } : {}),
        startedMs: p.firstMs, lastSeenMs: windowEndMs, windows: p.count, evidence: e.evidence, missed: 0, sinceOwn: 0,
      };
      this.active_.set(k, inc);
      opened.push(this.plain(inc));
    }
    this.pending = pending;
    for (const [k, a] of this.active_) {
      if (seen.has(k)) continue;
      if (++a.missed < THRESHOLDS.closeWindows) continue;
      this.active_.delete(k);
      const done = { ...this.plain(a), endedMs: a.lastSeenMs };
      ended.push(done);
      this.recent_.unshift(done);
    }
    while (this.recent_.length > MAX_RECENT || (this.recent_.length && this.recent_.at(-1)!.endedMs! < windowEndMs - RECENT_MS)) this.recent_.pop();
    return { opened, ended };
  }

  private plain(a: Incident & { missed?: number; sinceOwn?: number }): Incident {
    const { missed: _, sinceOwn: __, ...rest } = a;
    return { ...rest };
  }

  /** Active incidents, oldest first. */
  active(): Incident[] {
    return [...this.active_.values()].map((a) => this.plain(a)).sort((a, b) => a.startedMs - b.startedMs);
  }

  /** Ended incidents of the last RECENT_MS, newest end first. */
  recent(): Incident[] {
    return [...this.recent_];
  }
}

/**
 * Hop localisation from path traces (docs/aggregation.md "Incidents"), after 007 (Arzani et al.,
 * NSDI 2018): every lossy link whose path was traced votes, and the hop whose votes stand out is
 * blamed. 007 gives each of a flow's h links a vote of 1/h because a flow's drop could be on any
 * of them; an MTR-style trace measures loss per TTL, so where it can, a vote goes to one hop:
 *
 * - **where loss begins**: the first TTL from which every hop to the end of the trace loses at
 *   least THRESHOLDS.hopLossy of its probes (loss that does not persist to the end is a router
 *   rate-limiting its own ICMP answers, as mtr's documentation warns). The vote goes to the last
 *   hop before it that answered: the router after which packets are lost (a drop inside that
 *   router's forwarding, or on its link to the next hop).
 * - loss that begins at TTL 1 is the agent's own side (the agent step's business): 1/h votes only.
 * - loss that begins at the destination itself (the last hop), or a trace that dies (every TTL
 *   from there on silent), cannot tell the last link from the destination's host: the vote for the
 *   hop before it counts only when lossy links to destinations in at least two regions cast it (a
 *   router before one region's hosts is that region's edge: the region step names the region).
 * - a trace counts only if it was taken during the link's current lossy stretch: an old trace of
 *   an earlier burst on the same link says nothing about the loss now.
 *
 * A hop is blamed when it has a located vote, its votes are at least half of the traced lossy
 * links whose paths cross it (a hop that many lossy paths cross but whose loss begins elsewhere is
 * not blamed), and most links of the region pairs whose traces vote for it are lossy: links of a
 * pair share their path, so a router that really drops makes its pairs lossy, while scattered
 * bursts that happen to begin after the same busy router (a few links of pairs that are otherwise
 * clean) do not blame it.
 */
import type { EvaluatedLink } from "./links.ts";
import { THRESHOLDS, type TraceSample } from "./model.ts";

/** A hop blamed by the votes, with the links it explains. */
export interface BlamedHop {
  address: string;
  ttl: number;
  /** The address of the first hop after it ("" when nothing answered there). */
  next: string;
  votes: number;
  /** Traced lossy links whose paths cross it. */
  tracedLinks: number;
  /** True when every located vote had loss begin at the destination (weaker evidence). */
  atDestination: boolean;
  /** The voting links. */
  links: EvaluatedLink[];
  /**
   * Region pairs (`source\0target`) most of whose traced lossy links vote for this hop: their
   * links share the path, so the hop explains the pair's other lossy links too (untraced, or
   * traced during an unrelated burst elsewhere on the path).
   */
  pairs: Set<string>;
}

/** Where loss begins in a trace. */
export interface LossStart {
  /** Index into hops of the voted hop (the last answering hop before loss begins); -1: none (loss from TTL 1). */
  hop: number;
  /** Index of the first lossy hop. */
  first: number;
  /** Loss begins at the destination (the last hop, reached), or every TTL from `first` on is silent (the trace dies). */
  atDestination: boolean;
}

const hopLoss = (h: { sent: number; received: number; address: string }) => (h.address === "" || h.sent === 0 ? 1 : (h.sent - h.received) / h.sent);

/** Where loss begins in `t` (hops in TTL order), or undefined when the trace's last hop is clean. */
export function lossStart(t: TraceSample): LossStart | undefined {
  const hops = [...t.hops].sort((a, b) => a.ttl - b.ttl);
  if (!hops.length) return undefined;
  let first = hops.length;
  while (first > 0 && hopLoss(hops[first - 1]!) >= THRESHOLDS.hopLossy) first--;
  if (first === hops.length) return undefined;
  let hop = first - 1;
  while (hop >= 0 && hops[hop]!.address === "") hop--;
  const dies = hops.slice(first).every((h) => h.address === "");
  return { hop, first, atDestination: (t.reached && first === hops.length - 1) || dies };
}

/**
 * Blames hops for `lossy` (links not explained yet) from `traces`. A link uses its newest trace
 * taken at or after `sinceMs(link)` (unix ms: the start of its lossy stretch, and no older than
 * the traces' age limit). @returns blamed hops, most votes first; their links are not marked
 */
export function blameHops(lossy: readonly EvaluatedLink[], traces: readonly TraceSample[], sinceMs: (l: EvaluatedLink) => number, pairLossy: (sourceRegion: string, targetRegion: string) => { links: number; lossy: number }): BlamedHop[] {
  const newest = new Map<string, TraceSample>();
  for (const t of traces) {
    const k = `${t.sourceRegion}\u0000${t.agentIp}\u0000${t.targetRegion}\u0000${t.target}`;
    const o = newest.get(k);
    if (!o || o.timeMs < t.timeMs) newest.set(k, t);
  }
  type Tally = { address: string; ttl: number; next: string; located: number; atDest: number; destRegions: Set<string>; fractional: number; crossing: number; links: EvaluatedLink[] };
  const tally = new Map<string, Tally>();
  const get = (address: string, ttl: number, next: string) => {
    let x = tally.get(address);
    if (!x) tally.set(address, (x = { address, ttl, next, located: 0, atDest: 0, destRegions: new Set(), fractional: 0, crossing: 0, links: [] }));
    return x;
  };
  /** Per region pair, its traced lossy links and their votes per hop ("" for a traced link that votes for none). */
  const pairVotes = new Map<string, { traced: number; votes: Map<string, number> }>();
  const votedBy = (l: EvaluatedLink, hop: string) => {
    const k = `${l.sourceRegion}\u0000${l.targetRegion}`;
    const p = pairVotes.get(k) ?? pairVotes.set(k, { traced: 0, votes: new Map() }).get(k)!;
    p.traced++;
    p.votes.set(hop, (p.votes.get(hop) ?? 0) + 1);
  };
  for (const l of lossy) {
    const t = newest.get(`${l.sourceRegion}\u0000${l.agentIp}\u0000${l.targetRegion}\u0000${l.target}`);
    if (!t || !(t.timeMs >= sinceMs(l))) continue;
    const hops = [...t.hops].sort((a, b) => a.ttl - b.ttl);
    const on = [...new Set(hops.map((h) => h.address).filter((a) => a !== "" && a !== t.target))];
    for (const a of on) get(a, 0, "").crossing++;
    const s = lossStart(t);
    const voted = s && s.hop >= 0 ? hops[s.hop]! : undefined;
    votedBy(l, voted && voted.address !== t.target ? voted.address : "");
    if (!s) continue;
    if (voted && voted.address !== t.target) {
      const x = get(voted.address, voted.ttl, hops[s.first]?.address ?? "");
      x.ttl = voted.ttl;
      x.next = hops[s.first]?.address ?? "";
      if (s.atDestination) {
        x.atDest++;
        x.destRegions.add(l.targetRegion);
      } else x.located++;
      x.links.push(l);
    } else {
      // No located start (loss from TTL 1): 007's 1/h over the path.
      for (const a of on) get(a, 0, "").fractional += 1 / Math.max(1, hops.length);
    }
  }
  const out: BlamedHop[] = [];
  for (const x of tally.values()) {
    const destOk = x.destRegions.size >= 2;
    const votes = x.located + (destOk ? x.atDest : 0) + x.fractional;
    if (x.located === 0 && !destOk) continue;
    if (votes < 0.5 * x.crossing) continue;
    let pairLinks = 0, pairLossyLinks = 0;
    for (const key of new Set(x.links.map((l) => `${l.sourceRegion}\u0000${l.targetRegion}`))) {
      const [s, t] = key.split("\u0000") as [string, string];
      const c = pairLossy(s, t);
      (pairLinks += c.links), (pairLossyLinks += c.lossy);
    }
    if (pairLossyLinks < THRESHOLDS.most * pairLinks) continue;
    const pairs = new Set([...new Set(x.links.map((l) => `${l.sourceRegion}\u0000${l.targetRegion}`))].filter((k) => {
      const p = pairVotes.get(k)!;
      return (p.votes.get(x.address) ?? 0) >= THRESHOLDS.most * p.traced;
    }));
    out.push({ address: x.address, ttl: x.ttl, next: x.next, votes, tracedLinks: x.crossing, atDestination: x.located === 0, links: x.links, pairs });
  }
  return out.sort((a, b) => b.votes - a.votes || a.address.localeCompare(b.address));
}

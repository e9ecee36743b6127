/**
 * The localiser (docs/aggregation.md "Incidents"): after each published window it names the
 * smallest things that explain the mesh's lossy links, in the vocabulary of SCOPES
 * (lib/localiser/model.ts). Steps, each taking the lossy links it explains away from the next:
 *
 *   0. starved agents: an agent whose health says its rounds start late or its loopback loses,
 *      and whose own links are lossy: `agent` (the network is not blamed for it);
 *   1. agents and file targets, one at a time, most lossy links first (Pingmesh's lowest tier):
 *      most of the host's links lossy (as prober: towards several regions; as target: from
 *      several regions) while its peers (the other agents / targets of its region) are clean;
 *   2. hops: the path traces of the remaining lossy links vote (lib/localiser/hops.ts);
 *   3. regions (Pingmesh moves blame up a tier when the whole tier shows it): a region whose pairs
 *      with most other regions are lossy; the one-way loss of udp says egress, ingress or both;
 *   4. region pairs: what remains lossy between two regions.
 *
 * Loss scattered over links that no step groups explains nothing (Unexplained). Pure and
 * deterministic; O(links) per step, a few steps per window.
 */
import { blameHops } from "./hops.ts";
import { hostKey, kindNames, LinkHistory, pooled, type EvaluatedLink } from "./links.ts";
import { MAX_CELLS, THRESHOLDS as T, type AgentSample, type Cell, type Direction, type Evidence, type Explanation, type HealthSample, type Scope, type Unexplained, type WindowInput } from "./model.ts";

const natural = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });
const share = (n: number, d: number) => (d > 0 ? n / d : 0);
const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/** The subject of a region pair: both names in natural order. */
export function pairSubject(a: string, b: string): string {
  const [x, y] = [a, b].sort(natural);
  return `${x}<->${y}`;
}

/** Window ends remembered, by observation number: as far back as a trace may count. */
const WINDOW_ENDS_KEPT = T.traceMaxAgeWindows + 2;

/** Due rounds and loopback echoes that are enough to judge an agent's health on. */
const HEALTH_ENOUGH = 4 * T.starvedMinRounds;

/** Health summed over the horizon, per agent. */
class HealthHistory {
  private readonly byAgent = new Map<string, { seq: number; h: HealthSample }[]>();

  add(seq: number, agents: readonly AgentSample[]): void {
    for (const a of agents) {
      if (!a.health) continue;
      const k = hostKey(a.region, a.ip);
      const list = this.byAgent.get(k) ?? [];
      list.push({ seq, h: a.health });
      this.byAgent.set(k, list);
    }
    for (const [k, list] of this.byAgent) {
      while (list.length && list[0]!.seq <= seq - T.horizonWindows) list.shift();
      if (!list.length) this.byAgent.delete(k);
    }
  }

  /**
   * The agent's health over its newest windows that hold HEALTH_ENOUGH due rounds and loopback
   * echoes (at most the horizon), or undefined: a starved agent reads as starved as soon as its
   * newest windows say so, not after the horizon's older, healthy ones are outweighed.
   */
  sum(key: string): HealthSample | undefined {
    const list = this.byAgent.get(key);
    if (!list) return undefined;
    const s = { roundsDue: 0, roundsLate: 0, loopbackSent: 0, loopbackReceived: 0 };
    for (let i = list.length - 1; i >= 0 && (s.roundsDue < HEALTH_ENOUGH || s.loopbackSent < HEALTH_ENOUGH); i--) {
      const { h } = list[i]!;
      (s.roundsDue += h.roundsDue), (s.roundsLate += h.roundsLate), (s.loopbackSent += h.loopbackSent), (s.loopbackReceived += h.loopbackReceived);
    }
    return s;
  }
}

/** True when the health says the agent is starved (THRESHOLDS.starved*). */
export function isStarved(h: HealthSample | undefined): boolean {
  if (!h) return false;
  const late = h.roundsDue >= T.starvedMinRounds && h.roundsLate / h.roundsDue >= T.starvedLate;
  const loop = h.loopbackSent >= 10 && 1 - h.loopbackReceived / h.loopbackSent >= T.starvedLoopbackLoss;
  return late || loop;
}

/** Counts of a set of links. */
function tally(links: readonly EvaluatedLink[]) {
  let lossy = 0, sent = 0, lost = 0;
  for (const l of links) if (l.lossy) (lossy++, (sent += l.sent), (lost += l.lost));
  return { links: links.length, lossy, lossRatio: share(lost, sent) };
}

/** Cells and kinds of the explained links. */
function cellsAndKinds(links: readonly EvaluatedLink[]): { cells: Cell[]; kinds: string[] } {
  const cells = new Map<string, Cell>();
  let kinds = 0;
  for (const l of links) {
    if (cells.size < MAX_CELLS) cells.set(`${l.sourceRegion}\u0000${l.targetRegion}`, { sourceRegion: l.sourceRegion, targetRegion: l.targetRegion });
    kinds |= l.kinds;
  }
  return { cells: [...cells.values()], kinds: kindNames(kinds) };
}

/**
 * One-way loss out of and into a set of hosts (entity keys), from udp reflector counts: a link from
 * inside measures out (forward) and in (reverse); a link into it the opposite.
 */
function oneWay(links: readonly EvaluatedLink[], inside: (key: string) => boolean): { egress?: number; ingress?: number; direction: Direction } {
  const out: { w: number; loss: number | undefined }[] = [];
  const inn: { w: number; loss: number | undefined }[] = [];
  for (const l of links) {
    if (!l.oneWayWeight) continue;
    const w = l.oneWayWeight;
    if (inside(l.src)) (out.push({ w, loss: l.forwardLoss }), inn.push({ w, loss: l.reverseLoss }));
    if (inside(l.dst)) (inn.push({ w, loss: l.forwardLoss }), out.push({ w, loss: l.reverseLoss }));
  }
  const egress = pooled(out), ingress = pooled(inn);
  return { egress, ingress, direction: directionOf(egress, ingress) };
}

/**
 * egress / ingress / both from the two one-way losses; unknown when neither is measured lossy.
 * "both" needs the smaller to be at least half the larger: at a fault's onset the one-way counts
 * (spans between replies) lag the round trips by a round, and a few percent leak into the other
 * direction; one fault would otherwise open as `region_isolated` and turn into `region_ingress`.
 */
function directionOf(egress: number | undefined, ingress: number | undefined): Direction {
  const e = egress !== undefined && egress >= T.linkLossy, i = ingress !== undefined && ingress >= T.linkLossy;
  if (e && i) return Math.min(egress!, ingress!) >= 0.5 * Math.max(egress!, ingress!) ? "both" : egress! > ingress! ? "egress" : "ingress";
  return e ? "egress" : i ? "ingress" : "unknown";
}

/** Link counts (all, lossy) of a window: overall, per region touched, per ordered region pair. */
interface RegionCounts {
  all: { n: number; lossy: number };
  touching: Map<string, { n: number; lossy: number }>;
  between: Map<string, { n: number; lossy: number }>;
}

function regionCounts(links: readonly EvaluatedLink[]): RegionCounts {
  const c: RegionCounts = { all: { n: 0, lossy: 0 }, touching: new Map(), between: new Map() };
  const add = (m: Map<string, { n: number; lossy: number }>, k: string, lossy: boolean) => {
    const x = m.get(k) ?? m.set(k, { n: 0, lossy: 0 }).get(k)!;
    x.n++;
    if (lossy) x.lossy++;
  };
  for (const l of links) {
    c.all.n++;
    if (l.lossy) c.all.lossy++;
    add(c.touching, l.sourceRegion, l.lossy);
    if (l.targetRegion !== l.sourceRegion) add(c.touching, l.targetRegion, l.lossy);
    add(c.between, `${l.sourceRegion}\u0000${l.targetRegion}`, l.lossy);
  }
  return c;
}

/** Stateful localiser: feed it every published window in order. */
export class Localiser {
  private readonly links = new LinkHistory();
  private readonly health = new HealthHistory();
  private seq = 0;
  /** End of each observed window of the horizon, unix ms, by observation number. */
  private readonly windowEnds = new Map<number, number>();

  /** @param intervalMs the aggregation interval, ms (how old a trace may be: THRESHOLDS.traceMaxAgeWindows windows) */
  constructor(private readonly intervalMs = 15_000) {}

  /** Links remembered (memory follows the mesh). */
  get linksHeld(): number {
    return this.links.size;
  }

  /** Reads one window and explains its lossy links. */
  observe(w: WindowInput): { explanations: Explanation[]; unexplained: Unexplained } {
    const seq = ++this.seq;
    this.windowEnds.set(seq, w.windowEndMs);
    this.windowEnds.delete(seq - WINDOW_ENDS_KEPT - 1);
    this.links.add(seq, w.links);
    this.health.add(seq, w.agents);
    const links = this.links.evaluate(seq);
    const agents = new Map(w.agents.map((a) => [hostKey(a.region, a.ip), a]));
    const out: Explanation[] = [];
    const background = () => {
      const rest = links.filter((l) => !l.explained);
      return share(rest.filter((l) => l.lossy).length, rest.length);
    };

    // 0. Starved agents.
    const starved = [...agents].filter(([key]) => isStarved(this.health.sum(key)));
    const fromStarved = new Map<string, EvaluatedLink[]>(starved.map(([key]) => [key, []]));
    if (starved.length) for (const l of links) fromStarved.get(l.src)?.push(l);
    for (const [key, a] of starved) {
      const h = this.health.sum(key);
      const mine = fromStarved.get(key)!.filter((l) => !l.explained);
      const t = tally(mine);
      if (t.lossy === 0 || share(t.lossy, t.links) < T.clean) continue;
      const lossy = mine.filter((l) => l.lossy);
      for (const l of lossy) l.explained = true;
      const bg = background();
      out.push(this.explain("agent", `${a.region}/${a.ip}`, [a.region], lossy, t, {
        role: "prober", starved: h!, address: a.ip, confidence: clamp01(share(t.lossy, t.links) - bg), peersLossyShare: bg,
        oneWay: oneWay(lossy, (k) => k === key),
      }));
    }

    // 1. Agents and file targets, greedily.
    for (;;) {
      const best = this.bestHost(links, agents);
      if (!best) break;
      for (const l of best.explains) l.explained = true;
      const bg = best.peersShare;
      out.push(this.explain(best.scope, `${best.region}/${best.ip}`, [best.region], best.explains, { links: best.considered, lossy: best.explains.length, lossRatio: tally(best.explains).lossRatio }, {
        role: best.role, address: best.ip, confidence: clamp01(best.share - bg), peersLossyShare: bg, oneWay: oneWay(best.explains, (k) => k === best.key),
      }));
    }

    // 2. Hops.
    const remaining = () => links.filter((l) => l.lossy && !l.explained);
    // A trace counts from one window before the link's lossy stretch began (the round that found
    // the loss ran in that stretch's first window, the trace right after it), and not beyond the age limit.
    const oldest = w.windowEndMs - T.traceMaxAgeWindows * this.intervalMs;
    // A stretch that began before the windows remembered began before the oldest trace that counts.
    const traceSince = (l: EvaluatedLink) => Math.max(oldest, (this.windowEnds.get(l.lossySinceSeq) ?? (l.lossySinceSeq < seq - WINDOW_ENDS_KEPT ? oldest : w.windowEndMs)) - 2 * this.intervalMs);
    const byPair = new Map<string, { links: number; lossy: number }>();
    for (const l of links) {
      const k = `${l.sourceRegion}\u0000${l.targetRegion}`;
      const c = byPair.get(k) ?? byPair.set(k, { links: 0, lossy: 0 }).get(k)!;
      c.links++;
      if (l.lossy) c.lossy++;
    }
    const pairLossy = (s: string, t: string) => byPair.get(`${s}\u0000${t}`) ?? { links: 0, lossy: 0 };
    for (const hop of blameHops(remaining(), w.traces, traceSince, pairLossy)) {
      // Its voters, and the untraced lossy links of the pairs whose traced links all voted for it.
      const voters = new Set(hop.links);
      const mine = links.filter((l) => l.lossy && !l.explained && (voters.has(l) || hop.pairs.has(`${l.sourceRegion}\u0000${l.targetRegion}`)));
      if (!mine.length) continue;
      for (const l of mine) l.explained = true;
      const regions = [...new Set(mine.flatMap((l) => [l.sourceRegion, l.targetRegion]))].sort(natural);
      out.push(this.explain("hop", hop.address, regions, mine, { links: hop.tracedLinks, lossy: mine.length, lossRatio: tally(mine).lossRatio }, {
        address: hop.address, confidence: clamp01(share(hop.votes, hop.tracedLinks) * (hop.atDestination ? 0.5 : 1)),
        hop: { votes: hop.votes, tracedLinks: hop.tracedLinks, ttl: hop.ttl, next: hop.next },
        ambiguity: hop.atDestination ? "loss begins at the destinations: the last link before them, or each destination's host" : undefined,
        oneWay: { direction: "unknown" },
      }));
    }

    // 3-4. Regions and region pairs.
    const widespread = this.regions(links, agents, w.inferred, out);
    const rest = links.filter((l) => !l.explained);
    return { explanations: out, unexplained: { lossyLinks: rest.filter((l) => l.lossy).length, links: rest.length, widespread } };
  }

  /**
   * The host (agent or file target) that best explains remaining lossy links, or undefined.
   * O(links): peers' shares come from per-region totals minus the host's own links.
   */
  private bestHost(links: readonly EvaluatedLink[], agents: ReadonlyMap<string, AgentSample>) {
    const bySrc = new Map<string, EvaluatedLink[]>(), byDst = new Map<string, EvaluatedLink[]>();
    const out = new Map<string, { n: number; lossy: number }>(), inn = new Map<string, { n: number; lossy: number }>();
    const count = (m: Map<string, { n: number; lossy: number }>, r: string, l: EvaluatedLink) => {
      const c = m.get(r) ?? m.set(r, { n: 0, lossy: 0 }).get(r)!;
      c.n++;
      if (l.lossy) c.lossy++;
    };
    for (const l of links) {
      if (l.explained) continue;
      (bySrc.get(l.src) ?? bySrc.set(l.src, []).get(l.src)!).push(l);
      (byDst.get(l.dst) ?? byDst.set(l.dst, []).get(l.dst)!).push(l);
      count(out, l.sourceRegion, l);
      count(inn, l.targetRegion, l);
    }
    const regionOf = (k: string) => k.slice(0, k.indexOf("\u0000"));
    /**
     * A role qualifies: most of its links lossy, in several regions, and its peers (the region's
     * other hosts in that role, their links to or from this host left out) clean.
     */
    const judge = (key: string, role: "prober" | "target") => {
      const mine = (role === "prober" ? bySrc : byDst).get(key);
      if (!mine?.length) return undefined;
      const otherRegion = (l: EvaluatedLink) => (role === "prober" ? l.targetRegion : l.sourceRegion);
      const lossy = mine.filter((l) => l.lossy);
      const s = share(lossy.length, mine.length);
      if (s < T.most) return undefined;
      const regions = new Set(mine.map(otherRegion)), lossyRegions = new Set(lossy.map(otherRegion));
      if (lossyRegions.size < Math.min(2, regions.size)) return undefined;
      const region = regionOf(key);
      const total = (role === "prober" ? out : inn).get(region)!;
      let peerLinks = total.n - mine.length, peerLossy = total.lossy - lossy.length;
      // Peers' links that touch this host from the other side (within the region) are not theirs to answer for.
      for (const l of (role === "prober" ? byDst : bySrc).get(key) ?? []) {
        const peerSide = role === "prober" ? l.sourceRegion === region && l.src !== key : l.targetRegion === region && l.dst !== key;
        if (peerSide) (peerLinks--, l.lossy && peerLossy--);
      }
      if (peerLinks <= 0) return undefined;
      const peersShare = share(peerLossy, peerLinks);
      if (peersShare >= T.clean) return undefined;
      return { lossy, considered: mine.length, peersShare };
    };
    let best: { key: string; region: string; ip: string; scope: Scope; role: "prober" | "target" | "both"; explains: EvaluatedLink[]; considered: number; share: number; peersShare: number } | undefined;
    for (const key of new Set([...bySrc.keys(), ...byDst.keys()])) {
      const asProber = judge(key, "prober");
      const asTarget = judge(key, "target");
      if (!asProber && !asTarget) continue;
      const explains = [...(asProber?.lossy ?? []), ...(asTarget?.lossy ?? [])];
      if (best && (explains.length < best.explains.length || (explains.length === best.explains.length && natural(key, best.key) > 0))) continue;
      const considered = (asProber?.considered ?? 0) + (asTarget?.considered ?? 0);
      best = {
        key, region: regionOf(key), ip: key.slice(key.indexOf("\u0000") + 1), scope: agents.has(key) || bySrc.has(key) ? "agent" : "target",
        role: asProber && asTarget ? "both" : asProber ? "prober" : "target", explains, considered,
        share: share(explains.length, considered), peersShare: Math.max(asProber?.peersShare ?? 0, asTarget?.peersShare ?? 0),
      };
    }
    return best;
  }

  /** Steps 3 and 4; pushes their explanations. @returns true when the loss was widespread (nothing regional blamed) */
  private regions(links: readonly EvaluatedLink[], agents: ReadonlyMap<string, AgentSample>, inferred: WindowInput["inferred"], out: Explanation[]): boolean {
    type Pair = { links: EvaluatedLink[]; lossy: number; inferred: boolean };
    const pairs = new Map<string, Pair>();
    const pairOf = (s: string, t: string) => {
      const k = `${s}\u0000${t}`;
      let p = pairs.get(k);
      if (!p) pairs.set(k, (p = { links: [], lossy: 0, inferred: false }));
      return p;
    };
    // A pair is judged on all its links: those an agent, target or hop explained count as not
    // lossy here, so a handful of leftovers of a hop incident do not make their regions look bad.
    for (const l of links) {
      if (l.sourceRegion === l.targetRegion) continue;
      const p = pairOf(l.sourceRegion, l.targetRegion);
      p.links.push(l);
      if (l.lossy && !l.explained) p.lossy++;
    }
    for (const i of inferred) if (i.sourceRegion !== i.targetRegion) pairOf(i.sourceRegion, i.targetRegion).inferred = true;
    const counts = regionCounts(links);
    const bad = (p: Pair | undefined) => !!p && (p.inferred || (p.links.length > 0 && share(p.lossy, p.links.length) >= T.most));
    const partners = new Map<string, Set<string>>();
    for (const k of pairs.keys()) {
      const [s, t] = k.split("\u0000") as [string, string];
      (partners.get(s) ?? partners.set(s, new Set()).get(s)!).add(t);
      (partners.get(t) ?? partners.set(t, new Set()).get(t)!).add(s);
    }
    const badWith = (r: string, x: string) => bad(pairs.get(`${r}\u0000${x}`)) || bad(pairs.get(`${x}\u0000${r}`));
    const candidates: string[] = [];
    for (const [r, ps] of partners) {
      if (ps.size < T.regionMinPartners) continue;
      let n = 0;
      for (const x of ps) if (badWith(r, x)) n++;
      if (share(n, ps.size) >= T.regionMost) candidates.push(r);
    }
    if (partners.size > 0 && candidates.length > T.widespread * partners.size) return true;
    const agentsIn = (r: string) => [...agents.values()].filter((a) => a.region === r).length;
    for (const r of candidates.sort(natural)) {
      const mine = links.filter((l) => !l.explained && l.sourceRegion !== l.targetRegion && (l.sourceRegion === r || l.targetRegion === r));
      const lossy = mine.filter((l) => l.lossy);
      const ps = partners.get(r)!;
      const badPartners = [...ps].filter((x) => badWith(r, x));
      const inf = inferred.filter((i) => i.sourceRegion === r || i.targetRegion === r);
      for (const l of lossy) l.explained = true;
      for (const x of badPartners) for (const k of [`${r}\u0000${x}`, `${x}\u0000${r}`]) if (pairs.get(k)?.inferred) pairs.get(k)!.inferred = false;
      const ow = oneWay(mine, (k) => k.startsWith(`${r}\u0000`));
      const scope: Scope = ow.direction === "egress" ? "region_egress" : ow.direction === "ingress" ? "region_ingress" : "region_isolated";
      const t = tally(mine);
      const ambiguity = [
        agentsIn(r) === 1 ? "the region has one agent: its host or the region" : "",
        ow.direction === "unknown" ? "no one-way measurement (round trips only, or no udp reply at all): the direction is unknown" : "",
      ].filter(Boolean).join("; ");
      const e = this.explain(scope, r, [r], lossy, t, {
        confidence: clamp01(share(badPartners.length, ps.size) - this.outsideShare(counts, r)) * (agentsIn(r) === 1 ? 0.5 : 1),
        oneWay: ow, ambiguity: ambiguity || undefined,
      });
      for (const i of inf) if (e.evidence.cells.length < MAX_CELLS) e.evidence.cells.push({ sourceRegion: i.sourceRegion, targetRegion: i.targetRegion });
      e.evidence.cells = [...new Map(e.evidence.cells.map((c) => [`${c.sourceRegion}\u0000${c.targetRegion}`, c])).values()];
      out.push(e);
    }

    // 4. Pairs: what is still lossy between two regions, both directions in one explanation.
    const done = new Set<string>();
    for (const [k, p] of pairs) {
      const [s, t] = k.split("\u0000") as [string, string];
      const subject = pairSubject(s, t);
      if (done.has(subject) || !bad(p) && !bad(pairs.get(`${t}\u0000${s}`))) continue;
      const fwd = pairs.get(`${s}\u0000${t}`), rev = pairs.get(`${t}\u0000${s}`);
      const both = [...(fwd?.links ?? []), ...(rev?.links ?? [])].filter((l) => !l.explained);
      const lossy = both.filter((l) => l.lossy);
      if (!lossy.length && !fwd?.inferred && !rev?.inferred) continue;
      done.add(subject);
      for (const l of lossy) l.explained = true;
      const [a, b] = [s, t].sort(natural) as [string, string];
      const ow = oneWay(both, (key) => key.startsWith(`${a}\u0000`));
      const e = this.explain("region_pair", subject, [a, b], lossy, tally(both), {
        confidence: clamp01(share(lossy.length, both.length) - this.outsideShare(counts, a, b)) * (partners.size <= 2 ? 0.5 : 1),
        oneWay: ow,
        ambiguity: partners.size <= 2 ? "only two regions with data: the pair, or either region" : undefined,
      });
      for (const x of [fwd, rev]) if (x?.inferred) e.evidence.cells.push(x === fwd ? { sourceRegion: s, targetRegion: t } : { sourceRegion: t, targetRegion: s });
      e.evidence.cells = [...new Map(e.evidence.cells.map((c) => [`${c.sourceRegion}\u0000${c.targetRegion}`, c])).values()];
      out.push(e);
    }
    return false;
  }

  /**
   * Lossy share of the links that touch none of `regions` (one or two: the rest of the mesh), in
   * O(1) from counts per region and per region pair made once per window.
   */
  private outsideShare(c: RegionCounts, a: string, b?: string): number {
    const z = { n: 0, lossy: 0 };
    const ta = c.touching.get(a) ?? z, tb = b === undefined ? z : (c.touching.get(b) ?? z);
    const ab = b === undefined ? z : { n: (c.between.get(`${a}\u0000${b}`)?.n ?? 0) + (c.between.get(`${b}\u0000${a}`)?.n ?? 0), lossy: (c.between.get(`${a}\u0000${b}`)?.lossy ?? 0) + (c.between.get(`${b}\u0000${a}`)?.lossy ?? 0) };
    return share(c.all.lossy - ta.lossy - tb.lossy + ab.lossy, c.all.n - ta.n - tb.n + ab.n);
  }

  /** Builds an explanation's evidence. */
  private explain(
    scope: Scope, subject: string, regions: string[], explained: readonly EvaluatedLink[], t: { links: number; lossy: number; lossRatio: number },
    x: { confidence: number; oneWay: { egress?: number; ingress?: number; direction: Direction }; address?: string; role?: Evidence["role"]; starved?: HealthSample; peersLossyShare?: number; hop?: Evidence["hop"]; ambiguity?: string },
  ): Explanation {
    const { cells, kinds } = cellsAndKinds(explained);
    const evidence: Evidence = {
      lossyLinks: explained.length, links: t.links, lossRatio: tally(explained).lossRatio, confidence: Math.round(x.confidence * 1000) / 1000,
      direction: x.oneWay.direction, cells, kinds,
      ...(x.oneWay.egress !== undefined ? { egressLoss: x.oneWay.egress } : {}),
      ...(x.oneWay.ingress !== undefined ? { ingressLoss: x.oneWay.ingress } : {}),
      ...(x.role ? { role: x.role } : {}),
      ...(x.starved ? { starved: x.starved } : {}),
      ...(x.peersLossyShare !== undefined ? { peersLossyShare: x.peersLossyShare } : {}),
      ...(x.hop ? { hop: x.hop } : {}),
      ...(x.ambiguity ? { ambiguity: x.ambiguity } : {}),
    };
    return { scope, subject, regions, ...(x.address ? { address: x.address } : {}), evidence };
  }
}

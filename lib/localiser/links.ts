/**
 * The localiser's memory of links (lib/localiser/model.ts): per (agent, target host) link, the
 * counts of its last THRESHOLDS.horizonWindows windows, every kind together, and its evaluation
 * over the newest windows that hold THRESHOLDS.linkMinSent packets. Bounded: a link without a
 * sample for horizonWindows windows is forgotten, so memory follows the mesh's live links.
 */
import { THRESHOLDS, type LinkEnds, type LinkSample } from "./model.ts";

/** One window's counts of one link, all kinds summed. */
interface Slot {
  /** Observation number (Localiser's window counter). */
  seq: number;
  sent: number;
  lost: number;
  /** udp only: its own packets and losses (for the reverse direction) and the forward counts. */
  udpSent: number;
  udpLost: number;
  fwdSent: number;
  fwdLost: number;
  /** Kinds seen, as bits of kindBit(). */
  kinds: number;
}

/** Kinds by bit (a kind gets the next bit when first seen; a handful exist). */
const KIND_NAMES: string[] = [];
function kindBit(kind: string): number {
  let i = KIND_NAMES.indexOf(kind);
  if (i < 0) {
    if (KIND_NAMES.length >= 30) return 0;
    i = KIND_NAMES.push(kind) - 1;
  }
  return 1 << i;
}

/** The kinds of a kindBit() mask, sorted. */
export function kindNames(mask: number): string[] {
  return KIND_NAMES.filter((_, i) => mask & (1 << i)).sort();
}

/** A link evaluated over its horizon. Packets are summed over kinds; losses may be fractional. */
export interface EvaluatedLink extends LinkEnds {
  /** `region\0ip` of the prober and of the target host (entity keys). */
  src: string;
  dst: string;
  sent: number;
  lost: number;
  lossy: boolean;
  /** One-way loss (udp reflector counts): from the agent to the target, and back; undefined when not measured. */
  forwardLoss?: number;
  reverseLoss?: number;
  /** Weight of the one-way figures (requests counted in spans). */
  oneWayWeight: number;
  /** Kinds that measured it (kindNames() of the mask). */
  kinds: number;
  /**
   * Observation number of the first window of the link's current lossy stretch (its newest windows
   * that each lost at least linkLossy); the newest window's when that one alone was clean. A path
   * trace taken before this stretch began says nothing about it (lib/localiser/hops.ts). Kept
   * per link beyond the horizon, so a long outage still refuses the traces of a burst before it.
   */
  lossySinceSeq: number;
  /** Set by the localiser when an explanation takes it. */
  explained: boolean;
}

/** Entity key of a host in a region. */
export const hostKey = (region: string, ip: string) => `${region}\u0000${ip}`;

/** Per-link windows, newest last. */
export class LinkHistory {
  /** Per link: its ends, its windows, and its current lossy stretch (first and last window's observation numbers). */
  private readonly links = new Map<string, { sample: Omit<LinkSample, "kind" | "sent" | "lost">; slots: Slot[]; stretch?: { from: number; to: number } }>();

  /** Number of links remembered. */
  get size(): number {
    return this.links.size;
  }

  /** Files one window's samples under observation number `seq` and forgets links silent for the horizon. */
  add(seq: number, samples: readonly LinkSample[]): void {
    for (const s of samples) {
      if (!(s.sent > 0) || !Number.isFinite(s.lost)) continue;
      const key = `${s.sourceRegion}\u0000${s.agentIp}\u0000${s.targetRegion}\u0000${s.target}`;
      let l = this.links.get(key);
      if (!l) this.links.set(key, (l = { sample: { sourceRegion: s.sourceRegion, agentIp: s.agentIp, targetRegion: s.targetRegion, target: s.target }, slots: [] }));
      let slot = l.slots.at(-1);
      if (!slot || slot.seq !== seq) l.slots.push((slot = { seq, sent: 0, lost: 0, udpSent: 0, udpLost: 0, fwdSent: 0, fwdLost: 0, kinds: 0 }));
      const lost = Math.min(Math.max(s.lost, 0), s.sent);
      slot.sent += s.sent;
      slot.lost += lost;
      slot.kinds |= kindBit(s.kind);
      if ((s.forwardSent ?? 0) > 0) {
        slot.udpSent += s.sent;
        slot.udpLost += lost;
        slot.fwdSent += s.forwardSent!;
        slot.fwdLost += Math.min(s.forwardLost ?? 0, s.forwardSent!);
      }
    }
    const oldest = seq - THRESHOLDS.horizonWindows;
    for (const [key, l] of this.links) {
      if (l.slots[0]!.seq > oldest) continue;
      let k = 0;
      while (k < l.slots.length && l.slots[k]!.seq <= oldest) k++;
      if (k === l.slots.length) this.links.delete(key);
      else l.slots.splice(0, k);
    }
  }

  /**
   * The links to consider at observation `seq`: those with a sample in the last two windows (a
   * silent agent's links are not evaluated on stale data), each over its newest windows up to
   * linkMinSent packets; links with fewer packets in the whole horizon are left out.
   */
  evaluate(seq: number): EvaluatedLink[] {
    const out: EvaluatedLink[] = [];
    const T = THRESHOLDS;
    for (const rec of this.links.values()) {
      const { sample: s, slots } = rec;
      if (!slots.length || slots.at(-1)!.seq < seq - 1) continue;
      const newest = slots.at(-1)!, before = slots.at(-2);
      let sent = 0, lost = 0, udpSent = 0, udpLost = 0, fwdSent = 0, fwdLost = 0, kinds = 0;
      let first = slots.length;
      for (let i = slots.length - 1; i >= 0 && sent < T.linkMinSent; i--) {
        const x = slots[i]!;
        first = i;
        sent += x.sent;
        lost += x.lost;
        udpSent += x.udpSent;
        udpLost += x.udpLost;
        fwdSent += x.fwdSent;
        fwdLost += x.fwdLost;
        kinds |= x.kinds;
      }
      if (sent < T.linkMinSent) continue;
      const lossy = lost / sent >= T.linkLossy && lost >= T.linkMinLost;
      // The lossy stretch: the windows over which the link has been judged lossy, kept per link
      // beyond the horizon. It begins at the oldest window of the first lossy judgement, and ends
      // when the link is judged clean (not when its newest window alone is clean: the tail of a
      // fault still in the horizon is the same stretch).
      if (!lossy) rec.stretch = undefined;
      else if (rec.stretch && rec.stretch.to === newest.seq) { /* judged twice in one window */ }
      else if (rec.stretch && before && rec.stretch.to === before.seq) rec.stretch.to = newest.seq;
      else rec.stretch = { from: slots[first]!.seq, to: newest.seq };
      const e: EvaluatedLink = {
        src: hostKey(s.sourceRegion, s.agentIp), dst: hostKey(s.targetRegion, s.target), sourceRegion: s.sourceRegion, agentIp: s.agentIp, targetRegion: s.targetRegion, target: s.target,
        sent, lost, lossy, oneWayWeight: 0, kinds, explained: false, lossySinceSeq: rec.stretch?.from ?? newest.seq,
      };
      if (fwdSent > 0 && udpSent > 0) {
        e.forwardLoss = fwdLost / fwdSent;
        e.reverseLoss = reverseLoss(fwdSent, fwdLost, udpSent - udpLost);
        e.oneWayWeight = fwdSent;
      }
      out.push(e);
    }
    return out;
  }
}

/**
 * Loss on the way back, from the spans of the reflector counts (docs/probes.md "One-way loss"):
 * every span is closed by exactly one reply received, and `arrived` = forward_sent - forward_lost
 * requests reached the responder within the spans, so 1 - replies / arrived were lost coming back.
 * Not 1 - (1 - loss) / (1 - forward loss): requests after a flow's last reply (a cut in the middle
 * of a round) are in no span, and that formula would call their loss the way back's.
 * @param replies replies received (udp sent - lost of the windows with spans); undefined when nothing arrived
 */
export function reverseLoss(forwardSent: number, forwardLost: number, replies: number): number | undefined {
  const arrived = forwardSent - forwardLost;
  return arrived > 0 ? Math.min(1, Math.max(0, 1 - replies / arrived)) : undefined;
}

/** Pooled one-way loss of a set of directed observations (weight, loss); undefined when none. */
export function pooled(xs: readonly { w: number; loss: number | undefined }[]): number | undefined {
  let w = 0, s = 0;
  for (const x of xs) if (x.loss !== undefined && x.w > 0) (w += x.w), (s += x.w * x.loss);
  return w > 0 ? s / w : undefined;
}

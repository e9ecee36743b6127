/**
 * The direction a silent region cannot report (docs/aggregation.md "A region cut off").
 *
 * When a region is cut off, the other regions' probes of its agents lose everything, and they say
 * so (its agents stay mesh targets while silent, lib/server/registry.ts). Its own agents measure
 * the other direction too, but cannot deliver it until they are reconnected: those results arrive
 * late and go to the cumulative counters only. So, in the window, the pair (cut → other) would
 * have no value at all.
 *
 * ICMP echo is a round trip: the request goes one way, the reply the other. If every echo from
 * region S to the agents of region T is lost, at least one direction of the path between them is
 * down, and echoes from T's agents to S cross the same two directions: they are lost too. So for a
 * window in which
 *   - every known agent of T is silent (dead, not yet forgotten), and
 *   - S's probes of T's agent addresses sent packets and lost at least UNREACHABLE_LOSS of them, and
 *   - T → S has no result of its own in the window,
 * the server publishes T → S as loss 1, flagged by prober_icmp_pair_inferred. An agent that crashed
 * on a live host is not inferred: its kernel still answers S's echoes, so S → T reads no loss.
 *
 * The udp mesh is inferred the same way (prober_udp_pair_inferred): a probe and its reply are a
 * round trip too, and its targets are the silent agents' responders, `ip:port`. A crashed agent's
 * responder does not answer, unlike its kernel's echo, so the server publishes a udp pair as
 * inferred only when the ICMP inference names the same pair (lib/server/server.ts).
 */
import { splitHostPortTarget } from "../probes/host_port.ts";

/** Loss at or above which a pair's probes of silent agents count as "everything lost" (the isolation alert's threshold). */
export const UNREACHABLE_LOSS = 0.99;

/** What the inference reads of one published pair (icmp, udp): its (agent, target address) links; an address is an IP or ip:port. */
export interface PublishedPair {
  sourceRegion: string;
  targetRegion: string;
  links: readonly { address: string; sent: number; received: number; lossRatio: number }[];
}

/** A known agent as the registry has it. */
export interface KnownAgent {
  region: string;
  ip: string;
  alive: boolean;
}

/** A pair published by inference: `sourceRegion` is the silent region. */
export interface InferredPair {
  sourceRegion: string;
  targetRegion: string;
  /** Loss of the forward direction's probes of the silent agents, 0..1 (time-weighted, as published). */
  forwardLoss: number;
}

/**
 * The pairs to publish as unreachable for one window. O(links + agents).
 * @param published the window's published ICMP pairs
 * @param agents every known agent (live or dead, not forgotten)
 */
export function inferUnreachable(published: readonly PublishedPair[], agents: readonly KnownAgent[]): InferredPair[] {
  // Regions whose every known agent is silent, with those agents' addresses.
  const silent = new Map<string, Set<string>>();
  const alive = new Set<string>();
  for (const a of agents) {
    if (a.alive) alive.add(a.region);
    else {
      let s = silent.get(a.region);
      if (!s) silent.set(a.region, (s = new Set()));
      s.add(a.ip);
    }
  }
  for (const r of alive) silent.delete(r);
  if (silent.size === 0) return [];
  const reported = new Set(published.map((p) => `${p.sourceRegion}\u0000${p.targetRegion}`));
  const out: InferredPair[] = [];
  for (const p of published) {
    const ips = silent.get(p.targetRegion);
    if (!ips || reported.has(`${p.targetRegion}\u0000${p.sourceRegion}`)) continue;
    // Weighted like the published loss: Σ loss·sent / Σ sent over the links to the silent agents.
    let sent = 0, lost = 0;
    for (const l of p.links) {
      if (l.sent === 0 || !(ips.has(l.address) || ips.has(splitHostPortTarget(l.address)?.host ?? ""))) continue;
      sent += l.sent;
      lost += l.lossRatio * l.sent;
    }
    if (sent === 0) continue;
    const forwardLoss = lost / sent;
    if (forwardLoss >= UNREACHABLE_LOSS) out.push({ sourceRegion: p.targetRegion, targetRegion: p.sourceRegion, forwardLoss });
  }
  return out;
}

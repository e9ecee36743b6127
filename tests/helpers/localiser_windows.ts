/**
 * Recorded-style windows for the localiser's unit tests: a full mesh of `regions` x `agents`
 * (agent j of region r has IP 10.<r>.0.<j+1>), every agent probing every agent of the other
 * regions with one icmp link (64 echoes) and, with `udp`, one udp link with one-way counts. The
 * loss of each direction of each pair of hosts comes from `drop(from, to)` (share 0..1 of packets
 * lost going from host `from` to host `to`); a round trip loses 1 - (1 - d(a,t))(1 - d(t,a)).
 * Counts are expected values (deterministic), so a test states behaviour, not luck.
 */
import type { AgentSample, LinkSample, TraceSample, WindowInput } from "../../lib/localiser/model.ts";

export interface Host {
  region: string;
  ip: string;
}

export interface MeshSpec {
  regions: string[];
  agents: number;
  udp?: boolean;
  /** Share of packets lost from `from` to `to` (default 0). */
  drop?(from: Host, to: Host): number;
  /** Hosts whose own results are missing (a silent agent: its links as prober are absent). */
  silent?(h: Host): boolean;
  health?(h: Host): AgentSample["health"];
  traces?: TraceSample[];
  inferred?: WindowInput["inferred"];
}

/** The hosts of the mesh, region by region. */
export function hosts(spec: MeshSpec): Host[] {
  return spec.regions.flatMap((region, r) => Array.from({ length: spec.agents }, (_, j) => ({ region, ip: `10.${r + 1}.0.${j + 1}` })));
}

/** One window of the mesh ending at `windowEndMs`. */
export function meshWindow(spec: MeshSpec, windowEndMs: number): WindowInput {
  const all = hosts(spec);
  const drop = spec.drop ?? (() => 0);
  const links: LinkSample[] = [];
  for (const a of all) {
    if (spec.silent?.(a)) continue;
    for (const t of all) {
      if (t.region === a.region) continue;
      const fwd = drop(a, t), rev = drop(t, a);
      const rt = 1 - (1 - fwd) * (1 - rev);
      const base = { sourceRegion: a.region, agentIp: a.ip, targetRegion: t.region, target: t.ip, sent: 64, lost: 64 * rt };
      links.push({ kind: "icmp", ...base });
      // One-way counts come from replies (reflector counts): none when every round trip is lost.
      if (spec.udp) links.push({ kind: "udp", ...base, ...(rt < 1 ? { forwardSent: 64, forwardLost: 64 * fwd } : {}) });
    }
  }
  return {
    windowEndMs, links, traces: spec.traces ?? [], inferred: spec.inferred ?? [],
    agents: all.map((h) => ({ ...h, alive: !spec.silent?.(h), ...(spec.health?.(h) ? { health: spec.health(h) } : {}) })),
  };
}

/**
 * Peer subsets (lib/server/peers.ts) as properties over many random meshes: coverage, N per
 * region, rendezvous stability on join and leave, the same answer whatever the order of events
 * (two servers), and incremental upkeep equal to a from-scratch build, with every agent whose
 * peers changed among those reported (they are told to fetch their pool again).
 */
import { describe, expect, test } from "bun:test";
import { PeerSubsets, identityHash, peerKey, weight } from "../lib/server/peers.ts";

/** Deterministic PRNG (mulberry32) so a failing seed can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface A {
  region: string;
  ip: string;
  live: boolean;
}

function randomMesh(r: () => number): { agents: A[]; n: number } {
  const regions = 2 + Math.floor(r() * 9);
  const agents: A[] = [];
  for (let g = 0; g < regions; g++) {
    const k = 1 + Math.floor(r() * (r() < 0.2 ? 20 : 6));
    for (let j = 0; j < k; j++) agents.push({ region: `r${g}`, ip: `10.${g}.0.${j}`, live: r() > 0.15 });
  }
  return { agents, n: 1 + Math.floor(r() * 3) };
}

const key = (a: A) => peerKey(a.region, a.ip);
const build = (agents: A[], n: number) => {
  const p = new PeerSubsets(n);
  for (const a of agents) p.upsert(a.region, a.ip, a.live);
  return p;
};
const pairSet = (p: PeerSubsets) => new Set([...p.pairs()].map(([s, t]) => `${s}>${t}`));
const peersBySource = (p: PeerSubsets, agents: A[]) => new Map(agents.map((a) => [key(a), [...p.peersOf(a.region, a.ip)].sort().join(",")]));

/** The definition, written out plainly (the oracle): chosen N highest, plus guarantees. */
function reference(agents: A[], n: number, s: A): Set<string> {
  const w = (a: A, b: A) => weight(identityHash(key(a)), identityHash(key(b)));
  const beats = (wa: number, ka: string, wb: number, kb: string) => wa > wb || (wa === wb && ka < kb);
  const out = new Set<string>();
  for (const region of new Set(agents.map((a) => a.region))) {
    if (region === s.region) continue;
    const members = agents.filter((a) => a.region === region);
    const ranked = [...members].sort((a, b) => (beats(w(s, a), key(a), w(s, b), key(b)) ? -1 : 1));
    for (const t of ranked.slice(0, n)) out.add(key(t));
    if (!s.live) continue;
    for (const t of members) {
      const rivals = agents.filter((a) => a.region === s.region && a.live);
      const best = rivals.reduce((b, a) => (beats(w(a, t), key(a), w(b, t), key(b)) ? a : b));
      if (key(best) === key(s)) out.add(key(t));
    }
  }
  return out;
}

describe("peer subsets (rendezvous)", () => {
  const SEEDS = 150;

  test(`${SEEDS} random meshes: each agent's peers are the definition's (N highest + guaranteed); every agent is probed from every other region with live agents`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { agents, n } = randomMesh(rng(seed));
      const p = build(agents, n);
      for (const s of agents) expect([...p.peersOf(s.region, s.ip)].sort(), `seed ${seed} ${key(s)}`).toEqual([...reference(agents, n, s)].sort());
      const pairs = pairSet(p);
      for (const t of agents) {
        for (const region of new Set(agents.filter((a) => a.live && a.region !== t.region).map((a) => a.region))) {
          const probers = agents.filter((s) => s.region === region && s.live && pairs.has(`${key(s)}>${key(t)}`));
          expect(probers.length, `seed ${seed}: ${key(t)} from ${region}`).toBeGreaterThanOrEqual(1);
        }
      }
    }
  });

  test("N per region: each agent probes at least min(N, agents there) of each other region; the share beyond N (guarantees) is printed", () => {
    let extra = 0, slots = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { agents, n } = randomMesh(rng(seed));
      const p = build(agents, n);
      const pairs = pairSet(p);
      for (const s of agents.filter((a) => a.live)) {
        for (const region of new Set(agents.map((a) => a.region))) {
          if (region === s.region) continue;
          const there = agents.filter((a) => a.region === region);
          const probed = there.filter((t) => pairs.has(`${key(s)}>${key(t)}`)).length;
          expect(probed).toBeGreaterThanOrEqual(Math.min(n, there.length));
          // Beyond N only for the agents it guarantees (the definition test checks which).
          if (probed > n) expect(probed).toBeLessThanOrEqual(n + there.length);
          extra += Math.max(0, probed - n);
          slots += Math.min(n, there.length);
        }
      }
    }
    console.log(`peers beyond N (guarantees): ${extra} over ${slots} chosen (${((100 * extra) / slots).toFixed(1)} %)`);
  });

  test("a join or leave changes only pairs that involve the agent, the pairs it displaces, and the guarantees it takes over", () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = rng(seed);
      const { agents, n } = randomMesh(r);
      const x = agents.splice(Math.floor(r() * agents.length), 1)[0]!;
      x.live = true;
      const before = build(agents, n);
      const b = pairSet(before);
      const after = build([...agents, x], n);
      const a = pairSet(after);
      const added = [...a].filter((k) => !b.has(k)), removed = [...b].filter((k) => !a.has(k));
      const involves = (k: string) => k.split(">").includes(key(x));
      expect(added.filter((k) => !involves(k)), `seed ${seed}: added without ${key(x)}`).toEqual([]);
      expect(removed.every((k) => !involves(k))).toBe(true);
      // Each removal is paid for by an addition involving x: a source that now chooses x drops
      // its former N-th, or x takes over a target's guarantee from an agent of its own region.
      for (const k of removed) {
        const [src, dst] = k.split(">") as [string, string];
        const displaced = a.has(`${src}>${key(x)}`);
        const takenOver = a.has(`${key(x)}>${dst}`) && src.startsWith(`${x.region}\u0000`);
        expect(displaced || takenOver, `seed ${seed}: ${k}`).toBe(true);
      }
      expect(removed.length).toBeLessThanOrEqual(added.length);
      // Leaving is the same change backwards.
      const left = build([...agents, x], n);
      left.remove(x.region, x.ip);
      expect(pairSet(left)).toEqual(b);
    }
  });

  test("incremental upkeep over random events equals a fresh build, in any order of events, and reports exactly the agents whose peers changed", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = rng(seed * 7919);
      const { agents: pool, n } = randomMesh(r);
      const p = new PeerSubsets(n);
      const state = new Map<string, A>();
      for (let step = 0; step < 120; step++) {
        const a = pool[Math.floor(r() * pool.length)]!;
        const before = peersBySource(build([...state.values()], n), [...state.values()]);
        const roll = r();
        let affected: Set<string>;
        if (roll < 0.2 && state.has(key(a))) {
          affected = p.remove(a.region, a.ip);
          state.delete(key(a));
        } else {
          const live = roll < 0.75;
          affected = p.upsert(a.region, a.ip, live);
          state.set(key(a), { ...a, live });
        }
        // Peer sets are kept until reported changed: what p answers must equal a fresh build's at
        // every step (a change left unreported would keep a stale set and show here).
        const after = peersBySource(build([...state.values()], n), [...state.values()]);
        expect(peersBySource(p, [...state.values()]), `seed ${seed} step ${step}: kept peer sets equal a fresh build`).toEqual(after);
        for (const [k, v] of after) if (before.get(k) !== v) expect(affected.has(k), `seed ${seed} step ${step}: ${k} changed unreported`).toBe(true);
        // ... and no other (they would fetch their pool for nothing): the agent itself aside.
        for (const k of affected) if (k !== key(a) && after.has(k)) expect(before.get(k) !== after.get(k), `seed ${seed} step ${step}: ${k} reported unchanged`).toBe(true);
      }
      const live = [...state.values()];
      const fresh = build(live, n);
      const shuffled = build([...live].sort(() => r() - 0.5), n);
      expect(peersBySource(p, live)).toEqual(peersBySource(fresh, live));
      expect(peersBySource(shuffled, live)).toEqual(peersBySource(fresh, live));
    }
  });

  test("weights come from the identities alone (every server agrees) and spread evenly", () => {
    expect(identityHash("r1\u000010.0.0.1")).toBe(Bun.hash.xxHash32("r1\u000010.0.0.1") >>> 0);
    // Who is chosen first by 20,000 sources among 8 targets: each close to 1/8.
    const targets = Array.from({ length: 8 }, (_, i) => identityHash(`t\u000010.9.0.${i}`));
    const first = new Array(8).fill(0);
    for (let s = 0; s < 20_000; s++) {
      const hs = identityHash(`s\u000010.${s >> 8}.${s & 255}.1`);
      let best = 0;
      for (let i = 1; i < 8; i++) if (weight(hs, targets[i]!) > weight(hs, targets[best]!)) best = i;
      first[best]++;
    }
    for (const c of first) expect(Math.abs(c / 20_000 - 1 / 8)).toBeLessThan(0.02);
  });

  test("bad N is refused", () => {
    expect(() => new PeerSubsets(0)).toThrow(/>= 1/);
    expect(() => new PeerSubsets(1.5)).toThrow(/>= 1/);
  });
});

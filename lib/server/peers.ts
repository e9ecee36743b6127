/**
 * Peer subsets (-server.mesh.peers.per.region N > 0; docs/aggregation.md "Peer subsets"): which
 * agents of each other region an agent probes in the dynamic mesh, by rendezvous
 * (highest-random-weight) hashing, as goldpinger's PING_NUMBER does, with a coverage guarantee:
 *
 * - **chosen**: source agent s probes the N agents t of each other region with the highest
 *   weight w(s, t) (all of them when the region has at most N);
 * - **guaranteed**: for each agent t and each other region R with live agents, the live agent s
 *   of R with the highest w(s, t) probes t. So every agent is probed from every other region
 *   that has live agents, even when R has fewer agents than t's region has / N.
 *
 * Targets are the known agents (live or silent until forgotten: a cut region reads loss 1, not
 * nothing); sources and guarantors are the live ones. Both rules depend only on the pair's own
 * weight and the members of the two regions, so a join or leave of x changes only pairs that
 * involve x, the pair x displaces from (or returns to) a source's N highest, and the guarantees
 * x takes over (or hands back) — the rendezvous property. The weight is a function of the two
 * agents' identities (`region\0ip`) alone, so every server sharing a registry makes the same
 * choice without talking.
 *
 * Costs: a join or leave is O(agents × agents of the region concerned) weight evaluations (each a
 * few integer multiplies), a peer set O(agents) the first time it is asked for after it changed
 * (one pass over typed arrays: ~0.1 ms at 5,000 agents)
 * (kept until a join, leave or liveness change reports the agent affected). Memory: one Int32 per
 * (region, agent), and each agent's peer set once asked for.
 */

/** An agent's identity in the subsets: `region\0ip` (as the registry keys it). */
export const peerKey = (region: string, ip: string) => `${region}\u0000${ip}`;

/**
 * Rendezvous weight of (source, target) from their identities' 32-bit hashes: the source's hash
 * is mixed, xor-ed with the target's and put through MurmurHash3's 32-bit finaliser (fmix32).
 * Unsigned 32-bit; ties are broken by the identities' order (better()).
 */
export function weight(sourceHash: number, targetHash: number): number {
  let h = Math.imul(sourceHash ^ 0x9e3779b9, 0x85ebca6b) ^ targetHash;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The 32-bit hash of an identity (XXH32, seed 0): the same on every server and release. */
export const identityHash = (key: string) => Bun.hash.xxHash32(key) >>> 0;

interface Region {
  id: number;
  name: string;
  /** Known agents (targets), by slot. */
  members: Set<number>;
  /** Live agents (sources, guarantors), by slot. */
  live: Set<number>;
  /** guarantor[t] = slot of this region's live agent that guarantees agent slot t, or -1. */
  guarantor: Int32Array;
}

/** Who probes whom in the dynamic mesh under peer subsets. Not for N = 0 (the full mesh). */
export class PeerSubsets {
  private readonly slots = new Map<string, number>();
  private keys: string[] = [];
  private hashes = new Uint32Array(64);
  private regionOf: Region[] = [];
  /** Per slot: its region's id, or -1 for a free slot (compute() reads these arrays in one pass). */
  private regionIdOf: Int32Array = new Int32Array(64).fill(-1);
  private readonly free: number[] = [];
  private readonly regions = new Map<string, Region>();
  private readonly freeRegionIds: number[] = [];
  private nextRegionId = 0;
  /** Peer sets asked for since they last changed, by identity (at most one per known agent). */
  private readonly cached = new Map<string, ReadonlySet<string>>();

  /** @param perRegion N: agents of each other region an agent chooses (>= 1) */
  constructor(readonly perRegion: number) {
    if (!(Number.isInteger(perRegion) && perRegion >= 1)) throw new Error(`peers per region must be an integer >= 1, got ${perRegion}`);
  }

  /** Agents known. */
  get size(): number {
    return this.slots.size;
  }

  private capacity(): number {
    return this.hashes.length;
  }

  private grow(): void {
    const cap = this.capacity() * 2;
    const h = new Uint32Array(cap);
    h.set(this.hashes);
    this.hashes = h;
    this.regionIdOf = extend(this.regionIdOf, cap);
    for (const r of this.regions.values()) r.guarantor = extend(r.guarantor, cap);
  }

  /** True when source slot a beats slot b for target slot t (weight, then identity order). */
  private better(a: number, b: number, t: number): boolean {
    const ht = this.hashes[t]!;
    const wa = weight(this.hashes[a]!, ht), wb = weight(this.hashes[b]!, ht);
    return wa > wb || (wa === wb && this.keys[a]! < this.keys[b]!);
  }

  /** True when target slot a ranks above target slot b for source slot s. */
  private ranks(s: number, a: number, b: number): boolean {
    const hs = this.hashes[s]!;
    const wa = weight(hs, this.hashes[a]!), wb = weight(hs, this.hashes[b]!);
    return wa > wb || (wa === wb && this.keys[a]! < this.keys[b]!);
  }

  /** The live agent of `r` that guarantees target slot t (its highest weight), or -1. */
  private argmax(r: Region, t: number, without = -1): number {
    let best = -1;
    for (const s of r.live) if (s !== without && (best < 0 || this.better(s, best, t))) best = s;
    return best;
  }

  /** True when target slot x is among source slot s's N highest of `members` (x may or may not be a member). */
  private inTop(s: number, x: number, members: Set<number>): boolean {
    let above = 0;
    for (const t of members) if (t !== x && this.ranks(s, t, x) && ++above >= this.perRegion) return false;
    return true;
  }

  /** Agents of regions other than `r` (they choose among r's agents; a silent one's choice counts when it is back). */
  private *others(r: Region): Iterable<number> {
    for (const o of this.regions.values()) if (o !== r) yield* o.members;
  }

  private region(name: string): Region {
    let r = this.regions.get(name);
    if (!r) {
      const id = this.freeRegionIds.pop() ?? this.nextRegionId++;
      r = { id, name, members: new Set(), live: new Set(), guarantor: new Int32Array(this.capacity()).fill(-1) };
      this.regions.set(name, r);
    }
    return r;
  }

  /**
   * An agent became known (`live`: it heartbeats) or changed liveness; idempotent.
   * @returns identities of the agents whose peer set changed (the agent itself included)
   */
  upsert(region: string, ip: string, live: boolean): Set<string> {
    const key = peerKey(region, ip);
    const affected = new Set<string>();
    let x = this.slots.get(key);
    const r = this.region(region);
    if (x === undefined) {
      if (!this.free.length && this.slots.size >= this.capacity()) this.grow();
      x = this.free.pop() ?? this.slots.size;
      this.slots.set(key, x);
      this.keys[x] = key;
      this.hashes[x] = identityHash(key);
      this.regionOf[x] = r;
      this.regionIdOf[x] = r.id;
      this.joinAsTarget(r, x, affected);
      affected.add(key);
    }
    if (live && !r.live.has(x)) this.joinAsSource(r, x, affected);
    else if (!live && r.live.has(x)) this.leaveAsSource(r, x, affected);
    return this.invalidate(affected);
  }

  /** Drops the kept peer sets of `affected` (exactly the agents whose peers changed). */
  private invalidate(affected: Set<string>): Set<string> {
    for (const k of affected) this.cached.delete(k);
    return affected;
  }

  /**
   * An agent was forgotten or said goodbye.
   * @returns identities of the agents whose peer set changed (the agent itself included)
   */
  remove(region: string, ip: string): Set<string> {
    const key = peerKey(region, ip);
    const affected = new Set<string>();
    const x = this.slots.get(key);
    if (x === undefined) return affected;
    const r = this.regionOf[x]!;
    if (r.live.has(x)) this.leaveAsSource(r, x, affected);
    // As a target: the sources that had it among their N highest, and its guarantors.
    for (const s of this.others(r)) if (this.inTop(s, x, r.members)) affected.add(this.keys[s]!);
    r.members.delete(x);
    for (const o of this.regions.values()) {
      const g = o.guarantor[x]!;
      if (g >= 0) affected.add(this.keys[g]!);
      o.guarantor[x] = -1;
    }
    this.slots.delete(key);
    this.regionIdOf[x] = -1;
    this.free.push(x);
    affected.add(key);
    if (!r.members.size) {
      this.regions.delete(r.name);
      this.freeRegionIds.push(r.id);
    }
    return this.invalidate(affected);
  }

  private joinAsTarget(r: Region, x: number, affected: Set<string>): void {
    for (const s of this.others(r)) if (this.inTop(s, x, r.members)) affected.add(this.keys[s]!);
    r.members.add(x);
    for (const o of this.regions.values()) {
      if (o === r) continue;
      const g = this.argmax(o, x);
      o.guarantor[x] = g;
      if (g >= 0) affected.add(this.keys[g]!);
    }
  }

  private joinAsSource(r: Region, x: number, affected: Set<string>): void {
    r.live.add(x);
    affected.add(this.keys[x]!);
    for (const o of this.regions.values()) {
      if (o === r) continue;
      for (const t of o.members) {
        const g = r.guarantor[t]!;
        if (g < 0 || this.better(x, g, t)) {
          // The former guarantor's peers change unless t is among its N highest anyway.
          if (g >= 0 && !this.inTop(g, t, o.members)) affected.add(this.keys[g]!);
          r.guarantor[t] = x;
        }
      }
    }
  }

  private leaveAsSource(r: Region, x: number, affected: Set<string>): void {
    r.live.delete(x);
    affected.add(this.keys[x]!);
    for (const o of this.regions.values()) {
      if (o === r) continue;
      for (const t of o.members) {
        if (r.guarantor[t] !== x) continue;
        const g = this.argmax(r, t);
        r.guarantor[t] = g;
        if (g >= 0 && !this.inTop(g, t, o.members)) affected.add(this.keys[g]!);
      }
    }
  }

  /**
   * The agents `region`/`ip` probes in each other region: its N highest-weight ones plus those it
   * guarantees. Empty for an unknown agent. Kept until it changes: callers must not change it.
   * @returns target identities (`region\0ip`, peerKey())
   */
  peersOf(region: string, ip: string): ReadonlySet<string> {
    const key = peerKey(region, ip);
    const kept = this.cached.get(key);
    if (kept) return kept;
    const s = this.slots.get(key);
    if (s === undefined) return new Set();
    const out = this.compute(s);
    this.cached.set(key, out);
    return out;
  }

  /**
   * The peer set of source slot s, computed from the weights (peersOf()): one pass over the slots
   * (typed arrays, no Set iteration), keeping per other region its N highest in a small sorted
   * buffer (weight descending, then identity order) and the targets s guarantees.
   */
  private compute(s: number): Set<string> {
    const own = this.regionOf[s]!;
    const n = this.perRegion;
    const hs = this.hashes[s]!;
    const regionIds = this.nextRegionId;
    // topT[r * n + k]: k-th best target slot of region id r (-1: none yet); topW its weight.
    const topT = new Int32Array(regionIds * n).fill(-1);
    const topW = new Float64Array(regionIds * n);
    const guarantees = own.live.has(s) ? own.guarantor : undefined;
    const out = new Set<string>();
    const cap = this.capacity();
    for (let t = 0; t < cap; t++) {
      const rid = this.regionIdOf[t]!;
      if (rid < 0 || rid === own.id) continue;
      if (guarantees && guarantees[t] === s) out.add(this.keys[t]!);
      const w = weight(hs, this.hashes[t]!);
      const base = rid * n;
      const lastT = topT[base + n - 1]!;
      if (lastT >= 0 && (w < topW[base + n - 1]! || (w === topW[base + n - 1]! && this.keys[t]! > this.keys[lastT]!))) continue;
      // Insert t at its rank, dropping the former N-th.
      let i = n - 1;
      while (i > 0) {
        const u = topT[base + i - 1]!;
        if (u >= 0 && (topW[base + i - 1]! > w || (topW[base + i - 1]! === w && this.keys[u]! < this.keys[t]!))) break;
        topT[base + i] = u;
        topW[base + i] = topW[base + i - 1]!;
        i--;
      }
      topT[base + i] = t;
      topW[base + i] = w;
    }
    for (let k = 0; k < topT.length; k++) if (topT[k]! >= 0) out.add(this.keys[topT[k]!]!);
    return out;
  }

  /** Every (source, target) identity pair of live sources (for tests and the bench). */
  *pairs(): Iterable<[string, string]> {
    for (const r of this.regions.values()) {
      for (const s of r.live) {
        const [region, ip] = splitKey(this.keys[s]!);
        for (const t of this.peersOf(region, ip)) yield [this.keys[s]!, t];
      }
    }
  }
}

/** `region\0ip` → [region, ip]. */
export function splitKey(key: string): [string, string] {
  const i = key.indexOf("\u0000");
  return [key.slice(0, i), key.slice(i + 1)];
}

function extend(a: Int32Array, cap: number): Int32Array {
  const b = new Int32Array(cap).fill(-1);
  b.set(a);
  return b;
}

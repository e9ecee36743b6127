/**
 * A simulated mesh for the localiser bench (bench/localise.ts, issue 20 "Measure it"): regions of
 * agents that probe every agent of the other regions each window, with background loss, one
 * injected fault per scenario, path traces of lossy links, and the WindowInput the server would
 * give lib/localiser for each window. Seeded: the same (scenario, seed, options) gives the same
 * windows, byte for byte.
 *
 * The model (the README's bench table states it in short):
 * - region r (r1..rN) has `agents` agents, 10.<r>.0.<j>; an edge router 10.<r>.255.1; the regions
 *   hang off `cores` core routers 172.16.0.<k> (region r on core (r-1) mod cores). The path a -> t
 *   is [edge(A), core(A), core(T) if different, edge(T), t]; replies take the same routers back.
 * - each window every reporting agent probes every agent of the other regions: icmp (64 echoes,
 *   round trips) and udp (64 probes, round trips, plus the reflector's one-way count: forwardSent,
 *   forwardLost; given when at least one reply came back, as the agent learns it from replies).
 * - background: every packet (each direction) is lost with p0; each (agent, target) link has, with
 *   probability burstRate per window, a one-window burst of burstMin..burstMax loss at one router
 *   of its path, in one direction or both.
 * - faults: agent, region and region-pair faults sit in the hosts (as the netns tests' nftables
 *   rules do), matching the address a packet is sent to or comes from (a region's addresses are its
 *   agents and its edge router; core routers belong to no region). A hop fault is a core router
 *   dropping a share of every packet it forwards, both ways. See FAULTS.
 * - traces: an agent traces a link whose round (icmp or udp) lost at least 5 % in the window, at
 *   most once per link per traceEvery windows, 10 probes per hop; the trace shows the conditions of
 *   that window and reaches the server (WindowInput.traces) from the next window on. Per hop, the
 *   loss is that of the round trip to that hop: probes the source host drops, routers' forwarding
 *   drops before the hop (both ways), and the source host's drops of the router's answer. Routers
 *   answer every probe that reaches them (no ICMP rate limit).
 * - a cut region (region_isolated) stops reporting: its links and health vanish, its agents are
 *   dead from the fault's second window and the server infers (cut -> X) for every other region X
 *   (lib/server/unreachable.ts), as WindowInput.inferred.
 */
import { IncidentBook } from "../lib/localiser/incidents.ts";
import { Localiser } from "../lib/localiser/localise.ts";
import { THRESHOLDS, type AgentSample, type LinkSample, type Scope, type TraceSample, type WindowInput } from "../lib/localiser/model.ts";

/** Sizes and noise of a simulated mesh. */
export interface SimOptions {
  regions: number;
  agents: number;
  cores: number;
  /** Window length, ms (the server's aggregation interval). */
  windowMs: number;
  /** Background loss per packet per direction, 0..1. */
  p0: number;
  /** Probability per link per window of a one-window burst, and its loss range, 0..1. */
  burstRate: number;
  burstMin: number;
  burstMax: number;
  /** A link is traced at most once per this many windows. */
  traceEvery: number;
}

export const DEFAULT_SIM: SimOptions = { regions: 50, agents: 4, cores: 8, windowMs: 15_000, p0: 0.001, burstRate: 0.01, burstMin: 0.1, burstMax: 0.4, traceEvery: 20 };

/** Echoes (icmp) and probes (udp) per link per window; probes per trace hop. */
const ECHOES = 64, TRACE_PROBES = 10;
/** A round that lost this share makes the agent trace the link (its error state). */
const TRACE_ON_LOSS = 0.05;
const T0_MS = 1_700_000_000_000;

/** The scenarios: one fault each, and its ground truth. */
export const FAULTS = {
  agent: "one agent's host drops 30 % of every packet, both ways (its links as prober and as target)",
  agent_starved: "one agent is starved: its own probes lose 20 % (replies read late), health says 40 % of rounds late and 10 % loopback loss",
  agent_starved_single: "as agent_starved, the agent being the only one of its region",
  region_egress: "a region's hosts drop 30 % of packets to other regions' addresses",
  region_ingress: "a region's hosts drop 30 % of packets from other regions' addresses (and core routers)",
  region_isolated: "a region's hosts drop 100 % both ways; its agents stop reporting, the server infers (cut -> X)",
  region_pair: "the hosts of regions A and B drop 30 % of packets to each other (both ways)",
  region_pair_oneway: "the hosts of region A drop 30 % of packets to region B (one way)",
  hop: "a core router drops 30 % of every packet it forwards, both ways",
  clean: "no fault: background loss and bursts only",
} as const;
export type FaultKind = keyof typeof FAULTS;

/** What a scenario should be diagnosed as (docs: SCOPES subjects). */
export interface Truth {
  scope: Scope;
  subject: string;
}

/** A fault drawn for one seed: the kind, its subject's indices, its truth, and the windows it holds (1-based, inclusive). */
export interface Fault {
  kind: FaultKind;
  /** Agent faults: host index; region faults: region index (0-based); pair: [a, b]; hop: core index. */
  host?: number;
  region?: number;
  pair?: [number, number];
  core?: number;
  truth?: Truth;
  from: number;
  to: number;
  /** Windows the scenario runs. */
  windows: number;
}

/** sfc32, seeded through splitmix32: fast, deterministic, good enough for loss draws. Returns [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

/** A 32-bit hash of a string (FNV-1a), to derive per-scenario seeds. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Binomial(n, p) by inversion (n is small here: 64 or 10), one uniform draw. */
export function binomial(n: number, p: number, rnd: () => number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(n, 1 - p, rnd);
  const q = 1 - p, s = p / q, a = (n + 1) * s;
  let r = Math.pow(q, n), u = rnd(), x = 0;
  while (u > r && x < n) {
    u -= r;
    x++;
    r *= a / x - s;
  }
  return x;
}

/** Region name of index r (0-based): r1, r2, ... (the pair subject's natural order matters: r2 < r10). */
export const regionName = (r: number) => `r${r + 1}`;

/** The subject of a region pair: both names in natural order (SCOPES.region_pair). */
export function pairName(a: string, b: string): string {
  return [a, b].sort((x, y) => x.localeCompare(y, "en", { numeric: true })).join("<->");
}

interface Host {
  i: number;
  r: number;
  ip: string;
}

/** Draws the fault of `kind` for `seed` on a mesh of `o`'s size: 10 clean windows, 20 faulty, 10 clean (clean: 240 windows). */
export function drawFault(kind: FaultKind, seed: number, o: SimOptions): Fault {
  const rnd = prng(hash32(`${kind}/${seed}/fault`));
  const pick = (n: number) => Math.floor(rnd() * n);
  const base = { kind, from: 11, to: 30, windows: 40 };
  const region = pick(o.regions);
  switch (kind) {
    case "clean":
      return { kind, from: 0, to: -1, windows: 240 };
    case "agent": case "agent_starved": case "agent_starved_single": {
      const j = kind === "agent_starved_single" ? 0 : pick(o.agents);
      const host = hostsOf(o, kind === "agent_starved_single" ? region : -1).findIndex((h) => h.r === region && h.ip === agentIp(region, j));
      return { ...base, host, region, truth: { scope: "agent", subject: `${regionName(region)}/${agentIp(region, j)}` } };
    }
    case "region_egress": case "region_ingress": case "region_isolated":
      return { ...base, region, truth: { scope: kind, subject: regionName(region) } };
    case "region_pair": case "region_pair_oneway": {
      const b = (region + 1 + pick(o.regions - 1)) % o.regions;
      return { ...base, pair: [region, b], truth: { scope: "region_pair", subject: pairName(regionName(region), regionName(b)) } };
    }
    case "hop": {
      const core = pick(Math.min(o.cores, o.regions));
      return { ...base, core, truth: { scope: "hop", subject: coreIp(core) } };
    }
  }
}

const agentIp = (r: number, j: number) => `10.${r + 1}.0.${j + 1}`;
/** Edge router of region r, core router k. */
export const edgeIp = (r: number) => `10.${r + 1}.255.1`;
export const coreIp = (k: number) => `172.16.0.${k + 1}`;

/** The hosts of a mesh; `single`: the region that has one agent only (-1: none). */
function hostsOf(o: SimOptions, single: number): Host[] {
  const out: Host[] = [];
  for (let r = 0; r < o.regions; r++) for (let j = 0; j < (r === single ? 1 : o.agents); j++) out.push({ i: out.length, r, ip: agentIp(r, j) });
  return out;
}

/** One simulated mesh running one fault: each window() call gives the next window (1, 2, ...). */
export class MeshSim {
  readonly hosts: Host[];
  private readonly rnd: () => number;
  /** Routers: ids 0..regions-1 are edges, regions+k core k. */
  private readonly routerIp: string[];
  private readonly paths: number[][] = [];
  private readonly names: string[];
  /** Last window each link (a * hosts + t) was traced, and traces not yet delivered / delivered (newest per link). */
  private readonly lastTraced = new Map<number, number>();
  private pendingTraces: [number, TraceSample][] = [];
  private readonly traces = new Map<number, TraceSample>();
  private on = false;
  private w = 0;

  constructor(readonly fault: Fault, seed: number, private readonly o: SimOptions = DEFAULT_SIM) {
    this.rnd = prng(hash32(`${fault.kind}/${seed}/mesh`));
    this.hosts = hostsOf(o, fault.kind === "agent_starved_single" ? fault.region! : -1);
    this.names = Array.from({ length: o.regions }, (_, r) => regionName(r));
    this.routerIp = [...Array.from({ length: o.regions }, (_, r) => edgeIp(r)), ...Array.from({ length: o.cores }, (_, k) => coreIp(k))];
  }

  /** Router ids of the path from region a to region b. */
  private path(a: number, b: number): number[] {
    const key = a * this.o.regions + b;
    let p = this.paths[key];
    if (!p) {
      const ca = this.o.regions + (a % this.o.cores), cb = this.o.regions + (b % this.o.cores);
      p = this.paths[key] = ca === cb ? [a, ca, b] : [a, ca, cb, b];
    }
    return p;
  }

  /** Region of a router's address (its edge's region; -1 for a core). */
  private routerRegion(x: number): number {
    return x < this.o.regions ? x : -1;
  }

  /** Share of packets host h drops when sending to an address of region `to` (-1: a core router). */
  private hostOut(h: Host, to: number): number {
    const f = this.fault;
    if (!this.on) return 0;
    switch (f.kind) {
      case "agent": return h.i === f.host ? 0.3 : 0;
      case "region_egress": return h.r === f.region && to !== f.region ? 0.3 : 0;
      case "region_isolated": return h.r === f.region && to !== f.region ? 1 : 0;
      case "region_pair": return (h.r === f.pair![0] && to === f.pair![1]) || (h.r === f.pair![1] && to === f.pair![0]) ? 0.3 : 0;
      case "region_pair_oneway": return h.r === f.pair![0] && to === f.pair![1] ? 0.3 : 0;
      default: return 0;
    }
  }

  /** Share of packets host h drops when receiving from an address of region `from` (-1: a core router). */
  private hostIn(h: Host, from: number): number {
    const f = this.fault;
    if (!this.on) return 0;
    switch (f.kind) {
      case "agent": return h.i === f.host ? 0.3 : 0;
      case "region_ingress": return h.r === f.region && from !== f.region ? 0.3 : 0;
      case "region_isolated": return h.r === f.region && from !== f.region ? 1 : 0;
      default: return 0;
    }
  }

  /** Share of the answers to its own probes a starved agent reads too late (counted lost). */
  private late(h: Host): number {
    return this.on && (this.fault.kind === "agent_starved" || this.fault.kind === "agent_starved_single") && h.i === this.fault.host ? 0.2 : 0;
  }

  /** Share of forwarded packets router x drops. */
  private routerDrop(x: number): number {
    return this.on && this.fault.kind === "hop" && x === this.o.regions + this.fault.core! ? 0.3 : 0;
  }

  /** Agents not reporting in this window (a cut region). */
  private silent(h: Host): boolean {
    return this.on && this.fault.kind === "region_isolated" && h.r === this.fault.region;
  }

  /** The WindowInput of the next window. */
  window(): WindowInput {
    const w = ++this.w, o = this.o, f = this.fault, rnd = this.rnd, hosts = this.hosts, H = hosts.length;
    this.on = w >= f.from && w <= f.to;
    const windowEndMs = T0_MS + w * o.windowMs;
    for (const [k, t] of this.pendingTraces) this.traces.set(k, t);
    this.pendingTraces = [];
    const links: LinkSample[] = [];
    const keep = 1 - o.p0;
    for (const a of hosts) {
      if (this.silent(a)) continue;
      const A = this.names[a.r]!, lateA = 1 - this.late(a);
      for (const t of hosts) {
        if (t.r === a.r) continue;
        const path = this.path(a.r, t.r);
        let routers = 1;
        for (const x of path) routers *= 1 - this.routerDrop(x);
        let bf = 1, br = 1, burst: { at: number; keep: number; dir: number } | undefined;
        if (rnd() < o.burstRate) {
          burst = { at: Math.floor(rnd() * path.length), keep: 1 - (o.burstMin + rnd() * (o.burstMax - o.burstMin)), dir: Math.floor(rnd() * 3) };
          if (burst.dir !== 1) bf = burst.keep;
          if (burst.dir !== 0) br = burst.keep;
        }
        const sf = keep * (1 - this.hostOut(a, t.r)) * routers * (1 - this.hostIn(t, a.r)) * bf;
        const sr = keep * (1 - this.hostOut(t, a.r)) * routers * (1 - this.hostIn(a, t.r)) * lateA * br;
        const icmpLost = binomial(ECHOES, 1 - sf * sr, rnd);
        const fwdLost = binomial(ECHOES, 1 - sf, rnd);
        const revLost = binomial(ECHOES - fwdLost, 1 - sr, rnd);
        const T = this.names[t.r]!;
        links.push({ kind: "icmp", sourceRegion: A, agentIp: a.ip, targetRegion: T, target: t.ip, sent: ECHOES, lost: icmpLost });
        const udpLost = fwdLost + revLost;
        // One-way counts come back with replies: none when every reply was lost.
        if (udpLost < ECHOES) links.push({ kind: "udp", sourceRegion: A, agentIp: a.ip, targetRegion: T, target: t.ip, sent: ECHOES, lost: udpLost, forwardSent: ECHOES, forwardLost: fwdLost });
        else links.push({ kind: "udp", sourceRegion: A, agentIp: a.ip, targetRegion: T, target: t.ip, sent: ECHOES, lost: udpLost });
        if (Math.max(icmpLost, udpLost) >= TRACE_ON_LOSS * ECHOES) {
          const k = a.i * H + t.i, last = this.lastTraced.get(k);
          if (last === undefined || w - last >= o.traceEvery) {
            this.lastTraced.set(k, w);
            this.pendingTraces.push([k, this.trace(a, t, path, burst, windowEndMs)]);
          }
        }
      }
    }
    const dead = f.kind === "region_isolated" && w > f.from && w <= f.to;
    const agents: AgentSample[] = hosts.map((h) => {
      const region = regionName(h.r);
      if (this.silent(h)) return { region, ip: h.ip, alive: !dead };
      const starved = this.late(h) > 0;
      const roundsDue = 10, loopbackSent = 20;
      return {
        region, ip: h.ip, alive: true,
        health: { roundsDue, roundsLate: binomial(roundsDue, starved ? 0.4 : 0.002, rnd), loopbackSent, loopbackReceived: loopbackSent - (starved ? binomial(loopbackSent, 0.1, rnd) : 0) },
      };
    });
    const inferred = dead ? Array.from({ length: o.regions }, (_, x) => x).filter((x) => x !== f.region).map((x) => ({ sourceRegion: regionName(f.region!), targetRegion: regionName(x) })) : [];
    return { windowEndMs, links, agents, traces: [...this.traces.values()].filter((t) => t.timeMs >= windowEndMs - THRESHOLDS.traceMaxAgeWindows * o.windowMs), inferred };
  }

  /** A trace of a -> t under this window's conditions (`burst`: the link's burst, at router index `at`). */
  private trace(a: Host, t: Host, path: number[], burst: { at: number; keep: number; dir: number } | undefined, timeMs: number): TraceSample {
    const rnd = this.rnd;
    const hops: TraceSample["hops"] = [];
    // Survival of a probe to the next hop and of its answer back, before the hosts' own drops of the answer.
    let fwd = 1 - this.hostOut(a, t.r), rev = 1 - this.late(a);
    const answer = (ttl: number, address: string, survive: number) => {
      const received = TRACE_PROBES - binomial(TRACE_PROBES, 1 - survive, rnd);
      hops.push({ ttl, address: received > 0 ? address : "", sent: TRACE_PROBES, received });
      return received;
    };
    path.forEach((x, i) => {
      answer(i + 1, this.routerIp[x]!, fwd * rev * (1 - this.hostIn(a, this.routerRegion(x))));
      const d = 1 - this.routerDrop(x);
      fwd *= d;
      rev *= d;
      if (burst?.at === i) {
        if (burst.dir !== 1) fwd *= burst.keep;
        if (burst.dir !== 0) rev *= burst.keep;
      }
    });
    const got = answer(path.length + 1, t.ip, fwd * rev * (1 - this.hostIn(t, a.r)) * (1 - this.hostOut(t, a.r)) * (1 - this.hostIn(a, t.r)));
    return { sourceRegion: regionName(a.r), agentIp: a.ip, targetRegion: regionName(t.r), target: t.ip, timeMs, hops, reached: got > 0 };
  }
}

/** An incident the localiser opened, at window `window` (1-based). */
export interface Opened {
  window: number;
  scope: Scope;
  subject: string;
}

/** One scenario run through the real Localiser and IncidentBook. */
export interface RunResult {
  kind: FaultKind;
  seed: number;
  truth?: Truth;
  from: number;
  to: number;
  windows: number;
  opened: Opened[];
  /** Localiser CPU time (observe + update, user + system), ms, summed over the windows. */
  cpuMs: number;
  /** With `explain`: each window's explanations as "scope subject". */
  said?: string[][];
}

/**
 * Runs scenario `kind` with `seed` on a mesh of `o`'s size through a fresh Localiser and
 * IncidentBook, window by window.
 */
export function runScenario(kind: FaultKind, seed: number, o: SimOptions = DEFAULT_SIM, explain = false): RunResult {
  const fault = drawFault(kind, seed, o);
  const sim = new MeshSim(fault, seed, o);
  const loc = new Localiser(o.windowMs);
  const book = new IncidentBook();
  const opened: Opened[] = [], said: string[][] = [];
  let cpuMs = 0;
  for (let w = 1; w <= fault.windows; w++) {
    const input = sim.window();
    const c0 = process.cpuUsage();
    const { explanations } = loc.observe(input);
    const r = book.update(explanations, input.windowEndMs);
    const c = process.cpuUsage(c0);
    cpuMs += (c.user + c.system) / 1000;
    for (const i of r.opened) opened.push({ window: w, scope: i.scope, subject: i.subject });
    if (explain) said.push(explanations.map((e) => `${e.scope} ${e.subject}`));
  }
  return { kind, seed, ...(fault.truth ? { truth: fault.truth } : {}), from: fault.from, to: fault.to, windows: fault.windows, opened, cpuMs, ...(explain ? { said } : {}) };
}

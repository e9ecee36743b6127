/**
 * The localiser's vocabulary and data (docs/aggregation.md "Incidents"): what it reads of one
 * published window, what it concludes, and the thresholds it concludes with. Each list lives here
 * once; the docs, the alert rule and the console derive from it.
 *
 * Sources of the method: Pingmesh (SIGCOMM 2015) blames the smallest element under which most
 * servers show the symptom and moves blame up a tier when a whole tier is affected; 007 (NSDI
 * 2018) lets every lossy flow's traced path vote for its links; NetBouncer (NSDI 2019) separates
 * device from link failures. ProberMesh applies the tiering to agents, regions and region pairs,
 * and the votes to path traces (lib/localiser/hops.ts).
 */

/**
 * What an incident blames (label `scope` of prober_incident_active), smallest first. The subject
 * of each (label `subject`) is written as shown.
 */
export const SCOPES = {
  agent: "one agent's host (its VM, NIC or uplink): its links to most targets in several regions are lossy while the other agents of its region are clean, or most probers lose towards it while the other targets of its region are clean, or it is starved (its rounds start late, it loses its own loopback echoes). Subject: region/ip",
  target: "a file target (not an agent) that most probers lose towards while the other targets of its region are clean. Subject: region/address",
  hop: "a router: the path traces of the lossy links agree that loss begins after it (007-style votes). Subject: the router's address",
  region_pair: "loss between two regions (one direction or both) while each is clean with every other region. Subject: a<->b (names in natural order)",
  region_egress: "all (or nearly all) agents of a region lose towards the others, and the one-way loss (udp reflector counts) is on the way out. Subject: the region",
  region_ingress: "the others lose towards a region, and the one-way loss is on the way in. Subject: the region",
  region_isolated: "a region loses with (nearly) every other in both directions, or round trips are lost and no one-way measurement tells the direction (ICMP, TCP, or no udp reply at all: a cut). Subject: the region",
} as const;
export type Scope = keyof typeof SCOPES;
/** Every scope, in the order above. */
export const SCOPE_NAMES = Object.keys(SCOPES) as Scope[];

/** Thresholds of the localiser; docs/aggregation.md gives each one's reasoning. */
export const THRESHOLDS = {
  /** A link is lossy when it lost at least this share (0..1) of its packets over its horizon. */
  linkLossy: 0.05,
  /** ... and at least this many packets, so that one lost echo of a short round is not a lossy link. */
  linkMinLost: 3,
  /** A link is considered once its horizon holds this many packets (all kinds together). */
  linkMinSent: 40,
  /** Windows a link's horizon may reach back to collect linkMinSent packets. */
  horizonWindows: 8,
  /** An agent, target or region pair is lossy when at least this share of its considered links is. */
  most: 0.5,
  /** Peers (the other agents or targets of the region), or the rest of the mesh, are clean below this share of lossy links. */
  clean: 0.2,
  /** A region is blamed when its pairs with at least this share of the other regions are lossy... */
  regionMost: 0.75,
  /** ... out of at least this many other regions with data (below that, region and pair cannot be told apart: region_pair). */
  regionMinPartners: 2,
  /** More regions than this share lossy at once is not a regional problem: nothing is blamed (widespread). */
  widespread: 0.5,
  /** An agent is starved when this share of its due rounds started late... */
  starvedLate: 0.2,
  /** ... out of at least this many due rounds, or when it lost this share of its loopback echoes. */
  starvedMinRounds: 5,
  starvedLoopbackLoss: 0.05,
  /** A trace hop is lossy at this share of its probes (traces send few probes per TTL). */
  hopLossy: 0.1,
  /** Traces older than this many windows do not vote. */
  traceMaxAgeWindows: 40,
  /** An explanation becomes an incident after this many consecutive windows... */
  openWindows: 2,
  /** ... and the incident ends after this many consecutive windows without it. */
  closeWindows: 3,
} as const;

/** Why each threshold has its value (docs/aggregation.md's table is generated from this and THRESHOLDS). */
export const THRESHOLD_REASONS: Record<keyof typeof THRESHOLDS, string> = {
  linkLossy: "5 %: the pair alert's threshold (ProberMeshPairLossHigh); background loss of a healthy path is well under 1 %",
  linkMinLost: "with 64 echoes a round, 3 lost is 4.7 %: one or two lost packets of a short round are not a lossy link",
  linkMinSent: "a link is judged on at least 40 packets (one default icmp round of 64 is enough): fewer make 5 % a coin toss",
  horizonWindows: "short rounds (a few echoes per window) are summed over up to 8 windows to reach linkMinSent; longer would keep a healed fault visible",
  most: "Pingmesh's rule of thumb: a device is suspect when most of the paths through it show the symptom",
  clean: "peers with under 20 % lossy links are healthy: background bursts stay well below it (the bench's 1 % burst rate gives ~1 %), a real peer fault above",
  regionMost: "\"all or nearly all\" (the issue): with 4 other regions, 3 of them; one clean partner region does not acquit a region",
  regionMinPartners: "with one other region, the region, the other region and the pair cannot be told apart: that is reported as region_pair, saying so",
  widespread: "when more than half the regions look lossy, blaming each is noise, not a diagnosis (007 and NetBouncer also give up on global events)",
  starvedLate: "a healthy agent starts almost every round on time (the scheduler's timers); 20 % late means it is starved of CPU or paused",
  starvedMinRounds: "five due rounds at least before lateness says anything",
  starvedLoopbackLoss: "loopback never loses on a healthy host: 5 % lost echoes to 127.0.0.1 is the agent (or its host's CPU), not the network",
  hopLossy: "a trace sends 10 probes per TTL by default: one lost is 10 %",
  traceMaxAgeWindows: "traces run at most once per -agent.trace.interval (5 min) per target: 40 windows of 15 s (10 min) keep the latest",
  openWindows: "two consecutive windows: a single window's burst never pages; at 15 s windows an incident opens ~30 s after the fault shows",
  closeWindows: "three windows without it: a flapping fault does not end and reopen its incident every window",
};

/** The two ends of an (agent, target) link. */
export interface LinkEnds {
  sourceRegion: string;
  agentIp: string;
  targetRegion: string;
  /** The target's host: an IP (an agent's, or a file target's) or a name; no port. */
  target: string;
}

/** One probe kind's view of one (agent, target) link over one window. */
export interface LinkSample extends LinkEnds {
  /** prober_type: "icmp", "udp", "tcp". */
  kind: string;
  /** Packets (tcp: connects) sent in the window. */
  sent: number;
  /** Packets lost, time-weighted as the published loss (lossRatio × sent); may be fractional. */
  lost: number;
  /** udp with reflector counts: requests sent over counted spans, and how many never reached the target. */
  forwardSent?: number;
  forwardLost?: number;
}

/** What an agent says of itself (AgentHealth, summed over the window's pushes). */
export interface HealthSample {
  roundsDue: number;
  roundsLate: number;
  loopbackSent: number;
  loopbackReceived: number;
}

/** A known agent (live or silent, not forgotten). */
export interface AgentSample {
  region: string;
  ip: string;
  alive: boolean;
  /** Undefined: the agent sent no health in the window (agents before 0.7, or nothing pushed). */
  health?: HealthSample;
}

/** One hop of a path trace. */
export interface TraceHopSample {
  ttl: number;
  /** "" when nothing answered at this TTL. */
  address: string;
  sent: number;
  received: number;
}

/** A path trace as the localiser reads it. */
export interface TraceSample {
  sourceRegion: string;
  agentIp: string;
  targetRegion: string;
  /** The target's host, as LinkSample.target. */
  target: string;
  /** When it was taken, unix ms. */
  timeMs: number;
  hops: TraceHopSample[];
  /** The destination answered at the last hop. */
  reached: boolean;
}

/** Everything the localiser reads of one published window. */
export interface WindowInput {
  /** The window's end, unix ms. */
  windowEndMs: number;
  links: LinkSample[];
  agents: AgentSample[];
  /** The newest traces (any age: older than traceMaxAgeWindows are ignored). */
  traces: TraceSample[];
  /** Pairs the server inferred unreachable (source region silent; lib/server/unreachable.ts): lossy with no links. */
  inferred: { sourceRegion: string; targetRegion: string }[];
}

/** Which way the loss goes, from one-way (udp) measurements; "unknown" with round trips only. */
export type Direction = "egress" | "ingress" | "both" | "unknown";

/** A heat-map cell of the evidence (the console links to it). */
export interface Cell {
  sourceRegion: string;
  targetRegion: string;
}

/** Why the localiser blames what it blames. Ratios 0..1. */
export interface Evidence {
  /** Lossy links explained by this incident, and the links it considered (the subject's, or the region's). */
  lossyLinks: number;
  links: number;
  /** Packets lost / sent over the lossy links it explains (their horizons). */
  lossRatio: number;
  /** 0..1: how clearly the subject stands out from its peers (docs/aggregation.md). */
  confidence: number;
  direction: Direction;
  /** One-way loss out of and into the subject (udp reflector counts), when measured. */
  egressLoss?: number;
  ingressLoss?: number;
  /** Region pairs (heat-map cells) the explained links belong to, at most MAX_CELLS. */
  cells: Cell[];
  /** Kinds whose links are among the explained ones. */
  kinds: string[];
  /** agent: the role it plays (prober: its own probes lose; target: probes to it lose). */
  role?: "prober" | "target" | "both";
  /** agent: it is starved (rounds late, loopback loss). */
  starved?: { roundsDue: number; roundsLate: number; loopbackSent: number; loopbackReceived: number };
  /** Lossy-link share of the subject's peers (the other agents / targets of its region, or the rest of the mesh). */
  peersLossyShare?: number;
  /** hop: votes for it, the traced lossy links that cross it, the TTL it answered at and the hop after it. */
  hop?: { votes: number; tracedLinks: number; ttl: number; next: string };
  /** What the localiser could not tell apart (e.g. a region with one agent: the agent or its region). */
  ambiguity?: string;
}

/** At most this many cells per incident's evidence. */
export const MAX_CELLS = 200;

/** One explanation of one window: the smallest thing that explains a set of lossy links. */
export interface Explanation {
  scope: Scope;
  /** See SCOPES: region/ip, region, a<->b, or an address. */
  subject: string;
  /** The regions involved (one, or the two of a pair). */
  regions: string[];
  /** agent, target, hop: the address. */
  address?: string;
  evidence: Evidence;
}

/** What one window left unexplained (scattered loss). */
export interface Unexplained {
  lossyLinks: number;
  links: number;
  /** True when more regions than THRESHOLDS.widespread looked lossy: nothing regional was blamed. */
  widespread: boolean;
}

/** An incident: an explanation that held for THRESHOLDS.openWindows windows, until it is gone for closeWindows. */
export interface Incident {
  /** scope:subject:started (unix ms). */
  id: string;
  scope: Scope;
  subject: string;
  regions: string[];
  address?: string;
  /** End of the first window that showed it, unix ms. */
  startedMs: number;
  /** End of the last window that showed it or its tail (lib/localiser/incidents.ts isTail), unix ms; the incident is active while `ended` is undefined. */
  lastSeenMs: number;
  endedMs?: number;
  /** Windows that showed it or its tail. */
  windows: number;
  /** The evidence of the last window that showed it. */
  evidence: Evidence;
}

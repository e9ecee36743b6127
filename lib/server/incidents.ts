/**
 * The server's half of the localiser (docs/aggregation.md "Incidents"): after each published
 * window it gathers what the localiser reads (the window's per-link results of icmp, udp and the
 * tcp connect probe, the registry's agents and their health, the latest path traces, the pairs
 * inferred unreachable), runs lib/localiser, keeps the incidents, and shows them:
 *
 *   prober_incident_active{scope, subject}     1 per active incident (only active ones: bounded)
 *   prober_incidents_total{scope}              incidents opened
 *   prober_localiser_unexplained_lossy_links   lossy links no explanation took (scattered loss)
 *
 * and GET /api/v1/incidents (lib/server/api.ts), the console's "what is wrong now" panel, and a log
 * line when an incident opens or ends.
 */
import { IncidentBook } from "../localiser/incidents.ts";
import { Localiser } from "../localiser/localise.ts";
import { SCOPE_NAMES, type HealthSample, type Incident, type LinkSample, type TraceSample, type Unexplained, type WindowInput } from "../localiser/model.ts";
import type { Logger } from "../log.ts";
import type { SeriesStore } from "../metrics/series.ts";
import type { EchoAggregate } from "../probes/echo_ingest.ts";
import { splitHostPortTarget } from "../probes/host_port.ts";
import type { TcpConnectAggregate } from "../probes/tcp/ingest.ts";
import type { StoredPath } from "./paths.ts";
import type { AgentEntry } from "./registry.ts";

/** What the localiser reads at each window, from the server's parts. */
export interface IncidentSources {
  icmp(): readonly EchoAggregate[];
  udp(): readonly EchoAggregate[];
  tcpConnect(): readonly TcpConnectAggregate[];
  agents(): readonly AgentEntry[];
  /** Health per agent (`region\0ip`) since the previous call (AgentHealth of the pushes); empty before agents of 0.7. */
  health(): ReadonlyMap<string, HealthSample>;
  paths(): readonly StoredPath[];
}

/** The host part of a target address (`ip`, `name`, `ip:port`, `[v6]:port`). */
export function targetHost(address: string): string {
  return splitHostPortTarget(address)?.host ?? address;
}

/** A one-line account of an incident for logs, alerts and the console. */
export function incidentSummary(i: Pick<Incident, "scope" | "subject" | "evidence">): string {
  const e = i.evidence;
  const pct = (x: number) => `${Math.round(x * 1000) / 10} %`;
  const what = {
    agent: `agent ${i.subject}${e.starved ? " is starved (rounds late or loopback loss)" : ""}`,
    target: `target ${i.subject}`,
    hop: `loss begins after router ${i.subject}`,
    region_pair: `loss between regions ${i.subject.replace("<->", " and ")}`,
    region_egress: `region ${i.subject} loses on the way out`,
    region_ingress: `region ${i.subject} loses on the way in`,
    region_isolated: `region ${i.subject} loses with every other region`,
  }[i.scope];
  const dir = e.direction === "unknown" ? "" : `, direction ${e.direction}`;
  return `${what}: ${e.lossyLinks} of ${e.links} links lossy, ${pct(e.lossRatio)} lost${dir}, confidence ${e.confidence}`;
}

/** Echo links (icmp, udp) of the window as LinkSamples. */
function echoLinks(kind: string, aggs: readonly EchoAggregate[], endMs: number, out: LinkSample[]): void {
  for (const a of aggs) {
    if (a.windowEndMs !== endMs || a.inferred) continue;
    for (const l of a.links as readonly (EchoAggregate["links"][number] & { forwardSent?: number; forwardLost?: number })[]) {
      if (l.sent <= 0) continue;
      out.push({
        kind, sourceRegion: a.sourceRegion, agentIp: l.agentIp, targetRegion: a.targetRegion, target: targetHost(l.address), sent: l.sent, lost: l.lossRatio * l.sent,
        ...(l.forwardSent ? { forwardSent: l.forwardSent, forwardLost: l.forwardLost ?? 0 } : {}),
      });
    }
  }
}

/** A stored path trace as the localiser reads it. */
function traceSample(p: StoredPath): TraceSample {
  const t = p.trace;
  return {
    sourceRegion: p.sourceRegion, agentIp: p.agentIp, targetRegion: t.targetRegion, target: targetHost(t.address),
    timeMs: t.time ? Number(t.time.seconds) * 1000 + t.time.nanos / 1e6 : 0, reached: t.reached,
    hops: t.hops.map((h) => ({ ttl: h.ttl, address: h.address, sent: h.sent, received: h.received })),
  };
}

/** The incident metrics on `store` (one definition: the server and docs/metrics.md use it). */
export function incidentMetrics(store: SeriesStore) {
  const active = store.gauge({
    name: "prober_incident_active", type: "gauge", labelNames: ["scope", "subject"],
    help: "1 for each active incident: the localiser's explanation of the mesh's lossy links (docs/aggregation.md \"Incidents\"); only active incidents have a series.",
    doc: `scope: ${SCOPE_NAMES.map((s) => `\`${s}\``).join(", ")} (docs/aggregation.md); subject: region/ip (agent, target), a region, a<->b (region_pair) or a router's address (hop). Details and evidence: GET /api/v1/incidents.`,
  });
  const opened = store.counter({ name: "prober_incidents_total", type: "counter", labelNames: ["scope"], help: "Incidents opened, by scope.", expires: false });
  for (const scope of SCOPE_NAMES) opened.inc({ scope }, 0);
  const unexplained = store.gauge({
    name: "prober_localiser_unexplained_lossy_links", type: "gauge", labelNames: [], expires: false,
    help: "Lossy (agent, target) links in the last published window that no incident explains: loss scattered over links that share no agent, target, hop, region or region pair.",
  });
  return { active, opened, unexplained };
}

/** Runs the localiser after each published window and publishes its incidents. */
export class Incidents {
  private readonly localiser: Localiser;
  private readonly book = new IncidentBook();
  private last: { windowEndMs: number; unexplained: Unexplained } | undefined;
  private readonly active: ReturnType<typeof incidentMetrics>["active"];
  private readonly opened: ReturnType<typeof incidentMetrics>["opened"];
  private readonly unexplained: ReturnType<typeof incidentMetrics>["unexplained"];

  /** @param intervalMs the aggregation interval, ms */
  constructor(private readonly sources: IncidentSources, store: SeriesStore, intervalMs: number, private readonly log: Logger) {
    this.localiser = new Localiser(intervalMs);
    ({ active: this.active, opened: this.opened, unexplained: this.unexplained } = incidentMetrics(store));
  }

  /**
   * Runs the localiser on the window that ended at `windowEndMs` (just published).
   * @param inferred the pairs the server inferred unreachable in it (lib/server/unreachable.ts)
   */
  run(windowEndMs: number, inferred: readonly { sourceRegion: string; targetRegion: string }[]): void {
    const s = this.sources;
    const links: LinkSample[] = [];
    echoLinks("icmp", s.icmp(), windowEndMs, links);
    echoLinks("udp", s.udp(), windowEndMs, links);
    for (const a of s.tcpConnect()) {
      if (a.windowEndMs !== windowEndMs) continue;
      for (const l of a.links) if (l.sent > 0) links.push({ kind: "tcp", sourceRegion: a.sourceRegion, agentIp: l.agentIp, targetRegion: a.targetRegion, target: targetHost(l.address), sent: l.sent, lost: l.sent - l.received });
    }
    const health = s.health();
    const input: WindowInput = {
      windowEndMs, links, inferred: [...inferred], traces: s.paths().map(traceSample),
      agents: s.agents().map((a) => {
        const h = health.get(`${a.region}\u0000${a.ip}`);
        return { region: a.region, ip: a.ip, alive: a.alive, ...(h ? { health: h } : {}) };
      }),
    };
    const { explanations, unexplained } = this.localiser.observe(input);
    const { opened, ended } = this.book.update(explanations, windowEndMs);
    for (const i of opened) {
      this.opened.inc({ scope: i.scope });
      this.log.warn({ incident: i.id, scope: i.scope, subject: i.subject, started: new Date(i.startedMs).toISOString(), evidence: i.evidence }, `incident: ${incidentSummary(i)}`);
    }
    for (const i of ended) {
      this.active.remove({ scope: i.scope, subject: i.subject });
      this.log.info({ incident: i.id, scope: i.scope, subject: i.subject, ended: new Date(i.endedMs!).toISOString() }, `incident ended: ${i.scope} ${i.subject}`);
    }
    // Set every window while active, so the gauge never expires under an incident.
    for (const i of this.book.active()) this.active.set({ scope: i.scope, subject: i.subject }, 1);
    this.unexplained.set({}, unexplained.lossyLinks);
    this.last = { windowEndMs, unexplained };
  }

  /** Active incidents (oldest first), recently ended ones (newest first), and the last window's unexplained loss. */
  snapshot(): { active: Incident[]; recent: Incident[]; windowEndMs?: number; unexplained?: Unexplained } {
    return { active: this.book.active(), recent: this.book.recent(), ...(this.last ?? {}) };
  }
}

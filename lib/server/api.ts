/**
 * The JSON API of the web console, /api/v1/... (docs/api.md). Read-only, behind the same web
 * config (TLS, basic auth) as every path of the HTTP side. Field names are snake_case; durations
 * are seconds, ratios 0..1, times RFC 3339.
 */
import type { Hono } from "hono";
import type { PhasedAggregate } from "../probes/phased_ingest.ts";
import type { IcmpAggregate, IcmpLink } from "../probes/icmp/ingest.ts";
import type { EchoAggregate } from "../probes/echo_ingest.ts";
import type { FlowRow } from "../probes/flow_ingest.ts";
import type { TcpConnectAggregate } from "../probes/tcp/ingest.ts";
import type { MeshHistory, PairPoint } from "./history.ts";
import type { PathStore, StoredPath } from "./paths.ts";
import type { AgentRegistry } from "./registry.ts";
import type { Incident, Unexplained } from "../localiser/model.ts";
import { incidentSummary } from "./incidents.ts";
import { reverseLoss } from "../localiser/links.ts";

/** What the API reads. */
export interface ApiDeps {
  registry: AgentRegistry;
  history: MeshHistory;
  paths: PathStore;
  latestIcmp(): readonly IcmpAggregate[];
  /** The last udp window's pair aggregates (with their flows). */
  latestUdp(): readonly EchoAggregate[];
  /** The last window's tcp connect-probe pair aggregates (with their flows). */
  latestTcpConnect(): readonly TcpConnectAggregate[];
  /** The last window's aggregates of every check kind (http, tcp, dns, grpc), by kind. */
  latestChecks(): ReadonlyMap<string, readonly PhasedAggregate[]>;
  /** The localiser's incidents (lib/server/incidents.ts). */
  incidents?(): { active: Incident[]; recent: Incident[]; windowEndMs?: number; unexplained?: Unexplained };
  /** Aggregates older than this are stale (ratio x interval), milliseconds. */
  staleAfterMs: number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const opt = (v: number | undefined) => (v === undefined ? null : v);
const point = (p: PairPoint) => ({
  time: iso(p.timeMs), sent: p.sent, received: p.received, loss_ratio: p.lossRatio,
  rtt_mean_seconds: opt(p.rttMean), rtt_min_seconds: opt(p.rttMin), rtt_max_seconds: opt(p.rttMax), jitter_seconds: opt(p.jitter),
});
const link = (l: IcmpLink) => ({ agent_ip: l.agentIp, address: l.address, sent: l.sent, received: l.received, loss_ratio: l.lossRatio, error_state: l.errorState, rtt_mean_seconds: opt(l.rttMean), jitter_seconds: opt(l.jitter) });

/**
 * The udp window's one-way loss (reflector counts, docs/probes.md): requests sent within counted
 * spans, those lost on the way there, and the loss of each direction (null when not measured).
 */
function oneWay(u: EchoAggregate) {
  let sent = 0, lost = 0;
  for (const l of u.links) (sent += l.forwardSent ?? 0), (lost += l.forwardLost ?? 0);
  const fwd = sent > 0 ? lost / sent : null;
  const rev = sent > 0 ? (reverseLoss(sent, lost, u.received) ?? null) : null;
  return { forward_sent: sent, forward_lost: lost, forward_loss_ratio: fwd, reverse_loss_ratio: rev };
}

/** /api/v1/pair's `flows` rows at most (lossy first, so the ones that matter are kept). */
export const MAX_FLOW_ROWS = 2000;

const flowRow = (f: FlowRow) => ({ kind: f.kind, agent_ip: f.agentIp, address: f.address, source_port: f.sourcePort, sent: f.sent, received: f.received, loss_ratio: f.lossRatio, lossy: f.lossy });
const byLossyThenLoss = (a: FlowRow, b: FlowRow) => Number(b.lossy) - Number(a.lossy) || b.lossRatio - a.lossRatio;

const path = ({ sourceRegion, agentIp, trace: t }: StoredPath) => ({
  source_region: sourceRegion, target_region: t.targetRegion, agent_ip: agentIp, target: t.address, resolved_ip: t.resolvedIp,
  kind: t.kind || "icmp", source_port: t.sourcePort, destination_port: t.destinationPort,
  time: t.time ? iso(Number(t.time.seconds) * 1000 + t.time.nanos / 1e6) : null, reason: t.reason, reached: t.reached, error: t.error,
  duration_seconds: t.durationSeconds,
  hops: t.hops.map((h) => ({
    ttl: h.ttl, address: h.address, sent: h.sent, received: h.received, loss_ratio: h.sent ? (h.sent - h.received) / h.sent : null,
    rtt_mean_seconds: h.received ? h.rttMeanSeconds : null, rtt_min_seconds: h.received ? h.rttMinSeconds : null,
    rtt_max_seconds: h.received ? h.rttMaxSeconds : null, rtt_stddev_seconds: h.received ? h.rttStddevSeconds : null,
    other_addresses: h.otherAddresses,
  })),
});

/** An incident as /api/v1/incidents shows it (docs/api.md). */
const incident = (i: Incident) => {
  const e = i.evidence;
  return {
    id: i.id, scope: i.scope, subject: i.subject, regions: i.regions, address: i.address ?? null,
    started: iso(i.startedMs), last_seen: iso(i.lastSeenMs), ended: i.endedMs === undefined ? null : iso(i.endedMs), windows: i.windows,
    summary: incidentSummary(i),
    evidence: {
      lossy_links: e.lossyLinks, links: e.links, loss_ratio: e.lossRatio, confidence: e.confidence, direction: e.direction,
      egress_loss_ratio: opt(e.egressLoss), ingress_loss_ratio: opt(e.ingressLoss), kinds: e.kinds,
      cells: e.cells.map((c) => ({ source_region: c.sourceRegion, target_region: c.targetRegion })),
      role: e.role ?? null, peers_lossy_share: opt(e.peersLossyShare), ambiguity: e.ambiguity ?? null,
      starved: e.starved ? { rounds_due: e.starved.roundsDue, rounds_late: e.starved.roundsLate, loopback_sent: e.starved.loopbackSent, loopback_received: e.starved.loopbackReceived } : null,
      hop: e.hop ? { votes: e.hop.votes, traced_links: e.hop.tracedLinks, ttl: e.hop.ttl, next: e.hop.next } : null,
    },
  };
};

/** Adds the /api/v1 routes to `app`. */
export function apiRoutes(app: Hono, d: ApiDeps): void {
  app.get("/api/v1/mesh", (c) => {
    const pairs = d.latestIcmp().map((a) => ({
      source_region: a.sourceRegion, target_region: a.targetRegion, window_end: iso(a.windowEndMs),
      sent: a.sent, received: a.received, loss_ratio: a.lossRatio, failed: a.failed, error_state_links: a.errorStateLinks,
      rtt_mean_seconds: opt(a.rttMean), rtt_min_seconds: opt(a.rttMin), rtt_max_seconds: opt(a.rttMax), jitter_seconds: opt(a.jitter),
      rtt_baseline_seconds: opt(d.history.baselineRtt(a.sourceRegion, a.targetRegion)),
      inferred: a.inferred === true,
    }));
    // Natural order: r2 before r10.
    const regions = [...new Set([...pairs.flatMap((p) => [p.source_region, p.target_region]), ...d.registry.all().map((a) => a.region)])].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    return c.json({ regions, pairs });
  });

  app.get("/api/v1/pair", (c) => {
    const s = c.req.query("source_region"), t = c.req.query("target_region");
    if (!s || !t) return c.json({ error: "source_region and target_region are required" }, 400);
    const c404 = (s: string, t: string) => c.json({ error: `no data for ${s.slice(0, 256)} -> ${t.slice(0, 256)}` }, 404);
    const h = d.history.pair(s, t);
    const fresh = (a: { windowEndMs: number }) => a.windowEndMs >= Date.now() - d.staleAfterMs;
    const u = d.latestUdp().find((a) => a.sourceRegion === s && a.targetRegion === t && fresh(a));
    const tc = d.latestTcpConnect().find((a) => a.sourceRegion === s && a.targetRegion === t && fresh(a));
    if (!h && !u && !tc) return c404(s, t);
    const flows = [...(u?.flows ?? []), ...(tc?.flows ?? [])].sort(byLossyThenLoss).slice(0, MAX_FLOW_ROWS).map(flowRow);
    return c.json({
      source_region: s, target_region: t, retention_seconds: d.history.retentionMs / 1000, history: (h?.points ?? []).map(point), links: (h?.links ?? []).map(link),
      udp: u ? { window_end: iso(u.windowEndMs), sent: u.sent, received: u.received, loss_ratio: u.lossRatio, rtt_mean_seconds: opt(u.rttMean), jitter_seconds: opt(u.jitter), flows_lossy: u.flowsLossy ?? 0, inferred: u.inferred === true, ...oneWay(u) } : null,
      tcp_connect: tc ? { window_end: iso(tc.windowEndMs), attempted: tc.attempted, established: tc.established, loss_ratio: tc.lossRatio, flows_lossy: tc.flowsLossy } : null,
      flows,
    });
  });

  // What is wrong now: active incidents, the recently ended ones, and the loss no incident explains.
  app.get("/api/v1/incidents", (c) => {
    const s = d.incidents?.() ?? { active: [], recent: [] };
    const u = s.unexplained;
    return c.json({
      window_end: s.windowEndMs === undefined ? null : iso(s.windowEndMs),
      active: s.active.map(incident), recent: s.recent.map(incident),
      unexplained: u ? { lossy_links: u.lossyLinks, links: u.links, widespread: u.widespread } : null,
    });
  });

  // Latest path traces, newest first; either filter may be left out.
  app.get("/api/v1/paths", (c) => c.json({ paths: d.paths.list(c.req.query("source_region") ?? "", c.req.query("target_region") ?? "").map(path) }));

  /** A check kind's aggregate as the API shows it; `status_code` only for http. */
  const check = (kind: string, a: PhasedAggregate, withKind = true) => ({
    ...(withKind ? { kind } : {}),
    source_region: a.sourceRegion, target_region: a.targetRegion, target_addr: a.targetAddr, window_end: iso(a.windowEndMs),
    results: a.results, ...(kind === "http" ? { status_code: a.latestValue } : {}),
    phases_seconds: a.phases ?? null,
    cert_expiry_days: a.certExpiry > 0 ? (a.certExpiry * 1000 - Date.now()) / 86_400_000 : null,
    failed: Object.fromEntries(a.failedByReason),
  });
  const fresh = (a: PhasedAggregate) => a.windowEndMs >= Date.now() - d.staleAfterMs;

  // HTTP targets only (the shape of 0.1-0.4).
  app.get("/api/v1/http", (c) => c.json({ targets: (d.latestChecks().get("http") ?? []).filter(fresh).map((a) => check("http", a, false)) }));

  // Every check kind's targets, `kind` first; ?kind=tcp filters.
  app.get("/api/v1/targets", (c) => {
    const want = c.req.query("kind");
    const targets = [...d.latestChecks()].filter(([k]) => !want || k === want).flatMap(([k, list]) =>
      list.filter(fresh).map((a) => check(k, a)));
    return c.json({ targets });
  });

  app.get("/api/v1/agents", (c) =>
    c.json({ agents: d.registry.all().map((a) => ({ region: a.region, ip: a.ip, version: a.version, hostname: a.hostname, udp_port: a.udpPort, tcp_port: a.tcpPort, first_seen: iso(a.firstSeenMs), last_seen: iso(a.lastSeenMs), alive: a.alive })) }),
  );
}

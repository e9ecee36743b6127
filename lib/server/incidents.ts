/**
 * The server's half of the localiser (docs/aggregation.md "Incidents"): after each published
 * window it gathers what the localiser reads (the window's per-link results of icmp, udp and the
 * tcp connect probe, the registry's agents and their health, the latest path traces, the pairs
 * inferred unreachable), runs lib/localiser, keeps the incidents, and shows them:
 *
 *   prober_incident_active{scope, subject}     1 per active incident (only active ones: bounded)
 *   prober_incidents_total{scope}              incidents opened
 *   prober_localiser_unexplained_lossy_links   lossy links no explanation took (scattered loss)
 *   prober_localiser_duration_seconds          how long the last window's localisation took
 *   prober_localiser_windows_skipped_total     windows not localised: the previous one still ran
 *
 * The localiser runs on a worker thread (lib/localiser/worker.ts) when the server gives one: its
 * work is O(links) (about a second at 300,000 links), and on the server's thread it held every
 * RPC for that long each window. A window that is published while the previous one is still being
 * localised is skipped (counted), so a localiser slower than the interval sees every other window
 * instead of falling ever further behind.
 *
 * and GET /api/v1/incidents (lib/server/api.ts), the console's "what is wrong now" panel, and a log
 * line when an incident opens or ends.
 */
import { IncidentBook } from "../localiser/incidents.ts";
import { Localiser } from "../localiser/localise.ts";
import { SCOPE_NAMES, type Explanation, type HealthSample, type Incident, type LinkSample, type TraceSample, type Unexplained, type WindowInput } from "../localiser/model.ts";
import { packWindowSteps } from "../localiser/packed.ts";
import type { Logger } from "../log.ts";
import type { SeriesStore } from "../metrics/series.ts";
import type { Steps } from "../steps.ts";
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

/** Echo links (icmp, udp) of the window as LinkSamples; a step per region pair. */
function* echoLinks(kind: string, aggs: readonly EchoAggregate[], endMs: number, out: LinkSample[]): Steps {
  for (const a of aggs) {
    yield;
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
  const duration = store.gauge({
    name: "prober_localiser_duration_seconds", type: "gauge", labelNames: [], expires: false,
    help: "How long the localiser took on the last window it read, seconds (on its worker thread when it has one).",
  });
  const skipped = store.counter({
    name: "prober_localiser_windows_skipped_total", type: "counter", labelNames: [], expires: false,
    help: "Published windows the localiser did not read because it was still reading the previous one (its work is O(links): see docs/scale.md).",
  });
  skipped.inc({}, 0);
  return { active, opened, unexplained, duration, skipped };
}

/** The log line of the localiser's worker starting (tests read it). */
export const LOCALISER_WORKER_STARTED = "localiser runs on a worker thread";

/** What the localiser answers for one window. */
interface Observed {
  explanations: Explanation[];
  unexplained: Unexplained;
}

/** Runs the localiser after each published window and publishes its incidents. */
export class Incidents {
  private readonly localiser: Localiser;
  private readonly book = new IncidentBook();
  private last: { windowEndMs: number; unexplained: Unexplained } | undefined;
  private readonly m: ReturnType<typeof incidentMetrics>;
  private worker: Worker | undefined;
  /** A window handed to the worker and not answered yet. */
  private busy = false;

  /**
   * @param intervalMs the aggregation interval, ms
   * @param workerUrl the localiser's worker (lib/localiser/worker.ts, as a URL the runtime
   *   resolves; server.ts gives it); without it, or if it cannot start, the localiser runs inline
   */
  constructor(private readonly sources: IncidentSources, store: SeriesStore, private readonly intervalMs: number, private readonly log: Logger, private workerUrl?: string) {
    this.localiser = new Localiser(intervalMs);
    this.m = incidentMetrics(store);
  }

  /**
   * Localises the window that ended at `windowEndMs` (just published), in steps (gathering and packing its links; the server runs them in its lane, lib/server/lane.ts); its incidents are
   * published when the worker answers (at once without a worker).
   * @param inferred the pairs the server inferred unreachable in it (lib/server/unreachable.ts)
   */
  *runSteps(windowEndMs: number, inferred: readonly { sourceRegion: string; targetRegion: string }[]): Steps {
    if (this.busy) {
      this.m.skipped.inc({});
      this.log.warn({ windowEndMs }, "localiser still reading the previous window: this one is skipped");
      return;
    }
    const input = yield* this.gather(windowEndMs, inferred);
    const worker = this.ensureWorker();
    if (!worker) {
      const t0 = performance.now();
      const observed = this.localiser.observe(input);
      this.publish(windowEndMs, observed, performance.now() - t0);
      return;
    }
    this.busy = true;
    const { packed, transfer } = yield* packWindowSteps(input);
    worker.postMessage({ intervalMs: this.intervalMs, packed }, transfer);
  }

  /** Stops the worker (server shutdown). */
  close(): void {
    this.worker?.terminate();
    this.worker = undefined;
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker || !this.workerUrl) return this.worker;
    try {
      const w = new Worker(this.workerUrl);
      w.onmessage = (e: MessageEvent<Observed & { windowEndMs: number; ms: number; error?: string }>) => {
        this.busy = false;
        if (e.data.error) this.log.error({ windowEndMs: e.data.windowEndMs, err: e.data.error }, "localiser failed on a window");
        else this.publish(e.data.windowEndMs, e.data, e.data.ms);
      };
      w.onerror = (e) => {
        // A crashed worker loses its history of windows; a new one starts at the next window.
        this.log.error({ err: e.message }, "localiser worker failed; starting a new one at the next window");
        this.busy = false;
        w.terminate();
        if (this.worker === w) this.worker = undefined;
      };
      w.unref();
      this.worker = w;
      this.log.info({}, LOCALISER_WORKER_STARTED);
    } catch (err) {
      this.log.warn({ err: String(err) }, "localiser worker did not start; localising on the server's thread");
      this.workerUrl = undefined;
    }
    return this.worker;
  }

  /** What the localiser reads of the window: its links, the agents and their health, the traces. */
  private *gather(windowEndMs: number, inferred: readonly { sourceRegion: string; targetRegion: string }[]): Steps<WindowInput> {
    const s = this.sources;
    const links: LinkSample[] = [];
    yield* echoLinks("icmp", s.icmp(), windowEndMs, links);
    yield* echoLinks("udp", s.udp(), windowEndMs, links);
    for (const a of s.tcpConnect()) {
      yield;
      if (a.windowEndMs !== windowEndMs) continue;
      for (const l of a.links) if (l.sent > 0) links.push({ kind: "tcp", sourceRegion: a.sourceRegion, agentIp: l.agentIp, targetRegion: a.targetRegion, target: targetHost(l.address), sent: l.sent, lost: l.sent - l.received });
    }
    const health = s.health();
    return {
      windowEndMs, links, inferred: [...inferred], traces: s.paths().map(traceSample),
      agents: s.agents().map((a) => {
        const h = health.get(`${a.region}\u0000${a.ip}`);
        return { region: a.region, ip: a.ip, alive: a.alive, ...(h ? { health: h } : {}) };
      }),
    };
  }

  /** Files one window's explanations into incidents, metrics and logs. */
  private publish(windowEndMs: number, { explanations, unexplained }: Observed, ms: number): void {
    const { opened, ended } = this.book.update(explanations, windowEndMs);
    for (const i of opened) {
      this.m.opened.inc({ scope: i.scope });
      this.log.warn({ incident: i.id, scope: i.scope, subject: i.subject, started: new Date(i.startedMs).toISOString(), evidence: i.evidence }, `incident: ${incidentSummary(i)}`);
    }
    for (const i of ended) {
      this.m.active.remove({ scope: i.scope, subject: i.subject });
      this.log.info({ incident: i.id, scope: i.scope, subject: i.subject, ended: new Date(i.endedMs!).toISOString() }, `incident ended: ${i.scope} ${i.subject}`);
    }
    // Set every window while active, so the gauge never expires under an incident.
    for (const i of this.book.active()) this.m.active.set({ scope: i.scope, subject: i.subject }, 1);
    this.m.unexplained.set({}, unexplained.lossyLinks);
    this.m.duration.set({}, ms / 1000);
    this.last = { windowEndMs, unexplained };
  }

  /** Active incidents (oldest first), recently ended ones (newest first), and the last window's unexplained loss. */
  snapshot(): { active: Incident[]; recent: Incident[]; windowEndMs?: number; unexplained?: Unexplained } {
    return { active: this.book.active(), recent: this.book.recent(), ...(this.last ?? {}) };
  }
}

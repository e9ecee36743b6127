/**
 * Per-flow aggregation over one window for the flow-aware mesh kinds (udp; tcp with flows): each
 * (agent, target) link's flows (FlowStats, one per source port) summed over the window's rounds,
 * then judged by `lossyFlows` (lib/probes/flow/lossy.ts, THE definition, shared with the agent),
 * so prober_udp_flows_lossy / prober_tcp_flows_lossy count the (agent, target, flow) triples that
 * show the ECMP / LAG signature (NetNORAD, Pingmesh: one bundle member or path losing while the
 * others do not).
 */
import { LOSSY_HORIZON_MS, LOSSY_MIN_SENT, lossyFlows } from "./flow/lossy.ts";
import type { FlowStats } from "../rpc/gen/probermesh/v1/flow_pb.ts";

/** Flows (source ports) kept per link and window at most; a link's ports come from its agent's range (<= 1024 flows a round). */
export const MAX_FLOWS_PER_LINK = 1024;

/** One flow of one (agent, target) link over one window: what /api/v1/pair's `flows` shows. */
export interface FlowRow {
  /** "udp" or "tcp". */
  kind: string;
  agentIp: string;
  /** The target as handed out (host:port). */
  address: string;
  sourcePort: number;
  /** udp: probes sent; tcp: connects attempted. */
  sent: number;
  /** udp: probes answered; tcp: connects established by the first SYN. */
  received: number;
  /** (sent - received) / sent, 0..1; 1 when nothing was sent. */
  lossRatio: number;
  /** lossyFlows() names this flow over the window's sums of its link. */
  lossy: boolean;
}

/**
 * Checks a result's per-flow stats: at most `maxFlows` entries, ports 1..65535 and distinct,
 * received <= sent (duplicates are counted apart), RTTs finite, in [0, 3600] s.
 * @returns "" or why they are unusable
 */
export function checkFlows(flows: readonly FlowStats[], maxFlows: number): string {
  if (flows.length > maxFlows) return `more than ${maxFlows} flows`;
  const ports = new Set<number>();
  for (const f of flows) {
    if (f.sourcePort < 1 || f.sourcePort > 65535) return "flow source_port out of range 1..65535";
    if (ports.has(f.sourcePort)) return `flow source_port ${f.sourcePort} twice`;
    ports.add(f.sourcePort);
    if (f.received > f.sent) return "flow received > sent";
    if (![f.rttMeanSeconds, f.rttMinSeconds, f.rttMaxSeconds].every((v) => Number.isFinite(v) && v >= 0 && v <= 3600)) return "flow rtt out of range";
  }
  return "";
}

/** The flows of one region pair over one window, per (agent, target) link. */
export class FlowWindow {
  private readonly links = new Map<string, { agentIp: string; address: string; ports: Map<number, { sent: number; received: number }> }>();

  constructor(private readonly kind: string) {}

  /** Adds one result's flows of the link (agentIp, address). */
  add(agentIp: string, address: string, flows: readonly FlowStats[]): void {
    if (flows.length === 0) return;
    const k = `${agentIp}\u0000${address}`;
    let link = this.links.get(k);
    if (!link) this.links.set(k, (link = { agentIp, address, ports: new Map() }));
    for (const f of flows) {
      let c = link.ports.get(f.sourcePort);
      if (!c) {
        if (link.ports.size >= MAX_FLOWS_PER_LINK) continue;
        link.ports.set(f.sourcePort, (c = { sent: 0, received: 0 }));
      }
      c.sent += f.sent;
      c.received += Math.min(f.received, f.sent);
    }
  }

  /** True when no flow was added. */
  get empty(): boolean {
    return this.links.size === 0;
  }

  /** This window's counts per (agent, target) link, every flow summed (what the localiser reads). */
  linkTotals(): { agentIp: string; address: string; sent: number; received: number }[] {
    return [...this.links.values()].map((l) => {
      let sent = 0, received = 0;
      for (const c of l.ports.values()) (sent += c.sent), (received += c.received);
      return { agentIp: l.agentIp, address: l.address, sent, received };
    });
  }

  /** Sums over every flow: sent and received. */
  totals(): { sent: number; received: number } {
    let sent = 0, received = 0;
    for (const l of this.links.values()) for (const c of l.ports.values()) (sent += c.sent), (received += c.received);
    return { sent, received };
  }

  /**
   * Every flow of the pair over its judging span (this window, and earlier ones of `history`
   * within LOSSY_HORIZON_MS while a flow has fewer than LOSSY_MIN_SENT probes), lossy first, then by loss ratio (highest first), agent,
   * address, port. Records this window in `history` under `pairKey`.
   */
  rows(history: FlowHistory, pairKey: string, windowEndMs: number): FlowRow[] {
    const out: FlowRow[] = [];
    for (const l of this.links.values()) {
      const ports = history.record(`${pairKey}\u0000${l.agentIp}\u0000${l.address}`, l.ports, windowEndMs);
      const lossy = new Set(lossyFlows([...ports].map(([sourcePort, c]) => ({ sourcePort, ...c }))));
      for (const [sourcePort, c] of ports) {
        out.push({ kind: this.kind, agentIp: l.agentIp, address: l.address, sourcePort, sent: c.sent, received: c.received, lossRatio: c.sent > 0 ? (c.sent - c.received) / c.sent : 1, lossy: lossy.has(sourcePort) });
      }
    }
    return out.sort((a, b) => Number(b.lossy) - Number(a.lossy) || b.lossRatio - a.lossRatio || a.agentIp.localeCompare(b.agentIp) || a.address.localeCompare(b.address) || a.sourcePort - b.sourcePort);
  }
}

/**
 * The flows' counts of the last LOSSY_HORIZON_MS of windows, per (pair, agent, target) link and
 * source port: what a flow is judged on (lib/probes/flow/lossy.ts). One per kind's ingest. Memory
 * is bounded by the links results can name (assigned targets only) times their ports
 * (MAX_FLOWS_PER_LINK) times the windows in the horizon; links without a window in the horizon go.
 */
export class FlowHistory {
  /** link key -> per window (oldest first): its end, unix ms, and the ports' counts. */
  private readonly links = new Map<string, { endMs: number; ports: ReadonlyMap<number, { sent: number; received: number }> }[]>();

  constructor(private readonly horizonMs = LOSSY_HORIZON_MS) {}

  /**
   * Adds a window's counts of one link and drops every window older than the horizon (of every
   * link, so silent links go too). @returns the link's per-port sums over the newest windows that
   * give every flow LOSSY_MIN_SENT probes (all of the horizon's when they never do)
   */
  record(link: string, ports: ReadonlyMap<number, { sent: number; received: number }>, windowEndMs: number): Map<number, { sent: number; received: number }> {
    this.expire(windowEndMs);
    let list = this.links.get(link);
    if (!list) this.links.set(link, (list = []));
    list.push({ endMs: windowEndMs, ports: new Map([...ports].map(([p, c]) => [p, { ...c }])) });
    // Newest windows first, as few as give every flow LOSSY_MIN_SENT probes (udp: this window;
    // tcp, one connect per flow and round: two rounds), so a flow turns lossy, and back, as soon
    // as the evidence allows, not after a minute of history is outweighed.
    const sums = new Map<number, { sent: number; received: number }>();
    for (let k = list.length - 1; k >= 0; k--) {
      for (const [p, c] of list[k]!.ports) {
        let s = sums.get(p);
        if (!s) {
          if (sums.size >= MAX_FLOWS_PER_LINK) continue;
          sums.set(p, (s = { sent: 0, received: 0 }));
        }
        s.sent += c.sent;
        s.received += c.received;
      }
      let enough = true;
      for (const s of sums.values()) if (s.sent < LOSSY_MIN_SENT) enough = false;
      if (enough) break;
    }
    return sums;
  }

  /** Links held (tests, memory). */
  get size(): number {
    return this.links.size;
  }

  private lastExpireMs = -Infinity;

  private expire(nowMs: number): void {
    if (nowMs === this.lastExpireMs) return;
    this.lastExpireMs = nowMs;
    for (const [k, list] of this.links) {
      while (list.length > 0 && list[0]!.endMs <= nowMs - this.horizonMs) list.shift();
      if (list.length === 0) this.links.delete(k);
    }
  }
}

/**
 * The ECMP / LAG signature (docs/probes.md "Flows lossy"): one flow (one source port, so one
 * 5-tuple that hashing pins to one member of a bundle or one of several equal-cost paths) loses
 * much while the other flows of the same link, on the same hosts and the same ends, lose little.
 * NetNORAD and fbtracert look for exactly this before they trace port by port.
 *
 * The one definition, used by the agent (which flow of a round to trace) and by the server
 * (prober_udp_flows_lossy / prober_tcp_flows_lossy over a window).
 */

/** A flow's loss at or above this (0..1) can make it lossy. */
export const LOSSY_FLOW_MIN_LOSS = 0.5;
/** ...while the link's other flows together lost less than this (0..1). */
export const LOSSY_OTHERS_MAX_LOSS = 0.05;
/** Probes a flow must have sent to be judged (one lost probe of one is no signature). */
export const LOSSY_MIN_SENT = 2;
/**
 * How far back the server may look to judge a flow, milliseconds (the agent judges one round):
 * it sums a link's newest windows, as few as give every flow LOSSY_MIN_SENT probes, within this
 * span. A udp window holds enough (16 flows of 4 probes a round), so it is judged alone; a 15 s
 * window holds one tcp connect per flow, so tcp flows are judged over two rounds. Detection and
 * recovery follow the evidence, not a minute of history.
 */
export const LOSSY_HORIZON_MS = 60_000;

/** The counts of one flow (FlowStats' sent / received, or their sums over a window). */
export interface FlowCounts {
  sourcePort: number;
  sent: number;
  received: number;
}

/**
 * The lossy flows of one (agent, target) link: a flow that sent at least LOSSY_MIN_SENT probes
 * and lost at least LOSSY_FLOW_MIN_LOSS of them, while every other flow of the link together lost
 * less than LOSSY_OTHERS_MAX_LOSS of theirs. Two flows or more are needed (one flow has no
 * "others"); a link losing everywhere has none (that is loss, not a flow signature).
 * @returns the source ports of the lossy flows, ascending
 */
export function lossyFlows(flows: readonly FlowCounts[]): number[] {
  if (flows.length < 2) return [];
  let sent = 0;
  let received = 0;
  for (const f of flows) {
    sent += f.sent;
    received += Math.min(f.received, f.sent);
  }
  const out: number[] = [];
  for (const f of flows) {
    if (f.sent < LOSSY_MIN_SENT) continue;
    const lost = f.sent - Math.min(f.received, f.sent);
    if (lost / f.sent < LOSSY_FLOW_MIN_LOSS) continue;
    const otherSent = sent - f.sent;
    const otherLost = otherSent - (received - Math.min(f.received, f.sent));
    if (otherSent > 0 && otherLost / otherSent < LOSSY_OTHERS_MAX_LOSS) out.push(f.sourcePort);
  }
  return out.sort((a, b) => a - b);
}

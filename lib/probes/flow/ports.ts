/**
 * Flow port ranges (-agent.udp.flow.ports, -agent.tcp.flow.ports): the source ports the flow-aware
 * kinds probe from, one flow per port, so that firewalls can allow them and every round uses the
 * same 5-tuples (a lossy flow seen in one round is the same path in the next).
 */

/** An inclusive range of ports, first <= last. */
export interface PortRange {
  first: number;
  last: number;
}

/**
 * Parses "40100-40115" (or one port, "40100").
 * @throws RangeError naming what is wrong (not numbers, outside 1..65535, first > last)
 */
export function parsePortRange(s: string): PortRange {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(s);
  if (!m) throw new RangeError(`"${s}" is not a port range: write FIRST-LAST, e.g. 40100-40115`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first < 1 || last > 65535) throw new RangeError(`port range ${s}: ports are 1..65535`);
  if (first > last) throw new RangeError(`port range ${s}: the first port is above the last`);
  return { first, last };
}

/** Number of ports in the range. */
export function rangeSize(r: PortRange): number {
  return r.last - r.first + 1;
}

/**
 * The source ports of a round with `flows` flows: the first `flows` ports of the range (all of it
 * when it is smaller), so the same flow number is always the same port.
 */
export function flowPorts(r: PortRange, flows: number): number[] {
  const n = Math.max(0, Math.min(flows, rangeSize(r)));
  return Array.from({ length: n }, (_, i) => r.first + i);
}

/**
 * Child process of bench/icmp.ts: one echo round to N distinct loopback targets (127.1.0.0 and up),
 * all started at once, on one IcmpEngine, as fping does with its target list. Prints JSON:
 * {targets, sent, received, roundSeconds, engine: EngineStats}. CPU and peak RSS are read by the
 * parent from this process's rusage.
 *
 *   bun bench/icmp_round.ts N COUNT INTERVAL_MS TIMEOUT_MS PAYLOAD
 */
import { IcmpEngine } from "../lib/probes/icmp/engine.ts";
import { loopbackTargets } from "./targets.ts";

const [n, count, intervalMs, timeoutMs, payloadSize] = process.argv.slice(2).map(Number) as [number, number, number, number, number];
const engine = new IcmpEngine("auto");
const t0 = performance.now();
const outcomes = await Promise.all(loopbackTargets(n).map((ip) => engine.echo(ip, { count, intervalMs, timeoutMs, payloadSize })));
const roundSeconds = (performance.now() - t0) / 1000;
let sent = 0, received = 0;
for (const o of outcomes) {
  sent += o.sent;
  received += o.received;
}
engine.close();
console.log(JSON.stringify({ targets: n, sent, received, roundSeconds, engine: engine.stats }));

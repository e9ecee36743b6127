/**
 * The ICMP engine against ground truth: a userspace responder in a network namespace delays, drops,
 * duplicates and corrupts echo replies from a seeded distribution and logs what it did per packet
 * (tests/helpers/echobed.ts). Every number the engine reports is checked against that log.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { isIcmpFailure } from "../lib/probes/icmp/ingest.ts";
import { icmpResult } from "./helpers/aggregate.ts";
import { createEchoBed, type EchoBed, type ResponderEntry, type RoundRun } from "./helpers/echobed.ts";
import { quantile, stddev } from "./helpers/stats.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { skipReason } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("icmp_groundtruth needs root and ip netns (network namespaces, raw sockets)");

/** Requests of a round joined with the responder's log by sequence number. */
function join(run: RoundRun, log: ResponderEntry[]) {
  const bySeq = new Map(log.map((e) => [e.seq, e]));
  return run.outcome.requestRttsSeconds.map((rtt, i) => ({ rtt: rtt ?? NaN, entry: bySeq.get((run.outcome.firstSequence + i) & 0xffff) }));
}

describe.skipIf(!available)("ground truth (userspace responder in a namespace)", () => {
  let bed: EchoBed;
  beforeAll(async () => {
    bed = await createEchoBed("gt");
  });
  afterAll(async () => {
    await bed?.remove();
  });

  for (const drop of [0.1, 0.5]) {
    test(`loss equals the responder's drops exactly over 1,000 packets at ${drop * 100} % drop; every RTT holds the responder's hold time`, async () => {
      const { rounds, log } = await bed.pingThrough({ meanMs: 1, stddevMs: 0.3, drop, seed: 7 + drop * 10 }, [
        { ip: bed.pair.farIp, count: 1000, intervalMs: 1, timeoutMs: 1000 },
      ]);
      const run = rounds[0]!;
      const joined = join(run, log);
      expect(log).toHaveLength(1000); // the responder saw every request: no loss on our side
      const drops = log.filter((e) => e.action === "drop").length;
      expect(drops).toBeGreaterThan(1000 * drop * 0.8);
      expect(run.outcome.sent).toBe(1000);
      expect(run.outcome.sent - run.outcome.received).toBe(drops);
      for (const { rtt, entry } of joined) expect(Number.isNaN(rtt)).toBe(entry!.action === "drop");
      // |measured - (hold + bare path)| per answered packet, in µs.
      const errUs = joined.filter((j) => !Number.isNaN(j.rtt)).map((j) => Math.abs(j.rtt - (j.entry!.holdNs! / 1e9 + bed.bareRttSeconds)) * 1e6);
      console.log(`drop ${drop}: bare path ${(bed.bareRttSeconds * 1e6).toFixed(1)} µs, |error| median ${quantile(errUs, 0.5).toFixed(1)} µs, p99 ${quantile(errUs, 0.99).toFixed(1)} µs`);
      // An echo matched to the right request can never come back sooner than the responder held
      // it; a reply matched to the wrong sequence would break this for some packet. (The size of
      // the error is the bench's to show: `npm run bench:icmp`.)
      for (const j of joined) if (!Number.isNaN(j.rtt)) expect(j.rtt).toBeGreaterThan(j.entry!.holdNs! / 1e9);
    });
  }

  test("jitter (RTT stddev) follows the responder's realised stddev at mean 20 ms, stddev 5 ms", async () => {
    const { rounds, log } = await bed.pingThrough({ meanMs: 20, stddevMs: 5, drop: 0, seed: 42 }, [
      { ip: bed.pair.farIp, count: 1000, intervalMs: 2, timeoutMs: 1000 },
    ]);
    const o = rounds[0]!.outcome;
    expect(o.received).toBe(1000);
    const realised = stddev(log.map((e) => e.holdNs! / 1e9));
    const measured = stddev(o.rttsSeconds);
    console.log(`jitter: responder realised ${(realised * 1e3).toFixed(3)} ms, measured ${(measured * 1e3).toFixed(3)} ms`);
    expect(realised).toBeGreaterThan(0.004);
    // Loose on purpose (scheduler noise adds variance on a busy machine); a wrong formula or
    // mismatched replies are off by far more. Measured here: 0.1 %.
    expect(Math.abs(measured - realised) / realised).toBeLessThan(0.25);
  });

  test("duplicates and corrupted replies are counted and never taken as answers", async () => {
    const { rounds, log } = await bed.pingThrough({ meanMs: 0.5, stddevMs: 0.1, drop: 0.05, dup: 0.1, corrupt: 0.05, seed: 3 }, [
      { ip: bed.pair.farIp, count: 500, intervalMs: 1, timeoutMs: 1000 },
    ]);
    const o = rounds[0]!.outcome;
    const replied = log.filter((e) => e.action === "reply");
    const good = replied.filter((e) => !e.corrupt);
    expect(o.received).toBe(good.length);
    expect(o.duplicates).toBe(good.filter((e) => e.dup).length);
    expect(o.corrupted).toBe(replied.filter((e) => e.corrupt).reduce((n, e) => n + (e.dup ? 2 : 1), 0));
    for (const { rtt, entry } of join(rounds[0]!, log)) expect(Number.isNaN(rtt)).toBe(entry!.action === "drop" || entry!.corrupt);
  });

  test("a target that never answers: loss 1 and failed, and the other targets' rounds are not slowed", async () => {
    const common = { count: 50, intervalMs: 10 };
    const { rounds } = await bed.pingThrough({ meanMs: 1, stddevMs: 0, drop: 0, seed: 1 }, [
      { ip: bed.pair.unusedIp, ...common, timeoutMs: 3000 },
      { ip: bed.pair.farIp, ...common, timeoutMs: 3000 },
      { ip: "127.0.0.1", ...common, timeoutMs: 3000 },
    ]);
    const [dead, far, lo] = rounds as [RoundRun, RoundRun, RoundRun];
    expect([dead.outcome.sent, dead.outcome.received]).toEqual([50, 0]);
    const o = dead.outcome;
    expect(isIcmpFailure(icmpResult(dead.ip, o.sent, o.rttsSeconds, Date.now()))).toBe(true);
    // The dead target ends only after its 3 s timeout; the others when their last reply is in,
    // long before that timeout (they never wait for the dead target).
    expect(dead.endMs - dead.startMs).toBeGreaterThan(49 * 10 + 3000 - 50);
    for (const r of [far, lo]) {
      expect(r.outcome.received).toBe(50);
      expect(r.endMs).toBeLessThan(dead.endMs - 1500);
    }
  });
});

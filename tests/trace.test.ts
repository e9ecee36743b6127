/**
 * The path tracer on real packets through real routers: the namespace line agent → r1 → r2 →
 * target (tests/helpers/pathbed.ts), raw sockets and unprivileged ping sockets (IP_RECVERR),
 * IPv4 and IPv6, a target that answers and one that has gone silent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TraceOutcome } from "../lib/probes/icmp/trace.ts";
import { createPathBed, type PathBed } from "./helpers/pathbed.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { ROOT, run, skipReason } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("trace.test.ts needs root and iproute2: it builds a line of four namespaces with two forwarding routers");

const OPTS = { probes: 4, probeIntervalMs: 50, timeoutMs: 500, maxHops: 8 };

describe.skipIf(!available)("path trace through two routers", () => {
  let bed: PathBed;
  beforeAll(async () => {
    bed = await createPathBed("trace");
  }, 30_000);
  afterAll(async () => {
    await bed?.remove();
  });

  const trace = async (kind: "raw" | "ping", ...ips: string[]): Promise<(TraceOutcome & { ip: string })[]> => {
    const r = await run([...bed.inAgent, process.execPath, `${ROOT}tests/fixtures/trace.ts`, kind, JSON.stringify(OPTS), ...ips]);
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  };

  for (const kind of ["raw", "ping"] as const) {
    test(`${kind} socket: r1, r2, then the target, IPv4 and IPv6 at once, every probe answered`, async () => {
      const [v4, v6] = await trace(kind, bed.targetIp, bed.targetIp6);
      expect(v4!.hops.map((h) => h.address)).toEqual([bed.r1Ip, bed.r2Ip, bed.targetIp]);
      expect(v6!.hops.map((h) => h.address)).toEqual([bed.r1Ip6, bed.r2Ip6, bed.targetIp6]);
      for (const o of [v4!, v6!]) {
        expect([o.reached, o.error]).toEqual([true, ""]);
        expect(o.hops.map((h) => h.ttl)).toEqual([1, 2, 3]);
        for (const h of o.hops) {
          expect([h.sent, h.received, h.otherAddresses]).toEqual([OPTS.probes, OPTS.probes, []]);
          for (const rtt of h.rttsSeconds) expect(rtt).toBeGreaterThan(0);
        }
      }
    });
  }

  test("a silent target: both routers answer, the loss starts after r2, the trace says it did not arrive", async () => {
    await bed.silenceTarget(true);
    try {
      for (const kind of ["raw", "ping"] as const) {
        const [v4, v6] = await trace(kind, bed.targetIp, bed.targetIp6);
        for (const [o, r1, r2] of [[v4!, bed.r1Ip, bed.r2Ip], [v6!, bed.r1Ip6, bed.r2Ip6]] as const) {
          expect(o.reached).toBe(false);
          expect(o.hops.map((h) => [h.ttl, h.address, h.received])).toEqual([[1, r1, OPTS.probes], [2, r2, OPTS.probes], [3, "", 0]]);
          expect(o.hops[2]!.sent).toBe(OPTS.probes);
        }
      }
    } finally {
      await bed.silenceTarget(false);
    }
  });
});

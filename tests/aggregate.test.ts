/**
 * SPEC.md's aggregation formulas on hand-computed inputs.
 */
import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { aggregateHttp, aggregateIcmp } from "../lib/aggregation/aggregate.ts";
import { HttpResultSchema, IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";

const icmp = (agentIp: string, address: string, sent: number, rtts: number[], error = "") => ({
  sourceRegion: "s", agentIp,
  result: create(IcmpResultSchema, { targetRegion: "t", address, resolvedIp: error ? "" : address, sent, received: rtts.length, rttsSeconds: rtts, error }),
});

test("ICMP: loss = Σlost/Σsent, rtt = mean over packets, jitter = mean of per-(agent,target) stddevs", () => {
  const [a] = aggregateIcmp([
    icmp("10.0.0.1", "x", 4, [0.001, 0.003]), // stddev 0.001
    icmp("10.0.0.2", "x", 4, [0.002, 0.002, 0.002, 0.002]), // stddev 0
    icmp("10.0.0.1", "y", 2, []), // 100 % loss: a failure
    icmp("10.0.0.1", "z", 0, [], "resolve: ENOTFOUND"), // resolve failure
  ]);
  expect(a!.lossRatio).toBeCloseTo(4 / 10, 12);
  expect(a!.rttMean).toBeCloseTo(0.012 / 6, 12);
  expect([a!.rttMin, a!.rttMax]).toEqual([0.001, 0.003]);
  expect(a!.jitter).toBeCloseTo(0.0005, 12);
  expect(a!.failed).toBe(2);
  expect(a!.rtts).toHaveLength(6);
});

test("HTTP: phases are means over successful results; failures counted by reason; earliest expiry", () => {
  const r = (success: boolean, processing: number, reason = "", expiry = 0n) =>
    ({ sourceRegion: "s", agentIp: "a", result: create(HttpResultSchema, { targetRegion: "t", url: "http://u/", success, failedReason: reason, processingSeconds: processing, statusCode: success ? 200 : 500, sslEarliestCertExpiry: expiry }) });
  const [a] = aggregateHttp([r(true, 0.1, "", 2000n), r(true, 0.3, "", 1000n), r(false, 9, "status_code"), r(false, 9, "timeout"), r(false, 9, "timeout")]);
  expect(a!.phases!.processing).toBeCloseTo(0.2, 12);
  expect(Object.fromEntries(a!.failedByReason)).toEqual({ status_code: 1, timeout: 2 });
  expect(a!.certExpiry).toBe(1000);
  expect(a!.statusCode).toBe(500);
});

/**
 * The udp kind's server half and the tcp connect probe's flow metrics (lib/probes/echo_ingest.ts,
 * udp/ingest.ts, tcp/ingest.ts, flow_ingest.ts) through the server's real aggregation path
 * (createIngests, AggregationWindows, SeriesStore) and read back as exposition text: what
 * /metrics shows. Lossy flows are counted only when one flow stands out (lib/probes/flow/lossy.ts).
 * The one-way counts (forward_sent / forward_lost) are summed per (agent, target) link.
 */
import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Moments } from "../lib/aggregation/moments.ts";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { FlowStatsSchema } from "../lib/rpc/gen/probermesh/v1/flow_pb.ts";
import { TcpResultSchema, type TcpResult } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { UdpResultSchema, type UdpResult } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";
import { SERVER_KINDS } from "../lib/server/kinds.ts";
import { pipeline } from "./helpers/aggregate.ts";
import { samples } from "./helpers/procs.ts";

const PAIR = { source_region: "s", target_region: "t" };
type Scraped = Awaited<ReturnType<ReturnType<typeof pipeline>["scrape"]>>;
const val = (m: Scraped, name: string, labels: Record<string, string> = PAIR) => {
  const s = samples(m, name, labels);
  return s.length === 1 ? Number(s[0]!.value) : s.length === 0 ? undefined : NaN;
};

/**
 * A udp result of `flows` flows from port 40100 up: flow i sends `perFlow` probes and gets back
 * perFlow - lost[i]; every received probe took `rtt` seconds.
 */
function udpResult(timeMs: number, perFlow: number, lost: number[], rtt = 0.002, address = "10.0.9.1:7001", extra: Partial<MessageInitShape<typeof UdpResultSchema>> = {}): UdpResult {
  const flows = lost.map((l, i) => create(FlowStatsSchema, { sourcePort: 40100 + i, sent: perFlow, received: perFlow - l, rttMeanSeconds: perFlow > l ? rtt : 0, rttMinSeconds: perFlow > l ? rtt : 0, rttMaxSeconds: perFlow > l ? rtt : 0 }));
  const sent = perFlow * lost.length;
  const received = sent - lost.reduce((a, b) => a + b, 0);
  const s = Moments.of(new Array<number>(received).fill(rtt));
  return create(UdpResultSchema, {
    targetRegion: "t", address, resolvedIp: address.split(":")[0], time: timestampFromMs(timeMs), durationSeconds: 0.5,
    sent, received, minSeconds: received ? s.min : 0, meanSeconds: received ? s.mean : 0, maxSeconds: received ? s.max : 0, stddevSeconds: received ? s.stddev : 0,
    rttBucketCounts: received ? rttBucketCounts(new Array<number>(received).fill(rtt)) : [], flows, ...extra,
  } as MessageInitShape<typeof UdpResultSchema>);
}

/** A tcp connect-probe result: one connect per flow, `dropped` ports not established by the first SYN. */
function tcpFlowResult(timeMs: number, flows: number, dropped: number[], address = "10.0.9.1:7002"): TcpResult {
  const f = Array.from({ length: flows }, (_, i) => create(FlowStatsSchema, { sourcePort: 40200 + i, sent: 1, received: dropped.includes(40200 + i) ? 0 : 1, rttMeanSeconds: 0.001, rttMinSeconds: 0.001, rttMaxSeconds: 0.001 }));
  const ok = dropped.length === 0;
  return create(TcpResultSchema, { targetRegion: "t", address, time: timestampFromMs(timeMs), durationSeconds: 0.1, success: ok, failedReason: ok ? "" : "connect_timeout", connectSeconds: 0.001, flows: f } as MessageInitShape<typeof TcpResultSchema>);
}

describe("udp: the ICMP family with the udp prefix, plus flows lossy", () => {
  test("loss, rtt, jitter, counters, histogram per pair; one flow that stands out is lossy", async () => {
    const p = pipeline();
    const t = p.now();
    // 16 flows of 4 probes; flow 40105 loses 3 of 4 in each of two rounds, the rest lose nothing.
    const lost = Array.from({ length: 16 }, (_, i) => (i === 5 ? 3 : 0));
    for (let round = 0; round < 2; round++) p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, lost) }, t);
    expect(p.closeCurrent()).toBe(1);
    const m = await p.scrape();
    expect(val(m, "prober_udp_packet_loss_rate")).toBeCloseTo(6 / 128, 12);
    expect(val(m, "prober_udp_flows_lossy")).toBe(1);
    expect(val(m, "prober_udp_duration_seconds", { ...PAIR, phase: "rtt" })).toBeCloseTo(0.002, 12);
    expect(val(m, "prober_udp_jitter_stddev_seconds")).toBeCloseTo(0, 12);
    expect(val(m, "prober_udp_packets_sent_total")).toBe(128);
    expect(val(m, "prober_udp_packets_received_total")).toBe(122);
    expect(val(m, "prober_udp_duration_seconds_total_count")).toBe(122);
    expect(val(m, "prober_udp_failed")).toBe(0);
    // The API's rows: the lossy flow first.
    const a = p.ingests.udp.latest()[0]!;
    expect(a.flows![0]).toMatchObject({ kind: "udp", agentIp: "10.0.0.1", sourcePort: 40105, sent: 8, received: 2, lossy: true });
    expect(a.flows!.filter((f) => f.lossy)).toHaveLength(1);
    // ICMP series are untouched by udp results.
    expect(val(m, "prober_icmp_packet_loss_rate")).toBeUndefined();
  });

  test("no flow stands out when every flow loses alike, or a flow's loss is spread over the window", async () => {
    const p = pipeline();
    const t = p.now();
    // Link 1: every flow loses half (loss, not a flow signature).
    p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, new Array(8).fill(2)) }, t);
    // Link 2: flow 40100 loses 1 of 4 in one round and nothing in three others: 1/16 < 1/2 over the window.
    const other = "10.0.9.2:7001";
    p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, [1, 0, 0, 0], 0.002, other) }, t);
    for (let i = 0; i < 3; i++) p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, [0, 0, 0, 0], 0.002, other) }, t);
    p.closeCurrent();
    const m = await p.scrape();
    expect(val(m, "prober_udp_flows_lossy")).toBe(0);
    expect(val(m, "prober_udp_packet_loss_rate")).toBeCloseTo((16 + 1) / (32 + 64), 12);
  });

  test("a result with 2000 flows, NaN, a bad port or flows that do not add up is rejected", () => {
    const t = Date.now();
    expect(SERVER_KINDS.udp.check(udpResult(t, 4, [0, 1, 0]))).toBe("");
    expect(SERVER_KINDS.udp.check(udpResult(t, 1, new Array(2000).fill(0)))).toMatch(/more than 1024 flows/);
    expect(SERVER_KINDS.udp.check(udpResult(t, 4, [0, 0], 0.002, undefined, { meanSeconds: NaN }))).toMatch(/out of range/);
    const badPort = udpResult(t, 4, [0, 0]);
    badPort.flows[1]!.sourcePort = 70000;
    expect(SERVER_KINDS.udp.check(badPort)).toMatch(/source_port/);
    const nanFlow = udpResult(t, 4, [0, 0]);
    nanFlow.flows[0]!.rttMeanSeconds = NaN;
    expect(SERVER_KINDS.udp.check(nanFlow)).toMatch(/rtt out of range/);
    const off = udpResult(t, 4, [0, 0]);
    off.flows[0]!.received = 3;
    expect(SERVER_KINDS.udp.check(off)).toMatch(/add up/);
    expect(SERVER_KINDS.udp.check(udpResult(t, 4, [0], 0.002, undefined, { dscp: 64 }))).toMatch(/dscp/);
    expect(SERVER_KINDS.tcp.check(tcpFlowResult(t, 2000, []))).toMatch(/more than 1024 flows/);
  });

  test("one-way counts: summed per (agent, target) link, absent where no result counted a span (0.6 responders, icmp); impossible counts rejected", async () => {
    const p = pipeline();
    const t = p.now();
    const add = (agentIp: string, address: string, forwardSent: number, forwardLost: number) =>
      p.windows.add("udp", { sourceRegion: "s", agentIp, result: udpResult(t, 4, [1, 0, 0, 0], 0.002, address, { forwardSent, forwardLost }) }, t);
    add("10.0.0.1", "10.0.9.1:7001", 16, 1);
    add("10.0.0.1", "10.0.9.1:7001", 12, 0);
    add("10.0.0.1", "10.0.9.2:7001", 0, 0); // a 0.6 responder: nothing counted
    add("10.0.0.2", "10.0.9.1:7001", 15, 3);
    p.closeCurrent();
    const links = p.ingests.udp.latest()[0]!.links.map((l) => [l.agentIp, l.address, l.forwardSent, l.forwardLost]).sort();
    expect(links).toEqual([["10.0.0.1", "10.0.9.1:7001", 28, 1], ["10.0.0.1", "10.0.9.2:7001", undefined, undefined], ["10.0.0.2", "10.0.9.1:7001", 15, 3]]);
    expect(p.ingests.icmp.latest()).toEqual([]);
    // ... and on /metrics, per pair, cumulative: 16 + 12 + 15 requests in spans, 1 + 3 lost on the way there.
    const m = await p.scrape();
    expect([val(m, "prober_udp_forward_packets_sent_total"), val(m, "prober_udp_forward_packets_lost_total")]).toEqual([43, 4]);
    expect(val(m, "prober_icmp_forward_packets_sent_total")).toBeUndefined();
    // Each reply closes at most one span of at most 4096 requests, and a span ends with one that arrived.
    const check = (forwardSent: number, forwardLost: number) => SERVER_KINDS.udp.check(udpResult(t, 4, [1, 0], 0.002, undefined, { forwardSent, forwardLost }));
    expect(check(8, 7)).toBe("");
    expect(check(0, 0)).toBe("");
    expect(check(7 * 4096, 0)).toBe("");
    expect(check(7 * 4096 + 1, 0)).toMatch(/forward_sent out of range/);
    expect(check(8, 8)).toMatch(/forward_lost must be below forward_sent/);
    expect(check(0, 1)).toMatch(/forward_lost must be below forward_sent/);
    expect(SERVER_KINDS.udp.check(udpResult(t, 4, [4, 4], 0.002, undefined, { forwardSent: 1 }))).toMatch(/forward_sent out of range/);
  });
});

describe("tcp connect probe: connect loss and flows lossy per pair", () => {
  test("a SYN dropped on one port in every round: connect loss 1/flows and that flow lossy, per pair only (no per-target series for agents)", async () => {
    const p = pipeline();
    const t = p.now();
    for (let round = 0; round < 3; round++) p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(t, 16, [40209]) }, t);
    p.closeCurrent();
    const m = await p.scrape();
    expect(val(m, "prober_tcp_connect_loss_rate")).toBeCloseTo(1 / 16, 12);
    expect(val(m, "prober_tcp_flows_lossy")).toBe(1);
    const c = p.ingests.tcp.latestConnect()[0]!;
    expect([c.attempted, c.established]).toEqual([48, 45]);
    expect(c.flows[0]).toMatchObject({ kind: "tcp", sourcePort: 40209, lossy: true });
    expect(val(m, "prober_tcp_connects_total")).toBe(48);
    expect(val(m, "prober_tcp_connects_dropped_total")).toBe(3);
    expect(val(m, "prober_tcp_connect_duration_seconds")).toBeGreaterThan(0);
    // The mesh's targets are agents: per-target series would grow with agents x regions.
    expect(val(m, "prober_tcp_probes_total", { ...PAIR, target_addr: "10.0.9.1:7002" })).toBeUndefined();
    expect(p.ingests.tcp.latest()).toEqual([]);
  });

  test("one connect per flow and window (15 s windows, 15 s rounds): the flow is judged over the last minute of windows, and forgotten after it", async () => {
    const p = pipeline(15_000);
    const lossyNow = async () => val(await p.scrape(), "prober_tcp_flows_lossy");
    // Window 1: one round, one dropped connect on 40209: one attempt is too few to judge.
    p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(p.now(), 16, [40209]) }, p.now());
    p.closeCurrent();
    expect(await lossyNow()).toBe(0);
    // Window 2: the same port drops again: two of two over the horizon, the others none.
    p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(p.now(), 16, [40209]) }, p.now());
    p.closeCurrent();
    expect(await lossyNow()).toBe(1);
    expect(p.ingests.tcp.latestConnect()[0]!.flows[0]).toMatchObject({ sourcePort: 40209, sent: 2, received: 0, lossy: true });
    // The fault ends: clean rounds for a minute push the dropped connects out of the horizon.
    for (let i = 0; i < 5; i++) {
      p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(p.now(), 16, []) }, p.now());
      p.closeCurrent();
    }
    expect(await lossyNow()).toBe(0);
    expect(p.ingests.tcp.latestConnect()[0]!.flows.every((f) => f.received === f.sent)).toBe(true);
  });

  test("blackbox tcp results (no flows) make no connect-loss series", async () => {
    const p = pipeline();
    const t = p.now();
    p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: create(TcpResultSchema, { targetRegion: "t", address: "db:5432", time: timestampFromMs(t), durationSeconds: 0.1, success: true, connectSeconds: 0.002 }) }, t);
    p.closeCurrent();
    const m = await p.scrape();
    expect(val(m, "prober_tcp_connect_loss_rate")).toBeUndefined();
    expect(val(m, "prober_tcp_duration_seconds", { ...PAIR, target_addr: "db:5432", phase: "connect" })).toBeCloseTo(0.002, 12);
  });
});

describe("/api/v1: the flow rows, udp and tcp_connect summaries, trace kinds", () => {
  test("pair: flows lossy first (udp and tcp merged), udp and tcp_connect summaries; paths: kind and ports", async () => {
    const { Hono } = await import("hono");
    const { apiRoutes } = await import("../lib/server/api.ts");
    const { MeshHistory } = await import("../lib/server/history.ts");
    const { PathStore } = await import("../lib/server/paths.ts");
    const { AgentRegistry } = await import("../lib/server/registry.ts");
    const { PathTraceSchema } = await import("../lib/rpc/gen/probermesh/v1/probermesh_pb.ts");
    const p = pipeline();
    const t = p.now();
    const lost = Array.from({ length: 8 }, (_, i) => (i === 2 ? 4 : 0));
    p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, lost) }, t);
    p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(t, 4, [40201]) }, t);
    p.windows.add("tcp", { sourceRegion: "s", agentIp: "10.0.0.1", result: tcpFlowResult(t, 4, [40201]) }, t);
    p.closeCurrent();
    const paths = new PathStore();
    paths.add({ sourceRegion: "s", agentIp: "10.0.0.1", trace: create(PathTraceSchema, { targetRegion: "t", address: "10.0.9.1:7001", kind: "udp", sourcePort: 40102, destinationPort: 7001, reason: "error_state", time: timestampFromMs(t) }) });
    paths.add({ sourceRegion: "s", agentIp: "10.0.0.1", trace: create(PathTraceSchema, { targetRegion: "t", address: "10.0.9.1", reason: "error_state", time: timestampFromMs(t) }) });
    const app = new Hono();
    apiRoutes(app, {
      registry: new AgentRegistry(1000), history: new MeshHistory(3600_000), paths, latestIcmp: () => [], latestChecks: () => new Map(),
      latestUdp: p.ingests.udp.latest, latestTcpConnect: p.ingests.tcp.latestConnect, staleAfterMs: Date.now(), // the pipeline's clock is in the past
    });
    const pair = (await (await app.request("/api/v1/pair?source_region=s&target_region=t")).json()) as {
      flows: { kind: string; source_port: number; lossy: boolean; loss_ratio: number; sent: number; received: number }[];
      udp: { sent: number; received: number; flows_lossy: number } | null; tcp_connect: { attempted: number; established: number; loss_ratio: number; flows_lossy: number } | null;
    };
    expect(pair.flows.slice(0, 2).map((f) => [f.kind, f.source_port, f.lossy]).sort()).toEqual([["tcp", 40201, true], ["udp", 40102, true]]);
    expect(pair.flows.slice(2).every((f) => !f.lossy && f.loss_ratio === 0)).toBe(true);
    expect(pair.flows).toHaveLength(8 + 4);
    expect(pair.udp).toMatchObject({ sent: 32, received: 28, flows_lossy: 1 });
    expect(pair.tcp_connect).toMatchObject({ attempted: 8, established: 6, loss_ratio: 0.25, flows_lossy: 1 });
    const got = (await (await app.request("/api/v1/paths")).json()) as { paths: { kind: string; source_port: number; destination_port: number }[] };
    expect(got.paths.map((x) => [x.kind, x.source_port, x.destination_port]).sort()).toEqual([["icmp", 0, 0], ["udp", 40102, 7001]]);
    expect((await app.request("/api/v1/pair?source_region=x&target_region=t")).status).toBe(404);
  });
});

describe("a cut-off region's udp pairs", () => {
  test("probes of its silent agents' responders (ip:port) all lost: the reverse pair is published as loss 1, prober_udp_pair_inferred 1", async () => {
    const { inferUnreachable } = await import("../lib/server/unreachable.ts");
    const p = pipeline();
    const t = p.now();
    p.windows.add("udp", { sourceRegion: "s", agentIp: "10.0.0.1", result: udpResult(t, 4, [4, 4, 4, 4]) }, t);
    p.closeCurrent();
    const pairs = inferUnreachable(p.ingests.udp.latest(), [{ region: "s", ip: "10.0.0.1", alive: true }, { region: "t", ip: "10.0.9.1", alive: false }]);
    expect(pairs).toEqual([{ sourceRegion: "t", targetRegion: "s", forwardLoss: 1 }]);
    p.ingests.udp.publishInferred(pairs, t);
    const m = await p.scrape();
    const reverse = { source_region: "t", target_region: "s" };
    expect(val(m, "prober_udp_packet_loss_rate", reverse)).toBe(1);
    expect(val(m, "prober_udp_pair_inferred", reverse)).toBe(1);
    expect(p.ingests.udp.latest().find((a) => a.inferred)).toMatchObject({ sourceRegion: "t", targetRegion: "s", lossRatio: 1 });
  });
});

/**
 * The console's pair view of the flow mesh in a real headless Chromium (puppeteer-core) on the
 * compiled server (run `bun run scripts/build.ts` first): results pushed through the RPC as an
 * agent does (heartbeat, target pool, PushResults with icmp and udp results carrying per-flow
 * stats, one ICMP path trace and one Paris trace of the lossy flow), then the page must show
 * which source port loses (highlighted as lossy), the udp summary, and the flow trace titled with
 * its kind and source port next to the ICMP trace of the same target. A second page gets an
 * older server's answers (no flows, udp, tcp_connect or trace kind) and must still render.
 *
 * Needs only chromium (no root: nothing is probed, every packet is an RPC on 127.0.0.1).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { Moments } from "../lib/aggregation/moments.ts";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { FlowStatsSchema } from "../lib/rpc/gen/probermesh/v1/flow_pb.ts";
import { IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentSchema, PathTraceSchema, ProberMeshService, TraceHopSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { UdpResultSchema } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";
import { SERVER_BIN, freePort, killAll, skipReason, start, waitFor } from "./helpers/procs.ts";

/** The page's `document`, as the callbacks below (run inside Chromium) use it. */
declare const document: { querySelectorAll(selector: string): { length: number } };

const chromium = Bun.which("chromium");
if (!chromium) skipReason("console_flows.test.ts needs chromium (apt-get install chromium)");

const AGENT_IP = "127.0.78.1";
const TARGET_IP = "127.0.78.9";
const UDP_TARGET = `${TARGET_IP}:7`;
const LOSSY_PORT = 40105;
const RTT = 0.002;

describe.skipIf(!chromium)("console pair view: flows and flow traces", () => {
  let browser: Browser;
  let base = "";

  beforeAll(async () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-consflows-`);
    writeFileSync(`${dir}/p.yaml`, [
      "prober_configs:",
      "  - prober_type: icmp", "    region: far", `    targets: [${TARGET_IP}]`,
      "  - prober_type: udp", "    region: far", `    targets: ["${UDP_TARGET}"]`,
    ].join("\n") + "\n");
    const [rpc, web] = [await freePort(), await freePort()];
    start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.probe.file", `${dir}/p.yaml`, "-server.aggregation.interval", "1s", "-server.icmp.discovery", "static",
      // The results are pushed once: the pair's window must stay fresh (ratio x interval) while Chromium starts on a busy machine.
      "-server.series.cache.ratio", "60"]);
    base = `http://127.0.0.1:${web}`;
    await waitFor("server ready", 10_000, async () => (await fetch(`${base}/-/ready`).catch(() => undefined))?.ok);

    const client = createClient(ProberMeshService, createConnectTransport({ baseUrl: `http://127.0.0.1:${rpc}`, httpVersion: "1.1", useBinaryFormat: true }));
    const agent = create(AgentSchema, { region: "near", ip: AGENT_IP, version: "0.6.0", udpPort: 7001 });
    await client.heartbeat({ agent });
    const pool = await client.getTargetPool({ agent });
    expect(pool.udp.map((t) => t.address)).toContain(UDP_TARGET);

    const now = Date.now();
    const rtts = new Array<number>(10).fill(RTT);
    const m = Moments.of(rtts);
    const icmp = create(IcmpResultSchema, {
      targetRegion: "far", address: TARGET_IP, resolvedIp: TARGET_IP, time: timestampFromMs(now), sent: 10, received: 10,
      minSeconds: m.min, meanSeconds: m.mean, maxSeconds: m.max, stddevSeconds: m.stddev, rttBucketCounts: rttBucketCounts(rtts), durationSeconds: 0.2,
    });
    // 16 flows of 4 probes; flow 40105 loses all 4 (a bad bundle member), the others none.
    const flows = Array.from({ length: 16 }, (_, i) => {
      const lost = 40100 + i === LOSSY_PORT ? 4 : 0;
      return create(FlowStatsSchema, { sourcePort: 40100 + i, sent: 4, received: 4 - lost, rttMeanSeconds: lost < 4 ? RTT : 0, rttMinSeconds: lost < 4 ? RTT : 0, rttMaxSeconds: lost < 4 ? RTT : 0 });
    });
    const urtts = new Array<number>(60).fill(RTT);
    const udp = create(UdpResultSchema, {
      targetRegion: "far", address: UDP_TARGET, resolvedIp: TARGET_IP, time: timestampFromMs(now), sent: 64, received: 60,
      minSeconds: RTT, meanSeconds: RTT, maxSeconds: RTT, stddevSeconds: 0, rttBucketCounts: rttBucketCounts(urtts), durationSeconds: 0.5, flows,
    });
    const hop = (ttl: number, address: string, received: number) => create(TraceHopSchema, {
      ttl, address, sent: 3, received, rttMeanSeconds: received ? RTT : 0, rttMinSeconds: received ? RTT : 0, rttMaxSeconds: received ? RTT : 0,
    });
    const icmpTrace = create(PathTraceSchema, {
      targetRegion: "far", address: TARGET_IP, resolvedIp: TARGET_IP, time: timestampFromMs(now), reason: "error_state", reached: true, durationSeconds: 1,
      kind: "icmp", hops: [hop(1, "127.0.78.2", 3), hop(2, TARGET_IP, 3)],
    });
    const flowTrace = create(PathTraceSchema, {
      targetRegion: "far", address: UDP_TARGET, resolvedIp: TARGET_IP, time: timestampFromMs(now), reason: "error_state", reached: false, durationSeconds: 1,
      kind: "udp", sourcePort: LOSSY_PORT, destinationPort: 7, hops: [hop(1, "127.0.78.2", 3), hop(2, "", 0)],
    });
    // Pushes from a just-heartbeated agent may be deferred during the server's warm-up: retry.
    await waitFor("results accepted", 15_000, async () => {
      const r = await client.pushResults({ agent, icmp: [icmp], udp: [udp, udp], traces: [icmpTrace, flowTrace], sentTime: timestampNow() }).catch(() => undefined);
      expect(r?.rejectReasons ?? []).toEqual([]);
      return r && r.accepted > 0 ? r : undefined;
    });
    await waitFor("pair with flows and both traces", 20_000, async () => {
      const pair = await (await fetch(`${base}/api/v1/pair?source_region=near&target_region=far`)).json() as { flows?: { lossy: boolean }[] };
      const paths = await (await fetch(`${base}/api/v1/paths?source_region=near&target_region=far`)).json() as { paths: unknown[] };
      const mesh = await (await fetch(`${base}/api/v1/mesh`)).json() as { pairs: unknown[] };
      return (pair.flows ?? []).some((f) => f.lossy) && paths.paths.length === 2 && mesh.pairs.length === 1;
    });
    browser = await puppeteer.launch({ executablePath: chromium!, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await killAll();
  });

  /** Opens the console and the near → far pair; `older` rewrites the API's answers as a server before 0.6 gives them. */
  async function openPair(older = false): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    if (older) {
      await page.setRequestInterception(true);
      page.on("request", async (req) => {
        const url = req.url();
        if (!url.includes("/api/v1/pair") && !url.includes("/api/v1/paths")) return req.continue();
        const body = await (await fetch(url)).json() as Record<string, unknown> & { paths?: Record<string, unknown>[] };
        for (const k of ["flows", "udp", "tcp_connect"]) delete body[k];
        for (const p of body.paths ?? []) for (const k of ["kind", "source_port", "destination_port"]) delete p[k];
        await req.respond({ status: 200, contentType: "application/json", body: JSON.stringify(body) });
      });
    }
    await page.goto(base, { waitUntil: "networkidle0" });
    await page.waitForFunction(() => document.querySelectorAll('#heatmap td.cell[data-source="near"][data-target="far"]').length === 1, { timeout: 15_000 });
    await page.click('#heatmap td.cell[data-source="near"][data-target="far"]');
    await page.waitForFunction(() => document.querySelectorAll("#paths .trace").length === 2, { timeout: 10_000 });
    return { page, errors };
  }

  test("the lossy source port is listed and highlighted, with the udp summary", async () => {
    const { page, errors } = await openPair();
    const rows = await page.$$eval("#flows tr:not(:first-child)", (trs) => trs.map((tr) => ({ cls: tr.className, cells: [...tr.querySelectorAll("td")].map((td) => td.textContent) })));
    expect(rows).toHaveLength(1); // only the flow that lost probes
    expect(rows[0]!.cls).toBe("lossy");
    expect(rows[0]!.cells).toEqual(["udp", AGENT_IP, UDP_TARGET, String(LOSSY_PORT), "8", "0", "100.0 %", "lossy"]);
    const summary = await page.$eval("#flow-summary", (e) => e.textContent ?? "");
    expect(summary).toContain("udp: loss 6.3 %");
    expect(summary).toContain("lossy flows 1");
    expect(summary).toContain("1 of 16 flows lost probes");
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  test("the flow trace is titled with its kind and source port, next to the target's ICMP trace", async () => {
    const { page, errors } = await openPair();
    const groups = await page.$$eval("#paths .traces", (gs) => gs.map((g) => [...g.querySelectorAll(".trace-title")].map((t) => [t.getAttribute("data-kind"), t.getAttribute("data-source-port"), t.textContent])));
    expect(groups).toHaveLength(1); // one row: same agent, same target host
    expect(groups[0]!.map(([k, p]) => [k, p])).toEqual([["icmp", "0"], ["udp", String(LOSSY_PORT)]]);
    expect(groups[0]![1]![2]).toBe(`udp flow, source port ${LOSSY_PORT}: ${AGENT_IP}:${LOSSY_PORT} → ${UDP_TARGET}`);
    const flowHops = await page.$$eval("#paths .trace:nth-child(2) table tr:not(:first-child)", (trs) => trs.map((tr) => tr.children[1]!.textContent));
    expect(flowHops).toEqual(["127.0.78.2", "???"]);
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  test("an older server's answers (no flows, summaries or trace kinds) still render: no flow data, traces as icmp", async () => {
    const { page, errors } = await openPair(true);
    expect(await page.$eval("#flow-summary", (e) => e.textContent)).toContain("no flow data for this pair");
    expect(await page.$$eval("#flows tr", (trs) => trs.length)).toBe(0);
    const kinds = await page.$$eval("#paths .trace-title", (ts) => ts.map((t) => t.getAttribute("data-kind")));
    expect(kinds).toEqual(["icmp", "icmp"]);
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);
});
